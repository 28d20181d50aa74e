//! Runs the RFC 9421 B.2.5 (HMAC-SHA256) verification many times, for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile_rfc9421 10000`.
use base64::Engine;
use up42webhooks::rfc9421::{self, Request};
use up42webhooks::{Headers, KeyRing};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rfc9421/");
    let read = |name: &str| std::fs::read(format!("{dir}{name}")).unwrap();
    let request = read("b2_test_request.txt");
    let split = request.windows(2).position(|w| w == b"\n\n").unwrap();
    let body = &request[split + 2..];
    // The header block as nginx's raw_header() gives it, with the signature fields added.
    let mut raw = request[..split + 1].to_vec();
    raw.extend_from_slice(b"Signature-Input: ");
    raw.extend_from_slice(&read("b25_signature_input.txt"));
    raw.extend_from_slice(b"\nSignature: ");
    raw.extend_from_slice(&read("b25_signature.txt"));
    raw.extend_from_slice(b"\n\n");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(read("test_shared_secret.b64"))
        .unwrap();
    let mut ring = KeyRing::new();
    ring.add_hmac(b"test-shared-secret", &secret).unwrap();
    let req = Request {
        method: b"POST",
        scheme: b"https",
        authority: b"example.com",
        target: b"/foo?param=Value&Pet=dog",
        headers: Headers::Raw(&raw),
    };
    let opts = rfc9421::Options {
        require_digest: false,
        ..rfc9421::Options::default()
    };
    let mut ok = 0;
    for _ in 0..n {
        let got = rfc9421::verify(
            &ring,
            std::hint::black_box(&req),
            body,
            1_618_884_480,
            &opts,
        );
        ok += got.is_ok() as usize;
    }
    assert_eq!(ok, n);
}
