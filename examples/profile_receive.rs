//! Runs the receiver's one call (`up42wh_receive`: verification from the raw header block, the JSON
//! body, its timestamp, the record's fields) on the benchmark's UP42 delivery many times, for
//! profilers: `valgrind --tool=callgrind target/release/examples/profile_receive 10000 1024`.
use up42webhooks::delivery::{self, Delivery};
use up42webhooks::{verify, Headers, Key, Options};

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (n, size) = (arg(1, 10_000), arg(2, 1024));
    let key = Key::new(&[fixtures::UP42_SECRET]).unwrap();
    let (body, s) = fixtures::up42_delivery(&key, size);
    let raw = fixtures::up42_raw(&fixtures::up42_pairs(&s));
    let opts = Options::default();
    let mut d = Delivery::default();
    let mut ok = 0;
    for _ in 0..n {
        let raw = std::hint::black_box(&raw);
        let body = std::hint::black_box(&body);
        let got = verify(&key, &Headers::Raw(raw), body, fixtures::UP42_NOW, &opts)
            .and_then(|_| delivery::up42(body, fixtures::UP42_NOW, &opts, &mut d));
        ok += got.is_ok() as usize;
    }
    assert_eq!(ok, n);
}
