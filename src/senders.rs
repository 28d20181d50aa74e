//! Webhook senders that sign the body with a scheme of their own rather than HTTP Message
//! Signatures: Standard Webhooks (`webhook-id`/`webhook-timestamp`/`webhook-signature`), GitHub
//! (`X-Hub-Signature-256`) and Stripe (`Stripe-Signature`). Keys come from a [`KeyRing`]; every
//! candidate signature is compared with every key of the right kind, in constant time each.

use ed25519_dalek::Signature as EdSignature;
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, HmacSha256, KeyRing, Material};
use crate::verify::{check_window, decode_b64, hex_value};
use crate::Code;

/// What a successful verification learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The key that verified, by its position in the ring, and its algorithm.
    pub key_index: usize,
    pub alg: Alg,
    /// The signed timestamp (Standard Webhooks, Stripe); GitHub signs none.
    pub timestamp: Option<i64>,
    pub body_sha256: [u8; 32],
}

/// Freshness and size limits, in seconds and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_age: i64,
    pub max_future: i64,
    pub max_body: usize,
}

impl Verified {
    fn new(key_index: usize, alg: Alg, timestamp: Option<i64>, body: &[u8]) -> Self {
        Verified {
            key_index,
            alg,
            timestamp,
            body_sha256: Sha256::digest(body).into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_age: crate::verify::DEFAULT_MAX_AGE,
            max_future: crate::verify::DEFAULT_MAX_FUTURE,
            max_body: crate::verify::DEFAULT_MAX_BODY,
        }
    }
}

impl Limits {
    fn check(&self, body: &[u8]) -> Result<(), Code> {
        if self.max_age < 0 || self.max_future < 0 {
            return Err(Code::InvalidArgument);
        }
        if body.len() > self.max_body {
            return Err(Code::BodyTooLarge);
        }
        Ok(())
    }

    fn fresh(&self, t: i64, now: i64) -> Result<(), Code> {
        check_window(Some(t), None, now, self.max_age, self.max_future)
    }
}

/// Unix seconds as plain decimal digits.
fn unix_seconds(text: &[u8]) -> Result<i64, Code> {
    if text.is_empty() || text.len() > 12 || !text.iter().all(u8::is_ascii_digit) {
        return Err(Code::MalformedTimestamp);
    }
    Ok(text.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

fn hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

/// HMAC-SHA256 of the concatenated `parts` under the HMAC keys of `ring`: the index of the first
/// key whose tag equals `tag`, every comparison in constant time.
fn hmac_match(ring: &KeyRing, parts: &[&[u8]], tag: &[u8; 32]) -> Option<usize> {
    let mut found = None;
    for (i, m) in ring.iter() {
        if let Material::Hmac(mac) = m {
            let mut mac: HmacSha256 = mac.clone();
            for p in parts {
                mac.update(p);
            }
            if bool::from(mac.finalize().into_bytes().as_slice().ct_eq(&tag[..])) && found.is_none()
            {
                found = Some(i);
            }
        }
    }
    found
}

fn one_field<'s>(
    headers: &Headers<'s>,
    name: &[u8],
    buf: &'s mut JoinBuf,
    missing: Code,
) -> Result<&'s [u8], Code> {
    headers.field(name, buf)?.ok_or(missing)
}

