//! UP42 deliveries signed by the independent Python reference signer (tests/vectors/gen_up42.py).

use crate::common::{outcome, up42_vectors, CKey};
use sha2::{Digest, Sha256};
use up42webhooks::ffi::{
    self, up42wh_delivery, up42wh_keyring, up42wh_message_options, up42wh_message_verified,
    up42wh_request, up42wh_slice,
};
use up42webhooks::{verify, Code, Headers, Options};

fn slice(b: &[u8]) -> up42wh_slice {
    up42wh_slice {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

/// A UP42 request: its header block and body (the scheme reads nothing else).
pub(crate) fn up42_request(raw: &[u8], body: &[u8]) -> up42wh_request {
    up42wh_request {
        method: slice(b""),
        scheme: slice(b""),
        authority: slice(b""),
        target: slice(b""),
        raw_headers: slice(raw),
        body: slice(body),
    }
}

/// The one path: a C key ring of the vector's secrets and `up42wh_verify_message` with the
/// scheme `UP42`, as the receiver verifies every sender.
fn by_ring(
    secrets: &[Vec<u8>],
    raw: &[u8],
    body: &[u8],
    now: i64,
) -> Result<up42wh_message_verified, Code> {
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| &s[..]).collect();
    let ring = ring_of(&secrets);
    // SAFETY: every pointer below is valid for the call; the ring is freed at the end.
    unsafe {
        let mut opts = core::mem::zeroed();
        assert_eq!(
            ffi::up42wh_message_options_init(&mut opts, up42webhooks::Scheme::Up42 as u32),
            Code::Ok
        );
        let req = up42_request(raw, body);
        let mut out = core::mem::zeroed();
        let rc = ffi::up42wh_verify_message(ring, &req, now, &opts, &mut out);
        ffi::up42wh_keyring_free(ring);
        match rc {
            Code::Ok => Ok(out),
            e => Err(e),
        }
    }
}

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
        let by_the_ring = by_ring(&v.secrets, &raw, &v.body, v.now);

        assert_eq!(outcome(&by_pairs), v.expect, "{}", v.name);
        assert_eq!(outcome(&by_raw), v.expect, "{} (raw block)", v.name);
        assert_eq!(outcome(&by_c), v.expect, "{} (C ABI)", v.name);
        assert_eq!(
            outcome(&by_c_raw),
            v.expect,
            "{} (C ABI, raw block)",
            v.name
        );
        assert_eq!(
            outcome(&by_the_ring),
            v.expect,
            "{} (key ring, scheme UP42)",
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
            let r = by_the_ring.unwrap();
            assert_eq!(
                (r.time, r.key_index as usize, r.body_sha256, r.has_expires),
                (
                    got.created,
                    got.key_index,
                    got.body_sha256,
                    got.expires.is_some()
                )
            );
        }
    }
    assert!(ok > 60, "most vectors verify ({ok})");
}

/// A C key ring of `secrets`; free it with `up42wh_keyring_free`.
fn ring_of(secrets: &[&[u8]]) -> *mut up42wh_keyring {
    let mut ring = core::ptr::null_mut();
    // SAFETY: valid pointers; the ring is the caller's to free.
    unsafe {
        assert_eq!(ffi::up42wh_keyring_new(&mut ring), Code::Ok);
        for (i, s) in secrets.iter().enumerate() {
            let id = format!("secret-{}", i + 1);
            let rc = ffi::up42wh_keyring_add(
                ring,
                1,
                id.as_ptr(),
                id.len(),
                s.as_ptr(),
                s.len(),
                core::ptr::null_mut(),
            );
            assert_eq!(rc, Code::Ok);
        }
    }
    ring
}

/// `up42wh_receive_message` with the scheme UP42 and options changed by `tweak`.
fn receive(
    raw: &[u8],
    body: &[u8],
    now: i64,
    tweak: impl Fn(&mut up42wh_message_options),
) -> Result<up42wh_delivery, Code> {
    let ring = ring_of(&[b"s3cret-for-freshness"]);
    // SAFETY: every pointer is valid for the call; the ring is freed before returning.
    unsafe {
        let mut opts = core::mem::zeroed();
        assert_eq!(
            ffi::up42wh_message_options_init(&mut opts, up42webhooks::Scheme::Up42 as u32),
            Code::Ok
        );
        tweak(&mut opts);
        let req = up42_request(raw, body);
        let mut out = up42wh_delivery::default();
        let rc =
            ffi::up42wh_receive_message(ring, &req, now, &opts, core::ptr::null(), 0, &mut out);
        ffi::up42wh_keyring_free(ring);
        match rc {
            Code::Ok => Ok(out),
            e => Err(e),
        }
    }
}

/// A UP42 delivery signed with `created`, its body's `timestamp` at `stamped`.
fn delivery_at(created: i64, stamped: i64) -> (Vec<u8>, Vec<u8>) {
    let body = format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"late-1","timestamp":"{}","body":{{"status":"FAILED"}}}}"#,
        up42webhooks::format_rfc3339(stamped)
    );
    let mut raw = String::new();
    for (n, v) in crate::common::signed_headers(body.as_bytes(), "s3cret-for-freshness", created) {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    (raw.into_bytes(), body.into_bytes())
}

#[test]
fn a_late_retry_is_taken_on_its_signed_body_timestamp_when_the_receiver_says_so() {
    const NOW: i64 = 1_700_000_000;
    const HORIZON: i64 = 3 * 86_400;
    let late = |o: &mut up42wh_message_options| {
        o.timestamp_max_age = HORIZON;
        o.refuse_unsigned_times = false;
    };
    let code = |r: Result<up42wh_delivery, Code>| r.map(|d| d.unsigned_times);
    // The library's defaults, as before: a `created` 20 minutes old is stale, and so is the body.
    let (raw, body) = delivery_at(NOW - 1200, NOW);
    assert_eq!(code(receive(&raw, &body, NOW, |_| {})), Err(Code::Stale));
    // Not refusing the unsigned `created`: stored, and reported as what it would have been.
    assert_eq!(
        code(receive(&raw, &body, NOW, late)),
        Ok(Code::Stale as u32)
    );
    // A retry 20 minutes on with its original body: the body is stale by default, taken within
    // the horizon, stale beyond it; a future body no further than max_future, whatever the horizon.
    let (raw, body) = delivery_at(NOW, NOW - 1200);
    assert_eq!(code(receive(&raw, &body, NOW, |_| {})), Err(Code::Stale));
    assert_eq!(code(receive(&raw, &body, NOW, late)), Ok(Code::Ok as u32));
    let (raw, body) = delivery_at(NOW, NOW - HORIZON - 1);
    assert_eq!(code(receive(&raw, &body, NOW, late)), Err(Code::Stale));
    let (raw, body) = delivery_at(NOW, NOW + 60);
    assert_eq!(code(receive(&raw, &body, NOW, late)), Err(Code::Future));
    // A forged signature is refused whatever the window.
    let (raw, mut body) = delivery_at(NOW, NOW);
    body[2] ^= 1;
    assert_eq!(
        code(receive(&raw, &body, NOW, late)),
        Err(Code::DigestMismatch)
    );
}
