//! What each fuzz target runs (fuzz/fuzz_targets/, `make fuzz`), kept here so that `make test`
//! replays the committed corpora through the same code (tests/abi/fuzz_corpora.rs). Each takes any
//! bytes: it must neither panic nor read out of bounds, and checks what must hold on success.
#![doc(hidden)]

use std::sync::OnceLock;

use crate::code::Code;
use crate::delivery::{self, Delivery};
use crate::headers::{Headers, JoinBuf};
use crate::keyring::KeyRing;
use crate::schemes::rfc9421::{self, Request};
use crate::schemes::senders::{self, Limits};
use crate::schemes::up42::{self as verify, Key, Options};
use crate::schemes::Scheme;
use crate::{journal, json, record, sf};

/// The time every target verifies at (2023-11-14T22:13:20Z).
pub const NOW: i64 = 1_700_000_000;
/// The UP42 secret of the `up42` target's seeds.
pub const UP42_SECRET: &[u8] = b"fuzz-secret";
/// The HMAC secret and key ids of the `rfc9421` and `senders` targets' seeds.
pub const HMAC_SECRET: &[u8] = b"fuzz-hmac-secret";

/// A header block and a body, split at the first empty line (LF LF or CR LF CR LF), as every
/// verifying target's input is laid out.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in data.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&data[..i + 1], &data[i + 2..]);
        }
    }
    (data, b"")
}

fn up42_key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| Key::new(&[UP42_SECRET]).unwrap())
}

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut r = KeyRing::new();
        r.add_hmac(b"fuzz-key", HMAC_SECRET).unwrap();
        r
    })
}

/// The JSON reader: `validate` and `read_object` agree, and every string it picks out decodes.
pub fn json(data: &[u8]) {
    let valid = json::validate(data);
    match json::read_object(data) {
        Ok(f) => {
            assert_eq!(valid, Ok(()), "an object read is a valid document");
            use json::{Name, Value};
            let mut buf = [0u8; 1024];
            for name in [
                Name::Event,
                Name::MessageId,
                Name::Timestamp,
                Name::Status,
                Name::BodyStatus,
            ] {
                if let Value::Str { raw, escaped: true } = f.get(name) {
                    if raw.len() <= 256 {
                        let n = json::unescape(raw, &mut buf).expect("a read string decodes");
                        assert!(core::str::from_utf8(&buf[..n]).is_ok(), "and is UTF-8");
                    }
                }
            }
        }
        Err(Code::NotJsonObject) | Err(Code::DuplicateField) => {}
        Err(other) => panic!("read_object returned {other:?}"),
    }
}

/// The structured-field parser, through each entry point and mode.
pub fn sf(data: &[u8]) {
    for mode in [
        sf::Mode::default(),
        sf::Mode {
            upper_keys: true,
            plain_base64: true,
        },
    ] {
        let _ = sf::dict_get(data, b"sig", mode);
        let _ = sf::for_each_dict_member(data, mode, |_, m| {
            for p in m.params().iter() {
                let _ = p;
            }
        });
    }
    let _ = sf::for_each_list_member(data, |_| {});
    let _ = sf::parse_item(data);
}

/// The header block reader.
pub fn headers(data: &[u8]) {
    let h = Headers::Raw(data);
    let mut n = 0usize;
    let _ = h.for_each(|_, _| n += 1);
    let mut bufs = [JoinBuf::default(), JoinBuf::default(), JoinBuf::default()];
    let _ = h.fields(
        [b"signature", b"signature-input", b"content-digest"],
        &mut bufs,
    );
    let _ = h.with_index(|h| {
        let mut buf = JoinBuf::default();
        h.field(b"signature", &mut buf).map(|_| ())
    });
}

