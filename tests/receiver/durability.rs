//! The durability contract on real nginx (two workers, the project's config, the journal in the
//! run directory's data/): nothing answered 200 is lost when every nginx process is killed with
//! SIGKILL in the middle of load; a worker killed between claiming a delivery and storing it does
//! not turn the sender's retry into a false duplicate; a torn or damaged journal gives back every
//! complete record; a reload does not replay twice. And the consumer's side: paging, long-poll,
//! acknowledgement, the live tail, retention, id conflicts, and a consumer that keeps a small store
//! from ever filling.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::nginx::{configured, http, json, now, post_to, Delivery, Server, Setup, SECRET};
use up42webhooks::format_rfc3339;

fn event(id: &str, status: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"{status}"{extra}}}}}"#,
        format_rfc3339(now())
    )
    .into_bytes()
}

fn delivery(id: &str) -> Delivery {
    Delivery::signed(&event(id, "FAILED", ""), SECRET, now())
}

fn message_id(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"))
        ["messageId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The events a consumer of GET /tail?since=K receives until one with key `until` has come (at
/// most 30 s: other tests' disk syncs can stall a worker for seconds): (key, line) in order.
fn tail(srv: &Server, since: u64, until: u64, headers: &[(&str, &str)]) -> Vec<(u64, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", srv.admin_port)).unwrap();
    let mut req = format!("GET /tail?since={since} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {} // quiet for a moment: keep waiting for `until`, up to the deadline
        }
        let text = String::from_utf8_lossy(&raw);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if sse_events(body).iter().any(|(k, _)| *k >= until) {
                break;
            }
        }
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    sse_events(body)
}

fn sse_events(body: &str) -> Vec<(u64, String)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_string());
                }
            }
            Some((id?, data?))
        })
        .collect()
}

