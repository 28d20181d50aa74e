//! The journal's write cost per event, for each fsync mode: an append of a 1 KiB event (what
//! `never` and `interval` pay per delivery; `interval` adds one fdatasync a second per worker) and
//! an append followed by fdatasync (what `always` pays). On the machine's own disk, in a scratch
//! directory under target/.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use up42webhooks::journal::{Kind, Record, Writer};

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
                let r = Record {
                    kind: Kind::Event,
                    reason: 0,
                    key,
                    time: 1_700_000_000,
                    digest: [7; 32],
                    id: b"m:3f1c0a52-97a4-4c8e-b0f4-6f1d2c9e8a71",
                    meta: b"job.status\tFAILED\tfalse",
                    body: &body,
                };
                w.append(black_box(&r)).unwrap();
                if sync {
                    w.sync().unwrap();
                }
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
