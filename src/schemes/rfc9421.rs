//! RFC 9421 HTTP Message Signatures, verifying requests: the signature base of section 2.5 from the
//! covered components (derived components, and header fields with the `sf`, `key` and `bs`
//! parameters), `hmac-sha256` and `ed25519`, keys found by `keyid`, and the checks of sections
//! 2.5 and 3.2. Does not allocate.

use ed25519_dalek::Signature as EdSignature;
use hmac::Mac;
use subtle::ConstantTimeEq;

use crate::buf::Buf;
use crate::code::Code;
use crate::digest::{check_content_digest, BodyDigests};
use crate::encoding::{decode_b64, hex_value};
use crate::headers::{trim_ows, Headers, JoinBuf};
use crate::keyring::{Alg, KeyRing, Material};
use crate::limits::Limits;
use crate::sf::write as sf_write;
use crate::sf::{self, BareItem, Member, Mode, Params};

/// What the store reads of an RFC 9421 request's body: the signature's `nonce` as its id, `event`
/// (or `type`) and `status`.
pub const READING: super::Reading = super::Reading {
    id: Some((b"i:", super::Place::Nonce, super::IdSource::Nonce)),
    event: Some(super::Place::MemberOr(
        crate::json::Name::Event,
        crate::json::Name::Type,
    )),
    status: Some(super::Place::Member(crate::json::Name::Status)),
    live: None,
    signed_timestamp: false,
};

/// Longest signature base.
pub(crate) const BASE_MAX: usize = 8192;
/// Longest `nonce` returned.
pub(crate) const NONCE_MAX: usize = 64;
/// At most this many covered components.
pub(crate) const MAX_COMPONENTS: usize = 32;

pub type Base = Buf<BASE_MAX>;

/// What nginx knows of the request besides its header fields.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method as sent (`POST`).
    pub method: &'a [u8],
    /// `http` or `https`.
    pub scheme: &'a [u8],
    /// The host and port the request was for (its `Host` field).
    pub authority: &'a [u8],
    /// The request target as sent: path and query (`/foo?param=Value&Pet=dog`).
    pub target: &'a [u8],
    pub headers: Headers<'a>,
}

/// What a verification accepts.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The signature to verify; empty for the first one in `Signature-Input`.
    pub label: &'a [u8],
    /// Components the signature must cover, as an RFC 8941 list of component identifiers, e.g.
    /// `"@method", "@authority", "content-digest"`. Empty for none.
    pub required: &'a [u8],
    /// How old `created` may be and how far ahead, in seconds; the largest body.
    pub limits: Limits,
    /// Refuse a signature without `created`.
    pub require_created: bool,
    /// Refuse a signature that does not cover `content-digest` (so that the body is authenticated).
    pub require_digest: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            label: b"",
            required: b"",
            limits: Limits::default(),
            require_created: true,
            require_digest: true,
        }
    }
}

/// What a successful verification learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// `created`, covered by the signature here (unlike UP42's).
    pub created: Option<i64>,
    pub expires: Option<i64>,
    /// The key that verified, by its position in the ring.
    pub key_index: usize,
    pub alg: Alg,
    pub body_sha256: [u8; 32],
    /// The signature's `nonce`, for replay detection (`nonce_len` bytes of it).
    pub nonce: [u8; NONCE_MAX],
    pub nonce_len: usize,
}

/// The signature chosen in `Signature-Input`: its label, covered components and parameters.
struct Chosen<'a> {
    label: &'a [u8],
    components: sf::InnerList<'a>,
    params: Params<'a>,
}

fn choose<'a>(input: &'a [u8], label: &[u8]) -> Result<Chosen<'a>, Code> {
    let mut chosen: Option<(&[u8], Member)> = None;
    sf::for_each_dict_member(input, Mode::default(), |key, m| {
        if (label.is_empty() && chosen.is_none()) || (!label.is_empty() && key == label) {
            chosen = Some((key, m));
        }
    })
    .map_err(|_| Code::MalformedSignatureInput)?;
    let (label, member) = chosen.ok_or(Code::UnknownLabel)?;
    let Member::InnerList(components, params) = member else {
        return Err(Code::MalformedSignatureInput);
    };
    Ok(Chosen {
        label,
        components,
        params,
    })
}

