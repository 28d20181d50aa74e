-- Answers and counters shared by the receive and admin handlers.
local config = require "up42webhooks.config"
local cjson = require "cjson.safe"

local ngx = ngx
local json_encode = cjson.encode

local _M = {}

-- Counts an outcome in the stats dict.
function _M.count(outcome, n)
    local c = config.current
    if c then
        c.counters:incr(outcome, n or 1, 0)
    end
end

-- A JSON answer, and the end of the request.
function _M.respond(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(json_encode(body))
    return ngx.exit(status)
end

-- A refused delivery: counted, logged at warn with its reason and the client (never a secret).
function _M.reject(status, reason, msg)
    _M.count("rejected_" .. reason)
    ngx.log(ngx.WARN, "up42webhooks: rejected delivery: ", reason, ", client ", ngx.var.remote_addr)
    return _M.respond(status, { code = status, error = reason, msg = msg })
end

-- 503 with Retry-After: the sender (or reader) retries later; nothing stored is evicted to make room.
function _M.unavailable(outcome, msg, detail)
    local c = config.current
    _M.count(outcome)
    ngx.log(ngx.WARN, "up42webhooks: ", ngx.var.uri, ": 503 (", outcome, "): ", detail or msg)
    ngx.header["Retry-After"] = c and c.retry_after or 60
    return _M.respond(503, { code = 503, error = outcome, msg = msg })
end

-- 503 before configure(): the receiver cannot do anything.
function _M.not_configured(why)
    if why then
        ngx.log(ngx.ERR, "up42webhooks: ", why)
    end
    return _M.respond(503, { code = 503, msg = "receiver not configured" })
end

return _M
