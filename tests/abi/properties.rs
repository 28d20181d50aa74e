//! Properties over random input: nothing panics, and no single-byte change survives verification.

use crate::common::CKey;
use proptest::prelude::*;
use up42webhooks::{sf, sign, verify, DigestAlg, Headers, Key, Options, SignOptions};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"QWZTFnMEXhqZKNmu";

/// Bytes that look like signature headers often enough to get deep into the parser.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[a-z0-9=:;,()\" \\t?*.+/-]{0,200}".prop_map(String::into_bytes),
        r#"up42-sig=\("content-digest"\);(keyid="[a-z]{0,6}";)?(alg=[a-z0-9-]{0,12};)?created=-?[0-9]{0,17}"#
            .prop_map(String::into_bytes),
        "(SHA|sha)-(256|512)=:[A-Za-z0-9+/=]{0,90}:".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_headers_never_panic(
        input in header_bytes(),
        sig in header_bytes(),
        digest in header_bytes(),
        raw in prop::collection::vec(any::<u8>(), 0..400),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let key = Key::new(&[SECRET]).unwrap();
        let pairs: Vec<(&[u8], &[u8])> =
            vec![(b"Signature-Input", &input), (b"Signature", &sig), (b"Content-Digest", &digest)];
        let opts = Options::default();
        let by_rust = verify(&key, &Headers::Pairs(&pairs), &body, NOW, &opts);
        let by_c = CKey::new(&[SECRET]).unwrap().verify(&pairs, &body, NOW);
        prop_assert_eq!(by_rust.map(|_| ()), by_c.map(|_| ()));
        let _ = verify(&key, &Headers::Raw(&raw), &body, NOW, &opts);
        for field in [&input, &sig, &digest, &raw] {
            let _ = sf::for_each_dict_member(field, sf::Mode::default(), |_, _| {});
            let _ = sf::for_each_dict_member(field, sf::Mode { upper_keys: true, plain_base64: true }, |_, _| {});
            let _ = sf::for_each_list_member(field, |_| {});
            let _ = sf::parse_item(field);
            let _ = up42webhooks::parse_rfc3339(field);
        }
    }

    #[test]
    fn any_one_byte_change_fails(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        which in 0..3usize,
        position in any::<prop::sample::Index>(),
        flip in 1..=255u8,
        digest in prop_oneof![Just(DigestAlg::Sha256Up42), Just(DigestAlg::Sha256), Just(DigestAlg::Sha512)],
        byte_sequence in any::<bool>(),
    ) {
        let key = Key::new(&[SECRET]).unwrap();
        let s = sign(&key, &body, NOW, &SignOptions { digest, byte_sequence, ..SignOptions::default() }).unwrap();
        let (mut body, mut cd, mut sig) = (body, s.content_digest().to_vec(), s.signature().to_vec());
        let verify_now = |body: &[u8], cd: &[u8], sig: &[u8]| {
            let pairs: Vec<(&[u8], &[u8])> =
                vec![(b"Content-Digest", cd), (b"Signature-Input", s.signature_input()), (b"Signature", sig)];
            verify(&key, &Headers::Pairs(&pairs), body, NOW, &Options::default())
        };
        prop_assert!(verify_now(&body, &cd, &sig).is_ok());
        let header = which != 0 || body.is_empty();
        let target = match which {
            0 if !body.is_empty() => &mut body,
            0 | 1 => &mut cd,
            _ => &mut sig,
        };
        let i = position.index(target.len());
        // Whitespace at either end of a header value is not part of it (RFC 9110 section 5.5):
        // turning the last `=` or `:` into a space changes nothing a verifier may see.
        let edge = i == 0 || i + 1 == target.len();
        prop_assume!(!(header && edge && matches!(target[i] ^ flip, b' ' | b'\t')));
        target[i] ^= flip;
        let got = verify_now(&body, &cd, &sig);
        prop_assert!(got.is_err(), "changed byte {} of part {} and it still verified", i, which);
    }
}

#[test]
fn every_truncation_of_a_signature_header_fails_cleanly() {
    let key = Key::new(&[SECRET]).unwrap();
    let body = br#"{"event":"order.status","messageId":"m","timestamp":"2023-11-14T22:13:20Z"}"#;
    for digest in [DigestAlg::Sha256Up42, DigestAlg::Sha512] {
        let s = sign(
            &key,
            body,
            NOW,
            &SignOptions {
                digest,
                ..SignOptions::default()
            },
        )
        .unwrap();
        let full = [s.content_digest(), s.signature_input(), s.signature()];
        for which in 0..3 {
            for cut in 0..full[which].len() {
                if full[which][cut..].iter().all(|&b| b == b'=') {
                    continue; // only base64 padding cut: the same bytes, which RFC 8941 accepts unpadded
                }
                let mut parts = full;
                parts[which] = &full[which][..cut];
                let pairs: Vec<(&[u8], &[u8])> = vec![
                    (b"Content-Digest", parts[0]),
                    (b"Signature-Input", parts[1]),
                    (b"Signature", parts[2]),
                ];
                let got = verify(
                    &key,
                    &Headers::Pairs(&pairs),
                    body,
                    NOW,
                    &Options::default(),
                );
                assert!(
                    got.is_err(),
                    "header {which} cut to {cut} bytes still verified"
                );
                let mut raw = Vec::new();
                for (n, v) in &pairs {
                    raw.extend_from_slice(&[n, &b": "[..], v, &b"\r\n"[..]].concat());
                }
                // The raw block truncated anywhere, too.
                let raw_cut = &raw[..raw.len() * cut / full[which].len().max(1)];
                assert!(
                    verify(&key, &Headers::Raw(raw_cut), body, NOW, &Options::default()).is_err()
                );
            }
        }
    }
}