/// The form-urlencoded percent-encode set kept as is: ASCII alphanumerics and `*-._`.
fn form_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_')
}

/// Decodes application/x-www-form-urlencoded text (`+` is a space, `%XX` a byte; a `%` without
/// two hex digits stays) and percent-encodes it again, as RFC 9421 section 2.2.8 asks.
fn reencode<const N: usize>(text: &[u8], out: &mut Buf<N>) -> Result<(), Code> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut i = 0;
    while i < text.len() {
        let mut b = text[i];
        i += 1;
        if b == b'+' {
            b = b' ';
        } else if b == b'%' {
            if let (Some(h), Some(l)) = (
                text.get(i).copied().and_then(hex_value),
                text.get(i + 1).copied().and_then(hex_value),
            ) {
                b = h << 4 | l;
                i += 2;
            }
        }
        if form_safe(b) {
            out.byte(b)?;
        } else {
            out.push(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])?;
        }
    }
    Ok(())
}

/// The value of `@query-param;name=...`: the one parameter whose re-encoded name is `name`
/// (already in the encoded form, as the identifier carries it). A name that occurs twice cannot
/// be signed this way (section 2.2.8), nor one that is absent.
fn query_param<const N: usize>(query: &[u8], name: &[u8], out: &mut Buf<N>) -> Result<(), Code> {
    let mut found: Option<&[u8]> = None;
    let mut count = 0;
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (n, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let mut encoded = Buf::<512>::default();
        reencode(n, &mut encoded)?;
        if encoded.as_slice() == name {
            count += 1;
            found = Some(v);
        }
    }
    match (found, count) {
        (Some(v), 1) => reencode(v, out),
        (Some(_), _) => Err(Code::UnsupportedComponent),
        (None, _) => Err(Code::MissingComponent),
    }
}

/// `host[:port]`, lower-cased, without the scheme's default port.
fn authority<const N: usize>(
    scheme: &[u8],
    authority: &[u8],
    out: &mut Buf<N>,
) -> Result<(), Code> {
    let default_port: &[u8] = if scheme.eq_ignore_ascii_case(b"https") {
        b":443"
    } else {
        b":80"
    };
    let a = authority.strip_suffix(default_port).unwrap_or(authority);
    for &b in a {
        out.byte(b.to_ascii_lowercase())?;
    }
    Ok(())
}

fn lower<const N: usize>(s: &[u8], out: &mut Buf<N>) -> Result<(), Code> {
    for &b in s {
        out.byte(b.to_ascii_lowercase())?;
    }
    Ok(())
}

/// A derived component's value (section 2.2).
fn derived(req: &Request, name: &[u8], params: &Params, out: &mut Base) -> Result<(), Code> {
    let (path, query) = match req.target.iter().position(|&b| b == b'?') {
        Some(q) => (&req.target[..q], Some(&req.target[q + 1..])),
        None => (req.target, None),
    };
    let mut query_name = None;
    for (key, value) in params.iter() {
        match (name, key, value) {
            (b"@query-param", b"name", BareItem::String(s)) if query_name.is_none() => {
                query_name = Some(s)
            }
            // `req` (a request's component in a response's signature) and anything else.
            _ => return Err(Code::UnsupportedComponent),
        }
    }
    match name {
        b"@method" => out.push(req.method),
        b"@target-uri" => {
            lower(req.scheme, out)?;
            out.push(b"://")?;
            authority(req.scheme, req.authority, out)?;
            out.push(req.target)
        }
        b"@authority" => authority(req.scheme, req.authority, out),
        b"@scheme" => lower(req.scheme, out),
        b"@request-target" => out.push(req.target),
        b"@path" => out.push(if path.is_empty() { b"/" } else { path }),
        b"@query" => {
            out.byte(b'?')?;
            out.push(query.unwrap_or_default())
        }
        b"@query-param" => {
            let wanted = query_name.ok_or(Code::MalformedSignatureInput)?;
            let mut name = Buf::<512>::default();
            for b in wanted.bytes() {
                name.byte(b)?;
            }
            query_param(query.unwrap_or_default(), name.as_slice(), out)
        }
        // Covering the signature's own parameters is the @signature-params line's job.
        b"@signature-params" => Err(Code::MalformedSignatureInput),
        // @status is for responses; anything else is unknown.
        _ => Err(Code::UnsupportedComponent),
    }
}

