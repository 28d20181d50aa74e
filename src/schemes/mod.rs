//! The signature schemes, one file each: UP42's (`up42`, the crate's `verify`), RFC 9421 HTTP
//! Message Signatures, and the other senders' (Standard Webhooks, GitHub, Stripe), whose shared
//! pieces are in `senders`.

pub mod rfc9421;
pub mod senders;
pub mod up42;

mod github;
mod standard_webhooks;
mod stripe;
