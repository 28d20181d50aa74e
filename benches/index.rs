//! The replay index's cost per delivery, in an index holding 990,000 ids (two full windows of a
//! 1.5M-id index, at its 0.5 load factor): finding an id that is stored (a retry: `Duplicate`)
//! and claiming a new one (every live table probed, then a compare-and-swap); and beside them the
//! floor, one dependent random read in memory of the file's size. The file lives in target/,
//! mapped as nginx's workers map it.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use up42webhooks::index::{Claim, Index, Inserted};

const DAY: u64 = 86_400;
const NOW: u64 = 1_700_000_000 / DAY * DAY + DAY / 2; // mid-window
const HELD: u64 = 990_000;

/// A UP42 dedup id: `m:` and a UUID, 38 bytes.
fn id(i: u64) -> [u8; 38] {
    let mut b = *b"m:00000000-0000-4000-8000-000000000000";
    for (n, d) in b[26..38].iter_mut().rev().enumerate() {
        *d = b"0123456789abcdef"[((i >> (4 * n)) & 15) as usize];
    }
    b
}

/// An index of 1.5M ids over three days, holding `HELD` ids stored one and two days ago (the
/// current window empty: room for the new claims).
fn prepared(path: &Path) {
    let _ = std::fs::remove_file(path);
    let (index, _) = Index::open(path, 1_500_000, 3 * DAY).unwrap();
    for i in 0..HELD {
        let time = NOW - DAY - (i % 2) * DAY;
        assert_eq!(index.insert(&id(i), &[1; 32], time, NOW), Inserted::Added);
    }
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-index");
    std::fs::create_dir_all(&dir).unwrap();
    let (master, work) = (dir.join("prepared.index"), dir.join("work.index"));
    prepared(&master);
    std::fs::copy(&master, &work).unwrap();
    let mut g = c.benchmark_group("index/990k held");
    g.throughput(Throughput::Elements(1));
    let (index, _) = Index::open(&work, 1_500_000, 3 * DAY).unwrap();
    let mut i = 0u64;
    g.bench_function("find a stored id (duplicate)", |b| {
        b.iter(|| {
            i = (i + 7919) % HELD;
            let c = index.claim(black_box(&id(i)), &[1; 32], NOW, 30);
            debug_assert!(matches!(c, Claim::Duplicate));
            c
        })
    });
    drop(index);
    // New claims fill the current window: a fresh copy of the prepared file when it is half full
    // (copied outside the timed part).
    let mut fresh = HELD;
    let mut index = None;
    g.bench_function("claim a new id", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if index.is_none() || fresh - HELD >= 250_000 {
                    index = None;
                    std::fs::copy(&master, &work).unwrap();
                    index = Some(Index::open(&work, 1_500_000, 3 * DAY).unwrap().0);
                    fresh = HELD;
                }
                let idx = index.as_ref().unwrap();
                let n = left.min(250_000 - (fresh - HELD));
                let start = Instant::now();
                for _ in 0..n {
                    fresh += 1;
                    let c = idx.claim(black_box(&id(fresh)), &[1; 32], NOW, 30);
                    debug_assert!(matches!(c, Claim::New(_)));
                    black_box(c);
                }
                spent += start.elapsed();
                left -= n;
            }
            spent
        })
    });
    // The floor: one random read in memory of the file's size, each depending on the one before
    // (as a claim's first probe depends on the id's digest), the same number of cache and TLB
    // misses a claim cannot avoid.
    let words = std::fs::metadata(&master).unwrap().len() as usize / 8;
    let memory: Vec<u64> = (0..words as u64).collect();
    let (mut at, mut n) = (0usize, 0u64);
    g.bench_function("floor: one random read in memory of that size", |b| {
        b.iter(|| {
            n += 1;
            let v = memory[at] ^ n;
            at = (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize % words;
            v
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
