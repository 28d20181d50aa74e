//! The signature schemes, one file each: UP42's (`up42`, the crate's `verify`), RFC 9421 HTTP
//! Message Signatures, and the other senders' (Standard Webhooks, GitHub, Stripe), whose shared
//! pieces are in `senders`. This file is the one list of them: [`Scheme`] (the C ABI's
//! `up42wh_scheme`), its name, how the simple ones verify, and what the store reads of each
//! ([`Reading`], declared in the scheme's own file). Adding a sender: docs/library.md.

pub mod rfc9421;
pub mod senders;
pub mod up42;

mod github;
mod standard_webhooks;
mod stripe;

use crate::code::Code;
use crate::headers::Headers;
use crate::json::Name;
use crate::keyring::KeyRing;
use crate::limits::Limits;

/// How a message is signed, for `up42wh_message_options.scheme` (exported as `up42wh_scheme`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 9421 HTTP Message Signatures (`Signature-Input`, `Signature`).
    Rfc9421 = 1,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks = 2,
    /// GitHub (`X-Hub-Signature-256`).
    Github = 3,
    /// Stripe (`Stripe-Signature`).
    Stripe = 4,
    /// UP42 (`Signature-Input`/`Signature` with label `up42-sig` by default, HMAC-SHA256 over the
    /// covered fields' values, `Content-Digest`). The body's signed `timestamp` is checked by
    /// `up42wh_receive_message`.
    Up42 = 5,
}

u32_enum!(Scheme {
    Rfc9421,
    StandardWebhooks,
    Github,
    Stripe,
    Up42
});

/// Where a delivery's own id came from, for `up42wh_delivery.id_source` (exported as
/// `up42wh_id_source`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// UP42's body member `messageId`.
    MessageId = 0,
    /// Standard Webhooks' `webhook-id` header.
    WebhookId = 1,
    /// GitHub's `X-GitHub-Delivery` header.
    GithubDelivery = 2,
    /// Stripe's body member `id`.
    EventId = 3,
    /// The RFC 9421 signature's `nonce`.
    Nonce = 4,
    /// None: the delivery id is the hex SHA-256 of the body.
    BodySha256 = 5,
}

u32_enum!(IdSource {
    MessageId,
    WebhookId,
    GithubDelivery,
    EventId,
    Nonce,
    BodySha256
});

impl IdSource {
    /// The name the envelope gives it: the member, header or parameter it was read from.
    pub fn name(self) -> &'static str {
        match self {
            IdSource::MessageId => "messageId",
            IdSource::WebhookId => "webhook-id",
            IdSource::GithubDelivery => "X-GitHub-Delivery",
            IdSource::EventId => "id",
            IdSource::Nonce => "nonce",
            IdSource::BodySha256 => "body_sha256",
        }
    }
}

/// Where a value the store keeps is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A member the JSON reader picks out (`json::Name`).
    Member(Name),
    /// The first member, unless it is absent or `null`: then the second.
    MemberOr(Name, Name),
    /// A request header (lower case).
    Header(&'static [u8]),
    /// The RFC 9421 signature's `nonce`.
    Nonce,
}

/// What the store reads of a verified delivery of a scheme: the id it is deduplicated on (none:
/// the body's digest stands for it), the event, the status and the live mode.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The id's kind in the dedup id (`m:` UP42's `messageId`, `i:` another sender's id), where
    /// it is and what the envelope calls it.
    pub id: Option<(&'static [u8; 2], Place, IdSource)>,
    pub event: Option<Place>,
    pub status: Option<Place>,
    /// A member holding `true` or `false`.
    pub live: Option<Name>,
    /// The body's `timestamp` is signed and checked (UP42's).
    pub signed_timestamp: bool,
}

/// A scheme that signs the body and a few headers (no request line): its verification.
pub type VerifyBody =
    fn(&KeyRing, &Headers, &[u8], i64, &Limits) -> Result<senders::Verified, Code>;

impl Scheme {
    /// What the store reads of its deliveries.
    pub fn reading(self) -> &'static Reading {
        match self {
            Scheme::Rfc9421 => &rfc9421::READING,
            Scheme::StandardWebhooks => &standard_webhooks::READING,
            Scheme::Github => &github::READING,
            Scheme::Stripe => &stripe::READING,
            Scheme::Up42 => &up42::READING,
        }
    }

    /// Its verification when it signs only the body and headers with a key ring and limits (the
    /// others take options of their own: `ffi::message` calls them).
    pub fn verify_body(self) -> Option<VerifyBody> {
        match self {
            Scheme::StandardWebhooks => Some(senders::standard_webhooks),
            Scheme::Github => {
                Some(|ring, headers, body, _, limits| senders::github(ring, headers, body, limits))
            }
            Scheme::Stripe => Some(senders::stripe),
            Scheme::Rfc9421 | Scheme::Up42 => None,
        }
    }

    /// Its name, as configurations and the envelope spell it (`up42wh_scheme_name`).
    pub fn name(self) -> &'static core::ffi::CStr {
        match self {
            Scheme::Rfc9421 => c"rfc9421",
            Scheme::StandardWebhooks => c"standard_webhooks",
            Scheme::Github => c"github",
            Scheme::Stripe => c"stripe",
            Scheme::Up42 => c"up42",
        }
    }
}
