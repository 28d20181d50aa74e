//! One delivery's path through the C ABI (`up42wh_deliver`, `_commit`, `_cancel`): the claim, the
//! record and the journal's event written by the library from the one verification; duplicates,
//! a claim taken back, refusals, sizes it does not know, and no allocation on the way.

use std::ptr::{null, null_mut};

use up42webhooks::ffi::{
    self, up42wh_claim_outcome as Outcome, up42wh_committed, up42wh_deliver_args, up42wh_delivered,
    up42wh_request, up42wh_slice,
};
use up42webhooks::{sign, Code, Key, SignOptions};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "s3cret-for-the-delivery-path";

fn slice(b: &[u8]) -> up42wh_slice {
    up42wh_slice {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

/// A body UP42 would send (`status` and a line break between tokens, which the journal's line
/// turns into a space), and its signed header block.
fn signed(message_id: &str, status: &str) -> (Vec<u8>, Vec<u8>) {
    let body = format!(
        "{{\"event\":\"job.status\",\"liveMode\":false,\"messageId\":\"{message_id}\",\n\
         \"timestamp\":\"2023-11-14T22:13:20Z\",\"body\":{{\"jobId\":\"j\",\"status\":\"{status}\"}}}}"
    )
    .into_bytes();
    let raw = sign(
        &Key::new(&[SECRET]).unwrap(),
        &body,
        NOW,
        &SignOptions::default(),
    )
    .unwrap()
    .header_block();
    (body, raw)
}

/// The library's handles for one sender and one store, freed at the end.
struct Path {
    ring: *mut ffi::up42wh_keyring,
    opts: ffi::up42wh_message_options,
    index: *mut ffi::up42wh_index,
    journal: *mut ffi::up42wh_journal,
    h: *mut ffi::up42wh_deliverer,
    _dir: crate::common::Scratch,
    dir: std::path::PathBuf,
}

impl Drop for Path {
    fn drop(&mut self) {
        // SAFETY: each made once below and freed once here.
        unsafe {
            ffi::up42wh_deliverer_free(self.h);
            ffi::up42wh_journal_free(self.journal);
            ffi::up42wh_index_free(self.index);
            ffi::up42wh_keyring_free(self.ring);
        }
    }
}

fn path(name: &str) -> Path {
    let scratch = crate::common::Scratch::new(&format!("deliver-{name}"));
    let dir = scratch.path().to_path_buf();
    let d = dir.to_str().unwrap();
    let index_path = format!("{d}/replay.index");
    let (mut ring, mut index, mut journal, mut h) =
        (null_mut(), null_mut(), null_mut(), null_mut());
    let mut opts = std::mem::MaybeUninit::uninit();
    // SAFETY: valid slices and writable outputs.
    unsafe {
        assert_eq!(ffi::up42wh_keyring_new(&mut ring), Code::Ok);
        let kind = ffi::up42wh_key_kind::Hmac as u32;
        let rc = ffi::up42wh_keyring_add(
            ring,
            kind,
            b"k".as_ptr(),
            1,
            SECRET.as_ptr(),
            SECRET.len(),
            null_mut(),
        );
        assert_eq!(rc, Code::Ok);
        let up42 = up42webhooks::Scheme::Up42 as u32;
        assert_eq!(
            ffi::up42wh_message_options_init(opts.as_mut_ptr(), up42),
            Code::Ok
        );
        let rc = ffi::up42wh_index_open(
            index_path.as_ptr(),
            index_path.len(),
            1000,
            3 * 86_400,
            &mut index,
            null_mut(),
            null_mut(),
        );
        assert_eq!(rc, Code::Ok);
        assert_eq!(
            ffi::up42wh_journal_open(d.as_ptr(), d.len(), 1, &mut journal, null_mut()),
            Code::Ok
        );
        assert_eq!(ffi::up42wh_deliverer_new(4096, &mut h), Code::Ok);
    }
    Path {
        ring,
        // SAFETY: filled by up42wh_message_options_init above.
        opts: unsafe { opts.assume_init() },
        index,
        journal,
        h,
        _dir: scratch,
        dir,
    }
}

fn args(p: &Path) -> up42wh_deliver_args {
    up42wh_deliver_args {
        size: std::mem::size_of::<up42wh_deliver_args>(),
        sender: slice(b"up42"),
        verified_by: slice(b"up42"),
        id_prefix: slice(b""),
        index: p.index,
        pending_ttl: 30,
    }
}

fn delivered() -> up42wh_delivered {
    up42wh_delivered {
        size: std::mem::size_of::<up42wh_delivered>(),
        claim: 0,
        delivery: null(),
        envelope: slice(b""),
        record: slice(b""),
    }
}

fn committed() -> up42wh_committed {
    up42wh_committed {
        size: std::mem::size_of::<up42wh_committed>(),
        segment_size: 0,
        kept: false,
    }
}

fn deliver(
    p: &Path,
    body: &[u8],
    raw: &[u8],
    a: &up42wh_deliver_args,
    out: &mut up42wh_delivered,
) -> Code {
    let req = crate::up42_vectors::up42_request(raw, body);
    // SAFETY: live handles, slices valid for the call, writable output.
    unsafe { ffi::up42wh_deliver(p.h, p.ring, &req, NOW, &p.opts, a, out) }
}

fn commit(p: &Path, key: u64, journal: bool, body: &[u8], out: &mut up42wh_committed) -> Code {
    let j = if journal { p.journal } else { null_mut() };
    // SAFETY: live handles, the body valid for its length, writable output.
    unsafe { ffi::up42wh_deliver_commit(p.h, key, j, true, body.as_ptr(), body.len(), NOW, out) }
}

/// An event record: key, id, meta and body.
type Event = (u64, Vec<u8>, Vec<u8>, Vec<u8>);

/// Every event record of the journal in `dir`.
fn journal_events(dir: &std::path::Path) -> Vec<Event> {
    let d = dir.to_str().unwrap();
    let mut reader = null_mut();
    let mut out = Vec::new();
    // SAFETY: a valid path; the record's slices are read before the next call.
    unsafe {
        assert_eq!(
            ffi::up42wh_journal_reader_open(d.as_ptr(), d.len(), 0, &mut reader, null_mut()),
            Code::Ok
        );
        let mut r = std::mem::zeroed::<ffi::up42wh_record>();
        while ffi::up42wh_journal_reader_next(reader, &mut r) == Code::Ok {
            let s = |x: up42wh_slice| std::slice::from_raw_parts(x.ptr, x.len).to_vec();
            if r.kind == ffi::up42wh_record_kind::Event as u32 {
                out.push((r.key, s(r.id), s(r.meta), s(r.body)));
            }
        }
        ffi::up42wh_journal_reader_free(reader);
    }
    out
}

#[test]
fn one_call_verifies_claims_and_writes_the_record_and_the_commit_the_journals_event() {
    let p = path("stored");
    let (body, raw) = signed("m-1", "RUNNING");
    let a = args(&p);
    let mut out = delivered();
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::Ok);
    assert_eq!(out.claim, Outcome::New as u32);
    // SAFETY: the pointers point into the handle until its next call.
    let (d, envelope, record) = unsafe {
        (
            &*out.delivery,
            std::slice::from_raw_parts(out.envelope.ptr, out.envelope.len).to_vec(),
            std::slice::from_raw_parts(out.record.ptr, out.record.len).to_vec(),
        )
    };
    assert_eq!(&d.id[..d.id_len], b"m:m-1");
    assert!(
        envelope.starts_with(br#""sender":"up42","scheme":"up42","key_index":0"#),
        "{}",
        String::from_utf8_lossy(&envelope)
    );
    // The record is what up42wh_delivery_record writes for the same delivery and envelope.
    let mut buf = vec![0u8; 8192];
    let mut b = ffi::up42wh_buffer {
        ptr: buf.as_mut_ptr(),
        cap: buf.len(),
        len: 0,
    };
    // SAFETY: the delivery and envelope as the handle holds them; a writable buffer.
    let rc = unsafe {
        ffi::up42wh_delivery_record(
            d,
            envelope.as_ptr(),
            envelope.len(),
            body.as_ptr(),
            body.len(),
            NOW,
            &mut b,
        )
    };
    assert_eq!(rc, Code::Ok);
    assert_eq!(record, buf[..b.len].to_vec());
    assert!(record.starts_with(format!("E{NOW}\tjob.status\tRUNNING\tfalse\t").as_bytes()));
    // Read back by the library's one reader of the format.
    let mut f = ffi::up42wh_record_fields {
        size: std::mem::size_of::<ffi::up42wh_record_fields>(),
        ..Default::default()
    };
    // SAFETY: the record's bytes and a writable struct.
    assert_eq!(
        unsafe { ffi::up42wh_record_read(record.as_ptr(), record.len(), &mut f) },
        Code::Ok
    );
    let at = |s: ffi::up42wh_span| &record[s.at as usize..(s.at + s.len) as usize];
    assert_eq!(
        (f.time, f.pending, f.compressed, f.has_envelope),
        (NOW, false, false, true)
    );
    assert_eq!(
        (at(f.event), at(f.status), at(f.live)),
        (&b"job.status"[..], &b"RUNNING"[..], &b"false"[..])
    );
    assert_eq!(at(f.envelope), &envelope[..]);
    assert_eq!(at(f.line).len(), body.len());
    // SAFETY: as above; a record cut before its line, and a struct of another size.
    unsafe {
        assert_eq!(
            ffi::up42wh_record_read(record.as_ptr(), 12, &mut f),
            Code::InvalidArgument
        );
        f.size = 8;
        assert_eq!(
            ffi::up42wh_record_read(record.as_ptr(), record.len(), &mut f),
            Code::StructSize
        );
    }

    let mut c = committed();
    assert_eq!(commit(&p, 7, true, &body, &mut c), Code::Ok);
    assert!(c.kept && c.segment_size > 0);
    let events = journal_events(&p.dir);
    assert_eq!(events.len(), 1);
    let (key, id, meta, line) = &events[0];
    assert_eq!((*key, &id[..]), (7, &b"m:m-1"[..]));
    let mut want_meta = b"job.status\tRUNNING\tfalse\t".to_vec();
    want_meta.extend_from_slice(&envelope);
    assert_eq!(meta, &want_meta);
    // The body on one line: its line break between tokens became a space.
    assert_eq!(line.len(), body.len());
    assert!(!line.contains(&b'\n') && body.contains(&b'\n'));

    // The same delivery again is a duplicate; the same id with another body a conflict: neither
    // writes a record, neither holds a claim.
    let mut again = delivered();
    assert_eq!(deliver(&p, &body, &raw, &a, &mut again), Code::Ok);
    assert_eq!(
        (again.claim, again.record.len),
        (Outcome::Duplicate as u32, 0)
    );
    assert_eq!(
        commit(&p, 8, true, &body, &mut committed()),
        Code::InvalidArgument
    );
    let (other, other_raw) = signed("m-1", "FAILED");
    assert_eq!(deliver(&p, &other, &other_raw, &a, &mut again), Code::Ok);
    assert_eq!(again.claim, Outcome::Conflict as u32);
    assert_eq!(journal_events(&p.dir).len(), 1);
}

#[test]
fn a_cancel_gives_the_claim_up_and_after_a_commit_takes_the_id_back() {
    let p = path("cancel");
    let a = args(&p);
    let (body, raw) = signed("m-2", "RUNNING");
    let mut out = delivered();
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::Ok);
    assert_eq!(out.claim, Outcome::New as u32);
    // While it is claimed, the same delivery is in flight; a cancel lets the retry through.
    let mut other = delivered();
    // A second worker's handle, on the same index.
    let second = path("cancel-second-handle");
    let a2 = up42wh_deliver_args {
        index: p.index,
        ..args(&second)
    };
    assert_eq!(deliver(&second, &body, &raw, &a2, &mut other), Code::Ok);
    assert_eq!(other.claim, Outcome::InFlight as u32);
    // SAFETY: a live handle.
    assert_eq!(unsafe { ffi::up42wh_deliver_cancel(p.h) }, Code::Ok);
    assert_eq!(deliver(&second, &body, &raw, &a2, &mut other), Code::Ok);
    assert_eq!(other.claim, Outcome::New as u32);
    // Stored without a journal, then taken back (its record could not be kept): a retry is new.
    let mut c = committed();
    assert_eq!(commit(&second, 1, false, &body, &mut c), Code::Ok);
    assert!(c.kept && c.segment_size == 0);
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::Ok);
    assert_eq!(out.claim, Outcome::Duplicate as u32);
    // SAFETY: a live handle.
    assert_eq!(unsafe { ffi::up42wh_deliver_cancel(second.h) }, Code::Ok);
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::Ok);
    assert_eq!(out.claim, Outcome::New as u32);
    // The next deliver on a handle gives up the claim it left (a caller that forgot).
    let (other_body, other_raw) = signed("m-3", "RUNNING");
    assert_eq!(deliver(&p, &other_body, &other_raw, &a, &mut out), Code::Ok);
    assert_eq!(deliver(&second, &body, &raw, &a2, &mut other), Code::Ok);
    assert_eq!(other.claim, Outcome::New as u32);
}

