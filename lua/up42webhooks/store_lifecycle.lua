-- What every store backend shares (new: the object; event_fields: what an event is filtered on,
-- and its line; retain: retention once a second), and the embedded store's life beside its
-- requests (the shared dict and its journal): its start (the journal put back into the dicts, said
-- in the log), what it does every second (the journal's fsync, retention, the disk reserve) and
-- its clean stop. store.lua hands these out as its own methods, next to add/range/ack; the Redis
-- store has its own (store_redis.lua).
local journal = require "up42webhooks.journal"
local native = require "up42webhooks.native"
local reply = require "up42webhooks.reply"

local ngx = ngx
local pairs, ipairs = pairs, ipairs
local floor = math.floor
local tonumber = tonumber
local gsub = string.gsub
local setmetatable = setmetatable

local _M = {}

-- The consumer that acknowledgements without a name move when no consumer is declared.
_M.DEFAULT_CONSUMER = "default"

-- A store object of a backend (`methods`, its module) from its settings: the shared dicts' names
-- (dict: the events or, for Redis, the store's own marks; dedup_dict; stats_dict: counters),
-- retention, dedup_ttl (the replay horizon), pending_ttl, and the backend's own (journal,
-- index_path and dedup_capacity: the replay index; redis). The object holds
-- these settings and the dicts they name; its state is in the dicts (and the journal or Redis).
function _M.new(methods, s)
    local self = {
        dict = s.dict, dedup_dict = s.dedup_dict, retention = s.retention,
        dedup_ttl = s.dedup_ttl, pending_ttl = s.pending_ttl, journal = s.journal, redis = s.redis,
        index_path = s.index_path, dedup_capacity = s.dedup_capacity, consumers = s.consumers,
        -- Whose positions are kept: the declared consumers, or the default one.
        ackers = s.consumers or { _M.DEFAULT_CONSUMER },
        events = ngx.shared[s.dict], seen = ngx.shared[s.dedup_dict], counters = ngx.shared[s.stats_dict],
    }
    return setmetatable(self, { __index = methods })
end

-- The library's live mode (1, 0, -1) as the record writes it.
local LIVE = { [1] = "true", [0] = "false", [-1] = "" }

-- A delivery's event, status, live mode ("true", "false" or "") and its line (the body with the
-- tabs and line breaks between its tokens as spaces: a stored event is one line of the dump; JSON
-- has them nowhere else, so the library says whether there are any), from the library's delivery
-- struct `d`.
function _M.event_fields(d, body)
    local event, status = native.delivery_text(d)
    return event, status, LIVE[tonumber(d.live)], d.line_breaks and gsub(body, "[\t\r\n]", " ") or body
end

-- The shared dicts the store uses, by what they hold, for /stats.
function _M.dicts(c)
    return { events = c.events, dedup = c.seen }
end

-- Ids of the journal the index could not take (dedup_capacity was lowered below what a window
-- of the journal holds): said loudly, since a retry of those deliveries would be stored again.
local function ids_not_kept(c, n)
    if n and n > 0 then
        ngx.log(ngx.ERR, "up42webhooks: replay index: ", n, " delivery ids of the journal do not fit in ",
                "dedup_capacity (", c.dedup_capacity, "): a retry of those deliveries would be stored again; ",
                "raise dedup_capacity")
        c.counters:incr("replay_index_not_kept", n, 0)
    end
end

-- The marks an older version kept in the events dict, met at a reload that upgraded the module:
-- copied into the dedup dict, where this version keeps them. The old workers may still hand out
-- a few keys from the old counter while they finish their requests, so the new one starts well
-- above it (keys may jump, never repeat: readers pass the gap).
local MOVED = { "count", "keys:reserved", "keys:start_n", "keys:start_top", "journal:segment" }
local MOVED_KEY_MARGIN = 10000
local function move_marks(c)
    local old_n = c.events:get("n")
    if c.seen:get("n") ~= nil or old_n == nil or c.events == c.seen then
        return
    end
    for _, k in ipairs(MOVED) do
        local v = c.events:get(k)
        if v ~= nil then
            c.seen:safe_set(k, v)
        end
    end
    c.seen:safe_set("n", old_n + MOVED_KEY_MARGIN)
    ngx.log(ngx.NOTICE, "up42webhooks: the store's marks moved to lua_shared_dict ", c.dedup_dict,
            "; new keys go on from ", old_n + MOVED_KEY_MARGIN + 1)
