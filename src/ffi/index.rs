//! The C ABI of the replay index (`crate::index`): every delivery id stored within the replay
//! horizon, in a file every process maps shared. Same conventions as `ffi`: panic boundary,
//! pointer + length, outputs only on success.
#![allow(non_camel_case_types)]

use super::journal::{dir_of, errno, io_failed};
use super::{guard, into_handle, opt_mut, release, try_bytes, try_mut, try_ref};
use crate::code::Code;
use crate::index::{Claim, Index, Slot};
/// How `up42wh_index_open` found the file and what `up42wh_index_insert` did with an id: the
/// core's enums, exported as they are.
pub use crate::index::{Inserted as up42wh_insert_outcome, Opened as up42wh_index_opened};

/// An opaque replay index. Every call only reads the handle: share it between threads, and
/// between processes that inherit it (open it before forking).
pub struct up42wh_index {
    pub(super) index: Index,
}

/// What `up42wh_index_claim` found, for `up42wh_claim.outcome`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum up42wh_claim_outcome {
    /// The id is new: the claim is the caller's until `up42wh_index_commit` or
    /// `up42wh_index_cancel`.
    New = 1,
    /// The id is stored with the same body.
    Duplicate = 2,
    /// The id is stored with another body.
    Conflict = 3,
    /// Another delivery with this id is being stored right now.
    InFlight = 4,
    /// The current window holds as many ids as it may: refuse the delivery for now.
    Full = 5,
}

/// A claim, as `up42wh_index_claim` fills it; give it back to `up42wh_index_commit` or
/// `up42wh_index_cancel` unchanged.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_claim {
    /// One of `up42wh_claim_outcome`.
    pub outcome: u32,
    pub table: u32,
    pub slot: u64,
    pub deadline: u64,
}

/// What an index holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct up42wh_index_stats {
    /// Ids remembered (claimed, stored or cancelled) in the windows of the horizon.
    pub ids: u64,
    /// The ids one window is sized for, and the ids the index is sized for over the horizon
    /// (`dedup_capacity`).
    pub per_window: u64,
    pub capacity: u64,
    /// When the oldest remembered id was stored, unix seconds (0: none).
    pub oldest: u64,
    /// The length of a window, seconds.
    pub window_secs: u64,
    /// The file's size.
    pub bytes: u64,
}

/// What a claim found, as the C ABI numbers it.
pub(super) fn outcome_of(c: &Claim) -> up42wh_claim_outcome {
    match c {
        Claim::New(_) => up42wh_claim_outcome::New,
        Claim::Duplicate => up42wh_claim_outcome::Duplicate,
        Claim::Conflict => up42wh_claim_outcome::Conflict,
        Claim::InFlight => up42wh_claim_outcome::InFlight,
        Claim::Full => up42wh_claim_outcome::Full,
    }
}

pub(super) fn seconds(t: i64) -> Result<u64, Code> {
    u64::try_from(t).map_err(|_| Code::InvalidArgument)
}

fn body_of<'a>(body_sha256: *const u8) -> Result<&'a [u8; 32], Code> {
    try_bytes!(body_sha256, 32)
        .try_into()
        .map_err(|_| Code::InvalidArgument)
}

/// Opens the index file at `path` for `capacity` ids (1 to 2^32) over a horizon of `horizon`
/// seconds, or makes it (mode 0600, written beside it and renamed into place); a file that is
/// damaged, of another version or of other settings is replaced by an empty one. Writes how it
/// was found to `*opened` (`up42wh_index_opened`) when that is not NULL.
/// `UP42WH_RESULT_JOURNAL_IO` when the file cannot be made or mapped, with the system's reason in
/// `*errno_out` when that is not NULL.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `out` must be writable; `opened` and
/// `errno_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_open(
    path: *const u8,
    path_len: usize,
    capacity: u64,
    horizon: u64,
    out: *mut *mut up42wh_index,
    opened: *mut u32,
    errno_out: *mut i32,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        let path = dir_of(path, path_len)?;
        let (index, how) = match Index::open(path, capacity, horizon) {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(Code::InvalidArgument)
            }
            Err(e) => return Err(io_failed!(&e, errno_out)),
        };
        if let Some(o) = opt_mut!(opened) {
            *o = how as u32;
        }
        *out = into_handle(up42wh_index { index });
        Ok(())
    })
}

/// Releases an index (its mapping; the file stays). NULL is a no-op.
///
/// # Safety
/// `index` must be NULL or from `up42wh_index_open`, not freed before and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_free(index: *mut up42wh_index) {
    // SAFETY: NULL, or from up42wh_index_open and not used again: the contract.
    unsafe { release(index) }
}

