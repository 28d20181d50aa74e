//! The senders besides UP42, each against published vectors where they exist (Standard Webhooks'
//! library test vectors, GitHub's documented example) and an independent reference signer for the
//! rest (tests/vectors/gen_senders.py, Python's hmac and `cryptography`): a UbiOps-style RFC 9421
//! Ed25519 request, RFC 9421 HMAC with query parameters, Standard Webhooks v1a, Stripe.

use serde_json::Value;
use up42webhooks::rfc9421::{self, Base, Options, Request};
use up42webhooks::senders::{self, Limits};
use up42webhooks::{Alg, Code, Headers, KeyRing};

fn json(name: &str) -> Value {
    let text =
        std::fs::read_to_string(crate::common::root().join("tests/vectors").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn committed_vectors_are_what_the_reference_signer_writes() {
    crate::common::assert_generated(
        "tests/vectors/gen_senders.py",
        "tests/vectors/senders.json",
        "make test installs Python's cryptography",
    );
}

/// One RFC 9421 request of senders.json.
struct Rfc9421Case {
    method: String,
    scheme: String,
    authority: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    label: String,
    base: String,
    now: i64,
}

impl Rfc9421Case {
    fn from(v: &Value) -> Self {
        Rfc9421Case {
            method: s(&v["method"]).into(),
            scheme: s(&v["scheme"]).into(),
            authority: s(&v["authority"]).into(),
            target: s(&v["target"]).into(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (s(&h[0]).into(), s(&h[1]).into()))
                .collect(),
            body: s(&v["body"]).as_bytes().to_vec(),
            label: s(&v["label"]).into(),
            base: s(&v["base"]).into(),
            now: v["now"].as_i64().unwrap(),
        }
    }

    fn run<T>(&self, f: impl FnOnce(&Request) -> T) -> T {
        let pairs = crate::common::byte_pairs(&self.headers);
        let req = Request {
            method: self.method.as_bytes(),
            scheme: self.scheme.as_bytes(),
            authority: self.authority.as_bytes(),
            target: self.target.as_bytes(),
            headers: Headers::Pairs(&pairs),
        };
        f(&req)
    }

    fn verify(&self, ring: &KeyRing, opts: &Options, now: i64) -> Result<rfc9421::Verified, Code> {
        self.run(|req| rfc9421::verify(ring, req, &self.body, now, opts))
    }

    fn set(&mut self, name: &str, value: &str) {
        for h in &mut self.headers {
            if h.0 == name {
                h.1 = value.into();
            }
        }
    }
}

const UBIOPS_REQUIRED: &[u8] =
    b"\"@method\", \"@authority\", \"@target-uri\", \"content-digest\", \"date\"";

#[test]
fn ubiops_ed25519_requests_verify_with_the_derived_key_id() {
    let v = json("senders.json");
    let mut ring = KeyRing::new();
    ring.add_ed25519_pem(None, s(&v["ubiops"]["public_key_pem"]).as_bytes())
        .unwrap();
    assert_eq!(ring.keyid(0), Some(s(&v["ubiops"]["keyid"]).as_bytes()));
    let opts = Options {
        label: b"pyhms",
        required: UBIOPS_REQUIRED,
        ..Options::default()
    };
    for r in v["ubiops"]["requests"].as_array().unwrap() {
        let case = Rfc9421Case::from(r);
        let base = case.run(|req| {
            let mut b = Base::default();
            rfc9421::signature_base(req, case.label.as_bytes(), &mut b).map(|b| b.to_vec())
        });
        assert_eq!(String::from_utf8(base.unwrap()).unwrap(), case.base);
        let ok = case.verify(&ring, &opts, case.now).unwrap();
        assert_eq!(
            (ok.alg, ok.key_index, ok.created),
            (Alg::Ed25519, 0, Some(1_705_392_742))
        );

        let mut tampered = Rfc9421Case::from(r);
        tampered.body[3] ^= 1;
        assert_eq!(
            tampered.verify(&ring, &opts, case.now),
            Err(Code::DigestMismatch)
        );
        let mut tampered = Rfc9421Case::from(r);
        tampered.set("Date", "Tue, 16 Jan 2024 08:12:23 GMT");
        assert_eq!(
            tampered.verify(&ring, &opts, case.now),
            Err(Code::SignatureMismatch)
        );
        let mut elsewhere = Rfc9421Case::from(r);
        elsewhere.target = "/receive-webhooks/other".into();
        assert_eq!(
            elsewhere.verify(&ring, &opts, case.now),
            Err(Code::SignatureMismatch)
        );
        assert_eq!(case.verify(&ring, &opts, case.now + 400), Err(Code::Stale));
        // The profile's required components: a signature that leaves out date is refused.
        let stricter = Options {
            required: b"\"@method\", \"x-extra\"",
            ..opts
        };
        assert_eq!(
            case.verify(&ring, &stricter, case.now),
            Err(Code::RequiredComponentNotCovered)
        );
        // Another key with the same id scheme does not verify it.
        let mut other = KeyRing::new();
        other
            .add_ed25519_pem(
                Some(s(&v["ubiops"]["keyid"]).as_bytes()),
                &std::fs::read(
                    crate::common::root().join("tests/vectors/rfc9421/test_key_ed25519_pub.pem"),
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(
            case.verify(&other, &opts, case.now),
            Err(Code::SignatureMismatch)
        );
    }
}

#[test]
fn rfc9421_hmac_with_query_parameters_and_structured_fields() {
    let v = json("senders.json");
    let mut ring = KeyRing::new();
    ring.add_hmac(b"other", b"x").unwrap();
    ring.add_hmac(
        s(&v["rfc9421_hmac"]["keyid"]).as_bytes(),
        s(&v["rfc9421_hmac"]["secret"]).as_bytes(),
    )
    .unwrap();
    let case = Rfc9421Case::from(&v["rfc9421_hmac"]["requests"][0]);
    let base = case.run(|req| {
        let mut b = Base::default();
        rfc9421::signature_base(req, b"", &mut b).map(|b| b.to_vec())
    });
    assert_eq!(String::from_utf8(base.unwrap()).unwrap(), case.base);
    let ok = case.verify(&ring, &Options::default(), case.now).unwrap();
    assert_eq!((ok.alg, ok.key_index), (Alg::HmacSha256, 1));
    assert_eq!(&ok.nonce[..ok.nonce_len], b"n-0001");
    let mut other_query = Rfc9421Case::from(&v["rfc9421_hmac"]["requests"][0]);
    other_query.target = other_query.target.replace("b=with+plus", "b=with%20plus");
    // Same decoded value, different query text: @query-param agrees, @query does not.
    assert_eq!(
        other_query.verify(&ring, &Options::default(), case.now),
        Err(Code::SignatureMismatch)
    );
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn with_headers<T>(list: &[(Vec<u8>, Vec<u8>)], f: impl FnOnce(&Headers) -> T) -> T {
    let refs: Vec<(&[u8], &[u8])> = list.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    f(&Headers::Pairs(&refs))
}

#[test]
fn standard_webhooks_library_vectors_and_v1a() {
    for v in json("standard_webhooks_vectors.json").as_array().unwrap() {
        let mut ring = KeyRing::new();
        ring.add_standard_webhooks(b"k", s(&v["secret"]).as_bytes())
            .unwrap();
        let now: i64 = s(&v["webhook_timestamp"]).parse().unwrap();
        let headers = pairs(&[
            ("webhook-id", s(&v["webhook_id"])),
            ("webhook-timestamp", s(&v["webhook_timestamp"])),
            ("webhook-signature", s(&v["webhook_signature"])),
        ]);
        let payload = s(&v["payload"]).as_bytes();
        let run = |body: &[u8], now: i64| {
            with_headers(&headers, |h| {
                senders::standard_webhooks(&ring, h, body, now, &Limits::default())
            })
        };
        let ok = run(payload, now).unwrap();
        assert_eq!(
            (ok.key_index, ok.alg, ok.timestamp),
            (0, Alg::HmacSha256, Some(now))
        );
        assert_eq!(run(b"{\"test\": 0}", now), Err(Code::SignatureMismatch));
        assert_eq!(run(payload, now + 301), Err(Code::Stale));
        assert_eq!(run(payload, now - 31), Err(Code::Future));
        // The library's signer writes the vector's signature, which its verifier accepted above.
        let signed = up42webhooks::sign_standard_webhooks(
            s(&v["secret"]).as_bytes(),
            s(&v["webhook_id"]).as_bytes(),
            now,
            payload,
        );
        assert_eq!(signed.as_deref(), Ok(s(&v["webhook_signature"])));
    }
    for (key, id) in [
        (&b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"[..], &b"a.b"[..]),
        (b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b""),
        (b"whsec_not base64!", b"id"),
        (b"whsec_", b"id"),
        (b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b"id"),
    ] {
        assert_eq!(
            up42webhooks::sign_standard_webhooks(key, id, 1, b"{}"),
            Err(Code::InvalidArgument),
            "{:?} {:?}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(id)
        );
    }

    let v = &json("senders.json")["standard_webhooks_v1a"];
    let mut ring = KeyRing::new();
    ring.add_standard_webhooks(b"secret", b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    ring.add_standard_webhooks(b"public", s(&v["public_key"]).as_bytes())
        .unwrap();
    let headers = pairs(&[
        ("Webhook-Id", s(&v["id"])),
        ("Webhook-Timestamp", s(&v["timestamp"])),
        ("Webhook-Signature", s(&v["signature"])),
    ]);
    let now = v["now"].as_i64().unwrap();
    let ok = with_headers(&headers, |h| {
        senders::standard_webhooks(
            &ring,
            h,
            s(&v["payload"]).as_bytes(),
            now,
            &Limits::default(),
        )
    })
    .unwrap();
    assert_eq!((ok.key_index, ok.alg), (1, Alg::Ed25519));
    let bad = with_headers(&headers, |h| {
        senders::standard_webhooks(&ring, h, b"{}", now, &Limits::default())
    });
    assert_eq!(bad, Err(Code::SignatureMismatch));
    for (sig, want) in [
        ("v2,AAAA", Code::UnsupportedAlg),
        ("v1,AAAA", Code::MalformedSignature),
        ("v1", Code::MalformedSignature),
    ] {
        let headers = pairs(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", s(&v["timestamp"])),
            ("webhook-signature", sig),
        ]);
        let got = with_headers(&headers, |h| {
            senders::standard_webhooks(&ring, h, b"{}", now, &Limits::default())
        });
        assert_eq!(got, Err(want), "{sig}");
    }
    for bad_key in [
        &b"whsec_!!"[..],
        b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        b"whpk_AAAA",
    ] {
        assert_eq!(
            KeyRing::new().add_standard_webhooks(b"k", bad_key),
            Err(Code::InvalidArgument)
        );
    }
}

#[test]
fn github_documented_example() {
    let v = json("github_vector.json");
    let mut ring = KeyRing::new();
    ring.add_hmac(b"gh", s(&v["secret"]).as_bytes()).unwrap();
    let headers = pairs(&[("X-Hub-Signature-256", s(&v["X-Hub-Signature-256"]))]);
    let run = |body: &[u8]| {
        with_headers(&headers, |h| {
            senders::github(&ring, h, body, &Limits::default())
        })
    };
    assert_eq!(run(s(&v["payload"]).as_bytes()).unwrap().key_index, 0);
    assert_eq!(run(b"Hello, World?"), Err(Code::SignatureMismatch));
    let wrong = pairs(&[("X-Hub-Signature-256", "sha1=757107ea")]);
    assert_eq!(
        with_headers(&wrong, |h| senders::github(
            &ring,
            h,
            b"",
            &Limits::default()
        )),
        Err(Code::MalformedSignature)
    );
    assert_eq!(
        with_headers(&[], |h| senders::github(&ring, h, b"", &Limits::default())),
        Err(Code::MissingSignature)
    );
}

#[test]
fn stripe_reference_deliveries() {
    let v = &json("senders.json")["stripe"];
    let headers = pairs(&[("Stripe-Signature", s(&v["header"]))]);
    let now = v["now"].as_i64().unwrap();
    let payload = s(&v["payload"]).as_bytes();
    let run = |ring: &KeyRing, body: &[u8], now: i64| {
        with_headers(&headers, |h| {
            senders::stripe(ring, h, body, now, &Limits::default())
        })
    };
    let mut ring = KeyRing::new();
    ring.add_hmac(b"current", s(&v["secret"]).as_bytes())
        .unwrap();
    assert_eq!(run(&ring, payload, now).unwrap().timestamp, Some(now - 5));
    // The other v1 is the previous secret's: rotation.
    let mut previous = KeyRing::new();
    previous
        .add_hmac(b"previous", b"whsec_previous_secret")
        .unwrap();
    assert!(run(&previous, payload, now).is_ok());
    assert_eq!(run(&ring, b"{}", now), Err(Code::SignatureMismatch));
    assert_eq!(run(&ring, payload, now + 301), Err(Code::Stale));
    for (header, want) in [
        ("v1=00", Code::MalformedSignature),
        ("t=1705392742", Code::UnsupportedAlg),
        ("t=17x,v1=aa", Code::MalformedSignature),
        ("t=17x,v1=".to_string().as_str(), Code::MalformedSignature),
    ] {
        let h = pairs(&[("Stripe-Signature", header)]);
        let got = with_headers(&h, |h| {
            senders::stripe(&ring, h, payload, now, &Limits::default())
        });
        assert_eq!(got.map(|_| ()), Err(want), "{header}");
    }
}
