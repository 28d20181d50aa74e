-- The Redis store's connections (up42webhooks/store_redis.lua): from the worker's pool (or
-- through Sentinel), authenticated and on their database once; each new one reads Redis's
-- persistence and makes the consumer groups; and the persistence read again every check_interval.
local settings = require "up42webhooks.store_redis_settings"

local client, connector = settings.client, settings.connector
local ngx = ngx
local concat, unpack = table.concat, unpack
local setmetatable, tonumber, type = setmetatable, tonumber, type

local _M = {}

-- Redis's persistence as last read (read_persistence, below), in the events dict.
local PERSISTENCE = "redis:persistence"  -- what was read, as text
local DURABLE = "redis:durable"          -- 1 it keeps events across a restart, 0 it does not
local CHECKED = "redis:checked"          -- when it was last read
_M.PERSISTENCE, _M.DURABLE, _M.CHECKED = PERSISTENCE, DURABLE, CHECKED

-- The connector holding each connection made through Sentinel, to give it back to its pool.
local via = setmetatable({}, { __mode = "k" })

-- A connection to the master Sentinel names, from the connector's pool, or nil, err.
local connect_new_or_pooled

local function connect_sentinel(c, timeout)
    local r = c.redis
    local rc, err = connector.new({
        connect_timeout = r.timeout, read_timeout = timeout or r.timeout,
        keepalive_timeout = r.keepalive, keepalive_poolsize = r.pool_size,
    })
    if not rc then
        return nil, "Redis connector: " .. tostring(err)
    end
    local red, cerr = rc:connect(r.sentinel)
    if not red then
        return nil, "cannot reach the master " .. r.sentinel.master_name .. " through Sentinel: " .. tostring(cerr)
    end
    red:set_timeout(timeout or r.timeout)
    via[red] = rc
    return red
end

local read_persistence

-- Each declared consumer is a consumer group of the stream, made when it is not there (on every
-- new connection: Redis may have restarted without its data) at the highest entry retention
-- removed, "0" when none: it reads everything held, and what went before it existed is no gap of
-- its own. An existing group (BUSYGROUP) is left as it is.
local ENSURE_GROUPS = [==[
local from = redis.call('GET', KEYS[2]) or '0'
for _, g in ipairs(ARGV) do
  local ok = redis.pcall('XGROUP', 'CREATE', KEYS[1], g, from, 'MKSTREAM')
  if type(ok) == 'table' and ok.err and not string.find(ok.err, 'BUSYGROUP', 1, true) then
    return redis.error_reply(ok.err)
  end
end
return 1
]==]
local function ensure_groups(c, red)
    if c.consumers then
        local ok, err = red:eval(ENSURE_GROUPS, 2, c.redis.stream, c.redis.retained, unpack(c.consumers))
        if not ok then
            ngx.log(ngx.WARN, "up42webhooks: cannot make the consumer groups of stream ", c.redis.stream, ": ",
                    tostring(err))
        end
    end
end

-- A connection from the worker's pool (authenticated and on its database once), or nil, err. A
-- new connection (Redis may have restarted since the last one) reads Redis's persistence first.
local function connect(c, timeout)
    local red, err = connect_new_or_pooled(c, timeout)
    if red and (red:get_reused_times() or 0) == 0 then
        read_persistence(c, red)
        ensure_groups(c, red)
    end
    return red, err
end

function connect_new_or_pooled(c, timeout)
    local r = c.redis
    if r.sentinel then
        return connect_sentinel(c, timeout)
    end
    local red = client:new()
    red:set_timeout(timeout or r.timeout)
    local ok, err = red:connect(r.host, r.port, { pool = r.pool })
    if not ok then
        return nil, "cannot connect to Redis at " .. r.host .. ":" .. r.port .. ": " .. tostring(err)
    end
    if (red:get_reused_times() or 0) == 0 then
        if r.password then
            if r.user then
                ok, err = red:auth(r.user, r.password)
            else
                ok, err = red:auth(r.password)
            end
            if not ok then
                red:close()
                return nil, "Redis refused the credentials (AUTH): " .. tostring(err)
            end
        end
        if r.db ~= 0 then
            ok, err = red:select(r.db)
            if not ok then
                red:close()
                return nil, "Redis SELECT " .. r.db .. ": " .. tostring(err)
            end
        end
    end
    return red
end