/// Claims delivery id `id` for a body whose SHA-256 is the 32 bytes at `body_sha256`, at `now`
/// (unix seconds): fills `out` with `NEW` (the caller stores the event, then commits or cancels),
/// `DUPLICATE`, `CONFLICT`, `IN_FLIGHT` or `FULL`. A claim not
/// committed by `now + pending_ttl` may be taken over by a retry. Does not allocate.
///
/// # Safety
/// `index` valid; `id` valid for `id_len` bytes; `body_sha256` for 32; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_claim(
    index: *const up42wh_index,
    id: *const u8,
    id_len: usize,
    body_sha256: *const u8,
    now: i64,
    pending_ttl: i64,
    out: *mut up42wh_claim,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        let out = try_mut!(out);
        let id = try_bytes!(id, id_len);
        let body = body_of(body_sha256)?;
        let c = index.claim(id, body, seconds(now)?, seconds(pending_ttl)?);
        let outcome = outcome_of(&c) as u32;
        *out = match c {
            Claim::New(slot) => up42wh_claim {
                outcome,
                table: slot.table,
                slot: slot.index,
                deadline: slot.deadline,
            },
            _ => up42wh_claim {
                outcome,
                ..up42wh_claim::default()
            },
        };
        Ok(())
    })
}

fn slot_of(claim: &up42wh_claim) -> Result<Slot, Code> {
    if claim.outcome != up42wh_claim_outcome::New as u32 {
        return Err(Code::InvalidArgument);
    }
    Ok(Slot {
        table: claim.table,
        index: claim.slot,
        deadline: claim.deadline,
    })
}

/// Marks a `NEW` claim stored at `now`. `*kept` (when not NULL) is false
/// when the claim was no longer the caller's: it had passed its deadline and a retry took it over.
///
/// # Safety
/// `index` valid; `claim` a claim `up42wh_index_claim` filled; `kept` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_commit(
    index: *const up42wh_index,
    claim: *const up42wh_claim,
    now: i64,
    kept: *mut bool,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        let slot = slot_of(try_ref!(claim))?;
        let ok = index.commit(&slot, seconds(now)?);
        if let Some(k) = opt_mut!(kept) {
            *k = ok;
        }
        Ok(())
    })
}

/// Gives a `NEW` claim up (its delivery was not stored): a retry may claim the id again.
///
/// # Safety
/// `index` valid; `claim` a claim `up42wh_index_claim` filled.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_cancel(
    index: *const up42wh_index,
    claim: *const up42wh_claim,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        index.cancel(&slot_of(try_ref!(claim))?);
        Ok(())
    })
}

/// Remembers an id stored at `time`, as a rebuild does from the journal; writes what became of it
/// (`up42wh_insert_outcome`) to `*outcome` when that is not NULL.
///
/// # Safety
/// `index` valid; `id` valid for `id_len` bytes; `body_sha256` for 32; `outcome` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_insert(
    index: *const up42wh_index,
    id: *const u8,
    id_len: usize,
    body_sha256: *const u8,
    time: i64,
    now: i64,
    outcome: *mut u32,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        let id = try_bytes!(id, id_len);
        let body = body_of(body_sha256)?;
        let what = index.insert(id, body, seconds(time)?, seconds(now)?);
        if let Some(o) = opt_mut!(outcome) {
            *o = what as u32;
        }
        Ok(())
    })
}

/// What the index holds at `now`.
///
/// # Safety
/// `index` valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_usage(
    index: *const up42wh_index,
    now: i64,
    out: *mut up42wh_index_stats,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        let out = try_mut!(out);
        let (ids, oldest) = index.held(seconds(now)?);
        let (per_window, window_secs) = index.window();
        *out = up42wh_index_stats {
            ids,
            per_window,
            capacity: per_window * (crate::index::TABLES - 1),
            oldest,
            window_secs,
            bytes: index.bytes(),
        };
        Ok(())
    })
}

/// The ids the window of `now` holds (`*held`) and the most it takes (`*limit`: half as many
/// again as it is sized for) before a new id is refused. A function of its own rather than two
/// more fields of `up42wh_index_stats`, whose size callers built against 0.2.0 have.
///
/// # Safety
/// `index` valid; `held` and `limit` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_index_window(
    index: *const up42wh_index,
    now: i64,
    held: *mut u64,
    limit: *mut u64,
) -> Code {
    guard(|| {
        let index = &try_ref!(index).index;
        let (held, limit) = (try_mut!(held), try_mut!(limit));
        *held = index.window_ids(seconds(now)?);
        *limit = index.limit();
        Ok(())
    })
}
