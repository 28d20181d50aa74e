//! Finding request header fields by name, from a raw header block or from name/value pairs.

use crate::ffi::up42wh_header;
use crate::Code as Error;

/// Longest field value (after joining repeated fields) the verifier reads. nginx's own default limit
/// for a header line is 8 KiB; signature fields are a few hundred bytes.
pub const FIELD_MAX: usize = 4096;

/// The request's header fields, as the caller holds them.
#[derive(Debug, Clone, Copy)]
pub enum Headers<'a> {
    /// `(name, value)` pairs in arrival order.
    Pairs(&'a [(&'a [u8], &'a [u8])]),
    /// An HTTP/1 header block: `Name: value` lines ended by LF or CRLF, up to an empty line or the end.
    /// A first line that is not a field (the request line, as nginx's `raw_header()` gives it) is skipped.
    Raw(&'a [u8]),
    /// Fields passed through the C ABI.
    Ffi(FfiHeaders<'a>),
}

/// Header fields from the C ABI whose pointers were checked when this was made.
#[derive(Debug, Clone, Copy)]
pub struct FfiHeaders<'a>(&'a [up42wh_header]);

impl<'a> FfiHeaders<'a> {
    /// # Safety
    /// Every name and value pointer must be valid for its length (NULL only with length 0) for `'a`.
    pub unsafe fn new(list: &'a [up42wh_header]) -> Self {
        FfiHeaders(list)
    }
}

fn ffi_bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: FfiHeaders::new's contract: the pointer is valid for len bytes.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Splits one raw header line into name and value; `None` when it is not a field line.
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    Some((name, &line[colon + 1..]))
}

impl<'a> Headers<'a> {
    /// Calls `f` with every field, in order, values with surrounding whitespace removed.
    pub fn for_each(&self, mut f: impl FnMut(&'a [u8], &'a [u8])) -> Result<(), Error> {
        match *self {
            Headers::Pairs(pairs) => {
                for &(name, value) in pairs {
                    f(name, trim_ows(value));
                }
            }
            Headers::Ffi(FfiHeaders(list)) => {
                for h in list {
                    f(ffi_bytes(h.name, h.name_len), trim_ows(ffi_bytes(h.value, h.value_len)));
                }
            }
            Headers::Raw(block) => {
                for (n, line) in block.split(|&b| b == b'\n').enumerate() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        break;
                    }
                    match split_line(line) {
                        // A folded continuation line starts with whitespace, so it has no valid name.
                        Some((name, value)) => f(name, trim_ows(value)),
                        None if n == 0 => {} // the request line
                        _ => return Err(Error::MalformedHeaders),
                    }
                }
            }
        }
        Ok(())
    }

    /// The value of field `name` (case-insensitive). Repeated fields are joined with `", "` into
    /// `buf`, as RFC 9421 section 2.1 says; a single one is returned as it is. `None` when absent.
    pub fn field<'s>(&self, name: &[u8], buf: &'s mut [u8; FIELD_MAX]) -> Result<Option<&'s [u8]>, Error>
    where
        'a: 's,
    {
        let mut count = 0usize;
        let mut first: &[u8] = &[];
        let mut len = 0usize;
        let mut too_large = false;
        self.for_each(|n, v| {
            if !n.eq_ignore_ascii_case(name) {
                return;
            }
            count += 1;
            if count == 1 {
                first = v;
                len = v.len();
                return;
            }
            if count == 2 {
                if first.len() > FIELD_MAX {
                    too_large = true;
                    return;
                }
                buf[..first.len()].copy_from_slice(first);
            }
            let end = len + 2 + v.len();
            if end > FIELD_MAX {
                too_large = true;
                return;
            }
            buf[len..len + 2].copy_from_slice(b", ");
            buf[len + 2..end].copy_from_slice(v);
            len = end;
        })?;
        if too_large || len > FIELD_MAX {
            return Err(Error::HeaderTooLarge);
        }
        Ok(match count {
            0 => None,
            1 => Some(first),
            _ => Some(&buf[..len]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_block_skips_request_line_and_joins_repeats() {
        let raw = b"POST /receive-webhooks HTTP/1.1\r\nHost: x\r\nX-A:  one \r\nx-a: two\r\n\r\nX-A: body";
        let h = Headers::Raw(raw);
        let mut buf = [0u8; FIELD_MAX];
        assert_eq!(h.field(b"x-a", &mut buf).unwrap(), Some(&b"one, two"[..]));
        assert_eq!(h.field(b"host", &mut buf).unwrap(), Some(&b"x"[..]));
        assert_eq!(h.field(b"missing", &mut buf).unwrap(), None);
    }

    #[test]
    fn raw_block_rejects_folding_and_junk_lines() {
        let mut buf = [0u8; FIELD_MAX];
        for raw in [&b"Host: x\r\n folded\r\n"[..], b"Host: x\njunk\n", b"A: b\nHo st: x\n"] {
            let got = Headers::Raw(raw).field(b"a", &mut buf);
            assert_eq!(got, Err(Error::MalformedHeaders), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn joined_field_over_the_limit_is_refused() {
        let long = vec![b'a'; FIELD_MAX - 1];
        let pairs = [(&b"x"[..], &long[..]), (&b"X"[..], &b"b"[..])];
        let mut buf = [0u8; FIELD_MAX];
        assert_eq!(Headers::Pairs(&pairs).field(b"x", &mut buf), Err(Error::HeaderTooLarge));
    }
}
