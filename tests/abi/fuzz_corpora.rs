//! Replays the committed fuzz corpora (fuzz/corpus/<target>/, and any crash kept in
//! fuzz/artifacts/<target>/) through the targets' own code (src/fuzz.rs): what a campaign found
//! stays found. The seeds of the verifying targets are checked to verify, so that the fuzzer
//! starts past the signature checks.

use std::fs;

use up42webhooks::fuzz::{self, split, NOW, TARGETS};
use up42webhooks::headers::Headers;
use up42webhooks::{rfc9421, senders, verify, KeyRing, Options};

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_input_runs_through_its_target() {
    let root = crate::common::root().join("fuzz");
    for (name, target) in TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has inputs");
        for (file, data) in corpus
            .iter()
            .chain(files(&root.join("artifacts").join(name)).iter())
        {
            let run = std::panic::catch_unwind(|| target(data));
            assert!(run.is_ok(), "fuzz target {name} panicked on {file}");
        }
    }
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    fs::read(crate::common::root().join(format!("fuzz/corpus/{target}/seed-{name}"))).unwrap()
}

#[test]
fn the_seeds_verify() {
    let up42 = seed("up42", "delivery");
    let (raw, body) = split(&up42);
    let key = up42webhooks::Key::new(&[fuzz::UP42_SECRET]).unwrap();
    verify::verify(&key, &Headers::Raw(raw), body, NOW, &Options::default()).unwrap();

    let mut ring = KeyRing::new();
    ring.add_hmac(b"fuzz-key", fuzz::HMAC_SECRET).unwrap();
    let r = seed("rfc9421", "hmac");
    let (raw, body) = split(&r);
    let req = rfc9421::Request {
        method: b"POST",
        scheme: b"https",
        authority: b"example.com",
        target: b"/hook?x=1",
        headers: Headers::Raw(raw),
    };
    rfc9421::verify(&ring, &req, body, NOW, &rfc9421::Options::default()).unwrap();

    let limits = senders::Limits::default();
    for (name, pick) in [("standard-webhooks", 0u8), ("github", 1), ("stripe", 2)] {
        let s = seed("senders", name);
        assert_eq!(s[0], pick);
        let (raw, body) = split(&s[1..]);
        let h = Headers::Raw(raw);
        let ok = match pick {
            0 => senders::standard_webhooks(&ring, &h, body, NOW, &limits).is_ok(),
            1 => senders::github(&ring, &h, body, &limits).is_ok(),
            _ => senders::stripe(&ring, &h, body, NOW, &limits).is_ok(),
        };
        assert!(ok, "the {name} seed verifies");
    }
}
