-- The Redis (or Valkey) store: several receivers share one stream of events and one dedup memory.
-- Same interface as the shared-dict store (add, range, wait, ack, trim, stats, cursor, count); its
-- positions are stream entry ids ("1700000000000-0"). Durability is Redis's: appendonly yes with
-- appendfsync everysec or always, and maxmemory-policy noeviction (checked at start where CONFIG
-- is allowed).
--
--   configure{ store = { backend = "redis", url = "redis://[user:password@]host:port/db",
--              stream = "up42webhooks", prefix = "up42webhooks", password_file = path,
--              timeout = 2000 (ms), pool_size = 32, require_persistence = true (503 while Redis
--              runs with appendonly no), check_interval = 10 (s) } }   or UP42_WEBHOOK_STORE=redis://...
--   Sentinel: url = "sentinel://[password@]master_name/db" with sentinels = { "host:port", ... }
--   (or UP42_WEBHOOK_STORE_SENTINELS="host:port,..."), through lua-resty-redis-connector
--
-- A delivery is one round trip: a script that, atomically, finds the id's mark (<prefix>:seen:<id>
-- = "<body SHA-256> <entry id>") or, when there is none, XADDs the event and sets the mark with
-- the dedup TTL. No crash of a receiver or of Redis can leave a mark without its entry, so a retry
-- is never a false duplicate; and no entry is written twice for a marked id.
local ok_resty, resty_redis = pcall(require, "resty.redis")
local client = ok_resty and resty_redis or nil
if not client then
    local ok_debian, debian_redis = pcall(require, "nginx.redis")
    client = ok_debian and debian_redis or nil
end

-- Sentinel discovery, where lua-resty-redis-connector is installed.
local ok_conn, connector = pcall(require, "resty.redis.connector")
if not ok_conn then
    ok_conn, connector = pcall(require, "nginx.redis.connector")
end
connector = ok_conn and connector or nil

local read_secrets_file = require("up42webhooks.senders").read_secrets_file
local lifecycle = require "up42webhooks.store_lifecycle"
local native = require "up42webhooks.native"

local ngx, getenv = ngx, os.getenv
local concat, floor, min = table.concat, math.floor, math.min
local unpack = unpack
local byte, format = string.byte, string.format
local json_string = require("cjson.safe").encode

local _M = { START = "0", CURSOR = "a stream entry id (milliseconds-sequence, or 0), each part up to 9007199254740991" }

-- Redis's persistence as last read (read_persistence, below), in the events dict.
local PERSISTENCE = "redis:persistence"  -- what was read, as text
local DURABLE = "redis:durable"          -- 1 it keeps events across a restart, 0 it does not
local CHECKED = "redis:checked"          -- when it was last read

-- The largest part of an id that Lua and JSON readers hold exactly: 2^53 - 1.
local MAX_SEQ = "9007199254740991"

local ADD = [[
local mark = redis.call('GET', KEYS[1])
if mark then
  return {0, mark}
end
local args = {KEYS[2]}
if ARGV[3] ~= '' then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.call('XADD', unpack(args))
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. id, 'EX', tonumber(ARGV[2]))
return {1, id}
]]

local function hex(s)
    local out = {}
    for i = 1, #s do
        out[i] = format("%02x", byte(s, i))
    end
    return concat(out)
end

local ADD_SHA = hex(ngx.sha1_bin(ADD))

-- Runs a script by its digest, loading it when Redis has not seen it (NOSCRIPT).
local function script(red, sha, text, ...)
    local out, err = red:evalsha(sha, ...)
    if not out and err and err:find("NOSCRIPT", 1, true) then
        out, err = red:eval(text, ...)
    end
    return out, err
end

-- What every kind of address shares: the stream, the key prefix, the timeout and the pool.
local function base(s, host, port, db)
    local prefix = s.prefix or "up42webhooks"
    return {
        host = host, port = port, db = db, stream = s.stream or "up42webhooks", prefix = prefix,
        seen_prefix = prefix .. ":seen:", acked = prefix .. ":acked", retained = prefix .. ":retained",
        timeout = s.timeout or 2000,
        pool_size = s.pool_size or 32, keepalive = 60000,
        require_persistence = s.require_persistence ~= false, check_interval = s.check_interval or 10,
    }
end

