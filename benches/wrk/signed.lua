-- wrk script: every request is a distinct UP42 delivery (its own messageId, a fresh timestamp,
-- about 1 KiB), signed in wrk's own LuaJIT through libup42webhooks. BODY=padded (the default) pads
-- a small job event with 800 bytes of one letter; BODY=job is a job with five tasks, each with its
-- own random UUID, as UP42 sends them (what compresses as real deliveries do). Used for the signed run and,
-- unchanged but for the path, for the `return 200` baseline, so both runs do the same client work.
-- Environment: UP42WH_ROOT (repository), UP42WH_LIB (the .so), UP42_WEBHOOK_SECRET.
local ffi = require "ffi"
package.path = os.getenv("UP42WH_ROOT") .. "/lua/?.lua;" .. package.path
ffi.cdef(require "up42webhooks.cdef")
local lib = ffi.load(os.getenv("UP42WH_LIB"))
local secret = os.getenv("UP42_WEBHOOK_SECRET")
local PAD = string.rep("p", 800)
local JOB = os.getenv("BODY") == "job"

local function uuid()
    return ("%08X-%04X-%04X-%04X-%04X%08X"):format(math.random(0, 0x7fffffff), math.random(0, 0xffff),
        math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0x7fffffff))
end

local STATUSES = { "NOT_STARTED", "RUNNING", "SUCCEEDED" }
local function job_body(n, ts)
    local tasks = {}
    for i = 1, 5 do
        tasks[i] = ('{"id":"%s","name":"data-block-%d","status":"%s","progress":%d,"startedAt":"%s",'
            .. '"finishedAt":null}'):format(uuid(), i, STATUSES[math.random(1, 3)], math.random(0, 100), ts)
    end
    return ('{"event":"job.status","liveMode":false,"messageId":"wrk-%s-%d","timestamp":"%s",'
        .. '"body":{"jobId":"%s","status":"RUNNING","startedAt":"%s","finishedAt":null,"tasks":[%s]}}')
        :format(id, n, ts, uuid(), ts, table.concat(tasks, ","))
end

local counter, key, signed = 0, nil, nil

function setup(thread)
    thread:set("id", (tostring(thread):gsub("%W", "")))
end

function init()
    local slice = ffi.new("up42wh_slice[1]")
    slice[0].ptr = secret
    slice[0].len = #secret
    local out = ffi.new("up42wh_key *[1]")
    assert(lib.up42wh_key_new(slice, 1, out) == 0, "key")
    key = out[0]
    signed = ffi.new("up42wh_signed")
end

function request()
    counter = counter + 1
    local now = os.time()
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", now)
    local body = JOB and job_body(counter, ts)
        or ('{"event":"job.status","liveMode":false,"messageId":"wrk-%s-%d","timestamp":"%s",'
            .. '"body":{"jobId":"j-%d","status":"RUNNING","pad":"%s"}}'):format(id, counter, ts, counter, PAD)
    assert(lib.up42wh_sign(key, body, #body, now, nil, signed) == 0, "sign")
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Content-Digest"] = ffi.string(signed.content_digest, signed.content_digest_len),
        ["Signature-Input"] = ffi.string(signed.signature_input, signed.signature_input_len),
        ["Signature"] = ffi.string(signed.signature, signed.signature_len),
    }, body)
end

function done(summary)
    io.write(("requests %d, socket errors %d, non-2xx %d\n"):format(summary.requests,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status))
end
