-- Webhook senders, each verified and read by the library's one path (a key ring and a scheme),
-- chosen per location: `receive("name")` with
--   configure{ senders = { name = { profile = "...", ... }, ... } }
-- UP42 is the sender `up42`, made from configure{secret...} (or UP42_WEBHOOK_SECRET) and chosen by
-- `receive()`; its dedup ids have no prefix and its stored deliveries are counted per secret.
-- Profiles (the keys each takes):
--   up42               secret(s) (the first signs), label (default up42-sig)
--   rfc9421            keys = { { keyid =, hmac_secret = | ed25519_pem = | ed25519_pem_file = }, ... },
--                      label, required = { '"@method"', ... }, require_digest (default true)
--   ubiops             public_key_file | public_key (PEM); keyid (default: sha512: of the key)
--   standard-webhooks  secret(s) = "whsec_..." and/or public key(s) "whpk_..."
--   github             secret(s)
--   stripe             secret(s) = "whsec_..." (the endpoint secret, as Stripe shows it)
-- and for all: tolerance, future, scheme/authority (what the sender saw, when a proxy in front
-- changes them), secret_file (one secret a line).
local native = require "up42webhooks.native"

local concat = table.concat
local open = io.open

local _M = {}

local function read_file(path)
    local f, err = open(path, "rb")
    if not f then
        return nil, "cannot read " .. tostring(path) .. ": " .. tostring(err)
    end
    local text = f:read("*a")
    f:close()
    return text
end

local function list_of(one, many)
    if many then return many end
    if one then return { one } end
    return {}
end

