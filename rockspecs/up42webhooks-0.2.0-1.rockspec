-- up42webhooks for OpenResty's LuaRocks: `luarocks make` in a checkout builds the library with
-- cargo (Rust's toolchain is needed) and installs the Lua module and libup42webhooks.so into the
-- tree. The library goes to the tree's lib/lua/5.1/, which is on the package.cpath of every Lua
-- that uses the tree (OpenResty's: /usr/local/openresty/luajit/lib/lua/5.1/); the module finds it
-- there through package.cpath, as Lua finds C modules (lua/up42webhooks/native.lua).
-- LuaJIT only: the module binds the library with LuaJIT's FFI.
package = "up42webhooks"
version = "0.2.0-1"
source = {
   url = "git+https://github.com/up42webhooks/up42webhooks.git",
   tag = "v0.2.0",
}
description = {
   summary = "Verifies UP42's (and other senders') signed webhooks in OpenResty, at native speed",
   detailed = [[
      A Rust library, bound with LuaJIT's FFI, that verifies UP42's signature headers, RFC 9421
      HTTP Message Signatures, Standard Webhooks, GitHub and Stripe, and a receiver for
      OpenResty that keeps the verified events in a journal or Redis and serves them on an
      admin listener (see the README: openresty/default.conf is the server configuration).
   ]],
   homepage = "https://github.com/up42webhooks/up42webhooks",
   license = "MIT",
}
dependencies = {
   "lua == 5.1",
}
build = {
   type = "command",
   -- CARGO_TARGET_DIR is honoured; the library is copied to the top, where `install` takes it.
   build_command = [[cargo build --release --locked --lib && cp "${CARGO_TARGET_DIR:-target}/release/libup42webhooks.so" libup42webhooks.so]],
   install = {
      lua = {
      ["up42webhooks"] = "lua/up42webhooks.lua",
      ["up42webhooks.addr"] = "lua/up42webhooks/addr.lua",
      ["up42webhooks.admin"] = "lua/up42webhooks/admin.lua",
      ["up42webhooks.cdef"] = "lua/up42webhooks/cdef.lua",
      ["up42webhooks.config"] = "lua/up42webhooks/config.lua",
      ["up42webhooks.gate"] = "lua/up42webhooks/gate.lua",
      ["up42webhooks.held"] = "lua/up42webhooks/held.lua",
      ["up42webhooks.hosts"] = "lua/up42webhooks/hosts.lua",
      ["up42webhooks.journal"] = "lua/up42webhooks/journal.lua",
      ["up42webhooks.learnt"] = "lua/up42webhooks/learnt.lua",
      ["up42webhooks.lock"] = "lua/up42webhooks/lock.lua",
      ["up42webhooks.native"] = "lua/up42webhooks/native.lua",
      ["up42webhooks.origin"] = "lua/up42webhooks/origin.lua",
      ["up42webhooks.receive"] = "lua/up42webhooks/receive.lua",
      ["up42webhooks.reply"] = "lua/up42webhooks/reply.lua",
      ["up42webhooks.senders"] = "lua/up42webhooks/senders.lua",
      ["up42webhooks.shm"] = "lua/up42webhooks/shm.lua",
      ["up42webhooks.store"] = "lua/up42webhooks/store.lua",
      ["up42webhooks.store_lifecycle"] = "lua/up42webhooks/store_lifecycle.lua",
      ["up42webhooks.store_redis"] = "lua/up42webhooks/store_redis.lua",
      ["up42webhooks.store_redis_connection"] = "lua/up42webhooks/store_redis_connection.lua",
      ["up42webhooks.store_redis_scripts"] = "lua/up42webhooks/store_redis_scripts.lua",
      ["up42webhooks.store_redis_settings"] = "lua/up42webhooks/store_redis_settings.lua",
      },
      lib = {
         ["libup42webhooks"] = "libup42webhooks.so",
      },
   },
}
