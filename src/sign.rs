//! Signing a body the way UP42 does, for tests and the test-event tool.

use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use crate::buf::{format_i64, Text};
use crate::code::Code;
use crate::schemes::up42::{Key, DEFAULT_LABEL, MAX_LABEL};
use crate::sf;

/// Longest key id accepted when signing: what fits `Signed::signature_input` beside the longest
/// label and the parameters. A verifier accepts longer ones (`keyring::MAX_KEYID`).
pub(crate) const MAX_SIGN_KEYID: usize = 64;

/// Which digest goes into `Content-Digest` (`up42wh_sign_options.digest`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestAlg {
    /// `SHA-256=:...:`, upper case, as UP42 sends it.
    #[default]
    Sha256Up42 = 0,
    /// `sha-256=:...:` as RFC 9530 spells it.
    Sha256 = 1,
    /// `sha-512=:...:`.
    Sha512 = 2,
}

u32_enum!(DigestAlg {
    Sha256Up42,
    Sha256,
    Sha512
});

/// How the signature is written and labelled. `Default` is what UP42 sends.
#[derive(Debug, Clone, Copy)]
pub struct SignOptions<'a> {
    pub label: &'a [u8],
    pub keyid: &'a [u8],
    pub digest: DigestAlg,
    /// Write the signature as an RFC 8941 byte sequence `:...:` instead of UP42's bare base64.
    pub byte_sequence: bool,
}

impl Default for SignOptions<'_> {
    fn default() -> Self {
        SignOptions {
            label: DEFAULT_LABEL,
            keyid: b"secret",
            digest: DigestAlg::default(),
            byte_sequence: false,
        }
    }
}

/// The three header values of a signed delivery, each also NUL-terminated in its buffer.
#[derive(Clone, Default)]
pub struct Signed {
    /// Value of `Content-Digest`.
    pub(crate) content_digest: Text<128>,
    /// Value of `Signature-Input`.
    pub(crate) signature_input: Text<320>,
    /// Value of `Signature`.
    pub(crate) signature: Text<128>,
}

impl core::fmt::Debug for Signed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Signed")
            .field(
                "content_digest",
                &String::from_utf8_lossy(self.content_digest()),
            )
            .field(
                "signature_input",
                &String::from_utf8_lossy(self.signature_input()),
            )
            .field("signature", &String::from_utf8_lossy(self.signature()))
            .finish()
    }
}

impl Signed {
    pub fn content_digest(&self) -> &[u8] {
        self.content_digest.as_bytes()
    }
    pub fn signature_input(&self) -> &[u8] {
        self.signature_input.as_bytes()
    }
    pub fn signature(&self) -> &[u8] {
        self.signature.as_bytes()
    }
    /// The three headers as a raw header block (CRLF line ends, an empty line after), as nginx's
    /// `raw_header()` gives a request's: for tests and tools, not the verify path.
    pub fn header_block(&self) -> Vec<u8> {
        [
            &b"Content-Digest: "[..],
            self.content_digest(),
            b"\r\nSignature-Input: ",
            self.signature_input(),
            b"\r\nSignature: ",
            self.signature(),
            b"\r\n\r\n",
        ]
        .concat()
    }
}

/// Appends to a fixed buffer, keeping one byte for the terminating NUL.
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Code> {
        let end = self.len + bytes.len();
        if end >= self.buf.len() {
            return Err(Code::InvalidArgument);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
    fn put_b64(&mut self, bytes: &[u8]) -> Result<(), Code> {
        let mut text = [0u8; 88];
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut text)
            .map_err(|_| Code::InvalidArgument)?;
        self.put(&text[..n])
    }
    fn finish(self) -> usize {
        self.buf[self.len] = 0;
        self.len
    }
}

fn write<const N: usize>(
    text: &mut Text<N>,
    f: impl FnOnce(&mut Writer) -> Result<(), Code>,
) -> Result<(), Code> {
    text.fill(|buf| {
        let mut w = Writer { buf, len: 0 };
        f(&mut w)?;
        Ok(w.finish())
    })
}

