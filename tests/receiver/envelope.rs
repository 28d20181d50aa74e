//! The envelope: what the receiver verified (sender, scheme, key index, delivery id), kept with each
//! event and given by the dump and the tail with `?meta=true`, on the journal (across a restart)
//! and on Redis; the plain dump as it always was; a journal written before the envelope.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json as j, Value};
use sha2::Digest;

use crate::common::nginx::{json, now, Delivery, Server, SECRET};
use crate::common::redis::Redis;
use crate::common::senders::{
    hex, hmac_sha256, rfc9421_request, standard_webhooks_headers, STANDARD_SECRET,
};
use up42webhooks::format_rfc3339;

/// GitHub's old and new secret: deliveries signed with the new one are verified by key 1.
const GITHUB_SECRETS: [&str; 2] = ["gh-envelope-old", "gh-envelope-new"];
const RFC9421_SECRET: &str = "rfc9421-envelope-secret";
const SENDERS: [&str; 3] = ["github", "standard", "generic"];

/// The project's config with three senders besides UP42, each at /hooks/<name>.
fn with_senders(conf: &str) -> String {
    with_senders_and(conf, "")
}

/// The same with more settings of configure{}.
fn with_senders_and(conf: &str, settings: &str) -> String {
    let configure = format!(
        r#"require("up42webhooks").configure{{ {settings} senders = {{
            github = {{ profile = "github", secrets = {{ "{}", "{}" }} }},
            standard = {{ profile = "standard-webhooks", secret = "{STANDARD_SECRET}" }},
            generic = {{ profile = "rfc9421", scheme = "https",
                         keys = {{ {{ keyid = "env-hmac", hmac_secret = "{RFC9421_SECRET}" }} }} }},
        }} }}"#,
        GITHUB_SECRETS[0], GITHUB_SECRETS[1]
    );
    let mut locations = String::new();
    for name in SENDERS {
        locations.push_str(&format!(
            "    location = /hooks/{name} {{ default_type application/json; content_by_lua_block {{ require(\"up42webhooks\").receive(\"{name}\") }} }}\n"
        ));
    }
    conf.replace("require(\"up42webhooks\").configure{}", &configure)
        .replacen(
            "    location = /ping {",
            &format!("{locations}\n    location = /ping {{"),
            1,
        )
}

/// A delivery to send and the members its `?meta=true` line must have besides key and time.
struct Sent {
    path: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    want: Value,
}

fn up42(body: String, t: i64, want: Value) -> Sent {
    let d = Delivery::signed(body.as_bytes(), SECRET, t);
    Sent {
        path: "/receive-webhooks",
        headers: d.headers,
        body: d.body,
        want,
    }
}

