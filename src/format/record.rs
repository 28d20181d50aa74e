//! The record the shared-dict store keeps for an event:
//! `E<time>\t<event>\t<status>\t<live>\t<envelope>\t<line>` (the envelope: src/format/envelope.rs),
//! or, when it is smaller so, `F` in place of `E` and the line as an LZ4 block (its length first,
//! four bytes little-endian). A 1 KiB delivery then fits a 1 KiB slab of `lua_shared_dict` (which
//! rounds every item up to a power of two) instead of a 2 KiB one. Records of events stored
//! before the envelope (restored from an older journal) have no envelope field and start with
//! `C` (plain) or `Z` (LZ4).
//!
//! A compressed line is the body as received; tabs and line breaks (JSON has them only between
//! tokens) become spaces when it is read back, so that the dump keeps one event a line.

use crate::buf::Out;
use crate::code::Code;

/// Bodies shorter than this are kept as they are: too small to gain a slab.
pub(crate) const COMPRESS_MIN: usize = 128;

/// The most bytes a record of a `body_len`-byte body with `meta_len` bytes of meta can take.
pub const fn max_len(meta_len: usize, body_len: usize) -> usize {
    // State, time (at most 20 digits), five tabs, meta; then the larger of the line and its block.
    1 + 20 + 5 + meta_len + 4 + 16 + body_len + body_len / 8
}

/// Writes the record of an event received at `time` into `out`: `meta` is its fields (event,
/// status, live, and the envelope when `enveloped`) joined with tabs as given, `line` the body,
/// whose tabs and line breaks become spaces when `line_breaks` says it has any. Returns the
/// record's length; `InvalidArgument` when `out` is too small (see [`max_len`]).
pub fn write(
    time: i64,
    meta: &[&[u8]],
    enveloped: bool,
    line: &[u8],
    line_breaks: bool,
    out: &mut [u8],
) -> Result<usize, Code> {
    let (plain, block) = if enveloped {
        (b"E", b'F')
    } else {
        (b"C", b'Z')
    };
    let mut o = Out::new(out);
    o.put(plain)?;
    let mut digits = [0u8; 24];
    o.put(crate::buf::format_i64(time, &mut digits))?;
    for m in meta {
        o.put(b"\t")?;
        o.put(m)?;
    }
    o.put(b"\t")?;
    let head = o.n;
    if line.len() >= COMPRESS_MIN {
        let at = head + 4;
        if let Some(room) = o.buf.get_mut(at..) {
            // Kept only when it saves an eighth: a record near a slab boundary gains nothing less.
            if let Ok(n) = lz4_flex::block::compress_into(line, room) {
                if n + 4 <= line.len() - line.len() / 8 {
                    o.buf[0] = block;
                    o.buf[head..at].copy_from_slice(&(line.len() as u32).to_le_bytes());
                    return Ok(at + n);
                }
            }
        }
    }
    let start = o.n;
    o.put(line)?;
    if line_breaks {
        one_line(&mut o.buf[start..o.n]);
    }
    Ok(o.n)
}

/// Tabs and line breaks as spaces: an event kept on one line.
pub(crate) fn one_line(line: &mut [u8]) {
    for b in line {
        if matches!(*b, b'\t' | b'\r' | b'\n') {
            *b = b' ';
        }
    }
}

/// The line of a `Z` or `F` record from what follows its last meta field's tab, decompressed into `out`, tabs and
/// line breaks as spaces. Returns its length; `InvalidArgument` when the block is damaged or `out`
/// too small for it.
pub fn line(block: &[u8], out: &mut [u8]) -> Result<usize, Code> {
    let (len, block) = block.split_at_checked(4).ok_or(Code::InvalidArgument)?;
    let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
    let out = out.get_mut(..len).ok_or(Code::InvalidArgument)?;
    let n = lz4_flex::block::decompress_into(block, out).map_err(|_| Code::InvalidArgument)?;
    if n != len {
        return Err(Code::InvalidArgument);
    }
    one_line(out);
    Ok(n)
}

/// Where a field lies in a record: `at` bytes from its start, `len` long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub at: usize,
    pub len: usize,
}

/// A record's fields, as [`read`] finds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields {
    /// When it was stored, unix seconds.
    pub time: i64,
    /// Written by a version before a record was committed in place: its state byte says
    /// pending (`P`).
    pub pending: bool,
    /// The line is an LZ4 block (`Z`, `F`): [`line`] reads it from `line`'s bytes.
    pub compressed: bool,
    pub event: Span,
    pub status: Span,
    pub live: Span,
    /// `None` in a record of an event stored before the envelope (`C`, `Z`).
    pub envelope: Option<Span>,
    /// The line, or its block.
    pub line: Span,
}

