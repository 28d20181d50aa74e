//! A strict JSON reader (RFC 8259): it checks that a body is exactly one JSON value, well formed,
//! UTF-8 and nothing after it, in one pass without allocating, and picks out the few members the
//! store keeps (`event`, `messageId`, `timestamp`, `liveMode`, `body.status` and their twins of
//! the other senders) as slices of the body. A member it picks out may appear only once.
//!
//! Where RFC 8259 leaves a choice (JSONTestSuite's `i_` files) it refuses: invalid UTF-8, a byte
//! order mark, an escaped lone surrogate, nesting deeper than [`MAX_DEPTH`]. Numbers are checked
//! for their grammar only, never converted, so a huge one is accepted.

use crate::code::Code;

/// The deepest nesting of arrays and objects accepted.
pub(crate) const MAX_DEPTH: usize = 512;

/// The members the reader picks out: the top-level ones, then `status` inside a top-level `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Event = 0,
    Type,
    MessageId,
    Id,
    Timestamp,
    LiveMode,
    Livemode,
    Action,
    Status,
    Body,
    BodyStatus,
}

const NAMES: usize = 11;

/// The top-level member names, by length first: most names match none in length.
const TOP: [(&[u8], Name); 10] = [
    (b"event", Name::Event),
    (b"type", Name::Type),
    (b"messageId", Name::MessageId),
    (b"id", Name::Id),
    (b"timestamp", Name::Timestamp),
    (b"liveMode", Name::LiveMode),
    (b"livemode", Name::Livemode),
    (b"action", Name::Action),
    (b"status", Name::Status),
    (b"body", Name::Body),
];

/// A picked-out member's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Value<'a> {
    /// Not in the body.
    #[default]
    Absent,
    /// A string: its bytes between the quotes, escapes not decoded (`escaped` says whether it has
    /// any; [`unescape`] decodes them).
    Str { raw: &'a [u8], escaped: bool },
    /// A number, `true`, `false` or `null`, as written.
    Scalar(&'a [u8]),
    /// An object or an array.
    Container,
}

/// What the reader found in a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    values: [Value<'a>; NAMES],
    /// The body has tabs or line breaks between its tokens (JSON has them nowhere else).
    pub line_breaks: bool,
}

impl<'a> Fields<'a> {
    pub fn get(&self, name: Name) -> Value<'a> {
        self.values[name as usize]
    }
}

const BAD: Code = Code::NotJsonObject;

/// Checks that `doc` is exactly one JSON value of any kind (the test suites' view).
pub fn validate(doc: &[u8]) -> Result<(), Code> {
    read_value(doc).map(|_| ())
}

/// Checks that `doc` is exactly one JSON object and returns the members the store reads.
/// `NotJsonObject` when it is not; `DuplicateField` when a member it reads appears twice.
pub fn read_object(doc: &[u8]) -> Result<Fields<'_>, Code> {
    let mut breaks = false;
    let start = ws(doc, 0, &mut breaks);
    if doc.get(start) != Some(&b'{') {
        return Err(BAD);
    }
    read_value(doc)
}

/// Where the reader is: the open containers (a bit each: 1 object, 0 array) and which member's
/// value comes next.
struct Stack {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Stack {
    #[inline(always)]
    fn push(&mut self, object: bool) -> Result<(), Code> {
        if self.depth == MAX_DEPTH {
            return Err(BAD);
        }
        let (w, b) = (self.depth / 64, self.depth % 64);
        if object {
            self.bits[w] |= 1 << b;
        } else {
            self.bits[w] &= !(1 << b);
        }
        self.depth += 1;
        Ok(())
    }

