//! The C ABI for every sender: a key ring (HMAC secrets and Ed25519 public keys by key id) and one
//! verify-and-read path for UP42, RFC 9421 requests, Standard Webhooks, GitHub and Stripe
//! (`Message`). `up42.rs`'s UP42 calls are thin wrappers over the same path. Same conventions as
//! `ffi`: panic boundary, pointer + length, outputs only on success.
#![allow(non_camel_case_types)]

use super::{
    bytes, guard, into_handle, opt_mut, release, try_bytes, try_mut, try_ref, up42wh_slice,
};
use crate::code::Code;
use crate::delivery::{self, Delivery};
use crate::headers::Headers;
use crate::keyring::{Alg, KeyRing};
use crate::schemes::rfc9421::{self, Request, NONCE_MAX};
use crate::schemes::senders::Limits;
use crate::schemes::{up42, Scheme};

/// An opaque key ring. Add every key before sharing it: adding needs the ring to itself, while
/// verifications only read it and may run from many threads at once.
pub struct up42wh_keyring {
    pub(super) ring: KeyRing,
}

/// A request as nginx knows it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_request {
    /// The method as sent, e.g. `POST`.
    pub method: up42wh_slice,
    /// `http` or `https`.
    pub scheme: up42wh_slice,
    /// The `Host` the request was for, with its port if one was given.
    pub authority: up42wh_slice,
    /// The request target as sent: path and query.
    pub target: up42wh_slice,
    /// The header block, as nginx's `raw_header()` returns it (a leading request line is skipped).
    pub raw_headers: up42wh_slice,
    pub body: up42wh_slice,
}

/// What a verification accepts. Fill it with `up42wh_message_options_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_message_options {
    /// One of `up42wh_scheme`.
    pub scheme: u32,
    /// RFC 9421: the signature label to verify; empty for the first signature. UP42: the label,
    /// empty for `up42-sig`.
    pub label: up42wh_slice,
    /// RFC 9421: components that must be covered, as an RFC 8941 list of component identifiers
    /// (`"@method", "content-digest"`); empty for none.
    pub required: up42wh_slice,
    /// Oldest accepted signature time, in seconds before `now` (default 300).
    pub max_age: i64,
    /// Furthest accepted signature time after `now` (default 30).
    pub max_future: i64,
    /// Largest accepted body (default 1 MiB).
    pub max_body: usize,
    /// RFC 9421: refuse a signature without `created` (default true).
    pub require_created: bool,
    /// RFC 9421: refuse a signature that does not cover `content-digest` (default true).
    pub require_digest: bool,
    /// UP42: the oldest accepted body `timestamp`, in seconds before `now` (default 300, as
    /// `max_age`). The body is what UP42's signature covers: a receiver that takes a sender's
    /// late retries sets its replay horizon here.
    pub timestamp_max_age: i64,
    /// UP42: refuse a delivery whose `created` or `expires` is outside the window of `max_age`
    /// and `max_future` (default true). UP42's HMAC does not cover them; with this off they refuse
    /// nothing and `unsigned_times` reports them.
    pub refuse_unsigned_times: bool,
}

/// What a successful verification learnt.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_message_verified {
    /// The signed time (RFC 9421's and UP42's `created`, the Standard Webhooks or Stripe
    /// timestamp), in unix seconds, when `has_time`. GitHub signs none.
    pub time: i64,
    pub has_time: bool,
    /// RFC 9421 `expires` when `has_expires`.
    pub expires: i64,
    pub has_expires: bool,
    /// The key that verified, by the order keys were added (0 is the first).
    pub key_index: u32,
    /// 1 for HMAC-SHA256, 2 for Ed25519.
    pub alg: u32,
    pub body_sha256: [u8; 32],
    /// RFC 9421 `nonce`: its first `nonce_len` bytes (at most 64).
    pub nonce: [u8; 64],
    pub nonce_len: usize,
    /// UP42 with `refuse_unsigned_times` off: the result `created`/`expires` would have been
    /// refused with (`STALE`, `FUTURE`, `EXPIRED`), or `UP42WH_RESULT_OK` within the window.
    pub unsigned_times: u32,
}

