//! The C ABI for signing as UP42 does (tests, test events, the benchmark's client).
#![allow(non_camel_case_types)]

use super::{guard, opt_ref, try_bytes, try_mut, try_ref, up42wh_key};
use crate::code::Code;
use crate::sign::{SignOptions, Signed};

/// The digest algorithms of `up42wh_sign_options.digest`: the core's enum, exported as it is.
pub use crate::sign::DigestAlg as up42wh_digest;

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

/// Fills `opts` with UP42's choices: label `up42-sig`, keyid `secret`, `SHA-256=` digest, bare
/// base64 signature.
///
/// # Safety
/// `opts` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_sign_options_init(opts: *mut up42wh_sign_options) -> Code {
    guard(|| {
        let out = try_mut!(opts);
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

/// The three header values of a signed delivery, each also NUL-terminated.
#[repr(C)]
#[derive(Clone)]
pub struct up42wh_signed {
    /// Value of `Content-Digest`.
    pub content_digest: [u8; 128],
    pub content_digest_len: usize,
    /// Value of `Signature-Input`.
    pub signature_input: [u8; 320],
    pub signature_input_len: usize,
    /// Value of `Signature`.
    pub signature: [u8; 128],
    pub signature_len: usize,
}

impl From<&Signed> for up42wh_signed {
    fn from(s: &Signed) -> Self {
        let (content_digest, content_digest_len) = s.content_digest.raw();
        let (signature_input, signature_input_len) = s.signature_input.raw();
        let (signature, signature_len) = s.signature.raw();
        up42wh_signed {
            content_digest: *content_digest,
            content_digest_len,
            signature_input: *signature_input,
            signature_input_len,
            signature: *signature,
            signature_len,
        }
    }
}

impl Default for up42wh_signed {
    fn default() -> Self {
        (&Signed::default()).into()
    }
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
    out: *mut up42wh_signed,
) -> Code {
    guard(|| {
        let key = try_ref!(key);
        let out = try_mut!(out);
        let body = try_bytes!(body, body_len);
        let mut o = SignOptions::default();
        if let Some(c) = opt_ref!(opts) {
            let label = try_bytes!(c.label, c.label_len);
            if !label.is_empty() {
                o.label = label;
            }
            if !c.keyid.is_null() {
                o.keyid = try_bytes!(c.keyid, c.keyid_len);
            }
            o.digest = up42wh_digest::try_from(c.digest)?;
            o.byte_sequence = c.byte_sequence;
        }
        *out = (&crate::sign::sign(&key.key, body, created, &o)?).into();
        Ok(())
    })
}
