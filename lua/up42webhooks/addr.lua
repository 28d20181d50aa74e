-- Lists of client addresses: who may read the admin listener without a token, and which proxies'
-- forwarding headers are believed. Entries, as a table or one string separated by commas or spaces:
--   "127.0.0.0/8", "192.0.2.10"   IPv4 networks and addresses
--   "::1", "::ffff:10.0.0.1"      IPv6 addresses as nginx writes $remote_addr (no IPv6 prefixes)
--   "loopback"                    127.0.0.0/8, ::1 and unix-socket clients
--   "gateway"                     this host's IPv4 default gateway, read from /proc/net/route when
--                                 the list is made: in a container that is the Docker host, from
--                                 which its published ports arrive
local floor = math.floor
local open = io.open

local _M = {}

-- a.b.c.d as a number, or nil. IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4.
local function ipv4(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then
        a, b, c, d = s:match("^::[fF][fF][fF][fF]:(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    end
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if not (a and a < 256 and b < 256 and c < 256 and d < 256) then
        return nil
    end
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- The IPv4 default gateway in a /proc/net/route table (its Gateway column is hexadecimal, in the
-- host's byte order: little-endian on every board and PC this runs on), or nil.
function _M.gateway(path)
    local f = open(path or "/proc/net/route", "r")
    if not f then
        return nil
    end
    local text = f:read("*a")
    f:close()
    for dest, gw in text:gmatch("\n%S+%s+(%x+)%s+(%x+)") do
        if tonumber(dest, 16) == 0 and tonumber(gw, 16) ~= 0 and #gw == 8 then
            local n = tonumber(gw, 16)
            return ("%d.%d.%d.%d"):format(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256,
                                          floor(n / 16777216))
        end
    end
    return nil
end

-- A matcher for the list, or nil and what is wrong with it. `route` is the routing table to read
-- "gateway" from (tests give their own).
function _M.new(list, route)
    if type(list) == "string" then
        local t = {}
        for item in list:gmatch("[^,%s]+") do t[#t + 1] = item end
        list = t
    end
    local m = { v4 = {}, exact = {} }
    for _, item in ipairs(list or {}) do
        if item == "loopback" then
            m.v4[#m.v4 + 1] = { 127 * 16777216, 2 ^ 24 }
            m.exact["::1"], m.unix = true, true
        elseif item == "gateway" then
            local gw = _M.gateway(route)
            if not gw then
                return nil, "no default gateway in " .. (route or "/proc/net/route")
            end
            m.v4[#m.v4 + 1] = { ipv4(gw), 1 }
        else
            local host, bits = item:match("^([^/]+)/(%d+)$")
            host, bits = host or item, tonumber(bits or 32)
            local n = ipv4(host)
            if n and bits <= 32 then
                local size = 2 ^ (32 - bits)
                m.v4[#m.v4 + 1] = { floor(n / size) * size, size }
            elseif not n and item:find(":", 1, true) and not item:find("/", 1, true) then
                m.exact[item:lower()] = true
            else
                return nil, "not an address or network: " .. item
            end
        end
    end
    return m
end

-- Is `addr` (as nginx writes $remote_addr) in the list?
function _M.contains(m, addr)
    if not m or type(addr) ~= "string" then
        return false
    end
    local n = ipv4(addr)
    if n then
        for _, net in ipairs(m.v4) do
            if n >= net[1] and n < net[1] + net[2] then
                return true
            end
        end
        return false
    end
    if m.unix and addr:sub(1, 5) == "unix:" then
        return true
    end
    return m.exact[addr:lower()] == true
end

return _M