end

local REPLAYED = "journal:replayed" -- in the events dict: a reload (HUP) must not replay again
local STARTED = "store:started" -- in the dedup dict: this master has started the store before

-- Opens the replay index (in init_by_lua: the master maps it, and its workers inherit the
-- mapping). The first start of a master makes it anew, to be filled from the journal: the journal
-- is the copy of every id it holds, it is read at every start anyway, and a damaged slot is not
-- something the file's header could tell. A reload keeps it, unless it was made for other
-- settings: then it is filled from the journal now. Without a journal the ids last as long as
-- the events do: until the next start. Returns true, or nil, err.
local function open_index(c)
    local first = not c.seen:get(STARTED)
    if first then
        os.remove(c.index_path)
    end
    local index, how = native.index_open(c.index_path, c.dedup_capacity, c.dedup_ttl)
    if not index then
        return nil, how .. " (it takes about " .. math.ceil(c.dedup_capacity * 88 / 1048576)
                    .. " MiB for dedup_capacity " .. c.dedup_capacity .. ": make room there, or lower "
                    .. "dedup_capacity, UP42_WEBHOOK_DEDUP_CAPACITY)"
    end
    c.index = index
    if not c.seen:safe_set(STARTED, true) then
        return nil, "lua_shared_dict " .. c.dedup_dict .. " has no room for the store's marks"
    end
    if not first and how ~= "existing" and c.journal then
        ngx.update_time()
        local started = ngx.now()
        local n, err, not_kept = c:remember_journal_ids(ngx.time())
        if not n then
            return nil, "journal: " .. err
        end
        ids_not_kept(c, not_kept)
        ngx.update_time()
        -- warn: at a reload this is unusual (the file was removed, or the settings changed).
        ngx.log(ngx.WARN, "up42webhooks: replay index ", c.index_path, " was ", how, ": ", n,
                " ids put back from the journal in ", ("%.3f"):format(ngx.now() - started), " s")
    end
    return true
end

-- What a replay found, in the log: one line each for what was restored, damaged, cut short, lost
-- or left out; and in the counters.
local function report(c, s, took)
    local log = ngx.log
    log(ngx.NOTICE, "up42webhooks: journal replayed: ", s.restored, " events from ", s.records,
        " records in ", s.segments, " segments (", s.bytes, " bytes) in ", ("%.3f"):format(took), " s; ",
        s.ids, " delivery ids inside the replay horizon put in the replay index (", s.index_ms, " ms of it)")
    if s.corrupt > 0 then
        log(ngx.ERR, "up42webhooks: journal: ", s.corrupt, " damaged stretches skipped (records lost)")
    end
    if s.torn_bytes > 0 then
        log(ngx.WARN, "up42webhooks: journal: ", s.torn_bytes, " bytes of an append cut short skipped",
            s.torn_cut > 0 and " and cut off the end of their segment" or "")
    end
    if s.lost_from then
        log(ngx.ERR, "up42webhooks: journal: ", c.journal.dir, " ends at key ", s.lost_from - 1,
            ", but keys up to ", s.lost_to, " were handed out before the last clean stop: the events of ",
            "keys ", s.lost_from, " to ", s.lost_to, " that were not acknowledged are lost (",
            s.records, " records left in ", s.segments, " segments); new events go on from key ",
            c.seen:get("n") + 1)
    end
    if s.no_room > 0 then
        log(ngx.ERR, "up42webhooks: journal: ", s.no_room, " events did not fit in lua_shared_dict ",
            c.dict, ": they stay in the journal; give the dict more memory")
    end
    for k, v in pairs{ journal_corrupt = s.corrupt, journal_torn_bytes = s.torn_bytes,
                       expired = s.expired, replay_no_room = s.no_room } do
        if v > 0 then c.counters:incr(k, v, 0) end
    end
    c.counters:set("journal_replayed_events", s.restored)
    c.counters:set("journal_replay_ms", floor(took * 1000 + 0.5))
    c.counters:set("journal_replay_index_ms", s.index_ms)
    ids_not_kept(c, s.ids_not_kept)
