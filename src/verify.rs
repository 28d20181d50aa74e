//! Verifying a UP42 delivery: Signature-Input, Signature, Content-Digest, HMAC-SHA256, freshness.

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::headers::{Headers, FIELD_MAX};
use crate::sf::{self, BareItem, Member, Mode};
use crate::Code;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The label UP42 gives its signature.
pub const DEFAULT_LABEL: &[u8] = b"up42-sig";
/// How old a signature or body timestamp may be, in seconds.
pub const DEFAULT_MAX_AGE: i64 = 300;
/// How far into the future a signature or timestamp may lie (clock skew), in seconds.
pub const DEFAULT_MAX_FUTURE: i64 = 30;
/// The largest body verified, in bytes.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// At most this many secrets at once (rotation needs two or three).
pub const MAX_SECRETS: usize = 16;
/// At most this many covered components.
pub const MAX_COMPONENTS: usize = 16;
/// Longest label accepted in options.
pub const MAX_LABEL: usize = 64;

/// One or more HMAC secrets, with each HMAC key state computed once.
#[derive(Clone)]
pub struct Key {
    macs: Vec<HmacSha256>,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({} secrets)", self.macs.len()) // never the secrets
    }
}

impl Key {
    /// A key from 1 to [`MAX_SECRETS`] non-empty secrets; the first one signs.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Key, Code> {
        if secrets.is_empty() || secrets.len() > MAX_SECRETS {
            return Err(Code::InvalidArgument);
        }
        let mut macs = Vec::with_capacity(secrets.len());
        for s in secrets {
            let s = s.as_ref();
            if s.is_empty() {
                return Err(Code::InvalidArgument);
            }
            macs.push(HmacSha256::new_from_slice(s).map_err(|_| Code::InvalidArgument)?);
        }
        Ok(Key { macs })
    }

    pub fn len(&self) -> usize {
        self.macs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
    }

    /// HMAC-SHA256 of `msg` with the secret at `index`.
    pub fn tag(&self, index: usize, msg: &[u8]) -> [u8; 32] {
        let mut mac = self.macs[index].clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    /// Compares `tag` with the HMAC of `msg` under every secret, all of them, without an early exit.
    /// Returns the index of the (first) matching secret.
    fn matching_secret(&self, msg: &[u8], tag: &[u8; 32]) -> Option<usize> {
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, _) in self.macs.iter().enumerate() {
            let hit = self.tag(i, msg).ct_eq(tag);
            index.conditional_assign(&(i as u32), hit & !found);
            found |= hit;
        }
        bool::from(found).then_some(index as usize)
    }
}

/// What a verification accepts. `Options::default()` is UP42's scheme with the defaults above.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub label: &'a [u8],
    pub max_age: i64,
    pub max_future: i64,
    pub max_body: usize,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            label: DEFAULT_LABEL,
            max_age: DEFAULT_MAX_AGE,
            max_future: DEFAULT_MAX_FUTURE,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Options<'_> {
    pub fn check(&self) -> Result<(), Code> {
        let ok = !self.label.is_empty()
            && self.label.len() <= MAX_LABEL
            && sf::valid_key(self.label)
            && self.max_age >= 0
            && self.max_future >= 0;
        if ok {
            Ok(())
        } else {
            Err(Code::InvalidArgument)
        }
    }

    /// Is `t` (unix seconds) within the window around `now`?
    pub fn fresh(&self, t: i64, now: i64) -> Result<(), Code> {
        if now.saturating_sub(t) > self.max_age {
            Err(Code::Stale)
        } else if t.saturating_sub(now) > self.max_future {
            Err(Code::Future)
        } else {
            Ok(())
        }
    }
}

/// What a successful verification learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signature's `created` time (unix seconds). Not covered by the UP42 HMAC: check the body's
    /// own `timestamp` too.
    pub created: i64,
    /// The signature's `expires` time, if it has one.
    pub expires: Option<i64>,
    /// Which secret matched (0 is the first); useful to see when an old secret can be retired.
    pub key_index: usize,
    /// SHA-256 of the body, e.g. to deduplicate deliveries without an id.
    pub body_sha256: [u8; 32],
}

/// Lazily computed body digests: each is computed at most once.
struct BodyDigests<'a> {
    body: &'a [u8],
    sha256: Option<[u8; 32]>,
    sha512: Option<[u8; 64]>,
}

impl BodyDigests<'_> {
    fn sha256(&mut self) -> [u8; 32] {
        *self.sha256.get_or_insert_with(|| Sha256::digest(self.body).into())
    }
    fn sha512(&mut self) -> [u8; 64] {
        *self.sha512.get_or_insert_with(|| Sha512::digest(self.body).into())
    }
}

/// Decodes base64 `text` into `out` (padding optional, as RFC 8941 allows); the decoded length.
pub(crate) fn decode_b64(text: &[u8], out: &mut [u8]) -> Option<usize> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    // Bound the work before decoding: the decoder would refuse anything longer anyway.
    if text.len() > out.len() / 3 * 4 + 4 {
        return None;
    }
    ENGINE.decode_slice(text, out).ok()
}

