-- configure{}: the receiver's settings, checked once in init_by_lua, and the receiver they make:
-- its senders (up42webhooks/senders.lua), its store object (store.new or store_redis.new) and the
-- settings the handlers read. up42webhooks.lua keeps it and hands it to each handler. Options (all
-- optional but a secret or a sender):
--   secrets = {"s1", "s2"} | secret = "s" | secret_file = path (one secret a line, first signs)
--     (else UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE; declare them with nginx's `env`)
--   tolerance, future (seconds), max_body (bytes), label, notifiable, retry_after
--   replay_horizon (UP42_WEBHOOK_REPLAY_HORIZON; seconds, 3 days): how long a delivery id is
--     remembered (a retry is a duplicate, the id with another body a conflict), and how old UP42's
--     body timestamp may be; dedup_capacity (UP42_WEBHOOK_DEDUP_CAPACITY; 1,000,000): the ids the
--     replay index holds over the horizon (a third of them a third of the horizon)
--   dict, dedup_dict, stats_dict: the lua_shared_dict names
--   admin_token (UP42_WEBHOOK_ADMIN_TOKEN), admin_allow (UP42_WEBHOOK_ADMIN_ALLOW): up42webhooks/addr.lua
--   admin_hosts (UP42_WEBHOOK_ADMIN_HOSTS): Host names the admin listener answers to besides
--     loopback, up42webhooks/hosts.lua (why: up42webhooks/gate.lua)
--   public_url (UP42_WEBHOOK_PUBLIC_URL), scheme, authority, trusted_proxies
--     (UP42_WEBHOOK_TRUSTED_PROXIES): what RFC 9421 senders signed, see up42webhooks/origin.lua
--   senders = { name = { profile = ..., ... } }: see up42webhooks/senders.lua
--   journal = { dir = path (UP42_WEBHOOK_JOURNAL_DIR; default $prefix/data),
--               fsync = "always" | "interval" | "never" (UP42_WEBHOOK_JOURNAL_FSYNC; "interval"),
--               segment_size = bytes (64 MiB) }
--     | false (memory only, as the original article; also UP42_WEBHOOK_JOURNAL=off)
--   retention = { max_age = seconds (7 days), acked_max_age = seconds (the replay horizon),
--                 max_events = n (none) }: every event goes at max_age; one every consumer has
--     acknowledged at acked_max_age (the journal keeps its segment that long anyway); the memory
--     store evicts the oldest acknowledged events when it is full (docs/store.md)
--   consumers = { "forward", "inbox", ... } (UP42_WEBHOOK_CONSUMERS="forward,inbox"): named
--     consumers, each with a position of its own (docs/store.md); an acknowledgement moves the
--     position and removes nothing
--   store = { backend = "redis", url = "redis://...", ... } (UP42_WEBHOOK_STORE=redis://...): see
--     up42webhooks/store_redis.lua; without it, the shared dict and its journal
--   max_held (128): tails and long polls open at once, all workers together (up42webhooks/held.lua);
--   max_tails (16): tails among them; tail_heartbeat (15 s); max_wait (60 s)
local native = require "up42webhooks.native"
local senders = require "up42webhooks.senders"
local addr = require "up42webhooks.addr"
local hosts = require "up42webhooks.hosts"

local getenv = os.getenv

local _M = {}

local DEFAULTS = {
    dict = "received_webhooks",        -- events (key n -> record) and the store's own counters
    dedup_dict = "webhooks_seen",      -- marks of keys that hold nothing (gaps); the ids: the replay index
    stats_dict = "webhooks_stats",     -- outcome counters
    label = "up42-sig",
    tolerance = 300,                   -- seconds into the past
    future = 30,                       -- seconds into the future (clock skew)
    max_body = 1024 * 1024,
    retry_after = 60,                  -- seconds, with 503 when the event cannot be stored now
    admin_allow = "loopback",          -- clients the admin listener serves without the token
    max_held = 128,                    -- tails and long polls at once (each holds a connection)
    max_tails = 16,
    tail_heartbeat = 15,
    max_wait = 60,
    pending_ttl = 30,                  -- seconds a delivery may take between its claim and its 200
    replay_horizon = 3 * 86400,        -- seconds an id is remembered, and UP42's body timestamp may age
    dedup_capacity = 1000000,          -- ids the replay index holds over the horizon
    log_window = 10,                   -- seconds: one refusal line per reason and client in each
    notifiable = {
        ["job.status"] = { ERROR = true, FAILED = true, CANCELLED = true, SUCCEEDED = true },
        ["order.status"] = { FULFILLED = true, FAILED_PERMANENTLY = true, ["FAILED PERMANENTLY"] = true },
    },
}
_M.DEFAULTS = DEFAULTS

local JOURNAL = { fsync = "interval", segment_size = 64 * 1024 * 1024 }
local FSYNC = { always = true, interval = true, never = true }
local RETENTION = { max_age = 7 * 24 * 3600 }

-- A configure{} value, else the environment variable's; an empty one is no value.
local function setting(value, env)
    if value == nil and env then
        value = getenv(env)
    end
    if value == "" then
        return nil
    end
    return value
end

-- A setting the operator must fix: one line that names it and says what to do. No position: the
-- line is for whoever runs nginx, and up42webhooks.configure keeps the stack trace off it.
local function fail(msg)
    error(_M.FAILED .. msg, 0)
end
_M.FAILED = "up42webhooks: "

-- The secrets from configure{} or the environment; nil and why when a file was named but gives
-- none (nil alone when nothing was named).
local function secrets_of(o)
    local secrets = o.secrets or (o.secret and { o.secret })
    local file, named = o.secret_file, "configure{secret_file}"
    if not secrets and not file then
        local env_secret = setting(nil, "UP42_WEBHOOK_SECRET")
        if env_secret then
            return { env_secret }
        end
        file, named = setting(nil, "UP42_WEBHOOK_SECRET_FILE"), "UP42_WEBHOOK_SECRET_FILE"
    end
    if not secrets and file then
        local err
        secrets, err = senders.read_secrets_file(file)
        if not secrets then
            return nil, err .. " (" .. named .. "): create it with the secret you gave UP42 on "
                        .. "its first line, readable by the user that starts nginx"
        end
        if #secrets == 0 then
            return nil, "the secret file " .. file .. " (" .. named .. ") holds no secret: put "
                        .. "the secret you gave UP42 on its first line"
        end
    end
    return secrets
end

-- What makes a secret easy to guess, or nil: short, or the README's own example.
local PLACEHOLDERS = { ["choose-a-long-random-secret"] = true }
local function weakness(secret)
    if PLACEHOLDERS[secret] then
        return "the README's example, which everyone can read"
    end
    if #secret < 16 then
        return "only " .. #secret .. " bytes long"
    end
    return nil
end

-- The options configure{} knows (and, for the tables, their keys): any other is a typo to report.
local OPTIONS = {
    secrets = true, secret = true, secret_file = true, senders = true, store = true, consumers = true,
    admin_token = true, admin_allow = true, admin_hosts = true, public_url = true, scheme = true, authority = true,
    trusted_proxies = true,
    journal = { dir = true, fsync = true, segment_size = true },
    retention = { max_age = true, max_events = true, acked_max_age = true },
}
for k in pairs(DEFAULTS) do OPTIONS[k] = true end

-- A table's keys, sorted and joined: the options a message lists.
local function names_of(t)
    local names = {}
    for n in pairs(t) do names[#names + 1] = n end
    table.sort(names)
    return table.concat(names, ", ")
end

local function check_names(o)
    for k, v in pairs(o) do
        local known = OPTIONS[k]
        if not known then
            fail("configure{}: no option " .. tostring(k) .. " (options: " .. names_of(OPTIONS) .. ")")
        end
        if type(known) == "table" and type(v) == "table" then
            for sub in pairs(v) do
                if not known[sub] then
                    fail("configure{}: " .. k .. " has no option " .. tostring(sub) .. " ("
                         .. names_of(known) .. ")")
                end
            end
        end
    end
end

-- The journal's directory: configure{journal.dir}, UP42_WEBHOOK_JOURNAL_DIR, or $prefix/data;
-- without a trailing slash.
local function journal_dir(o)
    local dir = setting((o.journal or {}).dir, "UP42_WEBHOOK_JOURNAL_DIR") or (ngx.config.prefix() .. "data")
    return (dir:gsub("/+$", ""))
end

local function journal_of(o)
    if o.journal == false or (o.journal == nil and setting(nil, "UP42_WEBHOOK_JOURNAL") == "off") then
        return nil
    end
    local j = {}
    for k, v in pairs(JOURNAL) do
        j[k] = (o.journal or {})[k] or v
    end
    j.dir = journal_dir(o)
    j.fsync = setting((o.journal or {}).fsync, "UP42_WEBHOOK_JOURNAL_FSYNC") or j.fsync
    if not FSYNC[j.fsync] then
        fail(((o.journal or {}).fsync and "configure{journal.fsync}" or "UP42_WEBHOOK_JOURNAL_FSYNC")
             .. ": always, interval or never, not " .. tostring(j.fsync))
    end
    if type(j.segment_size) ~= "number" or j.segment_size < 4096 then
        fail("journal.segment_size: a number of bytes, 4096 or more")
    end
    local usage, err = native.journal_usage(j.dir)
    if not usage then
        fail("journal: " .. err .. " (UP42_WEBHOOK_JOURNAL_DIR): create the directory, writable by "
             .. "nginx's workers, or run without a journal (UP42_WEBHOOK_JOURNAL=off)")
    end
    -- At nginx's start (not in a test's Lua): the workers, not only the master, must write there,
    -- or every delivery would be a 503 after a start that looked fine.
    local uid, gid, who = nil, nil, nil
    if ngx.get_phase and ngx.get_phase() == "init" then
        uid, gid, who = native.worker_identity()
    end
    if uid then
        local ok, werr = native.journal_check_dir(j.dir, uid, gid)
        if not ok then
            fail("journal: nginx's workers (" .. who .. ") cannot write in " .. werr
                 .. " (UP42_WEBHOOK_JOURNAL_DIR): give them the directory (chown " .. who:gsub("^user ", "")
                 .. " " .. j.dir .. "), or choose another")
        end
    end
    return j
end

local function retention_of(o, horizon)
    local r = {}
    for k, v in pairs(RETENTION) do
        r[k] = (o.retention or {})[k] or v
    end
    r.max_events = (o.retention or {}).max_events
    r.acked_max_age = (o.retention or {}).acked_max_age or horizon
    for _, k in ipairs{ "max_age", "max_events", "acked_max_age" } do
        if r[k] ~= nil and (type(r[k]) ~= "number" or r[k] <= 0) then
            fail("retention." .. k .. ": a positive number")
        end
    end
    return r
end

-- The declared consumers from configure{consumers} or UP42_WEBHOOK_CONSUMERS (comma-separated), as
-- a list in the order given; nil when none.
local MAX_CONSUMERS = 32
local function consumers_of(o)
    local list, named = o.consumers, "configure{consumers}"
    if list == nil then
        local env = setting(nil, "UP42_WEBHOOK_CONSUMERS")
        if not env then
            return nil
        end
        list, named = {}, "UP42_WEBHOOK_CONSUMERS"
        for item in (env .. ","):gmatch("([^,]*),") do
            list[#list + 1] = item:match("^%s*(.-)%s*$")
        end
    end
    if type(list) ~= "table" then
        fail(named .. ": a list of names, e.g. { \"forward\", \"inbox\" }")
    end
    local seen = {}
    for _, name in ipairs(list) do
        if type(name) ~= "string" or #name > 64 or not name:match("^[%w_.-]+$") then
            fail(named .. ": a consumer's name is 1 to 64 letters, digits, '_', '.' or '-', not "
                 .. (type(name) == "string" and ("'" .. name .. "'") or tostring(name)))
        end
        if seen[name] then
            fail(named .. ": " .. name .. " is named twice")
        end
        seen[name] = true
    end
    if #list > MAX_CONSUMERS then
        fail(named .. ": at most " .. MAX_CONSUMERS .. " consumers")
    end
    return #list > 0 and list or nil
end

-- Checks `o` and makes it the configuration; errors (in init_by_lua: nginx does not start) on
-- anything wrong. A missing secret is an error: without one the receiver would accept everything.
function _M.configure(o)
    o = o or {}
    check_names(o)
    local c = {}
    for k, v in pairs(DEFAULTS) do
        if o[k] ~= nil then c[k] = o[k] else c[k] = v end
    end
    for k, env in pairs{ replay_horizon = "UP42_WEBHOOK_REPLAY_HORIZON",
                         dedup_capacity = "UP42_WEBHOOK_DEDUP_CAPACITY" } do
        local v = setting(o[k], env)
        local n = tonumber(v)
        if v ~= nil then
            if not n or n % 1 ~= 0 then
                fail((o[k] ~= nil and "configure{" .. k .. "}" or env) .. ": a whole number, not " .. tostring(v))
            end
            c[k] = n
        end
    end
    if c.replay_horizon < 3 or c.replay_horizon > 4294967295 then
        fail("replay_horizon: 3 to 4294967295 seconds (the default is 3 days)")
    end
    if c.replay_horizon < c.tolerance + c.future then
        fail("replay_horizon (" .. c.replay_horizon .. " s) is shorter than tolerance + future ("
             .. (c.tolerance + c.future) .. " s): a replay inside the tolerance would be stored again")
    end
    if c.dedup_capacity < 1 or c.dedup_capacity > 4294967296 then
        fail("dedup_capacity: 1 to 4294967296 ids")
    end
    local secrets, err = secrets_of(o)
    if err then
        fail(err)
    end
    -- Every sender, each chosen by name in its location: receive("name"); UP42's is `up42`,
    -- receive() without a name.
    c.senders = {}
    for name, sc in pairs(o.senders or {}) do
        if name == "up42" and (secrets or sc.profile ~= "up42") then
            fail("sender up42: the name is UP42's (profile up42, or configure{secret...} alone); "
                 .. "give this sender another name")
        end
        local sender, serr = senders.new(name, sc, c)
        if not sender then
            fail("sender " .. tostring(name) .. ": " .. serr)
        end
        c.senders[name] = sender
    end
    if secrets and #secrets > 0 then
        for i, sec in ipairs(secrets) do
            local weak = weakness(sec)
            if weak then
                ngx.log(ngx.WARN, "up42webhooks: the webhook secret", #secrets > 1 and (" on line " .. i) or "",
                        " is ", weak, ": whoever guesses it can sign deliveries that are stored as UP42's; ",
                        "use a random one of 16 bytes or more (make secret writes one)")
            end
        end
        local sender, serr = senders.new("up42", { profile = "up42", secrets = secrets, label = c.label }, c)
        if not sender then
            fail("bad secret: " .. serr)
        end
        c.senders.up42 = sender
    elseif not next(c.senders) then
        fail("no webhook secret configured: set UP42_WEBHOOK_SECRET to the secret you gave UP42, "
             .. "or UP42_WEBHOOK_SECRET_FILE to a file that holds it (one secret a line)")
    end
    -- What the admin listener learns from UP42's API (POST /learnt-webhooks), as its own sender.
    local lerr
    c.learnt, lerr = require("up42webhooks.learnt").new(c)
    if not c.learnt then
        fail("the sender of events learnt from UP42's API: " .. lerr)
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
            fail("lua_shared_dict " .. name .. " is not declared: add `lua_shared_dict " .. name
                 .. " 16m;` to nginx's http block, as openresty/default.conf does")
        end
    end
    c.counters = ngx.shared[c.stats_dict]

    c.admin_token = setting(o.admin_token, "UP42_WEBHOOK_ADMIN_TOKEN")
    local aerr, perr
    c.admin_allow, aerr = addr.new(setting(o.admin_allow, "UP42_WEBHOOK_ADMIN_ALLOW") or DEFAULTS.admin_allow)
    if not c.admin_allow then
        fail("admin_allow: " .. aerr)
    end
    local herr
    c.admin_hosts, herr = hosts.new(setting(o.admin_hosts, "UP42_WEBHOOK_ADMIN_HOSTS"))
    if not c.admin_hosts then
        fail((o.admin_hosts and "configure{admin_hosts}" or "UP42_WEBHOOK_ADMIN_HOSTS") .. ": " .. herr)
    end
    local trusted = setting(o.trusted_proxies, "UP42_WEBHOOK_TRUSTED_PROXIES")
    if trusted then
        c.trusted_proxies, perr = addr.new(trusted)
        if not c.trusted_proxies then
            fail("trusted_proxies: " .. perr)
        end
    end
    c.scheme, c.authority = o.scheme, o.authority
    local public_url = setting(o.public_url, "UP42_WEBHOOK_PUBLIC_URL")
    if public_url then
        local scheme, authority = public_url:match("^(https?)://([^/?#]+)/?$")
        if not scheme then
            fail("public_url: not an http:// or https:// URL without a path: " .. public_url)
        end
        c.scheme, c.authority = c.scheme or scheme, c.authority or authority
    end

    -- The store: Redis/Valkey when configured (several receivers, one stream), else the shared
    -- dict with its journal.
    -- A delivery id is remembered for the replay horizon, whatever becomes of its event.
    local store_settings = {
        dict = c.dict, dedup_dict = c.dedup_dict, stats_dict = c.stats_dict,
        retention = retention_of(o, c.replay_horizon),
        dedup_ttl = c.replay_horizon, pending_ttl = c.pending_ttl, dedup_capacity = c.dedup_capacity,
        consumers = consumers_of(o),
    }
    local so = o.store or {}
    local url = setting(so.url, "UP42_WEBHOOK_STORE")
    if so.backend == "redis" or url then
        local redis_store = require "up42webhooks.store_redis"
        local rerr
        store_settings.redis, rerr = redis_store.settings(so, url, setting(nil, "UP42_WEBHOOK_STORE_PASSWORD_FILE"))
        if not store_settings.redis then
            fail("store: " .. rerr)
        end
        c.store = redis_store.new(store_settings)
        -- Events kept by the journal before a switch to Redis are not in the stream: say so.
        local dir = journal_dir(o)
        local usage = native.journal_usage(dir)
        if usage and usage.segments > 0 and usage.bytes > 0 then
            ngx.log(ngx.WARN, "up42webhooks: store: Redis; the journal in ", dir, " (", usage.bytes, " bytes in ",
                    usage.segments, " segments) is not read with it, so its events are not in the dump: ",
                    "docs/store.md says how to move them into Redis")
        end
    elseif so.backend ~= nil and so.backend ~= "shdict" then
        fail("store.backend: redis or shdict, not " .. tostring(so.backend))
    else
        store_settings.journal = journal_of(o)
        -- The replay index: beside the journal, which it is rebuilt from; without one, in nginx's
        -- prefix (made anew at every start, as the events are).
        store_settings.index_path = (store_settings.journal and store_settings.journal.dir .. "/"
                                     or ngx.config.prefix()) .. "replay.index"
        c.store = require("up42webhooks.store").new(store_settings)
    end
    return c
end

return _M
