-- Answers and counters shared by the receive and admin handlers.
local cjson = require "cjson.safe"

local ngx = ngx
local json_encode = cjson.encode

local _M = {}

-- What configure{} set: the stats dict, the log window and Retry-After (set() below).
local counters, log_window, retry_after = nil, 10, 60

function _M.set(c)
    counters, log_window, retry_after = c.counters, c.log_window, c.retry_after
end

-- Counts an outcome in the stats dict.
function _M.count(outcome, n)
    if counters then
        counters:incr(outcome, n or 1, 0)
    end
end

-- A JSON answer, and the end of the request.
function _M.respond(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(json_encode(body))
    return ngx.exit(status)
end

-- Log lines of refusals and failures, per worker: for each key (a reason, with the client where
-- it is the client's fault), the first line of a window is written and the rest counted, so that a
-- flood of bad requests or a failing disk cannot fill the log (the stats count every one). The
-- table is bounded: past MAX_KEYS it starts again.
local window_of = {}   -- key -> end of the current window
local suppressed = {}  -- key -> lines not written in it
local keys = 0
local MAX_KEYS = 1024

-- Writes `line` at `level`, unless a line of `key` was written less than log_window seconds ago.
local function log_limited(level, key, line)
    local window = log_window
    local now = ngx.now()
    local ends = window_of[key]
    if ends and now < ends then
        suppressed[key] = (suppressed[key] or 0) + 1
        return
    end
    if not ends then
        keys = keys + 1
        if keys > MAX_KEYS then
            window_of, suppressed, keys = {}, {}, 1
        end
    end
    local n = suppressed[key]
    window_of[key], suppressed[key] = now + window, nil
    if n then
        ngx.log(level, line, " (and ", n, " more like it in the last ", window, " s, not logged)")
    else
        ngx.log(level, line)
    end
end
_M.log_limited = log_limited

local function log_refusal(reason, client)
    client = tostring(client)
    log_limited(ngx.WARN, reason .. " " .. client,
                "up42webhooks: rejected delivery: " .. reason .. ", client " .. client)
end
_M.log_refusal = log_refusal

-- A refused delivery: counted, logged at warn with its reason and the client (never a secret).
function _M.reject(status, reason, msg)
    _M.count("rejected_" .. reason)
    log_refusal(reason, ngx.var.remote_addr)
    return _M.respond(status, { code = status, error = reason, msg = msg })
end

-- 503 with Retry-After: the sender (or reader) retries later; nothing stored is evicted to make room.
-- Logged at `level` (warn unless given), one line per outcome and log window.
function _M.unavailable(outcome, msg, detail, level)
    _M.count(outcome)
    log_limited(level or ngx.WARN, "503 " .. outcome,
                "up42webhooks: " .. ngx.var.uri .. ": 503 (" .. outcome .. "): " .. tostring(detail or msg))
    ngx.header["Retry-After"] = retry_after
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
