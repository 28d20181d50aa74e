-- One worker at a time: a lock held in a lua_shared_dict (safe_add of a key with a short TTL, so a
-- worker that dies holding it cannot keep it), waited for by yielding, never spinning.
local ngx = ngx
local pcall = pcall
local error = error

local _M = {}

local HELD_FOR = 5 -- seconds: longest a holder keeps it, should it die holding it

-- Runs f(...) holding `name` in `dict`, trying `tries` times `pause` seconds apart; returns what f
-- returns (up to three values; an error in f is raised again once the lock is let go), or false
-- when the lock stayed taken. No pause after the last try: with tries = 1 it never yields (a
-- delivery's eviction takes it so).
function _M.with(dict, name, tries, pause, f, ...)
    for i = 1, tries do
        if dict:safe_add(name, true, HELD_FOR) then
            local ok, a, b, c = pcall(f, ...)
            dict:delete(name)
            if not ok then
                error(a, 0)
            end
            return a, b, c
        end
        if i < tries then
            ngx.sleep(pause)
        end
    end
    return false
end

return _M
