//! The envelope of a stored event: what the receiver verified, as JSON members without braces,
//! `"sender":"github","scheme":"github","key_index":0,"delivery_id":"72d3","delivery_id_from":
//! "X-GitHub-Delivery"`. The store keeps it beside the event (its record, the journal, Redis) and
//! the dump's `?meta=true` lines put it between their own members: escaped here, once, so that it
//! holds no tab or line break and readers copy it as it is.

use crate::buf::Out;
use crate::code::Code;
use crate::delivery::IdSource;

/// The most bytes an envelope takes: a name and a scheme of at most 64 bytes and an id of at most
/// 256 bytes, each byte escaped to at most six.
pub const MAX_LEN: usize = 128 + 6 * (64 + 64 + 256);

impl Out<'_> {
    /// `s` as a JSON string: quotes, backslashes and control characters escaped, and each byte
    /// sequence that is not UTF-8 (a header may carry one) as U+FFFD, so the line stays JSON.
    fn string(&mut self, s: &[u8]) -> Result<(), Code> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.put(b"\"")?;
        for chunk in s.utf8_chunks() {
            let valid = chunk.valid().as_bytes();
            let mut from = 0;
            for (i, &b) in valid.iter().enumerate() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    self.put(&valid[from..i])?;
                    if b < 0x20 {
                        self.put(&[
                            b'\\',
                            b'u',
                            b'0',
                            b'0',
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 15)],
                        ])?;
                    } else {
                        self.put(&[b'\\', b])?;
                    }
                    from = i + 1;
                }
            }
            self.put(&valid[from..])?;
            if !chunk.invalid().is_empty() {
                self.put(b"\\ufffd")?;
            }
        }
        self.put(b"\"")
    }
}

/// Writes the envelope of a delivery verified for `sender` by `scheme` with its key `key_index`,
/// its own id `id` read from `from`, into `out`; returns its length, `InvalidArgument` when `out`
/// is too small ([`MAX_LEN`] is always enough for names of at most 64 bytes).
pub fn write(
    sender: &[u8],
    scheme: &[u8],
    key_index: u32,
    id: &[u8],
    from: IdSource,
    out: &mut [u8],
) -> Result<usize, Code> {
    let mut o = Out::new(out);
    o.put(b"\"sender\":")?;
    o.string(sender)?;
    o.put(b",\"scheme\":")?;
    o.string(scheme)?;
    o.put(b",\"key_index\":")?;
    let mut digits = [0u8; 24];
    o.put(crate::buf::format_i64(i64::from(key_index), &mut digits))?;
    o.put(b",\"delivery_id\":")?;
    o.string(id)?;
    o.put(b",\"delivery_id_from\":")?;
    o.string(from.name().as_bytes())?;
    Ok(o.n)
}

/// What stands for the envelope of an event stored before there were envelopes: its sender's name
/// alone, `"sender":<name>`. Returns its length (at most 11 + 6 bytes a byte of `sender`).
pub fn sender_only(sender: &[u8], out: &mut [u8]) -> Result<usize, Code> {
    let mut o = Out::new(out);
    o.put(b"\"sender\":")?;
    o.string(sender)?;
    Ok(o.n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &[u8]) -> String {
        let mut out = [0u8; MAX_LEN];
        let n = write(
            b"github",
            b"github",
            2,
            id,
            IdSource::GithubDelivery,
            &mut out,
        )
        .unwrap();
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn members_a_json_reader_takes_back_as_they_were() {
        assert_eq!(
            envelope(b"72d3"),
            r#""sender":"github","scheme":"github","key_index":2,"delivery_id":"72d3","delivery_id_from":"X-GitHub-Delivery""#
        );
        // Quotes, backslashes, control characters; UTF-8 kept, other bytes replaced.
        let e = envelope(b"a\"b\\c\td\ne\x01\xc3\xa9\xff!");
        assert!(
            e.contains(r#""delivery_id":"a\"b\\c\u0009d\u000ae\u0001é\ufffd!""#),
            "{e}"
        );
        assert!(!e.contains(['\t', '\n']));
    }

    #[test]
    fn the_longest_fits_and_a_short_buffer_is_an_error() {
        let name = [b'"'; 64];
        let id = [0x01u8; 256];
        let mut out = [0u8; MAX_LEN];
        let n = write(&name, &name, u32::MAX, &id, IdSource::BodySha256, &mut out).unwrap();
        assert!(n <= MAX_LEN);
        assert_eq!(
            write(
                &name,
                &name,
                u32::MAX,
                &id,
                IdSource::BodySha256,
                &mut out[..n - 1]
            ),
            Err(Code::InvalidArgument)
        );
    }
}
