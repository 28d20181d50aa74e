-- The embedded store: events in a lua_shared_dict, made durable by the journal, deduplicated by
-- the replay index (src/index.rs: every id stored within the replay horizon, in a file every
-- worker maps). `store.new(settings)` makes the object; its methods (add, range, wait, count,
-- cursor, ack, trim, stats, dicts, replay, and start/start_worker/every_second/stop_worker/last_key
-- from store_lifecycle.lua) are what another backend gives (store_redis.lua): docs/receiver.md.
--
-- The events dict holds each event under its key as the library's record (src/format/record.rs writes
-- and reads it: the time, event, status, live mode, envelope and line, the line compressed when
-- that is smaller), with a TTL while it is pending (claimed, not yet answered) and none once
-- committed, and the store's own
-- entries "low" (every key at or below it is gone: acknowledged or past retention), "settled",
-- the journal's segment. The dedup dict holds the marks every delivery reads or moves: "n" (the
-- last key handed out), "count" (events held), the journal's key reservation, and the "gap:<key>"
-- marks of keys whose delivery was refused after it took them. It is small: each access to a
-- shared dict walks its tree, and one of a million events is twenty cache misses deep.
--
-- The order of a delivery's writes is what makes a crash harmless: the id is claimed in the index
-- (pending, with a deadline) by the library call that verifies the delivery (native.deliver), a
-- key taken, the event reserved in the dict (short TTL: the memory for it is taken here, so a full
-- store refuses before anything is written), appended to the journal (and synced when fsync =
-- "always") and the id's claim committed (stored) by one more library call, the TTL lifted, and
-- only then 200 answered.
-- A crash before the journal append leaves only a claim whose deadline passes: the sender's retry
-- is stored. A crash after it leaves a journal record that recovery restores (and the index is
-- rebuilt from the journal at every start): the retry is a duplicate of an event that is stored.
-- A failure after the append writes a cancel record before the 503.
local journal = require "up42webhooks.journal"
local native = require "up42webhooks.native"
local shm = require "up42webhooks.shm"
local lock = require "up42webhooks.lock"
local lifecycle = require "up42webhooks.store_lifecycle"

local RECORD = journal.RECORD
local tonumber, select, ipairs, pcall = tonumber, select, ipairs, pcall
local max, min = math.max, math.min

local _M = {}

local function noop() end

-- An entry's state (state_of): committed, or pending (written, not yet in the journal).
local C_, P_ = "committed", "pending"
local deliver_cancel = native.deliver_cancel
-- A gap (a key handed out that holds nothing) is passed over by readers once a later event has
-- been committed this long: a delivery takes its key and reserves its event in microseconds.
local SETTLED = 2
-- How long an abandoned key is marked as such for readers.
local GAP_TTL = 600

local function count(c, what, n)
    c.counters:incr(what, n or 1, 0)
end

-- A key that will hold nothing: its delivery was refused after it took the key. Readers pass it
-- at once (the mark is in the dedup dict, which has room when the events dict is full); the id's
-- claim is given up, free for the sender's retry. When the event may be in the journal already,
-- a cancel record says it is not stored, so that recovery does not bring it back.
local function abandon(c, key, now, journaled)
    if journaled and c.journal then
        journal.append(c, RECORD.cancel, 0, key, now)
    end
    c.events:delete(key)
    c.seen:safe_set("gap:" .. key, true, GAP_TTL)
    deliver_cancel()
end

-- Which dict refused a write, for the 503's log line: an operator enlarges that one.
local function full(dict, what, err)
    return "the " .. what .. " dict (lua_shared_dict " .. dict .. ") has no room: " .. tostring(err)
end

-- The 503's log line when the index refuses a new id: the setting that makes room.
local function index_full(c)
    local u = native.index_usage(c.index, ngx.time()) or {}
    return "the replay index " .. c.index_path .. " holds " .. tostring(u.window_ids) .. " new ids in "
           .. tostring(u.window_secs) .. " s, as many as dedup_capacity (" .. c.dedup_capacity
           .. " over the replay horizon) allows (half as many again as it is sized for): raise dedup_capacity"
end

local reserve -- below, with the consumers: the memory for an event, made by eviction if need be

