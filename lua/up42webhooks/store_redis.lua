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
--
-- Its parts: store_redis_settings (the address and the client), store_redis_connection (the pool
-- and Redis's persistence), store_redis_scripts (what runs in Redis).
local redis_settings = require "up42webhooks.store_redis_settings"
local connection = require "up42webhooks.store_redis_connection"
local scripts = require "up42webhooks.store_redis_scripts"
local lifecycle = require "up42webhooks.store_lifecycle"
local native = require "up42webhooks.native"

local ngx = ngx
local floor, min = math.floor, math.min
local unpack = unpack
local format = string.format
local json_string = require("cjson.safe").encode

local _M = { START = "0", CURSOR = "a stream entry id (milliseconds-sequence, or 0), each part up to 9007199254740991" }

local with_redis, script, hex = connection.with_redis, scripts.run, scripts.hex
-- The stream entry's field names, the library's (src/format/entry.rs).
local E = native.ENTRY
local PERSISTENCE, DURABLE, CHECKED = connection.PERSISTENCE, connection.DURABLE, connection.CHECKED
local ADD, ADD_SHA, TRIM, TRIM_SHA = scripts.ADD, scripts.ADD_SHA, scripts.TRIM, scripts.TRIM_SHA
local CONSUMERS, CONSUMERS_SHA = scripts.CONSUMERS, scripts.CONSUMERS_SHA
local ACK_CONSUMER, ACK_CONSUMER_SHA = scripts.ACK_CONSUMER, scripts.ACK_CONSUMER_SHA
local ACK_DEFAULT, ACK_DEFAULT_SHA = scripts.ACK_DEFAULT, scripts.ACK_DEFAULT_SHA

_M.settings, _M.sentinel_settings = redis_settings.settings, redis_settings.sentinel_settings
_M.check = connection.check

-- The largest part of an id that Lua and JSON readers hold exactly: 2^53 - 1.
local MAX_SEQ = "9007199254740991"

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
    local delivery = d.delivered.delivery
    local event, status, live, line = lifecycle.event_fields(delivery, d.body)
    local id, digest = native.delivery_id(delivery), hex(native.body_sha256(delivery))
    local envelope = native.delivered_envelope(d.delivered)
    -- Retention by count trims as an entry is added (MAXLEN ~), unless consumers are declared: then
    -- it runs once a second (trim), which counts what each consumer loses.
    local maxlen = (c.retention.max_events and not c.consumers) and tostring(c.retention.max_events) or ""
    local res, err = with_redis(c, function(red)
        -- After connecting: a new connection has just read Redis's persistence.
        if r.require_persistence and c.events:get(DURABLE) == 0 then
            return NOT_DURABLE
        end
        return script(red, ADD_SHA, ADD, 2, r.seen_prefix .. id, r.stream, digest,
                      c.dedup_ttl, maxlen, E.json, line, E.event, event, E.status, status,
                      E.live, live, E.sender, d.sender or "up42", E.id, id,
                      E.time, d.now, E.envelope, envelope)
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
    local envelope, sender = f[E.envelope], f[E.sender]
    if not envelope and sender then
        envelope = '"sender":' .. json_string(sender)
    end
    each(id, f[E.json] or "", nil, tonumber(f[E.time]), envelope, f[E.event], f[E.status], f[E.live])
end

-- The events after entry `since`, in stream order: each(id, line, nil, time, envelope, event,
-- status, live) for those that pass `want`, at most `limit` of them (an entry written before the
-- envelope has its sender's name in its place). Returns the number listed and `next` (the last id
-- read past), or nil, err.
-- The entries after `from` (forward) or before it (`back`, newest first): at most `limit` of
-- those that pass `want`, each handed to `each`; the number listed and where the next page starts
-- (forward: the last id read past; back: the last id listed), or nil, err.
local function walk(c, from, limit, want, each, back)
    local r = c.redis
    if limit == 0 or (back and from == "0") then
        return 0, from
    end
    local batch = min(limit or 1000, 1000)
    local command, stop = back and "xrevrange" or "xrange", back and "-" or "+"
    return with_redis(c, function(red)
        local start = (not back and from == "0") and "-" or ("(" .. from)
        local listed, nxt = 0, from
        while true do
            local entries, err = red[command](red, r.stream, start, stop, "COUNT", batch)
            if not entries then
                return nil, "Redis " .. command:upper() .. ": " .. tostring(err)
            end
            for _, e in ipairs(entries) do
                local f = fields(e[2])
                if not back then
                    nxt = e[1]
                end
                if not want or want(f[E.event], f[E.status], f[E.live]) then
                    listed = listed + 1
                    if back then
                        nxt = e[1]
                    end
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

function _M.range(c, since, limit, want, each)
    return walk(c, since, limit, want, each, false)
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
-- An entry id as the admin listener writes it: "0" for none.
local function id_out(id)
    return (id == "0-0" or id == "0") and "0" or id
end

-- Where consumer `name` reads from: its position, and the gap { after, through } when retention
-- removed entries it had not acknowledged; or nil, err.
function _M.consumer(c, name)
    local res, err = with_redis(c, function(red)
        return script(red, CONSUMERS_SHA, CONSUMERS, 2, c.redis.stream, c.redis.retained, name)
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
        return script(red, sha, text, args_of(full))
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
    return walk(c, before, limit, want, each, true)
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
        return script(red, TRIM_SHA, TRIM, 3, c.redis.stream, c.redis.retained, c.redis.acked,
                      minid(ret.max_age), maxlen, minid(ret.acked_max_age), unpack(c.consumers or {}))
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