end

-- Each declared consumer that has no position yet (a first start without a journal, or one newly
-- declared at a reload) starts at the low mark: nothing dropped before it existed is its loss.
local function start_consumers(c)
    for _, name in ipairs(c.consumers or {}) do
        c.seen:safe_add(journal.POSITION .. name, c.events:get("low") or 0)
    end
end

-- In init_by_lua, after configure{}: opens the replay index; the first start of a master puts the
-- journal back into the dicts and the index before any worker accepts a request, and makes the
-- disk reserve. nil, err when the index cannot be opened or the journal read.
function _M.start(c)
    move_marks(c)
    local opened, ierr = open_index(c)
    if not opened then
        return nil, ierr
    end
    if not c.journal then
        start_consumers(c)
        return true
    end
    if not c.events:get(REPLAYED) then
        local started = ngx.now()
        local s, err = c:replay(ngx.time())
        if not s then
            return nil, "journal: " .. err
        end
        c.events:set(REPLAYED, true)
        ngx.update_time()
        report(c, s, ngx.now() - started)
    end
    start_consumers(c)
    local made, err = journal.make_reserve(c)
    if not made then
        ngx.log(ngx.WARN, "up42webhooks: journal: no reserve of disk space for acknowledgements: ", err)
    end
    return true
end

-- In init_worker: nothing to start beyond the worker's timer.
function _M.start_worker()
end

-- Retention (the store's trim), in one worker at a time and once a second: every backend's. True when
-- this worker ran it.
function _M.retain(c, now)
    if not c.events:safe_add("retention:lock", ngx.worker.pid(), 5) then
        return false
    end
    local last = c.events:get("retention:last") or 0
    local ran = now - last >= 1
    if ran then
        c.events:set("retention:last", now)
        local removed, err, why = c:trim(now)
        if why == "unreachable" then
            -- The outage itself: at warn, once a log window, as the deliveries' 503s log it.
            reply.log_limited(ngx.WARN, "retention unreachable", "up42webhooks: retention: " .. err)
        elseif not removed then
            ngx.log(ngx.ERR, "up42webhooks: retention: ", err)
        end
    end
    c.events:delete("retention:lock")
    return ran
end

-- The replay index's current window at 80 % of the ids dedup_capacity sizes it for: a busier day
-- than it was set for. Said once a window and counted; the window takes half as many again before
-- a new delivery is refused (503 store_full, which senders retry).
local function watch_index(c, now)
    local u = native.index_usage(c.index, now)
    if not u or u.per_window == 0 or u.window_ids * 5 < u.per_window * 4 then
        return
    end
    local window = floor(now / u.window_secs)
    if c.events:get("index:warned") == window then
        return
    end
    c.events:set("index:warned", window)
    reply.count("replay_index_window_warned")
    ngx.log(ngx.WARN, "up42webhooks: the replay index's window of ", u.window_secs, " s holds ", u.window_ids,
            " new delivery ids, 80 % or more of the ", u.per_window, " that dedup_capacity (", c.dedup_capacity,
            ") sizes it for; it takes ", u.window_limit, ", then refuses new deliveries (503 store_full): ",
            "raise dedup_capacity to about 3 times the deliveries of a busy day (docs/operations.md)")
end

-- Every second, in each worker: what this worker wrote is synced (fsync = "interval"); retention
-- runs in one worker at a time, and that worker makes the disk reserve again once a minute, where
-- a full disk used it, and watches the replay index's window.
function _M.every_second(c, now)
    if c.journal and c.journal.fsync == "interval" then
        journal.sync()
    end
    if _M.retain(c, now) then
        if c.index then
            watch_index(c, now)
        end
        if c.journal and now % 60 == 0 then
            journal.make_reserve(c)
        end
    end
end

-- In exit_worker: a clean stop is marked beside the journal, so that the next start can tell a
-- journal that lost its end.
function _M.stop_worker(c)
    if c.journal then
        journal.mark_clean_stop(c)
    end
end

-- The last key handed out, for /stats.
function _M.last_key(c)
    return c.seen:get("n") or 0
end

return _M
