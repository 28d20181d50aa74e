-- The store's journal, as one worker sees it: the segment it appends to (segments rotate through
-- the shared dict, so every worker follows), the fsync policy, and the removal of old segments.
-- Framing and recovery are the library's (src/format/frame.rs, src/journal.rs).
local native = require "up42webhooks.native"
local lock = require "up42webhooks.lock"

local RECORD = native.RECORD
local journal_append = native.journal_append
local journal_sync = native.journal_sync

local _M = { RECORD = RECORD }

local SEGMENT = "journal:segment"   -- in the store's marks: the segment every worker appends to
_M.POSITION = "consumer:"           -- in the store's marks: a consumer's position

-- This worker's writer and the segment it is for; whether it wrote since its last sync.
local writer, writer_segment, dirty

function _M.segment(c)
    return c.seen:get(SEGMENT) or 1
end

function _M.set_segment(c, n)
    c.seen:set(SEGMENT, n)
end

-- A reserve of disk space beside the segments: when the disk is full, an acknowledgement's or a
-- cancel's record (a few dozen bytes) takes its place, so that an operator can still acknowledge
-- (which is how space is freed) and a refused delivery is still cancelled. Made at start and
-- again, once there is room, every minute.
local RESERVE = "/journal.reserve"
local RESERVE_SIZE = 64 * 1024

function _M.make_reserve(c)
    local path = c.journal.dir .. RESERVE
    local f = io.open(path, "rb")
    if f then
        local size = f:seek("end")
        f:close()
        if size == RESERVE_SIZE then
            return true
        end
    end
    local tmp = path .. ".tmp"
    local w, err = io.open(tmp, "wb")
    if not w then
        return nil, err
    end
    local ok, werr = w:write(("\0"):rep(RESERVE_SIZE))
    ok = ok and w:flush()
    w:close()
    if not ok then
        os.remove(tmp)
        return nil, "cannot make " .. path .. ": " .. tostring(werr or "no space left on device")
    end
    local moved, merr = os.rename(tmp, path)
    if not moved then
        os.remove(tmp)
        return nil, merr
    end
    return true
end

-- This worker's writer for the segment every worker appends to now, and that segment's number;
-- or nil, err.
function _M.writer(c)
    local seg = c.seen:get(SEGMENT) or 1
    if writer_segment ~= seg then
        local w, err = native.journal_open(c.journal.dir, seg)
        if not w then
            return nil, err
        end
        writer, writer_segment = w, seg
    end
    return writer, seg
end

-- After a record was written to segment `seg` (`size` bytes long now, at `time`): what the fsync
-- policy and the segments' rotation ask.
function _M.written(c, seg, size, time)
    local j = c.journal
    if j.fsync ~= "always" then
        dirty = true
    end
    if size >= j.segment_size and c.events:safe_add("journal:rotating:" .. seg, true, 60) then
        -- The first worker past the size moves everyone to the next segment, and says when: its
        -- last records are about that old (retention need not read it before).
        c.events:safe_set("journal:rotated:" .. seg, time)
        c.seen:set(SEGMENT, seg + 1)
    end
end

-- Appends a record before the answer that depends on it (an event's is written by the library
-- with its delivery: native.deliver_commit). Returns true, or nil, err and whether the record
-- may be in the file all the same (written, then the sync failed).
function _M.append(c, kind, reason, key, time, digest, id, meta, body)
    local j = c.journal
    local w, seg = _M.writer(c) -- seg: why, when there is no writer
    if not w then
        return nil, seg, false
    end
    local size, err, errno = journal_append(w, kind, reason, key, time, digest, id, meta, body)
    if not size and errno == native.ENOSPC and kind ~= RECORD.event and os.remove(j.dir .. RESERVE) then
        -- The disk is full: the reserve makes room for this small record (never for an event).
        ngx.log(ngx.WARN, "up42webhooks: the disk of ", j.dir, " is full: its reserve is used for a ",
                kind == RECORD.drop and "drop (retention)" or kind == RECORD.position
                and "position (acknowledgement)" or "cancel", " record")
        size, err = journal_append(w, kind, reason, key, time, digest, id, meta, body)
    end
    if not size then
        return nil, err, false
    end
    if j.fsync == "always" then
        local ok, serr = journal_sync(w)
        if not ok then
            return nil, serr, true
        end
    end
    _M.written(c, seg, size, time)
    return true
end

-- Keys and the key mark (journal.keys, beside the segments): before a key above the reserved one
-- is answered, the mark is moved KEY_BLOCK keys on and synced, so that no crash, cut journal or
-- emptied segment can make a key be handed out twice (a consumer that read up to a key would skip
-- the new event under it). A restart goes on above the mark: keys may jump, never repeat.
local KEY_BLOCK = 1000
local RESERVED = "keys:reserved" -- in the store's marks (the dedup dict): the mark as last written
_M.RESERVED = RESERVED
_M.START_N, _M.START_TOP = "keys:start_n", "keys:start_top" -- in the store's marks: what replay found

-- Moves the mark past `key` (the lock held): true, or nil, err.
local function move_mark(c, key)
    if key <= (c.seen:get(RESERVED) or 0) then
        return true -- another worker moved it meanwhile
    end
    local reserved = key + KEY_BLOCK
    local ok, err = native.journal_mark_write(c.journal.dir, reserved, 0, false)
    if ok then
        c.seen:set(RESERVED, reserved)
    end
    return ok, err
end

