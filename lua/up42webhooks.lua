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
--     location = /learnt-webhooks  { content_by_lua_block { require("up42webhooks").learnt() } }
--     location = /tail             { content_by_lua_block { require("up42webhooks").tail() } }
--     location = /stats            { content_by_lua_block { require("up42webhooks").stats() } }
--   }
--
-- The parts: config (configure{} and its options), receive (verification), the stores (store: the
-- shared dict and its journal, store_redis: Redis; each with add/range/wait/ack/trim/stats and its
-- start, upkeep and stop), journal (segments, fsync, the key mark), admin (the admin endpoints),
-- gate (who may use them, and what a browser may), held (tails and long polls), lock (one worker at
-- a time), reply (answers and counters), learnt (events learnt from UP42's API, POST /learnt-webhooks).
local config = require "up42webhooks.config"
local receive = require "up42webhooks.receive"
local admin = require "up42webhooks.admin"
local learnt = require "up42webhooks.learnt"
local gate = require "up42webhooks.gate"
local held = require "up42webhooks.held"
local reply = require "up42webhooks.reply"

local ngx = ngx

local _M = { _VERSION = "0.2.0" }

-- The receiver configure{} made (settings, senders, the store object): this is the one place it is
-- kept, and each handler below is given it.
local current

local function configure(o)
    local c = config.configure(o)
    local ok, err = c.store:start()
    if not ok then
        error(config.FAILED .. err, 0)
    end
    current = c
    reply.set(c)
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

-- Every second, in each worker: the held requests' counts, and the store's own upkeep (fsync,
-- retention, checks).
local function every_second(premature)
    local c = current
    if premature or not c then
        return
    end
    held.refresh(c)
    c.store:every_second(ngx.time())
end

-- In init_worker_by_lua*: the worker's timer, and what the store starts in each worker.
function _M.init_worker()
    local c = current
    if not c then
        return
    end
    local ok, err = ngx.timer.every(1, every_second)
    if not ok then
        ngx.log(ngx.ERR, "up42webhooks: cannot start the journal and retention timer: ", err)
    end
    c.store:start_worker()
end

-- In exit_worker_by_lua*: a clean stop is marked, so that the next start can tell a journal that
-- lost its end.
function _M.exit_worker()
    if current then
        current.store:stop_worker()
    end
end

-- POST: a delivery of UP42, or of the sender `name` (up42webhooks/receive.lua).
function _M.receive(name)
    return receive.receive(current, name)
end

-- The admin endpoints (up42webhooks/admin.lua).
function _M.dump() return admin.dump(current) end
function _M.ack() return admin.ack(current) end
function _M.tail() return admin.tail(current) end
function _M.stats() return admin.stats(current) end
function _M.cardinality() return admin.cardinality(current) end
-- POST /learnt-webhooks: a status learnt from UP42's API (up42webhooks/learnt.lua).
function _M.learnt() return learnt.store(current) end
_M.admin_not_found = admin.not_found
-- In the admin server's access phase: the Host and cross-site checks (up42webhooks/gate.lua).
function _M.admin_access() return gate.check_request(current) end

-- GET /ping
function _M.ping()
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("PONG")
    return ngx.exit(200)
end

-- Is this event one people want to hear about (a final or failed state)?
function _M.is_notifiable(event)
    local by_event = current and current.notifiable or config.DEFAULTS.notifiable
    local statuses = type(event) == "table" and by_event[event.event]
    return statuses and type(event.body) == "table" and statuses[event.body.status] == true or false
end

-- The original article's names, so that its location blocks keep working.
_M.set_key_value_webhook = _M.receive
_M.dump_webhooks = _M.dump
_M.dump_cardinality = _M.cardinality

return _M
