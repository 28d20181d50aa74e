//! The C ABI. Every function is wrapped in a panic boundary, takes byte strings as pointer + length,
//! checks its pointers for NULL and writes its outputs only when it returns `UP42WH_RESULT_OK`.
//! `include/up42webhooks.h` is generated from this file by cbindgen.
#![allow(non_camel_case_types)]

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::delivery::Delivery;
use crate::headers::Headers;
use crate::sign::{DigestAlg, SignOptions, Signed};
use crate::verify::{self, Key, Options};
use crate::Code;

/// An opaque key: one or more HMAC secrets with their key state computed once. Immutable after
/// `up42wh_key_new`, so one key may be used from many threads at once.
pub struct up42wh_key {
    key: Key,
}

/// A byte string.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_slice {
    pub ptr: *const u8,
    pub len: usize,
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

/// Digest algorithms for `up42wh_sign_options.digest`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum up42wh_digest {
    /// `SHA-256=:...:` (upper case, as UP42 sends it).
    Sha256Up42 = 0,
    /// `sha-256=:...:` (RFC 9530).
    Sha256 = 1,
    /// `sha-512=:...:`.
    Sha512 = 2,
}

/// How `up42wh_sign` writes its headers. Fill it with `up42wh_sign_options_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_sign_options {
    /// Signature label; NULL (or length 0) means `up42-sig`.
    pub label: *const u8,
    pub label_len: usize,
    /// The `keyid` parameter (printable ASCII, at most 64 bytes); NULL means `secret`, as UP42 sends.
    pub keyid: *const u8,
    pub keyid_len: usize,
    /// One of `up42wh_digest`.
    pub digest: u32,
    /// Write the signature as an RFC 8941 byte sequence `:...:` rather than bare base64.
    pub byte_sequence: bool,
}

/// Runs `f` inside the panic boundary: a panic becomes `Code::Panic`, never an unwind into C.
pub fn guard(f: impl FnOnce() -> Result<(), Code>) -> Code {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Code::Ok,
        Ok(Err(code)) => code,
        Err(_) => Code::Panic,
    }
}

/// A byte string from C: NULL is accepted only with length 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Code> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Code::NullArgument);
    }
    if len > isize::MAX as usize {
        return Err(Code::InvalidArgument);
    }
    Ok(core::slice::from_raw_parts(ptr, len))
}

/// # Safety
/// A non-NULL `opts` must point to a valid `up42wh_options` whose label outlives `'a`.
unsafe fn options<'a>(opts: *const up42wh_options) -> Result<Options<'a>, Code> {
    let Some(o) = opts.as_ref() else {
        return Ok(Options::default());
    };
    let label = bytes(o.label, o.label_len)?;
    Ok(Options {
        label: if label.is_empty() {
            verify::DEFAULT_LABEL
        } else {
            label
        },
        max_age: o.max_age,
        max_future: o.max_future,
        max_body: o.max_body,
    })
}

fn write_verified(out: *mut up42wh_verified, v: &verify::Verified) {
    // SAFETY: the caller passes NULL or a writable up42wh_verified.
    if let Some(out) = unsafe { out.as_mut() } {
        *out = up42wh_verified {
            created: v.created,
            expires: v.expires.unwrap_or(0),
            has_expires: v.expires.is_some(),
            key_index: v.key_index as u32,
            body_sha256: v.body_sha256,
        };
    }
}

/// The library version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn up42wh_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The stable snake_case name of a result code (e.g. `digest_mismatch`), a static NUL-terminated
/// string; `unknown` for a value that is no code.
#[no_mangle]
pub extern "C" fn up42wh_result_name(code: u32) -> *const c_char {
    Code::from_u32(code)
        .map_or(c"unknown", Code::c_name)
        .as_ptr()
}

/// A short English sentence for a result code, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn up42wh_result_message(code: u32) -> *const c_char {
    Code::from_u32(code)
        .map_or(c"unknown result code", Code::c_message)
        .as_ptr()
}

/// Fills `opts` with the defaults: label `up42-sig`, 300 s into the past, 30 s into the future,
/// 1 MiB bodies.
///
/// # Safety
/// `opts` must be NULL or point to writable memory for one `up42wh_options`.
#[no_mangle]
pub unsafe extern "C" fn up42wh_options_init(opts: *mut up42wh_options) -> Code {
    guard(|| {
        let out = opts.as_mut().ok_or(Code::NullArgument)?;
        *out = up42wh_options {
            label: core::ptr::null(),
            label_len: 0,
            max_age: verify::DEFAULT_MAX_AGE,
            max_future: verify::DEFAULT_MAX_FUTURE,
            max_body: verify::DEFAULT_MAX_BODY,
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
        for (i, s) in core::slice::from_raw_parts(secrets, count)
            .iter()
            .enumerate()
        {
            list[i] = bytes(s.ptr, s.len)?;
        }
        let key = Key::new(&list[..count])?;
        *out = Box::into_raw(Box::new(up42wh_key { key }));
        Ok(())
    })
}

/// Releases a key from `up42wh_key_new`. NULL is a no-op.
///
/// # Safety
/// `key` must be NULL or a key from `up42wh_key_new` not freed before and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn up42wh_key_free(key: *mut up42wh_key) {
    if !key.is_null() {
        guard(|| {
            drop(Box::from_raw(key));
            Ok(())
        });
    }
}