/// What a verified delivery gives the store, filled by `up42wh_receive_message`.
#[repr(C)]
#[derive(Clone)]
pub struct up42wh_delivery {
    /// The configured secret or key that verified (0 is the first).
    pub key_index: u32,
    /// 1 for `true`, 0 for `false`, -1 when the body has no boolean live mode (UP42's `liveMode`,
    /// Stripe's `livemode`).
    pub live: i32,
    /// The signed time in unix seconds: for UP42 the body's `timestamp`, for the others the
    /// signature's (0 when it has none: GitHub).
    pub time: i64,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
    /// The body has tabs or line breaks between its tokens (the dump writes an event a line, so a
    /// caller replaces them with spaces; JSON has them nowhere else).
    pub line_breaks: bool,
    pub id_len: usize,
    pub event_len: usize,
    pub status_len: usize,
    /// The id the delivery is deduplicated on: the caller's prefix, then `m:` and UP42's
    /// `messageId`, or `i:` and another sender's id, or `d:` and the hex SHA-256 of the body when
    /// the delivery has no id.
    pub id: [u8; 320],
    /// Where the sender's own id starts in `id` (after the prefix and the kind); for a delivery
    /// without one, where the body digest's hex starts.
    pub id_at: usize,
    /// Where that id came from: an `up42wh_id_source`.
    pub id_source: u32,
    /// The event type (tabs and line breaks written as spaces); empty when there is none.
    pub event: [u8; 128],
    /// The status (UP42: `body.status`; GitHub: `action`); empty when there is none.
    pub status: [u8; 128],
    /// As `up42wh_message_verified.unsigned_times`.
    pub unsigned_times: u32,
}

impl From<&Delivery> for up42wh_delivery {
    fn from(d: &Delivery) -> Self {
        let ((id, id_len), (event, event_len), (status, status_len)) =
            (d.id.raw(), d.event.raw(), d.status.raw());
        up42wh_delivery {
            key_index: d.key_index,
            live: d.live,
            time: d.time,
            body_sha256: d.body_sha256,
            line_breaks: d.line_breaks,
            id_len,
            event_len,
            status_len,
            id: *id,
            id_at: d.id_at,
            id_source: d.id_source as u32,
            event: *event,
            status: *status,
            unsigned_times: d.unsigned_times as u32,
        }
    }
}

impl Default for up42wh_delivery {
    fn default() -> Self {
        (&Delivery::default()).into()
    }
}

/// Makes an empty key ring. On success `*out` holds a ring to release with `up42wh_keyring_free`.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_keyring_new(out: *mut *mut up42wh_keyring) -> Code {
    guard(|| {
        let out = try_mut!(out);
        *out = into_handle(up42wh_keyring {
            ring: KeyRing::new(),
        });
        Ok(())
    })
}

/// Releases a ring. NULL is a no-op.
///
/// # Safety
/// `ring` must be NULL or a ring from `up42wh_keyring_new` not freed before and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn up42wh_keyring_free(ring: *mut up42wh_keyring) {
    // SAFETY: NULL, or from up42wh_keyring_new and not used again: the contract.
    unsafe { release(ring) }
}

/// Which kind of key `up42wh_keyring_add` reads from `material`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum up42wh_key_kind {
    /// An HMAC-SHA256 secret, the bytes as they are.
    Hmac = 1,
    /// A PEM `PUBLIC KEY` holding an Ed25519 key. With an empty key id the id is `sha512:` and the
    /// hex SHA-512 of the raw key, as UbiOps names its keys.
    Ed25519Pem = 2,
    /// A Standard Webhooks key: `whsec_<base64 secret>` or `whpk_<base64 Ed25519 public key>`.
    StandardWebhooks = 3,
}