/// A header field's value (section 2.1), with its parameters.
fn field(req: &Request, name: &[u8], params: &Params, out: &mut Base) -> Result<(), Code> {
    let (mut sf_param, mut key, mut bs) = (false, None, false);
    for (k, v) in params.iter() {
        match (k, v) {
            (b"sf", BareItem::Boolean(true)) if !sf_param => sf_param = true,
            (b"key", BareItem::String(s)) if key.is_none() => key = Some(s),
            (b"bs", BareItem::Boolean(true)) if !bs => bs = true,
            // `req` and `tr` (trailers) do not apply to a request's own fields; others are unknown.
            _ => return Err(Code::UnsupportedComponent),
        }
    }
    if bs && (sf_param || key.is_some()) {
        return Err(Code::MalformedSignatureInput);
    }
    if bs {
        // Each field line on its own, as a byte sequence (section 2.1.3).
        let mut lines = 0;
        let mut result = Ok(());
        req.headers.for_each(|n, v| {
            if result.is_ok() && crate::headers::name_eq(n, name) {
                if lines > 0 {
                    result = out.push(b", ");
                }
                lines += 1;
                result = result.and_then(|()| base64_item(trim_ows(v), out));
            }
        })?;
        result?;
        return if lines == 0 {
            Err(Code::MissingComponent)
        } else {
            Ok(())
        };
    }
    let mut join = JoinBuf::default();
    let value = req
        .headers
        .field(name, &mut join)?
        .ok_or(Code::MissingComponent)?;
    if let Some(member_key) = key {
        // One dictionary member, serialized (section 2.1.2).
        let mut k = Buf::<64>::default();
        for b in member_key.bytes() {
            k.byte(b)?;
        }
        let member = sf::dict_get(value, k.as_slice(), Mode::default())
            .map_err(|_| Code::UnsupportedComponent)?
            .ok_or(Code::MissingComponent)?;
        return sf_write::member(&member, out);
    }
    if sf_param {
        let kind = sf_write::field_type(name).ok_or(Code::UnsupportedComponent)?;
        return sf_write::field(value, kind, out);
    }
    printable(value)?;
    out.push(value)
}

fn base64_item<const N: usize>(data: &[u8], out: &mut Buf<N>) -> Result<(), Code> {
    use base64::Engine;
    out.byte(b':')?;
    // In pieces of a multiple of 3 bytes, so that only the last one is padded.
    let mut text = [0u8; 1024];
    for part in data.chunks(768) {
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(part, &mut text)
            .map_err(|_| Code::HeaderTooLarge)?;
        out.push(&text[..n])?;
    }
    out.byte(b':')
}

/// A value in the base must be visible ASCII, space or tab: anything else (obs-text, a line break)
/// needs the `bs` parameter.
fn printable(value: &[u8]) -> Result<(), Code> {
    if value
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        Ok(())
    } else {
        Err(Code::NonAsciiBase)
    }
}

/// The covered components' identifiers, as spans of the base: for the duplicate and required checks.
struct Covered {
    spans: [(usize, usize); MAX_COMPONENTS],
    count: usize,
}

impl Covered {
    fn contains(&self, base: &Base, ident: &[u8]) -> bool {
        self.spans[..self.count]
            .iter()
            .any(|&(s, e)| base.range(s, e) == ident)
    }
}

/// The signature's own parameters (section 2.3), as read while serializing them.
#[derive(Default)]
struct SigParams<'a> {
    created: Option<i64>,
    expires: Option<i64>,
    keyid: Option<sf::SfStr<'a>>,
    alg: Option<sf::SfStr<'a>>,
    nonce: Option<sf::SfStr<'a>>,
}

