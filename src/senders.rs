//! Webhook senders that sign the body with a scheme of their own rather than HTTP Message
//! Signatures: Standard Webhooks (`webhook-id`/`webhook-timestamp`/`webhook-signature`), GitHub
//! (`X-Hub-Signature-256`) and Stripe (`Stripe-Signature`). Keys come from a [`KeyRing`]; every
//! candidate signature is compared with every key of the right kind, in constant time each.

use ed25519_dalek::Signature as EdSignature;
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, HmacSha256, KeyRing, Material, MAX_KEYS};
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

/// The most signatures one request may carry (Standard Webhooks entries, Stripe `v1` tags), and the
/// most Ed25519 verifications one Standard Webhooks request may cause: each costs a pass over the
/// body, and none is authenticated before it is checked.
pub const MAX_SIGNATURES: usize = 8;
pub const MAX_ED25519_CHECKS: usize = 16;

#[cfg(test)]
thread_local! {
    /// Passes over the body (MACs and Ed25519 verifications), for the tests of the bounds above.
    pub(crate) static BODY_PASSES: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

fn body_pass() {
    #[cfg(test)]
    BODY_PASSES.with(|n| n.set(n.get() + 1));
}

/// HMAC-SHA256 of the concatenated `parts` under each HMAC key of `ring`, once per key, whatever
/// the number of candidate tags: (key index, tag) pairs in `out`, and how many.
fn hmac_tags(ring: &KeyRing, parts: &[&[u8]], out: &mut [(usize, [u8; 32]); MAX_KEYS]) -> usize {
    let mut n = 0;
    for (i, m) in ring.iter() {
        if let Material::Hmac(mac) = m {
            let mut mac: HmacSha256 = mac.clone();
            for p in parts {
                mac.update(p);
            }
            body_pass();
            out[n] = (i, mac.finalize().into_bytes().into());
            n += 1;
        }
    }
    n
}

/// The index of the first key whose tag (from `hmac_tags`) equals `tag`; every comparison is made,
/// each in constant time.
fn tag_match(tags: &[(usize, [u8; 32])], tag: &[u8; 32]) -> Option<usize> {
    let mut found = None;
    for (i, mine) in tags {
        if bool::from(mine.as_slice().ct_eq(&tag[..])) && found.is_none() {
            found = Some(*i);
        }
    }
    found
}

/// HMAC-SHA256 of the concatenated `parts` under the HMAC keys of `ring`: the index of the first
/// key whose tag equals one of `candidates`.
fn hmac_match(ring: &KeyRing, parts: &[&[u8]], candidates: &[[u8; 32]]) -> Option<usize> {
    let mut tags = [(0usize, [0u8; 32]); MAX_KEYS];
    let n = hmac_tags(ring, parts, &mut tags);
    candidates
        .iter()
        .map(|c| tag_match(&tags[..n], c))
        .fold(None, |found, hit| found.or(hit))
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

    // First read every entry (bounded), then check: the HMAC keys' tags once for all `v1` entries,
    // and at most MAX_ED25519_CHECKS Ed25519 verifications for the `v1a` ones.
    let mut v1 = [[0u8; 32]; MAX_SIGNATURES];
    let mut v1a = [[0u8; 64]; MAX_SIGNATURES];
    let (mut n1, mut n1a) = (0, 0);
    for sig in sigs.split(|&b| b == b' ').filter(|s| !s.is_empty()) {
        let Some(comma) = sig.iter().position(|&b| b == b',') else {
            return Err(Code::MalformedSignature);
        };
        let (version, b64) = (&sig[..comma], &sig[comma + 1..]);
        if version != b"v1" && version != b"v1a" {
            continue; // a later version: skip it, as the specification says
        }
        if n1 + n1a == MAX_SIGNATURES {
            return Err(Code::TooManySignatures);
        }
        let mut raw = [0u8; 66];
        let n = decode_b64(b64, &mut raw).ok_or(Code::MalformedSignature)?;
        match (version, n) {
            (b"v1", 32) => {
                v1[n1].copy_from_slice(&raw[..32]);
                n1 += 1;
            }
            (b"v1a", 64) => {
                v1a[n1a].copy_from_slice(&raw[..64]);
                n1a += 1;
            }
            _ => return Err(Code::MalformedSignature),
        }
    }
    let any = n1 + n1a > 0;
    let mut key_index = if n1 > 0 {
        hmac_match(ring, &[id, b".", ts_text, b".", body], &v1[..n1]).map(|i| (i, Alg::HmacSha256))
    } else {
        None
    };
    let mut checks = 0;
    for bytes in &v1a[..n1a] {
        let sig = EdSignature::from_bytes(bytes);
        for (i, m) in ring.iter() {
            let Material::Ed25519(key) = m else { continue };
            if key_index.is_some() {
                break;
            }
            checks += 1;
            if checks > MAX_ED25519_CHECKS {
                return Err(Code::TooManySignatures);
            }
            // Streamed, so that the body is not copied next to the id and timestamp. (Keys of
            // small order were refused when they were added.)
            let Ok(mut v) = key.verify_stream(&sig) else {
                continue;
            };
            for part in [id, b".", ts_text, b".", body] {
                v.update(part);
            }
            body_pass();
            if v.finalize_and_verify().is_ok() {
                key_index = Some((i, Alg::Ed25519));
            }
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
    let key_index = hmac_match(ring, &[body], &[tag]).ok_or(Code::SignatureMismatch)?;
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
    let mut tags = [[0u8; 32]; MAX_SIGNATURES];
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
                let slot = tags.get_mut(count).ok_or(Code::TooManySignatures)?;
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
    let key_index =
        hmac_match(ring, &[t_text, b".", body], &tags[..count]).ok_or(Code::SignatureMismatch)?;
    limits.fresh(t, now)?;
    Ok(Verified::new(key_index, Alg::HmacSha256, Some(t), body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const NOW: i64 = 1_700_000_000;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// The body passes one verification makes.
    fn passes(f: impl FnOnce() -> Result<Verified, Code>) -> (Result<Verified, Code>, usize) {
        BODY_PASSES.with(|n| n.set(0));
        let r = f();
        (r, BODY_PASSES.with(|n| n.get()))
    }

    fn ring_of(hmac_keys: usize, ed_keys: usize) -> KeyRing {
        let mut ring = KeyRing::new();
        for i in 0..hmac_keys {
            ring.add_hmac(format!("h{i}").as_bytes(), format!("secret-{i}").as_bytes())
                .unwrap();
        }
        for i in 0..ed_keys {
            let key = ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]);
            ring.add_ed25519(format!("e{i}").as_bytes(), key.verifying_key().as_bytes())
                .unwrap();
        }
        ring
    }

    fn standard(ring: &KeyRing, signatures: &str, body: &[u8]) -> Result<Verified, Code> {
        let ts = NOW.to_string();
        let pairs: [(&[u8], &[u8]); 3] = [
            (b"webhook-id", b"msg_1"),
            (b"webhook-timestamp", ts.as_bytes()),
            (b"webhook-signature", signatures.as_bytes()),
        ];
        standard_webhooks(ring, &Headers::Pairs(&pairs), body, NOW, &Limits::default())
    }

    #[test]
    fn many_signatures_cost_one_mac_per_key_and_are_bounded() {
        let body = vec![b'x'; 4096];
        let ring = ring_of(16, 0);
        let wrong = format!("v1,{}", b64(&[7; 32]));
        // One bad signature: one MAC per key.
        let (r, one) = passes(|| standard(&ring, &wrong, &body));
        assert_eq!((r.unwrap_err(), one), (Code::SignatureMismatch, 16));
        // The most signatures allowed: the same work (each tag compared with every key's MAC).
        let most = [wrong.as_str(); MAX_SIGNATURES].join(" ");
        let (r, many) = passes(|| standard(&ring, &most, &body));
        assert_eq!((r.unwrap_err(), many), (Code::SignatureMismatch, one));
        // One more: refused before any MAC, with its own reason.
        let over = [wrong.as_str(); MAX_SIGNATURES + 1].join(" ");
        let (r, none) = passes(|| standard(&ring, &over, &body));
        assert_eq!((r.unwrap_err(), none), (Code::TooManySignatures, 0));
        // Unknown versions are skipped, not counted.
        let later = format!(
            "{} v2,abc v3,def",
            [wrong.as_str(); MAX_SIGNATURES].join(" ")
        );
        assert_eq!(
            standard(&ring, &later, &body).unwrap_err(),
            Code::SignatureMismatch
        );
    }

    #[test]
    fn ed25519_verifications_are_bounded() {
        let body = vec![b'x'; 4096];
        let bad = format!("v1a,{}", b64(&[9; 64]));
        // Two keys, eight signatures: sixteen verifications, the most allowed.
        let ring = ring_of(0, 2);
        let most = [bad.as_str(); MAX_SIGNATURES].join(" ");
        let (r, n) = passes(|| standard(&ring, &most, &body));
        assert_eq!(r.unwrap_err(), Code::SignatureMismatch);
        assert!(n <= MAX_ED25519_CHECKS, "{n}");
        // Three keys: the seventeenth would be one too many.
        let ring = ring_of(0, 3);
        let (r, n) = passes(|| standard(&ring, &most, &body));
        assert_eq!(r.unwrap_err(), Code::TooManySignatures);
        assert!(n <= MAX_ED25519_CHECKS, "{n}");
    }

    #[test]
    fn stripe_and_github_compute_each_key_once() {
        let body = vec![b'x'; 4096];
        let ring = ring_of(4, 0);
        let tags = vec![format!("v1={}", "ab".repeat(32)); MAX_SIGNATURES].join(",");
        let header = format!("t={NOW},{tags}");
        let check = |value: &str| {
            let pairs: [(&[u8], &[u8]); 1] = [(b"stripe-signature", value.as_bytes())];
            passes(|| {
                stripe(
                    &ring,
                    &Headers::Pairs(&pairs),
                    &body,
                    NOW,
                    &Limits::default(),
                )
            })
        };
        let (r, n) = check(&header);
        assert_eq!((r.unwrap_err(), n), (Code::SignatureMismatch, 4));
        let (r, n) = check(&format!("{header},v1={}", "ab".repeat(32)));
        assert_eq!((r.unwrap_err(), n), (Code::TooManySignatures, 0));
    }
}
