//! The body's digests, computed once each, and the `Content-Digest` check (RFC 9530, and UP42's
//! upper-case `SHA-256=`).

use sha2::{Digest, Sha256, Sha512};

use crate::code::Code;
use crate::encoding::decode_b64;
use crate::sf::{self, BareItem, Member, Mode};

/// Lazily computed body digests: each is computed at most once.
pub(crate) struct BodyDigests<'a> {
    pub(crate) body: &'a [u8],
    pub(crate) sha256: Option<[u8; 32]>,
    pub(crate) sha512: Option<[u8; 64]>,
}

impl BodyDigests<'_> {
    pub(crate) fn sha256(&mut self) -> [u8; 32] {
        *self
            .sha256
            .get_or_insert_with(|| Sha256::digest(self.body).into())
    }
    fn sha512(&mut self) -> [u8; 64] {
        *self
            .sha512
            .get_or_insert_with(|| Sha512::digest(self.body).into())
    }
}

/// Checks every `sha-256` / `sha-512` member of a Content-Digest value against the body.
pub(crate) fn check_content_digest(value: &[u8], body: &mut BodyDigests) -> Result<(), Code> {
    let mode = Mode {
        upper_keys: true,
        ..Mode::default()
    };
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
