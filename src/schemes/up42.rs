//! Verifying a UP42 delivery: Signature-Input, Signature, Content-Digest, HMAC-SHA256, freshness.

use hmac::Mac;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::code::Code;
use crate::digest::{check_content_digest, BodyDigests};
use crate::encoding::decode_b64;
use crate::headers::{Headers, JoinBuf};
use crate::keyring::{KeyRing, Material};
use crate::limits::Limits;
use crate::sf::{self, BareItem, Member, Mode};

use crate::mac::HmacSha256;

/// What the store reads of a UP42 delivery: `messageId`, `event`, `body.status`, `liveMode`, and
/// its signed body `timestamp`.
pub const READING: super::Reading = super::Reading {
    id: Some((
        b"m:",
        super::Place::Member(crate::json::Name::MessageId),
        super::IdSource::MessageId,
    )),
    event: Some(super::Place::Member(crate::json::Name::Event)),
    status: Some(super::Place::Member(crate::json::Name::BodyStatus)),
    live: Some(crate::json::Name::LiveMode),
    signed_timestamp: true,
};

/// The label UP42 gives its signature.
pub(crate) const DEFAULT_LABEL: &[u8] = b"up42-sig";
/// At most this many secrets at once (rotation needs two or three).
pub(crate) const MAX_SECRETS: usize = 16;
/// At most this many covered components.
pub(crate) const MAX_COMPONENTS: usize = 16;
/// Longest label accepted in options.
pub(crate) const MAX_LABEL: usize = 64;

/// UP42's secrets as a key ring: the secrets in order, each an HMAC-SHA256 key with the id
/// `secret-1`, `secret-2`, ... The first one signs. UP42 is verified through the ring like every
/// other sender; this type only keeps the old constructor and the signing tag.
#[derive(Clone)]
pub struct Key {
    ring: KeyRing,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({} secrets)", self.ring.len()) // never the secrets
    }
}

impl Key {
    /// A key from 1 to [`MAX_SECRETS`] non-empty secrets; the first one signs.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Key, Code> {
        if secrets.is_empty() || secrets.len() > MAX_SECRETS {
            return Err(Code::InvalidArgument);
        }
        let mut ring = KeyRing::new();
        for (i, s) in secrets.iter().enumerate() {
            ring.add_hmac(format!("secret-{}", i + 1).as_bytes(), s.as_ref())?;
        }
        Ok(Key { ring })
    }

    /// HMAC-SHA256 of `msg` with the secret at `index`.
    pub fn tag(&self, index: usize, msg: &[u8]) -> [u8; 32] {
        let Some((_, Material::Hmac(mac))) = self.ring.iter().nth(index) else {
            panic!("no secret {index}");
        };
        let mut mac = mac.clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
}

impl core::ops::Deref for Key {
    type Target = KeyRing;

    fn deref(&self) -> &KeyRing {
        &self.ring
    }
}

/// Compares `tag` with the HMAC under every HMAC key of `ring`, all of them, without an early
/// exit; `feed` writes the signed message into each HMAC. Returns the index of the (first)
/// matching key.
fn matching_key(
    ring: &KeyRing,
    tag: &[u8; 32],
    feed: impl Fn(&mut HmacSha256) -> Result<(), Code>,
) -> Result<Option<usize>, Code> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, m) in ring.iter() {
        let Material::Hmac(mac) = m else { continue };
        let mut mac = mac.clone();
        feed(&mut mac)?;
        let hit = words(&mac.finalize().into_bytes().into()).ct_eq(&words(tag));
        index.conditional_assign(&(i as u32), hit & !found);
        found |= hit;
    }
    Ok(bool::from(found).then_some(index as usize))
}

/// A tag as four words: comparing words costs a quarter of the constant-time barriers of bytes.
fn words(tag: &[u8; 32]) -> [u64; 4] {
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&tag[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    })
}

/// What a verification accepts. `Options::default()` is UP42's scheme with the defaults above.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub label: &'a [u8],
    pub limits: Limits,
    /// Refuse a delivery whose `created` or `expires` is outside the window (the default).
    /// UP42's HMAC does not cover them: a receiver that takes late retries on the strength of the
    /// signed body `timestamp` turns this off and reads [`Verified::unsigned_times`] instead.
    pub refuse_unsigned_times: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            label: DEFAULT_LABEL,
            limits: Limits::default(),
            refuse_unsigned_times: true,
        }
    }
}

impl Options<'_> {
    pub fn check(&self) -> Result<(), Code> {
        if self.label.is_empty() || self.label.len() > MAX_LABEL || !sf::valid_key(self.label) {
            return Err(Code::InvalidArgument);
        }
        self.limits.validate()
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
    /// With `refuse_unsigned_times` off: what `created`/`expires` would have been refused for
    /// (`Stale`, `Future`, `Expired`), or `None` when they are within the window.
    pub unsigned_times: Option<Code>,
}

