-- The admin listener's endpoints: the dump (paged, long-polling), the live tail (Server-Sent
-- Events), acknowledgement and the stats, for loopback clients or the bearer token.
local reply = require "up42webhooks.reply"
local gate = require "up42webhooks.gate"
local senders = require "up42webhooks.senders"
local held = require "up42webhooks.held"
local cjson = require "cjson.safe"

local ngx, req, ngx_print, ngx_say = ngx, ngx.req, ngx.print, ngx.say
local respond, admitted, json_encode = reply.respond, gate.admitted, cjson.encode
local type, pairs, ipairs, tonumber, tostring, select = type, pairs, ipairs, tonumber, tostring, select
local concat, sort, find, min = table.concat, table.sort, string.find, math.min

local _M = {}

-- A 400 for a query argument, with the values it takes when they are few; nil, for the caller
-- to return.
local function bad_argument(msg, accepted)
    respond(400, { code = 400, error = "bad_argument", msg = msg, accepted = accepted })
    return nil
end

-- A position in the store (`since`, `upto`, Last-Event-ID), as the store reads it, its default
-- when absent, or nil after a 400.
local function cursor_arg(c, args, name, default)
    local v = args[name]
    if v == nil then
        return default
    end
    local cur = type(v) == "string" and c.store.cursor(v)
    if not cur then
        return bad_argument(name .. " must be " .. c.store.CURSOR)
    end
    return cur
end

-- The largest whole number a Lua number (a double) and a JSON reader hold exactly: 2^53 - 1.
local MAX_SAFE = 9007199254740991

-- A cursor as JSON: a key with every digit (cjson and tostring write 14 significant digits, and
-- 9007199254740991 would come back as 9.007199254741e+15), or an entry id's string.
local function cursor_json(cur)
    if type(cur) == "number" then
        return ("%.0f"):format(cur)
    end
    return json_encode(cur)
end

-- A non-negative integer query argument (digits only), its default when absent, or nil after a
-- 400.
local function integer_arg(args, name, default, max)
    local v = args[name]
    if v == nil then
        return default
    end
    max = max or MAX_SAFE
    local n = type(v) == "string" and find(v, "^%d+$") and tonumber(v)
    if not n or n > max then
        return bad_argument(name .. " must be a whole number up to " .. ("%.0f"):format(max))
    end
    return n
end

local DUMP_ARGS = { "event", "status", "live", "since", "limit", "wait", "count", "meta", "consumer", "before" }
local BOOLEAN = { "true", "false" }
local UP42_EVENTS = { "job.status", "order.status" }
local UP42_STATUSES = "in capitals, as UP42 sends them: e.g. PENDING, RUNNING, SUCCEEDED, FAILED, "
                      .. "CANCELLED, FULFILLED, FAILED_PERMANENTLY"

local function one_of(list, v)
    for _, x in ipairs(list) do
        if x == v then return true end
    end
    return false
end

