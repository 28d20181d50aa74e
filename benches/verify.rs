//! Full verification of a UP42 delivery beside its floor: SHA-256 of the same body plus one
//! HMAC-SHA256 with precomputed key state (the crypto any verifier must do). `make bench` prints
//! the ratios from criterion's estimates.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use up42webhooks::{sign, verify, Headers, Key, Options, SignOptions};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"QWZTFnMEXhqZKNmu";

fn bench(c: &mut Criterion) {
    let key = Key::new(&[SECRET]).unwrap();
    let floor_mac = hmac::Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    for size in [1024usize, 65536] {
        let body: Vec<u8> = br#"{"event":"job.status","body":{"status":"RUNNING"}}"#
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect();
        let s = sign(&key, &body, NOW, &SignOptions::default()).unwrap();
        // The headers an nginx in front of UP42 sees, in the order a client sends them.
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"hooks.example.org"),
            (b"User-Agent", b"UP42-Webhooks/1.0"),
            (b"Content-Length", b"1024"),
            (b"Content-Type", b"application/json"),
            (b"Accept-Encoding", b"gzip"),
            (b"Content-Digest", s.content_digest()),
            (b"Signature-Input", s.signature_input()),
            (b"Signature", s.signature()),
        ];
        let mut raw = b"POST /receive-webhooks HTTP/1.1\r\n".to_vec();
        for (n, v) in &pairs {
            raw.extend_from_slice(&[n, &b": "[..], v, &b"\r\n"[..]].concat());
        }
        raw.extend_from_slice(b"\r\n");
        let opts = Options::default();
        assert!(verify(&key, &Headers::Pairs(&pairs), &body, NOW, &opts).is_ok());

        let label = if size == 1024 { "1KiB" } else { "64KiB" };
        let mut g = c.benchmark_group(format!("up42/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
            b.iter(|| {
                let digest = Sha256::digest(black_box(&body));
                let mut mac = floor_mac.clone();
                mac.update(black_box(s.content_digest()));
                (digest, mac.finalize().into_bytes())
            })
        });
        g.bench_function(BenchmarkId::from_parameter("verify"), |b| {
            b.iter(|| {
                verify(
                    &key,
                    &Headers::Pairs(black_box(&pairs)),
                    black_box(&body),
                    NOW,
                    &opts,
                )
            })
        });
        g.bench_function(BenchmarkId::from_parameter("verify_raw"), |b| {
            b.iter(|| {
                verify(
                    &key,
                    &Headers::Raw(black_box(&raw)),
                    black_box(&body),
                    NOW,
                    &opts,
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