local function release(c, red)
    local rc = via[red]
    if rc then
        rc:set_keepalive(red)
    else
        red:set_keepalive(c.redis.keepalive, c.redis.pool_size)
    end
end

-- Runs `f(red)` on a pooled connection; returns what it returns, or nil, err (the connection is
-- then closed: it may hold half a reply), and "unreachable" when no connection was made.
local function with_redis(c, f, timeout)
    local red, err = connect(c, timeout)
    if not red then
        return nil, err, "unreachable"
    end
    local a, b = f(red)
    if a == nil then
        red:close()
        return nil, b
    end
    release(c, red)
    return a, b
end
_M.with_redis = with_redis

-- Redis's persistence, read on every new connection and every check_interval seconds (one worker
-- at a time): whether it keeps what it holds across its own restart (the append-only file). Kept
-- in the events dict for every worker and /stats; each change is logged once. While Redis would
-- not keep an event, deliveries are refused 503 (store.require_persistence = false accepts them).
-- INFO persistence where CONFIG is renamed or refused (managed services).

local function config_get(red, name)
    local res = red:config("get", name)
    return type(res) == "table" and type(res[2]) == "string" and res[2] or nil
end

function read_persistence(c, red)
    local r, events = c.redis, c.events
    local aof, fsync = config_get(red, "appendonly"), config_get(red, "appendfsync")
    local warnings = {}
    if not aof then
        local info = red:info("persistence")
        local enabled = type(info) == "string" and info:match("aof_enabled:(%d)")
        aof = enabled and (enabled == "1" and "yes" or "no")
        warnings[#warnings + 1] = "CONFIG GET is not allowed: check appendfsync and maxmemory-policy by hand"
    end
    local state
    if not aof then
        state = "unknown (neither CONFIG GET nor INFO persistence answered)"
    else
        state = "appendonly " .. aof .. (fsync and (", appendfsync " .. fsync) or "")
    end
    if aof == "no" then
        warnings[#warnings + 1] = "appendonly is no: a restart of Redis loses what it held since its last snapshot"
    elseif fsync == "no" then
        warnings[#warnings + 1] = "appendfsync is no: a power loss may lose up to 30 s of events"
    end
    local policy, maxmem = config_get(red, "maxmemory-policy"), config_get(red, "maxmemory")
    if tonumber(maxmem) and tonumber(maxmem) > 0 and policy ~= "noeviction" then
        warnings[#warnings + 1] = "maxmemory-policy is " .. tostring(policy)
                                  .. ": Redis may evict stored events and dedup marks"
    end
    events:set(CHECKED, ngx.time())
    local was_durable = events:get(DURABLE) ~= 0
    events:set(DURABLE, aof == "no" and 0 or 1)
    local before = events:get(PERSISTENCE)
    events:set(PERSISTENCE, state)
    events:set("redis:warnings", #warnings > 0 and concat(warnings, "; ") or nil)
    -- Logged once per change, by whichever worker saw it first.
    if before ~= state and events:safe_add("redis:logged:" .. state, true, 3600) then
        if before then
            events:delete("redis:logged:" .. before)
        end
        local where = "up42webhooks: Redis at " .. r.host .. ":" .. r.port .. ": "
        if aof == "no" and r.require_persistence then
            ngx.log(ngx.ERR, where, state, ": it would not keep events across its restart, so deliveries are "
                    .. "refused (503 store_not_durable) until appendonly is yes", #warnings > 1 and "; " or "",
                    #warnings > 1 and concat(warnings, "; ", 2) or "")
        elseif #warnings > 0 then
            ngx.log(ngx.WARN, where, state, ": ", concat(warnings, "; "))
        elseif not was_durable then
            ngx.log(ngx.WARN, where, state, ": it keeps events again, deliveries are stored")
        else
            ngx.log(ngx.NOTICE, where, state)
        end
    end
    return true
end

-- Every second (one worker at a time, from the worker's timer): reads the persistence again once
-- check_interval has passed, so that a change made at run time (CONFIG SET) is seen.
function _M.check(c, now)
    local events = c.events
    if now - (events:get(CHECKED) or 0) < c.redis.check_interval then
        return true
    end
    if not events:safe_add("redis:checking", true, 5) then
        return true
    end
    local ok, err = with_redis(c, function(red)
        if (red:get_reused_times() or 0) > 0 then
            read_persistence(c, red) -- a new connection has just read it
        end
        return true
    end)
    events:delete("redis:checking")
    return ok, err
end

return _M
