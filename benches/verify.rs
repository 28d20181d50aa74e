//! Full verification of a UP42 delivery beside its floor: SHA-256 of the same body plus one
//! HMAC-SHA256 with precomputed key state (the crypto any verifier must do). `make bench` prints
//! the ratios from criterion's estimates.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use up42webhooks::{verify, Headers, Key, Options};

mod fixtures;
use fixtures::{UP42_NOW as NOW, UP42_SECRET as SECRET};

fn bench(c: &mut Criterion) {
    let key = Key::new(&[SECRET]).unwrap();
    let floor_mac = hmac::Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    for size in [1024usize, 65536] {
        let (body, s) = fixtures::up42_delivery(&key, size);
        let pairs = fixtures::up42_pairs(&s);
        let raw = fixtures::up42_raw(&pairs);
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
        // The receiver's one call: verify_raw's checks, the JSON body, its timestamp, the record's
        // fields; through the C ABI, as nginx calls it.
        let mut ckey = core::ptr::null_mut();
        let secret = up42webhooks::ffi::up42wh_slice {
            ptr: SECRET.as_ptr(),
            len: SECRET.len(),
        };
        assert_eq!(
            unsafe { up42webhooks::ffi::up42wh_key_new(&secret, 1, &mut ckey) },
            up42webhooks::Code::Ok
        );
        let mut d = up42webhooks::ffi::up42wh_delivery::default();
        let receive = |d: &mut up42webhooks::ffi::up42wh_delivery| unsafe {
            up42webhooks::ffi::up42wh_receive(
                ckey,
                black_box(raw.as_ptr()),
                raw.len(),
                black_box(body.as_ptr()),
                body.len(),
                NOW,
                core::ptr::null(),
                d,
            )
        };
        assert_eq!(receive(&mut d), up42webhooks::Code::Ok);
        g.bench_function(BenchmarkId::from_parameter("receive"), |b| {
            b.iter(|| receive(&mut d))
        });
        g.finish();
        unsafe { up42webhooks::ffi::up42wh_key_free(ckey) };
    }
}

/// RFC 9421 Appendix B.2.5 (hmac-sha256) and B.2.6 (ed25519) over the B.2 request, beside the
/// crypto alone over the same signature base (HMAC with precomputed key state; Ed25519 verify).
fn bench_rfc9421(c: &mut Criterion) {
    use base64::Engine;
    use up42webhooks::rfc9421;
    let ring = fixtures::b2_ring();
    let pem = fixtures::b2_vector("test_key_ed25519_pub.pem");
    let public = up42webhooks::keyring::ed25519_public_from_pem(&pem).unwrap();
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let floor_mac = hmac::Hmac::<Sha256>::new_from_slice(&fixtures::b2_secret()).unwrap();
    for (name, label) in [("hmac", "sig-b25"), ("ed25519", "sig-b26")] {
        let b = if name == "hmac" { "b25" } else { "b26" };
        let (raw, body) = fixtures::b2_request(b);
        let body = &body[..];
        let base = fixtures::b2_vector(&format!("{b}_signature_base.txt"));
        let sig_field =
            String::from_utf8(fixtures::b2_vector(&format!("{b}_signature.txt"))).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&sig_field[label.len() + 2..sig_field.len() - 1])
            .unwrap();
        let req = fixtures::b2_req(&raw);
        let opts = fixtures::b2_options(label.as_bytes());
        let now = fixtures::B2_NOW;
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
