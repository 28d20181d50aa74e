//! The C ABI for the store's records (src/format/record.rs) and the envelope they keep
//! (src/format/envelope.rs): write one from a received delivery or from the journal, and read back a
//! compressed line. Same conventions as `ffi`.
#![allow(non_camel_case_types)]

use super::up42wh_delivery;
use super::{guard, sized, try_bytes, try_mut, try_ref};
use crate::code::Code;
use crate::delivery::IdSource;
use crate::entry::Field;
use crate::{envelope, record};

/// A caller's buffer: `cap` writable bytes at `ptr`; a call that fills it sets `len`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_buffer {
    pub ptr: *mut u8,
    pub cap: usize,
    pub len: usize,
}

/// # Safety
/// `out` must be NULL or point to a buffer whose `ptr` is writable for `cap` bytes.
unsafe fn fill(
    out: *mut up42wh_buffer,
    f: impl FnOnce(&mut [u8]) -> Result<usize, Code>,
) -> Result<(), Code> {
    let out = try_mut!(out);
    if out.ptr.is_null() || out.cap > isize::MAX as usize {
        return Err(Code::NullArgument);
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, writable for `cap` bytes: the caller's promise.
    out.len = f(unsafe { core::slice::from_raw_parts_mut(out.ptr, out.cap) })?;
    Ok(())
}

impl up42wh_delivery {
    /// The id it is deduplicated on.
    pub(super) fn dedup_id(&self) -> Result<&[u8], Code> {
        self.id.get(..self.id_len).ok_or(Code::InvalidArgument)
    }

    /// Its envelope for the sender `sender` and the scheme `scheme`, written into `out`: its
    /// length.
    pub(super) fn write_envelope(
        &self,
        sender: &[u8],
        scheme: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Code> {
        let own = self
            .dedup_id()?
            .get(self.id_at..)
            .ok_or(Code::InvalidArgument)?;
        let from = IdSource::try_from(self.id_source)?;
        envelope::write(sender, scheme, self.key_index, own, from, out)
    }

    /// The fields the store keeps before the envelope: event, status and live mode.
    pub(super) fn meta(&self) -> Result<[&[u8]; 3], Code> {
        let live: &[u8] = match self.live {
            1 => b"true",
            0 => b"false",
            _ => b"",
        };
        Ok([
            self.event
                .get(..self.event_len)
                .ok_or(Code::InvalidArgument)?,
            self.status
                .get(..self.status_len)
                .ok_or(Code::InvalidArgument)?,
            live,
        ])
    }
}

/// Writes the envelope of a delivery that `up42wh_receive_message` accepted for the sender
/// `sender` (its name) and the scheme `scheme` into `out`: JSON members without braces,
/// `"sender":..,"scheme":..,"key_index":..,"delivery_id":..,"delivery_id_from":..`, the id
/// without the caller's prefix, strings escaped (bytes that are not UTF-8 as U+FFFD), no tab or
/// line break. `out->cap` of 2432 is always enough for names of at most 64 bytes
/// (`INVALID_ARGUMENT` otherwise, as for a `delivery` whose id fields are out of range). Does not
/// allocate.
///
/// # Safety
/// `delivery` must be valid, the byte strings valid for their lengths, `out` as `up42wh_buffer`
/// says.
#[no_mangle]
pub unsafe extern "C" fn up42wh_delivery_envelope(
    delivery: *const up42wh_delivery,
    sender: *const u8,
    sender_len: usize,
    scheme: *const u8,
    scheme_len: usize,
    out: *mut up42wh_buffer,
) -> Code {
    guard(|| {
        let d = try_ref!(delivery);
        let sender = try_bytes!(sender, sender_len);
        let scheme = try_bytes!(scheme, scheme_len);
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe { fill(out, |buf| d.write_envelope(sender, scheme, buf)) }
    })
}

/// Writes the store's record of a delivery that `up42wh_receive` (or `up42wh_receive_message`)
/// accepted, received at `time`, into `out`:
/// `E<time>\t<event>\t<status>\t<live>\t<envelope>\t<body>` (the body's tabs and line breaks as
/// spaces, when `delivery->line_breaks`), or `F` and the body as an LZ4 block (length first, 4
/// bytes little-endian) when that is an eighth smaller. `envelope` is what
/// `up42wh_delivery_envelope` wrote; without one (`envelope_len` 0) the record has no envelope
/// field and starts with `C` or `Z`. `out->cap` of `body_len + body_len / 8 + envelope_len + 700`
/// is always enough (`INVALID_ARGUMENT` otherwise, as for an envelope with a tab or line break).
/// Does not allocate.
///
/// # Safety
/// `delivery` must be valid, `envelope` valid for `envelope_len` bytes, `body` for `body_len`
/// bytes, `out` as `up42wh_buffer` says.
#[no_mangle]
pub unsafe extern "C" fn up42wh_delivery_record(
    delivery: *const up42wh_delivery,
    envelope: *const u8,
    envelope_len: usize,
    body: *const u8,
    body_len: usize,
    time: i64,
    out: *mut up42wh_buffer,
) -> Code {
    guard(|| {
        let d = try_ref!(delivery);
        let envelope = try_bytes!(envelope, envelope_len);
        if envelope.iter().any(|&b| matches!(b, b'\t' | b'\r' | b'\n')) {
            return Err(Code::InvalidArgument);
        }
        let body = try_bytes!(body, body_len);
        let [event, status, live] = d.meta()?;
        let enveloped = !envelope.is_empty();
        let meta: &[&[u8]] = if enveloped {
            &[event, status, live, envelope]
        } else {
            &[event, status, live]
        };
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe {
            fill(out, |buf| {
                record::write(time, meta, enveloped, body, d.line_breaks, buf)
            })
        }
    })
}

/// Like `up42wh_delivery_record` with the meta already joined (`event\tstatus\tlive\tenvelope`,
/// as the journal keeps it, or without the envelope, as older journals do: the record then starts
/// with `C` or `Z`) and a line already on one line, for events put back from the journal.
///
/// # Safety
/// The byte strings valid for their lengths, `out` as `up42wh_buffer` says.
#[no_mangle]
pub unsafe extern "C" fn up42wh_record_write(
    time: i64,
    meta: *const u8,
    meta_len: usize,
    line: *const u8,
    line_len: usize,
    out: *mut up42wh_buffer,
) -> Code {
    guard(|| {
        let meta = try_bytes!(meta, meta_len);
        let line = try_bytes!(line, line_len);
        // The journal's meta of an event stored with its envelope has four fields.
        let enveloped = meta.iter().filter(|&&b| b == b'\t').count() >= 3;
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe {
            fill(out, |buf| {
                record::write(time, &[meta], enveloped, line, false, buf)
            })
        }
    })
}

/// The line of a `Z` or `F` record, from the bytes after its last meta field (its fourth tab, or
/// the fifth of an `F` record): decompressed into `out`, tabs and line breaks as spaces. `INVALID_ARGUMENT` when the block is damaged or `out` too small.
///
/// # Safety
/// `block` valid for `block_len` bytes, `out` as `up42wh_buffer` says.
#[no_mangle]
pub unsafe extern "C" fn up42wh_record_line(
    block: *const u8,
    block_len: usize,
    out: *mut up42wh_buffer,
) -> Code {
    guard(|| {
        let block = try_bytes!(block, block_len);
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe { fill(out, |buf| record::line(block, buf)) }
    })
}

/// Where a field lies in a record: `at` bytes from its start, `len` long.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_span {
    pub at: u32,
    pub len: u32,
}

/// A store record's fields, as `up42wh_record_read` finds them. Set `size` to
/// `sizeof(up42wh_record_fields)` before the call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_record_fields {
    /// `sizeof(up42wh_record_fields)` as the caller's header declares it.
    pub size: usize,
    /// When the event was stored, unix seconds.
    pub time: i64,
    /// A pending record of an older version (state byte `P`).
    pub pending: bool,
    /// `line` is an LZ4 block: `up42wh_record_line` reads it.
    pub compressed: bool,
    /// False for an event stored before the envelope.
    pub has_envelope: bool,
    pub event: up42wh_span,
    pub status: up42wh_span,
    pub live: up42wh_span,
    pub envelope: up42wh_span,
    /// The line, or its block.
    pub line: up42wh_span,
}

