//! The C ABI of the event journal (`crate::journal`): a writer that appends framed records to a
//! segment, a reader that recovers every good record of a journal (or of one segment), and segment
//! removal for retention. Same conventions as `ffi`: panic boundary, pointer + length, outputs only
//! on success.
#![allow(non_camel_case_types)]

use std::io;
use std::path::Path;
use std::sync::Mutex;

use super::{
    guard, into_handle, opt_mut, opt_ref, release, try_bytes, try_mut, try_ref, up42wh_slice,
};
use crate::code::Code;
use crate::journal::{self, AppendError, Kind, Reader, Record, Writer};

/// What a journal record says, for `up42wh_record.kind`: the core's enum, exported as it is.
pub use crate::journal::Kind as up42wh_record_kind;

/// One journal record. The slices of a record from `up42wh_journal_reader_next` point into the
/// reader and stay valid until the next call on it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_record {
    /// One of `up42wh_record_kind`.
    pub kind: u32,
    /// For a drop: 1 acknowledged, 2 past retention (the journal stores it, it does not interpret
    /// it). 0 for an event.
    pub reason: u32,
    /// The event's key, or for a drop the highest key dropped.
    pub key: u64,
    /// When it was written, unix seconds.
    pub time: i64,
    /// SHA-256 of the event's body.
    pub digest: [u8; 32],
    /// The id the event was deduplicated on (at most 65,535 bytes).
    pub id: up42wh_slice,
    /// What the dump filters on, as the caller encodes it (at most 65,535 bytes).
    pub meta: up42wh_slice,
    /// The event.
    pub body: up42wh_slice,
}

/// What a reader has found so far (all of it once `up42wh_journal_reader_next` has returned
/// `UP42WH_RESULT_JOURNAL_END`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_journal_stats {
    /// Segments read, and the numbers of the first and the last (0 when there are none).
    pub segments: u32,
    pub first_segment: u32,
    pub last_segment: u32,
    /// Bytes in the segments read.
    pub bytes: u64,
    /// Good records.
    pub records: u64,
    /// Damaged stretches followed by a good record: each lost at least one record.
    pub corrupt: u64,
    /// Bytes of damaged stretches at the end of a segment: appends a crash cut short.
    pub torn_bytes: u64,
    /// The highest key and the latest time of any good record.
    pub max_key: u64,
    pub max_time: i64,
}

/// An opaque writer: appends to one segment of a journal. Appends from several threads are
/// serialised by the handle; every append is one `write(2)`, so several processes may append to
/// the same segment at once. Free it with `up42wh_journal_free`.
pub struct up42wh_journal {
    writer: Mutex<Writer>,
    errno: Mutex<i32>,
}

impl up42wh_journal {
    /// The system's reason for a failed append or sync, kept for `up42wh_journal_errno`.
    fn failed(&self, e: &io::Error) -> Code {
        match self.errno.lock() {
            Ok(mut n) => {
                *n = errno(e);
                Code::JournalIo
            }
            Err(_) => Code::Panic,
        }
    }

    /// Appends `r` with one `write(2)`: the segment's size after it.
    pub(super) fn append(&self, r: &Record) -> Result<u64, Code> {
        let mut writer = self.writer.lock().map_err(|_| Code::Panic)?;
        match writer.append(r) {
            Ok(size) => Ok(size),
            Err(AppendError::Record(code)) => Err(code),
            Err(AppendError::Io(e)) => Err(self.failed(&e)),
        }
    }

    /// `fdatasync` of the segment.
    pub(super) fn sync(&self) -> Result<(), Code> {
        let writer = self.writer.lock().map_err(|_| Code::Panic)?;
        writer.sync().map_err(|e| self.failed(&e))
    }
}

/// An opaque reader of a journal's good records, oldest segment first. Not to be shared between
/// threads while reading. Free it with `up42wh_journal_reader_free`.
pub struct up42wh_journal_reader {
    reader: Reader,
}

