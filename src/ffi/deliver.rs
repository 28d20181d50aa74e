//! The C ABI of the receiver's path for one delivery, in two calls around the caller's store:
//! `up42wh_deliver` verifies a request, reads what the store keeps, writes the envelope, claims
//! the id in the replay index and, for a new id, writes the store's record; the caller puts the
//! record in its store under a key; `up42wh_deliver_commit` appends the event to the journal
//! (synced when asked) and marks the id stored. `up42wh_deliver_cancel` gives a claim up. The
//! delivery stays in a handle of the caller's (one per thread, or per nginx worker) between them,
//! and the journal's framing of an event is the library's alone. Same conventions as `ffi`.
#![allow(non_camel_case_types)]

use super::index::{outcome_of, seconds, up42wh_index};
use super::journal::up42wh_journal;
use super::message::{up42wh_delivery, up42wh_keyring, up42wh_message_options, up42wh_request};
use super::{bytes, guard, into_handle, release, sized, try_bytes, try_mut, try_ref, up42wh_slice};
use crate::buf::Out;
use crate::code::Code;
use crate::index::{Claim, Slot};
use crate::journal::{Kind, Record};
use crate::{envelope, record};

/// The journal's meta of an event: event, status, live mode and envelope, joined by tabs.
const META_MAX: usize = 128 + 1 + 128 + 1 + 5 + 1 + envelope::MAX_LEN;

/// An opaque handle holding one delivery between `up42wh_deliver` and `up42wh_deliver_commit`
/// (or `up42wh_deliver_cancel`): its fields, envelope, record and claim. One per thread; free it
/// with `up42wh_deliverer_free`.
pub struct up42wh_deliverer {
    delivery: up42wh_delivery,
    envelope: [u8; envelope::MAX_LEN],
    meta: [u8; META_MAX],
    meta_len: usize,
    record: Vec<u8>,
    record_len: usize,
    /// The body on one line, for the journal, when it has tabs or line breaks.
    line: Vec<u8>,
    body_len: usize,
    time: i64,
    /// The claim `up42wh_deliver` took, and the index it is in.
    claim: Held,
}

/// A handle's claim: taken by `up42wh_deliver`, then committed (with its time) or given up.
#[derive(Clone, Copy)]
enum Held {
    None,
    Pending(*const up42wh_index, Slot),
    Stored(*const up42wh_index, Slot, u64),
}

/// What `up42wh_deliver` stores a delivery with. Set `size` to `sizeof(up42wh_deliver_args)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_deliver_args {
    /// `sizeof(up42wh_deliver_args)` as the caller's header declares it.
    pub size: usize,
    /// The sender's name and how it was verified, as the envelope says them (at most 64 bytes
    /// each).
    pub sender: up42wh_slice,
    pub verified_by: up42wh_slice,
    /// What the dedup id starts with (as `up42wh_receive_message`'s `id_prefix`).
    pub id_prefix: up42wh_slice,
    /// The replay index that claims the id; NULL when the caller deduplicates elsewhere (then no
    /// claim is taken and no record written).
    pub index: *const up42wh_index,
    /// Seconds a claim stays the caller's before a retry may take it over.
    pub pending_ttl: i64,
}

/// What `up42wh_deliver` found. The pointers point into the handle and stay valid until the next
/// call on it. Set `size` to `sizeof(up42wh_delivered)` before the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_delivered {
    /// `sizeof(up42wh_delivered)` as the caller's header declares it.
    pub size: usize,
    /// One of `up42wh_claim_outcome`; 0 without an index. Only `NEW` has a record and a claim to
    /// commit or cancel.
    pub claim: u32,
    /// The delivery's fields, as `up42wh_receive_message` fills them.
    pub delivery: *const up42wh_delivery,
    /// Its envelope (as `up42wh_delivery_envelope` writes it).
    pub envelope: up42wh_slice,
    /// The store's record (as `up42wh_delivery_record` writes it) when `claim` is `NEW`.
    pub record: up42wh_slice,
}

/// What `up42wh_deliver_commit` did. Set `size` to `sizeof(up42wh_committed)` before the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct up42wh_committed {
    /// `sizeof(up42wh_committed)` as the caller's header declares it.
    pub size: usize,
    /// The journal segment's size after the event's record (0 without a journal).
    pub segment_size: u64,
    /// False when the claim had passed its deadline and a retry took it over: that retry may be
    /// stored too.
    pub kept: bool,
}

