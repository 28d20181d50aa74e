//! RFC 9421 verification against the RFC's own Appendix B vectors (B.2.5 hmac-sha256, B.2.6
//! ed25519 over the B.2 test request), negative variants of them, the derived components and field
//! parameters of section 2 with the RFC's examples, and the MUST-reject rules.

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{KeyInit, Mac};
use up42webhooks::keyring::{ed25519_public_from_pem, sha512_keyid};
use up42webhooks::rfc9421::{self, Base, Options, Request};
use up42webhooks::{Alg, Code, Headers, KeyRing};

const CREATED: i64 = 1_618_884_473;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(
        crate::common::root()
            .join("tests/vectors/rfc9421")
            .join(name),
    )
    .unwrap()
}

fn text(name: &str) -> String {
    String::from_utf8(vector(name)).unwrap()
}

/// The B.2 test request: its request line, header fields and body.
struct Message {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn b2() -> Message {
        let raw = vector("b2_test_request.txt");
        let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.lines();
        let mut request_line = lines.next().unwrap().split(' ');
        let method = request_line.next().unwrap().to_string();
        let target = request_line.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        Message {
            method,
            target,
            headers,
            body: raw[split + 2..].to_vec(),
        }
    }

    fn with(mut self, name: &str, value: &str) -> Message {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn set(mut self, name: &str, value: &str) -> Message {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.with(name, value)
    }

    fn b25() -> Message {
        Message::b2()
            .with("Signature-Input", &text("b25_signature_input.txt"))
            .with("Signature", &text("b25_signature.txt"))
    }

    fn b26() -> Message {
        Message::b2()
            .with("Signature-Input", &text("b26_signature_input.txt"))
            .with("Signature", &text("b26_signature.txt"))
    }

    /// Calls `f` with the message as the verifier sees it (over https, authority from Host).
    fn with_request<T>(&self, f: impl FnOnce(&Request) -> T) -> T {
        let pairs = crate::common::byte_pairs(&self.headers);
        let host = &self.headers.iter().find(|(n, _)| n == "Host").unwrap().1;
        f(&Request {
            method: self.method.as_bytes(),
            scheme: b"https",
            authority: host.as_bytes(),
            target: self.target.as_bytes(),
            headers: Headers::Pairs(&pairs),
        })
    }

    fn base(&self, label: &str) -> Result<Vec<u8>, Code> {
        self.with_request(|req| {
            let mut base = Base::default();
            rfc9421::signature_base(req, label.as_bytes(), &mut base).map(|b| b.to_vec())
        })
    }

    fn verify_with(
        &self,
        ring: &KeyRing,
        opts: &Options,
        now: i64,
    ) -> Result<rfc9421::Verified, Code> {
        self.with_request(|req| rfc9421::verify(ring, req, &self.body, now, opts))
    }

    fn verify(&self, label: &str) -> Result<rfc9421::Verified, Code> {
        let opts = Options {
            label: label.as_bytes(),
            require_digest: false, // B.2.5 and B.2.6 do not cover content-digest
            ..Options::default()
        };
        self.verify_with(&ring(), &opts, CREATED + 10)
    }
}

fn shared_secret() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(vector("test_shared_secret.b64"))
        .unwrap()
}