/// The fields of a record as [`write`] made it (or an older version: `C`, `Z`, `P`).
/// `InvalidArgument` when it is not one.
pub fn read(record: &[u8]) -> Result<Fields, Code> {
    let state = *record.first().ok_or(Code::InvalidArgument)?;
    let (enveloped, compressed, pending) = match state {
        b'C' => (false, false, false),
        b'Z' => (false, true, false),
        b'E' => (true, false, false),
        b'F' => (true, true, false),
        // A pending record of an older version: its layout is a `C` record's.
        b'P' => (false, false, true),
        _ => return Err(Code::InvalidArgument),
    };
    let mut f = Fields {
        pending,
        compressed,
        ..Fields::default()
    };
    // Each field up to its tab, from byte `at`, which then moves past the tab.
    let mut at = 1;
    let field = |at: &mut usize| -> Result<Span, Code> {
        let n = record[*at..]
            .iter()
            .position(|&b| b == b'\t')
            .ok_or(Code::InvalidArgument)?;
        let span = Span { at: *at, len: n };
        *at += n + 1;
        Ok(span)
    };
    let time = field(&mut at)?;
    let digits = &record[time.at..time.at + time.len];
    // Digits only (no sign, no space), within an i64 (`parse` checks the range).
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Code::InvalidArgument);
    }
    f.time = core::str::from_utf8(digits)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(Code::InvalidArgument)?;
    f.event = field(&mut at)?;
    f.status = field(&mut at)?;
    f.live = field(&mut at)?;
    if enveloped {
        f.envelope = Some(field(&mut at)?);
    }
    f.line = Span {
        at,
        len: record.len() - at,
    };
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(record: &[u8]) -> &[u8] {
        let mut tabs = 0;
        let at = record.iter().position(|&b| {
            tabs += usize::from(b == b'\t');
            tabs == 4
        });
        &record[at.unwrap() + 1..]
    }

    #[test]
    fn small_lines_stay_plain_and_large_ones_come_back_as_one_line() {
        let mut out = vec![0u8; 4096];
        let n = write(
            1_700_000_000,
            &[b"job.status", b"RUNNING", b"false"],
            false,
            b"{\n}",
            true,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..n], b"C1700000000\tjob.status\tRUNNING\tfalse\t{ }");
        let n = write(
            1_700_000_000,
            &[b"job.status", b"RUNNING", b"false", b"\"sender\":\"up42\""],
            true,
            b"{\n}",
            true,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..n],
            b"E1700000000\tjob.status\tRUNNING\tfalse\t\"sender\":\"up42\"\t{ }"
        );

        let body = format!("{{\"pad\":\"{}\",\n\t\"x\":1}}", "p".repeat(900));
        let n = write(
            7,
            &[b"e", b"", b"", b"x"],
            true,
            body.as_bytes(),
            true,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], b'F');
        let mut tabs = 0;
        let at = out[..n].iter().position(|&b| {
            tabs += usize::from(b == b'\t');
            tabs == 5
        });
        let mut back = vec![0u8; 2048];
        let m = line(&out[at.unwrap() + 1..n], &mut back).unwrap();
        assert_eq!(&back[..m], body.replace(['\n', '\t'], " ").as_bytes());
        let n = write(7, &[b"e", b"", b""], false, body.as_bytes(), true, &mut out).unwrap();
        assert_eq!(out[0], b'Z');
        assert!(n < 200, "{n}");
        let mut back = vec![0u8; 2048];
        let m = line(tail(&out[..n]), &mut back).unwrap();
        assert_eq!(&back[..m], body.replace(['\n', '\t'], " ").as_bytes());
        assert_eq!(
            line(tail(&out[..n]), &mut back[..m - 1]),
            Err(Code::InvalidArgument),
            "too small"
        );
        assert!(line(&out[n - 10..n], &mut back).is_err(), "a damaged block");
    }

    #[test]
    fn read_finds_the_fields_of_every_kind_of_record() {
        let mut out = vec![0u8; 4096];
        let body = format!("{{\"pad\":\"{}\"}}", "p".repeat(900));
        let at = |r: &[u8], s: Span| r[s.at..s.at + s.len].to_vec();
        for (enveloped, body) in [
            (true, "{}".to_string()),
            (false, "{}".into()),
            (true, body.clone()),
            (false, body),
        ] {
            let meta: &[&[u8]] = if enveloped {
                &[b"job.status", b"RUN", b"true", b"\"sender\":\"up42\""]
            } else {
                &[b"job.status", b"RUN", b"true"]
            };
            let n = write(
                1_700_000_000,
                meta,
                enveloped,
                body.as_bytes(),
                false,
                &mut out,
            )
            .unwrap();
            let r = &out[..n];
            let f = read(r).unwrap();
            assert_eq!((f.time, f.pending), (1_700_000_000, false));
            assert_eq!(
                (at(r, f.event), at(r, f.status), at(r, f.live)),
                (b"job.status".to_vec(), b"RUN".to_vec(), b"true".to_vec())
            );
            assert_eq!(
                f.envelope.map(|e| at(r, e)),
                enveloped.then(|| b"\"sender\":\"up42\"".to_vec())
            );
            assert_eq!(f.compressed, body.len() > 100);
            let mut back = vec![0u8; 2048];
            let line_of = if f.compressed {
                let m = line(&at(r, f.line), &mut back).unwrap();
                back[..m].to_vec()
            } else {
                at(r, f.line)
            };
            assert_eq!(line_of, body.as_bytes());
        }
        // An older version's pending record; what is no record.
        let f = read(b"P5\te\ts\t\t{}").unwrap();
        assert!(f.pending && f.time == 5 && f.line == Span { at: 8, len: 2 });
        for bad in [
            &b""[..],
            b"C9999999999999999999\te\ts\tl\t{}",
            b"X5\te\ts\tl\t{}",
            b"C\te\ts\tl\t{}",
            b"Cx\te\ts\tl\t{}",
            b"C5\te\ts",
            b"E5\te\ts\tl\t{}",
        ] {
            assert_eq!(
                read(bad),
                Err(Code::InvalidArgument),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_line_that_does_not_shrink_is_kept_plain() {
        // Bytes LZ4 cannot shorten by an eighth.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let body: Vec<u8> = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut out = vec![0u8; max_len(3, body.len())];
        let n = write(1, &[b"", b"", b""], false, &body, false, &mut out).unwrap();
        assert_eq!(out[0], b'C');
        assert_eq!(&out[n - body.len()..n], &body[..]);
        assert_eq!(
            write(1, &[b"", b"", b""], false, &body, false, &mut out[..100]),
            Err(Code::InvalidArgument)
        );
    }
}
