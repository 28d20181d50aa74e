//! The journal's write cost per event, for each fsync mode: an append of a 1 KiB event (what
//! `never` and `interval` pay per delivery; `interval` adds one fdatasync a second per worker) and
//! an append followed by fdatasync (what `always` pays); beside them the same frame copied into a
//! memory-mapped segment (the alternative to one `write(2)` per record that issue 42 asked to be
//! measured: its page faults on first touch counted, as a segment is written once). On the
//! machine's own disk, in a scratch directory under target/.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use up42webhooks::journal::{encode, Kind, Record, Writer};

/// The event every case writes, under `key`.
fn event(key: u64, body: &[u8]) -> Record<'_> {
    Record {
        kind: Kind::Event,
        reason: 0,
        key,
        time: 1_700_000_000,
        digest: [7; 32],
        id: b"m:3f1c0a52-97a4-4c8e-b0f4-6f1d2c9e8a71",
        meta: b"job.status\tFAILED\tfalse",
        body,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-journal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let body = vec![b'x'; 1024];
    let mut key = 0u64;
    let mut g = c.benchmark_group("journal/1KiB");
    g.throughput(Throughput::Elements(1));
    for (name, sync) in [
        ("append (never, interval)", false),
        ("append+fdatasync (always)", true),
    ] {
        let mut w = Writer::open(&dir, if sync { 2 } else { 1 }).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                key += 1;
                w.append(black_box(&event(key, &body))).unwrap();
                if sync {
                    w.sync().unwrap();
                }
            })
        });
    }
    // The mapped segment: 256 MiB made (its blocks allocated) beforehand, the frame encoded as
    // the writer does and copied in; a new file when it is full, as a segment rotates.
    const MAPPED: usize = 256 << 20;
    let map = |n: u32| -> *mut u8 {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(format!("mapped.{n}")))
            .unwrap();
        // SAFETY: a file of ours, its length set and blocks allocated before it is mapped.
        unsafe {
            assert_eq!(libc::posix_fallocate(f.as_raw_fd(), 0, MAPPED as i64), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                MAPPED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            p.cast()
        }
    };
    let (mut files, mut base, mut at) = (0u32, map(0), 0usize);
    let mut frame = Vec::new();
    g.bench_function("copy into a mapped segment", |b| {
        b.iter(|| {
            key += 1;
            frame.clear();
            encode(black_box(&event(key, &body)), 0x1234_5678, &mut frame).unwrap();
            if at + frame.len() > MAPPED {
                // SAFETY: the mapping made above, no longer used.
                unsafe { libc::munmap(base.cast(), MAPPED) };
                let _ = std::fs::remove_file(dir.join(format!("mapped.{files}")));
                files += 1;
                (base, at) = (map(files), 0);
            }
            // SAFETY: `at + frame.len()` is inside the mapping (checked above).
            unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), base.add(at), frame.len()) };
            at += frame.len();
        })
    });
    // SAFETY: the last mapping, no longer used.
    unsafe { libc::munmap(base.cast(), MAPPED) };
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
