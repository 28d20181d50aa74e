//! Every failure code is reachable, each from the input that should produce it.

use std::collections::HashSet;
use std::ptr::{null, null_mut};

use crate::common::CKey;
use up42webhooks::ffi::{self, up42wh_options};
use up42webhooks::rfc9421::{self, Base, Options as R9421, Request};
use up42webhooks::{check_timestamp, verify, Code, Headers, Key, KeyRing, Options};

/// An RFC 9421 request with one HMAC signature over `input` (properly signed when a base can be
/// built), verified with key "k" and `opts` (content-digest not required).
fn rfc9421_verify(input: &str, opts: &R9421) -> Result<(), Code> {
    use hmac::{KeyInit, Mac};
    let mut headers: Vec<(&[u8], &[u8])> = vec![
        (b"Host", b"example.com"),
        (b"Date", b"Tue, 14 Nov 2023 22:13:20 GMT"),
        (b"X-Name", b"caf\xe9"),
        (b"Signature-Input", b""),
        (b"Signature", b"sig=:AAAA:"),
    ];
    let input = format!("sig={input}");
    headers[3].1 = input.as_bytes();
    fn req<'a>(headers: Headers<'a>) -> Request<'a> {
        Request {
            method: b"POST",
            scheme: b"https",
            authority: b"example.com",
            target: b"/hook",
            headers,
        }
    }
    let mut base = Base::default();
    let built = rfc9421::signature_base(&req(Headers::Pairs(&headers)), b"sig", &mut base)
        .map(|b| b.to_vec());
    let signature = match built {
        Ok(base) => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"secret").unwrap();
            mac.update(&base);
            let tag = mac.finalize().into_bytes();
            use base64::Engine;
            format!(
                "sig=:{}:",
                base64::engine::general_purpose::STANDARD.encode(tag)
            )
        }
        Err(_) => "sig=:AAAA:".to_string(),
    };
    headers[4].1 = signature.as_bytes();
    let mut ring = KeyRing::new();
    ring.add_hmac(b"k", b"secret").unwrap();
    let opts = R9421 {
        require_digest: false,
        ..*opts
    };
    rfc9421::verify(&ring, &req(Headers::Pairs(&headers)), b"", NOW, &opts).map(|_| ())
}

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"The quick fox jumped over the lazy dog";

/// A delivery's headers, with whatever changes a case makes.
#[derive(Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    fn valid() -> Delivery {
        let body = br#"{"event":"job.status","messageId":"m1","timestamp":"2023-11-14T22:13:20Z"}"#
            .to_vec();
        let secret = std::str::from_utf8(SECRET).unwrap();
        Delivery {
            headers: crate::common::signed_headers(&body, secret, NOW),
            body,
        }
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn get(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1
            .clone()
    }

    /// Re-signs with a Signature-Input member of our choosing; the HMAC covers the listed fields.
    fn resign(self, inner: &str, covered: &[&str]) -> Self {
        let msg: String = covered.iter().map(|c| self.get(c)).collect();
        let tag = Key::new(&[SECRET]).unwrap().tag(0, msg.as_bytes());
        use base64::Engine;
        let sig = format!(
            "up42-sig={}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        );
        self.set("Signature-Input", &format!("up42-sig={inner}"))
            .set("Signature", &sig)
    }

    fn verify_at(&self, now: i64) -> Result<(), Code> {
        let pairs = crate::common::byte_pairs(&self.headers);
        let key = Key::new(&[SECRET]).unwrap();
        let rust = verify(
            &key,
            &Headers::Pairs(&pairs),
            &self.body,
            now,
            &Options::default(),
        )
        .map(|_| ());
        let c = CKey::new(&[SECRET])
            .unwrap()
            .verify(&pairs, &self.body, now)
            .map(|_| ());
        assert_eq!(rust, c, "the Rust API and the C ABI agree");
        rust
    }

    fn verify(&self) -> Result<(), Code> {
        self.verify_at(NOW + 1)
    }
}

