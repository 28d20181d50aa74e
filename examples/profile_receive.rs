//! Runs the receiver's one call (`up42wh_receive`: verification from the raw header block, the JSON
//! body, its timestamp, the record's fields) on the benchmark's UP42 delivery many times, for
//! profilers: `valgrind --tool=callgrind target/release/examples/profile_receive 10000 1024`.
use up42webhooks::ffi::up42wh_delivery as Delivery;
use up42webhooks::ffi::{up42wh_key_free, up42wh_key_new, up42wh_receive, up42wh_slice};
use up42webhooks::{Code, Key};

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let (n, size) = (fixtures::arg(1, 10_000), fixtures::arg(2, 1024));
    let key = Key::new(&[fixtures::UP42_SECRET]).unwrap();
    let (body, s) = fixtures::up42_delivery(&key, size);
    let raw = fixtures::up42_raw(&fixtures::up42_pairs(&s));
    let secret = up42wh_slice {
        ptr: fixtures::UP42_SECRET.as_ptr(),
        len: fixtures::UP42_SECRET.len(),
    };
    let mut ckey = core::ptr::null_mut();
    assert_eq!(unsafe { up42wh_key_new(&secret, 1, &mut ckey) }, Code::Ok);
    let mut d = Delivery::default();
    let mut ok = 0;
    for _ in 0..n {
        let raw = std::hint::black_box(&raw);
        let body = std::hint::black_box(&body);
        let now = fixtures::UP42_NOW;
        // SAFETY: a live key, slices valid for their lengths, a writable delivery.
        let got = unsafe {
            up42wh_receive(
                ckey,
                raw.as_ptr(),
                raw.len(),
                body.as_ptr(),
                body.len(),
                now,
                core::ptr::null(),
                &mut d,
            )
        };
        ok += (got == Code::Ok) as usize;
    }
    // SAFETY: made above, not used again.
    unsafe { up42wh_key_free(ckey) };
    assert_eq!(ok, n);
}
