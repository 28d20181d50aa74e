-- POST /receive-webhooks (and one location per configured sender): read the body, verify it and
-- read its fields through the library's one path (every sender, UP42 included, is a key ring and
-- a scheme: up42webhooks/senders.lua), then hand it to the store.
local native = require "up42webhooks.native"
local senders = require "up42webhooks.senders"
local origin = require "up42webhooks.origin"
local reply = require "up42webhooks.reply"

local ngx, req, ngx_var, ngx_time = ngx, ngx.req, ngx.var, ngx.time
local respond, reject, count = reply.respond, reply.reject, reply.count
local tonumber, concat = tonumber, table.concat

local _M = {}

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

-- The body when it is at most `max` bytes, else nil after answering (413; 503 when a spooled body
-- cannot be read).
function _M.body_within(max)
    local length = tonumber(ngx_var.http_content_length)
    if length and length > max then
        return reject(413, "body_too_large", "the body is larger than allowed")
    end
    local body, err = read_body()
    if not body then
        ngx.log(ngx.ERR, "up42webhooks: cannot read the spooled body: ", err)
        return respond(503, { code = 503, msg = "cannot read the body" })
    end
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

-- The HTTP status of each refusal by the library: the body's own faults are 400, a body over the
-- limit 413, every failure to authenticate 401.
local STATUS_OF = { body_too_large = 413, not_json_object = 400, duplicate_field = 400, invalid_field = 400 }

local function refuse(reason, msg)
    return reject(STATUS_OF[reason] or 401, reason, msg)
end

-- Reused for every verification: filled, used and done with before any yield.
local message = {}

-- Verifies a delivery, reads what the store keeps and claims its id (one library call):
-- returns the library's delivered struct and the claim, or nil after answering.
local function verify(c, sender, body, now)
    if sender.signs_request then
        message.method = req.get_method()
        message.scheme, message.authority = origin.of_request(c, sender)
        message.target = ngx_var.request_uri
    end
    message.raw_headers = raw_headers()
    message.body = body
    local store = c.store
    local d, claim, msg = native.deliver(sender.ring, message, now, sender.opts, sender, store.index,
                                         store.pending_ttl)
    message.body, message.raw_headers = nil, nil
    if not d then
        return refuse(claim, msg)
    end
    if sender.profile == "ubiops" then
        -- Date is covered; a replayed request keeps its old Date.
        local date = ngx_var.http_date
        date = date and ngx.parse_http_time(date)
        local why, text
        if not date then
            why, text = "malformed_timestamp", "the Date header is missing or not an HTTP date"
        elseif now - date > sender.tolerance then
            why, text = "stale", "the Date header is too old"
        elseif date - now > sender.future then
            why, text = "future", "the Date header is in the future"
        end
        if why then
            native.deliver_cancel()
            return reject(401, why, text)
        end
    end
    return d, claim
end

-- What each refusal of the store answers.
local REFUSED = {
    duplicate = function()
        count("duplicate")
        return respond(200, { msg = "duplicate: already stored" })
    end,
    id_conflict = function()
        count("rejected_id_conflict")
        reply.log_refusal("id_conflict", ngx_var.remote_addr)
        return respond(409, { code = 409, error = "id_conflict",
                              msg = "this delivery id is stored with another body" })
    end,
    in_flight = function()
        return reply.unavailable("in_flight", "the same delivery is being stored now, retry later")
    end,
    full = function(detail)
        return reply.unavailable("store_full", "store full, retry later", detail)
    end,
    not_durable = function(detail)
        return reply.unavailable("store_not_durable", "the store would not keep the event now, retry later",
                                 detail)
    end,
    unavailable = function(detail)
        return reply.unavailable("store_unavailable", "cannot store the event now, retry later", detail)
    end,
    journal = function(detail)
        return reply.unavailable("journal_error", "cannot store the event now, retry later", detail, ngx.ERR)
    end,
    error = function(detail)
        return reply.unavailable("store_error", "cannot store the event now, retry later", detail)
    end,
}

_M.REFUSED = REFUSED

-- POST: verify, deduplicate, store. `name` picks a sender of configure{senders=} (`receive("github")`);
-- without it the delivery is UP42's. `c`: the receiver configure{} made.
function _M.receive(c, name)
    if not c then
        return reply.not_configured("receive() before configure()")
    end
    local sender = c.senders[name or "up42"]
    if not sender then
        if name == nil then
            return reply.not_configured("receive() for UP42 without a UP42 secret")
        end
        return reply.not_configured("receive(\"" .. tostring(name)
                                    .. "\"): no such sender in configure{senders=}; have: "
                                    .. senders.names(c.senders))
    end
    if req.get_method() ~= "POST" then
        count("method_not_allowed")
        return respond(405, { code = 405, msg = "method not allowed" })
    end
    local body = _M.body_within(sender.max_body)
    if not body then
        return
    end
    -- What may wait (yield) in storing it, before the delivery fills the worker's buffers.
    local ready, rwhy, rdetail = c.store:ready()
    if not ready then
        return REFUSED[rwhy](rdetail)
    end
    local now = ngx_time()
    -- One library call: signature, digest, the body as one JSON object, its timestamp, what the
    -- store keeps, and the id's claim. `d` is the worker's reused struct: read below before
    -- anything yields.
    local d, claim = verify(c, sender, body, now)
    if not d then
        return
    end
    return _M.store_verified(c, sender, claim, d, body, now)
end

-- A delivery native.deliver verified and claimed (`claim`; `d` the library's reused struct, read
-- before anything yields) of `sender` stored, and the answer sent: stored with its key, a
-- duplicate, or why not. The admin listener's events learnt from UP42's API
-- (up42webhooks/learnt.lua) end here too.
function _M.store_verified(c, sender, claim, d, body, now)
    local unsigned = tonumber(d.delivery.unsigned_times)
    if unsigned ~= 0 then
        -- UP42's `created`/`expires`, which its signature does not cover, are out of their window:
        -- that alone refuses nothing (the signed body timestamp is inside the horizon), but an
        -- operator wants to know (a retry, a slow clock, a capture replayed).
        local why = native.result_name(unsigned)
        count("unsigned_time_" .. why)
        reply.log_limited(ngx.WARN, "unsigned " .. why .. " " .. ngx_var.remote_addr,
                          "up42webhooks: a delivery's created/expires (not covered by its signature) is "
                          .. why .. " from client " .. ngx_var.remote_addr .. "; its signed body timestamp "
                          .. "is within the replay horizon, so it goes on to the dedup check")
    end
    local counter = sender.stored_counter[tonumber(d.delivery.key_index)]
    -- The store reads `d` before anything yields (Redis does), and not after.
    local key, why, detail = c.store:add{ claim = claim, delivered = d, body = body, now = now,
                                          sender = sender.name }
    if not key then
        return REFUSED[why](detail)
    end
    count(counter)
    ngx.header["Content-Type"] = "application/json"
    -- A number in the shared dict, a stream entry id (text) in Redis.
    if type(key) == "string" then
        ngx.say('{"msg":"stored","key":"', key, '"}')
    else
        ngx.say('{"msg":"stored","key":', key, "}")
    end
    return ngx.exit(200)
end

return _M