/// Makes a handle for bodies of up to `max_body` bytes (larger ones are taken too, at the cost
/// of growing its buffers then). On success `*out` holds it.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_deliverer_new(
    max_body: usize,
    out: *mut *mut up42wh_deliverer,
) -> Code {
    guard(|| {
        let out = try_mut!(out);
        if max_body > 1 << 30 {
            return Err(Code::InvalidArgument);
        }
        *out = into_handle(up42wh_deliverer {
            delivery: up42wh_delivery::default(),
            envelope: [0; envelope::MAX_LEN],
            meta: [0; META_MAX],
            meta_len: 0,
            record: vec![0; record::max_len(META_MAX, max_body)],
            record_len: 0,
            line: Vec::with_capacity(max_body),
            body_len: 0,
            time: 0,
            claim: Held::None,
        });
        Ok(())
    })
}

/// Releases a handle. NULL is a no-op. A claim it still holds is left to pass its deadline (the
/// index may be closed by now): call `up42wh_deliver_cancel` first to give it up at once.
///
/// # Safety
/// `h` must be NULL or from `up42wh_deliverer_new`, not freed before and no longer in use.
#[no_mangle]
pub unsafe extern "C" fn up42wh_deliverer_free(h: *mut up42wh_deliverer) {
    // SAFETY: NULL, or from up42wh_deliverer_new and not used again: the contract.
    unsafe { release(h) }
}

/// Gives up the claim `h` holds, if one is pending, and with `stored_too` takes back one it
/// committed.
///
/// # Safety
/// The index of the claim must still be open.
unsafe fn give_up(h: &mut up42wh_deliverer, stored_too: bool) {
    let held = core::mem::replace(&mut h.claim, Held::None);
    // SAFETY: the index a claim was taken in stays open until the next call on the handle: the
    // contract of up42wh_deliver.
    match held {
        Held::Pending(index, slot) => {
            if let Some(index) = unsafe { index.as_ref() } {
                index.index.cancel(&slot);
            }
        }
        Held::Stored(index, slot, at) if stored_too => {
            if let Some(index) = unsafe { index.as_ref() } {
                index.index.uncommit(&slot, at);
            }
        }
        _ => {}
    }
}

/// Verifies and reads one delivery as `up42wh_receive_message` does (same refusals), writes its
/// envelope, and with `args->index` claims its id there: a `NEW` claim is the caller's until
/// `up42wh_deliver_commit` or `up42wh_deliver_cancel`, and the store's record is written for it.
/// A claim left from a previous call is given up first. `STRUCT_SIZE` when `args->size` or
/// `out->size` is not this header's. Does not allocate (but for a body larger than the handle was
/// made for).
///
/// # Safety
/// `h` from `up42wh_deliverer_new`; `ring`, `req`, `opts`, `args` valid with every slice valid for
/// its length; `args->index` NULL or open until the claim is committed or cancelled; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_deliver(
    h: *mut up42wh_deliverer,
    ring: *const up42wh_keyring,
    req: *const up42wh_request,
    now: i64,
    opts: *const up42wh_message_options,
    args: *const up42wh_deliver_args,
    out: *mut up42wh_delivered,
) -> Code {
    guard(|| {
        let h = try_mut!(h);
        let ring = &try_ref!(ring).ring;
        let args = try_ref!(args);
        let out = try_mut!(out);
        sized::<up42wh_deliver_args>(args.size)?;
        sized::<up42wh_delivered>(out.size)?;
        // SAFETY: a claim's index is open until the next call: the contract.
        unsafe { give_up(h, false) };
        // SAFETY: the slices are valid for the call: the contract.
        let slice = |s: up42wh_slice| unsafe { bytes(s.ptr, s.len) };
        let (sender, verified_by, prefix) = (
            slice(args.sender)?,
            slice(args.verified_by)?,
            slice(args.id_prefix)?,
        );
        // SAFETY: `req` and `opts` are as up42wh_receive_message's contract says.
        let message = unsafe { super::message::Message::from_raw(req, opts) }?;
        message.receive(ring, now, prefix, &mut h.delivery)?;
        let d = &h.delivery;
        let envelope_len = d.write_envelope(sender, verified_by, &mut h.envelope)?;
        // The journal's meta and the record's: event, status, live, envelope, joined by tabs.
        let [event, status, live] = d.meta()?;
        let mut meta = Out::new(&mut h.meta);
        meta.put(event)?;
        for f in [status, live, &h.envelope[..envelope_len]] {
            meta.put(b"\t")?;
            meta.put(f)?;
        }
        h.meta_len = meta.n;
        h.time = now;
        h.body_len = message.body.len();
        h.record_len = 0;
        let mut claim = 0;
        // SAFETY: NULL or open for the call (and until the claim ends): the contract.
        if let Some(index) = unsafe { args.index.as_ref() } {
            let found = index.index.claim(
                d.dedup_id()?,
                &d.body_sha256,
                seconds(now)?,
                seconds(args.pending_ttl)?,
            );
            claim = outcome_of(&found) as u32;
            if let Claim::New(slot) = found {
                h.claim = Held::Pending(args.index, slot);
                let need = record::max_len(META_MAX, message.body.len());
                if h.record.len() < need {
                    h.record.resize(need, 0);
                }
                let written = record::write(
                    now,
                    &[&h.meta[..h.meta_len]],
                    true,
                    message.body,
                    d.line_breaks,
                    &mut h.record,
                );
                match written {
                    Ok(len) => h.record_len = len,
                    Err(e) => {
                        // SAFETY: the claim was just taken in `args.index`, open for the call.
                        unsafe { give_up(h, false) };
                        return Err(e);
                    }
                }
            }
        }
        *out = up42wh_delivered {
            size: out.size,
            claim,
            delivery: &h.delivery,
            envelope: up42wh_slice {
                ptr: h.envelope.as_ptr(),
                len: envelope_len,
            },
            record: up42wh_slice {
                ptr: h.record.as_ptr(),
                len: h.record_len,
            },
        };
        Ok(())
    })
}

