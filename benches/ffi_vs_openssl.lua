-- Verifying a 1 KiB UP42 delivery in LuaJIT: through libup42webhooks (what the module does) versus
-- the same checks with OpenSSL's libcrypto through the FFI, as lua-resty-string (SHA256_*) and
-- lua-resty-hmac (a reused HMAC_CTX) do them, with Lua patterns for the headers. One process,
-- alternating rounds; the best round of each counts.
--   cargo run --release --example lua_bench -- benches/ffi_vs_openssl.lua [iterations]
-- (from the repository; `make bench` does it).
package.path = "lua/?.lua;" .. package.path
package.cpath = (os.getenv("UP42WH_LIB_DIR") or "target/release") .. "/?.so;" .. package.cpath

local ffi = require "ffi"
local native = require "up42webhooks.native"
local bit = require "bit"

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);

typedef struct SHA256state_st { unsigned int h[8]; unsigned int Nl, Nh; unsigned int data[16];
                                unsigned int num, md_len; } SHA256_CTX;
int SHA256_Init(SHA256_CTX *c);
int SHA256_Update(SHA256_CTX *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, SHA256_CTX *c);
typedef struct hmac_ctx_st HMAC_CTX;
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
HMAC_CTX *HMAC_CTX_new(void);
int HMAC_Init_ex(HMAC_CTX *ctx, const void *key, int len, const EVP_MD *md, void *impl);
int HMAC_Update(HMAC_CTX *ctx, const unsigned char *data, size_t len);
int HMAC_Final(HMAC_CTX *ctx, unsigned char *md, unsigned int *len);
int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
]]

local ok, crypto = pcall(ffi.load, "crypto")
if not ok then crypto = ffi.load("libcrypto.so.3") end

local N = tonumber(arg[1]) or 200000
local SECRET = "QWZTFnMEXhqZKNmu"
local NOW = 1700000000

-- A 1 KiB delivery, signed by the library, as nginx's raw_header(true) would hand it over.
local body = ('{"event":"job.status","liveMode":false,"messageId":"m","timestamp":"2023-11-14T22:13:20Z","body":{"status":"RUNNING","pad":"'
              .. string.rep("x", 1024) .. '"}}'):sub(1, 1022) .. '"}'
