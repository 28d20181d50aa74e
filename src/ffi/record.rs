//! The C ABI for the store's records (src/record.rs): write one from a received delivery or from
//! the journal, and read back a compressed line. Same conventions as `ffi`.
#![allow(non_camel_case_types)]

use super::up42wh_delivery;
use super::{guard, try_bytes, try_mut, try_ref};
use crate::code::Code;
use crate::record;

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

/// Writes the store's record of a delivery that `up42wh_receive` (or `up42wh_receive_message`)
/// accepted, received at `time`, into `out`: `C<time>\t<event>\t<status>\t<live>\t<body>` (the
/// body's tabs and line breaks as spaces, when `delivery->line_breaks`), or `Z`
/// and the body as an LZ4 block (length first, 4 bytes little-endian) when that is an eighth
/// smaller. `out->cap` of `body_len + body_len / 8 + 700` is always enough (`INVALID_ARGUMENT`
/// otherwise). Does not allocate.
///
/// # Safety
/// `delivery` must be valid, `body` valid for `body_len` bytes, `out` as `up42wh_buffer` says.
#[no_mangle]
pub unsafe extern "C" fn up42wh_delivery_record(
    delivery: *const up42wh_delivery,
    body: *const u8,
    body_len: usize,
    time: i64,
    out: *mut up42wh_buffer,
) -> Code {
    guard(|| {
        let d = try_ref!(delivery);
        let body = try_bytes!(body, body_len);
        let live: &[u8] = match d.live {
            1 => b"true",
            0 => b"false",
            _ => b"",
        };
        let (event, status) = (
            d.event.get(..d.event_len).ok_or(Code::InvalidArgument)?,
            d.status.get(..d.status_len).ok_or(Code::InvalidArgument)?,
        );
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe {
            fill(out, |buf| {
                record::write(time, &[event, status, live], body, d.line_breaks, buf)
            })
        }
    })
}

/// Like `up42wh_delivery_record` with the meta already joined (`event\tstatus\tlive`, as the
/// journal keeps it) and a line already on one line, for events put back from the journal.
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
        // SAFETY: `out` is as up42wh_buffer says: the export's contract.
        unsafe { fill(out, |buf| record::write(time, &[meta], line, false, buf)) }
    })
}

/// The line of a `Z` record, from the bytes after its fourth tab: decompressed into `out`, tabs
/// and line breaks as spaces. `INVALID_ARGUMENT` when the block is damaged or `out` too small.
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
