//! Writes a journal of N stored events, as the receiver writes them, for the recovery benchmark
//! (benches/journal/recovery.sh): `journal_fill DIR N [BODY_BYTES] [AGE_SECONDS]`. The events are
//! AGE_SECONDS old (default one hour: past the dedup window, inside retention).
use up42webhooks::journal::{Kind, Record, Writer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: journal_fill DIR N [BODY_BYTES] [AGE_SECONDS]";
    let dir = std::path::PathBuf::from(args.get(1).expect(usage));
    let n: u64 = args.get(2).expect(usage).parse().expect(usage);
    let size: usize = args.get(3).map_or(1024, |s| s.parse().expect(usage));
    let age: i64 = args.get(4).map_or(3600, |s| s.parse().expect(usage));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = Writer::open(&dir, 1).unwrap();
    let padding = "x".repeat(size.saturating_sub(200));
    for key in 1..=n {
        let id = format!("m:bench-{key:012}");
        let body = format!(
            r#"{{"event":"job.status","liveMode":false,"messageId":"bench-{key:012}","timestamp":"2026-01-01T00:00:00Z","body":{{"jobId":"j-{key}","status":"FAILED","padding":"{padding}"}}}}"#
        );
        w.append(&Record {
            kind: Kind::Event,
            reason: 0,
            key,
            time: now - age,
            digest: [(key % 251) as u8; 32],
            id: id.as_bytes(),
            meta: b"job.status\tFAILED\tfalse",
            body: body.as_bytes(),
        })
        .unwrap();
    }
    w.sync().unwrap();
}