/// A directory's path from C (the exports' contract: `dir_len` readable bytes at `dir`).
pub(super) fn dir_of<'a>(dir: *const u8, dir_len: usize) -> Result<&'a Path, Code> {
    use std::os::unix::ffi::OsStrExt;
    let d = try_bytes!(dir, dir_len);
    if d.is_empty() || d.contains(&0) {
        return Err(Code::InvalidArgument);
    }
    Ok(Path::new(std::ffi::OsStr::from_bytes(d)))
}

/// The errno of an I/O error, for `up42wh_journal_errno`; EIO when it has none.
pub(super) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(5)
}

/// `UP42WH_RESULT_JOURNAL_IO`, with the system's reason written to `errno_out` when it is not NULL.
macro_rules! io_failed {
    ($e:expr, $errno_out:expr) => {{
        if let Some(n) = opt_mut!($errno_out) {
            *n = errno($e);
        }
        Code::JournalIo
    }};
}
pub(super) use io_failed;

/// A record from C. The slices must outlive the returned record.
unsafe fn record_in<'a>(r: &up42wh_record) -> Result<Record<'a>, Code> {
    let mut out = Record {
        kind: Kind::try_from(r.kind)?,
        reason: u8::try_from(r.reason).map_err(|_| Code::InvalidArgument)?,
        key: r.key,
        time: r.time,
        digest: r.digest,
        id: try_bytes!(r.id.ptr, r.id.len),
        meta: try_bytes!(r.meta.ptr, r.meta.len),
        body: try_bytes!(r.body.ptr, r.body.len),
    };
    // Only an event has meta and a body; of the others only a position has an id (its consumer).
    if out.kind != Kind::Event {
        if out.kind != Kind::Position {
            out.id = &[];
        }
        out.meta = &[];
        out.body = &[];
    }
    Ok(out)
}

fn slice(b: &[u8]) -> up42wh_slice {
    up42wh_slice {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

fn record_out(r: &Record) -> up42wh_record {
    up42wh_record {
        kind: r.kind as u32,
        reason: r.reason as u32,
        key: r.key,
        time: r.time,
        digest: r.digest,
        id: slice(r.id),
        meta: slice(r.meta),
        body: slice(r.body),
    }
}

/// Opens segment `segment` (1 or more) of the journal in the existing directory `dir` for
/// appending, creating the segment file (mode 0600) and the journal's salt when they are missing.
/// `UP42WH_RESULT_JOURNAL_IO` when the directory or a file cannot be used; `errno_out` (may be
/// NULL) then has the system's reason.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `out` must be writable; `errno_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_open(
    dir: *const u8,
    dir_len: usize,
    segment: u32,
    out: *mut *mut up42wh_journal,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        if segment == 0 {
            return Err(Code::InvalidArgument);
        }
        let dir = dir_of(dir, dir_len)?;
        match Writer::open(dir, segment) {
            Ok(writer) => {
                *out = into_handle(up42wh_journal {
                    writer: Mutex::new(writer),
                    errno: Mutex::new(0),
                });
                Ok(())
            }
            Err(e) => Err(io_failed!(&e, errno_out)),
        }
    })
}

/// Appends `record` with one `write(2)` and writes the segment's size after it to `size_out` (may
/// be NULL). On `UP42WH_RESULT_JOURNAL_IO` the record is not stored (a part of it may be on disk,
/// which recovery skips); `up42wh_journal_errno` says why. Allocates only while a record is larger
/// than any before it on this handle.
///
/// # Safety
/// `j` must come from `up42wh_journal_open`; `record`'s slices must be readable; `size_out` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_append(
    j: *mut up42wh_journal,
    record: *const up42wh_record,
    size_out: *mut u64,
) -> Code {
    guard(|| {
        let j = try_ref!(j);
        let record = try_ref!(record);
        // SAFETY: the record's slices are valid for the call: the export's contract.
        let r = unsafe { record_in(record) }?;
        let size = j.append(&r)?;
        if let Some(s) = opt_mut!(size_out) {
            *s = size;
        }
        Ok(())
    })
}

/// Forces what this handle's segment holds to the disk (`fdatasync`).
///
/// # Safety
/// `j` must come from `up42wh_journal_open`.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_sync(j: *mut up42wh_journal) -> Code {
    guard(|| try_ref!(j).sync())
}