-- Moves the mark ahead of the keys about to be handed out, before a delivery claims its id: this
-- may wait (1 ms at a time) while another worker writes the mark, and nothing of a delivery may be
-- held in the worker's buffers or its index claim across a wait. True, or nil, err.
local AHEAD = 64
function _M.reserve_ahead(c)
    local next_key = (c.seen:get("n") or 0) + AHEAD
    if next_key <= (c.seen:get(RESERVED) or 0) then
        return true -- every delivery but the few near each KEY_BLOCK boundary
    end
    local ok, err = lock.with(c.counters, "lock:keys", 400, 0.001, move_mark, c, next_key)
    if ok == false then
        return nil, "the journal's key mark is being written by another worker: retry"
    end
    return ok, err
end

-- Whether `key` may be answered: true, or nil, err when the mark could not be written. Never
-- waits (the delivery holds its claim and its record now): reserve_ahead made room, and only more
-- than AHEAD deliveries taking keys at once could pass it; then the lock is tried once.
function _M.reserve_key(c, key)
    if key <= (c.seen:get(RESERVED) or 0) then
        return true
    end
    if not c.counters:safe_add("lock:keys", true, 5) then
        return nil, "the journal's key mark is being written by another worker: retry"
    end
    local called, ok, err = pcall(move_mark, c, key)
    c.counters:delete("lock:keys")
    if not called then
        return nil, tostring(ok)
    end
    return ok, err
end

-- In exit_worker (a stop, or a reload's old workers): the last key handed out, and that it was a
-- clean stop, so that the next start can tell a journal that lost its end. Never lowers the
-- reservation (a reload's new workers hand out keys meanwhile). exit_worker cannot sleep: the
-- lock is tried for a moment, and without it nothing is written (the next start then simply
-- does not check).
function _M.mark_clean_stop(c)
    local marks = c.seen
    for _ = 1, 100000 do
        if c.counters:safe_add("lock:keys", true, 5) then
            local n = marks:get("n") or 0
            local reserved = math.max(marks:get(RESERVED) or 0, n)
            -- No key handed out since the start: the last one is the journal's last then, not
            -- the reservation the start made (or the next start would report keys lost).
            local last = n
            if n == marks:get(_M.START_N) then
                last = marks:get(_M.START_TOP) or n
            end
            local ok, err = native.journal_mark_write(c.journal.dir, reserved, last, true)
            c.counters:delete("lock:keys")
            if not ok then
                ngx.log(ngx.WARN, "up42webhooks: ", err)
            end
            return
        end
    end
end

-- fsync = "interval": every second, each worker syncs what it wrote (fdatasync of the file).
function _M.sync()
    if dirty and writer then
        dirty = false
        local ok, err = journal_sync(writer)
        if not ok then
            dirty = true
            ngx.log(ngx.ERR, "up42webhooks: ", err)
        end
    end
end

-- What is known of segment `seg`: its highest key and latest time (read once it has been closed
-- for a minute: a worker may append to a segment for a moment after the rotation).
local function closed_segment(c, seg, now)
    local known = c.events:get("journal:closed:" .. seg)
    if known then
        local max_key, max_time = known:match("^(%d+) (%-?%d+)$")
        return tonumber(max_key), tonumber(max_time)
    end
    local s, err = native.journal_read(c.journal.dir, seg, function() end)
    if not s then
        return nil, err
    end
    if s.max_time < now - 60 then
        c.events:set("journal:closed:" .. seg, s.max_key .. " " .. s.max_time)
    end
    return s.max_key, s.max_time
end

-- Removes the oldest segments that hold nothing needed any more: every record in them at or
-- below `low` (dropped), none recent enough that its id is still remembered for deduplication,
-- none written in the last minute, and never the segment being written. The watermark and the
-- declared consumers' positions are written again first, into the current segment, so that they
-- outlive the segments that said them.
function _M.remove_old_segments(c, low, now)
    local j = c.journal
    local usage, err = native.journal_usage(j.dir)
    if not usage then
        return nil, err
    end
    if usage.segments == 0 then
        return 0
    end
    local last = math.min(usage.last_segment, _M.segment(c) - 1)
    local through = usage.first_segment - 1
    local keep_after = now - math.max(c.dedup_ttl, 60)
    for seg = usage.first_segment, last do
        -- Closed recently: its last records are too young to go, and reading it (a whole
        -- segment) every second until it could be cached would be wasted.
        local rotated = c.events:get("journal:rotated:" .. seg)
        if rotated and rotated >= keep_after then
            break
        end
        local max_key, max_time = closed_segment(c, seg, now)
        if not max_key then
            return nil, max_time
        end
        if max_key > low or max_time >= keep_after then
            break
        end
        through = seg
    end
    if through < usage.first_segment then
        return 0
    end
    local ok, aerr = _M.append(c, RECORD.drop, 2, low, now)
    if not ok then
        return nil, aerr
    end
    for _, name in ipairs(c.ackers) do
        local pos = c.seen:get(_M.POSITION .. name)
        if pos then
            ok, aerr = _M.append(c, RECORD.position, 0, pos, now, nil, name)
            if not ok then
                return nil, aerr
            end
        end
    end
    for seg = usage.first_segment, through do
        local removed, rerr = native.journal_remove_segment(j.dir, seg)
        if not removed then
            return nil, rerr
        end
        c.events:delete("journal:closed:" .. seg)
        c.events:delete("journal:rotated:" .. seg)
    end
    return through - usage.first_segment + 1
end

return _M
