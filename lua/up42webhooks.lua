-- up42webhooks: receive signed webhooks (UP42's first) in nginx, verify them through
-- libup42webhooks (LuaJIT FFI) and keep the verified events in a lua_shared_dict, made durable by
-- an on-disk journal.
--
--   init_by_lua_block   { require("up42webhooks").configure{ secret_file = "/run/secrets/up42" } }
--   init_worker_by_lua_block { require("up42webhooks").init_worker() }
--   server { # public
--     location = /receive-webhooks { content_by_lua_block { require("up42webhooks").receive() } }
--     location = /ping             { content_by_lua_block { require("up42webhooks").ping() } }
--   }
--   server { # admin: loopback only, never proxied; the marker lets local clients in without a token
--     set $up42webhooks_listener admin;
--     access_by_lua_block { require("up42webhooks").admin_access() } # Host, cross-site requests
--     location = /dump-webhooks    { content_by_lua_block { require("up42webhooks").dump() } }
--     location = /ack-webhooks     { content_by_lua_block { require("up42webhooks").ack() } }
--     location = /tail             { content_by_lua_block { require("up42webhooks").tail() } }
--     location = /stats            { content_by_lua_block { require("up42webhooks").stats() } }
--   }
--
-- The parts: config (configure{} and its options), receive (verification), store (the shared
-- dict and its journal, behind add/range/ack/trim/stats/replay), journal (segments, fsync),
-- admin (the admin endpoints), gate (who may use them, and what a browser may), reply (answers and counters).
local config = require "up42webhooks.config"
local receive = require "up42webhooks.receive"
local admin = require "up42webhooks.admin"
local gate = require "up42webhooks.gate"
local held = require "up42webhooks.held"
local store = require "up42webhooks.store"
local journal = require "up42webhooks.journal"

local ngx = ngx
local type = type
local pairs = pairs
local tostring = tostring
local xpcall = xpcall
local debug = debug

local _M = { _VERSION = "0.1.0" }

local REPLAYED = "journal:replayed" -- in the events dict: a reload (HUP) must not replay again

local function configure(o)
    local c = config.configure(o)
    if c.journal and not c.events:get(REPLAYED) then
        local started = ngx.now()
        local s, err = store.replay(c, ngx.time())
        if not s then
            error(config.FAILED .. "journal: " .. err, 0)
        end
        c.events:set(REPLAYED, true)
        ngx.update_time()
        local took = ngx.now() - started
        local log = ngx.log
        log(ngx.NOTICE, "up42webhooks: journal replayed: ", s.restored, " events from ", s.records,
            " records in ", s.segments, " segments (", s.bytes, " bytes) in ", ("%.3f"):format(took), " s")
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
                c.events:get("n") + 1)
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
        c.counters:set("journal_replay_ms", math.floor(took * 1000 + 0.5))
    end
    if c.journal then
        local made, err = journal.make_reserve(c)
        if not made then
            ngx.log(ngx.WARN, "up42webhooks: journal: no reserve of disk space for acknowledgements: ", err)
        end
    end
    return true
end

-- Configure once, in init_by_lua* (options: up42webhooks/config.lua). With a journal, the first
-- start of a master puts it back into the shared dicts before any worker accepts a request.
-- A setting to fix fails nginx's start (or a reload) with the one line that says so: init_by_lua
-- would append a Lua stack trace to it through debug.traceback, which is replaced for that error
-- only (the Lua state goes with the configuration that failed). Other errors keep their trace.
local function ours(err)
    return type(err) == "string" and err:sub(1, #config.FAILED) == config.FAILED
end

local function traced(err)
    if ours(err) then
        return err
    end
    return debug.traceback(tostring(err), 2)
end

function _M.configure(o)
    local ok, err = xpcall(configure, traced, o)
    if ok then
        return true
    end
    if ours(err) and ngx.get_phase and ngx.get_phase() == "init" then
        debug.traceback = function(msg) return msg end -- luacheck: ignore 122
    end
    error(err, 0)
end

-- Retention runs in one worker at a time; fsync = "interval" syncs every worker's writes.
local function every_second(premature)
    local c = config.current
    if premature or not c then
        return
    end
    if c.journal and c.journal.fsync == "interval" then
        journal.sync()
    end
    held.refresh(c)
    local now = ngx.time()
    if c.events:safe_add("retention:lock", ngx.worker.pid(), 5) then
        local last = c.events:get("retention:last") or 0
        if now - last >= 1 then
            c.events:set("retention:last", now)
            local removed, err = c.store.trim(c, now)
            if not removed then
                ngx.log(ngx.ERR, "up42webhooks: retention: ", err)
            end
            if c.journal and now % 60 == 0 then
                journal.make_reserve(c) -- used when the disk was full: again, once there is room
            end
        end
        c.events:delete("retention:lock")
    end
    if c.redis then
        -- Redis's persistence, read again every check_interval seconds (one worker at a time).
        local ok, err = c.store.check(c, now)
        if not ok then
            ngx.log(ngx.WARN, "up42webhooks: cannot read Redis's persistence: ", err)
        end
    end
end

-- In init_worker_by_lua*: the timers of the journal and of retention.
function _M.init_worker()
    if not config.current then
        return
    end
    local ok, err = ngx.timer.every(1, every_second)
    if not ok then
        ngx.log(ngx.ERR, "up42webhooks: cannot start the journal and retention timer: ", err)
    end
    local c = config.current
    if c.redis and ngx.worker.id() == 0 then
        -- Cosockets are not allowed in init_by_lua: read Redis's settings from a timer at once.
        ngx.timer.at(0, function(premature)
            if not premature then
                c.store.check(c, ngx.time() + c.redis.check_interval)
            end
        end)
    end
end

-- In exit_worker_by_lua*: a clean stop is marked, so that the next start can tell a journal that
-- lost its end.
function _M.exit_worker()
    local c = config.current
    if c and c.journal then
        journal.mark_clean_stop(c)
    end
end

_M.receive = receive.receive
_M.dump = admin.dump
_M.ack = admin.ack
_M.tail = admin.tail
_M.stats = admin.stats
_M.admin_not_found = admin.not_found
-- In the admin server's access phase: the Host and cross-site checks (up42webhooks/gate.lua).
_M.admin_access = gate.check_request

-- GET /ping
function _M.ping()
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("PONG")
    return ngx.exit(200)
end

-- Is this event one people want to hear about (a final or failed state)?
function _M.is_notifiable(event)
    local c = config.current
    local by_event = c and c.notifiable or config.DEFAULTS.notifiable
    local statuses = type(event) == "table" and by_event[event.event]
    return statuses and type(event.body) == "table" and statuses[event.body.status] == true or false
end

-- The original article's names, so that its location blocks keep working.
_M.set_key_value_webhook = _M.receive
_M.dump_webhooks = _M.dump
_M.dump_cardinality = admin.cardinality

return _M
