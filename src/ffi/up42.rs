//! The C ABI's UP42 calls, kept for their users as thin wrappers: a key is a key ring of UP42's
//! secrets, and every call here runs the one verify-and-read path of `message.rs` with the scheme
//! `UP42`. New code can use the key ring and `up42wh_verify_message`/`up42wh_receive_message` with
//! `UP42WH_SCHEME_UP42` for UP42 like for every other sender.
#![allow(non_camel_case_types)]

use super::message::{up42wh_delivery, up42wh_message_verified, Message};
use super::{
    bytes, guard, into_handle, opt_mut, opt_ref, release, try_bytes, try_mut, try_ref, up42wh_slice,
};
use crate::code::Code;
use crate::headers::{FieldList, Headers};
use crate::limits::{Limits, DEFAULT_MAX_AGE, DEFAULT_MAX_BODY, DEFAULT_MAX_FUTURE};
use crate::schemes::rfc9421::Request;
use crate::schemes::up42::{self as verify, Key};
use crate::schemes::Scheme;

/// An opaque key: one or more HMAC secrets with their key state computed once. Immutable after
/// `up42wh_key_new`, so one key may be used from many threads at once.
pub struct up42wh_key {
    pub(super) key: Key,
}

/// What a verification accepts. Fill it with `up42wh_options_init`, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_options {
    /// The signature label to verify; NULL (or length 0) means `up42-sig`.
    pub label: *const u8,
    pub label_len: usize,
    /// Oldest accepted `created` or timestamp, in seconds before `now` (default 300).
    pub max_age: i64,
    /// Furthest accepted `created` or timestamp, in seconds after `now` (default 30); also the grace
    /// allowed past `expires`.
    pub max_future: i64,
    /// Largest accepted body, in bytes (default 1 MiB).
    pub max_body: usize,
}

/// What a successful verification learnt.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_verified {
    /// The signature's `created` (unix seconds). Not covered by the UP42 HMAC: also check the body's
    /// `timestamp` with `up42wh_check_timestamp`.
    pub created: i64,
    /// The signature's `expires` (unix seconds) when `has_expires`.
    pub expires: i64,
    pub has_expires: bool,
    /// Which configured secret matched (0 is the first).
    pub key_index: u32,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
}

/// One request header field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_header {
    pub name: *const u8,
    pub name_len: usize,
    pub value: *const u8,
    pub value_len: usize,
}

/// Header fields from the C ABI whose every name and value pointer was checked readable for its
/// length (NULL only with length 0) before this was made.
#[derive(Debug)]
struct CheckedHeaders<'a>(&'a [up42wh_header]);

impl FieldList for CheckedHeaders<'_> {
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s [u8], &'s [u8])) {
        for h in self.0 {
            // SAFETY: checked readable (or empty) when this was made, for the call: the contract.
            let (name, value) = unsafe { (bytes(h.name, h.name_len), bytes(h.value, h.value_len)) };
            f(name.unwrap_or_default(), value.unwrap_or_default());
        }
    }
}

/// The one path's message for a UP42 delivery: its headers and body, with `opts` (NULL: the
/// defaults) as the label and limits.
///
/// # Safety
/// A non-NULL `opts` must point to a valid `up42wh_options` whose label outlives `'a`; `body`
/// must be valid for `body_len` bytes for `'a`.
unsafe fn up42_message<'a>(
    headers: Headers<'a>,
    body: *const u8,
    body_len: usize,
    opts: *const up42wh_options,
) -> Result<Message<'a>, Code> {
    let (label, limits) = match opt_ref!(opts) {
        Some(o) => (
            try_bytes!(o.label, o.label_len),
            Limits {
                max_age: o.max_age,
                max_future: o.max_future,
                max_body: o.max_body,
            },
        ),
        None => (&[][..], Limits::default()),
    };
    Ok(Message {
        scheme: Scheme::Up42,
        request: Request {
            method: b"",
            scheme: b"",
            authority: b"",
            target: b"",
            headers,
        },
        body: try_bytes!(body, body_len),
        label,
        required: b"",
        timestamp_max_age: limits.max_age,
        limits,
        require_created: true,
        require_digest: true,
        refuse_unsigned_times: true,
    })
}

