//! Runs the benchmark's 1 KiB UP42 verification (header pairs) many times, for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile_verify 10000`.
use up42webhooks::{verify, Headers, Key, Options};

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let n = fixtures::arg(1, 10_000);
    let key = Key::new(&[fixtures::UP42_SECRET]).unwrap();
    let (body, s) = fixtures::up42_delivery(&key, 1024);
    let pairs = fixtures::up42_pairs(&s);
    let opts = Options::default();
    let mut ok = 0;
    for _ in 0..n {
        let got = verify(
            &key,
            &Headers::Pairs(std::hint::black_box(&pairs)),
            std::hint::black_box(&body),
            fixtures::UP42_NOW,
            &opts,
        );
        ok += got.is_ok() as usize;
    }
    assert_eq!(ok, n);
}