/// Checks every `sha-256` / `sha-512` member of a Content-Digest value against the body.
fn check_content_digest(value: &[u8], body: &mut BodyDigests) -> Result<(), Code> {
    let mode = Mode { upper_keys: true, ..Mode::default() };
    let mut result = Ok(());
    let mut supported = 0usize;
    sf::for_each_dict_member(value, mode, |key, member| {
        let is256 = key.eq_ignore_ascii_case(b"sha-256");
        if !is256 && !key.eq_ignore_ascii_case(b"sha-512") {
            return; // other algorithms are allowed and ignored
        }
        supported += 1;
        let Member::Item(BareItem::ByteSeq(text), _) = member else {
            result = result.and(Err(Code::MalformedDigest));
            return;
        };
        let mut got = [0u8; 66];
        let outcome = match decode_b64(text, &mut got) {
            Some(32) if is256 => body.sha256()[..] == got[..32],
            Some(64) if !is256 => body.sha512()[..] == got[..64],
            _ => {
                result = result.and(Err(Code::MalformedDigest));
                return;
            }
        };
        if !outcome {
            result = result.and(Err(Code::DigestMismatch));
        }
    })
    .map_err(|_| Code::MalformedDigest)?;
    result?;
    if supported == 0 {
        return Err(Code::UnsupportedDigest);
    }
    Ok(())
}

/// Verifies one delivery completely: every check of the UP42 scheme, the body digest and freshness of
/// `created`/`expires` against `now` (unix seconds). Does not allocate.
pub fn verify(key: &Key, headers: &Headers, body: &[u8], now: i64, opts: &Options) -> Result<Verified, Code> {
    opts.check()?;
    if body.len() > opts.max_body {
        return Err(Code::BodyTooLarge);
    }

    let mut input_buf = [0u8; FIELD_MAX];
    let input = headers
        .field(b"signature-input", &mut input_buf)?
        .ok_or(Code::MissingSignatureInput)?;
    let member = sf::dict_get(input, opts.label, Mode::default())
        .map_err(|_| Code::MalformedSignatureInput)?
        .ok_or(Code::UnknownLabel)?;
    let Member::InnerList(components, params) = member else {
        return Err(Code::MalformedSignatureInput);
    };

    let mut sig_buf = [0u8; FIELD_MAX];
    let sig_field = headers.field(b"signature", &mut sig_buf)?.ok_or(Code::MissingSignature)?;
    let sig_mode = Mode { plain_base64: true, ..Mode::default() };
    let sig_member = sf::dict_get(sig_field, opts.label, sig_mode)
        .map_err(|_| Code::MalformedSignature)?
        .ok_or(Code::SignatureLabelMissing)?;
    let Member::Item(BareItem::ByteSeq(sig_text), _) = sig_member else {
        return Err(Code::MalformedSignature);
    };
    let mut sig = [0u8; 36];
    if decode_b64(sig_text, &mut sig) != Some(32) {
        return Err(Code::MalformedSignature);
    }
    let sig: [u8; 32] = sig[..32].try_into().map_err(|_| Code::MalformedSignature)?;

    // Signature parameters.
    let int_param = |name: &[u8]| match params.get(name) {
        None => Ok(None),
        Some(BareItem::Integer(n)) => Ok(Some(n)),
        Some(_) => Err(Code::MalformedSignatureInput),
    };
    let created = int_param(b"created")?.ok_or(Code::MissingCreated)?;
    let expires = int_param(b"expires")?;
    if let Some(alg) = params.get(b"alg") {
        if !alg.text_eq(b"hmac-sha256") {
            return Err(Code::UnsupportedAlg);
        }
    }

    // Covered components: plain lower-case field names, each once, content-digest among them.
    let mut count = 0usize;
    let mut covers_digest = false;
    for (i, (item, item_params)) in components.iter().enumerate() {
        let BareItem::String(name) = item else {
            return Err(Code::MalformedSignatureInput);
        };
        count += 1;
        if count > MAX_COMPONENTS {
            return Err(Code::MalformedSignatureInput);
        }
        if name.0.first() == Some(&b'@') || !item_params.is_empty() {
            return Err(Code::UnsupportedComponent);
        }
        // A field name is a token; lower case, as RFC 9421 requires of component names.
        if name.0.is_empty() || !name.0.iter().all(|&b| crate::headers::is_tchar(b) && !b.is_ascii_uppercase()) {
            return Err(Code::MalformedSignatureInput);
        }
        if components.iter().take(i).any(|(earlier, _)| earlier == item) {
            return Err(Code::DuplicateComponent);
        }
        covers_digest |= name.0 == b"content-digest";
    }
    if !covers_digest {
        return Err(Code::DigestNotCovered);
    }

    // The body must match its digest: without this a captured header set authenticates any body.
    let mut digests = BodyDigests { body, sha256: None, sha512: None };
    let mut digest_buf = [0u8; FIELD_MAX];
    let digest_field = headers.field(b"content-digest", &mut digest_buf)?.ok_or(Code::DigestMissing)?;
    check_content_digest(digest_field, &mut digests)?;

    // The signed string: the covered fields' values, concatenated in order.
    let mut msg = [0u8; 2 * FIELD_MAX];
    let mut msg_len = 0usize;
    let mut field_buf = [0u8; FIELD_MAX];
    for (item, _) in components.iter() {
        let BareItem::String(name) = item else {
            return Err(Code::MalformedSignatureInput);
        };
        let value = headers.field(name.0, &mut field_buf)?.ok_or(Code::MissingComponent)?;
        let end = msg_len + value.len();
        if end > msg.len() {
            return Err(Code::HeaderTooLarge);
        }
        msg[msg_len..end].copy_from_slice(value);
        msg_len = end;
    }
    let key_index = key.matching_secret(&msg[..msg_len], &sig).ok_or(Code::SignatureMismatch)?;

    // Freshness last, so that stale/future/expired are only said of authentic deliveries.
    opts.fresh(created, now)?;
    if let Some(expires) = expires {
        if now > expires.saturating_add(opts.max_future) {
            return Err(Code::Expired);
        }
    }
    Ok(Verified { created, expires, key_index, body_sha256: digests.sha256() })
}
