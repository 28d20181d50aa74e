//! Runs the benchmark's RFC 9421 B.2.5 (HMAC-SHA256) verification many times, for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile_rfc9421 10000`.
use up42webhooks::rfc9421;

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let n = fixtures::arg(1, 10_000);
    let (raw, body) = fixtures::b2_request("b25");
    let ring = fixtures::b2_ring();
    let req = fixtures::b2_req(&raw);
    let opts = fixtures::b2_options(b"sig-b25");
    let mut ok = 0;
    for _ in 0..n {
        let got = rfc9421::verify(
            &ring,
            std::hint::black_box(&req),
            &body,
            fixtures::B2_NOW,
            &opts,
        );
        ok += got.is_ok() as usize;
    }
    assert_eq!(ok, n);
}
