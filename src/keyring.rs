//! Keys for RFC 9421 signatures, found by `keyid`: HMAC-SHA256 secrets and Ed25519 public keys.

use ed25519_dalek::VerifyingKey;
use hmac::KeyInit;
use sha2::{Digest, Sha512};

use crate::code::Code;

use crate::mac::HmacSha256;

/// At most this many keys in one ring.
pub(crate) const MAX_KEYS: usize = 64;
/// Longest key id a ring (and so a verifier) accepts.
pub(crate) const MAX_KEYID: usize = 256;

/// A signature algorithm of the RFC 9421 registry that this verifier supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Alg {
    HmacSha256 = 1,
    Ed25519 = 2,
}

impl Alg {
    /// The name in RFC 9421's algorithm registry (the `alg` parameter).
    pub fn name(self) -> &'static [u8] {
        match self {
            Alg::HmacSha256 => b"hmac-sha256",
            Alg::Ed25519 => b"ed25519",
        }
    }
}

#[derive(Clone)]
pub(crate) enum Material {
    Hmac(HmacSha256),
    Ed25519(VerifyingKey),
}

#[derive(Clone)]
struct Entry {
    keyid: Vec<u8>,
    material: Material,
}

/// Keys by id. Built once, then only read: share it between threads freely.
#[derive(Clone, Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl core::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Key ids only: never secret material.
        let ids: Vec<_> = self
            .entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.keyid))
            .collect();
        write!(f, "KeyRing{ids:?}")
    }
}

impl KeyRing {
    pub fn new() -> Self {
        KeyRing::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn keyid(&self, index: usize) -> Option<&[u8]> {
        self.entries.get(index).map(|e| &e.keyid[..])
    }

    fn add(&mut self, keyid: &[u8], material: Material) -> Result<usize, Code> {
        // A key id is sent as an sf-string: printable ASCII.
        let printable = keyid.iter().all(|&b| (0x20..0x7f).contains(&b));
        if keyid.is_empty() || keyid.len() > MAX_KEYID || !printable {
            return Err(Code::InvalidArgument);
        }
        if self.entries.len() >= MAX_KEYS || self.entries.iter().any(|e| e.keyid == keyid) {
            return Err(Code::InvalidArgument);
        }
        self.entries.push(Entry {
            keyid: keyid.to_vec(),
            material,
        });
        Ok(self.entries.len() - 1)
    }

    /// An HMAC-SHA256 key: the secret bytes as they are (RFC 9421's test key is the 64 bytes its
    /// base64 text decodes to, not that text).
    pub fn add_hmac(&mut self, keyid: &[u8], secret: &[u8]) -> Result<usize, Code> {
        if secret.is_empty() {
            return Err(Code::InvalidArgument);
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| Code::InvalidArgument)?;
        self.add(keyid, Material::Hmac(mac))
    }

    /// An Ed25519 public key, 32 bytes.
    pub fn add_ed25519(&mut self, keyid: &[u8], public: &[u8]) -> Result<usize, Code> {
        let bytes: &[u8; 32] = public.try_into().map_err(|_| Code::InvalidArgument)?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Code::InvalidArgument)?;
        if key.is_weak() {
            return Err(Code::InvalidArgument);
        }
        self.add(keyid, Material::Ed25519(key))
    }

    /// An Ed25519 public key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo). Without a key id, the
    /// id is `sha512:` and the hex SHA-512 of the raw key, as UbiOps names its keys.
    pub fn add_ed25519_pem(&mut self, keyid: Option<&[u8]>, pem: &[u8]) -> Result<usize, Code> {
        let public = ed25519_public_from_pem(pem)?;
        match keyid {
            Some(id) => self.add_ed25519(id, &public),
            None => self.add_ed25519(&sha512_keyid(&public), &public),
        }
    }

    /// A Standard Webhooks key as the sender shows it: `whsec_` and the base64 of an HMAC secret,
    /// or `whpk_` and the base64 of an Ed25519 public key (for `v1a` signatures).
    pub fn add_standard_webhooks(&mut self, keyid: &[u8], text: &[u8]) -> Result<usize, Code> {
        let text = crate::headers::trim_ows(text);
        let mut raw = [0u8; 96];
        if let Some(b64) = text.strip_prefix(b"whsec_") {
            let n = crate::encoding::decode_b64(b64, &mut raw).ok_or(Code::InvalidArgument)?;
            self.add_hmac(keyid, &raw[..n])
        } else if let Some(b64) = text.strip_prefix(b"whpk_") {
            let n = crate::encoding::decode_b64(b64, &mut raw).ok_or(Code::InvalidArgument)?;
            self.add_ed25519(keyid, &raw[..n])
        } else {
            Err(Code::InvalidArgument)
        }
    }

    /// Every key, with its index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Material)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, &e.material))
    }

    /// The key with this id, and its index.
    pub(crate) fn find(&self, keyid: &[u8]) -> Option<(usize, &Material)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.keyid == keyid)
            .map(|(i, e)| (i, &e.material))
    }

    /// The only key, for a signature without `keyid`.
    pub(crate) fn only(&self) -> Option<(usize, &Material)> {
        match &self.entries[..] {
            [e] => Some((0, &e.material)),
            _ => None,
        }
    }
}

/// `sha512:` and the lower-case hex SHA-512 of a raw public key (UbiOps' key ids).
pub fn sha512_keyid(public: &[u8; 32]) -> [u8; 135] {
    let mut id = [0u8; 135];
    id[..7].copy_from_slice(b"sha512:");
    let hash = Sha512::digest(public);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in hash.iter().enumerate() {
        id[7 + 2 * i] = HEX[usize::from(b >> 4)];
        id[8 + 2 * i] = HEX[usize::from(b & 15)];
    }
    id
}

/// The DER of an Ed25519 SubjectPublicKeyInfo before the 32 key bytes (RFC 8410: the algorithm
/// OID 1.3.101.112, no parameters, a 33-byte BIT STRING).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw 32-byte key of a PEM `PUBLIC KEY` holding an Ed25519 key.
pub fn ed25519_public_from_pem(pem: &[u8]) -> Result<[u8; 32], Code> {
    let text = core::str::from_utf8(pem).map_err(|_| Code::InvalidArgument)?;
    let body = text
        .split_once("-----BEGIN PUBLIC KEY-----")
        .and_then(|(_, rest)| rest.split_once("-----END PUBLIC KEY-----"))
        .map(|(body, _)| body)
        .ok_or(Code::InvalidArgument)?;
    let b64: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut der = [0u8; 48];
    let n = crate::encoding::decode_b64(&b64, &mut der).ok_or(Code::InvalidArgument)?;
    if n != 44 || der[..12] != ED25519_SPKI_PREFIX {
        return Err(Code::InvalidArgument);
    }
    let mut public = [0u8; 32];
    public.copy_from_slice(&der[12..44]);
    Ok(public)
}
