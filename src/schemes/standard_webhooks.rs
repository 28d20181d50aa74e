//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

use ed25519_dalek::Signature as EdSignature;

use super::senders::*;
use crate::code::Code;
use crate::encoding::decode_b64;
use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, KeyRing, Material};

/// What the store reads: `webhook-id` as the id, the body's `type` as the event.
pub const READING: super::Reading = super::Reading {
    id: Some((
        b"i:",
        super::Place::Header(b"webhook-id"),
        super::IdSource::WebhookId,
    )),
    event: Some(super::Place::Member(crate::json::Name::Type)),
    status: None,
    live: None,
    signed_timestamp: false,
};

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
    limits.check(body.len())?;
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