#[test]
fn kill_9_of_every_process_under_load_loses_nothing_answered_200() {
    let mut srv = Server::start();
    let port = srv.port;
    let answered: Arc<Mutex<Vec<(String, u64, Delivery)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let (answered, stop, sent) = (answered.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("load-{t}-{i}");
                    let d = delivery(&id);
                    let h = d.header_refs();
                    sent.fetch_add(1, Ordering::Relaxed);
                    match http(port, "POST", "/receive-webhooks", &h, &d.body) {
                        Some(r) if r.status == 200 => {
                            let key = json(&r)["key"].as_u64().expect("a stored key");
                            answered.lock().unwrap().push((id, key, d.clone()));
                        }
                        Some(r) => assert_eq!(r.status, 503, "{}", r.text()),
                        None => {} // the server died under the request: no answer, no promise
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.lock().unwrap().len() < 600 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.crash();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 600,
        "load ran: {} answered",
        answered.len()
    );

    srv.restart();
    let newest = json(&srv.admin_get("/stats"))["backlog"]["newest_key"]
        .as_u64()
        .unwrap();
    let events = tail(&srv, 0, newest, &[]);
    let stored: HashMap<u64, String> = events
        .iter()
        .map(|(k, line)| (*k, message_id(line)))
        .collect();
    assert_eq!(stored.len(), events.len(), "no key twice");
    let ids: HashSet<&String> = stored.values().collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    for (id, key, _) in &answered {
        assert_eq!(
            stored.get(key),
            Some(id),
            "answered 200 as key {key}, and still there"
        );
    }
    // What is there beyond the 200s was in flight at the crash (written, not yet answered).
    assert!(
        stored.len() - answered.len() <= 8,
        "{} unanswered",
        stored.len() - answered.len()
    );
    let (lines, n) = srv.dump("");
    assert_eq!((lines.len(), n), (stored.len(), stored.len() as u64));

    // Keys go on after the highest (above the key mark: they may jump, never repeat); a retry of
    // a stored delivery is a duplicate.
    let max_key = *stored.keys().max().unwrap();
    let r = srv.post(&delivery("after-restart"));
    let after_key = json(&r)["key"].as_u64().unwrap();
    assert!(after_key > max_key, "{}", r.text());
    // The sender's retry (the same bytes) of an answered delivery.
    let (_, _, first) = &answered[0];
    let retry = srv.post(first);
    assert!(retry.text().contains("duplicate"), "{}", retry.text());
    // Also once it has been acknowledged (the dedup window outlives the event).
    let ack = srv.admin("POST", &format!("/ack-webhooks?upto={after_key}"), &[]);
    assert_eq!(ack.status, 200, "{}", ack.text());
    let retry = srv.post(first);
    assert!(retry.text().contains("duplicate"), "{}", retry.text());
    // And across another crash: the acknowledgement (a position: the events stay) and the dedup
    // marks come back too.
    srv.crash();
    srv.restart();
    let (_, last) = srv.dump_lines("");
    assert_eq!(
        last["number_webhooks_received"].as_u64(),
        Some(stored.len() as u64 + 1)
    );
    assert_eq!(
        last["acknowledged"]["default"].as_u64(),
        Some(after_key),
        "{last}"
    );
    let retry = srv.post(first);
    assert!(retry.text().contains("duplicate"), "{}", retry.text());
}

#[test]
fn a_worker_killed_between_claim_and_store_does_not_make_the_retry_a_duplicate() {
    // A test hook: the first delivery whose body says "crash-window" stops just before its
    // journal append, after its id is claimed and its key taken, and says which worker holds it.
    let hook = r#"
        local native = require "up42webhooks.native"
        local commit = native.deliver_commit
        native.deliver_commit = function(key, journal, sync, body, now)
            local stats = ngx.shared.webhooks_stats
            if body:find("crash-window", 1, true) and stats:add("paused_worker", ngx.worker.pid()) then
                ngx.sleep(60)
            end
            return commit(key, journal, sync, body, now)
        end"#;
    let srv = Server::start_with(configured("pending_ttl = 2", hook), &[]);
    let d = Delivery::signed(
        &event("cw-1", "FAILED", r#","note":"crash-window""#),
        SECRET,
        now(),
    );
    let port = srv.port;
    let first = {
        let d = d.clone();
        std::thread::spawn(move || {
            http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body).map(|r| r.status)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let worker = loop {
        let stats = json(&srv.admin_get("/stats"));
        if let Some(pid) = stats["counters"]["paused_worker"].as_u64() {
            break pid as u32;
        }
        assert!(Instant::now() < deadline, "the hook paused a worker");
        std::thread::sleep(Duration::from_millis(20));
    };
    crate::common::nginx::kill9(&[worker]);
    assert_eq!(first.join().unwrap(), None, "the sender got no answer");
    // At once: the claim is still there, so the retry is told to come back, not "duplicate".
    let r = srv.post(&d);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(json(&r)["error"], "in_flight");
    assert!(r.header("retry-after").is_some());
    // Once the claim has expired, the retry is stored, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let r = srv.post(&d);
        if r.status == 200 {
            break r;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "the retry is stored");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        stored.text().contains(r#""msg":"stored""#),
        "{}",
        stored.text()
    );
    assert!(srv.post(&d).text().contains("duplicate"));
    // The dead worker's key stays empty: readers pass it once the event after it has settled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let (lines, n) = srv.dump("");
        if n == 1 {
            break lines;
        }
        assert!(Instant::now() < deadline, "the gap is passed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(message_id(&lines[0]), "cw-1");
}

/// The frame boundaries of a segment file, from the library's own decoder.
fn frame_ends(dir: &std::path::Path, segment: &[u8]) -> Vec<usize> {
    let seed = up42webhooks::journal::salt_seed(dir, false).unwrap();
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some((_, len)) = up42webhooks::journal::decode_record(&segment[at..], seed) {
        at += len;
        ends.push(at);
    }
    assert_eq!(at, segment.len(), "the segment is whole frames");
    ends
}

#[test]
fn a_torn_or_damaged_journal_gives_back_every_complete_record() {
    let mut srv = Server::start();
    srv.store((0..12).map(|i| delivery(&format!("j-{i}"))));
    srv.crash();
    let data = srv.dir.join("data");
    let segment = data.join(up42webhooks::journal::segment_name(1));
    let whole = std::fs::read(&segment).unwrap();
    let ends = frame_ends(&data, &whole);
    assert_eq!(ends.len(), 12);
    let last_start = ends[10];
    // The last append cut short at offsets across its frame: header, payload, the final byte.
    for cut in [
        last_start + 1,
        last_start + 11,
        last_start + 40,
        whole.len() - 1,
    ] {
        std::fs::write(&segment, &whole[..cut]).unwrap();
        srv.restart();

        let (lines, n) = srv.dump("");
        assert_eq!(n, 11, "cut at {cut}: the eleven complete records");
        assert_eq!(message_id(&lines[10]), "j-10");
        let counters = json(&srv.admin_get("/stats"))["counters"].clone();
        assert_eq!(counters["journal_torn_bytes"], cut - last_start);
        assert!(counters["journal_corrupt"].is_null());
        srv.crash();
    }
    // One flipped bit in the sixth record: that record lost, counted, logged; no other.
    let mut damaged = whole.clone();
    damaged[(ends[4] + ends[5]) / 2] ^= 0x10;
    std::fs::write(&segment, &damaged).unwrap();
    let _ = std::fs::remove_file(srv.dir.join("logs/error.log"));
    srv.restart();
    let (lines, n) = srv.dump("");
    assert_eq!(n, 11);
    let ids: Vec<String> = lines.iter().map(|l| message_id(l)).collect();
    assert!(!ids.contains(&"j-5".to_string()), "{ids:?}");
    assert!(ids.contains(&"j-4".to_string()) && ids.contains(&"j-6".to_string()));
    let counters = json(&srv.admin_get("/stats"))["counters"].clone();
    assert_eq!(counters["journal_corrupt"], 1);
    assert!(srv
        .error_log()
        .contains("journal: 1 damaged stretches skipped"));
}

#[test]
fn a_reload_does_not_replay_the_journal_again() {
    let mut srv = Server::start();
    srv.store((0..5).map(|i| delivery(&format!("r-{i}"))));
    srv.crash();
    srv.restart();
    assert_eq!(
        json(&srv.admin_get("/stats"))["counters"]["journal_replayed_events"],
        5
    );
    let before = srv.worker_pids();
    srv.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.worker_pids().iter().any(|p| before.contains(p)) {
        assert!(Instant::now() < deadline, "new workers after the reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.post(&delivery("r-5")).status, 200);
    let (lines, n) = srv.dump("");
    assert_eq!(n, 6, "{lines:?}");
    assert_eq!(
        json(&srv.admin_get("/stats"))["counters"]["journal_replayed_events"],
        5
    );
    srv.assert_clean_logs();
}

#[test]
fn paging_long_poll_ack_and_the_tail() {
    let srv = Server::start_with(configured("tail_heartbeat = 1, max_tails = 1", ""), &[]);
    let mut keys = Vec::new();
    for i in 0..7 {
        let r = srv.post(&delivery(&format!("p-{i}")));
        keys.push(json(&r)["key"].as_u64().unwrap());
    }
    // Pages of three, each after the last one's cursor.
    let (page, n, next) = srv.dump_page("?limit=3");
    assert_eq!((page.len(), n, next), (3, 3, keys[2]));
    let (page, _, next) = srv.dump_page(&format!("?since={next}&limit=3"));
    assert_eq!((message_id(&page[0]), next), ("p-3".to_string(), keys[5]));
    let (page, _, next) = srv.dump_page(&format!("?since={next}&limit=3"));
    assert_eq!((page.len(), next), (1, keys[6]));
    let (page, n, same) = srv.dump_page(&format!("?since={next}"));
    assert_eq!(
        (page.len(), n, same),
        (0, 0, keys[6]),
        "nothing new: the cursor stays"
    );
    for bad in ["?limit=x", "?since=-1", "?wait=61", "?wait=1.5"] {
        let r = srv.admin_get(&format!("/dump-webhooks{bad}"));
        assert_eq!(
            (r.status, json(&r)["error"].as_str()),
            (400, Some("bad_argument")),
            "{bad}"
        );
    }

    // Long-poll: held until an event arrives, or until the wait is over.
    let admin = srv.admin_port;
    let since = keys[6];
    let waiting = std::thread::spawn(move || {
        http(
            admin,
            "GET",
            &format!("/dump-webhooks?since={since}&wait=20"),
            &[],
            b"",
        )
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "held while nothing is new");
    let r = srv.post(&delivery("p-7"));
    let arrived = waiting.join().unwrap();
    let text = arrived.text();
    assert!(text.contains("\"p-7\""), "{text}");
    let new_key = json(&r)["key"].as_u64().unwrap();
    assert!(
        text.ends_with(&format!("\"next\":{new_key}}}\n"))
            || text.contains(&format!("\"next\":{new_key}"))
    );
    let (page, n, next) = srv.dump_page(&format!("?since={new_key}&wait=1"));
    assert_eq!((page.len(), n, next), (0, 0, new_key), "the wait ran out");

    // The tail: from Last-Event-ID on, then live, with heartbeats.
    let events = tail(&srv, 0, new_key, &[("Last-Event-ID", &keys[4].to_string())]);
    let got: Vec<u64> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(got, [keys[5], keys[6], new_key]);
    // The tail that went away is noticed at its next write (a heartbeat at the latest), and its
    // place freed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&srv.admin_get("/stats"))["backlog"]["tails_open"] != 0 {
        assert!(Instant::now() < deadline, "the closed tail is released");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.write_all(format!("GET /tail?since={new_key} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let live = srv.post(&delivery("p-live"));
    let live_key = json(&live)["key"].as_u64().unwrap();
    let mut raw = String::new();
    let mut buf = [0u8; 4096];
    // Bounded generously: other tests' disk syncs can stall a worker for seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(raw.contains("p-live") && raw.contains(": heartbeat")) && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(
        raw.contains(&format!("event: webhook\nid: {live_key}\ndata: ")),
        "{raw}"
    );
    assert!(raw.contains(": heartbeat"), "{raw}");
    // Tails are bounded (max_tails = 1 here): while this one is open, another is refused.
    let second = srv.admin_get("/tail");
    assert_eq!(
        (second.status, json(&second)["error"].as_str()),
        (503, Some("tail_refused"))
    );
    drop(s);

    // Acknowledge the first three (the default consumer's position): counted, marked, and still
    // in the dump.
    let r = srv.admin("POST", &format!("/ack-webhooks?upto={}", keys[2]), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            json(&r)["acked"].as_u64(),
            json(&r)["upto"].as_u64(),
            json(&r)["consumer"].as_str()
        ),
        (Some(3), Some(keys[2]), Some("default"))
    );
    let (lines, n) = srv.dump("");
    assert_eq!((n, message_id(&lines[0])), (9, "p-0".to_string()));
    let stats = json(&srv.admin_get("/stats"));
    assert_eq!(stats["counters"]["acked"], 3);
    assert_eq!(
        stats["positions"]["default"].as_u64(),
        Some(keys[2]),
        "{stats}"
    );
    assert!(stats["consumers"].is_null(), "none declared: {stats}");
    let backlog = stats["backlog"].clone();
    assert_eq!(backlog["events"], 9);
    assert_eq!(backlog["oldest_key"], keys[0]);
    assert!(backlog["journal"]["bytes"].as_u64().unwrap() > 0);
    // An acknowledgement past the end stops at the last event.
    let r = srv.admin("POST", "/ack-webhooks?upto=1000000", &[]);
    assert_eq!(json(&r)["upto"].as_u64(), Some(live_key));
    assert_eq!(srv.dump("").1, 9);
    assert_eq!(srv.admin("GET", "/ack-webhooks?upto=1", &[]).status, 405);
    assert_eq!(srv.admin("POST", "/ack-webhooks", &[]).status, 400);
    assert_eq!(srv.admin("POST", "/ack-webhooks?upto=x", &[]).status, 400);
    assert_eq!(
        srv.request("POST", "/ack-webhooks?upto=1", &[], b"").status,
        404,
        "not on the public listener"
    );
    // Waiting sleeps (it never spins: nginx warns of a zero sleep).
    assert!(!srv.error_log().contains("ngx.sleep(0)"));
    srv.assert_clean_logs();
}

#[test]
fn the_same_id_with_another_body_is_a_conflict() {
    let srv = Server::start();
    let first = Delivery::signed(&event("dup-1", "FAILED", ""), SECRET, now());
    assert_eq!(srv.post(&first).status, 200);
    let other = Delivery::signed(&event("dup-1", "SUCCEEDED", ""), SECRET, now());
    let r = srv.post(&other);
    assert_eq!(
        (r.status, json(&r)["error"].as_str()),
        (409, Some("id_conflict")),
        "{}",
        r.text()
    );
    assert!(srv.post(&first).text().contains("duplicate"));
    let (lines, n) = srv.dump("");
    assert_eq!(n, 1);
    assert!(lines[0].contains("FAILED"));
    let counters = json(&srv.admin_get("/stats"))["counters"].clone();
    assert_eq!(counters["rejected_id_conflict"], 1);
    // Prometheus: delivery outcomes in one counter, the store's figures as metrics of their own.
    let prom = srv.admin_get("/stats?format=prometheus").text();
    for line in [
        "# TYPE up42webhooks_requests_total counter",
        "up42webhooks_requests_total{outcome=\"stored\"} 1",
        "up42webhooks_requests_total{outcome=\"rejected_id_conflict\"} 1",
        "up42webhooks_requests_total{outcome=\"duplicate\"} 1",
        "# TYPE up42webhooks_journal_replayed_events gauge",
        "up42webhooks_events 1",
        "# TYPE up42webhooks_dict_free_bytes gauge",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} in:\n{prom}");
    }
    assert!(!prom.contains("outcome=\"journal_"), "{prom}");
    assert!(srv.error_log().contains("rejected delivery: id_conflict"));
}

#[test]
fn retention_drops_the_oldest_past_age_and_count() {
    let by_age = Server::start_with(configured("retention = { max_age = 2 }", ""), &[]);
    by_age.store((0..3).map(|i| delivery(&format!("old-{i}"))));
    let deadline = Instant::now() + Duration::from_secs(15);
    while json(&by_age.admin_get("/stats"))["counters"]["expired"] != 3 {
        assert!(
            Instant::now() < deadline,
            "expired within the timer's rounds"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(by_age.dump("").1, 0);

    let by_count = Server::start_with(configured("retention = { max_events = 5 }", ""), &[]);
    by_count.store((0..8).map(|i| delivery(&format!("n-{i}"))));
    let deadline = Instant::now() + Duration::from_secs(15);
    while by_count.dump("").1 != 5 {
        assert!(Instant::now() < deadline, "trimmed to five");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (lines, _) = by_count.dump("");
    assert_eq!(message_id(&lines[0]), "n-3", "the oldest went first");
    assert_eq!(
        json(&by_count.admin_get("/stats"))["counters"]["expired"],
        3
    );
    by_count.assert_clean_logs();
}

/// A full store of unacknowledged events refuses (503); once a consumer acknowledges, the oldest
/// acknowledged events make room (evicted), never one it has not acknowledged, and what it
/// acknowledged stays readable until then.
#[test]
fn a_consumer_that_acknowledges_keeps_a_small_store_from_filling() {
    let srv = Setup::default()
        .edit(|c| {
            c.replace(
                "lua_shared_dict received_webhooks 16m;",
                "lua_shared_dict received_webhooks 96k;",
            )
        })
        .start();
    let padding = format!(r#","padding":"{}""#, "p".repeat(900));
    let post = |id: &str| {
        let d = Delivery::signed(&event(id, "FAILED", &padding), SECRET, now());
        post_to(srv.port, &d)
    };
    // How many 1 KiB events the store holds: fill it once.
    let mut capacity = 0;
    loop {
        let r = post(&format!("fill-{capacity}"));
        if r.status == 503 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        capacity += 1;
        assert!(capacity < 10_000);
    }
    assert!(capacity >= 10, "capacity {capacity}");
    let (_, _, next) = srv.dump_page("");
    assert_eq!(
        srv.admin("POST", &format!("/ack-webhooks?upto={next}"), &[])
            .status,
        200
    );
    // Three times that, with a consumer reading and acknowledging every half capacity.
    let mut cursor = next;
    let mut consumed = 0;
    for i in 0..3 * capacity {
        let r = post(&format!("flow-{i}"));
        assert_eq!(
            r.status,
            200,
            "delivery {i} of {} (capacity {capacity}): {}",
            3 * capacity,
            r.text()
        );
        if i % (capacity / 2) == 0 {
            let (lines, _, next) = srv.dump_page(&format!("?since={cursor}"));
            consumed += lines.len();
            let ack = srv.admin("POST", &format!("/ack-webhooks?upto={next}"), &[]);
            assert_eq!(ack.status, 200);
            cursor = next;
        }
    }
    let (lines, _, _) = srv.dump_page(&format!("?since={cursor}"));
    assert_eq!(
        consumed + lines.len(),
        3 * capacity,
        "every event read once"
    );
    let stats = json(&srv.admin_get("/stats"));
    let evicted = stats["counters"]["evicted"].as_u64().unwrap_or(0);
    assert!(evicted >= capacity as u64, "{stats}");
    // Acknowledged events the store had room for are still there, before the unacknowledged.
    let (all, _, _) = srv.dump_page("");
    assert!(
        all.len() > lines.len(),
        "{} held, {} unacknowledged",
        all.len(),
        lines.len()
    );
    assert!(all.ends_with(&lines));
}

#[test]
fn every_stored_event_is_the_one_its_200_named_across_key_mark_moves_under_concurrent_readers() {
    // Deliveries from six connections cross three moves of the journal's key mark (every 1000 keys,
    // where a worker may wait for the other's write) while readers decompress stored lines in the
    // same workers: nothing a delivery keeps in its worker's buffers may be reused meanwhile.
    let srv = Server::start();
    let (port, admin) = (srv.port, srv.admin_port);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http(
                        admin,
                        "GET",
                        "/dump-webhooks?meta=true&limit=200&since=0",
                        &[],
                        b"",
                    );
                }
            })
        })
        .collect();
    // (key, body) of each delivery answered 200.
    type Stored = Vec<(u64, Vec<u8>)>;
    let stored: Arc<Mutex<Stored>> = Arc::default();
    let pad = format!(r#","pad":"{}""#, "p".repeat(400));
    let senders: Vec<_> = (0..6)
        .map(|t| {
            let (stored, pad) = (stored.clone(), pad.clone());
            std::thread::spawn(move || {
                for i in 0..560 {
                    let body = event(&format!("mark-{t}-{i}"), "FAILED", &pad);
                    let d = Delivery::signed(&body, SECRET, now());
                    let r = post_to(port, &d);
                    assert_eq!(r.status, 200, "{}", r.text());
                    let key = json(&r)["key"].as_u64();
                    let key = key.unwrap_or_else(|| panic!("a key: {}", r.text()));
                    stored.lock().unwrap().push((key, body));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let stored = stored.lock().unwrap().clone();
    assert!(
        stored.iter().map(|(k, _)| *k).max().unwrap() > 3000,
        "the key mark moved three times"
    );
    let (lines, n) = srv.dump("?meta=true");
    assert_eq!(n as usize, stored.len());
    let by_key: HashMap<u64, String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["key"].as_u64().unwrap(), l.clone())
        })
        .collect();
    for (key, body) in &stored {
        let line = &by_key[key];
        assert!(
            line.ends_with(&format!(",\"event\":{}}}", String::from_utf8_lossy(body))),
            "key {key} holds the event its 200 named: {line}"
        );
    }
    srv.assert_clean_logs();
}