/// One delivery of each kind of id: UP42's messageId (one with characters JSON escapes, one
/// compressed in the store), Standard Webhooks' webhook-id, GitHub's X-GitHub-Delivery (verified
/// by its second secret), an RFC 9421 nonce, and an RFC 9421 delivery without one (its digest).
fn deliveries(tag: &str) -> Vec<Sent> {
    let t = now();
    let ts = format_rfc3339(t);
    let mut out = Vec::new();
    out.push(up42(
        format!(
            r#"{{"event":"job.status","liveMode":false,"messageId":"{tag}-up42-1","timestamp":"{ts}","body":{{"jobId":"j-1","status":"FAILED"}}}}"#
        ),
        t,
        j!({"sender": "up42", "scheme": "up42", "key_index": 0, "delivery_id": format!("{tag}-up42-1"),
            "delivery_id_from": "messageId", "event_type": "job.status", "status": "FAILED", "live": false}),
    ));
    out.push(up42(
        format!(
            r#"{{"event":"order.status","liveMode":true,"messageId":"{tag}-q\"uo\\te\t-\u00e9","timestamp":"{ts}","body":{{"orderId":"o-1","status":"FULFILLED","pad":"{}"}}}}"#,
            "p".repeat(900)
        ),
        t,
        j!({"sender": "up42", "scheme": "up42", "key_index": 0, "delivery_id": format!("{tag}-q\"uo\\te\t-\u{e9}"),
            "delivery_id_from": "messageId", "event_type": "order.status", "status": "FULFILLED", "live": true}),
    ));
    let body = br#"{"type":"invoice.paid","data":{"id":"in_9"}}"#.to_vec();
    let id = format!("msg_{tag}_1");
    out.push(Sent {
        path: "/hooks/standard",
        headers: standard_webhooks_headers(STANDARD_SECRET, &id, t, &body),
        body,
        want: j!({"sender": "standard", "scheme": "standard_webhooks", "key_index": 0, "delivery_id": id,
                  "delivery_id_from": "webhook-id", "event_type": "invoice.paid", "status": null, "live": null}),
    });
    let body = br#"{"action":"opened","number":7}"#.to_vec();
    let sig = format!(
        "sha256={}",
        hex(&hmac_sha256(GITHUB_SECRETS[1].as_bytes(), &[&body]))
    );
    let id = format!("gh-{tag}-1");
    out.push(Sent {
        path: "/hooks/github",
        headers: vec![
            ("X-Hub-Signature-256".into(), sig),
            ("X-GitHub-Delivery".into(), id.clone()),
            ("X-GitHub-Event".into(), "issues".into()),
        ],
        body,
        want: j!({"sender": "github", "scheme": "github", "key_index": 1, "delivery_id": id,
                  "delivery_id_from": "X-GitHub-Delivery", "event_type": "issues", "status": "opened", "live": null}),
    });
    for nonce in [Some(format!("n-{tag}-1")), None] {
        let label = nonce.as_deref().unwrap_or("none");
        let body = format!(r#"{{"event":"generic","status":"done","n":"{label}"}}"#).into_bytes();
        let params = match &nonce {
            Some(n) => format!(";created={t};keyid=\"env-hmac\";nonce=\"{n}\""),
            None => format!(";created={t};keyid=\"env-hmac\""),
        };
        let headers = rfc9421_request("127.0.0.1", "/hooks/generic", &body, t, &params, |base| {
            hmac_sha256(RFC9421_SECRET.as_bytes(), &[base])
        });
        let (id, from) = match nonce {
            Some(n) => (n, "nonce"),
            None => (hex(&sha2::Sha256::digest(&body)), "body_sha256"),
        };
        out.push(Sent {
            path: "/hooks/generic",
            headers,
            body,
            want: j!({"sender": "generic", "scheme": "rfc9421", "key_index": 0, "delivery_id": id,
                      "delivery_id_from": from, "event_type": "generic", "status": "done", "live": null}),
        });
    }
    out
}

/// Sends each delivery: their keys (numbers in the shared dict, entry ids in Redis), and the
/// time span they arrived in.
fn send(server: &Server, sent: &[Sent]) -> (Vec<Value>, i64, i64) {
    let t0 = now();
    let keys = sent
        .iter()
        .map(|s| {
            let h: Vec<(&str, &str)> = s
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let r = server.request("POST", s.path, &h, &s.body);
            assert_eq!(r.status, 200, "{}: {}", s.path, r.text());
            json(&r)["key"].clone()
        })
        .collect();
    (keys, t0, now())
}

/// Every `?meta=true` line is one JSON object: the key the 200 gave, the arrival time, the
/// envelope and the filter fields as `Sent` says, and the stored event as the line's last member,
/// its bytes as sent.
fn check_meta(lines: &[String], sent: &[Sent], keys: &[Value], t0: i64, t1: i64) {
    assert_eq!(lines.len(), sent.len(), "{lines:#?}");
    for (line, (s, key)) in lines.iter().zip(sent.iter().zip(keys)) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(&v["key"], key, "{line}");
        let received = v["received"].as_i64().expect("received");
        // nginx's clock is the one its event loop cached: up to a second behind ours.
        assert!(
            (t0 - 1..=t1).contains(&received),
            "{received} in {t0}..={t1}"
        );
        for (name, want) in s.want.as_object().unwrap() {
            assert_eq!(&v[name], want, "{name} of {line}");
        }
        let body = String::from_utf8(s.body.clone()).unwrap();
        assert!(line.ends_with(&format!(",\"event\":{body}}}")), "{line}");
        let members: Vec<&String> = v.as_object().unwrap().keys().collect();
        // key, received, acknowledged_by (nobody has: an array), event, and the envelope's.
        assert!(v["acknowledged_by"].is_array(), "{line}");
        assert_eq!(
            members.len(),
            4 + s.want.as_object().unwrap().len(),
            "{line}"
        );
    }
}

