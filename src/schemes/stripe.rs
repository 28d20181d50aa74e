//! Stripe (`Stripe-Signature`).

use super::senders::*;
use crate::code::Code;
use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, KeyRing};

/// What the store reads: the event's `id`, its `type` and `livemode`.
pub const READING: super::Reading = super::Reading {
    id: Some((
        b"i:",
        super::Place::Member(crate::json::Name::Id),
        super::IdSource::EventId,
    )),
    event: Some(super::Place::Member(crate::json::Name::Type)),
    status: None,
    live: Some(crate::json::Name::Livemode),
    signed_timestamp: false,
};

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
    limits.check(body.len())?;
    let mut buf = JoinBuf::default();
    let value = signature_field(headers, b"stripe-signature", &mut buf)?;
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