/// Stores the delivery `h` holds under `key`: with `journal` (NULL: none) appends its event
/// record (one `write(2)`), synced (`fdatasync`) when `sync`, then marks its id stored in the
/// index it was claimed in. `body` must be the body given to `up42wh_deliver`. On
/// `JOURNAL_IO` (`up42wh_journal_errno` says why) the claim is still held, for the caller to
/// cancel; with `sync` the record may be in the file all the same (written, then the sync
/// failed). `INVALID_ARGUMENT` when `h` holds no claim. Does not allocate (but for a body with
/// line breaks larger than the handle was made for).
///
/// # Safety
/// `h` from `up42wh_deliverer_new`; `journal` NULL or from `up42wh_journal_open`; `body` valid
/// for `body_len` bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn up42wh_deliver_commit(
    h: *mut up42wh_deliverer,
    key: u64,
    journal: *const up42wh_journal,
    sync: bool,
    body: *const u8,
    body_len: usize,
    now: i64,
    out: *mut up42wh_committed,
) -> Code {
    guard(|| {
        let h = try_mut!(h);
        let out = try_mut!(out);
        sized::<up42wh_committed>(out.size)?;
        let body = try_bytes!(body, body_len);
        let Held::Pending(index, slot) = h.claim else {
            return Err(Code::InvalidArgument);
        };
        if body.len() != h.body_len {
            return Err(Code::InvalidArgument);
        }
        let mut segment_size = 0;
        // SAFETY: NULL or a journal from up42wh_journal_open: the contract.
        if let Some(j) = unsafe { journal.as_ref() } {
            let d = &h.delivery;
            let line = if d.line_breaks {
                h.line.clear();
                h.line.extend_from_slice(body);
                record::one_line(&mut h.line);
                &h.line[..]
            } else {
                body
            };
            let r = Record {
                kind: Kind::Event,
                reason: 0,
                key,
                time: h.time,
                digest: d.body_sha256,
                id: d.dedup_id()?,
                meta: &h.meta[..h.meta_len],
                body: line,
            };
            segment_size = j.append(&r)?;
            if sync {
                j.sync()?;
            }
        }
        // SAFETY: the claim's index is open until the next call: the contract of up42wh_deliver.
        let open = unsafe { index.as_ref() }.ok_or(Code::NullArgument)?;
        let now = seconds(now)?;
        let kept = open.index.commit(&slot, now);
        h.claim = if kept {
            Held::Stored(index, slot, now)
        } else {
            Held::None
        };
        *out = up42wh_committed {
            size: out.size,
            segment_size,
            kept,
        };
        Ok(())
    })
}

/// Gives up the claim `h` holds (its delivery was not stored): a retry may claim the id again.
/// After `up42wh_deliver_commit`, takes the stored id back (the caller could not keep the event
/// after all). Nothing to give up is not an error.
///
/// # Safety
/// `h` from `up42wh_deliverer_new`, the index of its claim still open.
#[no_mangle]
pub unsafe extern "C" fn up42wh_deliver_cancel(h: *mut up42wh_deliverer) -> Code {
    guard(|| {
        let h = try_mut!(h);
        // SAFETY: its claim's index is open: the contract.
        unsafe { give_up(h, true) };
        Ok(())
    })
}
