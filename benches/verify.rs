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

/// RFC 9421 Appendix B.2.5 (hmac-sha256) and B.2.6 (ed25519) over the B.2 request, beside the
/// crypto alone over the same signature base (HMAC with precomputed key state; Ed25519 verify).
fn bench_rfc9421(c: &mut Criterion) {
    use base64::Engine;
    use up42webhooks::rfc9421::{self, Request};
    use up42webhooks::KeyRing;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rfc9421/");
    let read = |name: &str| std::fs::read(format!("{dir}{name}")).unwrap();
    let request = read("b2_test_request.txt");
    let split = request.windows(2).position(|w| w == b"\n\n").unwrap();
    let head = &request[..split + 1];
    let body = &request[split + 2..];
    let secret = base64::engine::general_purpose::STANDARD
        .decode(read("test_shared_secret.b64"))
        .unwrap();
    let mut ring = KeyRing::new();
    ring.add_hmac(b"test-shared-secret", &secret).unwrap();
    ring.add_ed25519_pem(Some(b"test-key-ed25519"), &read("test_key_ed25519_pub.pem"))
        .unwrap();
    let public =
        up42webhooks::keyring::ed25519_public_from_pem(&read("test_key_ed25519_pub.pem")).unwrap();
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let floor_mac = hmac::Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    for (name, label) in [("hmac", "sig-b25"), ("ed25519", "sig-b26")] {
        let b = if name == "hmac" { "b25" } else { "b26" };
        // The header block as nginx's raw_header() gives it, with the signature fields added.
        let mut raw = head.to_vec();
        raw.extend_from_slice(b"Signature-Input: ");
        raw.extend_from_slice(&read(&format!("{b}_signature_input.txt")));
        raw.extend_from_slice(b"\nSignature: ");
        raw.extend_from_slice(&read(&format!("{b}_signature.txt")));
        raw.extend_from_slice(b"\n\n");
        let base = read(&format!("{b}_signature_base.txt"));
        let sig_field = String::from_utf8(read(&format!("{b}_signature.txt"))).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&sig_field[label.len() + 2..sig_field.len() - 1])
            .unwrap();
        let req = Request {
            method: b"POST",
            scheme: b"https",
            authority: b"example.com",
            target: b"/foo?param=Value&Pet=dog",
            headers: Headers::Raw(&raw),
        };
        let opts = rfc9421::Options {
            label: label.as_bytes(),
            require_digest: false,
            ..rfc9421::Options::default()
        };
        let now = 1_618_884_480;
        assert!(rfc9421::verify(&ring, &req, body, now, &opts).is_ok());

        let mut g = c.benchmark_group(format!("rfc9421/{name}"));
        if name == "hmac" {
            g.bench_function(BenchmarkId::from_parameter("floor"), |bch| {
                bch.iter(|| {
                    let mut mac = floor_mac.clone();
                    mac.update(black_box(&base));
                    mac.finalize().into_bytes()
                })
            });
        } else {
            let signature = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            g.bench_function(BenchmarkId::from_parameter("floor"), |bch| {
                bch.iter(|| {
                    verifying
                        .verify_strict(black_box(&base), &signature)
                        .is_ok()
                })
            });
        }
        g.bench_function(BenchmarkId::from_parameter("verify"), |bch| {
            bch.iter(|| rfc9421::verify(&ring, black_box(&req), black_box(body), now, &opts))
        });
        g.finish();
    }
}

criterion_group!(benches, bench, bench_rfc9421);
criterion_main!(benches);