/// Standard Webhooks: `v1,<base64 HMAC-SHA256>` (key `whsec_...`) or `v1a,<base64 Ed25519>` (key
/// `whpk_...`) over `{webhook-id}.{webhook-timestamp}.{body}`; several signatures separated by
/// spaces, any one of which may match.
pub fn standard_webhooks(
    ring: &KeyRing,
    headers: &Headers,
    body: &[u8],
    now: i64,
    limits: &Limits,
) -> Result<Verified, Code> {
    limits.check(body)?;
    let mut bufs: [JoinBuf; 3] = Default::default();
    let [id, ts, sigs] = headers.fields(
        [b"webhook-id", b"webhook-timestamp", b"webhook-signature"],
        &mut bufs,
    )?;
    let id = id.ok_or(Code::MissingComponent)?;
    let ts_text = ts.ok_or(Code::MissingComponent)?;
    let sigs = sigs.ok_or(Code::MissingSignature)?;
    let t = unix_seconds(ts_text)?;
    if id.is_empty() || id.contains(&b'.') {
        // The id is part of the signed content, dot-separated.
        return Err(Code::MalformedSignatureInput);
    }

    let mut key_index = None;
    let mut any = false;
    for sig in sigs.split(|&b| b == b' ').filter(|s| !s.is_empty()) {
        let Some(comma) = sig.iter().position(|&b| b == b',') else {
            return Err(Code::MalformedSignature);
        };
        let (version, b64) = (&sig[..comma], &sig[comma + 1..]);
        let mut raw = [0u8; 66];
        let n = decode_b64(b64, &mut raw).ok_or(Code::MalformedSignature)?;
        let hit = match (version, n) {
            (b"v1", 32) => {
                any = true;
                let tag: [u8; 32] = raw[..32].try_into().map_err(|_| Code::MalformedSignature)?;
                hmac_match(ring, &[id, b".", ts_text, b".", body], &tag)
                    .map(|i| (i, Alg::HmacSha256))
            }
            (b"v1a", 64) => {
                any = true;
                let bytes: [u8; 64] = raw[..64].try_into().map_err(|_| Code::MalformedSignature)?;
                let sig = EdSignature::from_bytes(&bytes);
                // Streamed, so that the body is not copied next to the id and timestamp. (Keys
                // of small order were refused when they were added.)
                ring.iter().find_map(|(i, m)| match m {
                    Material::Ed25519(key) => {
                        let mut v = key.verify_stream(&sig).ok()?;
                        for part in [id, b".", ts_text, b".", body] {
                            v.update(part);
                        }
                        v.finalize_and_verify().is_ok().then_some((i, Alg::Ed25519))
                    }
                    _ => None,
                })
            }
            (b"v1" | b"v1a", _) => return Err(Code::MalformedSignature),
            _ => None, // a later version: skip it, as the specification says
        };
        if key_index.is_none() {
            key_index = hit;
        }
    }
    if !any {
        return Err(Code::UnsupportedAlg);
    }
    let (key_index, alg) = key_index.ok_or(Code::SignatureMismatch)?;
    limits.fresh(t, now)?;
    Ok(Verified::new(key_index, alg, Some(t), body))
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. GitHub signs no time:
/// replays are caught by deduplicating on `X-GitHub-Delivery`.
pub fn github(
    ring: &KeyRing,
    headers: &Headers,
    body: &[u8],
    limits: &Limits,
) -> Result<Verified, Code> {
    limits.check(body)?;
    let mut buf = JoinBuf::default();
    let value = one_field(
        headers,
        b"x-hub-signature-256",
        &mut buf,
        Code::MissingSignature,
    )?;
    let hex = value
        .strip_prefix(b"sha256=")
        .ok_or(Code::MalformedSignature)?;
    let tag = hex32(hex).ok_or(Code::MalformedSignature)?;
    let key_index = hmac_match(ring, &[body], &tag).ok_or(Code::SignatureMismatch)?;
    Ok(Verified::new(key_index, Alg::HmacSha256, None, body))
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, each `v1` an HMAC-SHA256 of
/// `{t}.{body}` under the endpoint secret (the `whsec_...` text itself is the key). Other schemes
/// (`v0`) are ignored, as Stripe's libraries do.
pub fn stripe(
    ring: &KeyRing,
    headers: &Headers,
    body: &[u8],
    now: i64,
    limits: &Limits,
) -> Result<Verified, Code> {
    limits.check(body)?;
    let mut buf = JoinBuf::default();
    let value = one_field(
        headers,
        b"stripe-signature",
        &mut buf,
        Code::MissingSignature,
    )?;
    let mut t_text: Option<&[u8]> = None;
    let mut tags = [[0u8; 32]; 8];
    let mut count = 0;
    for part in value.split(|&b| b == b',') {
        let part = crate::headers::trim_ows(part);
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            return Err(Code::MalformedSignature);
        };
        match (&part[..eq], &part[eq + 1..]) {
            (b"t", t) if t_text.is_none() => t_text = Some(t),
            (b"t", _) => return Err(Code::MalformedSignature),
            (b"v1", hex) => {
                let slot = tags.get_mut(count).ok_or(Code::MalformedSignature)?;
                *slot = hex32(hex).ok_or(Code::MalformedSignature)?;
                count += 1;
            }
            _ => {}
        }
    }
    let t_text = t_text.ok_or(Code::MalformedSignature)?;
    let t = unix_seconds(t_text)?;
    if count == 0 {
        return Err(Code::UnsupportedAlg);
    }
    let key_index = tags[..count]
        .iter()
        .map(|tag| hmac_match(ring, &[t_text, b".", body], tag))
        .fold(None, |found, hit| found.or(hit))
        .ok_or(Code::SignatureMismatch)?;
    limits.fresh(t, now)?;
    Ok(Verified::new(key_index, Alg::HmacSha256, Some(t), body))
}
