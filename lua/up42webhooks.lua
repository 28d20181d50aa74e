-- up42webhooks: receive signed UP42 webhooks in nginx, verify them through libup42webhooks (LuaJIT
-- FFI) and keep the verified events in a lua_shared_dict.
--
--   init_by_lua_block { require("up42webhooks").configure{ secret_file = "/run/secrets/up42" } }
--   server { # public
--     location = /receive-webhooks { content_by_lua_block { require("up42webhooks").receive() } }
--     location = /ping             { content_by_lua_block { require("up42webhooks").ping() } }
--   }
--   server { # admin: loopback only, never proxied; the marker lets local clients in without a token
--     set $up42webhooks_listener admin;
--     location = /dump-webhooks    { content_by_lua_block { require("up42webhooks").dump() } }
--     location = /stats            { content_by_lua_block { require("up42webhooks").stats() } }
--   }
local native = require "up42webhooks.native"
local senders = require "up42webhooks.senders"
local addr = require "up42webhooks.addr"
local origin = require "up42webhooks.origin"
local cjson = require "cjson.safe"

local ngx = ngx
local ngx_say = ngx.say
local ngx_print = ngx.print
local ngx_exit = ngx.exit
local ngx_log = ngx.log
local ngx_time = ngx.time
local ngx_var = ngx.var
local req = ngx.req
local WARN = ngx.WARN
local json_encode = cjson.encode
local json_decode = cjson.decode
local type = type
local pairs = pairs
local next = next
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local byte = string.byte
local find = string.find
local getenv = os.getenv
local gsub = string.gsub
local bxor = bit.bxor
local bor = bit.bor

local _M = { _VERSION = "0.1.0" }

local DEFAULTS = {
    dict = "received_webhooks",        -- verified events, key n -> line
    dedup_dict = "webhooks_seen",      -- messageId (or body digest) seen recently, with a TTL
    stats_dict = "webhooks_stats",     -- outcome counters
    label = "up42-sig",
    tolerance = 300,                   -- seconds into the past
    future = 30,                       -- seconds into the future (clock skew)
    max_body = 1024 * 1024,
    retry_after = 60,                  -- seconds, with 503 when the store is full
    admin_allow = "loopback",          -- clients the admin listener serves without the token
    notifiable = {
        ["job.status"] = { ERROR = true, FAILED = true, CANCELLED = true, SUCCEEDED = true },
        ["order.status"] = { FULFILLED = true, FAILED_PERMANENTLY = true, ["FAILED PERMANENTLY"] = true },
    },
}

local COUNTER_KEY = "n"   -- the last key handed out, in the events dict

-- Filled by configure(); a worker that forks from the master inherits it, key included.
local config

local read_secrets_file = senders.read_secrets_file

-- A configure{} value, else the environment variable's; an empty one is no value.
local function setting(value, env)
    if value == nil then
        value = getenv(env)
    end
    if value == "" then
        return nil
    end
    return value
end