u32_enum!(up42wh_key_kind {
    Hmac,
    Ed25519Pem,
    StandardWebhooks
});

/// Adds a key with id `keyid` (printable ASCII, unique in the ring; may be empty only for
/// `ED25519_PEM`). Writes its index to `*out_index` when that is not NULL.
///
/// # Safety
/// `ring` must be a valid ring that no other thread uses meanwhile; the byte strings valid for their
/// lengths; `out_index` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_keyring_add(
    ring: *mut up42wh_keyring,
    kind: u32,
    keyid: *const u8,
    keyid_len: usize,
    material: *const u8,
    material_len: usize,
    out_index: *mut u32,
) -> Code {
    guard(|| {
        let ring = &mut try_mut!(ring).ring;
        let keyid = try_bytes!(keyid, keyid_len);
        let material = try_bytes!(material, material_len);
        let index = match up42wh_key_kind::try_from(kind)? {
            up42wh_key_kind::Hmac => ring.add_hmac(keyid, material)?,
            up42wh_key_kind::Ed25519Pem => {
                ring.add_ed25519_pem((!keyid.is_empty()).then_some(keyid), material)?
            }
            up42wh_key_kind::StandardWebhooks => ring.add_standard_webhooks(keyid, material)?,
        };
        if let Some(out) = opt_mut!(out_index) {
            *out = index as u32;
        }
        Ok(())
    })
}

/// The id of the key at `index`, as a slice into the ring (valid as long as the ring).
///
/// # Safety
/// `ring` must be valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_keyring_keyid(
    ring: *const up42wh_keyring,
    index: u32,
    out: *mut up42wh_slice,
) -> Code {
    guard(|| {
        let ring = &try_ref!(ring).ring;
        let out = try_mut!(out);
        let id = ring.keyid(index as usize).ok_or(Code::InvalidArgument)?;
        *out = up42wh_slice {
            ptr: id.as_ptr(),
            len: id.len(),
        };
        Ok(())
    })
}

/// Fills `opts` with the defaults for `scheme` (one of `up42wh_scheme`).
///
/// # Safety
/// `opts` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_message_options_init(
    opts: *mut up42wh_message_options,
    scheme: u32,
) -> Code {
    guard(|| {
        let out = try_mut!(opts);
        Scheme::try_from(scheme)?;
        let d = rfc9421::Options::default();
        let empty = up42wh_slice {
            ptr: core::ptr::null(),
            len: 0,
        };
        *out = up42wh_message_options {
            scheme,
            label: empty,
            required: empty,
            max_age: d.limits.max_age,
            max_future: d.limits.max_future,
            max_body: d.limits.max_body,
            require_created: d.require_created,
            require_digest: d.require_digest,
            timestamp_max_age: d.limits.max_age,
            refuse_unsigned_times: true,
        };
        Ok(())
    })
}

/// The name of scheme `scheme` (`up42`, `rfc9421`, `standard_webhooks`, `github`, `stripe`), a
/// static NUL-terminated string, or NULL for a number that is no scheme: a caller lists the
/// schemes by asking from 1 up to the first NULL.
#[no_mangle]
pub extern "C" fn up42wh_scheme_name(scheme: u32) -> *const core::ffi::c_char {
    super::name_or_null(scheme, Scheme::name)
}

/// Verifies one request signed with `opts->scheme`, with the keys of `ring`, at `now` (unix
/// seconds). Does not allocate. On success fills `out` when it is not NULL.
///
/// # Safety
/// `ring`, `req` and `opts` must be valid, with every slice valid for its length; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_verify_message(
    ring: *const up42wh_keyring,
    req: *const up42wh_request,
    now: i64,
    opts: *const up42wh_message_options,
    out: *mut up42wh_message_verified,
) -> Code {
    guard(|| {
        let ring = &try_ref!(ring).ring;
        // SAFETY: `req` and `opts` are as up42wh_verify_message's contract says.
        let v = unsafe { Message::from_raw(req, opts) }?.verify(ring, now)?;
        if let Some(out) = opt_mut!(out) {
            *out = v;
        }
        Ok(())
    })
}

