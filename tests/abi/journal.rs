//! The journal's framing and recovery (src/format/frame.rs, src/journal.rs): every prefix of a
//! journal recovers exactly the complete records in it; a flipped bit costs the record it hit and
//! no other, is counted, and never yields a changed record; bytes inside a stored body never pass
//! for a record; and the files: several writers appending at once, segments read oldest first, a
//! missing salt refused.

use proptest::prelude::*;
use up42webhooks::journal::{
    crc32c, encode, read_key_mark, recover, remove_segment, segment_name, segments, write_key_mark,
    KeyMark, Kind, Reader, Record, Writer,
};

/// An owned record, for generating and comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    kind: Kind,
    reason: u8,
    key: u64,
    time: i64,
    digest: [u8; 32],
    id: Vec<u8>,
    meta: Vec<u8>,
    body: Vec<u8>,
}

impl Owned {
    fn record(&self) -> Record<'_> {
        Record {
            kind: self.kind,
            reason: self.reason,
            key: self.key,
            time: self.time,
            digest: self.digest,
            id: &self.id,
            meta: &self.meta,
            body: &self.body,
        }
    }

    fn of(r: &Record) -> Owned {
        Owned {
            kind: r.kind,
            reason: r.reason,
            key: r.key,
            time: r.time,
            digest: r.digest,
            id: r.id.to_vec(),
            meta: r.meta.to_vec(),
            body: r.body.to_vec(),
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        prop_oneof![
            Just(Kind::Event),
            Just(Kind::Drop),
            Just(Kind::Cancel),
            Just(Kind::Position)
        ],
        any::<u8>(),
        any::<u64>(),
        any::<i64>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(kind, reason, key, time, digest, id, meta, body)| Owned {
            kind,
            reason,
            key,
            time,
            digest,
            id,
            meta,
            body,
        })
}

/// The frames of `records` one after the other, and where each ends.
fn journal(records: &[Owned], seed: u32) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for r in records {
        encode(&r.record(), seed, &mut bytes).unwrap();
        ends.push(bytes.len());
    }
    (bytes, ends)
}

fn recovered(data: &[u8], seed: u32) -> (Vec<Owned>, up42webhooks::journal::Stats) {
    let (records, stats) = recover(data, seed);
    (records.iter().map(Owned::of).collect(), stats)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_prefix_recovers_exactly_its_complete_records(
        records in proptest::collection::vec(owned(), 1..8),
        seed in any::<u32>(),
    ) {
        let (bytes, ends) = journal(&records, seed);
        for cut in 0..=bytes.len() {
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            let (got, stats) = recovered(&bytes[..cut], seed);
            prop_assert_eq!(&got[..], &records[..complete], "prefix of {} bytes", cut);
            prop_assert_eq!(stats.corrupt, 0);
            let last_end = if complete == 0 { 0 } else { ends[complete - 1] };
            prop_assert_eq!(stats.torn_bytes, (cut - last_end) as u64);
        }
    }

    #[test]
    fn a_flipped_bit_costs_the_record_it_hit_and_no_other(
        records in proptest::collection::vec(owned(), 3..8),
        seed in any::<u32>(),
        pick in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut bytes, ends) = journal(&records, seed);
        // A bit in any record but the last: a good record follows the damage.
        let at = pick.index(ends[ends.len() - 2]);
        bytes[at] ^= 1 << bit;
        let hit = ends.iter().position(|&e| at < e).unwrap();
        let (got, stats) = recovered(&bytes, seed);
        let mut expected = records.clone();
        expected.remove(hit);
        prop_assert_eq!(got, expected, "bit {} of byte {} (record {})", bit, at, hit);
        prop_assert_eq!(stats.corrupt, 1);
        prop_assert_eq!(stats.torn_bytes, 0);
    }

    #[test]
    fn a_body_holding_a_frame_never_becomes_a_record(
        inner in owned(),
        before in owned(),
        seed in any::<u32>(),
        other_seed in any::<u32>(),
    ) {
        prop_assume!(seed != other_seed);
        // A body that carries a whole frame made without the journal's salt (a sender cannot
        // know it), in a record that is then torn short of its end.
        let mut smuggled = Vec::new();
        encode(&inner.record(), other_seed, &mut smuggled).unwrap();
        let mut carrier = before.clone();
        carrier.kind = Kind::Event;
        carrier.body = [b"{\"x\":\"".to_vec(), smuggled, b"\"}".to_vec()].concat();
        let (bytes, _) = journal(&[carrier], seed);
        for cut in [bytes.len() - 1, bytes.len() - 3] {
            let (got, stats) = recovered(&bytes[..cut], seed);
            prop_assert!(got.is_empty(), "nothing recovered from a torn carrier");
            prop_assert_eq!(stats.corrupt, 0);
        }
    }
}

