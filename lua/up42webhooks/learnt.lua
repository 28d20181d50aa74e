-- POST /learnt-webhooks on the admin listener: a status UP42 never delivered, learnt from its API
-- by `up42wh up42 reconcile` (UP42 sends each notification once: what a receiver that was down
-- missed is gone unless asked for). Stored as a delivery is, so that the dump, the tail, the page
-- and the forwarder see it like any other event, with its own sender (`up42-api`) and its own
-- scheme in the envelope (saying it is not signed by UP42). Its dedup id is the transition itself,
-- `up42-api:order:<orderId>:<status>` (or `job:`), so a transition is stored once however many
-- reconcilers run at once.
--
-- The body takes the deliveries' one path through the library (its JSON, event, status and
-- timestamp read as UP42's are): signed here with a key made at configure and never shown, then
-- received with it. The admin listener's own checks (loopback or the token; Host, Origin) are what
-- let a request in.
local cjson = require "cjson.safe"
local native = require "up42webhooks.native"
local senders = require "up42webhooks.senders"
local receive = require "up42webhooks.receive"
local reply = require "up42webhooks.reply"
local gate = require "up42webhooks.gate"

local ngx, req = ngx, ngx.req
local respond, reject = reply.respond, reply.reject
local type = type

local _M = {}

_M.SENDER = "up42-api"
_M.SCHEME = "learnt from UP42's API, not signed by UP42"

-- The id each kind of event names, and the prefix of its transition's id.
local KINDS = {
    ["order.status"] = { field = "orderId", prefix = "order:" },
    ["job.status"] = { field = "jobId", prefix = "job:" },
}

local function random_hex(n)
    local f, err = io.open("/dev/urandom", "rb")
    if not f then
        return nil, "cannot read /dev/urandom: " .. tostring(err)
    end
    local bytes = f:read(n)
    f:close()
    if not bytes or #bytes ~= n then
        return nil, "short read from /dev/urandom"
    end
    return (bytes:gsub(".", function(b) return ("%02x"):format(b:byte()) end))
end

-- At configure: the sender the learnt events are received as. `defaults`: the receiver's settings
-- (the replay horizon is UP42's body timestamp's limit, as for its deliveries).
function _M.new(defaults)
    local secret, err = random_hex(32)
    if not secret then
        return nil, err
    end
    local sender, serr = senders.new(_M.SENDER, { profile = "up42", secret = secret }, defaults)
    if not sender then
        return nil, serr
    end
    sender.verified_by = _M.SCHEME
    sender.signing_key, serr = native.new_signing_key(secret)
    if not sender.signing_key then
        return nil, serr
    end
    return sender
end

-- A name UP42 uses for an id or a status: printable, no separator of ours, not too long.
local function plain(v)
    return type(v) == "string" and #v >= 1 and #v <= 100 and v:find("^[%w%-_. ]+$") ~= nil
end

local function invalid(msg)
    return reject(400, "invalid_learnt_event", msg)
end

function _M.store(c)
    c = gate.admitted(c)
    if not c then
        return
    end
    if req.get_method() ~= "POST" then
        return respond(405, { code = 405, msg = "method not allowed: POST /learnt-webhooks" })
    end
    local sender = c.learnt
    local body = receive.body_within(sender.max_body)
    if not body then
        return
    end
    local e = cjson.decode(body)
    if type(e) ~= "table" then
        return invalid("the body is not a JSON object")
    end
    local kind = KINDS[e.event]
    if not kind then
        return invalid("event: order.status or job.status")
    end
    local b = e.body
    local id, status = type(b) == "table" and b[kind.field], type(b) == "table" and b.status
    if not plain(id) or not plain(status) then
        return invalid("body." .. kind.field .. " and body.status: UP42's id and status names")
    end
    local transition = kind.prefix .. id .. ":" .. status
    if e.messageId ~= transition then
        return invalid("messageId: " .. transition .. " (one event per transition)")
    end
    local ready, rwhy, rdetail = c.store:ready()
    if not ready then
        return receive.REFUSED[rwhy](rdetail)
    end
    local now = ngx.time()
    local headers, why, msg = native.sign_up42(sender.signing_key, body, now)
    if not headers then
        return receive.REFUSED.error(why .. ": " .. msg)
    end
    local d, claim, rmsg = native.deliver(sender.ring, { raw_headers = headers, body = body }, now,
                                          sender.opts, sender, c.store.index, c.store.pending_ttl)
    if not d then
        -- What the library refuses in the body itself (its timestamp, a field twice, ...).
        return reject(400, claim, rmsg)
    end
    return receive.store_verified(c, sender, claim, d, body, now)
end

return _M