local lib = ffi.load(native.library_path)
local secret = ffi.new("up42wh_slice", { ffi.cast("const uint8_t *", SECRET), #SECRET })
local key_out = ffi.new("up42wh_key *[1]")
assert(lib.up42wh_key_new(secret, 1, key_out) == 0)
local signed = ffi.new("up42wh_signed")
assert(lib.up42wh_sign(key_out[0], body, #body, NOW, nil, signed) == 0)
lib.up42wh_key_free(key_out[0])
local cd = ffi.string(signed.content_digest, signed.content_digest_len)
local si = ffi.string(signed.signature_input, signed.signature_input_len)
local sig = ffi.string(signed.signature, signed.signature_len)
local raw = table.concat({
    "Host: hooks.example.org", "User-Agent: UP42-Webhooks/1.0", "Content-Length: " .. #body,
    "Content-Type: application/json", "Accept-Encoding: gzip",
    "Content-Digest: " .. cd, "Signature-Input: " .. si, "Signature: " .. sig, "", "" }, "\r\n")
-- As the receiver verifies: UP42 through the key ring.
local ring = assert(native.new_keyring{ { kind = "hmac", keyid = "secret-1", material = SECRET } })
local opts = assert(native.new_message_options("up42", {}))
local message = { raw_headers = raw, body = body }

local function ours()
    local v = native.verify_message(ring, message, NOW, opts)
    return v ~= nil
end

-- The OpenSSL version: the state lua-resty-string and lua-resty-hmac keep, made once.
local sha_ctx = ffi.new("SHA256_CTX")
local hmac_ctx = crypto.HMAC_CTX_new()
assert(crypto.HMAC_Init_ex(hmac_ctx, SECRET, #SECRET, crypto.EVP_sha256(), nil) == 1)
local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local b64 = ffi.new("unsigned char[64]")
local byte = string.byte

local function header(block, want)
    for name, value in block:gmatch("([^:\r\n]+):[ \t]*([^\r\n]*)") do
        if name:lower() == want then return value end
    end
end

local function same(a, b)
    if #a ~= #b then return false end
    local diff = 0
    for i = 1, #a do diff = bit.bor(diff, bit.bxor(byte(a, i), byte(b, i))) end
    return diff == 0
end

local function openssl()
    local input, signature, digest = header(raw, "signature-input"), header(raw, "signature"),
                                     header(raw, "content-digest")
    if not (input and signature and digest) then return false end
    local components, params = input:match('^up42%-sig=%(([^)]*)%)(.*)$')
    if not components or not components:find('"content-digest"', 1, true) then return false end
    local alg = params:match(";alg=([^;]+)")
    if alg and alg ~= "hmac-sha256" and alg ~= '"hmac-sha256"' then return false end
    local created = tonumber(params:match(";created=(%-?%d+)"))
    if not created or NOW - created > 300 or created - NOW > 30 then return false end
    local tag = signature:match("^up42%-sig=:?([A-Za-z0-9+/]+=*):?$")
    local want = digest:match("^[Ss][Hh][Aa]%-256=:([A-Za-z0-9+/]+=*):$")
    if not tag or not want then return false end
    crypto.SHA256_Init(sha_ctx)
    crypto.SHA256_Update(sha_ctx, body, #body)
    crypto.SHA256_Final(md, sha_ctx)
    if ffi.string(b64, crypto.EVP_EncodeBlock(b64, md, 32)) ~= want then return false end
    crypto.HMAC_Init_ex(hmac_ctx, nil, 0, nil, nil)
    crypto.HMAC_Update(hmac_ctx, digest, #digest)
    crypto.HMAC_Final(hmac_ctx, md, md_len)
    return same(ffi.string(b64, crypto.EVP_EncodeBlock(b64, md, 32)), tag)
end

-- Only the libcrypto calls of openssl(), to show how much of its time is the Lua around them.
local want_digest, want_tag = cd:match("=:(.*):$"), sig:match("=(.*)$")
local function openssl_crypto_only()
    crypto.SHA256_Init(sha_ctx)
    crypto.SHA256_Update(sha_ctx, body, #body)
    crypto.SHA256_Final(md, sha_ctx)
    if ffi.string(b64, crypto.EVP_EncodeBlock(b64, md, 32)) ~= want_digest then return false end
    crypto.HMAC_Init_ex(hmac_ctx, nil, 0, nil, nil)
    crypto.HMAC_Update(hmac_ctx, cd, #cd)
    crypto.HMAC_Final(hmac_ctx, md, md_len)
    return ffi.string(b64, crypto.EVP_EncodeBlock(b64, md, 32)) == want_tag
end

assert(ours() and openssl() and openssl_crypto_only(), "all accept the delivery")
local tampered = body:sub(1, -3) .. 'y"}'
do -- and both refuse a changed body
    local saved = body
    body = tampered
    assert(not ours() and not openssl(), "both refuse a changed body")
    body = saved
end

local ts = ffi.new("bench_timespec")
local function now_ns()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

local function round(f)
    local t0 = now_ns()
    for _ = 1, N do
        if not f() then error("verification failed during the benchmark") end
    end
    return (now_ns() - t0) / N
end

local best = { ours = math.huge, openssl = math.huge, crypto = math.huge }
for _ = 1, 5 do
    best.ours = math.min(best.ours, round(ours))
    best.openssl = math.min(best.openssl, round(openssl))
    best.crypto = math.min(best.crypto, round(openssl_crypto_only))
end
print(("LuaJIT verify of a %d-byte delivery, best of 5 rounds of %d:"):format(#body, N))
print(("  libup42webhooks via FFI      %8.0f ns"):format(best.ours))
print(("  OpenSSL libcrypto via FFI    %8.0f ns"):format(best.openssl))
print(("  ratio ours/OpenSSL           %8.2f   (target <= 0.80)"):format(best.ours / best.openssl))
print(("  (OpenSSL's crypto calls alone %7.0f ns: the rest is the Lua header handling)"):format(best.crypto))