/// A request's parts and options, read from the caller's pointers: what every verification and
/// every receive path takes, whichever sender it is.
pub(super) struct Message<'a> {
    pub(super) scheme: Scheme,
    pub(super) request: Request<'a>,
    pub(super) body: &'a [u8],
    pub(super) label: &'a [u8],
    pub(super) required: &'a [u8],
    pub(super) limits: Limits,
    pub(super) require_created: bool,
    pub(super) require_digest: bool,
    pub(super) timestamp_max_age: i64,
    pub(super) refuse_unsigned_times: bool,
}

impl<'a> Message<'a> {
    /// # Safety
    /// `req` and `opts` NULL or valid, with every slice valid for its length for `'a`.
    pub(super) unsafe fn from_raw(
        req: *const up42wh_request,
        opts: *const up42wh_message_options,
    ) -> Result<Message<'a>, Code> {
        let r = try_ref!(req);
        let o = try_ref!(opts);
        // SAFETY: the request's and options' slices are readable for 'a: the caller's contract.
        let slice = |s: up42wh_slice| unsafe { bytes(s.ptr, s.len) };
        Ok(Message {
            scheme: Scheme::try_from(o.scheme)?,
            request: Request {
                method: slice(r.method)?,
                scheme: slice(r.scheme)?,
                authority: slice(r.authority)?,
                target: slice(r.target)?,
                headers: Headers::Raw(slice(r.raw_headers)?),
            },
            body: slice(r.body)?,
            label: slice(o.label)?,
            required: slice(o.required)?,
            limits: Limits {
                max_age: o.max_age,
                max_future: o.max_future,
                max_body: o.max_body,
            },
            require_created: o.require_created,
            require_digest: o.require_digest,
            timestamp_max_age: o.timestamp_max_age,
            refuse_unsigned_times: o.refuse_unsigned_times,
        })
    }

    /// UP42's options: the label (empty: `up42-sig`) and the limits.
    pub(super) fn up42_options(&self) -> up42::Options<'a> {
        up42::Options {
            label: if self.label.is_empty() {
                up42::DEFAULT_LABEL
            } else {
                self.label
            },
            limits: self.limits,
            refuse_unsigned_times: self.refuse_unsigned_times,
        }
    }

    /// Every check of the message's scheme with the keys of `ring`: the one verification path.
    pub(super) fn verify(&self, ring: &KeyRing, now: i64) -> Result<up42wh_message_verified, Code> {
        let mut v = up42wh_message_verified {
            time: 0,
            has_time: false,
            expires: 0,
            has_expires: false,
            key_index: 0,
            alg: Alg::HmacSha256 as u32,
            body_sha256: [0; 32],
            nonce: [0; NONCE_MAX],
            nonce_len: 0,
            unsigned_times: Code::Ok as u32,
        };
        let (headers, body, limits) = (&self.request.headers, self.body, &self.limits);
        match self.scheme {
            Scheme::Rfc9421 => {
                let opts = rfc9421::Options {
                    label: self.label,
                    required: self.required,
                    limits: self.limits,
                    require_created: self.require_created,
                    require_digest: self.require_digest,
                };
                let r = rfc9421::verify(ring, &self.request, body, now, &opts)?;
                v.time = r.created.unwrap_or(0);
                v.has_time = r.created.is_some();
                v.expires = r.expires.unwrap_or(0);
                v.has_expires = r.expires.is_some();
                v.key_index = r.key_index as u32;
                v.alg = r.alg as u32;
                v.body_sha256 = r.body_sha256;
                v.nonce = r.nonce;
                v.nonce_len = r.nonce_len;
            }
            Scheme::Up42 => {
                let r = up42::verify(ring, headers, body, now, &self.up42_options())?;
                v.time = r.created;
                v.has_time = true;
                v.expires = r.expires.unwrap_or(0);
                v.has_expires = r.expires.is_some();
                v.key_index = r.key_index as u32;
                v.body_sha256 = r.body_sha256;
                v.unsigned_times = r.unsigned_times.unwrap_or(Code::Ok) as u32;
            }
            body_scheme => {
                // The senders that sign the body and headers: their verification from the one
                // list of schemes.
                let verify = body_scheme.verify_body().ok_or(Code::InvalidArgument)?;
                let s = verify(ring, headers, body, now, limits)?;
                v.time = s.timestamp.unwrap_or(0);
                v.has_time = s.timestamp.is_some();
                v.key_index = s.key_index as u32;
                v.alg = s.alg as u32;
                v.body_sha256 = s.body_sha256;
            }
        }
        Ok(v)
    }

    /// The verification, then what the store keeps: the one receive path. The id starts with
    /// `prefix`.
    pub(super) fn receive(
        &self,
        ring: &KeyRing,
        now: i64,
        prefix: &[u8],
        out: &mut up42wh_delivery,
    ) -> Result<(), Code> {
        let v = self.verify(ring, now)?;
        let mut d = Delivery {
            key_index: v.key_index,
            time: v.time,
            body_sha256: v.body_sha256,
            unsigned_times: Code::from_u32(v.unsigned_times).unwrap_or(Code::Ok),
            ..Delivery::default()
        };
        // UP42's body timestamp has its own age limit (the receiver's replay horizon).
        let body_limits = Limits {
            max_age: self.timestamp_max_age,
            ..self.limits
        };
        let read = delivery::Read {
            scheme: self.scheme,
            nonce: &v.nonce[..v.nonce_len],
            prefix,
            now,
            limits: &body_limits,
        };
        read.fill(&self.request.headers, self.body, &mut d)?;
        *out = (&d).into();
        Ok(())
    }
}