fn signing_key() -> SigningKey {
    // PKCS #8 for Ed25519 (RFC 8410): a fixed 16-byte prefix, then the 32-byte seed.
    let pem = text("test_key_ed25519_priv.pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(der.len(), 48);
    SigningKey::from_bytes(&der[16..48].try_into().unwrap())
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.add_hmac(b"test-shared-secret", &shared_secret())
        .unwrap();
    ring.add_ed25519_pem(
        Some(b"test-key-ed25519"),
        &vector("test_key_ed25519_pub.pem"),
    )
    .unwrap();
    ring
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn appendix_b_signature_bases_are_byte_exact() {
    assert_eq!(
        Message::b25().base("sig-b25").unwrap(),
        vector("b25_signature_base.txt")
    );
    assert_eq!(
        Message::b26().base("sig-b26").unwrap(),
        vector("b26_signature_base.txt")
    );
    // The first signature when no label is given.
    assert_eq!(
        Message::b25().base("").unwrap(),
        vector("b25_signature_base.txt")
    );
}

#[test]
fn appendix_b_signatures_verify() {
    let v = Message::b25().verify("sig-b25").unwrap();
    assert_eq!(
        (v.alg, v.key_index, v.created),
        (Alg::HmacSha256, 0, Some(CREATED))
    );
    let v = Message::b26().verify("sig-b26").unwrap();
    assert_eq!(
        (v.alg, v.key_index, v.created),
        (Alg::Ed25519, 1, Some(CREATED))
    );
    // Both on one request, each found by its label.
    let both = Message::b25()
        .set(
            "Signature-Input",
            &format!(
                "{}, {}",
                text("b25_signature_input.txt"),
                text("b26_signature_input.txt")
            ),
        )
        .set(
            "Signature",
            &format!(
                "{}, {}",
                text("b25_signature.txt"),
                text("b26_signature.txt")
            ),
        );
    assert_eq!(both.verify("sig-b26").unwrap().alg, Alg::Ed25519);
    assert_eq!(both.verify("sig-b25").unwrap().alg, Alg::HmacSha256);
    // The verifier's own key ids do not matter beyond matching keyid.
    assert_eq!(ring().keyid(1), Some(&b"test-key-ed25519"[..]));
}

#[test]
fn appendix_b_negative_variants_fail() {
    // One byte changed in a covered field.
    let m = Message::b25().set("Date", "Tue, 20 Apr 2021 02:07:56 GMT");
    assert_eq!(m.verify("sig-b25"), Err(Code::SignatureMismatch));
    let m = Message::b26().set("Content-Type", "application/jsoN");
    assert_eq!(m.verify("sig-b26"), Err(Code::SignatureMismatch));
    // One byte changed in the signature.
    let mut sig = text("b26_signature.txt");
    sig.replace_range(9..10, if &sig[9..10] == "w" { "x" } else { "w" });
    let m = Message::b26().set("Signature", &sig);
    assert_eq!(m.verify("sig-b26"), Err(Code::SignatureMismatch));

    // Signatures over the base with a trailing newline: right key, wrong base.
    let base = [vector("b25_signature_base.txt"), b"\n".to_vec()].concat();
    let m = Message::b25().set(
        "Signature",
        &format!("sig-b25=:{}:", b64(&hmac(&shared_secret(), &base))),
    );
    assert_eq!(m.verify("sig-b25"), Err(Code::SignatureMismatch));
    let base = [vector("b26_signature_base.txt"), b"\n".to_vec()].concat();
    let sig = signing_key().sign(&base).to_bytes();
    let m = Message::b26().set("Signature", &format!("sig-b26=:{}:", b64(&sig)));
    assert_eq!(m.verify("sig-b26"), Err(Code::SignatureMismatch));
    // ...and the same signers over the exact base do verify: the variants fail for the newline alone.
    let exact = hmac(&shared_secret(), &vector("b25_signature_base.txt"));
    assert_eq!(
        b64(&exact),
        text("b25_signature.txt")["sig-b25=:".len()..].trim_end_matches(':')
    );
    let sig = signing_key()
        .sign(&vector("b26_signature_base.txt"))
        .to_bytes();
    assert_eq!(
        b64(&sig),
        text("b26_signature.txt")["sig-b26=:".len()..].trim_end_matches(':')
    );

    // The base64 text of the shared secret used as the key.
    let mut wrong = KeyRing::new();
    wrong
        .add_hmac(b"test-shared-secret", &vector("test_shared_secret.b64"))
        .unwrap();
    let opts = Options {
        label: b"sig-b25",
        require_digest: false,
        ..Options::default()
    };
    assert_eq!(
        Message::b25().verify_with(&wrong, &opts, CREATED),
        Err(Code::SignatureMismatch)
    );

    // The signatures swapped between the two inputs: wrong length for the key's algorithm.
    let swapped = Message::b25().set(
        "Signature",
        &text("b26_signature.txt").replace("sig-b26", "sig-b25"),
    );
    assert_eq!(swapped.verify("sig-b25"), Err(Code::MalformedSignature));
    let swapped = Message::b26().set(
        "Signature",
        &text("b25_signature.txt").replace("sig-b25", "sig-b26"),
    );
    assert_eq!(swapped.verify("sig-b26"), Err(Code::MalformedSignature));
}

/// A request signed here with the B.2.5 key: `covered` and `params` as in Signature-Input.
fn signed(m: Message, covered: &str, params: &str) -> Message {
    let m = m
        .set("Signature-Input", &format!("sig=({covered}){params}"))
        .set("Signature", "sig=:AAAA:");
    let base = m.base("sig").unwrap();
    let tag = hmac(&shared_secret(), &base);
    m.set("Signature", &format!("sig=:{}:", b64(&tag)))
}

fn hmac_only() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.add_hmac(b"test-shared-secret", &shared_secret())
        .unwrap();
    ring
}

fn check(m: &Message, opts: &Options) -> Result<rfc9421::Verified, Code> {
    m.verify_with(&hmac_only(), opts, CREATED + 1)
}

const PARAMS: &str = ";created=1618884473;keyid=\"test-shared-secret\"";

#[test]
fn the_rules_of_sections_2_5_and_3_2() {
    let lenient = Options {
        require_digest: false,
        ..Options::default()
    };
    let ok = signed(Message::b2(), "\"date\" \"@method\"", PARAMS);
    assert!(check(&ok, &lenient).is_ok());
    for (covered, params, want) in [
        ("\"date\" \"date\"", PARAMS, Code::DuplicateComponent),
        ("\"@method\" \"@foo\"", PARAMS, Code::UnsupportedComponent),
        ("\"date\";xyz", PARAMS, Code::UnsupportedComponent),
        ("\"@method\";req", PARAMS, Code::UnsupportedComponent),
        ("\"date\";tr", PARAMS, Code::UnsupportedComponent),
        ("\"x-missing\"", PARAMS, Code::MissingComponent),
        ("\"@status\"", PARAMS, Code::UnsupportedComponent),
        (
            "\"@signature-params\"",
            PARAMS,
            Code::MalformedSignatureInput,
        ),
        ("\"Date\"", PARAMS, Code::MalformedSignatureInput),
        ("date", PARAMS, Code::MalformedSignatureInput),
        ("\"content-type\";sf", PARAMS, Code::UnsupportedComponent),
        ("\"date\";bs;sf", PARAMS, Code::MalformedSignatureInput),
        (
            "\"@query-param\";name=\"nope\"",
            PARAMS,
            Code::MissingComponent,
        ),
        (
            "\"date\"",
            ";keyid=\"test-shared-secret\"",
            Code::MissingCreated,
        ),
        (
            "\"date\"",
            ";created=1618884473;keyid=\"other\"",
            Code::UnknownKey,
        ),
        (
            "\"date\"",
            ";created=1618884473;keyid=\"test-shared-secret\";alg=\"ed25519\"",
            Code::AlgMismatch,
        ),
        (
            "\"date\"",
            ";created=1618884473;keyid=\"test-shared-secret\";alg=\"rsa-v1_5-sha256\"",
            Code::UnsupportedAlg,
        ),
        (
            "\"date\"",
            ";created=\"1618884473\"",
            Code::MalformedSignatureInput,
        ),
        (
            "\"date\"",
            ";created=1618880000;keyid=\"test-shared-secret\"",
            Code::Stale,
        ),
        (
            "\"date\"",
            ";created=1618890000;keyid=\"test-shared-secret\"",
            Code::Future,
        ),
        (
            "\"date\"",
            ";created=1618884473;expires=1618884400;keyid=\"test-shared-secret\"",
            Code::Expired,
        ),
    ] {
        let m = Message::b2()
            .set("Signature-Input", &format!("sig=({covered}){params}"))
            .set("Signature", "sig=:AAAA:");
        // Where a base can be built, sign it properly, so that only the rule under test fails.
        let m = match m.base("sig") {
            Ok(base) => {
                let tag = hmac(&shared_secret(), &base);
                m.set("Signature", &format!("sig=:{}:", b64(&tag)))
            }
            Err(_) => m,
        };
        assert_eq!(
            check(&m, &lenient).map(|_| ()),
            Err(want),
            "{covered} {params}"
        );
    }

    // The label in one field but not the other.
    let sig = ok_sig(&ok);
    let ok_again = signed(Message::b2(), "\"date\" \"@method\"", PARAMS);
    let m = ok_again.set("Signature", &format!("other={sig}"));
    assert_eq!(
        check(&m, &lenient).map(|_| ()),
        Err(Code::SignatureLabelMissing)
    );
    let opts = Options {
        label: b"other",
        ..lenient
    };
    assert_eq!(check(&ok, &opts).map(|_| ()), Err(Code::UnknownLabel));

    // A covered value that is not ASCII.
    let m = Message::b2().set("X-Name", "caf\u{e9}");
    let m = m
        .set("Signature-Input", &format!("sig=(\"x-name\"){PARAMS}"))
        .set("Signature", "sig=:AAAA:");
    assert_eq!(m.base("sig"), Err(Code::NonAsciiBase));
    assert_eq!(check(&m, &lenient).map(|_| ()), Err(Code::NonAsciiBase));
    // ...which the bs parameter carries.
    let m = signed(
        Message::b2().set("X-Name", "caf\u{e9}"),
        "\"x-name\";bs",
        PARAMS,
    );
    assert!(check(&m, &lenient).is_ok());

    // Required components and the body digest.
    let strict = Options {
        required: b"\"@method\", \"@authority\"",
        ..lenient
    };
    assert_eq!(
        check(&ok, &strict).map(|_| ()),
        Err(Code::RequiredComponentNotCovered)
    );
    assert_eq!(
        check(&ok, &Options::default()).map(|_| ()),
        Err(Code::DigestNotCovered)
    );
    let with_digest = signed(
        Message::b2(),
        "\"@method\" \"@authority\" \"content-digest\"",
        PARAMS,
    );
    assert!(check(
        &with_digest,
        &Options {
            required: strict.required,
            ..Options::default()
        }
    )
    .is_ok());
    let mut tampered = with_digest;
    tampered.body[2] ^= 1;
    assert_eq!(
        check(&tampered, &Options::default()).map(|_| ()),
        Err(Code::DigestMismatch)
    );
}

fn ok_sig(m: &Message) -> String {
    let sig = &m.headers.iter().find(|(n, _)| n == "Signature").unwrap().1;
    sig["sig=".len()..].to_string()
}

fn base_lines(m: Message, covered: &str) -> Vec<String> {
    let m = m
        .set("Signature-Input", &format!("sig=({covered})"))
        .set("Signature", "sig=:AAAA:");
    let base = String::from_utf8(m.base("sig").unwrap()).unwrap();
    base.lines().map(str::to_string).collect()
}

#[test]
fn derived_components_as_section_2_2_shows_them() {
    let m = Message {
        method: "POST".into(),
        target: "/path?param=value&foo=bar&baz=batman&qux=".into(),
        headers: vec![("Host".into(), "www.Example.com:443".into())],
        body: vec![],
    };
    let lines = base_lines(
        m,
        "\"@method\" \"@target-uri\" \"@authority\" \"@scheme\" \"@request-target\" \"@path\" \"@query\" \"@query-param\";name=\"baz\" \"@query-param\";name=\"qux\"",
    );
    assert_eq!(
        &lines[..9],
        [
            "\"@method\": POST",
            "\"@target-uri\": https://www.example.com/path?param=value&foo=bar&baz=batman&qux=",
            "\"@authority\": www.example.com",
            "\"@scheme\": https",
            "\"@request-target\": /path?param=value&foo=bar&baz=batman&qux=",
            "\"@path\": /path",
            "\"@query\": ?param=value&foo=bar&baz=batman&qux=",
            "\"@query-param\";name=\"baz\": batman",
            "\"@query-param\";name=\"qux\": ",
        ]
    );
    // Percent-encoding is normalised (section 2.2.8's example).
    let m = Message {
        method: "GET".into(),
        target: "/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something".into(),
        headers: vec![("Host".into(), "example.com".into())],
        body: vec![],
    };
    let lines = base_lines(
        m,
        "\"@query-param\";name=\"var\" \"@query-param\";name=\"bar\" \"@query-param\";name=\"fa%C3%A7ade%22%3A%20\"",
    );
    assert_eq!(
        &lines[..3],
        [
            "\"@query-param\";name=\"var\": this%20is%20a%20big%0Amultiline%20value",
            "\"@query-param\";name=\"bar\": with%20plus%20whitespace",
            "\"@query-param\";name=\"fa%C3%A7ade%22%3A%20\": something",
        ]
    );
    // No query: "?"; empty path: "/"; a name sent twice cannot be signed alone.
    let m = Message {
        method: "GET".into(),
        target: "".into(),
        headers: vec![("Host".into(), "example.com".into())],
        body: vec![],
    };
    assert_eq!(
        &base_lines(m, "\"@query\" \"@path\"")[..2],
        ["\"@query\": ?", "\"@path\": /"]
    );
    let m = Message {
        method: "GET".into(),
        target: "/?a=1&a=2".into(),
        headers: vec![("Host".into(), "example.com".into())],
        body: vec![],
    }
    .set("Signature-Input", "sig=(\"@query-param\";name=\"a\")")
    .set("Signature", "sig=:AAAA:");
    assert_eq!(m.base("sig"), Err(Code::UnsupportedComponent));
}

#[test]
fn field_parameters_as_section_2_1_shows_them() {
    let m = Message::b2()
        .with("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)")
        .with("Example-Header", "value, with, lots")
        .with("Example-Header", "of, commas")
        .with("Cache-Control", "max-age=60")
        .with("Cache-Control", "   must-revalidate");
    let lines = base_lines(
        m,
        "\"example-dict\";sf \"example-dict\";key=\"a\" \"example-dict\";key=\"b\" \"example-dict\";key=\"c\" \"example-header\" \"example-header\";bs \"cache-control\"",
    );
    assert_eq!(
        &lines[..7],
        [
            "\"example-dict\";sf: a=1, b=2;x=1;y=2, c=(a b c)",
            "\"example-dict\";key=\"a\": 1",
            "\"example-dict\";key=\"b\": 2;x=1;y=2",
            "\"example-dict\";key=\"c\": (a b c)",
            "\"example-header\": value, with, lots, of, commas",
            "\"example-header\";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:",
            "\"cache-control\": max-age=60, must-revalidate",
        ]
    );
    // A long line in bs is encoded whole (the encoder works in pieces).
    let long: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let lines = base_lines(Message::b2().with("X-Long", &long), "\"x-long\";bs");
    assert_eq!(
        lines[0],
        format!("\"x-long\";bs: :{}:", b64(long.as_bytes()))
    );
    // The @signature-params line is the re-serialized inner list with its parameters.
    let m = Message::b2()
        .set(
            "Signature-Input",
            "sig=(\"date\"   \"@method\");created=01618884473;flag=?1;tag=\"t\"",
        )
        .set("Signature", "sig=:AAAA:");
    let base = String::from_utf8(m.base("sig").unwrap()).unwrap();
    let last: Vec<&str> = base.lines().collect();
    assert_eq!(
        *last.last().unwrap(),
        "\"@signature-params\": (\"date\" \"@method\");created=1618884473;flag;tag=\"t\""
    );
}

#[test]
fn ed25519_keys_from_pem_and_the_ubiops_key_id() {
    let public = ed25519_public_from_pem(&vector("test_key_ed25519_pub.pem")).unwrap();
    assert_eq!(public, signing_key().verifying_key().to_bytes());
    let id = sha512_keyid(&public);
    let hex: String = {
        use sha2::Digest;
        sha2::Sha512::digest(public)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(
        String::from_utf8(id.to_vec()).unwrap(),
        format!("sha512:{hex}")
    );
    let mut ring = KeyRing::new();
    assert_eq!(
        ring.add_ed25519_pem(None, &vector("test_key_ed25519_pub.pem")),
        Ok(0)
    );
    assert_eq!(ring.keyid(0), Some(&id[..]));
    // Not a public key, a private one, garbage, a duplicate id, a weak key.
    for bad in [
        &vector("test_key_ed25519_priv.pem")[..],
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        b"",
    ] {
        assert_eq!(
            KeyRing::new().add_ed25519_pem(None, bad),
            Err(Code::InvalidArgument)
        );
    }
    assert_eq!(ring.add_ed25519(&id, &public), Err(Code::InvalidArgument));
    assert_eq!(
        KeyRing::new().add_ed25519(b"zero", &[0u8; 32]),
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        KeyRing::new().add_hmac(b"", b"x"),
        Err(Code::InvalidArgument)
    );
}
