//! Finding request header fields by name, from a raw header block or from name/value pairs.

use core::mem::MaybeUninit;

use crate::code::Code as Error;

/// Longest field value (after joining repeated fields) the verifier reads. nginx's own default limit
/// for a header line is 8 KiB; signature fields are a few hundred bytes.
pub(crate) const FIELD_MAX: usize = 4096;
/// Most fields [`Headers::with_index`] indexes on the stack.
pub(crate) const INDEXED_FIELDS: usize = 64;

/// The request's header fields, as the caller holds them.
#[derive(Debug, Clone, Copy)]
pub enum Headers<'a> {
    /// `(name, value)` pairs in arrival order.
    Pairs(&'a [(&'a [u8], &'a [u8])]),
    /// An HTTP/1 header block: `Name: value` lines ended by LF or CRLF, up to an empty line or the end.
    /// A first line that is not a field (the request line, as nginx's `raw_header()` gives it) is skipped.
    Raw(&'a [u8]),
    /// Fields held some other way (the C ABI's array of name/value pairs).
    List(&'a dyn FieldList),
}

/// Fields held some other way than pairs or a block: each one, in order, as name and value.
pub trait FieldList: core::fmt::Debug {
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s [u8], &'s [u8]));
}

pub(crate) fn is_tchar(b: u8) -> bool {
    crate::sf::TCHAR[usize::from(b)]
}

/// Lower-cases the ASCII letters among eight bytes at once (other bytes are left as they are).
fn lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = x & (0x7f * ONES);
    let above_z = low7 + (0x7f - u64::from(b'Z')) * ONES; // top bit set where byte > 'Z'
    let from_a = low7 + (0x80 - u64::from(b'A')) * ONES; // top bit set where byte >= 'A'
    let upper = from_a & !above_z & !x & (0x80 * ONES); // ...and the byte is ASCII
    x | (upper >> 2) // 0x80 >> 2 == 0x20, the case bit
}

/// Is `name` equal to `lower`, a lower-case field name, ignoring ASCII case? Eight bytes at a
/// time: the verifier compares every header name it scans.
pub(crate) fn name_eq(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    let (a, a_rest) = name.as_chunks::<8>();
    let (b, b_rest) = lower.as_chunks::<8>();
    a.iter()
        .zip(b)
        .all(|(x, y)| lower8(u64::from_le_bytes(*x)) == u64::from_le_bytes(*y))
        && a_rest
            .iter()
            .zip(b_rest)
            .all(|(x, y)| x.to_ascii_lowercase() == *y)
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The first `needle` in `hay`, eight bytes at a time (a header line is too short for memchr's
/// call to pay off).
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let pattern = u64::from(needle) * ONES;
    let (chunks, rest) = hay.as_chunks::<8>();
    for (i, chunk) in chunks.iter().enumerate() {
        let x = u64::from_le_bytes(*chunk) ^ pattern;
        // A zero byte of x is a match. The lowest set bit of this is the first one: a false hit
        // can only come from a borrow, which runs from a true zero byte upwards.
        let hits = x.wrapping_sub(ONES) & !x & (0x80 * ONES);
        if hits != 0 {
            return Some(i * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let at = chunks.len() * 8;
    rest.iter().position(|&b| b == needle).map(|p| at + p)
}

/// Splits one raw header line into name and value; `None` when it is not a field line.
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = find_byte(b':', line)?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    Some((name, &line[colon + 1..]))
}

impl<'a> Headers<'a> {
    /// Calls `f` with every field, in order. Values may have surrounding whitespace: callers trim
    /// the few they use (with `trim_ows`) rather than every one.
    #[inline(always)]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&'a [u8], &'a [u8])) -> Result<(), Error> {
        match *self {
            Headers::Pairs(pairs) => {
                for &(name, value) in pairs {
                    f(name, value);
                }
            }
            Headers::List(list) => list.each(&mut f),
            Headers::Raw(mut block) => {
                let mut first = true;
                while !block.is_empty() {
                    // Eight bytes per step: this scan is much of a small verification.
                    let (line, rest) = match find_byte(b'\n', block) {
                        Some(nl) => (&block[..nl], &block[nl + 1..]),
                        None => (block, &b""[..]),
                    };
                    block = rest;
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        break;
                    }
                    match split_line(line) {
                        // A folded continuation line starts with whitespace, so it has no valid name.
                        Some((name, value)) => f(name, value),
                        None if first => {} // the request line
                        _ => return Err(Error::MalformedHeaders),
                    }
                    first = false;
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with these headers, a raw block first split into an array of fields once (on the
    /// stack, up to [`INDEXED_FIELDS`]), so that the several lookups of a verification walk an
    /// array instead of re-parsing lines. A larger block is passed as it is.
    pub(crate) fn with_index<T>(
        &self,
        f: impl FnOnce(Headers) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Headers::Raw(_) = self {
            // Left uninitialised: filling 64 empty pairs costs as much as indexing a small block.
            let mut index = [const { MaybeUninit::<(&[u8], &[u8])>::uninit() }; INDEXED_FIELDS];
            let mut n = 0usize;
            self.for_each(|name, value| {
                if let Some(slot) = index.get_mut(n) {
                    slot.write((name, value));
                }
                n += 1;
            })?;
            if n <= INDEXED_FIELDS {
                // SAFETY: the first n slots were written above, and MaybeUninit<T> has T's layout.
                let pairs = unsafe { core::slice::from_raw_parts(index.as_ptr().cast(), n) };
                return f(Headers::Pairs(pairs));
            }
        }
        f(*self)
    }

    /// The values of several fields in one scan: like [`Headers::field`] for each of `names` (which
    /// must be lower case), joining into `bufs` only a field that is repeated.
    pub fn fields<'s, const N: usize>(
        &self,
        names: [&[u8]; N],
        bufs: &'s mut [JoinBuf; N],
    ) -> Result<[Option<&'s [u8]>; N], Error>
    where
        'a: 's,
    {
        let mut first: [&'a [u8]; N] = [&[]; N];
        let mut count = [0usize; N];
        self.for_each(|n, v| {
            for i in 0..N {
                // Lengths first: most names differ in length from all three wanted.
                if name_eq(n, names[i]) {
                    if count[i] == 0 {
                        first[i] = trim_ows(v);
                    }
                    count[i] += 1;
                }
            }
        })?;
        let mut out = [None; N];
        for (i, buf) in bufs.iter_mut().enumerate() {
            out[i] = match count[i] {
                0 => None,
                1 if first[i].len() <= FIELD_MAX => Some(first[i]),
                _ => self.field(names[i], buf)?, // repeated (or too long): the rare path
            };
        }
        Ok(out)
    }

    /// The value of field `name` (lower case; matched case-insensitively). Repeated fields are joined with `", "` into
    /// `buf`, as RFC 9421 section 2.1 says; a single one is returned as it is. `None` when absent.
    pub fn field<'s>(&self, name: &[u8], buf: &'s mut JoinBuf) -> Result<Option<&'s [u8]>, Error>
    where
        'a: 's,
    {
        let mut count = 0usize;
        let mut first: &[u8] = &[];
        let mut too_large = false;
        buf.clear();
        self.for_each(|n, v| {
            if !name_eq(n, name) {
                return;
            }
            let v = trim_ows(v);
            count += 1;
            too_large |= match count {
                1 => {
                    first = v;
                    v.len() > FIELD_MAX
                }
                2 => [first, b", ", v].iter().any(|part| buf.push(part).is_err()),
                _ => [b", ", v].iter().any(|part| buf.push(part).is_err()),
            };
        })?;
        if too_large {
            return Err(Error::HeaderTooLarge);
        }
        Ok(match count {
            0 => None,
            1 => Some(first),
            _ => Some(buf.as_slice()),
        })
    }
}

/// Room to join a repeated field.
pub(crate) type JoinBuf = crate::buf::Buf<FIELD_MAX>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_block_skips_request_line_and_joins_repeats() {
        let raw = b"POST /receive-webhooks HTTP/1.1\r\nHost: x\r\nX-A:  one \r\nx-a: two\r\n\r\nX-A: body";
        let h = Headers::Raw(raw);
        let mut buf = JoinBuf::default();
        assert_eq!(h.field(b"x-a", &mut buf).unwrap(), Some(&b"one, two"[..]));
        assert_eq!(h.field(b"host", &mut buf).unwrap(), Some(&b"x"[..]));
        assert_eq!(h.field(b"missing", &mut buf).unwrap(), None);
    }

    #[test]
    fn raw_block_rejects_folding_and_junk_lines() {
        let mut buf = JoinBuf::default();
        for raw in [
            &b"Host: x\r\n folded\r\n"[..],
            b"Host: x\njunk\n",
            b"A: b\nHo st: x\n",
        ] {
            let got = Headers::Raw(raw).field(b"a", &mut buf);
            assert_eq!(
                got,
                Err(Error::MalformedHeaders),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn name_eq_folds_only_ascii_letters() {
        for b in 0..=255u8 {
            for want in [b'a', b'z', b'-', b'0', b'9', b'@', b'[', b'`', b'{'] {
                let name = [b'x'; 8]
                    .iter()
                    .copied()
                    .chain([b])
                    .chain(*b"abcdefgh")
                    .collect::<Vec<_>>();
                let lower = [b'x'; 8]
                    .iter()
                    .copied()
                    .chain([want])
                    .chain(*b"abcdefgh")
                    .collect::<Vec<_>>();
                let chunked = [b; 8];
                let expect = b.to_ascii_lowercase() == want;
                assert_eq!(name_eq(&name, &lower), expect, "{b:#x} vs {want:#x}");
                assert_eq!(
                    name_eq(&chunked, &[want; 8]),
                    expect,
                    "{b:#x} vs {want:#x} (chunk)"
                );
            }
        }
        assert!(name_eq(b"Signature-Input", b"signature-input"));
        assert!(name_eq(b"CONTENT-DIGEST", b"content-digest"));
        assert!(!name_eq(b"Content-Length", b"content-digest"));
        assert!(!name_eq(b"Signature", b"signature-input"));
    }

    #[test]
    fn find_byte_finds_the_first_match_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                for noise in [0u8, 1, 0x09, 0x0b, 0x80, 0x8a, 0xff] {
                    let mut hay = vec![noise; len];
                    if at < len {
                        hay[at] = b'\n';
                        // A second match later must not win.
                        if at + 1 < len {
                            hay[at + 1] = b'\n';
                        }
                    }
                    let want = hay.iter().position(|&b| b == b'\n');
                    assert_eq!(find_byte(b'\n', &hay), want, "{len} {at} {noise:#x}");
                }
            }
        }
    }

    #[test]
    fn joined_field_over_the_limit_is_refused() {
        let long = vec![b'a'; FIELD_MAX - 1];
        let pairs = [(&b"x"[..], &long[..]), (&b"X"[..], &b"b"[..])];
        let mut buf = JoinBuf::default();
        assert_eq!(
            Headers::Pairs(&pairs).field(b"x", &mut buf),
            Err(Error::HeaderTooLarge)
        );
    }
}