fn write_verified(out: *mut up42wh_verified, v: &up42wh_message_verified) {
    // SAFETY: the caller passes NULL or a writable up42wh_verified.
    if let Some(out) = unsafe { out.as_mut() } {
        *out = up42wh_verified {
            created: v.time,
            expires: v.expires,
            has_expires: v.has_expires,
            key_index: v.key_index,
            body_sha256: v.body_sha256,
        };
    }
}

/// Fills `opts` with the defaults: label `up42-sig`, 300 s into the past, 30 s into the future,
/// 1 MiB bodies.
///
/// # Safety
/// `opts` must be NULL or point to writable memory for one `up42wh_options`.
#[no_mangle]
pub unsafe extern "C" fn up42wh_options_init(opts: *mut up42wh_options) -> Code {
    guard(|| {
        let out = try_mut!(opts);
        *out = up42wh_options {
            label: core::ptr::null(),
            label_len: 0,
            max_age: DEFAULT_MAX_AGE,
            max_future: DEFAULT_MAX_FUTURE,
            max_body: DEFAULT_MAX_BODY,
        };
        Ok(())
    })
}

/// Creates a key from `count` secrets (1 to 16, none empty); the first one signs, any one verifies.
/// The secrets are copied into HMAC key state, so the caller may wipe its copies afterwards.
/// On success `*out` holds a key to release with `up42wh_key_free`.
///
/// # Safety
/// `secrets` must point to `count` slices, each valid as `up42wh_slice` says; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_key_new(
    secrets: *const up42wh_slice,
    count: usize,
    out: *mut *mut up42wh_key,
) -> Code {
    guard(|| {
        if secrets.is_null() || out.is_null() {
            return Err(Code::NullArgument);
        }
        if count == 0 || count > verify::MAX_SECRETS {
            return Err(Code::InvalidArgument);
        }
        let mut list: [&[u8]; verify::MAX_SECRETS] = [&[]; verify::MAX_SECRETS];
        // SAFETY: non-NULL (checked above), `count` slices readable: the contract.
        let secrets = unsafe { core::slice::from_raw_parts(secrets, count) };
        for (i, s) in secrets.iter().enumerate() {
            list[i] = try_bytes!(s.ptr, s.len);
        }
        let key = Key::new(&list[..count])?;
        // SAFETY: non-NULL (checked above) and writable: the contract.
        unsafe { *out = into_handle(up42wh_key { key }) };
        Ok(())
    })
}

/// Releases a key from `up42wh_key_new`. NULL is a no-op.
///
/// # Safety
/// `key` must be NULL or a key from `up42wh_key_new` not freed before and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn up42wh_key_free(key: *mut up42wh_key) {
    // SAFETY: NULL, or from up42wh_key_new and not used again: the contract.
    unsafe { release(key) }
}

/// `up42wh_verify_message` for UP42 (a thin wrapper), with the headers as an array of name/value pairs (any order, names in any
/// case, repeated fields joined as RFC 9421 section 2.1 says), its exact body bytes and the current
/// time `now` in unix seconds. Checks Signature-Input, Signature, Content-Digest against the body,
/// HMAC-SHA256 against every secret of `key` in constant time, and `created`/`expires`. `opts` NULL
/// means the defaults. Does not allocate. On success fills `out` when it is not NULL.
///
/// # Safety
/// Every pointer must be NULL or valid for its length; `headers` holds `headers_len` entries.
#[no_mangle]
pub unsafe extern "C" fn up42wh_verify(
    key: *const up42wh_key,
    headers: *const up42wh_header,
    headers_len: usize,
    body: *const u8,
    body_len: usize,
    now: i64,
    opts: *const up42wh_options,
    out: *mut up42wh_verified,
) -> Code {
    guard(|| {
        let key = try_ref!(key);
        if headers.is_null() && headers_len > 0 {
            return Err(Code::NullArgument);
        }
        let list = if headers_len == 0 {
            &[][..]
        } else {
            // SAFETY: non-NULL (checked above), `headers_len` pairs readable: the contract.
            unsafe { core::slice::from_raw_parts(headers, headers_len) }
        };
        for h in list {
            try_bytes!(h.name, h.name_len);
            try_bytes!(h.value, h.value_len);
        }
        let checked = CheckedHeaders(list);
        let headers = Headers::List(&checked);
        // SAFETY: `opts` is NULL or valid, with its label, and `body` valid: the contract.
        let v = unsafe { up42_message(headers, body, body_len, opts) }?.verify(&key.key, now)?;
        write_verified(out, &v);
        Ok(())
    })
}

