-- luacheck (make lint): the Lua module, in nginx's Lua (LuaJIT 2.1 with ngx and its globals).
std = "ngx_lua"
max_line_length = 120
-- Generated from the C header (tests/header.rs keeps it identical): not ours to lint.
exclude_files = { "lua/up42webhooks/cdef.lua" }