-- A filter's value as a list: "FAILED,FAILED_PERMANENTLY" is two; nil and why for an empty item.
local function list_of(name, v)
    local items = {}
    for item in (v .. ","):gmatch("([^,]*),") do
        if item == "" then
            return nil, name .. ": an empty value in " .. v .. " (values are separated by single commas)"
        end
        items[#items + 1] = item
    end
    return items
end

-- The dump's arguments, checked: a name it does not take, a repeated one or a value no event can
-- have is a 400 that lists what it takes (a filter that silently matches nothing looks like an
-- empty store). `event` and `status` take comma-separated lists (any of them matches). UP42's
-- event names and statuses are known; another sender's are its own, so with senders configured
-- only their form is checked. The lists replace args.event and args.status; nil after the 400.
local function dump_args(c)
    local args = req.get_uri_args()
    for name, v in pairs(args) do
        if not one_of(DUMP_ARGS, name) then
            return bad_argument("the dump takes no argument " .. tostring(name) .. ": it takes "
                                .. concat(DUMP_ARGS, ", "), DUMP_ARGS)
        end
        if type(v) ~= "string" then
            return bad_argument(name .. " once, with a value (several values: " .. name .. "=a,b)")
        end
    end
    for _, name in ipairs{ "live", "count", "meta" } do
        if args[name] and not one_of(BOOLEAN, args[name]) then
            return bad_argument(name .. " must be true or false, not " .. args[name], BOOLEAN)
        end
    end
    local others = senders.others(c.senders)
    if args.event then
        local events, err = list_of("event", args.event)
        if not events then
            return bad_argument(err)
        end
        for _, event in ipairs(events) do
            if not one_of(UP42_EVENTS, event) then
                if one_of(UP42_EVENTS, event .. ".status") or not others then
                    return bad_argument("event: " .. event .. " is not an event; event must be one of "
                                        .. concat(UP42_EVENTS, ", ")
                                        .. (others and " or another sender's event name" or ""), UP42_EVENTS)
                end
                if #event > 128 or not find(event, "^[%w][%w._:/-]*$") then
                    return bad_argument("event: " .. event .. " is not an event name (letters, digits, "
                                        .. "'.', '_', ':', '/', '-')")
                end
            end
        end
        args.event = events
    end
    if args.status then
        local statuses, err = list_of("status", args.status)
        if not statuses then
            return bad_argument(err)
        end
        for _, status in ipairs(statuses) do
            if #status > 128 or find(status, "[%c]") then
                return bad_argument("status: at most 128 characters, none of them control characters")
            end
            if not others and not find(status, "^[A-Z][A-Z_ ]*$") then
                local upper = status:upper()
                return bad_argument("status: " .. status .. ": statuses are written " .. UP42_STATUSES
                                    .. (upper ~= status and (" (" .. upper .. "?)") or ""))
            end
        end
        args.status = statuses
    end
    return args
end

-- A declared consumer's name from the query: nil when there is none, false after a 400.
local function consumer_arg(c, args)
    local v = args.consumer
    if v == nil then
        return nil
    end
    local declared = c.store.consumers
    if type(v) ~= "string" then
        bad_argument("consumer once, with a value")
    elseif not declared then
        bad_argument("consumer: no consumers are declared (configure{consumers}, UP42_WEBHOOK_CONSUMERS)")
    elseif not one_of(declared, v) then
        bad_argument("consumer: " .. v .. " is not declared; the consumers are " .. concat(declared, ", "), declared)
    else
        return v
    end
    return false
end

-- Where a dump or a tail starts: `since`, or with consumer=NAME after that consumer's position
-- (an explicit `since` wins); the consumer (nil without one) and its gap (retention dropped events
-- it had not acknowledged). nil after a 400 or a 503.
local function start_of(c, args)
    local consumer = consumer_arg(c, args)
    if consumer == false then
        return nil
    end
    local position, gap
    if consumer then
        position, gap = c.store:consumer(consumer)
        if position == nil then
            reply.unavailable("store_unavailable", "cannot read the consumer's position now, retry later", gap)
            return nil
        end
    end
    return cursor_arg(c, args, "since", position or c.store.START), consumer, gap
end

-- What a reader is told when retention dropped events its consumer had not acknowledged.
local function gap_json(gap)
    return '{"after":' .. cursor_json(gap.after) .. ',"through":' .. cursor_json(gap.through) .. "}"
end

-- The set of a list, for lookups.
local function set_of(list)
    if not list then
        return nil
    end
    local set = {}
    for _, v in ipairs(list) do set[v] = true end
    return set
end

-- The filter of the dump's event/status/live arguments, or nil for all.
local function filter_of(args)
    local want_event, want_status, want_live = set_of(args.event), set_of(args.status), args.live
    if not (want_event or want_status or want_live) then
        return nil
    end
    return function(event, status, live)
        return (not want_event or want_event[event] == true) and (not want_status or want_status[status] == true)
               and (not want_live or want_live == live)
    end
end

local LIVE_JSON = { ["true"] = "true", ["false"] = "false" }

-- A text field as JSON: null when empty.
local function text_json(v)
    if v == nil or v == "" then
        return "null"
    end
    return json_encode(v)
end

-- Whether key `a` is at or before key `b`: numbers in the shared dict, "ms-seq" entry ids in
-- Redis ("0" there: nothing yet).
local function at_or_before(a, b)
    if type(a) == "number" then
        return a <= (tonumber(b) or 0)
    end
    local ams, aseq = a:match("^(%d+)%-?(%d*)$")
    local bms, bseq = tostring(b):match("^(%d+)%-?(%d*)$")
    ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq) or 0, tonumber(bms), tonumber(bseq) or 0
    if not (ams and bms) then
        return false
    end
    return ams < bms or (ams == bms and aseq <= bseq)
