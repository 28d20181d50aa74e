//! Webhook senders that sign the body with a scheme of their own rather than HTTP Message
//! Signatures: Standard Webhooks (`webhook-id`/`webhook-timestamp`/`webhook-signature`), GitHub
//! (`X-Hub-Signature-256`) and Stripe (`Stripe-Signature`). Keys come from a [`KeyRing`]; every
//! candidate signature is compared with every key of the right kind, in constant time each.

use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::code::Code;
use crate::encoding::hex_value;
use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, KeyRing, Material, MAX_KEYS};
pub use crate::limits::Limits;
use crate::mac::HmacSha256;

pub use super::github::github;
pub use super::standard_webhooks::standard_webhooks;
pub use super::stripe::stripe;

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

impl Verified {
    pub(super) fn new(key_index: usize, alg: Alg, timestamp: Option<i64>, body: &[u8]) -> Self {
        Verified {
            key_index,
            alg,
            timestamp,
            body_sha256: Sha256::digest(body).into(),
        }
    }
}

/// Unix seconds as plain decimal digits.
pub(super) fn unix_seconds(text: &[u8]) -> Result<i64, Code> {
    if text.is_empty() || text.len() > 12 || !text.iter().all(u8::is_ascii_digit) {
        return Err(Code::MalformedTimestamp);
    }
    Ok(text.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

pub(super) fn hex32(text: &[u8]) -> Option<[u8; 32]> {
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
pub(crate) const MAX_SIGNATURES: usize = 8;
pub(crate) const MAX_ED25519_CHECKS: usize = 16;

#[cfg(test)]
thread_local! {
    /// Passes over the body (MACs and Ed25519 verifications), for the tests of the bounds above.
    pub(crate) static BODY_PASSES: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

pub(super) fn body_pass() {
    #[cfg(test)]
    BODY_PASSES.with(|n| n.set(n.get() + 1));
}

/// HMAC-SHA256 of the concatenated `parts` under each HMAC key of `ring`, once per key, whatever
/// the number of candidate tags: (key index, tag) pairs in `out`, and how many.
pub(super) fn hmac_tags(
    ring: &KeyRing,
    parts: &[&[u8]],
    out: &mut [(usize, [u8; 32]); MAX_KEYS],
) -> usize {
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
pub(super) fn tag_match(tags: &[(usize, [u8; 32])], tag: &[u8; 32]) -> Option<usize> {
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
pub(super) fn hmac_match(
    ring: &KeyRing,
    parts: &[&[u8]],
    candidates: &[[u8; 32]],
) -> Option<usize> {
    let mut tags = [(0usize, [0u8; 32]); MAX_KEYS];
    let n = hmac_tags(ring, parts, &mut tags);
    candidates
        .iter()
        .map(|c| tag_match(&tags[..n], c))
        .fold(None, |found, hit| found.or(hit))
}

/// The one header field that carries the signatures; `MissingSignature` without it.
pub(super) fn signature_field<'s>(
    headers: &Headers<'s>,
    name: &[u8],
    buf: &'s mut JoinBuf,
) -> Result<&'s [u8], Code> {
    headers.field(name, buf)?.ok_or(Code::MissingSignature)
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
