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
print(("%s %s-bit, size_t %d, up42wh_verified %d bytes, created at %d, up42wh_signed %d bytes"):format(
    jit.arch, ffi.abi("32bit") and "32" or "64", ffi.sizeof("size_t"), ffi.sizeof("up42wh_verified"),
    ffi.offsetof("up42wh_verified", "created"), ffi.sizeof("up42wh_signed")))
print("library " .. native.version() .. " from " .. native.library_path)

local opts = native.new_options{}
for _, v in ipairs(dofile(vectors_file)) do
    local key, kerr = native.new_key(v.secrets)
    check(key ~= nil, v.name .. ": key: " .. tostring(kerr))
    if key then
        local out, name = native.verify_raw(key, v.raw, v.body, v.now, opts)
        local got = out and "ok" or name
        check(got == v.expect, ("%s: got %s, expected %s"):format(v.name, got, v.expect))
        if out and v.key_index then
            check(tonumber(out.key_index) == v.key_index, v.name .. ": key index")
        end
        if out then
            -- The int64 fields read back whole on 32-bit too.
            check(tonumber(out.created) > 1.6e9 and tonumber(out.created) <= v.now + 30,
                  v.name .. ": created " .. tostring(out.created))
        end
    end
end

-- A 64-bit time past 2038 through the int64_t arguments and output.
local unix = native.check_timestamp("2100-01-01T00:00:00Z", 4102444800, opts)
check(unix == 4102444800, "check_timestamp past 2038: " .. tostring(unix))

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
