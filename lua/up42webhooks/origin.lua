-- The scheme and authority a sender used, which RFC 9421 signatures cover (@scheme, @authority,
-- @target-uri), when nginx may not see them itself: behind a proxy or tunnel that ends TLS and
-- talks plain HTTP to nginx, the request arrives as http://127.0.0.1:9888. In order:
--   1. what is configured (a sender's or configure{}'s scheme/authority): right for one fixed URL;
--   2. a trusted proxy's forwarding headers, believed only when the TCP peer is in
--      trusted_proxies: RFC 7239 Forwarded (proto=, host=), else X-Forwarded-Proto and
--      X-Forwarded-Host; of a list, the last element, which the nearest proxy wrote;
--   3. the request itself: nginx's $scheme and the Host header.
local addr = require "up42webhooks.addr"

local ngx = ngx
local type = type
local lower = string.lower

local _M = {}

-- The last of a header's values, and of the comma-separated elements in it.
local function last(value)
    if type(value) == "table" then
        value = value[#value]
    end
    if type(value) ~= "string" then
        return nil
    end
    return value:match("([^,]*)$"):match("^%s*(.-)%s*$")
end

local function scheme_of(s)
    s = s and lower(s)
    return (s == "http" or s == "https") and s or nil
end

-- An authority is host[:port]: letters, digits and the few marks of names and IP literals (the
-- library lower-cases it and drops the scheme's default port).
local function authority_of(s)
    return s and s:match("^[%w%.%-%[%]:_]+$")
end

-- proto and host of the last element of a Forwarded header.
local function forwarded(value)
    local element = last(value)
    if not element then
        return nil, nil
    end
    local proto, host
    for pair in element:gmatch("[^;]+") do
        local k, v = pair:match("^%s*([%w_%-]+)%s*=%s*(.-)%s*$")
        if k then
            v = v:match('^"(.*)"$') or v
            k = lower(k)
            if k == "proto" then
                proto = v
            elseif k == "host" then
                host = v
            end
        end
    end
    return scheme_of(proto), authority_of(host)
end

-- The scheme and authority to verify against. `c` holds scheme, authority and trusted_proxies (an
-- addr matcher) as configured; `sender` may override the first two.
function _M.of_request(c, sender)
    local var = ngx.var
    local scheme = sender.scheme or c.scheme
    local authority = sender.authority or c.authority
    if (not scheme or not authority) and c.trusted_proxies
        and addr.contains(c.trusted_proxies, var.realip_remote_addr or var.remote_addr) then
        local headers = ngx.req.get_headers(100)
        local fproto, fhost = forwarded(headers["forwarded"])
        scheme = scheme or fproto or scheme_of(last(headers["x-forwarded-proto"]))
        authority = authority or fhost or authority_of(last(headers["x-forwarded-host"]))
    end
    return scheme or var.scheme, authority or var.http_host or var.host
end

return _M