-- Configure once, in init_by_lua*. Options (all optional but a secret):
--   secrets = {"s1", "s2"} | secret = "s" | secret_file = path (one secret a line, first signs)
--   (else the environment: UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE; declare them with
--   nginx's `env` directive), tolerance, future, max_body, label, dict, dedup_dict,
--   admin_token (else UP42_WEBHOOK_ADMIN_TOKEN: lets any client of the admin listener read
--   /dump-webhooks and /stats), admin_allow (else UP42_WEBHOOK_ADMIN_ALLOW; default "loopback":
--   the clients of the admin listener that need no token, see up42webhooks/addr.lua),
--   public_url (else UP42_WEBHOOK_PUBLIC_URL: "https://host[:port]", the scheme and authority
--   senders sign, as scheme = and authority = one by one), trusted_proxies (else
--   UP42_WEBHOOK_TRUSTED_PROXIES: proxies whose Forwarded / X-Forwarded-Proto / -Host headers are
--   believed, see up42webhooks/origin.lua),
--   stats_dict, notifiable = { ["job.status"] = {"FAILED", ...}, ... }, retry_after,
--   senders = { name = { profile = "ubiops" | "rfc9421" | "standard-webhooks" | "github" | "stripe",
--   ... } } for other webhook senders (see up42webhooks/senders.lua), each received by
--   `receive("name")` in its own location. Without senders, the UP42 secret is required.
-- A missing secret is an error: without one the receiver would have to accept everything.
function _M.configure(o)
    o = o or {}
    local c = {}
    for k, v in pairs(DEFAULTS) do
        c[k] = o[k] ~= nil and o[k] or v
    end
    local secrets = o.secrets or (o.secret and { o.secret })
    local err
    if not secrets and o.secret_file then
        secrets, err = read_secrets_file(o.secret_file)
    end
    if not secrets then
        local env_secret = os.getenv("UP42_WEBHOOK_SECRET")
        local env_file = os.getenv("UP42_WEBHOOK_SECRET_FILE")
        if env_secret and env_secret ~= "" then
            secrets = { env_secret }
        elseif env_file and env_file ~= "" then
            secrets, err = read_secrets_file(env_file)
        end
    end
    -- Other senders, each chosen by name in its location: receive("name").
    c.senders = {}
    for name, sc in pairs(o.senders or {}) do
        local sender, serr = senders.new(name, sc, c)
        if not sender then
            error("up42webhooks: sender " .. tostring(name) .. ": " .. serr, 2)
        end
        c.senders[name] = sender
    end
    local key
    if secrets and #secrets > 0 then
        local kerr
        key, kerr = native.new_key(secrets)
        if not key then
            error("up42webhooks: bad secret: " .. kerr, 2)
        end
    elseif not next(c.senders) or err then
        -- Without a secret the receiver would have to accept everything.
        error("up42webhooks: no webhook secret configured: set secrets/secret_file in configure{} or "
              .. "UP42_WEBHOOK_SECRET / UP42_WEBHOOK_SECRET_FILE (with nginx's env directive)"
              .. (err and (": " .. err) or ""), 2)
    end
    local opts, oerr = native.new_options{ label = c.label, max_age = c.tolerance,
                                           max_future = c.future, max_body = c.max_body }
    if not opts then
        error("up42webhooks: bad options: " .. oerr, 2)
    end
    if o.notifiable then
        c.notifiable = {}
        for event, list in pairs(o.notifiable) do
            c.notifiable[event] = {}
            for _, s in ipairs(list) do c.notifiable[event][s] = true end
        end
    end
    for _, name in ipairs{ c.dict, c.dedup_dict, c.stats_dict } do
        if not ngx.shared[name] then
            error("up42webhooks: lua_shared_dict " .. name .. " is not declared", 2)
        end
    end
    c.admin_token = setting(o.admin_token, "UP42_WEBHOOK_ADMIN_TOKEN")
    local aerr, perr
    c.admin_allow, aerr = addr.new(setting(o.admin_allow, "UP42_WEBHOOK_ADMIN_ALLOW") or DEFAULTS.admin_allow)
    if not c.admin_allow then
        error("up42webhooks: admin_allow: " .. aerr, 2)
    end
    local trusted = setting(o.trusted_proxies, "UP42_WEBHOOK_TRUSTED_PROXIES")
    if trusted then
        c.trusted_proxies, perr = addr.new(trusted)
        if not c.trusted_proxies then
            error("up42webhooks: trusted_proxies: " .. perr, 2)
        end
    end
    c.scheme, c.authority = o.scheme, o.authority
    local url = setting(o.public_url, "UP42_WEBHOOK_PUBLIC_URL")
    if url then
        local scheme, authority = url:match("^(https?)://([^/?#]+)/?$")
        if not scheme then
            error("up42webhooks: public_url: not an http:// or https:// URL without a path: " .. url, 2)
        end
        c.scheme, c.authority = c.scheme or scheme, c.authority or authority
    end
    c.key, c.opts = key, opts
    c.events, c.seen, c.counters = ngx.shared[c.dict], ngx.shared[c.dedup_dict], ngx.shared[c.stats_dict]
    -- A delivery is remembered for as long as it could still be accepted, and then some.
    c.dedup_ttl = 2 * (c.tolerance + c.future) + 60
    config = c
    return true
end

local function count(outcome)
    if config then
        config.counters:incr(outcome, 1, 0)
    end
end

local function respond(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx_say(json_encode(body))
    return ngx_exit(status)
end

local function reject(status, reason, msg)
    count("rejected_" .. reason)
    ngx_log(WARN, "up42webhooks: rejected delivery: ", reason, ", client ", ngx_var.remote_addr)
    return respond(status, { code = status, error = reason, msg = msg })
end

-- The request body, whether nginx kept it in memory or spooled it to a file.
local function read_body()
    req.read_body()
    local body = req.get_body_data()
    if body then
        return body
    end
    local file = req.get_body_file()
    if not file then
        return ""
    end
    local f, err = io.open(file, "rb")
    if not f then
        return nil, err
    end
    body = f:read("*a")
    f:close()
    return body
end

local function raw_headers()
    -- HTTP/1 only; HTTP/2 and 3 have no raw header block, so rebuild one from the parsed headers.
    local ok, raw = pcall(req.raw_header, true)
    if ok and raw then
        return raw
    end
    local lines = {}
    for name, value in pairs(req.get_headers(200, true)) do
        if type(value) == "table" then
            for _, v in ipairs(value) do lines[#lines + 1] = name .. ": " .. v end
        else
            lines[#lines + 1] = name .. ": " .. value
        end
    end
    lines[#lines + 1] = ""
    return concat(lines, "\r\n")
end

-- Tabs and line breaks become spaces: a stored event is one line of the dump (JSON has them only
-- as whitespace between tokens). Most bodies have none, and a search is cheaper than a copy. The
-- searches are plain: a pattern with a class runs the matcher at every offset, which for a 1 KiB
-- body cost more than the whole signature check.
local function one_line(s)
    if not find(s, "\n", 1, true) and not find(s, "\r", 1, true) and not find(s, "\t", 1, true) then
        return s
    end
    return (gsub(s, "[\t\r\n]", " "))
end

-- 503 with Retry-After: the sender retries later, and nothing stored is evicted to make room.
local function store_full(why)
    count("store_full")
    ngx_log(WARN, "up42webhooks: store full, refusing delivery: ", why)
    ngx.header["Retry-After"] = config.retry_after
    return respond(503, { code = 503, msg = "store full, retry later" })
end

-- The body as a JSON object, or nil after answering 400 (an array or a scalar is not an event).
local function json_object(body)
    local event = json_decode(body)
    if type(event) ~= "table" or body:match("^%s*%[") then
        count("rejected_not_json_object")
        respond(400, { code = 400, error = "not_json_object", msg = "the body is not a JSON object" })
        return nil
    end
    return event
end

-- Reused for every verification of another sender: filled, used and done with before any yield.
local message = {}

-- Verifies a delivery of another sender; returns the decoded event, its dedup id and what the dump
-- shows of it, or nil after answering.
local function verify_sender(sender, body, now)
    message.method = req.get_method()
    message.scheme, message.authority = origin.of_request(config, sender)
    message.target = ngx_var.request_uri
    message.raw_headers = raw_headers()
    message.body = body
    local v, reason, msg = native.verify_message(sender.ring, message, now, sender.opts)
    message.body, message.raw_headers = nil, nil
    if not v then
        return reject(reason == "body_too_large" and 413 or 401, reason, msg)
    end
    local headers = req.get_headers(100)
    if sender.profile == "ubiops" then
        -- Date is covered; a replayed request keeps its old Date.
        local date = type(headers["date"]) == "string" and ngx.parse_http_time(headers["date"])
        if not date then
            return reject(401, "malformed_timestamp", "the Date header is missing or not an HTTP date")
        end
        if now - date > sender.tolerance then
            return reject(401, "stale", "the Date header is too old")
        elseif date - now > sender.future then
            return reject(401, "future", "the Date header is in the future")
        end
    end
    local event = json_object(body)
    if not event then
        return
    end
    -- `v` is still this request's: nothing since verified or yielded.
    local id = senders.delivery_id(sender, v, event, headers)
    -- The digest is only formatted when the sender gives no id.
    id = sender.name .. (id and (":i:" .. tostring(id)) or (":d:" .. native.body_sha256_hex(v)))
    local ev, status, live = senders.meta(sender, event, headers)
    return event, id, ev, status, live
end

-- POST /receive-webhooks: verify, deduplicate, store. `name` picks a sender of configure{senders=}
-- (`receive("github")`); without it the delivery is UP42's.
function _M.receive(name)
    if not config then
        ngx_log(ngx.ERR, "up42webhooks: receive() before configure()")
        return respond(503, { code = 503, msg = "receiver not configured" })
    end
    local sender
    if name ~= nil then
        sender = config.senders[name]
        if not sender then
            ngx_log(ngx.ERR, "up42webhooks: receive(\"", tostring(name), "\"): no such sender in configure{senders=}; have: ",
                    senders.names(config.senders))
            return respond(503, { code = 503, msg = "receiver not configured" })
        end
    elseif not config.key then
        ngx_log(ngx.ERR, "up42webhooks: receive() for UP42 without a UP42 secret")
        return respond(503, { code = 503, msg = "receiver not configured" })
    end
    if req.get_method() ~= "POST" then
        count("method_not_allowed")
        return respond(405, { code = 405, msg = "method not allowed" })
    end
    local length = tonumber(ngx_var.http_content_length)
    if length and length > config.max_body then
        return reject(413, "body_too_large", "the body is larger than allowed")
    end
    local body, err = read_body()
    if not body then
        ngx_log(ngx.ERR, "up42webhooks: cannot read the spooled body: ", err)
        return respond(503, { code = 503, msg = "cannot read the body" })
    end
    local now = ngx_time()

    local event, id, ev, status, live, key_index
    if sender then
        event, id, ev, status, live = verify_sender(sender, body, now)
        if not event then
            return
        end
    else
        local v, reason, msg = native.verify_raw(config.key, raw_headers(), body, now, config.opts)
        if not v then
            return reject(reason == "body_too_large" and 413 or 401, reason, msg)
        end
        key_index = tonumber(v.key_index)
        event = json_object(body)
        if not event then
            return
        end
        -- created is not covered by the UP42 HMAC; the body's timestamp is.
        if type(event.timestamp) ~= "string" then
            return reject(401, "malformed_timestamp", "the body has no timestamp")
        end
        local t, treason, tmsg = native.check_timestamp(event.timestamp, now, config.opts)
        if not t then
            return reject(401, treason, tmsg)
        end
        -- `v` is the worker's reused result struct: still this delivery's, since nothing between
        -- the verification and here verifies or yields. The digest is only formatted when there
        -- is no id.
        id = type(event.messageId) == "string" and event.messageId ~= "" and ("m:" .. event.messageId)
             or ("d:" .. native.body_sha256_hex(v))
        ev, status, live = event.event, type(event.body) == "table" and event.body.status or nil, event.liveMode
    end

    -- One write marks the delivery as seen; the reply to a duplicate does not need its key.
    local ok, aerr = config.seen:safe_add(id, true, config.dedup_ttl)
    if not ok then
        if aerr == "exists" then
            count("duplicate")
            return respond(200, { msg = "duplicate: already stored" })
        end
        return store_full(aerr)
    end
    local n, ierr = config.events:incr(COUNTER_KEY, 1, 0)
    local line = one_line(body)
    local meta = concat({ one_line(tostring(ev or "")), one_line(tostring(status or "")),
                          live == nil and "" or tostring(live) }, "\t")
    local stored, serr
    if n then
        stored, serr = config.events:safe_add(n, meta .. "\t" .. line)
    end
    if not stored then
        config.seen:delete(id) -- let the sender's retry through
        return store_full(serr or ierr)
    end
    count("stored")
    if sender then
        count("stored_from_" .. sender.name)
    elseif key_index > 0 then
        count("stored_with_secret_" .. key_index)
    end
    ngx.header["Content-Type"] = "application/json"
    ngx_say('{"msg":"stored","key":', n, "}")
    return ngx_exit(200)
end

-- Compares two strings without stopping at the first difference.
local function same_secret(a, b)
    if #a ~= #b then
        return false
    end
    local diff = 0
    for i = 1, #a do
        diff = bor(diff, bxor(byte(a, i), byte(b, i)))
    end
    return diff == 0
end

-- Anyone with the bearer token; without it, a client of the admin listener (the server that sets
-- $up42webhooks_listener to "admin") in admin_allow, loopback by default. Both the TCP peer and the
-- address nginx reports (which set_real_ip_from may have taken from a header) must be in it, so a
-- realip setting can only take trust away. On any other server the address grants nothing: a
-- tunnel or proxy on this host connects from loopback for everyone on the internet.
local function allowed()
    if ngx_var.up42webhooks_listener == "admin" then
        local peer = ngx_var.realip_remote_addr or ngx_var.remote_addr
        if addr.contains(config.admin_allow, peer) and addr.contains(config.admin_allow, ngx_var.remote_addr) then
            return true
        end
    end
    local token = config and config.admin_token
    local auth = req.get_headers()["authorization"]
    if token and type(auth) == "string" then
        local given = auth:match("^[Bb]earer%s+(.+)$")
        if given and same_secret(given, token) then
            return true
        end
    end
    return false
end

local function deny()
    count("denied")
    ngx_log(WARN, "up42webhooks: denied ", ngx_var.uri, " to ", ngx_var.remote_addr)
    return respond(403, { code = 403, error = "forbidden",
                          msg = "forbidden: a bearer token, or a local client of the admin listener" })
end

-- For the admin handlers: answers 503 before configure() and 403 to a client that may not read,
-- and says whether it did.
local function admin_refused()
    if not config then
        respond(503, { code = 503, msg = "receiver not configured" })
        return true
    end
    if not allowed() then
        deny()
        return true
    end
    return false
end

-- GET /dump-webhooks[?event=&status=&live=&since=]: one stored event a line, arrival order, then
-- {"number_webhooks_received": N} with N the number of lines listed.
function _M.dump()
    if admin_refused() then
        return
    end
    local args = req.get_uri_args()
    local want_event, want_status = args.event, args.status
    local want_live = args.live
    local since = tonumber(args.since) or 0
    ngx.header["Content-Type"] = "application/x-ndjson"
    local last = config.events:get(COUNTER_KEY) or 0
    local listed, chunk = 0, {}
    for n = math.max(since + 1, 1), last do
        local value = config.events:get(n)
        if value then
            local event, status, live, line = value:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
            if line and (not want_event or want_event == event) and (not want_status or want_status == status)
                and (not want_live or want_live == live) then
                listed = listed + 1
                chunk[#chunk + 1] = line
                if #chunk == 256 then
                    chunk[#chunk + 1] = ""
                    ngx_print(concat(chunk, "\n"))
                    chunk = {}
                end
            end
        end
    end
    chunk[#chunk + 1] = json_encode{ number_webhooks_received = listed }
    ngx_say(concat(chunk, "\n"))
    return ngx_exit(200)
end

-- GET /stats: the outcome counters, JSON (or Prometheus text with ?format=prometheus).
function _M.stats()
    if admin_refused() then
        return
    end
    local counters = {}
    for _, k in ipairs(config.counters:get_keys(0)) do
        counters[k] = config.counters:get(k)
    end
    local stored = config.events:get(COUNTER_KEY) or 0
    if req.get_uri_args().format == "prometheus" then
        ngx.header["Content-Type"] = "text/plain; version=0.0.4"
        local lines = { "# TYPE up42webhooks_requests_total counter" }
        for k, v in pairs(counters) do
            lines[#lines + 1] = ('up42webhooks_requests_total{outcome="%s"} %d'):format(k, v)
        end
        lines[#lines + 1] = "# TYPE up42webhooks_last_key gauge"
        lines[#lines + 1] = "up42webhooks_last_key " .. stored
        ngx_say(concat(lines, "\n"))
        return ngx_exit(200)
    end
    return respond(200, { counters = counters, last_key = stored })
end

-- GET /ping
function _M.ping()
    ngx.header["Content-Type"] = "text/plain"
    ngx_say("PONG")
    return ngx_exit(200)
end

-- Is this event one people want to hear about (a final or failed state)?
function _M.is_notifiable(event)
    local by_event = config and config.notifiable or DEFAULTS.notifiable
    local statuses = type(event) == "table" and by_event[event.event]
    return statuses and type(event.body) == "table" and statuses[event.body.status] == true or false
end

-- The original article's names, so that its location blocks keep working.
_M.set_key_value_webhook = _M.receive
_M.dump_webhooks = _M.dump
function _M.dump_cardinality()
    if admin_refused() then
        return
    end
    return json_encode{ number_webhooks_received = config.events:get(COUNTER_KEY) or 0 }
end

return _M
