//! The replay index through the C ABI: claims, commits, duplicates and conflicts, the arguments it
//! refuses, and a file it cannot make.

use std::ptr::{null, null_mut};

use up42webhooks::ffi::{self, up42wh_claim, up42wh_claim_outcome as Outcome, up42wh_index_stats};
use up42webhooks::Code;

const NOW: i64 = 1_700_000_000;
const DAY: u64 = 86_400;

struct Index(*mut ffi::up42wh_index);

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: made by up42wh_index_open, freed once.
        unsafe { ffi::up42wh_index_free(self.0) };
    }
}

fn open(path: &std::path::Path, capacity: u64) -> (Index, u32) {
    let p = path.to_str().unwrap();
    let (mut out, mut opened) = (null_mut(), 0u32);
    // SAFETY: a valid path slice and writable outputs.
    let rc = unsafe {
        ffi::up42wh_index_open(
            p.as_ptr(),
            p.len(),
            capacity,
            3 * DAY,
            &mut out,
            &mut opened,
            null_mut(),
        )
    };
    assert_eq!(rc, Code::Ok);
    (Index(out), opened)
}

fn claim(index: &Index, id: &str, body: u8, now: i64) -> up42wh_claim {
    let mut c = up42wh_claim::default();
    let digest = [body; 32];
    // SAFETY: a live index, slices valid for their lengths, a writable claim.
    let rc = unsafe {
        ffi::up42wh_index_claim(
            index.0,
            id.as_ptr(),
            id.len(),
            digest.as_ptr(),
            now,
            30,
            &mut c,
        )
    };
    assert_eq!(rc, Code::Ok);
    c
}

/// An index file's path in a directory of the test's own (removed with the guard).
fn scratch(name: &str) -> (crate::common::Scratch, std::path::PathBuf) {
    let dir = crate::common::Scratch::new(&format!("abi-index-{name}"));
    let p = dir.join("replay.index");
    (dir, p)
}

#[test]
fn claims_commits_duplicates_and_conflicts() {
    let (_dir, path) = scratch("claims");
    let (index, opened) = open(&path, 1000);
    assert_eq!(opened, ffi::up42wh_index_opened::Created as u32);
    let c = claim(&index, "m:1", 1, NOW);
    assert_eq!(c.outcome, Outcome::New as u32);
    assert_eq!(
        claim(&index, "m:1", 1, NOW).outcome,
        Outcome::InFlight as u32
    );
    let mut kept = false;
    // SAFETY: a live index and the claim it filled.
    assert_eq!(
        unsafe { ffi::up42wh_index_commit(index.0, &c, NOW, &mut kept) },
        Code::Ok
    );
    assert!(kept);
    // Two days later: a duplicate, or a conflict with another body.
    let later = NOW + 2 * DAY as i64;
    assert_eq!(
        claim(&index, "m:1", 1, later).outcome,
        Outcome::Duplicate as u32
    );
    assert_eq!(
        claim(&index, "m:1", 2, later).outcome,
        Outcome::Conflict as u32
    );
    // A cancelled claim is free again (in the same slot).
    let c = claim(&index, "m:2", 1, NOW);
    // SAFETY: as above.
    assert_eq!(unsafe { ffi::up42wh_index_cancel(index.0, &c) }, Code::Ok);
    assert_eq!(claim(&index, "m:2", 1, NOW).outcome, Outcome::New as u32);
    let mut s = up42wh_index_stats::default();
    // SAFETY: as above, a writable stats struct.
    assert_eq!(
        unsafe { ffi::up42wh_index_usage(index.0, NOW, &mut s) },
        Code::Ok
    );
    // m:1 and m:2 (its cancelled claim's slot claimed again, not a second one).
    assert_eq!((s.ids, s.oldest, s.window_secs), (2, NOW as u64, DAY));
    assert_eq!(s.capacity, 1002, "three windows of 334");
    // Opened again (as after a restart): the same ids.
    drop(index);
    let (index, opened) = open(&path, 1000);
    assert_eq!(opened, ffi::up42wh_index_opened::Existing as u32);
    assert_eq!(
        claim(&index, "m:1", 1, later).outcome,
        Outcome::Duplicate as u32
    );
}

#[test]
fn bad_arguments_and_an_unusable_file_are_refused() {
    let (_dir, path) = scratch("args");
    let (index, _) = open(&path, 10);
    let body = [0u8; 32];
    let mut c = up42wh_claim::default();
    // SAFETY: every call below is given NULL or valid pointers, as each case says.
    unsafe {
        assert_eq!(
            ffi::up42wh_index_claim(null(), b"m:1".as_ptr(), 3, body.as_ptr(), NOW, 30, &mut c),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_index_claim(index.0, b"m:1".as_ptr(), 3, null(), NOW, 30, &mut c),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_index_claim(index.0, b"m:1".as_ptr(), 3, body.as_ptr(), -1, 30, &mut c),
            Code::InvalidArgument
        );
        // Committing what was not a new claim.
        let dup = up42wh_claim {
            outcome: Outcome::Duplicate as u32,
            ..up42wh_claim::default()
        };
        assert_eq!(
            ffi::up42wh_index_commit(index.0, &dup, NOW, null_mut()),
            Code::InvalidArgument
        );
        assert_eq!(
            ffi::up42wh_index_cancel(index.0, null()),
            Code::NullArgument
        );
        let mut out = null_mut();
        let p = path.to_str().unwrap();
        assert_eq!(
            ffi::up42wh_index_open(
                p.as_ptr(),
                p.len(),
                0,
                DAY,
                &mut out,
                null_mut(),
                null_mut()
            ),
            Code::InvalidArgument,
            "no capacity"
        );
        let missing = "/nonexistent/dir/replay.index";
        let mut errno = 0;
        assert_eq!(
            ffi::up42wh_index_open(
                missing.as_ptr(),
                missing.len(),
                10,
                DAY,
                &mut out,
                null_mut(),
                &mut errno
            ),
            Code::JournalIo
        );
        assert_eq!(errno, 2, "ENOENT");
        ffi::up42wh_index_free(null_mut());
    }
}

#[test]
fn a_rebuild_says_what_became_of_each_id() {
    let (_dir, path) = scratch("insert");
    // Capacity 3: one id a window.
    let (index, _) = open(&path, 3);
    let insert = |id: &str, time: i64| {
        let mut outcome = 0u32;
        // SAFETY: a valid index, id and 32-byte digest; a writable outcome.
        let rc = unsafe {
            ffi::up42wh_index_insert(
                index.0,
                id.as_ptr(),
                id.len(),
                [1u8; 32].as_ptr(),
                time,
                NOW,
                &mut outcome,
            )
        };
        assert_eq!(rc, Code::Ok);
        outcome
    };
    use ffi::up42wh_insert_outcome as Inserted;
    assert_eq!(insert("m:1", NOW - 60), Inserted::Added as u32);
    assert_eq!(insert("m:1", NOW - 30), Inserted::Known as u32);
    assert_eq!(insert("m:2", NOW - 60), Inserted::Full as u32);
    assert_eq!(
        insert("m:3", NOW - 10 * DAY as i64),
        Inserted::PastHorizon as u32
    );
    // SAFETY: NULL for the outcome is allowed.
    let rc = unsafe {
        ffi::up42wh_index_insert(
            index.0,
            b"m:4".as_ptr(),
            3,
            [1u8; 32].as_ptr(),
            NOW,
            NOW,
            null_mut(),
        )
    };
    assert_eq!(rc, Code::Ok);
}
