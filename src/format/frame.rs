//! The journal's frame of one record: its bytes on disk, written and read here only (the
//! segments, their writer and their recovery are src/journal.rs).
//!
//! ```text
//! "U42J" | payload length (u32 LE) | CRC-32C (u32 LE) | payload
//! payload: kind u8 | reason u8 | key u64 | time i64 | digest [32] | id len u16 | meta len u16
//!          | body len u32 | id | meta | body                                     (integers LE)
//! ```
//!
//! The CRC covers the length and the payload and starts from the CRC of the journal's salt, so the
//! bytes of a stored body can never pass for a frame of their own.

use crate::code::Code;

const MAGIC: &[u8; 4] = b"U42J";
const HEADER: usize = 12;
/// Fixed part of a payload: kind, reason, key, time, digest, three lengths.
const FIXED: usize = 1 + 1 + 8 + 8 + 32 + 2 + 2 + 4;
/// The largest payload a frame may claim: larger claims are damage.
const MAX_PAYLOAD: usize = 64 << 20;
/// What a journal record says (`up42wh_record.kind`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A stored event under `key`.
    Event = 1,
    /// Every event with a key up to and including `key` is gone (acknowledged or past retention).
    Drop = 2,
    /// The event under `key`, written before, was not stored after all (its delivery was answered
    /// with an error, so the sender retries it).
    Cancel = 3,
    /// The consumer named in `id` has acknowledged every event up to and including `key`: its
    /// position.
    Position = 4,
}

u32_enum!(Kind {
    Event,
    Drop,
    Cancel,
    Position
});

/// One record. For a drop, `reason` says why (1 acknowledged, 2 retention); drops and cancels have
/// empty slices, a position only its consumer's name as `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    pub reason: u8,
    pub key: u64,
    /// When it was written, unix seconds.
    pub time: i64,
    /// SHA-256 of the event's body (zeros for a drop).
    pub digest: [u8; 32],
    /// The delivery id it was deduplicated on.
    pub id: &'a [u8],
    /// What the dump filters on (event, status, live mode), as the caller encodes it.
    pub meta: &'a [u8],
    /// The stored event.
    pub body: &'a [u8],
}

// CRC-32C (Castagnoli), reflected, eight bytes at a time: tables made at compile time.
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            let prev = t[j - 1][i];
            t[j][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

static CRC: [[u32; 256]; 8] = crc_tables();

/// Continues a CRC-32C: `crc32c(0, a ++ b) == crc32c(crc32c(0, a), b)`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = c ^ u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
        c = CRC[7][(lo & 0xff) as usize]
            ^ CRC[6][((lo >> 8) & 0xff) as usize]
            ^ CRC[5][((lo >> 16) & 0xff) as usize]
            ^ CRC[4][(lo >> 24) as usize]
            ^ CRC[3][ch[4] as usize]
            ^ CRC[2][ch[5] as usize]
            ^ CRC[1][ch[6] as usize]
            ^ CRC[0][ch[7] as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ CRC[0][((c ^ b as u32) & 0xff) as usize];
    }
    !c
}

/// Appends the frame of `r` to `out`; the CRC starts from `seed` (the salt's CRC).
pub fn encode(r: &Record, seed: u32, out: &mut Vec<u8>) -> Result<(), Code> {
    let (id_len, meta_len) = (
        u16::try_from(r.id.len()).map_err(|_| Code::InvalidArgument)?,
        u16::try_from(r.meta.len()).map_err(|_| Code::InvalidArgument)?,
    );
    let len = FIXED + r.id.len() + r.meta.len() + r.body.len();
    if len > MAX_PAYLOAD {
        return Err(Code::InvalidArgument);
    }
    let start = out.len();
    out.reserve(HEADER + len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, below
    out.push(r.kind as u8);
    out.push(r.reason);
    out.extend_from_slice(&r.key.to_le_bytes());
    out.extend_from_slice(&r.time.to_le_bytes());
    out.extend_from_slice(&r.digest);
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&(r.body.len() as u32).to_le_bytes());
    out.extend_from_slice(r.id);
    out.extend_from_slice(r.meta);
    out.extend_from_slice(r.body);
    let crc = crc32c(
        crc32c(seed, &out[start + 4..start + 8]),
        &out[start + HEADER..],
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn le_u16(b: &[u8]) -> usize {
    u16::from_le_bytes([b[0], b[1]]) as usize
}

fn le_u32(b: &[u8]) -> usize {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// A good frame at the start of some bytes: where its parts are, relative to that start.
#[derive(Clone, Copy)]
pub(crate) struct Frame {
    kind: Kind,
    /// The whole frame's length.
    pub(crate) len: usize,
    id: (usize, usize),
    meta: (usize, usize),
    body: (usize, usize),
}

/// The good frame at the start of `data`, if there is one.
pub(crate) fn decode(data: &[u8], seed: u32) -> Option<Frame> {
    if data.len() < HEADER || &data[..4] != MAGIC {
        return None;
    }
    let len = le_u32(&data[4..8]);
    if !(FIXED..=MAX_PAYLOAD).contains(&len) || data.len() - HEADER < len {
        return None;
    }
    let p = &data[HEADER..HEADER + len];
    if crc32c(crc32c(seed, &data[4..8]), p) != le_u32(&data[8..12]) as u32 {
        return None;
    }
    let kind = Kind::try_from(p[0] as u32).ok()?;
    let (id_len, meta_len, body_len) = (le_u16(&p[50..52]), le_u16(&p[52..54]), le_u32(&p[54..58]));
    if FIXED + id_len + meta_len + body_len != len {
        return None;
    }
    let id = HEADER + FIXED;
    let meta = id + id_len;
    let body = meta + meta_len;
    Some(Frame {
        kind,
        len: HEADER + len,
        id: (id, meta),
        meta: (meta, body),
        body: (body, HEADER + len),
    })
}

/// The record of a good frame at the start of `data`.
pub(crate) fn record(data: &[u8], f: Frame) -> Record<'_> {
    let p = &data[HEADER..];
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&p[18..50]);
    Record {
        kind: f.kind,
        reason: p[1],
        key: u64::from_le_bytes(p[2..10].try_into().unwrap()),
        time: i64::from_le_bytes(p[10..18].try_into().unwrap()),
        digest,
        id: &data[f.id.0..f.id.1],
        meta: &data[f.meta.0..f.meta.1],
        body: &data[f.body.0..f.body.1],
    }
}

/// The record of the good frame at the start of `data` and the frame's length, if there is one.
pub fn decode_record(data: &[u8], seed: u32) -> Option<(Record<'_>, usize)> {
    decode(data, seed).map(|f| (record(data, f), f.len))
}

/// The offset of the next good frame after the start of `data`, if any.
pub(crate) fn resync(data: &[u8], seed: u32) -> Option<usize> {
    let mut at = 1;
    while at + HEADER <= data.len() {
        let next = data[at..].iter().position(|&b| b == MAGIC[0])?;
        at += next;
        if decode(&data[at..], seed).is_some() {
            return Some(at);
        }
        at += 1;
    }
    None
}
