-- POST /receive-webhooks (and one location per configured sender): read the body, verify it
-- through the library, check the body's own fields, then hand it to the store.
local native = require "up42webhooks.native"
local senders = require "up42webhooks.senders"
local origin = require "up42webhooks.origin"
local config = require "up42webhooks.config"
local reply = require "up42webhooks.reply"
local cjson = require "cjson.safe"

local ngx = ngx
local req = ngx.req
local ngx_var = ngx.var
local ngx_time = ngx.time
local json_decode = cjson.decode
local respond = reply.respond
local reject = reply.reject
local count = reply.count
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local find = string.find
local gsub = string.gsub

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

-- Verifies a delivery of another sender; returns the decoded event, its dedup id, its body's
-- SHA-256 and what the dump shows of it, or nil after answering.
local function verify_sender(c, sender, body, now)
    message.method = req.get_method()
    message.scheme, message.authority = origin.of_request(c, sender)
    message.target = ngx_var.request_uri
    message.raw_headers = raw_headers()
    message.body = body
    local v, reason, msg = native.verify_message(sender.ring, message, now, sender.opts)
    message.body, message.raw_headers = nil, nil
    if not v then
        return reject(reason == "body_too_large" and 413 or 401, reason, msg)
    end
    local digest = native.body_sha256(v)
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
    return event, id, digest, ev, status, live
end

-- Verifies a UP42 delivery; returns the same as verify_sender, plus the index of the secret.
local function verify_up42(c, body, now)
    local v, reason, msg = native.verify_raw(c.key, raw_headers(), body, now, c.opts)
    if not v then
        return reject(reason == "body_too_large" and 413 or 401, reason, msg)
    end
    local key_index = tonumber(v.key_index)
    local digest = native.body_sha256(v)
    local event = json_object(body)
    if not event then
        return
    end
    -- created is not covered by the UP42 HMAC; the body's timestamp is.
    if type(event.timestamp) ~= "string" then
        return reject(401, "malformed_timestamp", "the body has no timestamp")
    end
    local t, treason, tmsg = native.check_timestamp(event.timestamp, now, c.opts)
    if not t then
        return reject(401, treason, tmsg)
    end
    -- `v` is the worker's reused result struct: still this delivery's, since nothing between the
    -- verification and here verifies or yields. The digest is only formatted when there is no id.
    local id = type(event.messageId) == "string" and event.messageId ~= "" and ("m:" .. event.messageId)
               or ("d:" .. native.body_sha256_hex(v))
    local status = type(event.body) == "table" and event.body.status or nil
    return event, id, digest, event.event, status, event.liveMode, key_index
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
    full = function(_, detail)
        return reply.unavailable("store_full", "store full, retry later", detail)
    end,
    unavailable = function(_, detail)
        return reply.unavailable("store_unavailable", "cannot store the event now, retry later", detail)
    end,
    journal = function(_, detail)
        ngx.log(ngx.ERR, "up42webhooks: ", detail)
        return reply.unavailable("journal_error", "cannot store the event now, retry later", detail)
    end,
}

-- POST: verify, deduplicate, store. `name` picks a sender of configure{senders=} (`receive("github")`);
-- without it the delivery is UP42's.
function _M.receive(name)
    local c = config.current
    if not c then
        return reply.not_configured("receive() before configure()")
    end
    local sender
    if name ~= nil then
        sender = c.senders[name]
        if not sender then
            return reply.not_configured("receive(\"" .. tostring(name)
                                        .. "\"): no such sender in configure{senders=}; have: "
                                        .. senders.names(c.senders))
        end
    elseif not c.key then
        return reply.not_configured("receive() for UP42 without a UP42 secret")
    end
    if req.get_method() ~= "POST" then
        count("method_not_allowed")
        return respond(405, { code = 405, msg = "method not allowed" })
    end
    local length = tonumber(ngx_var.http_content_length)
    if length and length > c.max_body then
        return reject(413, "body_too_large", "the body is larger than allowed")
    end
    local body, err = read_body()
    if not body then
        ngx.log(ngx.ERR, "up42webhooks: cannot read the spooled body: ", err)
        return respond(503, { code = 503, msg = "cannot read the body" })
    end
    local now = ngx_time()
    local event, id, digest, ev, status, live, key_index
    if sender then
        event, id, digest, ev, status, live = verify_sender(c, sender, body, now)
    else
        event, id, digest, ev, status, live, key_index = verify_up42(c, body, now)
    end
    if not event then
        return
    end
    local meta = one_line(tostring(ev or "")) .. "\t" .. one_line(tostring(status or "")) .. "\t"
                 .. (live == nil and "" or tostring(live))
    local key, why, detail = c.store.add(c, { id = id, digest = digest, meta = meta, line = one_line(body),
                                              now = now, sender = sender and sender.name or "up42" })
    if not key then
        return REFUSED[why](id, detail)
    end
    count("stored")
    if sender then
        count("stored_from_" .. sender.name)
    elseif key_index > 0 then
        count("stored_with_secret_" .. key_index)
    end
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