/// Signs `body` with the key's first secret, `created` in unix seconds.
pub fn sign(key: &Key, body: &[u8], created: i64, opts: &SignOptions) -> Result<Signed, Code> {
    let label_ok =
        !opts.label.is_empty() && opts.label.len() <= MAX_LABEL && sf::valid_key(opts.label);
    let keyid_ok =
        opts.keyid.len() <= MAX_SIGN_KEYID && opts.keyid.iter().all(|b| (0x20..=0x7e).contains(b));
    // `created` must be an RFC 8941 integer (15 digits at most), or the signature would not parse.
    let created_ok = (-sf::MAX_INTEGER..=sf::MAX_INTEGER).contains(&created);
    if !label_ok || !keyid_ok || !created_ok || key.is_empty() {
        return Err(Code::InvalidArgument);
    }
    let mut out = Signed::default();
    write(&mut out.content_digest, |w| match opts.digest {
        DigestAlg::Sha512 => {
            w.put(b"sha-512=:")?;
            w.put_b64(&Sha512::digest(body))?;
            w.put(b":")
        }
        alg => {
            w.put(if alg == DigestAlg::Sha256 {
                b"sha-256=:"
            } else {
                b"SHA-256=:"
            })?;
            w.put_b64(&Sha256::digest(body))?;
            w.put(b":")
        }
    })?;
    write(&mut out.signature_input, |w| {
        w.put(opts.label)?;
        w.put(b"=(\"content-digest\");keyid=\"")?;
        for &b in opts.keyid {
            if b == b'"' || b == b'\\' {
                w.put(b"\\")?;
            }
            w.put(&[b])?;
        }
        w.put(b"\";alg=hmac-sha256;created=")?;
        let mut digits = [0u8; 24];
        w.put(format_i64(created, &mut digits))
    })?;
    let tag = key.tag(0, out.content_digest());
    write(&mut out.signature, |w| {
        w.put(opts.label)?;
        w.put(if opts.byte_sequence { b"=:" } else { b"=" })?;
        w.put_b64(&tag)?;
        w.put(if opts.byte_sequence { b":" } else { b"" })
    })?;
    Ok(out)
}

/// Standard Webhooks' signature of a message, as `webhook-signature` carries it: `v1,` and the
/// base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret of a `whsec_` key (what
/// [`crate::KeyRing::add_standard_webhooks`] takes, and so what the receiver's own verifier
/// accepts). `InvalidArgument` for a key that is not `whsec_` and base64, or an id that is empty
/// or holds a `.` (the signed content is dot-separated; the verifier refuses such an id).
pub fn standard_webhooks(
    whsec: &[u8],
    id: &[u8],
    timestamp: i64,
    body: &[u8],
) -> Result<String, Code> {
    use hmac::{KeyInit, Mac};
    let b64 = crate::headers::trim_ows(whsec)
        .strip_prefix(b"whsec_")
        .ok_or(Code::InvalidArgument)?;
    let mut secret = [0u8; 96];
    let n = crate::encoding::decode_b64(b64, &mut secret).ok_or(Code::InvalidArgument)?;
    if n == 0 || id.is_empty() || id.contains(&b'.') {
        return Err(Code::InvalidArgument);
    }
    let mut mac =
        crate::mac::HmacSha256::new_from_slice(&secret[..n]).map_err(|_| Code::InvalidArgument)?;
    let mut digits = [0u8; 24];
    for part in [
        id,
        b".",
        crate::buf::format_i64(timestamp, &mut digits),
        b".",
        body,
    ] {
        mac.update(part);
    }
    let tag = mac.finalize().into_bytes();
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyid_is_escaped_and_label_checked() {
        let key = Key::new(&[b"s"]).unwrap();
        let opts = SignOptions {
            keyid: br#"a"b\c"#,
            ..SignOptions::default()
        };
        let s = sign(&key, b"x", 1, &opts).unwrap();
        assert!(s
            .signature_input()
            .ends_with(br#";keyid="a\"b\\c";alg=hmac-sha256;created=1"#));
        let bad = SignOptions {
            label: b"Up42",
            ..SignOptions::default()
        };
        assert_eq!(
            sign(&key, b"x", 1, &bad).unwrap_err(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn created_must_be_an_integer_a_verifier_can_read() {
        let key = Key::new(&[b"s"]).unwrap();
        let opts = SignOptions::default();
        for ok in [
            0,
            1_700_000_000,
            crate::sf::MAX_INTEGER,
            -crate::sf::MAX_INTEGER,
        ] {
            let s = sign(&key, b"x", ok, &opts).unwrap();
            let headers = [
                (&b"Content-Digest"[..], s.content_digest()),
                (&b"Signature-Input"[..], s.signature_input()),
                (&b"Signature"[..], s.signature()),
            ];
            let lenient = crate::schemes::up42::Options {
                limits: crate::limits::Limits {
                    max_age: i64::MAX / 4,
                    max_future: i64::MAX / 4,
                    ..crate::limits::Limits::default()
                },
                ..crate::schemes::up42::Options::default()
            };
            // It parses: what can fail after that is only the time window.
            let r = crate::schemes::up42::verify(
                &key,
                &crate::headers::Headers::Pairs(&headers),
                b"x",
                ok,
                &lenient,
            );
            assert!(r.is_ok(), "created={ok}: {r:?}");
        }
        for bad in [
            crate::sf::MAX_INTEGER + 1,
            1_000_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                sign(&key, b"x", bad, &opts).unwrap_err(),
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }
}