    #[inline(always)]
    fn in_object(&self) -> bool {
        let d = self.depth - 1;
        self.bits[d / 64] >> (d % 64) & 1 == 1
    }
}

fn read_value(doc: &[u8]) -> Result<Fields<'_>, Code> {
    let mut f = Fields::default();
    let mut stack = Stack {
        bits: [0; MAX_DEPTH / 64],
        depth: 0,
    };
    // The member whose value comes next, if it is one to pick out; and whether the reader is in
    // the top-level `body` object (depth 2).
    let mut slot: Option<Name> = None;
    let mut in_body = false;
    let mut i = ws(doc, 0, &mut f.line_breaks);
    loop {
        // A value starts at i.
        let c = *doc.get(i).ok_or(BAD)?;
        let start = i;
        let value;
        match c {
            b'{' | b'[' => {
                let object = c == b'{';
                stack.push(object)?;
                if slot == Some(Name::Body) && object && stack.depth == 2 {
                    in_body = true;
                }
                if let Some(s) = slot.take() {
                    f.values[s as usize] = Value::Container;
                }
                i = ws(doc, i + 1, &mut f.line_breaks);
                let close = if object { b'}' } else { b']' };
                if doc.get(i) == Some(&close) {
                    i += 1;
                    stack.depth -= 1;
                    in_body &= stack.depth >= 2;
                    value = Value::Container;
                } else {
                    if object {
                        (i, slot) = member(doc, i, &stack, in_body, &mut f)?;
                    }
                    continue;
                }
            }
            b'"' => {
                let (end, escaped) = string(doc, i + 1)?;
                value = Value::Str {
                    raw: &doc[start + 1..end],
                    escaped,
                };
                i = end + 1;
            }
            _ => {
                i = match c {
                    b't' => literal(doc, i, b"true")?,
                    b'f' => literal(doc, i, b"false")?,
                    b'n' => literal(doc, i, b"null")?,
                    b'-' | b'0'..=b'9' => number(doc, i)?,
                    _ => return Err(BAD),
                };
                value = Value::Scalar(&doc[start..i]);
            }
        }
        if let Some(s) = slot.take() {
            f.values[s as usize] = value;
        }
        // After a value: a separator, the end of containers, or the end of the document.
        loop {
            i = ws(doc, i, &mut f.line_breaks);
            if stack.depth == 0 {
                return if i == doc.len() { Ok(f) } else { Err(BAD) };
            }
            let object = stack.in_object();
            match doc.get(i) {
                Some(b',') => {
                    i = ws(doc, i + 1, &mut f.line_breaks);
                    if object {
                        (i, slot) = member(doc, i, &stack, in_body, &mut f)?;
                    }
                    break;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => return Err(BAD),
            }
            i += 1;
            stack.depth -= 1;
            in_body &= stack.depth >= 2;
        }
    }
}

/// Reads a member name at `i` and its colon; returns where its value starts and, when it is one to
/// pick out, which (after checking it was not seen before).
#[inline(always)]
fn member(
    doc: &[u8],
    i: usize,
    stack: &Stack,
    in_body: bool,
    f: &mut Fields,
) -> Result<(usize, Option<Name>), Code> {
    if doc.get(i) != Some(&b'"') {
        return Err(BAD);
    }
    let (end, escaped) = string(doc, i + 1)?;
    let mut slot = None;
    if stack.depth == 1 || (in_body && stack.depth == 2) {
        let raw = &doc[i + 1..end];
        let mut buf = [0u8; 16];
        let name = if escaped {
            unescape(raw, &mut buf).map(|n| &buf[..n])
        } else {
            Some(raw)
        };
        slot = name.and_then(|n| {
            if stack.depth == 2 {
                (n == b"status").then_some(Name::BodyStatus)
            } else {
                TOP.iter()
                    .find(|(t, _)| t.len() == n.len() && *t == n)
                    .map(|&(_, name)| name)
            }
        });
        if let Some(s) = slot {
            // A member read before holds its value, or Container until its value is read.
            if f.values[s as usize] != Value::Absent {
                return Err(Code::DuplicateField);
            }
            f.values[s as usize] = Value::Container;
        }
    }
    let mut j = ws(doc, end + 1, &mut f.line_breaks);
    if doc.get(j) != Some(&b':') {
        return Err(BAD);
    }
    j = ws(doc, j + 1, &mut f.line_breaks);
    Ok((j, slot))
}

#[inline(always)]
fn ws(doc: &[u8], mut i: usize, breaks: &mut bool) -> usize {
    while let Some(&b) = doc.get(i) {
        match b {
            b' ' => {}
            b'\t' | b'\n' | b'\r' => *breaks = true,
            _ => break,
        }
        i += 1;
    }
    i
}

fn literal(doc: &[u8], i: usize, word: &[u8]) -> Result<usize, Code> {
    if doc[i..].starts_with(word) {
        Ok(i + word.len())
    } else {
        Err(BAD)
    }
}

fn digits(doc: &[u8], mut i: usize) -> usize {
    while doc.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` at `i`; returns its end.
fn number(doc: &[u8], mut i: usize) -> Result<usize, Code> {
    if doc[i] == b'-' {
        i += 1;
    }
    match doc.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(doc, i + 1),
        _ => return Err(BAD),
    }
    if doc.get(i) == Some(&b'.') {
        let j = digits(doc, i + 1);
        if j == i + 1 {
            return Err(BAD);
        }
        i = j;
    }
    if matches!(doc.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(doc.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = digits(doc, i);
        if j == i {
            return Err(BAD);
        }
        i = j;
    }
    Ok(i)
}

/// The rest of a string whose opening quote is before `i`: the index of its closing quote, and
/// whether it has escapes.
#[inline(always)]
fn string(doc: &[u8], mut i: usize) -> Result<(usize, bool), Code> {
    let mut escaped = false;
    loop {
        i = scan(doc, i);
        match doc.get(i) {
            Some(b'"') => return Ok((i, escaped)),
            Some(b'\\') => {
                escaped = true;
                i = escape(doc, i + 1)?.0;
            }
            Some(&b) if b >= 0x80 => i = utf8(doc, i)?,
            _ => return Err(BAD), // a control character, or the end of the body
        }
    }
}

fn hex4(doc: &[u8], i: usize) -> Result<u32, Code> {
    let h = doc.get(i..i + 4).ok_or(BAD)?;
    h.iter().try_fold(0u32, |n, &c| {
        let d = (c as char).to_digit(16).ok_or(BAD)?;
        Ok(n << 4 | d)
    })
}

/// An escape after its backslash at `i`: returns where it ends and the character it stands for.
fn escape(doc: &[u8], i: usize) -> Result<(usize, u32), Code> {
    let c = match doc.get(i).ok_or(BAD)? {
        b'"' => '"' as u32,
        b'\\' => '\\' as u32,
        b'/' => '/' as u32,
        b'b' => 8,
        b'f' => 12,
        b'n' => 10,
        b'r' => 13,
        b't' => 9,
        b'u' => {
            let hi = hex4(doc, i + 1)?;
            return match hi {
                0xD800..=0xDBFF => {
                    if doc.get(i + 5..i + 7) != Some(b"\\u") {
                        return Err(BAD);
                    }
                    let lo = hex4(doc, i + 7)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return Err(BAD);
                    }
                    Ok((i + 11, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)))
                }
                0xDC00..=0xDFFF => Err(BAD),
                _ => Ok((i + 5, hi)),
            };
        }
        _ => return Err(BAD),
    };
    Ok((i + 1, c))
}

/// One UTF-8 sequence of two to four bytes at `i` (RFC 3629: no overlong forms, no surrogates,
/// nothing past U+10FFFF); returns its end.
fn utf8(doc: &[u8], i: usize) -> Result<usize, Code> {
    let cont = |j: usize, lo: u8, hi: u8| doc.get(j).is_some_and(|&b| (lo..=hi).contains(&b));
    let (n, lo, hi) = match doc[i] {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return Err(BAD),
    };
    if !cont(i + 1, lo, hi) || (2..n).any(|k| !cont(i + k, 0x80, 0xBF)) {
        return Err(BAD);
    }
    Ok(i + n)
}

/// The first index at or after `i` holding a quote, a backslash, a control character or a
/// non-ASCII byte, or `doc.len()`: what a string's bytes are checked for.
#[inline(always)]
fn scan(doc: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::*;
        // A signed compare below 0x20 catches controls and bytes >= 0x80 at once.
        let hits = |at: usize| {
            // SAFETY: SSE2 is part of the x86_64 baseline, and the callers check that the 16
            // bytes from `at` are in `doc`.
            unsafe {
                let v = _mm_loadu_si128(doc.as_ptr().add(at).cast());
                let m = _mm_or_si128(
                    _mm_or_si128(
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                    ),
                    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                );
                _mm_movemask_epi8(m) as u32
            }
        };
        // Most strings (names, statuses, ids) end within the first block; long ones (padding,
        // base64) go on four blocks at a time, one branch for the four.
        if i + 16 <= doc.len() {
            let m = hits(i);
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
        while i + 64 <= doc.len() {
            let (a, b, c, d) = (hits(i), hits(i + 16), hits(i + 32), hits(i + 48));
            if a | b | c | d != 0 {
                let m = u64::from(a) | u64::from(b) << 16 | u64::from(c) << 32 | u64::from(d) << 48;
                return i + m.trailing_zeros() as usize;
            }
            i += 64;
        }
        while i + 16 <= doc.len() {
            let m = hits(i);
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        const L: u64 = 0x0101_0101_0101_0101;
        const H: u64 = 0x8080_8080_8080_8080;
        let zero = |x: u64| x.wrapping_sub(L) & !x & H;
        while i + 8 <= doc.len() {
            let x = u64::from_le_bytes(doc[i..i + 8].try_into().unwrap());
            // Each term's lowest flagged byte is exact (borrows only run upwards), so the lowest
            // of all is the first byte to look at.
            let m = zero(x ^ (L * b'"' as u64))
                | zero(x ^ (L * b'\\' as u64))
                | (x.wrapping_sub(L * 0x20) & !x & H)
                | (x & H);
            if m != 0 {
                return i + (m.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
    }
    while let Some(&b) = doc.get(i) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            break;
        }
        i += 1;
    }
    i
}

/// Decodes the escapes of a string's bytes (as the reader returned them, so well formed) into
/// `out`; returns the length, or `None` when it does not fit.
pub(crate) fn unescape(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            *out.get_mut(n)? = b;
            n += 1;
            i += 1;
            continue;
        }
        let (end, c) = escape(raw, i + 1).ok()?;
        let ch = char::from_u32(c)?;
        let len = ch.len_utf8();
        ch.encode_utf8(out.get_mut(n..n + len)?);
        n += len;
        i = end;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(raw: &[u8], escaped: bool) -> Value<'_> {
        Value::Str { raw, escaped }
    }

    #[test]
    fn picks_out_the_members_the_store_reads() {
        let doc = br#"{"event":"job.status","liveMode":false,"messageId":"a\u0062c",
            "timestamp":"2022-02-18T15:12:18Z","body":{"jobId":"x","status":"RUNNING",
            "tasks":[{"status":"NOT_STARTED"}]},"status":7}"#;
        let f = read_object(doc).unwrap();
        assert_eq!(f.get(Name::Event), string(b"job.status", false));
        assert_eq!(f.get(Name::LiveMode), Value::Scalar(b"false"));
        assert_eq!(f.get(Name::MessageId), string(br"a\u0062c", true));
        let mut buf = [0u8; 8];
        assert_eq!(unescape(br"a\u0062c", &mut buf), Some(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(f.get(Name::BodyStatus), string(b"RUNNING", false));
        assert_eq!(f.get(Name::Status), Value::Scalar(b"7"));
        assert_eq!(f.get(Name::Body), Value::Container);
        assert_eq!(f.get(Name::Type), Value::Absent);
        assert!(f.line_breaks);
    }

    #[test]
    fn refuses_a_member_it_reads_twice_even_spelt_with_escapes() {
        for doc in [
            &br#"{"event":"a","event":"b"}"#[..],
            br#"{"event":"a","\u0065vent":"b"}"#,
            br#"{"body":{"status":"A","status":"B"}}"#,
            br#"{"body":{},"body":{}}"#,
            br#"{"event":{},"event":1}"#,
        ] {
            assert_eq!(
                read_object(doc).unwrap_err(),
                Code::DuplicateField,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        // Members it does not read may repeat (RFC 8259 only says SHOULD), and so may `status`
        // deeper down.
        read_object(br#"{"x":1,"x":2,"body":{"tasks":[{"status":"a"},{"status":"b"}]}}"#).unwrap();
    }

    #[test]
    fn exactly_one_object_and_nothing_after_it() {
        for doc in [
            &b"{}\0garbage"[..],
            b"{} {}",
            b"[1]",
            b"\"s\"",
            b"",
            b"{",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(read_object(doc).unwrap_err(), Code::NotJsonObject);
        }
        read_object(b" \r\n{} \t").unwrap();
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let ok = [&b"["[..]].repeat(MAX_DEPTH - 1).concat();
        let doc = [b"{\"a\":", &ok[..], &b"]".repeat(MAX_DEPTH - 1), b"}"].concat();
        read_object(&doc).unwrap();
        let deep = b"[".repeat(100_000);
        assert_eq!(validate(&deep).unwrap_err(), Code::NotJsonObject);
    }

    #[test]
    fn strings_are_checked_in_every_block_position() {
        // A quote, a control character and a bad byte at each offset of the vector loop.
        for at in 0..80 {
            let mut s = [b'a'; 100];
            s[at] = 0x01;
            let doc = [b"{\"a\":\"", &s[..], b"\"}"].concat();
            assert!(read_object(&doc).is_err(), "{at}");
            s[at] = 0xff;
            let doc = [b"{\"a\":\"", &s[..], b"\"}"].concat();
            assert!(read_object(&doc).is_err(), "{at}");
            s[at] = b'"';
            let doc = [b"{\"a\":\"", &s[..], b"}"].concat();
            assert!(read_object(&doc).is_err(), "{at}");
            let doc = [b"{\"a\":\"", &s[..at + 1], b"}"].concat();
            read_object(&doc).unwrap();
            s[at] = 0xc3;
            s[at + 1] = 0xa9;
            let doc = [b"{\"a\":\"", &s[..], b"\"}"].concat();
            read_object(&doc).unwrap();
        }
    }
}
