-- Reading a stored record in LuaJIT: the library's one reader of the format (native.record_fields,
-- up42wh_record_read) against the Lua pattern store.lua used before it. 1 KiB records with their
-- envelope; the best of three rounds.
--   cargo run --release --example lua_bench -- benches/record_read.lua [records]
-- (from the repository; `make bench` does it).
package.path = "lua/?.lua;" .. package.path
package.cpath = (os.getenv("UP42WH_LIB_DIR") or "target/release") .. "/?.so;" .. package.cpath

local native = require "up42webhooks.native"

local N = tonumber(arg[1]) or 1000000
local body = '{"event":"job.status","liveMode":false,"messageId":"' .. ("m"):rep(36)
    .. '","timestamp":"2023-11-14T22:13:20Z","body":{"jobId":"j","status":"RUNNING","pad":"'
    .. ("x"):rep(700) .. '"}}'
local envelope = '"sender":"up42","scheme":"up42","key_index":0,"delivery_id":"m","delivery_id_from":"messageId"'
local records = {}
for i = 1, 64 do
    records[i] = "E" .. (1700000000 + i) .. "\tjob.status\tRUNNING\tfalse\t" .. envelope .. "\t" .. body .. i
end

local function pattern(v)
    return v:match("^.(%d+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
end

local function per_record(read)
    local best
    for _ = 1, 3 do
        local started, n = os.clock(), 0
        for i = 1, N do
            if read(records[i % 64 + 1]) then
                n = n + 1
            end
        end
        assert(n == N)
        local ns = (os.clock() - started) / N * 1e9
        best = best and math.min(best, ns) or ns
    end
    return best
end

print(("reading a stored record: the library %.0f ns, a Lua pattern %.0f ns (%d records, best of 3)")
      :format(per_record(native.record_fields), per_record(pattern), N))
