//! Verification of signed UP42 webhook deliveries, for OpenResty/nginx through a C ABI.
//!
//! UP42 signs each delivery with HTTP message signature headers: `Content-Digest` holds the SHA-256 of
//! the body, `Signature-Input` names the covered header fields and `Signature` carries
//! HMAC-SHA256(secret, concatenated covered values). [`verify`] checks all of it (the body against its
//! digest included) in one call without allocating; [`sign`] produces the same headers. The C ABI is in
//! [`ffi`] and described by `include/up42webhooks.h`.

pub mod buf;
pub mod code;
pub mod delivery;
pub mod ffi;
pub mod ffi_journal;
pub mod ffi_message;
pub mod ffi_record;
pub mod fuzz;
pub mod headers;
pub mod journal;
pub mod json;
pub mod keyring;
pub mod record;
pub mod rfc9421;
pub mod senders;
pub mod sf;
pub mod sf_write;
pub mod sign;
pub mod time;
pub mod verify;

pub use code::Code;
pub use headers::Headers;
pub use keyring::{Alg, KeyRing};
pub use sign::{sign, DigestAlg, SignOptions, Signed};
pub use time::{format_rfc3339, parse_rfc3339};
pub use verify::{verify, Key, Options, Verified};

/// Parses an RFC 3339 timestamp and checks it lies within the window of `opts` around `now`; returns
/// it in unix seconds. Use it on the body's signed `timestamp`: UP42's `created` is not covered by the HMAC.
pub fn check_timestamp(ts: &[u8], now: i64, opts: &Options) -> Result<i64, Code> {
    opts.check()?;
    let t = parse_rfc3339(ts)?;
    opts.fresh(t, now)?;
    Ok(t)
}
