//! Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/seed-*: valid deliveries of each
//! kind (so that the fuzzer starts past the signature checks), the JSONTestSuite documents and the
//! repository's signature header values. `make fuzz` runs it before the targets.
//!     cargo run --example fuzz_seeds
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{KeyInit, Mac};
use up42webhooks::fuzz::{HMAC_SECRET, NOW, UP42_SECRET};
use up42webhooks::headers::Headers;
use up42webhooks::journal::{self, Kind, Record};
use up42webhooks::rfc9421::{self, Base, Request};
use up42webhooks::{sign, Key, SignOptions};

fn hmac(msg: &[u8]) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn put(root: &Path, target: &str, name: &str, data: &[u8]) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("fuzz/corpus");
    let body = br#"{"event":"job.status","liveMode":false,"messageId":"377669ea-5521-416a-976a-8e290466f7fb","timestamp":"2023-11-14T22:13:20.672945Z","body":{"jobId":"FB0DA199","status":"RUNNING","tasks":[{"id":"t1","status":"NOT_STARTED","startedAt":null}]}}"#;

    // JSON: the suite's documents and a delivery body.
    let suite = repo.join("tests/vectors/json-test-suite/test_parsing");
    for e in fs::read_dir(&suite).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        put(&root, "json", &name, &fs::read(&p).unwrap());
    }
    put(&root, "json", "delivery", body);

    // UP42: a signed delivery, as header block, empty line, body.
    let signed = sign(
        &Key::new(&[UP42_SECRET]).unwrap(),
        body,
        NOW,
        &SignOptions::default(),
    )
    .unwrap();
    let up42 = [
        &b"POST /receive-webhooks HTTP/1.1\nHost: example.com\nContent-Digest: "[..],
        signed.content_digest(),
        b"\nSignature-Input: ",
        signed.signature_input(),
        b"\nSignature: ",
        signed.signature(),
        b"\n\n",
        body,
    ]
    .concat();
    put(&root, "up42", "delivery", &up42);
    put(&root, "headers", "up42", &up42);
    for (name, v) in [
        ("digest", signed.content_digest()),
        ("input", signed.signature_input()),
        ("signature", signed.signature()),
    ] {
        put(&root, "sf", name, v);
    }
    put(
        &root,
        "sf",
        "b25-input",
        &fs::read(repo.join("tests/vectors/rfc9421/b25_signature_input.txt")).unwrap(),
    );

    // RFC 9421: signed with the target's HMAC key over method, authority, target and digest.
    let digest = format!(
        "sha-256=:{}:",
        b64(&<sha2::Sha256 as sha2::Digest>::digest(body))
    );
    let input = format!(
        r#"sig=("@method" "@authority" "@target-uri" "content-digest");created={NOW};keyid="fuzz-key";alg="hmac-sha256""#
    );
    let unsigned =
        format!("Host: example.com\nContent-Digest: {digest}\nSignature-Input: {input}\n");
    let req = Request {
        method: b"POST",
        scheme: b"https",
        authority: b"example.com",
        target: b"/hook?x=1",
        headers: Headers::Raw(unsigned.as_bytes()),
    };
    let mut base = Base::default();
    let base = rfc9421::signature_base(&req, b"sig", &mut base)
        .unwrap()
        .to_vec();
    let request = format!("{unsigned}Signature: sig=:{}:\n\n", b64(&hmac(&base)));
    put(
        &root,
        "rfc9421",
        "hmac",
        &[request.as_bytes(), body].concat(),
    );
    put(&root, "headers", "rfc9421", request.as_bytes());

    // The other senders: a pick byte (0 Standard Webhooks, 1 GitHub, 2 Stripe), headers, body.
    let sw = hmac(&[format!("msg_1.{NOW}.").as_bytes(), body].concat());
    let sw = format!(
        "webhook-id: msg_1\nwebhook-timestamp: {NOW}\nwebhook-signature: v1,{}\n\n",
        b64(&sw)
    );
    put(
        &root,
        "senders",
        "standard-webhooks",
        &[&[0u8][..], sw.as_bytes(), body].concat(),
    );
    let gh = format!(
        "X-GitHub-Event: push\nX-GitHub-Delivery: 72d3\nX-Hub-Signature-256: sha256={}\n\n",
        hex(&hmac(body))
    );
    put(
        &root,
        "senders",
        "github",
        &[&[1u8][..], gh.as_bytes(), body].concat(),
    );
    let st = hmac(&[format!("{NOW}.").as_bytes(), body].concat());
    let st = format!("Stripe-Signature: t={NOW},v1={}\n\n", hex(&st));
    put(
        &root,
        "senders",
        "stripe",
        &[&[2u8][..], st.as_bytes(), body].concat(),
    );

    // The journal: a segment of an event, a cancel and a drop, after its seed.
    let seed = 0x5eed_u32;
    let mut seg = seed.to_le_bytes().to_vec();
    for (kind, key) in [
        (Kind::Event, 1),
        (Kind::Cancel, 1),
        (Kind::Event, 2),
        (Kind::Drop, 1),
    ] {
        let r = Record {
            kind,
            reason: 0,
            key,
            time: NOW,
            digest: [7; 32],
            id: b"m:377669ea",
            meta: b"job.status\tRUNNING\tfalse",
            body,
        };
        journal::encode(&r, seed, &mut seg).unwrap();
    }
    put(&root, "journal", "segment", &seg);

    // Records: a body that compresses, one that does not, and a block.
    put(&root, "record", "body", body);
    put(
        &root,
        "record",
        "padded",
        format!("{{\"pad\":\"{}\"}}", "p".repeat(900)).as_bytes(),
    );
    let mut rec = vec![0u8; 4096];
    let n =
        up42webhooks::record::write(NOW, &[b"e"], false, &body.repeat(3), false, &mut rec).unwrap();
    let at = b"C1700000000\te\t".len();
    put(&root, "record", "block", &rec[at..n]);
    println!("seeds written under {}", root.display());
}
