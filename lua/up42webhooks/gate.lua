-- The admin listener's door: who may use it (the bearer token, or a client address in
-- admin_allow) and what a web browser may make it do. A browser on the operator's machine is a
-- loopback client, so any page it shows could otherwise read or delete the events:
--   - DNS rebinding: a page whose name now resolves to 127.0.0.1 is "same-origin" with the
--     listener. Every request's Host must be a name the listener answers to (check_host): loopback
--     names and addresses, the address the connection arrived on, or admin_hosts. A rebinding
--     page can only send its own name.
--   - Cross-site requests: a form or a no-cors fetch reaches the listener without a CORS
--     preflight. A request that says it comes from another site (an Origin that is not the
--     listener's own, Sec-Fetch-Site cross-site or same-site) may not change anything, nor open
--     a read that holds a connection; a link followed (a navigation) may still read.
-- Programs (curl, make, monitoring) send neither Origin nor Sec-Fetch-*: they are not affected.
local reply = require "up42webhooks.reply"
local addr = require "up42webhooks.addr"
local hosts = require "up42webhooks.hosts"

local ngx, req, ngx_var = ngx, ngx.req, ngx.var
local respond, count, split_host = reply.respond, reply.count, hosts.split
local type, lower, find, byte = type, string.lower, string.find, string.byte
local bxor, bor = bit.bxor, bit.bor

local _M = {}

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

-- Host names that only ever mean this machine: no DNS answer can make a page have one of them.
local LOOPBACK = { ["localhost"] = true, ["127.0.0.1"] = true, ["[::1]"] = true }

-- The address the connection arrived on, as it would be written in a Host header.
local function own_address()
    local a = ngx_var.server_addr
    if a and find(a, ":", 1, true) then
        return "[" .. a .. "]"
    end
    return a
end

-- Whether the request's Host is one this listener answers to. No Host at all (HTTP/1.0) is a
-- program's request: a browser always sends one.
local function known_host(c, host)
    if host == nil then
        return true
    end
    if type(host) ~= "string" then
        return false
    end
    local name, port = split_host(host)
    if not name then
        return false
    end
    -- A loopback name at any port: a forwarded port (Docker's -p, ssh -L) changes the port the
    -- browser names, and DNS rebinding controls the name, never the port.
    if LOOPBACK[name] or name == own_address() then
        return true
    end
    local allowed = c and c.admin_hosts[name]
    return allowed == true or (type(allowed) == "table" and port ~= nil and allowed[port] == true)
end

local DEFAULT_PORT = { http = 80, https = 443 }

-- Whether an Origin header names the origin the request was sent to (its Host). The listener
-- speaks plain HTTP, but a proxy ending TLS in front of it (admin_hosts) makes the page https.
local function same_origin(origin, host)
    if type(origin) ~= "string" or type(host) ~= "string" then
        return false
    end
    local scheme, authority = lower(origin):match("^(https?)://([^/]+)$")
    if not scheme then
        return false -- "null" (a sandboxed frame, a file), or not an origin
    end
    local oname, oport = split_host(authority)
    local hname, hport = split_host(host)
    if not oname or oname ~= hname then
        return false
    end
    return (oport or DEFAULT_PORT[scheme]) == (hport or DEFAULT_PORT[scheme])
end

-- Why a request comes from another site, or nil: a foreign Origin, or Sec-Fetch-Site cross-site
-- or same-site (another port of the same host is the same site, but another origin).
local function other_site()
    local headers = req.get_headers()
    local site = headers["sec-fetch-site"]
    if site ~= nil and site ~= "same-origin" and site ~= "none" then
        return "Sec-Fetch-Site: " .. (type(site) == "string" and site or "several")
    end
    local origin = headers["origin"]
    if origin ~= nil and not same_origin(origin, headers["host"]) then
        return "Origin " .. (type(origin) == "string" and origin or "several")
    end
    return nil
end

local READS = { GET = true, HEAD = true }

-- In the admin server's access phase, for every request: a Host it does not answer to is a 421
-- before anything is read; a request from another site is a 403 unless it is a link followed to
-- a page (GET or HEAD, Sec-Fetch-Mode: navigate), which a page of that site cannot read.
function _M.check_request(c)
    if req.is_internal() or not c then
        -- An error page nginx chose: the request was checked when it came in. Not configured:
        -- the handler answers 503.
        return
    end
    local host = ngx_var.http_host
    if not known_host(c, host) then
        count("admin_unknown_host")
        reply.log_limited(ngx.WARN, "unknown_host", "up42webhooks: admin: refused Host " .. host
                          .. " (not a name this listener answers to; see admin_hosts)")
        return respond(421, { code = 421, error = "unknown_host",
                              msg = "this listener does not answer to that Host: use localhost or "
                                    .. "127.0.0.1, or add the name to UP42_WEBHOOK_ADMIN_HOSTS" })
    end
    local why = other_site()
    if why and not (READS[req.get_method()] and ngx_var.http_sec_fetch_mode == "navigate") then
        count("admin_cross_site")
        reply.log_limited(ngx.WARN, "cross_site", "up42webhooks: admin: refused a request from "
                          .. "another site (" .. why .. ") to " .. ngx_var.uri)
        return respond(403, { code = 403, error = "cross_site",
                              msg = "refused: a request from another site (" .. why .. "); the "
                                    .. "admin listener takes requests from programs and its own pages" })
    end
end

-- Anyone with the bearer token; without it, a client of the admin listener (the server that sets
-- $up42webhooks_listener to "admin") in admin_allow, loopback by default. Both the TCP peer and the
-- address nginx reports (which set_real_ip_from may have taken from a header) must be in it, so a
-- realip setting can only take trust away. On any other server the address grants nothing: a
-- tunnel or proxy on this host connects from loopback for everyone on the internet.
local function allowed(c)
    if ngx_var.up42webhooks_listener == "admin" then
        local peer = ngx_var.realip_remote_addr or ngx_var.remote_addr
        if addr.contains(c.admin_allow, peer) and addr.contains(c.admin_allow, ngx_var.remote_addr) then
            return true
        end
    end
    local token = c.admin_token
    local auth = req.get_headers()["authorization"]
    if token and type(auth) == "string" then
        local given = auth:match("^[Bb]earer%s+(.+)$")
        if given and same_secret(given, token) then
            return true
        end
    end
    return false
end

-- The receiver `c` for an admin handler, or nil after answering 503 (not configured) or 403.
function _M.admitted(c)
    if not c then
        reply.not_configured()
        return nil
    end
    if not allowed(c) then
        count("denied")
        ngx.log(ngx.WARN, "up42webhooks: denied ", ngx_var.uri, " to ", ngx_var.remote_addr)
        respond(403, { code = 403, error = "forbidden",
                       msg = "forbidden: a bearer token, or a local client of the admin listener" })
        return nil
    end
    return c
end

return _M
