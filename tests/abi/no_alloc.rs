//! The verify path does not touch the heap: a counting global allocator (this test binary's)
//! sees no allocation during verification (the key is made before counting starts). Only this
//! thread's allocations are counted, into this thread's counter: the harness's own thread and the
//! binary's other tests may allocate at any time (it did under qemu on armv7).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use up42webhooks::{check_timestamp, verify, Headers, Options};

struct Counting;

thread_local! {
    // const-initialized and without a destructor, so reading it never allocates
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNTED: Cell<usize> = const { Cell::new(0) };
}

/// This thread's allocations counted so far; `take` resets the count.
pub(crate) fn allocations(take: bool) -> usize {
    COUNTED.with(|c| if take { c.replace(0) } else { c.get() })
}

pub(crate) fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            let _ = COUNTED.try_with(|c| c.set(c.get() + 1));
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn verification_does_not_allocate() {
    // The counter works: an allocation while counting is seen.
    counting(true);
    drop(std::hint::black_box(Box::new(1u64)));
    counting(false);
    assert_eq!(allocations(true), 1);

    let vectors = crate::common::up42_vectors();
    let prepared: Vec<_> = vectors
        .iter()
        .map(|v| {
            (
                v,
                v.key(),
                v.raw(),
                crate::common::CKey::new(&v.secrets).unwrap(),
            )
        })
        .collect();
    let opts = Options::default();
    let mut verified = 0;
    for (v, key, raw, ckey) in &prepared {
        let pairs = v.pairs();
        counting(true);
        let a = verify(key, &Headers::Pairs(&pairs), &v.body, v.now, &opts);
        let b = verify(key, &Headers::Raw(raw), &v.body, v.now, &opts);
        let c = ckey.verify_raw(raw, &v.body, v.now);
        let t = check_timestamp(b"2023-11-14T22:13:20.5+00:00", 1_700_000_000, &opts);
        counting(false);
        assert_eq!(allocations(false), 0, "{} allocated", v.name);
        assert!(a.is_ok() == b.is_ok() && b.is_ok() == c.is_ok() && t.is_ok());
        verified += usize::from(a.is_ok());
    }
    assert!(
        verified > 60,
        "successful verifications were measured too ({verified})"
    );
}

#[test]
fn the_receivers_one_call_does_not_allocate() {
    use up42webhooks::ffi::up42wh_delivery as Delivery;
    use up42webhooks::{ffi, sign, Code, Key, SignOptions};
    let now = 1_700_000_000;
    let body = br#"{"event":"job.status","liveMode":false,"messageId":"m\u0031",
        "timestamp":"2023-11-14T22:13:20.5Z","body":{"jobId":"j","status":"RUNNING",
        "tasks":[{"id":"t","status":"NOT_STARTED","startedAt":null,"n":-1.5e3}]}}"#;
    let signed = sign(
        &Key::new(&["s3cret"]).unwrap(),
        body,
        now,
        &SignOptions::default(),
    )
    .unwrap();
    let raw = signed.header_block();
    let key = crate::common::CKey::new(&["s3cret"]).unwrap();
    let mut d = Box::new(Delivery::default());
    counting(true);
    let code = unsafe {
        ffi::up42wh_receive(
            key.0,
            raw.as_ptr(),
            raw.len(),
            body.as_ptr(),
            body.len(),
            now,
            std::ptr::null(),
            &mut *d,
        )
    };
    counting(false);
    assert_eq!(code, Code::Ok);
    assert_eq!(&d.id[..d.id_len], b"m:m1");

    // Its envelope, the store's record of it, compressed, and its line read back, in buffers made
    // beforehand.
    use up42webhooks::ffi::{
        up42wh_buffer, up42wh_delivery_envelope, up42wh_delivery_record, up42wh_record_line,
    };
    let (mut rec, mut line, mut env) = (vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 2432]);
    let mut env_out = up42wh_buffer {
        ptr: env.as_mut_ptr(),
        cap: env.len(),
        len: 0,
    };
    counting(true);
    let enveloped = unsafe {
        up42wh_delivery_envelope(&*d, b"up42".as_ptr(), 4, b"up42".as_ptr(), 4, &mut env_out)
    };
    counting(false);
    assert_eq!(enveloped, Code::Ok);
    assert!(env[..env_out.len].ends_with(br#""delivery_id":"m1","delivery_id_from":"messageId""#));
    let mut rec_out = up42wh_buffer {
        ptr: rec.as_mut_ptr(),
        cap: rec.len(),
        len: 0,
    };
    let mut line_out = up42wh_buffer {
        ptr: line.as_mut_ptr(),
        cap: line.len(),
        len: 0,
    };
    let padded = [
        &body[..body.len() - 1],
        &b",\"pad\":\""[..],
        &[b'p'; 600],
        b"\"}",
    ]
    .concat();
    counting(true);
    let written = unsafe {
        up42wh_delivery_record(
            &*d,
            env.as_ptr(),
            env_out.len,
            padded.as_ptr(),
            padded.len(),
            now,
            &mut rec_out,
        )
    };
    counting(false);
    let block_at = 1 + rec
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\t')
        .nth(4)
        .map(|(i, _)| i)
        .unwrap();
    counting(true);
    let read = unsafe {
        up42wh_record_line(
            rec[block_at..].as_ptr(),
            rec_out.len - block_at,
            &mut line_out,
        )
    };
    counting(false);
    assert_eq!((written, read), (Code::Ok, Code::Ok));
    assert_eq!(rec[0], b'F', "the padded body was compressed");
    assert_eq!(line_out.len, padded.len());
    assert_eq!(allocations(false), 0, "the record calls allocated");
    assert_eq!(allocations(false), 0, "up42wh_receive allocated");
}
