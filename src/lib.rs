//! Verification of signed UP42 webhook deliveries, for OpenResty/nginx through a C ABI.
//!
//! UP42 signs each delivery with HTTP message signature headers: `Content-Digest` holds the SHA-256 of
//! the body, `Signature-Input` names the covered header fields and `Signature` carries
//! HMAC-SHA256(secret, concatenated covered values). [`verify()`] checks all of it (the body against its
//! digest included) in one call without allocating; [`sign`] produces the same headers. The C ABI is in
//! [`ffi`] and described by `include/up42webhooks.h`.
//!
//! The layout: `ffi/` (the C ABI, a file per family of calls), `schemes/` (a file per signature
//! scheme: UP42's, re-exported as `verify`, RFC 9421, Standard Webhooks, GitHub, Stripe), `sf/`
//! (RFC 8941 structured fields, parse and write), and the pieces they share, each named for what
//! it is: `limits` (the freshness and size limits), `digest` (body digests, `Content-Digest`),
//! `encoding` (hex, base64), `mac` (the HMAC type), `headers`, `keyring`, `json` (the strict body
//! reader), `delivery` (what the store keeps of a delivery), `record` (the store's records),
//! `journal`. Only what the C ABI, the CLI and the tests use is public.

/// `TryFrom<u32>` for a `#[repr(u32)]` enum of the ABI or a file format, from its variants' own
/// values (no table of numbers written again beside the enum): an unknown value is
/// `Code::InvalidArgument`. A macro rather than the enum's own definition, so that cbindgen still
/// reads the enum as written.
macro_rules! u32_enum {
    ($t:ident { $($v:ident),+ $(,)? }) => {
        impl TryFrom<u32> for $t {
            type Error = $crate::code::Code;
            fn try_from(n: u32) -> Result<Self, Self::Error> {
                $(
                    if n == $t::$v as u32 {
                        return Ok($t::$v);
                    }
                )+
                Err($crate::code::Code::InvalidArgument)
            }
        }
    };
}

mod buf;
mod code;
pub mod delivery;
mod digest;
mod encoding;
pub mod ffi;
mod format;
pub use format::{entry, envelope, record};
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod headers;
pub mod index;
pub mod journal;
pub mod json;
pub mod keyring;
mod limits;
mod mac;
mod schemes;
pub mod sf;
mod sign;
mod time;

pub use code::Code;
pub use headers::Headers;
pub use keyring::{Alg, KeyRing};
pub use limits::Limits;
pub use schemes::up42 as verify;
pub use schemes::{rfc9421, senders, IdSource, Scheme};
pub use sign::{sign, standard_webhooks as sign_standard_webhooks, DigestAlg, SignOptions, Signed};
pub use time::{format_rfc3339, parse_rfc3339};
pub use verify::{check_timestamp, verify, Key, Options, Verified};