/// Like `up42wh_verify` (a thin wrapper, too), with the headers as one HTTP/1 header block (`Name: value` lines ended by
/// CRLF or LF, up to an empty line; a leading request line is skipped), as nginx's `raw_header()`
/// returns it.
///
/// # Safety
/// Every pointer must be NULL or valid for its length.
#[no_mangle]
pub unsafe extern "C" fn up42wh_verify_raw(
    key: *const up42wh_key,
    raw_headers: *const u8,
    raw_headers_len: usize,
    body: *const u8,
    body_len: usize,
    now: i64,
    opts: *const up42wh_options,
    out: *mut up42wh_verified,
) -> Code {
    guard(|| {
        let key = try_ref!(key);
        let headers = Headers::Raw(try_bytes!(raw_headers, raw_headers_len));
        // SAFETY: `opts` is NULL or valid, with its label, and `body` valid: the contract.
        let v = unsafe { up42_message(headers, body, body_len, opts) }?.verify(&key.key, now)?;
        write_verified(out, &v);
        Ok(())
    })
}

/// `up42wh_receive_message` for UP42 (a thin wrapper): `up42wh_verify_raw`'s checks,
/// then the body as exactly one JSON object (RFC 8259, strictly: `NOT_JSON_OBJECT`; a member the
/// store reads given twice: `DUPLICATE_FIELD`; too long: `INVALID_FIELD`), and its signed
/// `timestamp` within the window (`MALFORMED_TIMESTAMP`, `STALE`, `FUTURE`). On success fills
/// `out` with what the store needs: the dedup id (`m:` messageId, or `d:` and the body's hex
/// SHA-256), event, `body.status`, `liveMode`, the timestamp and the body's SHA-256. Does not
/// allocate.
///
/// # Safety
/// Every pointer must be NULL or valid for its length; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_receive(
    key: *const up42wh_key,
    raw_headers: *const u8,
    raw_headers_len: usize,
    body: *const u8,
    body_len: usize,
    now: i64,
    opts: *const up42wh_options,
    out: *mut up42wh_delivery,
) -> Code {
    guard(|| {
        let key = try_ref!(key);
        let out = try_mut!(out);
        let headers = Headers::Raw(try_bytes!(raw_headers, raw_headers_len));
        // SAFETY: `opts` is NULL or valid, with its label, and `body` valid: the contract.
        unsafe { up42_message(headers, body, body_len, opts) }?.receive(&key.key, now, b"", out)
    })
}

/// Parses an RFC 3339 date-time (the body's signed `timestamp`) and checks it lies within
/// `opts.max_age` before and `opts.max_future` after `now`. On success writes it, in unix seconds,
/// to `*out_unix` when that is not NULL. Returns `MALFORMED_TIMESTAMP`, `STALE` or `FUTURE` otherwise.
///
/// # Safety
/// `ts` must be valid for `ts_len` bytes; `opts` NULL or valid; `out_unix` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_check_timestamp(
    ts: *const u8,
    ts_len: usize,
    now: i64,
    opts: *const up42wh_options,
    out_unix: *mut i64,
) -> Code {
    guard(|| {
        let ts = try_bytes!(ts, ts_len);
        // SAFETY: `opts` is NULL or valid: the contract. The body is empty.
        let m = unsafe { up42_message(Headers::Raw(b""), core::ptr::null(), 0, opts) }?;
        let t = verify::check_timestamp(ts, now, &m.up42_options())?;
        if let Some(out) = opt_mut!(out_unix) {
            *out = t;
        }
        Ok(())
    })
}