#[test]
fn what_encode_refuses() {
    let r = Record {
        kind: Kind::Event,
        reason: 0,
        key: 1,
        time: 0,
        digest: [0; 32],
        id: &[b'i'; 65_536],
        meta: b"",
        body: b"{}",
    };
    let mut out = Vec::new();
    assert!(encode(&r, 0, &mut out).is_err(), "an id over 65,535 bytes");
    assert!(out.is_empty(), "nothing written on refusal");
}

fn scratch(name: &str) -> crate::common::Scratch {
    crate::common::Scratch::new(&format!("journal-{name}"))
}

fn event(key: u64, body: &[u8]) -> Owned {
    Owned {
        kind: Kind::Event,
        reason: 0,
        key,
        time: 1_700_000_000 + key as i64,
        digest: [key as u8; 32],
        id: format!("m:{key}").into_bytes(),
        meta: b"job.status\tFAILED\tfalse".to_vec(),
        body: body.to_vec(),
    }
}

fn read_all(dir: &std::path::Path, segment: u32) -> (Vec<Owned>, up42webhooks::journal::Stats) {
    let mut reader = Reader::open(dir, segment).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(Owned::of(&r));
    }
    (out, reader.stats())
}

#[test]
fn writers_append_to_segments_that_read_back_in_order() {
    let dir = scratch("segments");
    // An empty directory reads as an empty journal, and makes no salt.
    assert_eq!(read_all(&dir, 0).0, []);
    assert!(!dir.join("journal.salt").exists());

    let mut first = Writer::open(&dir, 1).unwrap();
    let mut second = Writer::open(&dir, 1).unwrap();
    let mut later = Writer::open(&dir, 2).unwrap();
    let salt = std::fs::read(dir.join("journal.salt")).unwrap();
    assert_eq!(salt.len(), 16);
    first.append(&event(1, b"{\"a\":1}").record()).unwrap();
    second.append(&event(2, b"{\"b\":2}").record()).unwrap();
    later.append(&event(4, b"{\"d\":4}").record()).unwrap();
    let size = first.append(&event(3, b"{\"c\":3}").record()).unwrap();
    first.sync().unwrap();
    assert_eq!(
        size,
        std::fs::metadata(dir.join(segment_name(1))).unwrap().len()
    );
    assert_eq!(segments(&dir).unwrap(), [1, 2]);

    let (all, stats) = read_all(&dir, 0);
    let keys: Vec<u64> = all.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [1, 2, 3, 4],
        "segment 1 in append order, then segment 2"
    );
    assert_eq!(all[0], event(1, b"{\"a\":1}"));
    assert_eq!(
        (stats.segments, stats.first_segment, stats.last_segment),
        (2, 1, 2)
    );
    assert_eq!(
        (
            stats.records,
            stats.max_key,
            stats.corrupt,
            stats.torn_bytes
        ),
        (4, 4, 0, 0)
    );
    assert_eq!(read_all(&dir, 2).0, [event(4, b"{\"d\":4}")]);

    // The salt seeds every CRC: the bytes of segment 1 are exactly these frames.
    let seed = crc32c(0, &salt);
    let (expected, _) = journal(
        &[
            event(1, b"{\"a\":1}"),
            event(2, b"{\"b\":2}"),
            event(3, b"{\"c\":3}"),
        ],
        seed,
    );
    assert_eq!(std::fs::read(dir.join(segment_name(1))).unwrap(), expected);

    let u = up42webhooks::journal::usage(&dir).unwrap();
    let on_disk: u64 = [1, 2]
        .iter()
        .map(|&n| std::fs::metadata(dir.join(segment_name(n))).unwrap().len())
        .sum();
    assert_eq!(
        (u.segments, u.first_segment, u.last_segment, u.bytes),
        (2, 1, 2, on_disk)
    );
    remove_segment(&dir, 1).unwrap();
    assert_eq!(segments(&dir).unwrap(), [2]);
    // Segments without their salt are refused, not read as damage.
    std::fs::remove_file(dir.join("journal.salt")).unwrap();
    assert!(Reader::open(&dir, 0).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_writers_never_interleave_records() {
    let dir = scratch("concurrent");
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || {
                let mut w = Writer::open(&dir, 1).unwrap();
                for i in 0..500u64 {
                    let key = t * 1000 + i;
                    let body = vec![b'a' + t as u8; 100 + (i as usize * 37) % 3000];
                    w.append(&event(key, &body).record()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (all, stats) = read_all(&dir, 0);
    assert_eq!(
        (stats.records, stats.corrupt, stats.torn_bytes),
        (2000, 0, 0)
    );
    let mut keys: Vec<u64> = all.iter().map(|r| r.key).collect();
    keys.sort_unstable();
    let expected: Vec<u64> = (0..4u64)
        .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
        .collect();
    assert_eq!(keys, expected);
    for r in &all {
        let t = r.key / 1000;
        assert!(
            r.body.iter().all(|&b| b == b'a' + t as u8),
            "record {} intact",
            r.key
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_c_abi_appends_and_recovers_and_refuses_bad_arguments() {
    use std::ptr::{null, null_mut};
    use up42webhooks::ffi::up42wh_slice;
    use up42webhooks::ffi::*;
    use up42webhooks::Code;

    let dir = scratch("ffi");
    let path = dir.to_str().unwrap();
    let slice = |b: &[u8]| up42wh_slice {
        ptr: b.as_ptr(),
        len: b.len(),
    };
    let (id, meta, body) = (b"m:abc", b"job.status\tFAILED\tfalse", b"{\"x\":1}");
    let rec = |kind: u32, reason: u32, key: u64| up42wh_record {
        kind,
        reason,
        key,
        time: 1_700_000_000,
        digest: [7; 32],
        id: slice(id),
        meta: slice(meta),
        body: slice(body),
    };
    unsafe {
        let mut j = null_mut();
        let mut err = 0;
        assert_eq!(
            up42wh_journal_open(path.as_ptr(), path.len(), 0, &mut j, &mut err),
            Code::InvalidArgument,
            "segment numbers start at 1"
        );
        assert_eq!(
            up42wh_journal_open(path.as_ptr(), path.len(), 1, null_mut(), null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            up42wh_journal_open(null(), 3, 1, &mut j, null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            up42wh_journal_open(path.as_ptr(), path.len(), 1, &mut j, &mut err),
            Code::Ok
        );
        let mut size = 0u64;
        assert_eq!(up42wh_journal_append(j, &rec(1, 0, 1), &mut size), Code::Ok);
        assert!(size > body.len() as u64);
        assert_eq!(
            up42wh_journal_append(j, &rec(2, 1, 1), null_mut()),
            Code::Ok
        );
        // A consumer's position keeps its name (the id), and nothing else of the slices.
        assert_eq!(
            up42wh_journal_append(j, &rec(4, 0, 1), null_mut()),
            Code::Ok
        );
        // TryFrom on the enum and the reason: anything else is refused, nothing written.
        assert_eq!(
            up42wh_journal_append(j, &rec(5, 0, 2), null_mut()),
            Code::InvalidArgument
        );
        assert_eq!(
            up42wh_journal_append(j, &rec(1, 256, 2), null_mut()),
            Code::InvalidArgument
        );
        assert_eq!(
            up42wh_journal_append(j, null(), null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            up42wh_journal_append(null_mut(), &rec(1, 0, 2), null_mut()),
            Code::NullArgument
        );
        assert_eq!(up42wh_journal_sync(j), Code::Ok);
        assert_eq!(up42wh_journal_errno(j), 0);
        up42wh_journal_free(j);
        up42wh_journal_free(null_mut());

        let mut r = null_mut();
        assert_eq!(
            up42wh_journal_reader_open(path.as_ptr(), path.len(), 0, &mut r, &mut err),
            Code::Ok
        );
        let mut out = std::mem::zeroed::<up42wh_record>();
        assert_eq!(up42wh_journal_reader_next(r, &mut out), Code::Ok);
        assert_eq!(
            (out.kind, out.key, out.time, out.digest),
            (1, 1, 1_700_000_000, [7; 32])
        );
        let text = |s: up42wh_slice| std::slice::from_raw_parts(s.ptr, s.len).to_vec();
        assert_eq!(
            (text(out.id), text(out.meta), text(out.body)),
            (id.to_vec(), meta.to_vec(), body.to_vec())
        );
        assert_eq!(up42wh_journal_reader_next(r, &mut out), Code::Ok);
        assert_eq!(
            (out.kind, out.reason, out.key, out.body.len),
            (2, 1, 1, 0),
            "a drop"
        );
        assert_eq!(up42wh_journal_reader_next(r, &mut out), Code::Ok);
        assert_eq!(
            (out.kind, out.key, text(out.id), out.meta.len, out.body.len),
            (4, 1, id.to_vec(), 0, 0),
            "a position"
        );
        assert_eq!(up42wh_journal_reader_next(r, &mut out), Code::JournalEnd);
        let mut stats = up42wh_journal_stats::default();
        assert_eq!(up42wh_journal_reader_stats(r, &mut stats), Code::Ok);
        assert_eq!((stats.segments, stats.records, stats.max_key), (1, 3, 1));
        assert_eq!(
            up42wh_journal_reader_next(null_mut(), &mut out),
            Code::NullArgument
        );
        up42wh_journal_reader_free(r);
        up42wh_journal_reader_free(null_mut());

        let mut usage = up42wh_journal_stats::default();
        assert_eq!(
            up42wh_journal_usage(path.as_ptr(), path.len(), &mut usage, &mut err),
            Code::Ok
        );
        let size_on_disk = std::fs::metadata(dir.join(segment_name(1))).unwrap().len();
        assert_eq!(
            (usage.segments, usage.bytes, usage.records),
            (1, size_on_disk, 0)
        );
        assert_eq!(
            up42wh_journal_usage(path.as_ptr(), path.len(), null_mut(), &mut err),
            Code::NullArgument
        );
        assert_eq!(
            up42wh_journal_remove_segment(path.as_ptr(), path.len(), 1, &mut err),
            Code::Ok
        );
        assert_eq!(
            up42wh_journal_remove_segment(path.as_ptr(), path.len(), 1, &mut err),
            Code::JournalIo
        );
        assert_eq!(err, 2, "ENOENT");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torn_tails_are_cut_off_every_segment_and_nothing_else() {
    let dir = scratch("cut-torn");
    for segment in [1, 2] {
        let mut w = Writer::open(&dir, segment).unwrap();
        for key in 1..=3 {
            w.append(&event(segment as u64 * 10 + key, b"{}").record())
                .unwrap();
        }
    }
    // Segment 1 ends with the first 20 bytes of a frame, segment 2 with a whole good one's 5.
    let (s1, s2) = (dir.join(segment_name(1)), dir.join(segment_name(2)));
    let (good1, good2) = (std::fs::read(&s1).unwrap(), std::fs::read(&s2).unwrap());
    std::fs::write(&s1, [&good1[..], &good1[..20]].concat()).unwrap();
    std::fs::write(&s2, [&good2[..], &good2[..5]].concat()).unwrap();
    let mut reader = Reader::open(&dir, 0).unwrap();
    let mut n = 0;
    while reader.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!((n, reader.stats().torn_bytes), (6, 25));
    assert_eq!(reader.cut_torn_tails().unwrap(), 25);
    assert_eq!(std::fs::read(&s1).unwrap(), good1);
    assert_eq!(std::fs::read(&s2).unwrap(), good2);
    let (records, stats) = read_all(&dir, 0);
    assert_eq!((records.len(), stats.torn_bytes, stats.corrupt), (6, 0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_key_mark_round_trips_and_a_damaged_one_is_an_error() {
    let dir = scratch("key-mark");
    assert_eq!(read_key_mark(&dir).unwrap(), None);
    for m in [
        KeyMark {
            reserved: 1001,
            last: 0,
            clean: false,
        },
        KeyMark {
            reserved: 9_007_199_254_740_991,
            last: 57,
            clean: true,
        },
    ] {
        write_key_mark(&dir, &m).unwrap();
        assert_eq!(read_key_mark(&dir).unwrap(), Some(m));
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["journal.keys"], "no temporary file left");
    for damaged in [
        "",
        "up42wh-keys reserved=1\n",
        "up42wh-keys reserved=x last=0 clean=0\n",
        "up42wh-keys reserved=1 last=0 clean=2\n",
        "up42wh-keys reserved=1 last=0 clean=0 more=1\n",
        "other reserved=1 last=0 clean=0\n",
    ] {
        std::fs::write(dir.join("journal.keys"), damaged).unwrap();
        let e = read_key_mark(&dir).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{damaged:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
