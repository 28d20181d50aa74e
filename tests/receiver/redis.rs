//! Several receivers, one event log: two nginx receivers (their own prefixes and ports) on one
//! Redis (Debian's redis-server, started here on a free loopback port with its own directory and
//! the append-only file on), and Redis stopped and killed under load.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::nginx::{
    configured, free_port, http, json, now, Delivery, Server, Setup, SECRET,
};
use crate::common::redis::Redis;

impl Redis {
    /// The stream's entries: entry id -> the delivery id they were stored under.
    fn entries(&self) -> HashMap<String, String> {
        let out = self.cli(&["XRANGE", "up42webhooks", "-", "+"]);
        let lines: Vec<&str> = out.lines().collect();
        let mut map = HashMap::new();
        let mut i = 0;
        while i < lines.len() {
            let id = lines[i].to_string();
            assert!(id.contains('-'), "an entry id: {id}");
            i += 1;
            let mut delivery = None;
            while i + 1 < lines.len() && !is_entry_id(lines[i]) {
                if lines[i] == "id" {
                    delivery = Some(lines[i + 1].to_string());
                }
                i += 2;
            }
            assert!(map.insert(id, delivery.expect("an id field")).is_none());
        }
        map
    }
}

fn is_entry_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    }) && s.len() > 13
}

/// A delivery tried once: itself, the status (0 for no answer) and the entry id of a 200.
type Outcome = (Delivery, u16, Option<String>);

/// A delivery answered 200: its id, its entry id, itself, and which receiver stored it.
type Answered = (String, String, Delivery, usize);

fn receiver(redis: &Redis) -> Server {
    Setup::default()
        .env("UP42_WEBHOOK_STORE", &redis.url())
        .start()
}

fn event(id: &str, status: &str) -> Vec<u8> {
    format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"{status}"}}}}"#,
        up42webhooks::format_rfc3339(now())
    )
    .into_bytes()
}

fn delivery(id: &str) -> Delivery {
    Delivery::signed(&event(id, "FAILED"), SECRET, now())
}

fn post(port: u16, d: &Delivery) -> Option<crate::common::nginx::Response> {
    http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body)
}

#[test]
fn two_receivers_share_one_stream_and_one_dedup_memory() {
    let redis = Redis::start("two");
    let a = receiver(&redis);
    let b = receiver(&redis);
    let ports = [a.port, b.port];
    let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                for i in 0..125 {
                    let id = format!("two-{t}-{i}");
                    let d = delivery(&id);
                    let which = (t + i) % 2;
                    let r = post(ports[which], &d).expect("an answer");
                    assert_eq!(r.status, 200, "{}", r.text());
                    let key = json(&r)["key"].as_str().expect("an entry id").to_string();
                    answered.lock().unwrap().push((id, key, d, which));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 1000);
    let entries = redis.entries();
    assert_eq!(entries.len(), 1000, "every 200 is one entry");
    for (id, key, _, _) in &answered {
        assert_eq!(entries.get(key), Some(&format!("m:{id}")), "{key}");
    }
    // Either receiver's dump lists all of them.
    for srv in [&a, &b] {
        let (lines, n) = srv.dump("");
        assert_eq!((lines.len(), n), (1000, 1000));
    }
    // The same deliveries sent to the other receiver are duplicates; another body under a known
    // id is a conflict.
    for (_, _, d, which) in answered.iter().take(50) {
        let r = post(ports[1 - which], d).unwrap();
        assert!(r.text().contains("duplicate"), "{}", r.text());
    }
    let other = Delivery::signed(&event(&answered[0].0, "SUCCEEDED"), SECRET, now());
    let r = post(b.port, &other).unwrap();
    assert_eq!(
        (r.status, json(&r)["error"].as_str()),
        (409, Some("id_conflict"))
    );
    assert_eq!(redis.entries().len(), 1000, "nothing more stored");
    // Paging and acknowledgement go by entry ids, the same from either receiver.
    let (page, last) = a.dump_lines("?limit=10");
    let next = last["next"].as_str().expect("an entry id").to_string();
    assert_eq!(
        (page.len(), &next),
        (10, &answered_keys_sorted(&answered)[9])
    );
    let r = b.admin("POST", &format!("/ack-webhooks?upto={next}"), &[]);
    assert_eq!(json(&r)["acked"], 10, "{}", r.text());
    let (_, last) = a.dump_lines("?limit=1");
    assert_eq!(last["acknowledged"]["default"], next.as_str(), "{last}");
    assert_eq!(
        a.dump("").1,
        1000,
        "acknowledged entries stay until retention"
    );
    // The tail reads the stream too: from an entry id on, on either receiver.
    let keys = answered_keys_sorted(&answered);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", b.admin_port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET /tail HTTP/1.0\r\nLast-Event-ID: {}\r\n\r\n", keys[997]).as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = String::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw.contains(&format!("id: {}", keys[999])) && Instant::now() < deadline {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(
        !raw.contains(&format!("id: {}\n", keys[997])),
        "after Last-Event-ID"
    );
    for k in &keys[998..] {
        assert!(
            raw.contains(&format!("event: webhook\nid: {k}\ndata: {{")),
            "{k} in {raw}"
        );
    }
    drop(s);
    a.assert_clean_logs();
    b.assert_clean_logs();
}

