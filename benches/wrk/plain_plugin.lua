-- What a plugin author writes instead of a native library, for the benchmark (benches/wrk/run.sh):
-- the same checks as /receive-webhooks in plain Lua, the way a Kong or APISIX plugin does them:
-- headers from ngx.var, Lua patterns, OpenSSL's one-shot SHA256() and HMAC() through the FFI
-- (OpenSSL is already in nginx), ngx.decode_base64, a constant-time compare, cjson, an RFC 3339
-- parse; then the same store writes as ours in memory-only mode (claim the id, take a key, write
-- the record, count). One secret, from UP42_WEBHOOK_SECRET.
local ffi = require "ffi"
local cjson = require "cjson.safe"

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d,
                    size_t n, unsigned char *md, unsigned int *md_len);
]]

local C = ffi.C
local ffi_str = ffi.string
local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local sha256_md = C.EVP_sha256()
local ngx = ngx
local byte = string.byte
local bxor, bor = bit.bxor, bit.bor
local tonumber, type, tostring = tonumber, type, tostring
local decode = cjson.decode
local decode_base64 = ngx.decode_base64
local encode_base64 = ngx.encode_base64

local SECRET = os.getenv("UP42_WEBHOOK_SECRET") or ""
local TOLERANCE, FUTURE, DEDUP_TTL = 300, 30, 720
local events = ngx.shared.plain_webhooks
local seen = ngx.shared.plain_seen
local counters = ngx.shared.webhooks_stats

local _M = {}

local function sha256(s)
    C.SHA256(s, #s, md)
    return ffi_str(md, 32)
end

local function hmac(key, s)
    C.HMAC(sha256_md, key, #key, s, #s, md, md_len)
    return ffi_str(md, 32)
end

-- Constant time, as a careful author writes it.
local function equal(a, b)
    if #a ~= #b then
        return false
    end
    local r = 0
    for i = 1, #a do
        r = bor(r, bxor(byte(a, i), byte(b, i)))
    end
    return r == 0
end

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
local function days(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = (m + 9) % 12
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

-- RFC 3339 to unix seconds, or nil.
local function unix(ts)
    if type(ts) ~= "string" then
        return nil
    end
    local y, mo, d, h, mi, s, rest = ts:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$")
    if not y then
        return nil
    end
    rest = rest:gsub("^%.%d+", "")
    local offset = 0
    if rest ~= "Z" and rest ~= "z" then
        local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
        if not sign then
            return nil
        end
        offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
    end
    return days(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
        + tonumber(mi) * 60 + tonumber(s) - offset
end

local function answer(status, reason)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say('{"code":', status, ',"error":"', reason, '"}')
    return ngx.exit(status)
end

function _M.receive()
    if ngx.req.get_method() ~= "POST" then
        return answer(405, "method_not_allowed")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        return answer(413, "body_too_large") -- spooled to a file: over client_body_buffer_size
    end
    local var = ngx.var
    local digest_header, input, signature = var.http_content_digest, var.http_signature_input, var.http_signature
    if not digest_header or not input or not signature then
        return answer(401, "missing_signature")
    end
    local digest = sha256(body)
    local b64 = digest_header:match("[Ss][Hh][Aa]%-256=:([%w+/=]+):")
    if not b64 or not equal(decode_base64(b64) or "", digest) then
        return answer(401, "digest_mismatch")
    end
    local covered, params = input:match('up42%-sig=%(([^)]*)%)(.*)$')
    if covered ~= '"content-digest"' then
        return answer(401, "malformed_signature_input")
    end
    local alg = params:match(';alg="?([%w%-]+)"?')
    if alg and alg ~= "hmac-sha256" then
        return answer(401, "unsupported_alg")
    end
    local now = ngx.time()
    local created = tonumber(params:match(";created=(%d+)"))
    if not created or now - created > TOLERANCE or created - now > FUTURE then
        return answer(401, "stale")
    end
    local tag = signature:match("up42%-sig=:?([%w+/=]+):?")
    if not tag or not equal(decode_base64(tag) or "", hmac(SECRET, digest_header)) then
        return answer(401, "signature_mismatch")
    end
    local event = decode(body)
    if type(event) ~= "table" then
        return answer(400, "not_json_object")
    end
    local t = unix(event.timestamp)
    if not t or now - t > TOLERANCE or t - now > FUTURE then
        return answer(401, "stale")
    end
    local id = type(event.messageId) == "string" and event.messageId or encode_base64(digest)
    local ok, err = seen:add(id, digest, DEDUP_TTL)
    if not ok then
        if err == "exists" then
            return answer(200, "duplicate")
        end
        return answer(503, "store_full")
    end
    local key = events:incr("n", 1, 0)
    local status = type(event.body) == "table" and event.body.status or ""
    local live = event.liveMode == nil and "" or tostring(event.liveMode)
    ok = events:safe_add(key, now .. "\t" .. tostring(event.event or "") .. "\t" .. tostring(status)
                              .. "\t" .. live .. "\t" .. body)
    if not ok then
        seen:delete(id)
        return answer(503, "store_full")
    end
    counters:incr("plain_stored", 1, 0)
    ngx.header["Content-Type"] = "application/json"
    ngx.say('{"msg":"stored","key":', key, "}")
    return ngx.exit(200)
end

return _M
