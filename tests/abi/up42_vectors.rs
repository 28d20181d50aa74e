//! UP42 deliveries signed by the independent Python reference signer (tests/vectors/gen_up42.py).

use crate::common::{outcome, up42_vectors, CKey};
use sha2::{Digest, Sha256};
use up42webhooks::{verify, Headers, Options};

#[test]
fn committed_vectors_are_what_the_reference_signer_writes() {
    crate::common::assert_generated(
        "tests/vectors/gen_up42.py",
        "tests/vectors/up42.json",
        "Python's standard library only",
    );
}

#[test]
fn every_vector_gives_its_expected_result_by_every_path() {
    let vectors = up42_vectors();
    assert!(vectors.len() > 100);
    let mut ok = 0;
    for v in &vectors {
        let key = v.key();
        let pairs = v.pairs();
        let raw = v.raw();
        let opts = Options::default();
        let by_pairs = verify(&key, &Headers::Pairs(&pairs), &v.body, v.now, &opts);
        let by_raw = verify(&key, &Headers::Raw(&raw), &v.body, v.now, &opts);
        let ckey = CKey::new(&v.secrets).unwrap();
        let by_c = ckey.verify(&pairs, &v.body, v.now);
        let by_c_raw = ckey.verify_raw(&raw, &v.body, v.now);

        assert_eq!(outcome(&by_pairs), v.expect, "{}", v.name);
        assert_eq!(outcome(&by_raw), v.expect, "{} (raw block)", v.name);
        assert_eq!(outcome(&by_c), v.expect, "{} (C ABI)", v.name);
        assert_eq!(
            outcome(&by_c_raw),
            v.expect,
            "{} (C ABI, raw block)",
            v.name
        );
        if let Ok(got) = by_pairs {
            ok += 1;
            assert_eq!(Some(got.key_index), v.key_index, "{}", v.name);
            assert_eq!(got.created, 1_700_000_000, "{}", v.name);
            assert_eq!(
                got.body_sha256[..],
                Sha256::digest(&v.body)[..],
                "{}",
                v.name
            );
            assert_eq!(by_raw.unwrap(), got);
            let c = by_c.unwrap();
            assert_eq!(
                (c.created, c.key_index as usize, c.body_sha256),
                (got.created, got.key_index, got.body_sha256)
            );
            assert_eq!(c.has_expires, got.expires.is_some());
        }
    }
    assert!(ok > 60, "most vectors verify ({ok})");
}
