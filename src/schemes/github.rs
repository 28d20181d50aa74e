//! GitHub (`X-Hub-Signature-256`).

use super::senders::*;
use crate::code::Code;
use crate::headers::{Headers, JoinBuf};
use crate::keyring::{Alg, KeyRing};

/// What the store reads: `X-GitHub-Delivery` as the id, `X-GitHub-Event` as the event, the body's
/// `action` as the status.
pub const READING: super::Reading = super::Reading {
    id: Some((
        b"i:",
        super::Place::Header(b"x-github-delivery"),
        super::IdSource::GithubDelivery,
    )),
    event: Some(super::Place::Header(b"x-github-event")),
    status: Some(super::Place::Member(crate::json::Name::Action)),
    live: None,
    signed_timestamp: false,
};

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. GitHub signs no time:
/// replays are caught by deduplicating on `X-GitHub-Delivery`.
pub fn github(
    ring: &KeyRing,
    headers: &Headers,
    body: &[u8],
    limits: &Limits,
) -> Result<Verified, Code> {
    limits.check(body.len())?;
    let mut buf = JoinBuf::default();
    let value = signature_field(headers, b"x-hub-signature-256", &mut buf)?;
    let hex = value
        .strip_prefix(b"sha256=")
        .ok_or(Code::MalformedSignature)?;
    let tag = hex32(hex).ok_or(Code::MalformedSignature)?;
    let key_index = hmac_match(ring, &[body], &[tag]).ok_or(Code::SignatureMismatch)?;
    Ok(Verified::new(key_index, Alg::HmacSha256, None, body))
}