/// Serializes the signature's parameters into `out` and reads the known ones, each of which must
/// have its type. Unknown parameters are signed with the rest and otherwise ignored.
fn sig_params<'a, const N: usize>(
    params: &Params<'a>,
    out: &mut Buf<N>,
) -> Result<SigParams<'a>, Code> {
    let mut p = SigParams::default();
    for (name, value) in params.iter() {
        sf_write::param(name, &value, out)?;
        match (name, value) {
            (b"created", BareItem::Integer(n)) => p.created = Some(n),
            (b"expires", BareItem::Integer(n)) => p.expires = Some(n),
            (b"keyid", BareItem::String(s)) => p.keyid = Some(s),
            (b"alg", BareItem::String(s)) => p.alg = Some(s),
            (b"nonce", BareItem::String(s)) => p.nonce = Some(s),
            (b"tag", BareItem::String(_)) => {}
            (b"created" | b"expires" | b"keyid" | b"alg" | b"nonce" | b"tag", _) => {
                return Err(Code::MalformedSignatureInput)
            }
            _ => {}
        }
    }
    Ok(p)
}

/// Builds the signature base of section 2.5 for the chosen signature into `base`; returns the
/// covered identifiers' spans and the signature's parameters.
fn build<'a>(
    req: &Request,
    chosen: &Chosen<'a>,
    base: &mut Base,
) -> Result<(Covered, SigParams<'a>), Code> {
    // The @signature-params value is serialized once, in `line`, and each component's identifier
    // is a piece of it: the inner list is parsed once more here, not once per use.
    let mut tail = Buf::<{ crate::headers::FIELD_MAX }>::default();
    let sig = sig_params(&chosen.params, &mut tail)?;
    let mut line = Base::default();
    line.push(b"\"@signature-params\": (")?;
    let mut covered = Covered {
        spans: [(0, 0); MAX_COMPONENTS],
        count: 0,
    };
    for (item, params) in chosen.components.iter() {
        let BareItem::String(name) = item else {
            return Err(Code::MalformedSignatureInput);
        };
        let name = name.0; // as sent, escapes in place
        if name.is_empty() || name.iter().any(|b| b.is_ascii_uppercase() || *b == b'\\') {
            // Component names are lower case (field names are lower-cased, derived ones are).
            return Err(Code::MalformedSignatureInput);
        }
        if covered.count > 0 {
            line.byte(b' ')?;
        }
        let at = line.len();
        line.byte(b'"')?;
        line.push(name)?;
        line.byte(b'"')?;
        sf_write::params(&params, &mut line)?;
        let ident = line.range(at, line.len());
        if covered.contains(base, ident) {
            return Err(Code::DuplicateComponent);
        }
        let start = base.len();
        base.push(ident)?;
        *covered
            .spans
            .get_mut(covered.count)
            .ok_or(Code::MalformedSignatureInput)? = (start, base.len());
        covered.count += 1;
        base.push(b": ")?;
        if name[0] == b'@' {
            derived(req, name, &params, base)?;
        } else {
            field(req, name, &params, base)?;
        }
        base.byte(b'\n')?;
    }
    line.byte(b')')?;
    line.push(tail.as_slice())?;
    base.push(line.as_slice())?;
    Ok((covered, sig))
}

/// The signature base of the signature labelled `label` (or the first) in `Signature-Input`.
pub fn signature_base<'b>(
    req: &Request,
    label: &[u8],
    base: &'b mut Base,
) -> Result<&'b [u8], Code> {
    let mut join = JoinBuf::default();
    let input = req
        .headers
        .field(b"signature-input", &mut join)?
        .ok_or(Code::MissingSignatureInput)?;
    let chosen = choose(input, label)?;
    build(req, &chosen, base)?;
    Ok(base.as_slice())
}

/// Verifies one request signed as RFC 9421 says, with a key of `ring`: the signature base, the
/// signature, the body against `Content-Digest` when covered, and freshness against `now`.
pub fn verify(
    ring: &KeyRing,
    req: &Request,
    body: &[u8],
    now: i64,
    opts: &Options,
) -> Result<Verified, Code> {
    // The base reads several fields, each a scan of the headers.
    req.headers
        .with_index(|headers| Request { headers, ..*req }.verify_indexed(ring, body, now, opts))
}

