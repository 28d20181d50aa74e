//! RFC 9421 Appendix B.2.5 (hmac-sha256) and B.2.6 (ed25519), verified from the B.2 request by ours
//! and by the Rust crate `httpsig` (the raw crate, with the request's components built as
//! `httpsig-hyper` builds them), same process, same run. Each is first shown to accept the vector
//! and to refuse it with one byte of the signed request changed.
use std::hint::black_box;

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use httpsig::prelude::message_component::{HttpMessageComponent, HttpMessageComponentName};
use httpsig::prelude::*;
use up42webhooks::rfc9421::{self, Request};
use up42webhooks::{Headers, KeyRing};

const NOW: i64 = 1_618_884_480;

fn vector(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/rfc9421/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

/// The B.2 request's header lines (name, value) and body.
fn request() -> (Vec<(String, String)>, String) {
    let text = vector("b2_test_request.txt");
    let (head, body) = text.split_once("\n\n").unwrap();
    let headers = head
        .lines()
        .skip(1)
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    (headers, body.to_string())
}

struct Case {
    label: &'static str,
    input: String,
    signature: String,
}

fn case(b: &str, label: &'static str) -> Case {
    Case {
        label,
        input: vector(&format!("{b}_signature_input.txt")),
        signature: vector(&format!("{b}_signature.txt")),
    }
}

/// The request's header block as nginx's `raw_header()` gives it, with the case's signature.
fn raw_of(headers: &[(String, String)], c: &Case) -> String {
    let mut raw = String::from("POST /foo?param=Value&Pet=dog HTTP/1.1\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str(&format!(
        "Signature-Input: {}\r\nSignature: {}\r\n\r\n",
        c.input, c.signature
    ));
    raw
}

/// Ours, as the receiver calls it: the raw header block and the request line's parts.
fn ours(ring: &KeyRing, raw: &str, body: &[u8], c: &Case) -> bool {
    let req = Request {
        method: b"POST",
        scheme: b"https",
        authority: b"example.com",
        target: b"/foo?param=Value&Pet=dog",
        headers: Headers::Raw(raw.as_bytes()),
    };
    let opts = rfc9421::Options {
        label: c.label.as_bytes(),
        require_digest: false,
        ..rfc9421::Options::default()
    };
    rfc9421::verify(ring, &req, body, NOW, &opts).is_ok()
}

/// httpsig: parse both headers, take the label's signature, build each covered component from the
/// request (derived ones from its parts, fields from its headers), the base, then verify.
fn peer(key: &impl VerifyingKey, headers: &[(String, String)], c: &Case) -> bool {
    let Ok(map) = HttpSignatureHeaders::try_parse(&c.signature, &c.input) else {
        return false;
    };
    let Some(sig) = map.get(c.label) else {
        return false;
    };
    let params = sig.signature_params();
    let mut lines = Vec::with_capacity(params.covered_components.len());
    for id in &params.covered_components {
        let values: Vec<String> = match &id.name {
            HttpMessageComponentName::Derived(d) => vec![match d.to_string().as_str() {
                "@method" => "POST".to_string(),
                "@authority" => "example.com".to_string(),
                "@path" => "/foo".to_string(),
                "@query" => "?param=Value&Pet=dog".to_string(),
                "@target-uri" => "https://example.com/foo?param=Value&Pet=dog".to_string(),
                "@scheme" => "https".to_string(),
                _ => return false,
            }],
            HttpMessageComponentName::HttpField(name) => headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect(),
        };
        match HttpMessageComponent::try_from((id, &values[..])) {
            Ok(line) => lines.push(line),
            Err(_) => return false,
        }
    }
    let Ok(base) = HttpSignatureBase::try_new(&lines, params) else {
        return false;
    };
    base.verify_signature_headers(key, sig).is_ok()
}

fn bench(c: &mut Criterion) {
    let (headers, body) = request();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(vector("test_shared_secret.b64").trim())
        .unwrap();
    let pem = vector("test_key_ed25519_pub.pem");
    let mut ring = KeyRing::new();
    ring.add_hmac(b"test-shared-secret", &secret).unwrap();
    ring.add_ed25519_pem(Some(b"test-key-ed25519"), pem.as_bytes())
        .unwrap();
    let shared = SharedKey::from_base64(
        &AlgorithmName::HmacSha256,
        vector("test_shared_secret.b64").trim(),
    )
    .unwrap();
    let public = PublicKey::from_pem(&AlgorithmName::Ed25519, &pem).unwrap();
    // A changed byte: the covered Date header one second later.
    let mut changed = headers.clone();
    for (n, v) in &mut changed {
        if n.eq_ignore_ascii_case("date") {
            *v = v.replace("02:07:55", "02:07:56");
        }
    }
    for (name, b, label) in [("hmac", "b25", "sig-b25"), ("ed25519", "b26", "sig-b26")] {
        let k = case(b, label);
        let (raw, raw_changed) = (raw_of(&headers, &k), raw_of(&changed, &k));
        assert!(ours(&ring, &raw, body.as_bytes(), &k), "ours accepts {b}");
        assert!(
            !ours(&ring, &raw_changed, body.as_bytes(), &k),
            "ours refuses a changed {b}"
        );
        let ok = |h: &[(String, String)]| {
            if name == "hmac" {
                peer(&shared, h, &k)
            } else {
                peer(&public, h, &k)
            }
        };
        assert!(ok(&headers), "httpsig accepts {b}");
        assert!(!ok(&changed), "httpsig refuses a changed {b}");
        let mut g = c.benchmark_group(format!("peers/{name}"));
        g.bench_function("ours", |bch| {
            bch.iter(|| ours(&ring, black_box(&raw), body.as_bytes(), &k))
        });
        g.bench_function("httpsig", |bch| bch.iter(|| ok(black_box(&headers))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
