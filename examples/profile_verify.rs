//! Runs one UP42 verification many times, for profilers: `valgrind --tool=callgrind`.
use up42webhooks::*;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let key = Key::new(&[b"QWZTFnMEXhqZKNmu"]).unwrap();
    let body = vec![b'x'; 1024];
    let s = sign(&key, &body, 1_700_000_000, &SignOptions::default()).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b"Host", b"h"),
        (b"User-Agent", b"u"),
        (b"Content-Length", b"1024"),
        (b"Content-Type", b"application/json"),
        (b"Accept-Encoding", b"gzip"),
        (b"Content-Digest", s.content_digest()),
        (b"Signature-Input", s.signature_input()),
        (b"Signature", s.signature()),
    ];
    let opts = Options::default();
    let mut ok = 0;
    for _ in 0..n {
        ok += verify(
            &key,
            &Headers::Pairs(std::hint::black_box(&pairs)),
            std::hint::black_box(&body),
            1_700_000_000,
            &opts,
        )
        .is_ok() as usize;
    }
    assert_eq!(ok, n);
}
