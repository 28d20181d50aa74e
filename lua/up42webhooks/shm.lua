-- Stores what the library wrote into a C buffer in a lua_shared_dict without first making it a
-- Lua string, through lua-nginx-module's own FFI call as resty.core declares it (nginx's Lua
-- module loads resty.core before any user code). As a string it would be interned, and LuaJIT's
-- string table hashes only a few sampled bytes: records that differ in a few bytes (compressed
-- bodies, a replayed journal) then share one hash chain, and each new one is compared with all
-- of them (a replay of 100,000 such events took 20 s instead of 0.7). Without those declarations
-- (another build, the tests' stand-in for ngx) it falls back to the dict's own methods.
local ffi = require "ffi"

local C = ffi.C
local ffi_str = ffi.string
local tostring = tostring
local type = type

local _M = {}

local declared = jit.os ~= "OSX" and pcall(function()
    return C.ngx_http_lua_ffi_shdict_store, C.ngx_http_lua_ffi_shdict_udata_to_zone
end)
local store = declared and C.ngx_http_lua_ffi_shdict_store
local to_zone = declared and C.ngx_http_lua_ffi_shdict_udata_to_zone
local errmsg = ffi.new("char *[1]")
local forcible = ffi.new("int[1]")
local SAFE_ADD, SAFE_SET = 0x0005, 0x0004 -- never evict to make room
local STRING = 4 -- LUA_TSTRING, as the dict keeps a value's type

local zones = {}
local function zone_of(dict)
    local z = zones[dict]
    if not z then
        z = to_zone(dict[1])
        zones[dict] = z
    end
    return z
end

_M.direct = store and true or false

local function put(dict, op, key, ptr, len, exptime)
    if not store or type(dict[1]) ~= "userdata" then
        local value = ffi_str(ptr, len)
        if op == SAFE_ADD then
            return dict:safe_add(key, value, exptime)
        end
        return dict:safe_set(key, value, exptime)
    end
    key = tostring(key)
    local rc = store(zone_of(dict), op, key, #key, STRING, ptr, len, 0, (exptime or 0) * 1000, 0,
                     errmsg, forcible)
    if rc == 0 then
        return true
    end
    return false, ffi_str(errmsg[0])
end

-- dict:safe_add and dict:safe_set with the value's `len` bytes at `ptr`.
function _M.safe_add(dict, key, ptr, len, exptime)
    return put(dict, SAFE_ADD, key, ptr, len, exptime)
end

function _M.safe_set(dict, key, ptr, len, exptime)
    return put(dict, SAFE_SET, key, ptr, len, exptime)
end

return _M
