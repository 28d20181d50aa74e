-- Host names as a Host header or an Origin writes them ("name", "name:port", "[::1]:port"), and
-- admin_hosts (UP42_WEBHOOK_ADMIN_HOSTS): the names the admin listener answers to besides its
-- loopback ones, for a reverse proxy or a tunnel in front of it. Entries, as a table or one string
-- separated by commas or spaces: "name" (any port) or "name:port" (that port only).
local type = type
local tonumber = tonumber
local lower = string.lower
local find = string.find
local concat = table.concat

local _M = {}

-- "name[:port]" as the lower-cased name and the port (a number, or nil when none is written);
-- nil when it is not one. Names are DNS names or IP literals, IPv6 in brackets.
function _M.split(s)
    s = lower(s)
    local name, rest = s:match("^(%[[%x:%.]+%])(.*)$")
    if not name then
        name, rest = s:match("^([%w%.%-_]+)(.*)$")
    end
    if not name then
        return nil
    end
    if rest == "" then
        return name, nil
    end
    local port = tonumber(rest:match("^:(%d%d?%d?%d?%d?)$"))
    if not port or port < 1 or port > 65535 then
        return nil
    end
    return name, port
end

-- A list of names as name -> true (any port) or name -> { [port] = true }; nil and why when an
-- entry is not a name.
function _M.new(spec)
    local hosts = {}
    if spec == nil then
        return hosts
    end
    if type(spec) == "table" then
        spec = concat(spec, ",")
    end
    if type(spec) ~= "string" then
        return nil, "a list of host names (name or name:port), separated by commas or spaces"
    end
    for entry in spec:gmatch("[^,%s]+") do
        local name, port = _M.split(entry)
        if not name or find(name, "^[%.%-]") or find(name, "%.%.") then
            return nil, "not a host name or name:port: " .. entry
        end
        if not port then
            hosts[name] = true
        elseif hosts[name] ~= true then
            hosts[name] = hosts[name] or {}
            hosts[name][port] = true
        end
    end
    return hosts
end

return _M