end

-- The consumers' positions as JSON ({"forward": K, ...}; without declared consumers, the default
-- one), and a function giving the JSON list of those that have acknowledged a key.
local function positions_of(c)
    local positions = c.store:positions()
    if not positions then
        return "null", function() return "null" end
    end
    local names, parts = {}, {}
    for name in pairs(positions) do names[#names + 1] = name end
    sort(names)
    for i, name in ipairs(names) do
        parts[i] = json_encode(name) .. ":" .. cursor_json(positions[name])
    end
    return "{" .. concat(parts, ",") .. "}", function(key)
        local by = {}
        for _, name in ipairs(names) do
            if at_or_before(key, positions[name]) then
                by[#by + 1] = json_encode(name)
            end
        end
        return "[" .. concat(by, ",") .. "]"
    end
end

-- An event's line with ?meta=true: its key, when it arrived, the consumers that have
-- acknowledged it, its envelope (what was verified: sender, scheme, key index, delivery id; an
-- event of an older journal has none), the fields the filters read, and the event as stored, last.
local function meta_line(acked_by, key, line, time, envelope, event, status, live)
    return '{"key":' .. cursor_json(key) .. ',"received":' .. (time and ("%.0f"):format(time) or "null")
           .. ',"acknowledged_by":' .. acked_by(key)
           .. ((envelope and envelope ~= "") and ("," .. envelope) or "")
           .. ',"event_type":' .. text_json(event) .. ',"status":' .. text_json(status)
           .. ',"live":' .. (LIVE_JSON[live] or "null") .. ',"event":' .. line .. "}"
end

-- GET /dump-webhooks[?event=&status=&live=&since=K&limit=N&wait=S&count=false&meta=true]: one
-- stored event a line (with meta=true, one JSON object with its key and envelope), in key order,
-- then {"number_webhooks_received": n, "next": K}: n lines listed, K the cursor for the next
-- call's since (count=false leaves that line out, for `jq -s`). wait=S holds the request until an
-- event after `since` exists. consumer=NAME starts after that consumer's position (since, when
-- given, wins), and the last line says "gap" when retention dropped events it had not
-- acknowledged. before=K&limit=N pages backwards, newest first; `next` is then the next page's
-- before. The last line also has each consumer's position ("acknowledged"), and with meta=true
-- each event says which consumers have acknowledged it: reading acknowledges nothing, and an
-- acknowledgement removes nothing (retention does).
function _M.dump(c)
    c = admitted(c)
    if not c then
        return
    end
    local args = dump_args(c)
    if not args then
        return
    end
    local since, consumer, gap = start_of(c, args)
    if not since then
        return
    end
    local limit = integer_arg(args, "limit", false) -- false: no limit
    if limit == nil then
        return
    end
    local wait = integer_arg(args, "wait", 0, c.max_wait)
    if not wait then
        return
    end
    local before
    if args.before ~= nil then
        if args.since or args.wait or consumer then
            return bad_argument("before pages backwards from a key: not with since, wait or consumer")
        end
        before = cursor_arg(c, args, "before")
        if not before then
            return
        end
    end
    if wait > 0 then
        local ok, why = held.take(c, "waits")
        if not ok then
            return reply.unavailable("wait_refused", why .. ", retry later")
        end
        held.watch_client()
        c.store:wait(since, wait, held.should_end)
        held.release(c)
        if ngx.ctx.up42webhooks_aborted then
            return ngx.exit(499) -- nobody to answer
        end
    end
    ngx.header["Content-Type"] = "application/x-ndjson"
    local chunk = {}
    local printed = false
    local with_meta = args.meta == "true"
    local positions, acked_by = positions_of(c)
    local read = before and c.store.range_back or c.store.range
    local listed, nxt = read(c.store, before or since, limit or nil, filter_of(args), function(key, line, _, ...)
        chunk[#chunk + 1] = with_meta and meta_line(acked_by, key, line, ...) or line
        if #chunk == 256 then
            chunk[#chunk + 1] = ""
            ngx_print(concat(chunk, "\n"))
            chunk, printed = {}, true
        end
    end)
    if not listed then
        ngx.log(ngx.WARN, "up42webhooks: dump: ", nxt)
        if not printed then
            ngx.header["Content-Type"] = "application/json"
            return reply.unavailable("store_unavailable", "cannot read the store now, retry later", nxt)
        end
        return ngx.exit(ngx.ERROR) -- cut the answer short: its reader sees no closing count
    end
    if args.count ~= "false" then
        -- Written in this order every time (a table's order would follow its hash).
        chunk[#chunk + 1] = '{"number_webhooks_received":' .. listed .. ',"next":' .. cursor_json(nxt)
                            .. (gap and (',"gap":' .. gap_json(gap)) or "") .. ',"acknowledged":' .. positions
                            .. "}"
        ngx_say(concat(chunk, "\n"))
    elseif #chunk > 0 then
        chunk[#chunk + 1] = "" -- the last event's line break
        ngx_print(concat(chunk, "\n"))
    end
    return ngx.exit(200)
end

-- POST /ack-webhooks?upto=K: moves a consumer's position to K (as far as readers can see, never
-- back), and removes nothing. With consumers declared, &consumer=NAME is required; without, the
-- default consumer's moves.
function _M.ack(c)
    c = admitted(c)
    if not c then
        return
    end
    if req.get_method() ~= "POST" then
        return respond(405, { code = 405, msg = "method not allowed: POST /ack-webhooks?upto=K" })
    end
    local args = req.get_uri_args()
    if args.upto == nil then
        return bad_argument("upto must be " .. c.store.CURSOR)
    end
    local upto = cursor_arg(c, args, "upto", nil)
    if not upto then
        return
    end
    local consumer = consumer_arg(c, args)
    if consumer == false then
        return
    end
    local declared = c.store.consumers
    if declared and not consumer then
        -- Unnamed, it would be nobody's.
        return respond(400, { code = 400, error = "consumer_required", accepted = declared,
                              msg = "consumers are declared (" .. concat(declared, ", ") .. "): acknowledge "
                                    .. "as one of them, POST /ack-webhooks?consumer=NAME&upto=K" })
    end
    local passed, through, why = c.store:ack(upto, ngx.time(), consumer)
    if not passed then
        return reply.unavailable(why, "cannot record the acknowledgement now, retry later", through, ngx.ERR)
    end
    ngx.header["Content-Type"] = "application/json"
    ngx_say('{"acked":', passed, ',"upto":', cursor_json(through), ',"consumer":',
            json_encode(consumer or c.store.DEFAULT_CONSUMER), "}")
    return ngx.exit(200)
end

-- GET /tail[?since=K&meta=true&consumer=NAME] (or Last-Event-ID): Server-Sent Events, one
-- `event: webhook` per stored event with `id: <key>` and the event as `data:` (with meta=true, its
-- key and envelope too; with consumer=NAME, from after its position, an `event: gap` first when
-- retention dropped events it had not acknowledged), a heartbeat comment every tail_heartbeat
-- seconds. Tails and long polls share max_held (tails alone max_tails), so that they cannot take
-- the workers' connections; a tail ends when its client goes away or its worker exits (a reload:
-- `retry:` sends an EventSource to the new workers at once).
function _M.tail(c)
    c = admitted(c)
    if not c then
        return
    end
    local args = req.get_uri_args()
    -- A reconnecting EventSource sends the URL it started with and the last id it saw: the id wins.
    local last_id = req.get_headers()["last-event-id"]
    if type(last_id) == "string" then
        args.since = last_id
    end
    local since, _, gap = start_of(c, args)
    if not since then
        return
    end
    if args.meta ~= nil and not one_of(BOOLEAN, args.meta) then
        return bad_argument("meta must be true or false", BOOLEAN)
    end
    local with_meta = args.meta == "true"
    local taken, why = held.take(c, "tails")
    if not taken then
        return reply.unavailable("tail_refused", why .. ", retry later")
    end
    held.watch_client()
    ngx.status = 200
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["X-Accel-Buffering"] = "no"
    local ok, err = pcall(function()
        local beat = ngx.now() + c.tail_heartbeat
        -- The headers and this comment now, not with the first event: a client that resumes at
        -- the newest key learns at once that its stream is open.
        ngx_print(": up42webhooks tail\n\n",
                  gap and ("event: gap\ndata: " .. gap_json(gap) .. "\n\n") or "")
        local opened, oerr = ngx.flush(true)
        if not opened then
            return oerr
        end
        while not held.should_end() do
            local out = {}
            -- Who has acknowledged what, as of this read (meta lines only).
            local acked_by = with_meta and select(2, positions_of(c))
            local listed, nxt = c.store:range(since, 256, nil, function(key, line, _, ...)
                out[#out + 1] = "event: webhook\nid: " .. key .. "\ndata: "
                                .. (with_meta and meta_line(acked_by, key, line, ...) or line) .. "\n\n"
            end)
            if not listed then
                return nxt -- the store is unreachable: end the stream, the client reconnects
            end
            since = nxt
            if ngx.now() >= beat then
                out[#out + 1] = ": heartbeat\n\n"
                beat = ngx.now() + c.tail_heartbeat
            end
            if #out > 0 then
                ngx_print(concat(out))
                local sent, ferr = ngx.flush(true)
                if not sent then
                    return ferr -- the client went away
                end
            else
                c.store:wait(since, min(1, beat - ngx.now()), held.should_end)
            end
        end
        if ngx.worker.exiting() then
            ngx_print(": this worker is exiting: reconnect\nretry: 500\n\n")
            ngx.flush(true)
        end
    end)
    held.release(c)
    if not ok then
        ngx.log(ngx.ERR, "up42webhooks: tail: ", err)
    end
    return ngx.exit(ngx.OK)
end

-- Any other path of the admin listener (in Lua, not nginx's `return`, so that the Host and
-- cross-site checks of the access phase run first).
function _M.not_found()
    return respond(404, { code = 404, error = "not_found", msg = "not found" })
end

-- The article's dump_cardinality(): the number of events held, as JSON text.
function _M.cardinality(c)
    c = admitted(c)
    if not c then
        return
    end
    return json_encode{ number_webhooks_received = c.store:count() }
end

-- The dicts' sizes, where lua-resty-core tells them.
local function dict_space(dict)
    if dict.capacity then
        return { capacity = dict:capacity(), free = dict:free_space() }
    end
    return {}
end

-- Counters of the stats dict that are not delivery outcomes, with their Prometheus types.
local STORE_COUNTS = {
    expired = "counter", acked = "counter", evicted = "counter", journal_corrupt = "counter",
    journal_torn_bytes = "counter", replay_no_room = "counter",
    journal_replayed_events = "gauge", journal_replay_ms = "gauge", journal_replay_index_ms = "gauge",
    replay_index_not_kept = "counter",
    -- UP42's created/expires out of their window: counted besides the delivery's outcome.
    unsigned_time_stale = "counter", unsigned_time_future = "counter", unsigned_time_expired = "counter",
}

-- GET /stats: the outcome counters and the backlog, JSON (or Prometheus text with ?format=prometheus).
function _M.stats(c)
    c = admitted(c)
    if not c then
        return
    end
    -- A stored delivery is counted once, by the secret or sender it came with: "stored" is
    -- their sum.
    local counters, stored = {}, 0
    for _, k in ipairs(c.counters:get_keys(0)) do
        if not find(k, ":", 1, true) then -- counters only: "held:...", "lock:..." are not
            local v = c.counters:get(k)
            counters[k] = v
            if find(k, "^stored_") then
                stored = stored + v
            end
        end
    end
    if stored > 0 then
        counters.stored = stored
    end
    local backlog = c.store:stats()
    local dedup = c.store:dedup(ngx.time())
    local dicts = { stats = dict_space(c.counters) }
    for name, dict in pairs(c.store:dicts()) do
        dicts[name] = dict_space(dict)
    end
    -- The last key handed out (the newest entry's id in Redis, where ids are not numbers).
    local last = c.store:last_key(backlog)
    local consumers = c.store:consumers_stats()
    if req.get_uri_args().format == "prometheus" then
        ngx.header["Content-Type"] = "text/plain; version=0.0.4"
        -- Deliveries by outcome are one counter; the store's own counts and the last replay's
        -- figures are metrics of their own.
        local lines = { "# TYPE up42webhooks_requests_total counter" }
        local own = {}
        for k, v in pairs(counters) do
            if STORE_COUNTS[k] then
                own[#own + 1] = ("# TYPE up42webhooks_%s %s\nup42webhooks_%s %d"):format(k, STORE_COUNTS[k], k, v)
            else
                lines[#lines + 1] = ('up42webhooks_requests_total{outcome="%s"} %d'):format(k, v)
            end
        end
        for _, l in ipairs(own) do lines[#lines + 1] = l end
        if type(last) == "number" then
            lines[#lines + 1] = "# TYPE up42webhooks_last_key gauge"
            lines[#lines + 1] = "up42webhooks_last_key " .. last
        end
        lines[#lines + 1] = "# TYPE up42webhooks_events gauge"
        lines[#lines + 1] = "up42webhooks_events " .. (backlog.events or 0)
        if backlog.journal then
            lines[#lines + 1] = "# TYPE up42webhooks_journal_bytes gauge"
            lines[#lines + 1] = "up42webhooks_journal_bytes " .. backlog.journal.bytes
        end
        for _, k in ipairs{ "ids", "capacity" } do
            if dedup[k] then
                lines[#lines + 1] = "# TYPE up42webhooks_dedup_" .. k .. " gauge"
                lines[#lines + 1] = "up42webhooks_dedup_" .. k .. " " .. dedup[k]
            end
        end
        if consumers then
            lines[#lines + 1] = "# TYPE up42webhooks_consumer_lag gauge"
            for name, cs in pairs(consumers) do
                lines[#lines + 1] = ('up42webhooks_consumer_lag{consumer="%s"} %d'):format(name, cs.lag)
            end
            lines[#lines + 1] = "# TYPE up42webhooks_consumer_lost counter"
            for name, cs in pairs(consumers) do
                lines[#lines + 1] = ('up42webhooks_consumer_lost{consumer="%s"} %d'):format(name, cs.lost)
            end
        end
        lines[#lines + 1] = "# TYPE up42webhooks_dict_free_bytes gauge"
        for name, d in pairs(dicts) do
            if d.capacity then
                lines[#lines + 1] = ('up42webhooks_dict_free_bytes{dict="%s"} %d'):format(name, d.free)
            end
        end
        ngx_say(concat(lines, "\n"))
        return ngx.exit(200)
    end
    local open = held.totals(c)
    backlog.tails_open, backlog.waits_open = open.tails, open.waits
    return respond(200, { counters = counters, last_key = last, backlog = backlog, dedup = dedup, dicts = dicts,
                          consumers = consumers, positions = c.store:positions() })
end

return _M