/// The system's error number of the last failed append or sync on `j` (0 when none failed).
///
/// # Safety
/// `j` must be NULL or come from `up42wh_journal_open`.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_errno(j: *const up42wh_journal) -> i32 {
    let mut n = 0;
    let _ = guard(|| {
        if let Some(j) = opt_ref!(j) {
            n = j.errno.lock().map(|e| *e).unwrap_or(0);
        }
        Ok(())
    });
    n
}

/// Frees a writer (closing its file). NULL is a no-op.
///
/// # Safety
/// `j` must be NULL or come from `up42wh_journal_open`, and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_free(j: *mut up42wh_journal) {
    // SAFETY: NULL, or from up42wh_journal_open and not used again: the contract.
    unsafe { release(j) }
}

/// Opens a reader of every segment of the journal in `dir`, oldest first, or of segment `segment`
/// alone when it is not 0. A directory without segments reads as empty; segments without the
/// journal's salt are `UP42WH_RESULT_JOURNAL_IO`.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `out` must be writable; `errno_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_reader_open(
    dir: *const u8,
    dir_len: usize,
    segment: u32,
    out: *mut *mut up42wh_journal_reader,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        let dir = dir_of(dir, dir_len)?;
        match Reader::open(dir, segment) {
            Ok(reader) => {
                *out = into_handle(up42wh_journal_reader { reader });
                Ok(())
            }
            Err(e) => Err(io_failed!(&e, errno_out)),
        }
    })
}

/// Writes the next good record to `out`, or returns `UP42WH_RESULT_JOURNAL_END` after the last.
/// Damaged stretches are skipped and counted (`up42wh_journal_reader_stats`).
///
/// # Safety
/// `r` must come from `up42wh_journal_reader_open`; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_reader_next(
    r: *mut up42wh_journal_reader,
    out: *mut up42wh_record,
) -> Code {
    guard(|| {
        let r = try_mut!(r);
        let out = try_mut!(out);
        match r.reader.next_record() {
            Ok(Some(rec)) => {
                *out = record_out(&rec);
                Ok(())
            }
            Ok(None) => Err(Code::JournalEnd),
            Err(_) => Err(Code::JournalIo),
        }
    })
}

/// What the reader has found so far.
///
/// # Safety
/// `r` must come from `up42wh_journal_reader_open`; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_reader_stats(
    r: *const up42wh_journal_reader,
    out: *mut up42wh_journal_stats,
) -> Code {
    guard(|| {
        let r = try_ref!(r);
        let out = try_mut!(out);
        let s = r.reader.stats();
        *out = up42wh_journal_stats {
            segments: s.segments,
            first_segment: s.first_segment,
            last_segment: s.last_segment,
            bytes: s.bytes,
            records: s.records,
            corrupt: s.corrupt,
            torn_bytes: s.torn_bytes,
            max_key: s.max_key,
            max_time: s.max_time,
        };
        Ok(())
    })
}

/// Frees a reader. NULL is a no-op.
///
/// # Safety
/// `r` must be NULL or come from `up42wh_journal_reader_open`, and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_reader_free(r: *mut up42wh_journal_reader) {
    // SAFETY: NULL, or from up42wh_journal_reader_open and not used again: the contract.
    unsafe { release(r) }
}

/// Deletes segment `segment` of the journal in `dir` (retention, once every record in it is gone).
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `errno_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_remove_segment(
    dir: *const u8,
    dir_len: usize,
    segment: u32,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let dir = dir_of(dir, dir_len)?;
        journal::remove_segment(dir, segment).map_err(|e| io_failed!(&e, errno_out))
    })
}

/// The segments of the journal in `dir` and their total size in bytes, from the file sizes (no
/// record is read): `segments`, `first_segment`, `last_segment` and `bytes` of `out`, the rest 0.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `out` must be writable; `errno_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_usage(
    dir: *const u8,
    dir_len: usize,
    out: *mut up42wh_journal_stats,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        let dir = dir_of(dir, dir_len)?;
        match journal::usage(dir) {
            Ok(u) => {
                *out = up42wh_journal_stats {
                    segments: u.segments,
                    first_segment: u.first_segment,
                    last_segment: u.last_segment,
                    bytes: u.bytes,
                    ..up42wh_journal_stats::default()
                };
                Ok(())
            }
            Err(e) => Err(io_failed!(&e, errno_out)),
        }
    })
}