-- The password: the first line of password_file when there is one, else the URL's (nil for
-- none); or nil and why.
local function password_of(s, password_file, from_url)
    password_file = s.password_file or password_file
    if not password_file then
        return from_url ~= "" and from_url or nil
    end
    -- Read as every secret file is: one a line, spaces around it dropped.
    local lines, err = read_secrets_file(password_file)
    if not lines or not lines[1] then
        return nil, "store.password_file: " .. tostring(err or "empty")
    end
    return lines[1]
end

-- What follows "<scheme>://" in `url`: the userinfo before the last "@" (or nil), and the rest.
local function after_scheme(url, scheme)
    local rest = url:match("^" .. scheme .. "://(.+)$") or ""
    local userinfo, target = rest:match("^(.*)@([^@]*)$")
    return userinfo, target or rest
end

-- The settings of configure{ store = ... }, or nil, err. `url` may come from the environment.
function _M.settings(s, url, password_file)
    if not client then
        return nil, "no Redis client: resty.redis (OpenResty) or nginx.redis (make nginx-deps "
                    .. "puts Debian's in vendor/lua) is needed"
    end
    url = s.url or url
    if type(url) ~= "string" then
        return nil, "store.url: redis://[user:password@]host:port/db"
    end
    if url:match("^sentinel://") then
        return _M.sentinel_settings(s, url, password_file)
    end
    local userinfo, hostpart = after_scheme(url, "redis")
    local host, port, db = hostpart:match("^([%w%.%-]+):?(%d*)/?(%d*)$")
    if not host then
        -- Never the password in a message.
        return nil, "store.url: redis://[user:password@]host:port/db, not " .. url:gsub("//[^@]*@", "//***@")
    end
    local user, password
    if userinfo then
        user, password = userinfo:match("^([^:]*):(.*)$")
        if not password then
            password = userinfo
        end
    end
    local r = base(s, host, tonumber(port) or 6379, tonumber(db) or 0)
    r.user = user ~= "" and user or nil
    local perr
    r.password, perr = password_of(s, password_file, password)
    if perr then
        return nil, perr
    end
    r.pool = format("up42webhooks:%s:%d:%d:%s", r.host, r.port, r.db, r.user or "")
    return r
end