impl Request<'_> {
    fn verify_indexed(
        &self,
        ring: &KeyRing,
        body: &[u8],
        now: i64,
        opts: &Options,
    ) -> Result<Verified, Code> {
        if opts.label.len() > crate::schemes::up42::MAX_LABEL
            || (!opts.label.is_empty() && !sf::valid_key(opts.label))
        {
            return Err(Code::InvalidArgument);
        }
        opts.limits.check(body.len())?;
        let mut bufs: [JoinBuf; 3] = Default::default();
        let [input, sig_field, digest_field] = self.headers.fields(
            [b"signature-input", b"signature", b"content-digest"],
            &mut bufs,
        )?;
        let input = input.ok_or(Code::MissingSignatureInput)?;
        let chosen = choose(input, opts.label)?;
        let sig_field = sig_field.ok_or(Code::MissingSignature)?;
        let sig_member = sf::dict_get(sig_field, chosen.label, Mode::default())
            .map_err(|_| Code::MalformedSignature)?
            .ok_or(Code::SignatureLabelMissing)?;
        let Member::Item(BareItem::ByteSeq(sig_text), _) = sig_member else {
            return Err(Code::MalformedSignature);
        };

        let mut base = Base::default();
        let (covered, sig) = build(self, &chosen, &mut base)?;
        let SigParams {
            created,
            expires,
            keyid,
            alg,
            nonce,
        } = sig;
        if opts.require_created && created.is_none() {
            return Err(Code::MissingCreated);
        }
        let mut result = Ok(());
        sf::for_each_list_member(opts.required, |m| {
            let mut ident = Buf::<256>::default();
            let ok = sf_write::member(&m, &mut ident).is_ok()
                && covered.contains(&base, ident.as_slice());
            if !ok && result.is_ok() {
                result = Err(Code::RequiredComponentNotCovered);
            }
        })
        .map_err(|_| Code::InvalidArgument)?;
        result?;

        let mut digests = BodyDigests {
            body,
            sha256: None,
            sha512: None,
        };
        if covered.contains(&base, b"\"content-digest\"") {
            check_content_digest(digest_field.ok_or(Code::DigestMissing)?, &mut digests)?;
        } else if opts.require_digest {
            return Err(Code::DigestNotCovered);
        }

        // The key, by keyid, or the only one.
        let mut id = Buf::<{ crate::keyring::MAX_KEYID }>::default();
        let (key_index, material) = match keyid {
            Some(s) => {
                for b in s.bytes() {
                    id.byte(b).map_err(|_| Code::UnknownKey)?;
                }
                ring.find(id.as_slice())
            }
            None => ring.only(),
        }
        .ok_or(Code::UnknownKey)?;
        let key_alg = match material {
            Material::Hmac(_) => Alg::HmacSha256,
            Material::Ed25519(_) => Alg::Ed25519,
        };
        if let Some(a) = alg {
            let known = [Alg::HmacSha256, Alg::Ed25519]
                .into_iter()
                .find(|k| a.eq_bytes(k.name()));
            match known {
                None => return Err(Code::UnsupportedAlg),
                Some(k) if k != key_alg => return Err(Code::AlgMismatch),
                Some(_) => {}
            }
        }

        let mut sig = [0u8; 66];
        let sig_len = decode_b64(sig_text, &mut sig).ok_or(Code::MalformedSignature)?;
        let ok = match material {
            Material::Hmac(mac) => {
                if sig_len != 32 {
                    return Err(Code::MalformedSignature);
                }
                let mut mac = mac.clone();
                mac.update(base.as_slice());
                bool::from(mac.finalize().into_bytes().as_slice().ct_eq(&sig[..32]))
            }
            Material::Ed25519(key) => {
                let bytes: [u8; 64] = sig[..64].try_into().map_err(|_| Code::MalformedSignature)?;
                if sig_len != 64 {
                    return Err(Code::MalformedSignature);
                }
                key.verify_strict(base.as_slice(), &EdSignature::from_bytes(&bytes))
                    .is_ok()
            }
        };
        if !ok {
            return Err(Code::SignatureMismatch);
        }

        // Freshness last, so that it is only said of authentic requests.
        opts.limits.window(created, expires, now)?;
        let mut out_nonce = [0u8; NONCE_MAX];
        let mut nonce_len = 0;
        if let Some(n) = nonce {
            for b in n.bytes() {
                *out_nonce
                    .get_mut(nonce_len)
                    .ok_or(Code::MalformedSignatureInput)? = b;
                nonce_len += 1;
            }
        }
        Ok(Verified {
            created,
            expires,
            key_index,
            alg: key_alg,
            body_sha256: digests.sha256(),
            nonce: out_nonce,
            nonce_len,
        })
    }
}