/// Cuts the torn tails of the segments `r` has read (the ends of appends a crash cut short: never
/// records) off their files, and writes the bytes cut to `cut_out` (may be NULL), so that the
/// next recovery does not find them again. Call it after `UP42WH_RESULT_JOURNAL_END`, while
/// nothing appends to the journal.
///
/// # Safety
/// `r` must come from `up42wh_journal_reader_open`; `cut_out` and `errno_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_reader_cut_torn(
    r: *mut up42wh_journal_reader,
    cut_out: *mut u64,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let r = try_mut!(r);
        let cut = r
            .reader
            .cut_torn_tails()
            .map_err(|e| io_failed!(&e, errno_out))?;
        if let Some(c) = opt_mut!(cut_out) {
            *c = cut;
        }
        Ok(())
    })
}

/// A journal's key mark, kept in a file of its own beside the segments (`journal.keys`), so that
/// a journal cut short cannot take it: keys go on above `reserved`, never reusing one a consumer
/// may have read.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_key_mark {
    /// Every key up to this one may have been handed out.
    pub reserved: u64,
    /// Written at a clean stop (`clean` 1): the last key handed out. A journal that then ends
    /// below it has lost the events above its end.
    pub last: u64,
    pub clean: u32,
    /// 1 when the journal has a mark; 0 when it has none yet (the other fields are then 0).
    pub present: u32,
}

/// Reads the key mark of the journal in `dir` into `out`. A damaged mark file is
/// `UP42WH_RESULT_JOURNAL_IO` with EILSEQ.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `out` must be writable; `errno_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_mark_read(
    dir: *const u8,
    dir_len: usize,
    out: *mut up42wh_key_mark,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        let dir = dir_of(dir, dir_len)?;
        match journal::read_key_mark(dir) {
            Ok(m) => {
                let (m, present) = m.map(|m| (m, 1)).unwrap_or_default();
                *out = up42wh_key_mark {
                    reserved: m.reserved,
                    last: m.last,
                    clean: m.clean as u32,
                    present,
                };
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(io_failed!(&io::Error::from_raw_os_error(EILSEQ), errno_out))
            }
            Err(e) => Err(io_failed!(&e, errno_out)),
        }
    })
}

/// "Invalid or incomplete multibyte or wide character": the number Linux gives EILSEQ on every
/// architecture, for a mark file that is not one.
const EILSEQ: i32 = 84;

/// Writes the key mark of the journal in `dir`, durably (a new file synced and renamed over the
/// old one, the directory synced) before it returns.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `mark` must be readable; `errno_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_mark_write(
    dir: *const u8,
    dir_len: usize,
    mark: *const up42wh_key_mark,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let m = try_ref!(mark);
        let dir = dir_of(dir, dir_len)?;
        if m.clean > 1 {
            return Err(Code::InvalidArgument);
        }
        let mark = journal::KeyMark {
            reserved: m.reserved,
            last: m.last,
            clean: m.clean == 1,
        };
        journal::write_key_mark(dir, &mark).map_err(|e| io_failed!(&e, errno_out))
    })
}

/// Whether the user `uid` (group `gid`) may create files in the directory `dir`, by its mode bits
/// and every directory above it being searchable: nginx's master checks this at start for its
/// workers. `UP42WH_RESULT_JOURNAL_IO` with EACCES (or ENOTDIR, ENOENT, ...) in `errno_out` when
/// not.
///
/// # Safety
/// `dir` must point to `dir_len` readable bytes; `errno_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_journal_check_dir(
    dir: *const u8,
    dir_len: usize,
    uid: u32,
    gid: u32,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let dir = dir_of(dir, dir_len)?;
        journal::writable_by(dir, uid, gid).map_err(|e| io_failed!(&e, errno_out))
    })
}