/// Reads the fields of a record that `up42wh_delivery_record` or `up42wh_record_write` wrote (or
/// an older version did): where each lies in it. `INVALID_ARGUMENT` when it is not a record (or
/// is 4 GiB or more), `STRUCT_SIZE` when `out->size` is not this header's. Does not allocate: the
/// one reader of the format, for every caller.
///
/// # Safety
/// `record` valid for `record_len` bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_record_read(
    record: *const u8,
    record_len: usize,
    out: *mut up42wh_record_fields,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        sized::<up42wh_record_fields>(out.size)?;
        let record = try_bytes!(record, record_len);
        if u32::try_from(record.len()).is_err() {
            return Err(Code::InvalidArgument);
        }
        let f = record::read(record)?;
        // Every offset is below the record's length, itself below 4 GiB.
        let span = |s: record::Span| up42wh_span {
            at: s.at as u32,
            len: s.len as u32,
        };
        *out = up42wh_record_fields {
            size: out.size,
            time: f.time,
            pending: f.pending,
            compressed: f.compressed,
            has_envelope: f.envelope.is_some(),
            event: span(f.event),
            status: span(f.status),
            live: span(f.live),
            envelope: span(f.envelope.unwrap_or_default()),
            line: span(f.line),
        };
        Ok(())
    })
}

/// The name of field `field` (`up42wh_entry_field`) of the Redis store's stream entry for one
/// event, a static NUL-terminated string, or NULL for a number that is no field: a caller lists
/// the fields by asking from 1 up to the first NULL.
#[no_mangle]
pub extern "C" fn up42wh_entry_field_name(field: u32) -> *const core::ffi::c_char {
    super::name_or_null(field, Field::name)
}