/// The body reader for `scheme`, at `NOW` with the default limits.
fn read(scheme: Scheme, prefix: &'static [u8]) -> delivery::Read<'static> {
    static LIMITS: Limits = Limits {
        max_age: crate::limits::DEFAULT_MAX_AGE,
        max_future: crate::limits::DEFAULT_MAX_FUTURE,
        max_body: crate::limits::DEFAULT_MAX_BODY,
    };
    delivery::Read {
        scheme,
        nonce: b"",
        prefix,
        now: NOW,
        limits: &LIMITS,
    }
}

/// A UP42 delivery (header block, empty line, body) through the verifier and the body reader.
pub fn up42(data: &[u8]) {
    let (raw, body) = split(data);
    let opts = Options::default();
    if verify::verify(up42_key(), &Headers::Raw(raw), body, NOW, &opts).is_ok() {
        let mut d = Delivery::default();
        if read(Scheme::Up42, b"")
            .fill(&Headers::Raw(raw), body, &mut d)
            .is_ok()
        {
            assert!(d.id().starts_with(b"m:") || d.id().starts_with(b"d:"));
        }
    }
}

/// An RFC 9421 request (its header block, empty line, body) through the verifier.
pub fn rfc9421(data: &[u8]) {
    let (raw, body) = split(data);
    let req = Request {
        method: b"POST",
        scheme: b"https",
        authority: b"example.com",
        target: b"/hook?x=1",
        headers: Headers::Raw(raw),
    };
    for require_digest in [true, false] {
        let opts = rfc9421::Options {
            require_digest,
            ..rfc9421::Options::default()
        };
        if rfc9421::verify(ring(), &req, body, NOW, &opts).is_ok() {
            let mut d = Delivery::default();
            let _ = read(Scheme::Rfc9421, b"fuzz:").fill(&req.headers, body, &mut d);
        }
    }
}

/// Standard Webhooks, GitHub and Stripe (first byte picks one; then a header block, empty line,
/// body) through their verifiers and the body reader.
pub fn senders(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (raw, body) = split(rest);
    let h = Headers::Raw(raw);
    let limits = Limits::default();
    // Each verifier runs; then the body reader, on every request, verified or not: it reads
    // what a verifier let through, and must hold for any bytes.
    let profile = match pick % 3 {
        0 => {
            let _ = senders::standard_webhooks(ring(), &h, body, NOW, &limits);
            Scheme::StandardWebhooks
        }
        1 => {
            let _ = senders::github(ring(), &h, body, &limits);
            Scheme::Github
        }
        _ => {
            let _ = senders::stripe(ring(), &h, body, NOW, &limits);
            Scheme::Stripe
        }
    };
    let mut d = Delivery::default();
    let _ = read(profile, b"fuzz:").fill(&h, body, &mut d);
}

/// One journal segment's bytes (the first four are the salt's seed) through recovery.
pub fn journal(data: &[u8]) {
    let Some((seed, rest)) = data.split_at_checked(4) else {
        return;
    };
    let seed = u32::from_le_bytes(seed.try_into().unwrap());
    let (records, stats) = journal::recover(rest, seed);
    assert!(stats.torn_bytes as usize <= rest.len());
    for r in &records {
        let mut out = Vec::new();
        journal::encode(r, seed, &mut out).expect("a recovered record encodes again");
    }
}

/// A stored record's line: any block read back without a panic, and any line written and read
/// back as itself on one line; any bytes read as a record without a panic, its fields inside it,
/// and a record written read back as written.
pub fn record(data: &[u8]) {
    let mut out = vec![0u8; 1 << 16];
    let _ = record::line(data, &mut out);
    if let Ok(f) = record::read(data) {
        for s in [
            f.event,
            f.status,
            f.live,
            f.line,
            f.envelope.unwrap_or_default(),
        ] {
            assert!(s.at + s.len <= data.len());
        }
    }
    let mut rec = vec![0u8; record::max_len(16, data.len())];
    let n = record::write(
        NOW,
        &[b"e", b"s", b"", b"\"k\":1"],
        true,
        data,
        false,
        &mut rec,
    )
    .expect("room enough");
    let head = b"E1700000000\te\ts\t\t\"k\":1\t".len();
    let f = record::read(&rec[..n]).expect("its own record reads back");
    assert_eq!(
        (f.time, f.line.at, f.compressed),
        (NOW, head, rec[0] == b'F')
    );
    if rec[0] == b'F' {
        let m = record::line(&rec[head..n], &mut out).expect("its own block reads back");
        let want: Vec<u8> = data
            .iter()
            .map(|&b| {
                if matches!(b, b'\t' | b'\r' | b'\n') {
                    b' '
                } else {
                    b
                }
            })
            .collect();
        assert_eq!(&out[..m], &want[..]);
    } else {
        assert_eq!(&rec[head..n], data);
    }
}

/// A target: a name and what it runs.
pub(crate) type Target = (&'static str, fn(&[u8]));

/// Every target by its name, for the corpus replay.
pub const TARGETS: [Target; 8] = [
    ("json", json),
    ("sf", sf),
    ("headers", headers),
    ("up42", up42),
    ("rfc9421", rfc9421),
    ("senders", senders),
    ("journal", journal),
    ("record", record),
];