/// Verifies one delivery completely with the HMAC keys of `ring`: every check of the UP42 scheme, the body digest and freshness of
/// `created`/`expires` against `now` (unix seconds). Does not allocate.
pub fn verify(
    ring: &KeyRing,
    headers: &Headers,
    body: &[u8],
    now: i64,
    opts: &Options,
) -> Result<Verified, Code> {
    opts.check()?;
    if body.len() > opts.limits.max_body {
        return Err(Code::BodyTooLarge);
    }

    // The three signature fields, found in one scan of the headers.
    let mut bufs: [JoinBuf; 3] = Default::default();
    let [input, sig_field, digest_field] = headers.fields(
        [b"signature-input", b"signature", b"content-digest"],
        &mut bufs,
    )?;
    let input = input.ok_or(Code::MissingSignatureInput)?;
    let member = sf::dict_get(input, opts.label, Mode::default())
        .map_err(|_| Code::MalformedSignatureInput)?
        .ok_or(Code::UnknownLabel)?;
    let Member::InnerList(components, params) = member else {
        return Err(Code::MalformedSignatureInput);
    };

    let sig_field = sig_field.ok_or(Code::MissingSignature)?;
    let sig_mode = Mode {
        plain_base64: true,
        ..Mode::default()
    };
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

    // Signature parameters, in one pass (the last of a repeated parameter counts, as RFC 8941 says).
    let (mut created, mut expires, mut alg) = (None, None, None);
    for (name, value) in params.iter() {
        match name {
            b"created" => created = Some(value),
            b"expires" => expires = Some(value),
            b"alg" => alg = Some(value),
            _ => {} // keyid, nonce, tag: not part of the UP42 check
        }
    }
    let integer = |item: Option<BareItem>| match item {
        None => Ok(None),
        Some(BareItem::Integer(n)) => Ok(Some(n)),
        Some(_) => Err(Code::MalformedSignatureInput),
    };
    let created = integer(created)?.ok_or(Code::MissingCreated)?;
    let expires = integer(expires)?;
    if alg.is_some_and(|alg| !alg.text_eq(b"hmac-sha256")) {
        return Err(Code::UnsupportedAlg);
    }

    // Covered components: plain lower-case field names, each once, content-digest among them.
    // Collected once, so that nothing re-parses the inner list.
    let mut names: [&[u8]; MAX_COMPONENTS] = [&[]; MAX_COMPONENTS];
    let mut count = 0usize;
    for (item, item_params) in components.iter() {
        let BareItem::String(name) = item else {
            return Err(Code::MalformedSignatureInput);
        };
        let name = name.0;
        if name.first() == Some(&b'@') || !item_params.is_empty() {
            return Err(Code::UnsupportedComponent);
        }
        // A field name is a token (so it has no escapes); lower case, as RFC 9421 requires.
        if name.is_empty()
            || !name
                .iter()
                .all(|&b| crate::headers::is_tchar(b) && !b.is_ascii_uppercase())
        {
            return Err(Code::MalformedSignatureInput);
        }
        if names[..count].contains(&name) {
            return Err(Code::DuplicateComponent);
        }
        *names.get_mut(count).ok_or(Code::MalformedSignatureInput)? = name;
        count += 1;
    }
    let names = &names[..count];
    if !names.contains(&&b"content-digest"[..]) {
        return Err(Code::DigestNotCovered);
    }

    // The body must match its digest: without this a captured header set authenticates any body.
    let mut digests = BodyDigests {
        body,
        sha256: None,
        sha512: None,
    };
    let digest_field = digest_field.ok_or(Code::DigestMissing)?;
    check_content_digest(digest_field, &mut digests)?;

    // The signed string: the covered fields' values, concatenated in order, fed straight into the HMAC.
    let signed_string = |mac: &mut HmacSha256| {
        let mut field_buf = JoinBuf::default();
        for &name in names {
            let value = if name == b"content-digest" {
                digest_field
            } else {
                headers
                    .field(name, &mut field_buf)?
                    .ok_or(Code::MissingComponent)?
            };
            mac.update(value);
        }
        Ok(())
    };
    let key_index = matching_key(ring, &sig, signed_string)?.ok_or(Code::SignatureMismatch)?;

    // Freshness last, so that stale/future/expired are only said of authentic deliveries.
    let times = opts.limits.window(Some(created), expires, now);
    if opts.refuse_unsigned_times {
        times?;
    }
    Ok(Verified {
        unsigned_times: times.err(),
        created,
        expires,
        key_index,
        body_sha256: digests.sha256(),
    })
}

/// Parses an RFC 3339 timestamp and checks it lies within the window of `opts` around `now`; returns
/// it in unix seconds. Use it on the body's signed `timestamp`: UP42's `created` is not covered by the HMAC.
pub fn check_timestamp(ts: &[u8], now: i64, opts: &Options) -> Result<i64, Code> {
    opts.check()?;
    opts.limits.timestamp(ts, now)
}