#[test]
fn every_failure_code_is_reached() {
    let mut seen = HashSet::new();
    let mut expect = |got: Result<(), Code>, want: Code, what: &str| {
        assert_eq!(
            got,
            if want == Code::Ok { Ok(()) } else { Err(want) },
            "{what}"
        );
        seen.insert(want);
    };
    let d = Delivery::valid();
    expect(d.verify(), Code::Ok, "valid delivery");

    // Arguments.
    let code = unsafe { ffi::up42wh_verify(null(), null(), 0, null(), 0, NOW, null(), null_mut()) };
    expect(Err(code), Code::NullArgument, "NULL key");
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let code = ffi::guard(|| panic!("simulated bug"));
    std::panic::set_hook(prev);
    expect(Err(code), Code::Panic, "a panic inside the boundary");
    expect(
        Key::new::<&[u8]>(&[]).map(|_| ()),
        Code::InvalidArgument,
        "no secrets",
    );
    let bad_label = Options {
        label: b"Up42-Sig",
        ..Options::default()
    };
    let pairs: Vec<(&[u8], &[u8])> = vec![];
    let key = Key::new(&[SECRET]).unwrap();
    expect(
        verify(&key, &Headers::Pairs(&pairs), b"", NOW, &bad_label).map(|_| ()),
        Code::InvalidArgument,
        "label",
    );
    let big = Delivery {
        body: vec![b'x'; (1 << 20) + 1],
        ..d.clone()
    };
    expect(big.verify(), Code::BodyTooLarge, "body over 1 MiB");

    // Header block.
    let raw = b"POST / HTTP/1.1\r\nHost: a\r\nthis line has no colon\r\n\r\n";
    expect(
        verify(&key, &Headers::Raw(raw), b"", NOW, &Options::default()).map(|_| ()),
        Code::MalformedHeaders,
        "raw",
    );
    let long = format!("{}, x=(\"{}\")", d.get("Signature-Input"), "a".repeat(5000));
    expect(
        d.clone().set("Signature-Input", &long).verify(),
        Code::HeaderTooLarge,
        "long Signature-Input",
    );

    // Signature-Input.
    expect(
        d.clone().without("Signature-Input").verify(),
        Code::MissingSignatureInput,
        "no Signature-Input",
    );
    for bad in [
        r#"up42-sig=("content-digest""#,
        "up42-sig=1",
        r#"up42-sig=("content-digest");created="1""#,
        "up42-sig=(content-digest);created=1",
    ] {
        expect(
            d.clone().set("Signature-Input", bad).verify(),
            Code::MalformedSignatureInput,
            bad,
        );
    }
    expect(
        d.clone()
            .set("Signature-Input", r#"sig1=("content-digest");created=1"#)
            .verify(),
        Code::UnknownLabel,
        "label",
    );
    expect(
        d.clone()
            .resign(
                r#"("content-digest");alg="rsa-pss-sha512";created=1700000000"#,
                &["content-digest"],
            )
            .verify(),
        Code::UnsupportedAlg,
        "alg",
    );
    expect(
        d.clone()
            .resign(
                r#"("@method" "content-digest");created=1700000000"#,
                &["content-digest"],
            )
            .verify(),
        Code::UnsupportedComponent,
        "derived component",
    );
    expect(
        d.clone()
            .resign(
                r#"("content-digest";sf);created=1700000000"#,
                &["content-digest"],
            )
            .verify(),
        Code::UnsupportedComponent,
        "component parameter",
    );
    expect(
        d.clone()
            .resign(
                r#"("content-digest" "content-digest");created=1700000000"#,
                &["content-digest", "content-digest"],
            )
            .verify(),
        Code::DuplicateComponent,
        "duplicate",
    );
    expect(
        d.clone()
            .resign(
                r#"("content-digest" "x-extra");created=1700000000"#,
                &["content-digest"],
            )
            .verify(),
        Code::MissingComponent,
        "covered header absent",
    );
    expect(
        d.clone()
            .resign(r#"("content-digest");alg=hmac-sha256"#, &["content-digest"])
            .verify(),
        Code::MissingCreated,
        "no created",
    );
    expect(
        d.clone()
            .resign(r#"("content-type");created=1700000000"#, &["content-type"])
            .verify(),
        Code::DigestNotCovered,
        "digest not covered",
    );
    // Covering more fields works when they are present, and the signed string is their concatenation.
    expect(
        d.clone()
            .resign(
                r#"("content-type" "content-digest");created=1700000000"#,
                &["content-type", "content-digest"],
            )
            .verify(),
        Code::Ok,
        "two fields",
    );

    // Signature.
    expect(
        d.clone().without("Signature").verify(),
        Code::MissingSignature,
        "no Signature",
    );
    for bad in [
        "up42-sig=!!!",
        "up42-sig=AAAA",
        "up42-sig=?1",
        "up42-sig=:AAAA:",
    ] {
        expect(
            d.clone().set("Signature", bad).verify(),
            Code::MalformedSignature,
            bad,
        );
    }
    expect(
        d.clone().set("Signature", "sig1=:AAAA:").verify(),
        Code::SignatureLabelMissing,
        "other label",
    );
    let mut flipped = d.get("Signature").into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    expect(
        d.clone()
            .set("Signature", std::str::from_utf8(&flipped).unwrap())
            .verify(),
        Code::SignatureMismatch,
        "tag changed",
    );

    // Content-Digest.
    expect(
        d.clone().without("Content-Digest").verify(),
        Code::DigestMissing,
        "no Content-Digest",
    );
    expect(
        d.clone().set("Content-Digest", "SHA-256=:AAAA:").verify(),
        Code::MalformedDigest,
        "short digest",
    );
    expect(
        d.clone().set("Content-Digest", "SHA-256=(a b)").verify(),
        Code::MalformedDigest,
        "not a byte sequence",
    );
    expect(
        d.clone()
            .set("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")
            .verify(),
        Code::UnsupportedDigest,
        "md5 only",
    );
    let tampered = Delivery {
        body: b"{}".to_vec(),
        ..d.clone()
    };
    expect(tampered.verify(), Code::DigestMismatch, "body changed");

    // Time.
    expect(d.verify_at(NOW + 301), Code::Stale, "old");
    expect(d.verify_at(NOW - 31), Code::Future, "ahead");
    let exp = d.clone().resign(
        r#"("content-digest");created=1700000000;expires=1700000010"#,
        &["content-digest"],
    );
    expect(exp.verify_at(NOW + 41), Code::Expired, "expired");
    expect(
        check_timestamp(b"2023-11-14 22:13:20", NOW, &Options::default()).map(|_| ()),
        Code::MalformedTimestamp,
        "timestamp",
    );
    expect(
        check_timestamp(b"2023-11-14T22:08:19Z", NOW, &Options::default()).map(|_| ()),
        Code::Stale,
        "old timestamp",
    );
    expect(
        check_timestamp(b"2023-11-14T22:13:51Z", NOW, &Options::default()).map(|_| ()),
        Code::Future,
        "timestamp ahead",
    );
    expect(
        check_timestamp(b"2023-11-14T23:13:20+01:00", NOW, &Options::default()).map(|_| ()),
        Code::Ok,
        "offset",
    );

    // The codes only RFC 9421 signatures give.
    for (input, opts, want, what) in [
        (
            "(\"date\");created=1700000000;keyid=\"k\"",
            R9421::default(),
            Code::Ok,
            "RFC 9421 HMAC",
        ),
        (
            "(\"date\");created=1700000000;keyid=\"other\"",
            R9421::default(),
            Code::UnknownKey,
            "unknown keyid",
        ),
        (
            "(\"date\");created=1700000000;keyid=\"k\";alg=\"ed25519\"",
            R9421::default(),
            Code::AlgMismatch,
            "alg of another key type",
        ),
        (
            "(\"x-name\");created=1700000000;keyid=\"k\"",
            R9421::default(),
            Code::NonAsciiBase,
            "obs-text in a covered field",
        ),
        (
            "(\"date\");created=1700000000;keyid=\"k\"",
            R9421 {
                required: b"\"@method\"",
                ..R9421::default()
            },
            Code::RequiredComponentNotCovered,
            "required component not covered",
        ),
    ] {
        expect(rfc9421_verify(input, &opts), want, what);
    }

    // The journal: a directory that is not there, and the end of an empty journal.
    let mut writer = null_mut();
    let mut err = 0;
    let nowhere = b"/nonexistent/up42wh-journal";
    let code = unsafe {
        up42webhooks::ffi::up42wh_journal_open(
            nowhere.as_ptr(),
            nowhere.len(),
            1,
            &mut writer,
            &mut err,
        )
    };
    expect(Err(code), Code::JournalIo, "journal in a missing directory");
    assert_eq!(err, 2, "ENOENT");
    let empty = std::env::temp_dir().join(format!("up42wh-codes-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let path = empty.to_str().unwrap();
    let mut reader = null_mut();
    unsafe {
        use up42webhooks::ffi::*;
        let code = up42wh_journal_reader_open(path.as_ptr(), path.len(), 0, &mut reader, &mut err);
        assert_eq!(code, Code::Ok);
        let mut rec = std::mem::zeroed();
        expect(
            Err(up42wh_journal_reader_next(reader, &mut rec)),
            Code::JournalEnd,
            "the end of a journal",
        );
        up42wh_journal_reader_free(reader);
    }
    std::fs::remove_dir_all(&empty).unwrap();

    // More signatures than are checked: refused before any is.
    let mut ring = up42webhooks::KeyRing::new();
    ring.add_hmac(b"k", b"secret").unwrap();
    let ts = NOW.to_string();
    let sigs = ["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 9].join(" ");
    let pairs: [(&[u8], &[u8]); 3] = [
        (b"webhook-id", b"msg_1"),
        (b"webhook-timestamp", ts.as_bytes()),
        (b"webhook-signature", sigs.as_bytes()),
    ];
    expect(
        up42webhooks::senders::standard_webhooks(
            &ring,
            &up42webhooks::Headers::Pairs(&pairs),
            b"{}",
            NOW,
            &up42webhooks::senders::Limits::default(),
        )
        .map(|_| ()),
        Code::TooManySignatures,
        "nine Standard Webhooks signatures",
    );

    // The body, read after the signature verified: exactly one object, the members the store
    // reads once each and of a size it keeps.
    let body = |b: &[u8]| {
        let mut d = up42webhooks::delivery::Delivery::default();
        let read = up42webhooks::delivery::Read {
            scheme: up42webhooks::Scheme::Up42,
            nonce: b"",
            prefix: b"",
            now: NOW,
            limits: &up42webhooks::Limits::default(),
        };
        read.fill(&Headers::Raw(b""), b, &mut d)
    };
    expect(body(b"{} {}"), Code::NotJsonObject, "two objects");
    expect(
        body(br#"{"timestamp":"2023-11-14T22:13:20Z","event":"a","event":"b"}"#),
        Code::DuplicateField,
        "event twice",
    );
    let long = format!(
        r#"{{"timestamp":"2023-11-14T22:13:20Z","messageId":"{}"}}"#,
        "m".repeat(257)
    );
    expect(
        body(long.as_bytes()),
        Code::InvalidField,
        "a 257-byte messageId",
    );

    // A struct of a size this library does not know (a caller built against another header).
    unsafe {
        use up42webhooks::ffi::*;
        let (mut h, mut ring) = (null_mut(), null_mut());
        assert_eq!(up42wh_deliverer_new(0, &mut h), Code::Ok);
        assert_eq!(up42wh_keyring_new(&mut ring), Code::Ok);
        let mut opts = std::mem::zeroed();
        assert_eq!(
            up42wh_message_options_init(&mut opts, up42webhooks::Scheme::Up42 as u32),
            Code::Ok
        );
        let req: up42wh_request = std::mem::zeroed();
        let mut args: up42wh_deliver_args = std::mem::zeroed();
        let mut out: up42wh_delivered = std::mem::zeroed();
        out.size = std::mem::size_of::<up42wh_delivered>();
        args.size = 8;
        expect(
            Err(up42wh_deliver(h, ring, &req, NOW, &opts, &args, &mut out)),
            Code::StructSize,
            "up42wh_deliver_args of 8 bytes",
        );
        up42wh_keyring_free(ring);
        up42wh_deliverer_free(h);
    }

    let missing: Vec<_> = Code::ALL.iter().filter(|c| !seen.contains(c)).collect();
    assert!(missing.is_empty(), "codes no test reached: {missing:?}");
}

#[test]
fn c_abi_handles_null_and_bad_arguments() {
    unsafe {
        ffi::up42wh_key_free(null_mut());
        let mut key = null_mut();
        assert_eq!(ffi::up42wh_key_new(null(), 1, &mut key), Code::NullArgument);
        let s = ffi::up42wh_slice {
            ptr: null(),
            len: 3,
        };
        assert_eq!(ffi::up42wh_key_new(&s, 1, &mut key), Code::NullArgument);
        let s = ffi::up42wh_slice {
            ptr: SECRET.as_ptr(),
            len: 0,
        };
        assert_eq!(ffi::up42wh_key_new(&s, 1, &mut key), Code::InvalidArgument);
        assert_eq!(ffi::up42wh_key_new(&s, 17, &mut key), Code::InvalidArgument);
        assert!(key.is_null());

        let k = CKey::new(&[SECRET]).unwrap();
        let h = ffi::up42wh_header {
            name: null(),
            name_len: 4,
            value: null(),
            value_len: 0,
        };
        let code = ffi::up42wh_verify(k.0, &h, 1, null(), 0, NOW, null(), null_mut());
        assert_eq!(code, Code::NullArgument);
        assert_eq!(
            ffi::up42wh_verify(k.0, null(), 2, null(), 0, NOW, null(), null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_verify_raw(k.0, null(), 5, null(), 0, NOW, null(), null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_verify_raw(k.0, null(), 0, null(), 7, NOW, null(), null_mut()),
            Code::NullArgument
        );
        // No headers at all is a verification failure, not a crash.
        assert_eq!(
            ffi::up42wh_verify(k.0, null(), 0, null(), 0, NOW, null(), null_mut()),
            Code::MissingSignatureInput
        );

        let mut opts = std::mem::zeroed::<up42wh_options>();
        assert_eq!(ffi::up42wh_options_init(&mut opts), Code::Ok);
        assert_eq!(
            (opts.max_age, opts.max_future, opts.max_body),
            (300, 30, 1 << 20)
        );
        assert_eq!(ffi::up42wh_options_init(null_mut()), Code::NullArgument);
        opts.max_age = -1;
        assert_eq!(
            ffi::up42wh_check_timestamp(b"x".as_ptr(), 1, NOW, &opts, null_mut()),
            Code::InvalidArgument
        );

        let mut so = std::mem::zeroed::<ffi::up42wh_sign_options>();
        assert_eq!(ffi::up42wh_sign_options_init(&mut so), Code::Ok);
        so.digest = 7;
        let mut out = ffi::up42wh_signed::default();
        assert_eq!(
            ffi::up42wh_sign(k.0, null(), 0, NOW, &so, &mut out),
            Code::InvalidArgument
        );
        assert_eq!(out.signature_len, 0, "nothing written on failure");
        assert_eq!(
            ffi::up42wh_sign(k.0, null(), 0, NOW, null(), null_mut()),
            Code::NullArgument
        );
        assert_eq!(
            ffi::up42wh_sign(null(), null(), 0, NOW, null(), &mut out),
            Code::NullArgument
        );
        // A created time of 16 digits would be written, then refused by every verifier.
        assert_eq!(
            ffi::up42wh_sign(k.0, null(), 0, 1_000_000_000_000_000, null(), &mut out),
            Code::InvalidArgument
        );
        assert_eq!(out.signature_len, 0, "nothing written on failure");
    }
}

#[test]
fn names_and_messages_are_static_c_strings() {
    use std::ffi::CStr;
    for code in Code::ALL {
        let name = unsafe { CStr::from_ptr(ffi::up42wh_result_name(code as u32)) };
        let msg = unsafe { CStr::from_ptr(ffi::up42wh_result_message(code as u32)) };
        assert_eq!(name.to_str().unwrap(), code.name());
        assert!(!msg.to_bytes().is_empty());
    }
    let unknown = unsafe { CStr::from_ptr(ffi::up42wh_result_name(9999)) };
    assert_eq!(unknown.to_str().unwrap(), "unknown");
    let version = unsafe { CStr::from_ptr(ffi::up42wh_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// The schemes' and the Redis entry's fields' names: numbered from 1, distinct, NULL past the
/// last (callers list them by asking up to the first NULL), and an entry written with them reads
/// back through the crate.
#[test]
fn schemes_and_entry_fields_are_listed_by_number() {
    use std::ffi::CStr;
    use up42webhooks::entry::Entry;
    fn list(name: extern "C" fn(u32) -> *const std::ffi::c_char) -> Vec<String> {
        assert!(name(0).is_null());
        (1..)
            .map_while(|n| {
                let p = name(n);
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
            })
            .take(64)
            .collect()
    }
    let schemes = list(ffi::up42wh_scheme_name);
    assert_eq!(
        schemes,
        ["rfc9421", "standard_webhooks", "github", "stripe", "up42"]
    );
    let fields = list(ffi::up42wh_entry_field_name);
    assert_eq!(fields.len(), 8);
    assert_eq!(fields.iter().collect::<HashSet<_>>().len(), 8, "{fields:?}");
    let values = [
        "{}",
        "job.status",
        "RUNNING",
        "false",
        "up42",
        "m:1",
        "1796000000",
        "\"sender\":\"up42\"",
    ];
    let e = Entry::read(
        fields
            .iter()
            .map(|f| f.as_bytes())
            .zip(values.iter().map(|v| v.as_bytes())),
    );
    let read = [
        e.json, e.event, e.status, e.live, e.sender, e.id, e.time, e.envelope,
    ];
    assert_eq!(
        read.map(|v| v.map(|v| std::str::from_utf8(v).unwrap())),
        values.map(Some)
    );
}
