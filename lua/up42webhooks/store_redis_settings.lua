-- The Redis store's settings (up42webhooks/store_redis.lua): configure{ store = ... } or
-- UP42_WEBHOOK_STORE read into the address, the password (never in a message) and the pool, for a
-- Redis (redis://) or a master found through Sentinel (sentinel://); and which client library
-- there is to reach it.
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

local getenv = os.getenv
local format = string.format
local ipairs, tonumber, type = ipairs, tonumber, type

local _M = { client = client, connector = connector }

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

return _M
