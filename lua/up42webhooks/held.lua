-- Admin requests that hold their connection: tails (GET /tail) and long polls (GET
-- /dump-webhooks?wait=S). Every one holds one of nginx's worker_connections for as long as it
-- lasts, so together they have one cap, max_held (max_tails for tails alone), and beyond it a 503
-- with Retry-After: the rest of worker_connections stays for deliveries.
--
-- Each worker counts its own in a Lua table and publishes the count in the stats dict under its
-- pid with a short TTL, refreshed every second: a worker that dies (kill -9, a crash) takes its
-- count with it within TTL seconds, instead of leaving it in a shared counter for good.
local ngx = ngx
local pairs = pairs
local find = string.find
local sub = string.sub

local _M = {}

local TTL = 3
local KINDS = { tails = true, waits = true }

local mine = { tails = 0, waits = 0 }

local function publish(c, kind)
    c.counters:set("held:" .. kind .. ":" .. ngx.worker.pid(), mine[kind], TTL)
end

-- Every worker's published counts: tails, waits.
function _M.totals(c)
    local total = { tails = 0, waits = 0 }
    for _, k in pairs(c.counters:get_keys(0)) do
        if find(k, "^held:") then
            local kind = sub(k, 6, find(k, ":", 6, true) - 1)
            if KINDS[kind] then
                total[kind] = total[kind] + (c.counters:get(k) or 0)
            end
        end
    end
    return total
end

-- Takes a place for this request ("tails" or "waits"), or returns nil and why when the caps are
-- reached. The place is given back by release(), once, however the request ends.
function _M.take(c, kind)
    mine[kind] = mine[kind] + 1
    publish(c, kind)
    local total = _M.totals(c)
    local why
    if total.tails + total.waits > c.max_held then
        why = "too many tails and long polls open (max_held " .. c.max_held .. ")"
    elseif kind == "tails" and total.tails > c.max_tails then
        why = "too many tails open (max_tails " .. c.max_tails .. ")"
    end
    if why then
        mine[kind] = mine[kind] - 1
        publish(c, kind)
        return nil, why
    end
    ngx.ctx.up42webhooks_held = kind
    return true
end

function _M.release(c)
    local kind = ngx.ctx.up42webhooks_held
    if kind then
        ngx.ctx.up42webhooks_held = nil
        mine[kind] = mine[kind] - 1
        publish(c, kind)
    end
end

-- Every second, from the worker's timer: this worker's counts are still there.
function _M.refresh(c)
    for kind in pairs(KINDS) do
        publish(c, kind)
    end
end

-- Whether a held request should end now: its client went away (lua_check_client_abort calls
-- on_abort), or its worker is exiting (a reload or a stop, which would otherwise wait for it).
function _M.should_end()
    return ngx.ctx.up42webhooks_aborted or ngx.worker.exiting()
end

-- Registers the abort handler: the request's loops see should_end() and finish themselves, so
-- that the place is given back on their way out.
function _M.watch_client()
    local ok = ngx.on_abort(function()
        ngx.ctx.up42webhooks_aborted = true
    end)
    return ok
end

return _M