-- Stores a delivery native.deliver verified and claimed: `d` holds its claim (what the replay
-- index found), `delivered` (the library's struct: the record to keep; read before anything
-- yields), `body` and `now`. Returns its key, or nil and why: "duplicate" (the same id and body
-- are stored), "id_conflict" (the id is stored with another body), "in_flight" (the same
-- delivery is being written now), "full" (the dicts or the index have no room), "journal" (it
-- could not be written), and a detail. Nothing here yields: the claim and the record (in the
-- worker's handle) are done with before another request of this worker runs.
function _M.add(c, d)
    local events = c.events
    -- The id was claimed with the delivery's verification: a retry (a duplicate) costs nothing more.
    local claimed = d.claim
    if claimed ~= "new" then
        if claimed == "full" then
            return nil, "full", index_full(c)
        end
        return nil, claimed or "error", "the delivery was not claimed in the replay index"
    end
    local record = d.delivered.record
    local key, ierr = c.seen:incr("n", 1, 0)
    if not key then
        deliver_cancel()
        return nil, "full", full(c.dict, "event", ierr)
    end
    local writer, segment
    if c.journal then
        local reserved, rerr = journal.reserve_key(c, key)
        if not reserved then
            abandon(c, key)
            return nil, "journal", rerr
        end
        -- The writer and its segment's number, or nil and why.
        writer, segment = journal.writer(c)
        if not writer then
            abandon(c, key)
            return nil, "journal", segment
        end
    end
    -- The record is written once, as it stays, with a short TTL: that reservation takes
    -- the memory before the journal is written (a full store refuses first), readers wait at an
    -- entry that still has a TTL, and it vanishes if this worker dies. Once the event is in the
    -- journal the TTL is lifted, which rewrites nothing. Without a journal nothing comes between
    -- the two: the record is written committed.
    local ok, err = reserve(c, key, record.ptr, record.len, writer and c.pending_ttl or 0, d.now)
    if not ok then
        abandon(c, key)
        return nil, "full", full(c.dict, "event", err)
    end
    -- The journal's record (framed by the library from the delivery it holds), then the id stored.
    -- (Through the module's table: the fault tests stand in its place.)
    local size, kept, maybe = native.deliver_commit(key, writer, writer and c.journal.fsync == "always", d.body, d.now)
    if not size then
        abandon(c, key, d.now, maybe)
        return nil, "journal", kept
    end
    if writer then
        journal.written(c, segment, size, d.now)
        if not events:expire(key, 0) then
            -- The reservation expired while the journal was written (a stalled disk): take the
            -- memory again, or take the event back (and its id: deliver_cancel after the commit).
            ok, err = reserve(c, key, record.ptr, record.len, 0, d.now)
            if not ok then
                abandon(c, key, d.now, true)
                return nil, "full", full(c.dict, "event", err)
            end
        end
    end
    c.seen:incr("count", 1, 0)
    if not kept then
        ngx.log(ngx.WARN, "up42webhooks: stored event ", key, " after its id's claim passed its deadline ",
                "(pending_ttl, ", c.pending_ttl, " s) and a retry took it over: that retry may be stored too")
    end
    return key
end

-- Before a delivery is verified: the one step of storing it that may wait (yield), here because
-- the verified delivery, its index claim and its record live in this worker's buffers from then
-- until add returns, and another request of the worker would reuse them. Moves the journal's key
-- mark ahead of the keys about to be handed out (waiting while another worker writes it). True,
-- or nil, why ("journal") and a detail.
function _M.ready(c)
    if c.journal then
        local ahead, err = journal.reserve_ahead(c)
        if not ahead then
            return nil, "journal", err
        end
    end
    return true
end

-- The fields of a stored value, read by the library (src/format/record.rs owns the format): time,
-- whether an older version marked it pending, whether its line is compressed, event, status,
-- live, the line or its block (line_of reads it; false when asked to skip it) and the envelope
-- (nil in an event of an older journal); nil when it is not a record.
local parse = native.record_fields

-- The line of a stored value from what parse returned.
local function line_of(compressed, line)
    if compressed then
        return native.record_line(line)
    end
    return line
end

-- A stored value's time.
local time_of = native.record_time

-- An entry's state: pending (P_) while it has a TTL (or an older version marked it so), else
-- committed (C_).
local function state_of(events, k, pending)
    if pending then
        return P_
    end
    return (events:ttl(k) or 0) > 0 and P_ or C_
end

-- The first key after `k` that holds something, and its value, looking at most up to `last`.
local function next_present(events, k, last)
    for j = k + 1, last do
        local v = events:get(j)
        if v then
            return j, v
        end
    end
end

-- The readable events after key `since`, in key order: calls each(key, line, value, time,
-- envelope, event, status, live) for those that pass `want(event, status, live)` (nil: all), at
-- most `limit` of them; `each` returning true stops the reading before that event. Reading also
-- stops before an event still being written, so that a reader that moves its cursor to the
-- returned `next` never skips one. Returns the number listed
-- and `next`: the last key read past (listed or not), or nil, err when a stored line cannot be
-- read back. With `skip_lines` (the store's own readers, which only look at keys and values)
-- `each` gets no line, and no compressed line is decompressed.
function _M.range(c, since, limit, want, each, now, skip_lines)
    local events, seen = c.events, c.seen
    local low = events:get("low") or 0
    local last = seen:get("n") or 0
    local settled = events:get("settled") or 0
    local k = max(since, low)
    local nxt, listed = k, 0
    now = now or ngx.time()
    while k < last and (not limit or listed < limit) do
        k = k + 1
        local v = events:get(k)
        if not v and k > settled and not seen:get("gap:" .. k) then
            -- A key taken a moment ago whose event is not reserved yet, or one whose worker died:
            -- pass it once a later event has been committed for a while; otherwise wait here.
            local j, later = next_present(events, k, last)
            if not j then
                break
            end
            local t, pending = parse(later, true)
            if not t or state_of(events, j, pending) ~= C_ or t > now - SETTLED then
                break
            end
            k, v = j, later
        end
        local state, time, pending, compressed, event, status, live, line, envelope
        if v then
            time, pending, compressed, event, status, live, line, envelope = parse(v, skip_lines)
            state = time and state_of(events, k, pending)
        end
        if state == P_ then
            break
        end
        if not v then
            nxt = k -- a gap known to stay empty
        elseif state == C_ then
            if not want or want(event, status, live) then
                local text, err
                if not skip_lines then
                    text, err = line_of(compressed, line)
                    if not text then
                        return nil, "event " .. k .. ": " .. tostring(err)
                    end
                end
                if each(k, text, v, time, envelope, event, status, live) then
                    break
                end
                listed = listed + 1
            end
            nxt = k
        end
    end
    return listed, nxt
end

-- The readable events before key `before`, newest first: each(...) as range gives it, for those
-- that pass `want`, at most `limit` of them. Events still being written are passed over (a page
-- of older events is for people; consumers read forwards). Returns the number listed and `next`:
-- the oldest key listed (the next page's before), or `before` when none was; or nil, err.
function _M.range_back(c, before, limit, want, each)
    local events = c.events
    local low = events:get("low") or 0
    local k = min(before, (c.seen:get("n") or 0) + 1)
    local listed, nxt = 0, before
    while k > low + 1 and (not limit or listed < limit) do
        k = k - 1
        local v = events:get(k)
        local time, pending, compressed, event, status, live, line, envelope
        if v then
            time, pending, compressed, event, status, live, line, envelope = parse(v)
        end
        if time and state_of(events, k, pending) == C_ then
            if not want or want(event, status, live) then
                local text, err = line_of(compressed, line)
                if not text then
                    return nil, "event " .. k .. ": " .. tostring(err)
                end
                each(k, text, v, time, envelope, event, status, live)
                listed, nxt = listed + 1, k
            end
        end
    end
    return listed, nxt
end

-- Waits (yielding, never spinning) until something after `since` can be read, `seconds` pass or
-- `stop()` says to end (the client went away, the worker exits), each heard within 10 ms.
-- A look costs one read of the key counter while no key was handed out after `since`; the pause
-- between looks grows from 2 to 10 ms, so that a consumer waiting here hears of a new event within
-- a few milliseconds (the forwarder's latency), at a hundred cheap looks a second per waiter.
local MAX_PAUSE = 0.01
function _M.wait(c, since, seconds, stop)
    ngx.update_time()
    local deadline = ngx.now() + seconds
    local pause = 0.002
    -- One readable event after `since` is enough: the reading stops there.
    while not (((c.seen:get("n") or 0) > since and select(2, _M.range(c, since, 1, nil, noop, nil, true)) > since)
               or (stop and stop())) do
        -- ngx.now() is the event loop's cached clock: refresh it, and never sleep less than a
        -- millisecond (a sleep of 0 returns at once, and the loop would spin).
        ngx.update_time()
        local left = deadline - ngx.now()
        if left < 0.001 then
            return
        end
        ngx.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE)
    end
end

-- Positions in this store are keys: whole numbers, at most 2^53 - 1 (what a double, and so Lua
-- and a JSON reader, hold exactly).
_M.START = 0
_M.CURSOR = "a key (a whole number up to 9007199254740991)"
function _M.cursor(text)
    local n = text:match("^%d+$") and tonumber(text)
    if n and n <= 9007199254740991 then
        return n
    end
    return nil
end

-- The number of events held.
function _M.count(c)
    return c.seen:get("count") or 0
end

-- Removes every event with a key up to `upto` (no further than readers can see), the journal
-- first: one drop record. `reason` 2 retention, 3 evicted (the store was full; 1, acknowledged,
-- is what older versions wrote); `keep(value, key)` may stop the drop at an event to keep;
-- `removed(key)` hears of each event removed. Returns the events removed and the new low mark, or
-- nil, err.
local function drop_through_locked(c, upto, reason, keep, now, removed_key)
    local events = c.events
    local low = events:get("low") or 0
    if upto <= low then
        return 0, low
    end
    -- As far as readers can see, up to `upto`, and before the first event to keep: the reading
    -- stops there, rather than scanning the whole store first.
    local _, passed = _M.range(c, low, nil, nil, function(k, _, v)
        return k > upto or (keep and keep(v, k))
    end, now, true)
    local through = min(passed, upto)
    -- At or below the mark: nothing to do, and the mark never goes back.
    if through <= low then
        return 0, low
    end
    if c.journal then
        local ok, err = journal.append(c, RECORD.drop, reason, through, now)
        if not ok then
            return nil, err
        end
    end
    events:set("low", through)
    local removed = 0
    for k = low + 1, through do
        if events:get(k) then
            events:delete(k)
            removed = removed + 1
            if removed_key then
                removed_key(k)
            end
        end
    end
    c.seen:incr("count", -removed, 0)
    return removed, through
end

-- One drop or acknowledgement at a time across the workers (retention, an eviction, two
-- consumers): each reads a mark and sets it higher, and two at once could otherwise set it back.
-- The lock is in the stats dict: the events dict may be full.
local LOCK = "lock:low"
local function locked(f, c, ...)
    local a, b, d = lock.with(c.counters, LOCK, 200, 0.005, f, c, ...)
    if a == false then
        return nil, "another acknowledgement or retention is running: retry"
    end
    return a, b, d
end

-- Consumers: each has a position, the highest key it acknowledged, kept in the marks and, with a
-- journal, as a position record. The declared ones (configure{consumers}), or when none is
-- declared the one unnamed acknowledgements move, "default". A position is only a position: an
-- event stays readable until retention removes it, or until the memory store, full, evicts the
-- oldest events every consumer has passed.
local POSITION = journal.POSITION
local DEFAULT = lifecycle.DEFAULT_CONSUMER
_M.DEFAULT_CONSUMER = DEFAULT

local function position_of(c, name)
    return c.seen:get(POSITION .. name) or c.events:get("low") or 0
end

-- The slowest consumer's position: every event up to it has been acknowledged by all.
local function slowest(c)
    local m
    for _, name in ipairs(c.ackers) do
        local p = position_of(c, name)
        if not m or p < m then
            m = p
        end
    end
    return m
end

-- Each consumer's position, by name (the dump's count line, /stats, the inbox page's marks).
function _M.positions(c)
    local out = {}
    for _, name in ipairs(c.ackers) do
        out[name] = position_of(c, name)
    end
    return out
end

-- Where consumer `name` reads from: its position, and when retention has dropped events it had
-- not acknowledged, the gap { after = its position, through = the low mark }.
function _M.consumer(c, name)
    local pos = position_of(c, name)
    local low = c.events:get("low") or 0
    if pos < low then
        return pos, { after = pos, through = low }
    end
    return pos
end

-- Moves consumer `name` to `upto` (no further than readers can see; never back): the events it
-- passed and its new position.
local function consumer_ack_locked(c, name, upto, now)
    local pos = position_of(c, name)
    local passed, through = _M.range(c, pos, nil, nil, function(k)
        return k > upto
    end, now, true)
    through = min(through, upto)
    if through <= pos then
        return 0, pos
    end
    if c.journal then
        local ok, err = journal.append(c, RECORD.position, 0, through, now, nil, name)
        if not ok then
            return nil, err
        end
    end
    c.seen:set(POSITION .. name, through)
    return passed, through
end

-- POST /ack-webhooks?upto=K[&consumer=NAME]: the consumer (without a name, the default one, when
-- none is declared) has processed everything up to K. The events it passed and its position, or
-- nil, why and the outcome to count.
function _M.ack(c, upto, now, consumer)
    local passed, through = locked(consumer_ack_locked, c, consumer or DEFAULT, upto, now)
    if not passed then
        return nil, through, "journal_error"
    end
    count(c, "acked", passed)
    return passed, through
end

-- The memory store is full: the oldest events every consumer has acknowledged make room, a batch
-- at a time, never one a consumer has not passed. In a delivery, which must not wait: the lock
-- is tried once. The events removed, or nil.
local EVICT_BATCH = 64
local function evict_locked(c, now)
    return drop_through_locked(c, min(slowest(c), (c.events:get("low") or 0) + EVICT_BATCH), 3, nil, now)
end

local function evict(c, now)
    -- One try, no wait (lock.with does not pause after its last try); an error is logged, and
    -- the delivery refused as full.
    local ok, removed = pcall(lock.with, c.counters, LOCK, 1, 0, evict_locked, c, now)
    if not ok then
        ngx.log(ngx.ERR, "up42webhooks: eviction: ", removed)
        return nil
    end
    if removed and removed > 0 then
        count(c, "evicted", removed)
        return removed
    end
end

-- The reservation of a delivery's record, making room by eviction when the store is full.
local EVICT_ROUNDS = 8
function reserve(c, key, record, record_len, ttl, now)
    local ok, err = shm.safe_add(c.events, key, record, record_len, ttl)
    for _ = 1, EVICT_ROUNDS do
        if ok or err ~= "no memory" or not evict(c, now) then
            break
        end
        ok, err = shm.safe_add(c.events, key, record, record_len, ttl)
    end
    return ok, err
end

-- Each declared consumer, for /stats: its position, its lag (the events held after it: counted
-- key by key up to LAG_SCAN keys past the oldest held, beyond that the keys handed out after it),
-- the events retention dropped before it acknowledged them (since this start), and whether it is
-- in such a gap now.
local LAG_SCAN = 100000
function _M.consumers_stats(c)
    if not c.consumers then
        return nil
    end
    local low = c.events:get("low") or 0
    local n, held = c.seen:get("n") or 0, c.seen:get("count") or 0
    local out = {}
    for _, name in ipairs(c.consumers) do
        local pos = position_of(c, name)
        local lag = held
        if pos > low then
            if pos - low <= LAG_SCAN then
                for k = low + 1, pos do
                    if c.events:get(k) then
                        lag = lag - 1
                    end
                end
            else
                lag = n - pos
            end
        end
        out[name] = { position = pos, lag = max(lag, 0), lost = c.counters:get("consumer_lost:" .. name) or 0,
                      gap = pos < low }
    end
    return out
end

-- Retention: drops the oldest events past max_age, those every consumer has acknowledged past
-- acked_max_age, and beyond max_events; then old segments.
function _M.trim(c, now)
    local r = c.retention
    local over = r.max_events and (c.seen:get("count") or 0) - r.max_events or 0
    local oldest = r.max_age and now - r.max_age
    local oldest_acked = r.acked_max_age and now - r.acked_max_age
    local dropped = 0
    -- Retention wins over the consumers' positions (the store never fills up for good); what it
    -- drops that a consumer had not acknowledged is counted for that consumer. The positions are
    -- read under the drop's lock, which their acknowledgements take too.
    local behind, lost, acked
    local removed, through = locked(drop_through_locked, c, c.seen:get("n") or 0, 2, function(v, k)
        local t = time_of(v)
        acked = acked or slowest(c)
        local acked_old = oldest_acked and k <= acked and t and t < oldest_acked
        if dropped < over or (oldest and t and t < oldest) or acked_old then
            dropped = dropped + 1
            return false
        end
        return true
    end, now, c.consumers and function(k)
        if not behind then
            behind, lost = {}, {}
            for i, name in ipairs(c.consumers) do
                behind[i], lost[i] = position_of(c, name), 0
            end
        end
        for i = 1, #behind do
            if k > behind[i] then
                lost[i] = lost[i] + 1
            end
        end
    end)
    if not removed then
        return nil, through
    end
    if removed > 0 then
        count(c, "expired", removed)
        for i = 1, lost and #lost or 0 do
            if lost[i] > 0 then
                count(c, "consumer_lost:" .. c.consumers[i], lost[i])
            end
        end
    end
    if c.journal then
        local segs, err = journal.remove_old_segments(c, through, now)
        if not segs then
            return nil, err
        end
    end
    return removed
end

-- The ids a journal holds, gathered as its records are read: the last event of each id (its
-- key, time and body digest), less those whose delivery was cancelled. The replay index is built
-- from them at every start.
local function journal_ids(horizon)
    local last_key, last_time, last_digest, id_of = {}, {}, {}, {}
    local ids = {}
    -- An event record. Returns the key of an earlier event it repeats, to be removed: the same
    -- delivery written twice within the horizon, which the live store would have called a
    -- duplicate had the first been committed, so a crash cut the first short before its answer.
    -- The one that was answered stays.
    function ids.event(key, time, digest, id)
        local earlier = last_key[id]
        local repeated = earlier and last_digest[id] == digest and time - last_time[id] <= horizon
        last_key[id], last_time[id], last_digest[id], id_of[key] = key, time, digest, id
        return repeated and earlier or nil
    end
    -- A cancel record: its delivery was answered with an error, and the sender's retry must not
    -- be taken for a duplicate.
    function ids.cancel(key)
        local id = id_of[key]
        if id and last_key[id] == key then
            last_key[id] = nil
        end
    end
    -- Puts the ids still inside the horizon into `index`: how many, and how many did not fit
    -- (their window holds more than dedup_capacity allows: it was lowered since).
    function ids.remember(index, now)
        local n, not_kept = 0, 0
        for id in pairs(last_key) do
            local what = native.index_insert(index, id, last_digest[id], last_time[id], now)
            if what == "added" then
                n = n + 1
            elseif what == "full" then
                not_kept = not_kept + 1
            end
        end
        return n, not_kept
    end
    return ids
end

-- The replay index from the journal alone (a reload that found the index of other settings).
-- The number of ids remembered and of those that did not fit, or nil, err.
function _M.remember_journal_ids(c, now)
    local ids = journal_ids(c.dedup_ttl)
    local stats, err = native.journal_read(c.journal.dir, 0, function(kind, _, key, time, digest, id)
        if kind == RECORD.cancel then
            ids.cancel(key)
        elseif kind == RECORD.event then
            ids.event(key, time, digest, id)
        end
    end, false)
    if not stats then
        return nil, err
    end
    local n, not_kept = ids.remember(c.index, now)
    return n, nil, not_kept
end

-- Puts the journal back into the dicts and the replay index: every event still inside retention
-- under its own key, the key counter after the highest key, and the ids of the horizon. Returns
-- what the journal reader found plus `restored`, `expired`, `dropped` (no room) and `ids`, or
-- nil, err.
function _M.replay(c, now)
    local events = c.events
    local low, top, restored, expired, no_room = 0, 0, 0, 0, 0
    local oldest = c.retention.max_age and now - c.retention.max_age
    local ids = journal_ids(c.dedup_ttl)
    local function remove(k)
        if events:get(k) then
            events:delete(k)
            restored = restored - 1
        end
    end
    -- The key mark first: keys go on above it, whatever the segments still hold.
    local mark, merr = native.journal_mark_read(c.journal.dir)
    if mark == nil then
        return nil, merr .. " (remove it to start anyway: keys then go on from the journal's highest, "
                    .. "which may hand out again the keys of events a cut journal lost)"
    end
    local positions = {}
    local stats, err = native.journal_read(c.journal.dir, 0,
        function(kind, _, key, time, digest, id, _, record)
            top = max(top, key)
            if kind == RECORD.position then
                positions[id] = max(positions[id] or 0, key)
            elseif kind == RECORD.drop then
                for k = low + 1, key do remove(k) end
                low = max(low, key)
            elseif kind == RECORD.cancel then
                remove(key)
                ids.cancel(key)
            elseif kind == RECORD.event then
                local earlier = ids.event(key, time, digest, id)
                if earlier then
                    remove(earlier)
                end
                if key > low then
                    if oldest and time < oldest then
                        expired = expired + 1
                    else
                        local value, len = native.journal_record(record)
                        local ok = value and shm.safe_set(events, key, value, len)
                        if ok then
                            restored = restored + 1
                        else
                            no_room = no_room + 1
                        end
                    end
                end
            end
        end, true)
    if not stats then
        return nil, err
    end
    -- Each consumer where it was (a new one at the low mark: nothing to catch up on that was
    -- dropped before it existed). Its position removes nothing: acknowledged events stay.
    for _, name in ipairs(c.ackers) do
        c.seen:set(POSITION .. name, positions[name] or low)
    end
    local n = max(top, low, mark and mark.reserved or 0)
    -- A journal that ends below the last key of a clean stop lost the events above its end.
    if mark and mark.clean and mark.last > top then
        stats.lost_from, stats.lost_to = top + 1, mark.last
    end
    -- Every key up to n may have been handed out; this run has not stopped cleanly yet.
    local marked, werr = native.journal_mark_write(c.journal.dir, n, 0, false)
    if not marked then
        return nil, werr
    end
    local marks = c.seen
    marks:set(journal.RESERVED, n)
    marks:set("n", n)
    -- What a clean stop marks as the last key handed out when this run hands out none: the
    -- journal's last (n is only reserved).
    marks:set(journal.START_N, n)
    marks:set(journal.START_TOP, max(top, low))
    -- Every key handed out before this start is settled: a gap there stays a gap.
    events:set("settled", n)
    events:set("low", low)
    marks:set("count", restored)
    journal.set_segment(c, max(stats.last_segment, 1))
    stats.restored, stats.expired, stats.no_room = restored, expired, no_room
    ngx.update_time()
    local started = ngx.now()
    stats.ids, stats.ids_not_kept = ids.remember(c.index, now)
    ngx.update_time()
    stats.index_ms = math.floor((ngx.now() - started) * 1000 + 0.5)
    return stats
end

-- The backlog, for /stats.
function _M.stats(c)
    local events = c.events
    local low = events:get("low") or 0
    local last = c.seen:get("n") or 0
    local oldest = next_present(events, low, min(last, low + 10000))
    -- The newest key that holds an event: keys may have been handed out (or, after a restart,
    -- reserved) above it without one.
    local newest
    for k = last, max(low + 1, last - 10000), -1 do
        if events:get(k) then
            newest = k
            break
        end
    end
    local s = {
        events = c.seen:get("count") or 0,
        oldest_key = oldest or ngx.null,
        newest_key = newest or ngx.null,
        low = low,
    }
    if c.journal then
        local u = native.journal_usage(c.journal.dir)
        if u then
            s.journal = { bytes = u.bytes, segments = u.segments, dir = c.journal.dir, fsync = c.journal.fsync }
        end
    end
    return s
end

-- What the replay index holds, for /stats: the horizon, the ids remembered (claimed, stored or
-- cancelled) and how many it is sized for, how many a window (a third of the horizon) is sized for,
-- holds now and takes at most, when the oldest was stored, the file and its size.
function _M.dedup(c, now)
    local u = native.index_usage(c.index, now) or {}
    return {
        replay_horizon = c.dedup_ttl, ids = u.ids, capacity = u.capacity, window_ids = u.per_window,
        window_held = u.window_ids, window_limit = u.window_limit,
        window_secs = u.window_secs, oldest = (u.oldest or 0) > 0 and u.oldest or ngx.null,
        index = c.index_path, index_bytes = u.bytes,
    }
end

-- Its start, upkeep and stop, and its dicts (store_lifecycle.lua).
_M.start, _M.start_worker = lifecycle.start, lifecycle.start_worker
_M.every_second, _M.stop_worker, _M.last_key = lifecycle.every_second, lifecycle.stop_worker, lifecycle.last_key
_M.dicts = lifecycle.dicts

-- The store object from its settings (store_lifecycle.new says which).
function _M.new(settings)
    return lifecycle.new(_M, settings)
end

return _M