/// Verifies one delivery given its headers as an array of name/value pairs (any order, names in any
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
        let key = key.as_ref().ok_or(Code::NullArgument)?;
        if headers.is_null() && headers_len > 0 {
            return Err(Code::NullArgument);
        }
        let list = if headers_len == 0 {
            &[][..]
        } else {
            core::slice::from_raw_parts(headers, headers_len)
        };
        for h in list {
            bytes(h.name, h.name_len)?;
            bytes(h.value, h.value_len)?;
        }
        let opts = options(opts)?;
        let body = bytes(body, body_len)?;
        let v = verify::verify(
            &key.key,
            &Headers::Ffi(crate::headers::FfiHeaders::new(list)),
            body,
            now,
            &opts,
        )?;
        write_verified(out, &v);
        Ok(())
    })
}

/// Like `up42wh_verify`, with the headers as one HTTP/1 header block (`Name: value` lines ended by
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
        let key = key.as_ref().ok_or(Code::NullArgument)?;
        let raw = bytes(raw_headers, raw_headers_len)?;
        let opts = options(opts)?;
        let body = bytes(body, body_len)?;
        let v = verify::verify(&key.key, &Headers::Raw(raw), body, now, &opts)?;
        write_verified(out, &v);
        Ok(())
    })
}

/// Everything the receiver checks of one UP42 delivery, in one call: `up42wh_verify_raw`'s checks,
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
    out: *mut Delivery,
) -> Code {
    guard(|| {
        let key = key.as_ref().ok_or(Code::NullArgument)?;
        let out = out.as_mut().ok_or(Code::NullArgument)?;
        let raw = bytes(raw_headers, raw_headers_len)?;
        let opts = options(opts)?;
        let body = bytes(body, body_len)?;
        let v = verify::verify(&key.key, &Headers::Raw(raw), body, now, &opts)?;
        let mut d = Delivery {
            key_index: v.key_index as u32,
            body_sha256: v.body_sha256,
            ..Delivery::default()
        };
        crate::delivery::up42(body, now, &opts, &mut d)?;
        *out = d;
        Ok(())
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
        let ts = bytes(ts, ts_len)?;
        let t = crate::check_timestamp(ts, now, &options(opts)?)?;
        if let Some(out) = out_unix.as_mut() {
            *out = t;
        }
        Ok(())
    })
}

/// Fills `opts` with UP42's choices: label `up42-sig`, keyid `secret`, `SHA-256=` digest, bare
/// base64 signature.
///
/// # Safety
/// `opts` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_sign_options_init(opts: *mut up42wh_sign_options) -> Code {
    guard(|| {
        let out = opts.as_mut().ok_or(Code::NullArgument)?;
        *out = up42wh_sign_options {
            label: core::ptr::null(),
            label_len: 0,
            keyid: core::ptr::null(),
            keyid_len: 0,
            digest: up42wh_digest::Sha256Up42 as u32,
            byte_sequence: false,
        };
        Ok(())
    })
}

/// Signs `body` as UP42 does, with the key's first secret and `created` (unix seconds), writing the
/// values of `Content-Digest`, `Signature-Input` and `Signature` into `out`. `opts` NULL means
/// `up42wh_sign_options_init`'s defaults.
///
/// # Safety
/// `key` and `out` must be valid; `body` valid for `body_len` bytes; `opts` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn up42wh_sign(
    key: *const up42wh_key,
    body: *const u8,
    body_len: usize,
    created: i64,
    opts: *const up42wh_sign_options,
    out: *mut Signed,
) -> Code {
    guard(|| {
        let key = key.as_ref().ok_or(Code::NullArgument)?;
        let out = out.as_mut().ok_or(Code::NullArgument)?;
        let body = bytes(body, body_len)?;
        let mut o = SignOptions::default();
        if let Some(c) = opts.as_ref() {
            let label = bytes(c.label, c.label_len)?;
            if !label.is_empty() {
                o.label = label;
            }
            if !c.keyid.is_null() {
                o.keyid = bytes(c.keyid, c.keyid_len)?;
            }
            o.digest = match c.digest {
                0 => DigestAlg::Sha256Up42,
                1 => DigestAlg::Sha256,
                2 => DigestAlg::Sha512,
                _ => return Err(Code::InvalidArgument),
            };
            o.byte_sequence = c.byte_sequence;
        }
        *out = crate::sign::sign(&key.key, body, created, &o)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_code() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(code, Code::Panic);
        assert_eq!(guard(|| Ok(())), Code::Ok);
        assert_eq!(guard(|| Err(Code::Stale)), Code::Stale);
    }
}