-- Secrets from a file, one a line (blank lines and surrounding spaces ignored). UP42's secret
-- file is read the same way.
function _M.read_secrets_file(path)
    local f, err = open(path, "rb")
    if not f then
        return nil, "cannot read the secret file " .. tostring(err)
    end
    local text = f:read("*a")
    f:close()
    local list = {}
    for line in text:gmatch("[^\r\n]+") do
        line = line:match("^%s*(.-)%s*$")
        if line ~= "" then list[#list + 1] = line end
    end
    return list
end

-- Secrets from `secret`, `secrets` or `secret_file`.
local function secrets_of(c)
    local list = list_of(c.secret, c.secrets)
    if #list == 0 and c.secret_file then
        local err
        list, err = _M.read_secrets_file(c.secret_file)
        if not list then return nil, err end
    end
    if #list == 0 then
        return nil, "no secret (secret, secrets or secret_file)"
    end
    return list
end

-- One key of `kind` for each of the sender's secrets, their ids `<prefix>1`, `<prefix>2`, ...; or
-- nil, err.
local function secret_keys(c, kind, prefix)
    local list, err = secrets_of(c)
    if not list then return nil, err end
    local keys = {}
    for i, s in ipairs(list) do
        keys[i] = { kind = kind, keyid = prefix .. i, material = s }
    end
    return keys
end

-- UbiOps signs "@method" "@authority" "@target-uri" "content-digest" "date" with Ed25519; its
-- example receiver insists on content-digest and date being covered, and so do we.
local UBIOPS_REQUIRED = '"@method", "@authority", "@target-uri", "content-digest", "date"'

-- Builds a sender from its configuration: { name, profile, ring, keyids, opts, scheme, ... }.
function _M.new(name, c, defaults)
    local profile = c.profile
    if type(name) ~= "string" or not name:match("^[%w_.-]+$") or #name > 61 then
        return nil, "a sender's name is 1 to 61 letters, digits, '_', '.' or '-'"
    end
    local scheme -- set by each profile below
    local keys, o = {}, {
        max_age = c.tolerance or defaults.tolerance,
        max_future = c.future or defaults.future,
        max_body = c.max_body or defaults.max_body,
    }
    if profile == "up42" then
        scheme = "up42"
        local err
        keys, err = secret_keys(c, "hmac", "secret-")
        if not keys then return nil, err end
        o.label = c.label
        -- UP42 signs the body (through Content-Digest), not `created` or `expires`: the body's
        -- own timestamp may be as old as the replay horizon (a retry of an old delivery; a
        -- replay within the horizon is a duplicate), and the times the signature does not
        -- cover refuse nothing by themselves (the receiver logs them).
        o.timestamp_max_age = defaults.replay_horizon
        o.refuse_unsigned_times = false
    elseif profile == "rfc9421" then
        scheme = "rfc9421"
        for i, k in ipairs(c.keys or {}) do
            if k.hmac_secret then
                keys[i] = { kind = "hmac", keyid = k.keyid, material = k.hmac_secret }
            else
                local pem = k.ed25519_pem
                if not pem and k.ed25519_pem_file then
                    local err
                    pem, err = read_file(k.ed25519_pem_file)
                    if not pem then return nil, err end
                end
                keys[i] = { kind = "ed25519_pem", keyid = k.keyid, material = pem }
            end
        end
        o.label = c.label
        if c.required then o.required = concat(c.required, ", ") end
        o.require_digest = c.require_digest
    elseif profile == "ubiops" then
        scheme = "rfc9421"
        local pem = c.public_key
        if not pem then
            local err
            pem, err = read_file(c.public_key_file or "/run/secrets/webhooks-public-key")
            if not pem then return nil, err end
        end
        if pem:find("PRIVATE KEY", 1, true) then
            -- As UbiOps' example does: a private key given as the trusted key is a mistake.
            return nil, "the UbiOps key must be the public key, not a private one"
        end
        keys[1] = { kind = "ed25519_pem", keyid = c.keyid, material = pem }
        o.required = UBIOPS_REQUIRED
        o.label = c.label
    elseif profile == "standard-webhooks" then
        scheme = "standard_webhooks"
        local err
        keys, err = secret_keys(c, "standard_webhooks", "key-")
        if not keys then return nil, err end
    elseif native.SCHEME[profile] and profile ~= "standard_webhooks" then
        -- Every other scheme the library knows (GitHub's, Stripe's, one added there) signs the
        -- body with HMAC-SHA256 secrets.
        scheme = profile
        local err
        keys, err = secret_keys(c, "hmac", "secret-")
        if not keys then return nil, err end
    else
        local known = { "ubiops", "standard-webhooks" }
        for scheme_name in pairs(native.SCHEME) do
            if scheme_name ~= "standard_webhooks" then known[#known + 1] = scheme_name end
        end
        table.sort(known)
        return nil, "unknown profile " .. tostring(profile) .. " (" .. concat(known, ", ") .. ")"
    end
    if #keys == 0 then
        return nil, "no keys"
    end
    local ring, ids = native.new_keyring(keys)
    if not ring then return nil, ids end
    local opts, err = native.new_message_options(scheme, o)
    if not opts then return nil, err end
    -- Its stored deliveries are counted apart, by key for UP42 (to see when an old secret can go).
    local counter = {}
    for i = 1, #keys do
        counter[i - 1] = name == "up42" and ("stored_with_secret_" .. (i - 1)) or ("stored_from_" .. name)
    end
    return {
        name = name, profile = profile, ring = ring, keyids = ids, opts = opts,
        -- Its deliveries' dedup ids start with its name (UP42's with nothing: as journals keep them).
        id_prefix = name == "up42" and "" or (name .. ":"), stored_counter = counter,
        -- Only RFC 9421 signs the request's method, scheme, authority and target.
        signs_request = scheme == "rfc9421",
        -- The verifying scheme, as each stored event's envelope names it.
        verified_by = scheme,
        scheme = c.scheme, authority = c.authority,
        tolerance = o.max_age, future = o.max_future, max_body = o.max_body,
    }
end

function _M.names(senders)
    local names = {}
    for k in pairs(senders) do
        if k ~= "up42" then names[#names + 1] = k end
    end
    table.sort(names)
    return concat(names, ", ")
end

-- Whether senders besides UP42 are configured (their event names are their own).
function _M.others(senders)
    for name in pairs(senders) do
        if name ~= "up42" then return true end
    end
    return false
end

return _M
