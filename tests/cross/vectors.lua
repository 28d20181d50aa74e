-- Run by an ARM board's own LuaJIT (Debian's luajit2, under qemu-user in tests/cross/run.sh): the
-- Lua module's FFI binding (lua/up42webhooks/native.lua, with the generated cdef) loads the
-- cross-built library through package.cpath and checks every reference vector.
--   luajit vectors.lua ROOT LIBDIR VECTORS_LUA
local root, libdir, vectors_file = arg[1], arg[2], arg[3]
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = libdir .. "/?.so"

local ffi = require "ffi"
local native = require "up42webhooks.native"

local failed, passed = 0, 0
local function check(ok, what)
    if ok then
        passed = passed + 1
    else
        failed = failed + 1
        io.stderr:write("FAILED: ", what, "\n")
    end
end

-- The ABI this LuaJIT sees: on 32-bit ARM size_t and pointers are 4 bytes while int64_t keeps
-- 8-byte alignment, so these sizes differ from a 64-bit host's.
print(("%s %s-bit, size_t %d, up42wh_message_verified %d bytes, time at %d, up42wh_signed %d bytes"):format(
    jit.arch, ffi.abi("32bit") and "32" or "64", ffi.sizeof("size_t"), ffi.sizeof("up42wh_message_verified"),
    ffi.offsetof("up42wh_message_verified", "time"), ffi.sizeof("up42wh_signed")))
print("library " .. native.version() .. " from " .. native.library_path)

-- UP42 through the key ring, as the receiver verifies every sender.
local opts = assert(native.new_message_options("up42", {}))
for _, v in ipairs(dofile(vectors_file)) do
    local keys = {}
    for i, s in ipairs(v.secrets) do keys[i] = { kind = "hmac", keyid = "secret-" .. i, material = s } end
    local key, kerr = native.new_keyring(keys)
    check(key ~= nil, v.name .. ": key: " .. tostring(kerr))
    if key then
        local out, name = native.verify_message(key, { raw_headers = v.raw, body = v.body }, v.now, opts)
        local got = out and "ok" or name
        check(got == v.expect, ("%s: got %s, expected %s"):format(v.name, got, v.expect))
        if out and v.key_index then
            check(tonumber(out.key_index) == v.key_index, v.name .. ": key index")
        end
        if out then
            -- The int64 fields read back whole on 32-bit too.
            check(tonumber(out.time) > 1.6e9 and tonumber(out.time) <= v.now + 30,
                  v.name .. ": created " .. tostring(out.time))
        end
    end
end

-- A 64-bit time past 2038 through the int64_t arguments and output.
local C = ffi.load(native.library_path)
local unix = ffi.new("int64_t[1]")
local rc = C.up42wh_check_timestamp("2100-01-01T00:00:00Z", 20, 4102444800, nil, unix)
check(rc == 0 and unix[0] == 4102444800, "check_timestamp past 2038: " .. tostring(unix[0]))

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