/// The events a `/tail{query}` stream gives until it has `n` (at most 20 s): their data lines.
fn tail(server: &Server, query: &str, n: usize) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
    s.write_all(format!("GET /tail{query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut raw, mut buf) = (Vec::new(), [0u8; 65536]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let data = |raw: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(raw)
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    };
    while Instant::now() < deadline && data(&raw).len() < n {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => raw.extend_from_slice(&buf[..k]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    data(&raw)
}

/// The dump and the tail with and without `?meta=true`.
fn check_all(server: &Server, sent: &[Sent], keys: &[Value], t0: i64, t1: i64) -> Vec<String> {
    let (meta, n) = server.dump("?meta=true");
    assert_eq!(n, sent.len() as u64);
    check_meta(&meta, sent, keys, t0, t1);
    check_meta(&tail(server, "?meta=true", sent.len()), sent, keys, t0, t1);
    // Without meta: the events as they were sent, one a line, as the dump always gave them.
    let bodies: Vec<String> = sent
        .iter()
        .map(|s| String::from_utf8(s.body.clone()).unwrap())
        .collect();
    assert_eq!(server.dump("").0, bodies);
    assert_eq!(tail(server, "", sent.len()), bodies);
    let r = server.admin_get("/dump-webhooks?meta=false&count=false");
    assert_eq!(r.text(), bodies.join("\n") + "\n");
    // The filters read the same fields.
    let (issues, n) = server.dump("?event=issues&meta=true");
    assert_eq!(n, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&issues[0]).unwrap()["sender"],
        "github"
    );
    for bad in ["/dump-webhooks?meta=yes", "/tail?meta=1"] {
        let r = server.admin_get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(json(&r)["error"], "bad_argument", "{bad}");
    }
    meta
}

#[test]
fn each_event_keeps_what_verified_it_across_a_restart() {
    let mut server = Server::start_with(with_senders, &[]);
    let sent = deliveries("journal");
    let (keys, t0, t1) = send(&server, &sent);
    let before = check_all(&server, &sent, &keys, t0, t1);
    server.stop();
    server.restart();
    let after = check_all(&server, &sent, &keys, t0, t1);
    assert_eq!(before, after, "the journal keeps every field");
    server.assert_clean_logs();
}

#[test]
fn redis_keeps_the_envelope_too() {
    let redis = Redis::start("envelope");
    let server = Server::start_with(with_senders, &[("UP42_WEBHOOK_STORE", &redis.url())]);
    let sent = deliveries("redis");
    let (keys, t0, t1) = send(&server, &sent);
    assert!(keys.iter().all(Value::is_string), "{keys:?}");
    check_all(&server, &sent, &keys, t0, t1);
    // Another receiver on the same stream reads what this one verified.
    let other = Server::start_with(with_senders, &[("UP42_WEBHOOK_STORE", &redis.url())]);
    check_meta(&other.dump("?meta=true").0, &sent, &keys, t0, t1);
    // An entry written before the envelope has its sender's name in its place.
    let old = r#"{"event":"job.status","liveMode":true,"messageId":"old-1"}"#;
    let id = redis.cli(&[
        "XADD",
        "up42webhooks",
        "*",
        "json",
        old,
        "event",
        "job.status",
        "status",
        "",
        "live",
        "true",
        "sender",
        "up42",
        "id",
        "m:old-1",
        "time",
        "1796000000",
    ]);
    let (lines, _) = server.dump(&format!(
        "?meta=true&since={}",
        keys.last().unwrap().as_str().unwrap()
    ));
    assert_eq!(
        lines,
        [format!(
            r#"{{"key":"{}","received":1796000000,"acknowledged_by":[],"sender":"up42","event_type":"job.status","status":null,"live":true,"event":{old}}}"#,
            id.trim()
        )]
    );
    server.assert_clean_logs();
}

/// A journal written by the code before the envelope (tests/fixtures/journal-before-envelope: two
/// UP42 deliveries, one of them stored compressed, and a GitHub one, stopped cleanly; made on
/// 2026-12-03, so retention is set to keep it).
#[test]
fn a_journal_from_before_the_envelope_replays_with_the_fields_it_has() {
    use std::os::unix::fs::MetadataExt;
    let fixture = crate::common::root().join("tests/fixtures/journal-before-envelope");
    let edit = |conf: &str| with_senders_and(conf, "retention = { max_age = 3153600000 },");
    let mut server = Server::start_with(edit, &[]);
    server.stop();
    let data = server.dir.join("data");
    let owner = std::fs::metadata(&data).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    for name in ["events.000001.log", "journal.keys", "journal.salt"] {
        std::fs::copy(fixture.join(name), data.join(name)).unwrap();
        std::os::unix::fs::chown(data.join(name), Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    server.restart();
    // The plain dump is what it was when the journal was written.
    let before = std::fs::read_to_string(fixture.join("dump.ndjson")).unwrap();
    let before: Vec<String> = before.lines().map(str::to_string).collect();
    assert_eq!(server.dump("").0, before);
    // With meta: the fields the journal has (key, time, event type, status, live), no envelope.
    let (meta, n) = server.dump("?meta=true");
    assert_eq!(n, 3);
    let wants = [
        j!({"key": 1, "event_type": "job.status", "status": "FAILED", "live": false}),
        j!({"key": 2, "event_type": "order.status", "status": "FULFILLED", "live": true}),
        j!({"key": 3, "event_type": "issues", "status": "opened", "live": null}),
    ];
    for ((line, want), body) in meta.iter().zip(&wants).zip(&before) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for (name, value) in want.as_object().unwrap() {
            assert_eq!(&v[name], value, "{name} of {line}");
        }
        assert!(v["received"].as_i64().unwrap() > 1_796_000_000, "{line}");
        assert!(
            v.get("sender").is_none() && v.get("delivery_id").is_none(),
            "{line}"
        );
        assert!(line.ends_with(&format!(",\"event\":{body}}}")), "{line}");
    }
    assert_eq!(tail(&server, "?meta=true", 3), meta);
    // New events keep their envelope beside the old ones.
    let sent = deliveries("after-old");
    let (keys, t0, t1) = send(&server, &sent[..1]);
    let (meta, _) = server.dump("?meta=true&since=3");
    check_meta(&meta, &sent[..1], &keys, t0, t1);
    server.assert_clean_logs();
}