/// The entry ids answered, in stream order.
fn answered_keys_sorted(answered: &[Answered]) -> Vec<String> {
    let mut keys: Vec<(u64, u64, String)> = answered
        .iter()
        .map(|(_, k, _, _)| {
            let (ms, seq) = k.split_once('-').unwrap();
            (ms.parse().unwrap(), seq.parse().unwrap(), k.clone())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, _, k)| k).collect()
}

#[test]
fn redis_stopped_and_a_receiver_killed_under_load_lose_nothing_answered_200() {
    let mut redis = Redis::start("faults");
    let a = receiver(&redis);
    let mut b = receiver(&redis);
    // A burst on both receivers from four connections, each delivery tried once; Redis is
    // killed in the middle of it.
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let ports = [a.port, b.port];
    let burst = |tag: &'static str, n: usize| {
        let outcomes = outcomes.clone();
        (0..4)
            .map(move |t| {
                let outcomes = outcomes.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let d = delivery(&format!("{tag}-{t}-{i}"));
                        let (status, key) = match post(ports[(t + i) % 2], &d) {
                            Some(r) => {
                                let key = (r.status == 200 && !r.text().contains("duplicate"))
                                    .then(|| json(&r)["key"].as_str().unwrap().to_string());
                                (r.status, key)
                            }
                            None => (0, None), // no answer: the receiver was killed under it
                        };
                        outcomes.lock().unwrap().push((d, status, key));
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let senders = burst("stop", 150);
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcomes.lock().unwrap().len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    redis.crash();
    for s in senders {
        s.join().unwrap();
    }
    let stopped = outcomes.lock().unwrap().clone();
    let refused: Vec<&Delivery> = stopped
        .iter()
        .filter(|(_, status, _)| *status == 503)
        .map(|(d, _, _)| d)
        .collect();
    assert!(
        !refused.is_empty(),
        "deliveries after the stop were refused"
    );
    for (_, status, _) in &stopped {
        assert!(matches!(status, 200 | 503), "only 200 or 503, got {status}");
    }
    // The receivers stay up, and say why they cannot store.
    assert_eq!(a.get("/ping").status, 200);
    let stats = json(&a.admin_get("/stats"));
    assert_eq!(stats["backlog"]["redis"]["reachable"], false, "{stats}");
    // Retention, once a second, meets the same outage: a warning like the deliveries' (the error
    // log's check below allows no error line for it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.error_log().lines().any(|l| {
        l.contains("[warn]") && l.contains("up42webhooks: retention: cannot connect to Redis")
    }) {
        assert!(Instant::now() < deadline, "{}", a.error_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Redis back on the same AOF: no reload, the refused deliveries' retries are stored, and
    // everything answered 200 before the stop is there.
    redis.run();
    let deadline = Instant::now() + Duration::from_secs(20);
    for d in &refused {
        loop {
            let r = post(a.port, d).unwrap();
            if r.status == 200 {
                assert!(
                    r.text().contains("stored"),
                    "a refused delivery is not a duplicate: {}",
                    r.text()
                );
                break;
            }
            assert_eq!(r.status, 503, "{}", r.text());
            assert!(Instant::now() < deadline, "Redis is reachable again");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let entries = redis.entries();
    for (d, status, key) in &stopped {
        if *status == 200 {
            let id = serde_json::from_slice::<serde_json::Value>(&d.body).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(entries.get(key.as_ref().unwrap()), Some(&format!("m:{id}")));
        }
    }
    let ids: std::collections::HashSet<&String> = entries.values().collect();
    assert_eq!(ids.len(), entries.len(), "no delivery stored twice");

    // One receiver killed (every process) in the middle of a burst: the other goes on, and
    // nothing answered 200 by either is lost.
    outcomes.lock().unwrap().clear();
    let senders = burst("kill", 100);
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcomes.lock().unwrap().len() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    b.crash();
    for s in senders {
        s.join().unwrap();
    }
    let killed = outcomes.lock().unwrap().clone();
    // The outage is logged at warn, with the reason; nginx itself adds an error line when a
    // connection to Redis is reset under it (lua_socket_log_errors off silences the rest), and
    // when one of this test's senders closed its connection before nginx wrote the answer (seen
    // once, on a machine loaded by make test's other lane): the sender's doing, not the
    // receiver's; what each sender was answered is checked below.
    let log = a.error_log();
    assert!(log.contains("503 (store_unavailable)"), "{log}");
    for line in log
        .lines()
        .filter(|l| l.contains("[error]") || l.contains("[crit]") || l.contains("[alert]"))
    {
        assert!(
            line.contains("recv() failed (104: Connection reset by peer)")
                || (line.contains("send() failed (32: Broken pipe), client: 127.0.0.1")
                    && line.contains("request: \"POST /receive-webhooks ")),
            "{line}"
        );
    }
    let late_on_a = killed
        .iter()
        .skip(200)
        .filter(|(_, s, _)| *s == 200)
        .count();
    assert!(late_on_a > 0, "the other receiver went on storing");
    let entries = redis.entries();
    for (_, status, key) in &killed {
        if *status == 200 {
            assert!(
                entries.contains_key(key.as_ref().unwrap()),
                "{key:?} answered 200 and kept"
            );
        }
    }
}

/// The README's consumer (examples/redis_consumer.py), its handler appending each event to `out`
/// (slowly, so that a kill lands in the middle).
fn consumer(redis: &Redis, group: &str, out: &std::path::Path, stop_when_idle: bool) -> Child {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("python3");
    c.arg(crate::common::root().join("examples/redis_consumer.py"))
        .args([
            "--url",
            &redis.url(),
            "--group",
            group,
            "--consumer",
            "worker-1",
        ]);
    if stop_when_idle {
        c.args(["--stop-when-idle", "2"]);
    }
    c.args(["--", "sh", "-c"])
        // The line in one write, so that a kill leaves whole lines only.
        .arg(format!(
            "printf '%s\\n' \"$(cat)\" >> {}; sleep 0.02",
            out.display()
        ))
        .process_group(0)
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 with redis-py (make test installs it)")
}

fn consumed(out: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // Whole lines only: one may be being written.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn the_readme_consumer_sees_every_event_once_per_group_and_resumes_after_a_kill() {
    let redis = Redis::start("consumer");
    let srv = receiver(&redis);
    let ids: Vec<String> = (0..40).map(|i| format!("c-{i}")).collect();
    for id in &ids {
        assert_eq!(post(srv.port, &delivery(id)).unwrap().status, 200);
    }
    let dir = std::env::temp_dir().join(format!("up42wh-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Killed (with its handler) in the middle, then started again under the same name.
    let out = dir.join("billing.ndjson");
    let mut first = consumer(&redis, "billing", &out, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumed(&out).len() < 10 {
        assert!(Instant::now() < deadline, "the consumer handles events");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", first.id())])
        .status();
    let _ = first.wait();
    let before = consumed(&out).len();
    assert!(before < ids.len(), "killed in the middle ({before})");
    let status = consumer(&redis, "billing", &out, true).wait().unwrap();
    assert!(status.success());
    let seen = consumed(&out);
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every event at least once");
    assert!(
        seen.len() <= ids.len() + 1,
        "again at most the one in hand at the kill: {}",
        seen.len()
    );

    // Another group: each event exactly once, in stream order.
    let audit = dir.join("audit.ndjson");
    assert!(consumer(&redis, "audit", &audit, true)
        .wait()
        .unwrap()
        .success());
    assert_eq!(consumed(&audit), ids);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn credentials_settings_retention_and_waiting_on_the_stream() {
    const PASSWORD: &str = "redis-pass-e2e-51c9";
    // A password, and the settings that can lose events: the receiver warns about both.
    let redis = Redis::start_with(
        "settings",
        &[
            "--requirepass",
            PASSWORD,
            "--appendonly",
            "no",
            "--maxmemory",
            "64mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
    );
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let srv = Setup::default()
        .env("UP42_WEBHOOK_STORE", &url)
        .edit(configured(
            "retention = { max_events = 5 }, store = { require_persistence = false }",
            "",
        ))
        .start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.error_log().contains("maxmemory-policy is allkeys-lru") {
        assert!(
            Instant::now() < deadline,
            "the start-up check warns: {}",
            srv.error_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(srv.error_log().contains("appendonly is no"));
    let warnings = json(&srv.admin_get("/stats"))["backlog"]["redis"]["warnings"].clone();
    assert!(
        warnings.as_str().unwrap().contains("allkeys-lru"),
        "{warnings}"
    );

    // Long-poll: XREAD BLOCK holds the request until an entry arrives.
    let admin = srv.admin_port;
    let waiting = std::thread::spawn(move || {
        http(admin, "GET", "/dump-webhooks?since=0&wait=20", &[], b"").unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "held while the stream is empty");
    assert_eq!(post(srv.port, &delivery("w-0")).unwrap().status, 200);
    assert!(waiting.join().unwrap().text().contains("\"w-0\""));

    // Retention by count: the oldest go once there are more than five.
    for i in 1..9 {
        assert_eq!(
            post(srv.port, &delivery(&format!("w-{i}"))).unwrap().status,
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.entries().len() != 5 {
        assert!(
            Instant::now() < deadline,
            "trimmed to five: {}",
            redis.entries().len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (lines, _) = srv.dump("");
    assert!(lines[0].contains("\"w-4\""), "{}", lines[0]);
    assert_eq!(json(&srv.admin_get("/stats"))["counters"]["expired"], 4);

    // The password from a file instead of the URL.
    let file = redis.dir.join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let from_file = Setup::default()
        .env(
            "UP42_WEBHOOK_STORE",
            &format!("redis://127.0.0.1:{}/0", redis.port),
        )
        .env("UP42_WEBHOOK_STORE_PASSWORD_FILE", file.to_str().unwrap())
        .start();
    // This Redis keeps nothing across a restart: by default, a delivery is refused (after AUTH
    // with the file's password worked); with require_persistence = false it is stored.
    let r = post(from_file.port, &delivery("w-file")).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(json(&r)["error"], "store_not_durable");
    let from_file = Setup::default()
        .env(
            "UP42_WEBHOOK_STORE",
            &format!("redis://127.0.0.1:{}/0", redis.port),
        )
        .env("UP42_WEBHOOK_STORE_PASSWORD_FILE", file.to_str().unwrap())
        .edit(configured("store = { require_persistence = false }", ""))
        .start();
    assert_eq!(
        post(from_file.port, &delivery("w-file")).unwrap().status,
        200
    );
    // Wrong credentials: 503, and the password in no log line or answer.
    let wrong = Setup::default()
        .env(
            "UP42_WEBHOOK_STORE",
            &format!("redis://:not-{PASSWORD}@127.0.0.1:{}/0", redis.port),
        )
        .start();
    let r = post(wrong.port, &delivery("w-wrong")).unwrap();
    assert_eq!(
        (r.status, json(&r)["error"].as_str()),
        (503, Some("store_unavailable"))
    );
    assert!(!r.text().contains(PASSWORD));
    let log = wrong.error_log() + &srv.error_log() + &from_file.error_log();
    assert!(log.contains("Redis refused the credentials"), "{log}");
    assert!(!log.contains(PASSWORD), "the password is in a log");
}

#[test]
fn a_master_found_through_sentinel() {
    use std::os::unix::process::CommandExt;
    let redis = Redis::start("sentinel-master");
    let port = free_port();
    let conf = redis.dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor up42 127.0.0.1 {} 1\n",
            redis.dir.display(),
            redis.port
        ),
    )
    .unwrap();
    let mut sentinel = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ask = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--raw"])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask(&["SENTINEL", "get-master-addr-by-name", "up42"]).contains(&redis.port.to_string()) {
        assert!(Instant::now() < deadline, "the sentinel knows the master");
        std::thread::sleep(Duration::from_millis(50));
    }
    let srv = Setup::default()
        .env("UP42_WEBHOOK_STORE", "sentinel://up42/0")
        .env("UP42_WEBHOOK_STORE_SENTINELS", &format!("127.0.0.1:{port}"))
        .start();
    let r = post(srv.port, &delivery("s-1")).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), srv.error_log());
    assert_eq!(
        redis.entries().values().collect::<Vec<_>>(),
        [&"m:s-1".to_string()]
    );
    assert_eq!(srv.dump("").1, 1);
    srv.assert_clean_logs();
    let _ = sentinel.kill();
    let _ = sentinel.wait();
}

#[test]
fn redis_marks_only_go_forward_and_refuses_bad_numbers_as_the_journal_does() {
    let redis = Redis::start("marks");
    let srv = receiver(&redis);
    let mut ids = Vec::new();
    for i in 0..6 {
        let r = post(srv.port, &delivery(&format!("m-{i}"))).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(json(&r)["key"].as_str().unwrap().to_string());
    }
    // Acknowledged up to the fourth; then at and below it: nothing changes, the mark is said.
    let r = srv.admin("POST", &format!("/ack-webhooks?upto={}", ids[3]), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["acked"], 4);
    assert_eq!(json(&r)["upto"], ids[3].as_str());
    for below in [ids[0].as_str(), ids[3].as_str(), "0", "1"] {
        let r = srv.admin("POST", &format!("/ack-webhooks?upto={below}"), &[]);
        assert_eq!(r.status, 200, "{below}: {}", r.text());
        assert_eq!(json(&r)["acked"], 0, "{below}");
        assert_eq!(json(&r)["upto"], ids[3].as_str(), "{below}: the mark");
    }
    assert_eq!(srv.dump("").1, 6);
    // limit=0 lists nothing (it was a Lua error: a 500).
    let r = srv.admin_get("/dump-webhooks?limit=0");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("\"number_webhooks_received\":0"),
        "{}",
        r.text()
    );
    // Numbers beyond 2^53 - 1 are a 400 with the reason, as in the journal store; a cursor beyond
    // the newest entry is an empty page.
    for bad in [
        "/dump-webhooks?since=99999999999999999999",
        "/dump-webhooks?since=1-99999999999999999999",
        "/dump-webhooks?since=9007199254740992-0",
        "/dump-webhooks?limit=9007199254740992",
        "/dump-webhooks?since=x",
        "/tail?since=18446744073709551616",
    ] {
        let r = srv.admin_get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(json(&r)["error"], "bad_argument", "{bad}");
        assert!(r.text().contains("9007199254740991"), "{bad}: {}", r.text());
    }
    let r = srv.admin("POST", "/ack-webhooks?upto=99999999999999999999", &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    for fine in [
        "/dump-webhooks?since=9007199254740991-9007199254740991",
        "/dump-webhooks?since=9007199254740991",
    ] {
        let r = srv.admin_get(fine);
        assert_eq!(r.status, 200, "{fine}: {}", r.text());
        assert!(r.text().contains("\"number_webhooks_received\":0"));
    }
    assert_eq!(srv.dump("").1, 6);
    srv.assert_clean_logs();
}

#[test]
fn redis_restarted_without_persistence_is_seen_at_once_and_refused_until_it_keeps_events() {
    let mut redis = Redis::start("persistence");
    let srv = Setup::default()
        .env("UP42_WEBHOOK_STORE", &redis.url())
        .edit(configured("store = { check_interval = 1 }", ""))
        .start();
    for i in 0..5 {
        assert_eq!(
            post(srv.port, &delivery(&format!("p-{i}"))).unwrap().status,
            200
        );
    }
    let redis_stats = |srv: &Server| json(&srv.admin_get("/stats"))["backlog"]["redis"].clone();
    let s = redis_stats(&srv);
    assert_eq!(
        s["persistence"], "appendonly yes, appendfsync always",
        "{s}"
    );
    assert_eq!(s["keeps_events"], true);

    // Restarted without its append-only file: the receivers' next connection reads it at once.
    redis.restart_with(&["--appendonly", "no"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        let r = post(srv.port, &delivery(&format!("q-{i}"))).unwrap();
        i += 1;
        assert_ne!(
            r.status,
            200,
            "stored while Redis would not keep it: {}",
            r.text()
        );
        assert_eq!(r.status, 503, "{}", r.text());
        if json(&r)["error"] == "store_not_durable" {
            assert!(r.header("retry-after").is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refused as not durable: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for j in 0..30 {
        let r = post(srv.port, &delivery(&format!("r-{j}"))).unwrap();
        assert_eq!(
            (r.status, json(&r)["error"].clone()),
            (503, "store_not_durable".into()),
            "{}",
            r.text()
        );
    }
    let s = redis_stats(&srv);
    assert_eq!(s["keeps_events"], false, "{s}");
    assert!(
        s["persistence"]
            .as_str()
            .unwrap()
            .starts_with("appendonly no"),
        "{s}"
    );
    let said = srv
        .error_log()
        .matches("it would not keep events across its restart")
        .count();
    assert_eq!(said, 1, "logged once: {}", srv.error_log());
    let counters = json(&srv.admin_get("/stats"))["counters"].clone();
    assert!(
        counters["store_not_durable"].as_u64().unwrap() >= 31,
        "{counters}"
    );

    // Persistence turned on at run time: seen within the check interval, deliveries stored again.
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "appendonly", "yes"]).trim(),
        "OK"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post(srv.port, &delivery(&format!("s-{i}"))).unwrap();
        i += 1;
        if r.status == 200 {
            break;
        }
        assert_eq!(json(&r)["error"], "store_not_durable", "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "stored again once Redis keeps events"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(redis_stats(&srv)["keeps_events"], true);
    assert!(
        srv.error_log().contains("appendonly yes"),
        "{}",
        srv.error_log()
    );
}

#[test]
fn the_journal_s_events_move_into_redis_with_the_example_script() {
    let redis = Redis::start("move");
    let journal = Server::start();
    for (i, status) in ["FAILED", "SUCCEEDED", "FAILED"].iter().enumerate() {
        let d = Delivery::signed(&event(&format!("mv-{i}"), status), SECRET, now());
        assert_eq!(post(journal.port, &d).unwrap().status, 200);
    }
    let out = Command::new(crate::common::root().join("examples/journal_to_redis.sh"))
        .arg(format!("http://127.0.0.1:{}", journal.admin_port))
        .args(["-p", &redis.port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("copied 3 events"));
    let on_redis = receiver(&redis);
    let (lines, n) = on_redis.dump("");
    assert_eq!(n, 3);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!("\"mv-{i}\"")), "{line}");
    }
    // The filter fields came along.
    assert_eq!(on_redis.dump("?status=FAILED").1, 2);
    assert_eq!(on_redis.dump("?event=job.status&live=false").1, 3);
}