-- Settings for a master found through Sentinel: sentinel://[password@]master_name/db and the
-- sentinels' addresses.
function _M.sentinel_settings(s, url, password_file)
    if not connector then
        return nil, "a sentinel:// URL needs lua-resty-redis-connector (resty.redis.connector; on "
                    .. "Debian, make nginx-deps puts lua-nginx-redis-connector's in vendor/lua)"
    end
    local password, target = after_scheme(url, "sentinel")
    local master, db = target:match("^([%w%.%-_]+)/?(%d*)$")
    if not master then
        return nil, "store.url: sentinel://[password@]master_name/db"
    end
    local list = s.sentinels or getenv("UP42_WEBHOOK_STORE_SENTINELS")
    if type(list) == "string" then
        local t = {}
        for item in list:gmatch("[^,%s]+") do t[#t + 1] = item end
        list = t
    end
    local sentinels = {}
    for _, a in ipairs(list or {}) do
        local host, port = a:match("^([%w%.%-]+):(%d+)$")
        if not host then
            return nil, "store.sentinels: host:port, not " .. tostring(a)
        end
        sentinels[#sentinels + 1] = { host = host, port = tonumber(port) }
    end
    if #sentinels == 0 then
        return nil, "a sentinel:// URL needs store.sentinels (or UP42_WEBHOOK_STORE_SENTINELS)"
    end
    local r = base(s, "sentinel:" .. master, 0, tonumber(db) or 0)
    r.sentinel = { master_name = master, role = "master", db = r.db, sentinels = sentinels }
    local perr
    r.sentinel.password, perr = password_of(s, password_file, password)
    if perr then
        return nil, perr
    end
    return r
end

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

-- Nothing to make ready before a delivery is verified (add reads it before it yields).
function _M.ready()
    return true
end

-- Stores a verified delivery (as the embedded store's add takes it). Returns its entry id, or nil
-- and why ("duplicate", "id_conflict", "not_durable", "unavailable") and a detail.
local NOT_DURABLE = {}

function _M.add(c, d)
    local r = c.redis
    -- Read from the library's struct before anything yields.
    local event, status, live, line = lifecycle.event_fields(d.delivery, d.body)
    local id, digest = native.delivery_id(d.delivery), hex(native.body_sha256(d.delivery))
    -- Retention by count trims as an entry is added (MAXLEN ~), unless consumers are declared: then
    -- it runs once a second (trim), which counts what each consumer loses.
    local maxlen = (c.retention.max_events and not c.consumers) and tostring(c.retention.max_events) or ""
    local res, err = with_redis(c, function(red)
        -- After connecting: a new connection has just read Redis's persistence.
        if r.require_persistence and c.events:get(DURABLE) == 0 then
            return NOT_DURABLE
        end
        local out, e = script(red, ADD_SHA, ADD, 2, r.seen_prefix .. id, r.stream, digest,
                              c.dedup_ttl, maxlen, "json", line, "event", event, "status", status,
                              "live", live, "sender", d.sender or "up42", "id", id,
                              "time", d.now, "envelope", d.envelope)
        if not out then
            return nil, "Redis: " .. tostring(e)
        end
        return out
    end)
    if not res then
        return nil, "unavailable", err
    end
    if res == NOT_DURABLE then
        return nil, "not_durable", "Redis " .. r.host .. ":" .. r.port .. " would not keep it: "
                                   .. tostring(c.events:get(PERSISTENCE))
    end
    if res[1] == 1 then
        return res[2]
    end
    local mark_digest = type(res[2]) == "string" and res[2]:match("^(%x+) ") or nil
    return nil, mark_digest == digest and "duplicate" or "id_conflict"
end

-- The fields of a stream entry ({field, value, ...}) as a table.
local function fields(list)
    local t = {}
    for i = 1, #list - 1, 2 do
        t[list[i]] = list[i + 1]
    end
    return t
end

-- Hands a stream entry (its id and fields) to a range's `each`, as the embedded store does: an
-- entry written before the envelope has its sender's name in its place.
local function give(id, f, each)
    local envelope = f.envelope
    if not envelope and f.sender then
        envelope = '"sender":' .. json_string(f.sender)
    end
    each(id, f.json or "", nil, tonumber(f.time), envelope, f.event, f.status, f.live)
end

-- The events after entry `since`, in stream order: each(id, line, nil, time, envelope, event,
-- status, live) for those that pass `want`, at most `limit` of them (an entry written before the
-- envelope has its sender's name in its place). Returns the number listed and `next` (the last id
-- read past), or nil, err.
function _M.range(c, since, limit, want, each)
    local r = c.redis
    if limit == 0 then
        return 0, since
    end
    local batch = min(limit or 1000, 1000)
    return with_redis(c, function(red)
        local start = since == "0" and "-" or ("(" .. since)
        local listed, nxt = 0, since
        while true do
            local entries, err = red:xrange(r.stream, start, "+", "COUNT", batch)
            if not entries then
                return nil, "Redis XRANGE: " .. tostring(err)
            end
            for _, e in ipairs(entries) do
                local f = fields(e[2])
                nxt = e[1]
                if not want or want(f.event, f.status, f.live) then
                    listed = listed + 1
                    give(e[1], f, each)
                    if limit and listed >= limit then
                        return listed, nxt
                    end
                end
            end
            if #entries < batch then
                return listed, nxt
            end
            start = "(" .. nxt
        end
    end)
end

-- Waits until an entry after `since` exists, `seconds` pass or `stop()` says to end (the client
-- went away, the worker exits): XREAD BLOCK wakes us on an entry, in slices of a second at most
-- so that `stop` is heard.
function _M.wait(c, since, seconds, stop)
    ngx.update_time()
    local deadline = ngx.now() + seconds
    return with_redis(c, function(red)
        while true do
            local ms = floor((deadline - ngx.now()) * 1000)
            if ms <= 0 or (stop and stop()) then
                return true
            end
            local res, err = red:xread("COUNT", 1, "BLOCK", min(ms, 1000), "STREAMS", c.redis.stream,
                                       since == "0" and "0-0" or since)
            if res == nil then
                return nil, "Redis XREAD: " .. tostring(err)
            end
            if res ~= ngx.null then
                return true
            end
            ngx.update_time()
        end
    end, 1000 + c.redis.timeout)
end

local ack_consumer, ack_default -- below, with the other consumer scripts

-- The consumer unnamed acknowledgements move when none is declared: its position is the mark
-- <prefix>:acked.
_M.DEFAULT_CONSUMER = lifecycle.DEFAULT_CONSUMER

-- POST /ack-webhooks?upto=ID[&consumer=NAME]: moves the consumer's position (never back, no
-- further than the newest entry) and removes nothing. The entries it passed and its position.
function _M.ack(c, upto, _, consumer)
    if consumer then
        return ack_consumer(c, consumer, upto)
    end
    return ack_default(c, upto)
end

-- Named consumers: a consumer group each (made on every new connection, see ensure_groups), so
-- that a consumer may read with XREADGROUP and XACK itself, or through the admin listener. A
-- group's position is the entry before its first pending one, or its last delivered id when
-- nothing is pending: everything up to it is acknowledged. Only retention trims, and counts what
-- each group had not passed.
local GROUPS = [==[
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if not ms then return tonumber(id), 0 end
  return tonumber(ms), tonumber(seq)
end
local function cmp(a, b)
  local ams, aseq = parts(a)
  local bms, bseq = parts(b)
  if ams ~= bms then return ams < bms and -1 or 1 end
  if aseq ~= bseq then return aseq < bseq and -1 or 1 end
  return 0
end
local function after(id)
  local ms, seq = parts(id)
  return ms .. '-' .. (seq + 1)
end
local function fields(list)
  local t = {}
  for i = 1, #list, 2 do t[list[i]] = list[i + 1] end
  return t
end
local function groups(stream)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local t = fields(g)
    out[t['name']] = t
  end
  return out
end
local function position(stream, g, info)
  if tonumber(info['pending']) > 0 then
    local first = redis.call('XPENDING', stream, g)[2]
    local prev = redis.call('XREVRANGE', stream, '(' .. first, '-', 'COUNT', 1)
    return prev[1] and prev[1][1] or '0-0', first
  end
  return info['last-delivered-id'], nil
end
local function count_between(stream, from, to, cap)
  local n, start = 0, '(' .. from
  while not cap or n < cap do
    local e = redis.call('XRANGE', stream, start, to, 'COUNT', 1000)
    n = n + #e
    if #e < 1000 then return n end
    start = '(' .. e[#e][1]
  end
  return n
end
local function keep_from(stream, names, infos)
  local keep
  for _, g in ipairs(names) do
    local info = infos[g]
    if info then
      local pos, first = position(stream, g, info)
      local k = first or after(pos)
      if not keep or cmp(k, keep) < 0 then keep = k end
    end
  end
  return keep
end
]==]

-- Each group of ARGV: its name, position, pending entries, entries after its position (the lag)
-- and, when retention removed entries after its position, the highest it removed (KEYS[2]: a
-- gap).
local CONSUMERS = GROUPS .. [==[
local infos = groups(KEYS[1])
local retained = redis.call('GET', KEYS[2])
local out = {}
for _, g in ipairs(ARGV) do
  local info = infos[g]
  if info then
    local pos = position(KEYS[1], g, info)
    local gap = (retained and cmp(retained, pos) > 0) and retained or ''
    -- Redis's own lag (entries not yet delivered to the group) when it knows it; else counted.
    local lag = tonumber(info['lag'])
    lag = lag and (lag + tonumber(info['pending'])) or count_between(KEYS[1], pos, '+', 100000)
    out[#out + 1] = {g, pos, tonumber(info['pending']), lag, gap}
  end
end
return out
]==]
local CONSUMERS_SHA = hex(ngx.sha1_bin(CONSUMERS))

-- Moves group ARGV[1] to ARGV[2] (no further than the newest entry; never back): acknowledges its
-- pending entries up to there and sets its last delivered id. Returns the entries it passed and
-- its position.
local ACK_CONSUMER = GROUPS .. [==[
local stream, g = KEYS[1], ARGV[1]
local infos = groups(stream)
local info = infos[g]
if not info then return redis.error_reply('NOGROUP no consumer group ' .. g) end
local pos = position(stream, g, info)
local upto = ARGV[2]
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
if not newest then upto = pos elseif cmp(upto, newest[1]) > 0 then upto = newest[1] end
local passed = 0
if cmp(upto, pos) > 0 then
  passed = count_between(stream, pos, upto)
  while true do
    local p = redis.call('XPENDING', stream, g, '-', upto, 1000)
    if #p == 0 then break end
    local ids = {}
    for i, e in ipairs(p) do ids[i] = e[1] end
    redis.call('XACK', stream, g, unpack(ids))
    if #p < 1000 then break end
  end
  if cmp(upto, info['last-delivered-id']) > 0 then
    -- Redis keeps the group's lag when it is told how many entries the group has read.
    local read = tonumber(info['entries-read'])
    if read and tonumber(info['pending']) == 0 then
      redis.call('XGROUP', 'SETID', stream, g, upto, 'ENTRIESREAD', read + passed)
    else
      redis.call('XGROUP', 'SETID', stream, g, upto)
    end
  end
  pos = upto
end
return {passed, pos}
]==]
local ACK_CONSUMER_SHA = hex(ngx.sha1_bin(ACK_CONSUMER))

-- Moves the default consumer's mark KEYS[2] to ARGV[1] (no further than the newest entry; never
-- back). Returns the entries it passed and the mark.
local ACK_DEFAULT = GROUPS .. [==[
local stream, mark = KEYS[1], redis.call('GET', KEYS[2]) or '0-0'
local upto = ARGV[1]
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
if not newest then return {0, mark} end
if cmp(upto, newest[1]) > 0 then upto = newest[1] end
if cmp(upto, mark) <= 0 then return {0, mark} end
local passed = count_between(stream, mark, upto)
redis.call('SET', KEYS[2], upto)
return {passed, upto}
]==]
local ACK_DEFAULT_SHA = hex(ngx.sha1_bin(ACK_DEFAULT))

-- Retention: the first entry to keep by age (ARGV[1], or ''), by count (ARGV[2], or '') and,
-- for entries every consumer has acknowledged, by acked_max_age (ARGV[3], or ''): the groups of
-- ARGV[4..], or without any, the default consumer's mark KEYS[3]. Counts the entries each group
-- loses (after its position, before that entry), then trims; the highest entry it removed is
-- kept in KEYS[2] (the gaps). Returns the entries trimmed, then each group's loss.
local TRIM = GROUPS .. [==[
local stream = KEYS[1]
local function later(a, b)
  if not a then return b end
  if not b then return a end
  return cmp(a, b) > 0 and a or b
end
local keep = ARGV[1] ~= '' and ARGV[1] or nil
if ARGV[2] ~= '' then
  local over = redis.call('XLEN', stream) - tonumber(ARGV[2])
  if over > 0 then
    local e = redis.call('XRANGE', stream, '-', '+', 'COUNT', over + 1)
    keep = later(keep, e[over + 1] and e[over + 1][1] or after(e[#e][1]))
  end
end
local infos = groups(stream)
if ARGV[3] ~= '' then
  local acked
  if #ARGV > 3 then
    local names = {}
    for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
    acked = keep_from(stream, names, infos)
  else
    local mark = redis.call('GET', KEYS[3])
    acked = mark and after(mark)
  end
  if acked then
    keep = later(keep, cmp(acked, ARGV[3]) < 0 and acked or ARGV[3])
  end
end
local out = {0}
if not keep then return out end
local last = redis.call('XREVRANGE', stream, '(' .. keep, '-', 'COUNT', 1)[1]
if not last then return out end
local retained = redis.call('GET', KEYS[2])
if not retained or cmp(last[1], retained) > 0 then redis.call('SET', KEYS[2], last[1]) end
for i = 4, #ARGV do
  local info, lost = infos[ARGV[i]], 0
  if info then
    local pos = position(stream, ARGV[i], info)
    if cmp(after(pos), keep) < 0 then lost = count_between(stream, pos, '(' .. keep) end
  end
  out[#out + 1] = lost
end
out[1] = redis.call('XTRIM', stream, 'MINID', keep)
return out
]==]
local TRIM_SHA = hex(ngx.sha1_bin(TRIM))

-- An entry id as the admin listener writes it: "0" for none.
local function id_out(id)
    return (id == "0-0" or id == "0") and "0" or id
end

-- Where consumer `name` reads from: its position, and the gap { after, through } when retention
-- removed entries it had not acknowledged; or nil, err.
function _M.consumer(c, name)
    local res, err = with_redis(c, function(red)
        local out, e = script(red, CONSUMERS_SHA, CONSUMERS, 2, c.redis.stream, c.redis.retained, name)
        if not out then
            return nil, "Redis: " .. tostring(e)
        end
        return out
    end)
    if not res then
        return nil, err
    end
    local g = res[1]
    if not g then
        return nil, "the consumer group " .. name .. " is missing from stream " .. c.redis.stream
    end
    local pos = id_out(g[2])
    if g[5] ~= "" then
        return pos, { after = pos, through = g[5] }
    end
    return pos
end

-- Each declared consumer, for /stats: its position, lag (entries not acknowledged: Redis's count
-- of entries not yet delivered to the group and its pending ones; counted up to 100,000 where
-- Redis does not know it), pending entries (read with XREADGROUP, not acknowledged), the entries
-- retention removed before it passed them (since this start, counted by this receiver) and
-- whether it is in such a gap now. nil when Redis cannot be read (the backlog says why).
-- The CONSUMERS script's rows for the declared consumers, or nil when Redis cannot be read.
local function groups_of(c)
    local res = with_redis(c, function(red)
        return script(red, CONSUMERS_SHA, CONSUMERS, 2, c.redis.stream, c.redis.retained, unpack(c.consumers))
    end)
    return type(res) == "table" and res or nil
end

function _M.consumers_stats(c)
    local res = c.consumers and groups_of(c)
    if not res then
        return nil
    end
    local out = {}
    for _, g in ipairs(res) do
        out[g[1]] = { position = id_out(g[2]), pending = tonumber(g[3]), lag = tonumber(g[4]),
                      lost = c.counters:get("consumer_lost:" .. g[1]) or 0, gap = g[5] ~= "" }
    end
    return out
end

-- POST /ack-webhooks?upto=ID[&consumer=NAME]: one script, the group's (ACK_CONSUMER) or without
-- consumers declared the default mark's (ACK_DEFAULT). The entries it passed and its position; or
-- nil, err and the outcome to count.
local function ack_with(c, upto, sha, text, args_of)
    local full = upto:find("-", 1, true) and upto or (upto .. "-" .. MAX_SEQ)
    local res, err = with_redis(c, function(red)
        local out, e = script(red, sha, text, args_of(full))
        if not out then
            return nil, "Redis: " .. tostring(e)
        end
        return out
    end)
    if not res then
        return nil, err, "store_unavailable"
    end
    local passed = tonumber(res[1])
    c.counters:incr("acked", passed, 0)
    return passed, id_out(res[2])
end

function ack_consumer(c, name, upto)
    return ack_with(c, upto, ACK_CONSUMER_SHA, ACK_CONSUMER, function(full)
        return 1, c.redis.stream, name, full, unpack(c.consumers)
    end)
end

function ack_default(c, upto)
    return ack_with(c, upto, ACK_DEFAULT_SHA, ACK_DEFAULT, function(full)
        return 2, c.redis.stream, c.redis.acked, full
    end)
end

-- Each consumer's position by name (the declared ones, or the default one), or nil when Redis
-- cannot be read.
function _M.positions(c)
    local res
    if c.consumers then
        res = groups_of(c)
    else
        local mark = with_redis(c, function(red)
            return red:get(c.redis.acked)
        end)
        res = mark and { { _M.DEFAULT_CONSUMER, mark == ngx.null and "0" or mark } }
    end
    if not res then
        return nil
    end
    local out = {}
    for _, g in ipairs(res) do
        out[g[1]] = id_out(g[2])
    end
    return out
end

-- The entries before `before`, newest first (the range's each and want), at most `limit`: the
-- number listed and the oldest listed (the next page's before), or nil, err.
function _M.range_back(c, before, limit, want, each)
    local r = c.redis
    if limit == 0 or before == "0" then
        return 0, before
    end
    local batch = min(limit or 1000, 1000)
    return with_redis(c, function(red)
        local start = "(" .. before
        local listed, nxt = 0, before
        while true do
            local entries, err = red:xrevrange(r.stream, start, "-", "COUNT", batch)
            if not entries then
                return nil, "Redis XREVRANGE: " .. tostring(err)
            end
            for _, e in ipairs(entries) do
                local f = fields(e[2])
                if not want or want(f.event, f.status, f.live) then
                    listed, nxt = listed + 1, e[1]
                    give(e[1], f, each)
                    if limit and listed >= limit then
                        return listed, nxt
                    end
                end
            end
            if #entries < batch then
                return listed, nxt
            end
            start = "(" .. entries[#entries][1]
        end
    end)
end

-- Retention, once a second: one script, which counts what each consumer loses. nil, err,
-- "unreachable" while Redis cannot be reached (an outage the deliveries' 503s already report).
function _M.trim(c, now)
    local ret = c.retention
    local function minid(age)
        return age and format("%d-0", (now - age) * 1000) or ""
    end
    local maxlen = ret.max_events and tostring(ret.max_events) or ""
    local res, err, why = with_redis(c, function(red)
        local out, e = script(red, TRIM_SHA, TRIM, 3, c.redis.stream, c.redis.retained, c.redis.acked,
                              minid(ret.max_age), maxlen, minid(ret.acked_max_age), unpack(c.consumers or {}))
        if not out then
            return nil, "Redis: " .. tostring(e)
        end
        return out
    end)
    if not res then
        return nil, err, why
    end
    local removed = tonumber(res[1])
    if removed > 0 then
        c.counters:incr("expired", removed, 0)
        for i, name in ipairs(c.consumers or {}) do
            local lost = tonumber(res[i + 1]) or 0
            if lost > 0 then
                c.counters:incr("consumer_lost:" .. name, lost, 0)
            end
        end
    end
    return removed
end

-- A position: "0", "ms" or "ms-seq", each part at most 2^53 - 1 (what Lua and a JSON reader
-- hold exactly; Redis's own limit is 2^64 - 1), or nil.
local function small(digits)
    return digits and (#digits < 16 or (#digits == 16 and digits <= MAX_SEQ))
end
function _M.cursor(text)
    local ms, seq = text:match("^(%d+)%-(%d+)$")
    if not ms then
        ms = text:match("^(%d+)$")
        seq = "0"
    end
    ms, seq = ms and ms:gsub("^0+(%d)", "%1"), seq and seq:gsub("^0+(%d)", "%1")
    if small(ms) and small(seq) then
        return text
    end
    return nil
end

function _M.count(c)
    return with_redis(c, function(red) return red:xlen(c.redis.stream) end) or 0
end

-- The backlog for /stats: the stream's length, first and last ids, and whether Redis answers.
function _M.stats(c)
    local r = c.redis
    local s = { backend = "redis", redis = { address = r.host .. ":" .. r.port, db = r.db, stream = r.stream } }
    local info, err = with_redis(c, function(red)
        local len, e = red:xlen(r.stream)
        if not len then
            return nil, e
        end
        local first = red:xrange(r.stream, "-", "+", "COUNT", 1)
        local last = red:xrevrange(r.stream, "+", "-", "COUNT", 1)
        return { len = len, first = type(first) == "table" and first[1] and first[1][1],
                 last = type(last) == "table" and last[1] and last[1][1] }
    end)
    s.redis.reachable = info ~= nil
    if info then
        s.events, s.oldest_key, s.newest_key = info.len, info.first or ngx.null, info.last or ngx.null
    else
        s.redis.error = err
    end
    s.redis.warnings = c.events:get("redis:warnings")
    s.redis.persistence = c.events:get(PERSISTENCE)
    s.redis.keeps_events = c.events:get(DURABLE) ~= 0
    s.redis.checked = c.events:get(CHECKED)
    return s
end

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

-- Its start, upkeep and stop, as the embedded store has them (store_lifecycle.lua): nothing to put
-- back at start (Redis keeps the stream); in one worker, Redis's settings read at once (cosockets
-- are not allowed in init_by_lua: from a timer); every second, retention in one worker at a time
-- and the persistence read again when check_interval has passed.
function _M.start()
    return true
end

-- The dedup settings, for /stats: Redis keeps each id as a key that expires after the horizon
-- (its memory is Redis's, in INFO memory).
function _M.dedup(c)
    return { replay_horizon = c.dedup_ttl }
end

function _M.start_worker(c)
    if ngx.worker.id() == 0 then
        ngx.timer.at(0, function(premature)
            if not premature then
                _M.check(c, ngx.time() + c.redis.check_interval)
            end
        end)
    end
end

function _M.every_second(c, now)
    lifecycle.retain(c, now)
    local ok, err = _M.check(c, now)
    if not ok then
        ngx.log(ngx.WARN, "up42webhooks: cannot read Redis's persistence: ", err)
    end
end

function _M.stop_worker()
end

-- The last key handed out, for /stats: the newest entry's id (ids are not numbers here).
function _M.last_key(_, backlog)
    return backlog.newest_key
end

-- The shared dicts it uses: its own marks and locks in the events dict (the events are in Redis).
_M.dicts = lifecycle.dicts

-- The store object from its settings (store_lifecycle.new; `redis`: what settings() returned).
function _M.new(settings)
    return lifecycle.new(_M, settings)
end

return _M