/// Everything the receiver checks of a delivery, in one call, for every sender:
/// `up42wh_verify_message`'s checks, then the body as exactly one JSON object (RFC 8259, strictly:
/// `NOT_JSON_OBJECT`; a member the store reads given twice: `DUPLICATE_FIELD`; too long:
/// `INVALID_FIELD`), and for UP42 its signed `timestamp` within the window (`MALFORMED_TIMESTAMP`,
/// `STALE`, `FUTURE`). On success fills `out`: the dedup id (`id_prefix`, at most 62 bytes, then
/// for UP42 `m:` and the body's `messageId`, for the others `i:` and the sender's id: the RFC 9421 `nonce`, Standard Webhooks' `webhook-id`, GitHub's
/// `X-GitHub-Delivery`, Stripe's event `id`; or `d:` and the body's hex SHA-256 when there is
/// none), the event (`event` or `type`; GitHub's `X-GitHub-Event`), the status (`status`; GitHub's
/// `action`; UP42's `body.status`), the live mode (Stripe's `livemode`, UP42's `liveMode`), the
/// signed time (UP42: the body's `timestamp`) and the body's SHA-256. Does not allocate.
///
/// # Safety
/// As `up42wh_verify_message`; `id_prefix` valid for its length; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_receive_message(
    ring: *const up42wh_keyring,
    req: *const up42wh_request,
    now: i64,
    opts: *const up42wh_message_options,
    id_prefix: *const u8,
    id_prefix_len: usize,
    out: *mut up42wh_delivery,
) -> Code {
    guard(|| {
        let ring = &try_ref!(ring).ring;
        let out = try_mut!(out);
        let prefix = try_bytes!(id_prefix, id_prefix_len);
        // SAFETY: `req` and `opts` are as up42wh_receive_message's contract says.
        unsafe { Message::from_raw(req, opts) }?.receive(ring, now, prefix, out)
    })
}