#[test]
fn refusals_sizes_it_does_not_know_and_null_are_codes() {
    let p = path("refusals");
    let (body, raw) = signed("m-4", "RUNNING");
    let mut a = args(&p);
    let mut out = delivered();
    // A body changed after signing: refused, no claim taken (the right one is new after it).
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        deliver(&p, &tampered, &raw, &a, &mut out),
        Code::DigestMismatch
    );
    assert_eq!(
        commit(&p, 1, false, &body, &mut committed()),
        Code::InvalidArgument
    );
    // A struct of another size (a caller built against another header) is refused, not read.
    a.size -= 8;
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::StructSize);
    a.size += 8;
    out.size += 8;
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::StructSize);
    out.size -= 8;
    let mut c = committed();
    c.size = 0;
    assert_eq!(commit(&p, 1, false, &body, &mut c), Code::StructSize);
    // Without an index: verified and read, nothing claimed, no record.
    let no_index = up42wh_deliver_args { index: null(), ..a };
    assert_eq!(deliver(&p, &body, &raw, &no_index, &mut out), Code::Ok);
    assert_eq!((out.claim, out.record.len), (0, 0));
    assert_eq!(deliver(&p, &body, &raw, &a, &mut out), Code::Ok);
    assert_eq!(out.claim, Outcome::New as u32);
    // The commit checks the body is the one delivered.
    assert_eq!(
        commit(&p, 1, false, &body[1..], &mut committed()),
        Code::InvalidArgument
    );
    // SAFETY: NULL handles and outputs are refused before anything is read.
    unsafe {
        let req = std::mem::zeroed::<up42wh_request>();
        assert_eq!(
            ffi::up42wh_deliver(null_mut(), p.ring, &req, NOW, &p.opts, &a, &mut out),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_deliver(p.h, p.ring, &req, NOW, &p.opts, null(), &mut out),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_deliver_commit(
                null_mut(),
                1,
                null(),
                false,
                null(),
                0,
                NOW,
                &mut committed()
            ),
            Code::NullArgument
        );
        assert_eq!(ffi::up42wh_deliver_cancel(null_mut()), Code::NullArgument);
        let mut h = null_mut();
        assert_eq!(
            ffi::up42wh_deliverer_new(usize::MAX, &mut h),
            Code::InvalidArgument
        );
        ffi::up42wh_deliverer_free(null_mut());
    }
}

#[test]
fn a_delivery_stored_through_the_two_calls_does_not_allocate() {
    use crate::no_alloc::{allocations, counting};
    let p = path("no-alloc");
    let a = args(&p);
    // The journal's writer grows its frame buffer for the largest record it has seen: one first.
    let (warm, warm_raw) = signed("warm", "RUNNING");
    let mut out = delivered();
    assert_eq!(deliver(&p, &warm, &warm_raw, &a, &mut out), Code::Ok);
    assert_eq!(commit(&p, 1, true, &warm, &mut committed()), Code::Ok);
    let (body, raw) = signed("m-5", "RUNNING");
    let mut c = committed();
    allocations(true);
    counting(true);
    let verified = deliver(&p, &body, &raw, &a, &mut out);
    let stored = commit(&p, 2, true, &body, &mut c);
    let again = deliver(&p, &body, &raw, &a, &mut out);
    counting(false);
    assert_eq!((verified, stored, again), (Code::Ok, Code::Ok, Code::Ok));
    assert_eq!(out.claim, Outcome::Duplicate as u32);
    assert_eq!(allocations(true), 0, "the delivery's two calls allocated");
}
