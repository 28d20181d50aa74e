//! Named consumers (UP42_WEBHOOK_CONSUMERS): each acknowledges on its own, an acknowledgement moves a
//! position and removes nothing (the dump marks who acknowledged what), retention still wins and
//! the consumer it overtakes sees the gap; positions
//! survive a restart, kill -9 of every nginx process in the middle of a burst, and (Redis: consumer
//! groups) a restart of Redis. Both stores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::nginx::{fresh, http, json, Response, Server, Setup};
use crate::common::redis::Redis;

const CONSUMERS: &str = "forward,inbox";

fn start(redis: Option<&Redis>, env: &[(&str, &str)]) -> Server {
    let mut setup = Setup::default().env("UP42_WEBHOOK_CONSUMERS", CONSUMERS);
    if let Some(r) = redis {
        setup = setup.env("UP42_WEBHOOK_STORE", &r.url());
    }
    for (k, v) in env {
        setup = setup.env(k, v);
    }
    setup.start()
}

/// A key or entry id as text: what `upto`, `since` and `before` take.
fn k(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Stores `n` deliveries: their keys.
fn store(server: &Server, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = server.post(&fresh(&format!("{tag}-{i}")));
            assert_eq!(r.status, 200, "{}", r.text());
            k(&json(&r)["key"])
        })
        .collect()
}

/// The keys a dump lists (with meta=true added to `query`), and its last line.
fn keys_of(server: &Server, query: &str) -> (Vec<String>, Value) {
    let sep = if query.is_empty() { "?" } else { "&" };
    let (lines, last) = server.dump_lines(&format!("{query}{sep}meta=true"));
    let keys = lines
        .iter()
        .map(|l| k(&serde_json::from_str::<Value>(l).unwrap()["key"]))
        .collect();
    (keys, last)
}

fn ack(server: &Server, consumer: &str, upto: &str) -> Response {
    server.admin(
        "POST",
        &format!("/ack-webhooks?consumer={consumer}&upto={upto}"),
        &[],
    )
}

fn acked(server: &Server, consumer: &str, upto: &str) -> Value {
    let r = ack(server, consumer, upto);
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

fn consumers(server: &Server) -> Value {
    json(&server.admin_get("/stats"))["consumers"].clone()
}

/// The keys a `/tail{query}` stream gives until it has `n` events (at most 20 s), and whether it
/// began with a gap event.
fn tail(server: &Server, query: &str, n: usize) -> (Vec<String>, Option<Value>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
    s.write_all(format!("GET /tail{query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut raw, mut buf) = (Vec::new(), [0u8; 65536]);
    let ids = |raw: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(raw)
            .lines()
            .filter_map(|l| l.strip_prefix("id: ").map(str::to_string))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && ids(&raw).len() < n {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => raw.extend_from_slice(&buf[..got]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let gap = text
        .split("\n\n")
        .find_map(|block| block.split_once("event: gap\ndata: ").map(|(_, d)| d))
        .map(|d| serde_json::from_str(d).unwrap());
    (ids(&raw), gap)
}

/// One consumer's acknowledgement moves its position only: the other and the plain dump still see
/// every event, also once both have passed them; the dump marks who acknowledged what; reading by
/// position; backwards paging; positions across `restart`.
fn own_positions(server: &mut Server, restart: &mut dyn FnMut(&mut Server)) {
    let keys = store(server, "own", 10);
    let r = server.admin("POST", &format!("/ack-webhooks?upto={}", keys[9]), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(json(&r)["error"], "consumer_required", "{}", r.text());
    assert_eq!(
        json(&r)["accepted"],
        serde_json::json!(["forward", "inbox"])
    );
    let r = ack(server, "nobody", &keys[9]);
    assert_eq!(
        (r.status, json(&r)["error"].as_str()),
        (400, Some("bad_argument")),
        "{}",
        r.text()
    );
    assert_eq!(
        server.admin_get("/dump-webhooks?consumer=nobody").status,
        400
    );

    let a = acked(server, "forward", &keys[4]);
    assert_eq!(
        (a["acked"].as_u64(), k(&a["upto"])),
        (Some(5), keys[4].clone()),
        "{a}"
    );
    assert_eq!(a["consumer"], "forward");
    assert_eq!(server.dump("").1, 10, "the plain dump still has all");
    assert_eq!(keys_of(server, "?consumer=forward").0, keys[5..]);
    assert_eq!(keys_of(server, "?consumer=inbox").0, keys);
    assert_eq!(tail(server, "?consumer=forward", 5).0, keys[5..]);
    let cs = consumers(server);
    assert_eq!(k(&cs["forward"]["position"]), keys[4], "{cs}");
    assert_eq!(cs["forward"]["lag"], 5, "{cs}");
    assert_eq!(cs["inbox"]["lag"], 10, "{cs}");
    assert_eq!(
        (cs["inbox"]["gap"].as_bool(), cs["inbox"]["lost"].as_u64()),
        (Some(false), Some(0))
    );

    // Once the other passes them too, they stay: history is not consumption.
    let a = acked(server, "inbox", &keys[2]);
    assert_eq!(a["acked"].as_u64(), Some(3), "{a}");
    assert_eq!(a.get("dropped"), None, "{a}");
    let (all, last) = keys_of(server, "");
    assert_eq!(all, keys);
    assert_eq!(k(&last["acknowledged"]["forward"]), keys[4], "{last}");
    assert_eq!(k(&last["acknowledged"]["inbox"]), keys[2], "{last}");
    let (lines, _) = server.dump_lines("?meta=true");
    let by =
        |i: usize| serde_json::from_str::<Value>(&lines[i]).unwrap()["acknowledged_by"].clone();
    assert_eq!(by(0), serde_json::json!(["forward", "inbox"]));
    assert_eq!(by(3), serde_json::json!(["forward"]));
    assert_eq!(by(5), serde_json::json!([]));
    let stats = json(&server.admin_get("/stats"));
    assert_eq!(stats["backlog"]["events"].as_u64(), Some(10), "{stats}");
    assert_eq!(k(&stats["positions"]["inbox"]), keys[2], "{stats}");
    // At or below its position, an acknowledgement changes nothing.
    let a = acked(server, "forward", &keys[1]);
    assert_eq!(
        (a["acked"].as_u64(), k(&a["upto"])),
        (Some(0), keys[4].clone()),
        "{a}"
    );

    // Pages backwards, newest first.
    let (page, last) = keys_of(server, &format!("?before={}&limit=3", keys[8]));
    assert_eq!(page, [keys[7].clone(), keys[6].clone(), keys[5].clone()]);
    assert_eq!(k(&last["next"]), keys[5]);
    let (page, _) = keys_of(server, &format!("?before={}&limit=10", keys[5]));
    assert_eq!(
        page,
        [
            keys[4].clone(),
            keys[3].clone(),
            keys[2].clone(),
            keys[1].clone(),
            keys[0].clone()
        ],
        "down to the oldest held"
    );
    for q in ["?before=5&since=1", "?before=5&consumer=inbox", "?before=x"] {
        assert_eq!(
            server.admin_get(&format!("/dump-webhooks{q}")).status,
            400,
            "{q}"
        );
    }

    restart(server);
    let cs = consumers(server);
    assert_eq!(k(&cs["forward"]["position"]), keys[4], "{cs}");
    assert_eq!(k(&cs["inbox"]["position"]), keys[2], "{cs}");
    assert_eq!(keys_of(server, "?consumer=forward").0, keys[5..]);
    assert_eq!(
        keys_of(server, "").0,
        keys,
        "acknowledged events stay across the restart"
    );
    server.assert_clean_logs();
}

#[test]
fn consumers_acknowledge_on_their_own_in_the_journal() {
    let mut server = start(None, &[]);
    own_positions(&mut server, &mut |s| {
        s.stop();
        s.restart();
    });
}

#[test]
fn consumers_acknowledge_on_their_own_in_redis() {
    let mut redis = Redis::start("consumers");
    let mut server = start(Some(&redis), &[]);
    own_positions(&mut server, &mut |s| {
        s.stop();
        s.restart();
    });
    // The positions are the consumer groups' (XINFO GROUPS), kept across a crash of Redis.
    let groups = redis.cli(&["XINFO", "GROUPS", "up42webhooks"]);
    assert!(
        groups.contains("forward") && groups.contains("inbox"),
        "{groups}"
    );
    let before = consumers(&server);
    redis.crash();
    redis.run();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.admin_get("/stats").status != 200 || consumers(&server).is_null() {
        assert!(Instant::now() < deadline, "Redis is back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = consumers(&server);
    for name in ["forward", "inbox"] {
        assert_eq!(after[name]["position"], before[name]["position"], "{after}");
    }

    // A program reading the group itself: what it read and did not XACK is pending, and its
    // position stays before the first pending entry.
    let (all, _) = keys_of(&server, "");
    let (held, _) = keys_of(&server, "?consumer=inbox");
    let read = redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "inbox",
        "worker-1",
        "COUNT",
        "4",
        "STREAMS",
        "up42webhooks",
        ">",
    ]);
    assert!(read.contains(&held[3]), "{read}");
    redis.cli(&["XACK", "up42webhooks", "inbox", &held[0], &held[1]]);
    let cs = consumers(&server);
    assert_eq!(k(&cs["inbox"]["position"]), held[1], "{cs}");
    assert_eq!(cs["inbox"]["pending"], 2, "{cs}");
    assert_eq!(
        keys_of(&server, "?consumer=inbox").0,
        held[2..],
        "from its first pending entry"
    );
    let newest = held.last().unwrap();
    acked(&server, "forward", newest);
    // Acknowledged through the admin listener, the pending ones are XACKed too.
    let a = acked(&server, "inbox", newest);
    assert_eq!(a["acked"].as_u64(), Some(held.len() as u64 - 2), "{a}");
    assert_eq!(consumers(&server)["inbox"]["pending"], 0);
    assert_eq!(
        keys_of(&server, "").0,
        all,
        "both passed everything, and it all stays"
    );
}

/// Retention (5 events) overtakes inbox, which never acknowledges, while forward keeps up: the
/// store goes on taking deliveries, and inbox is told of the gap.
fn never_dead_ends(server: &Server) {
    let mut keys = Vec::new();
    for i in 0..13 {
        keys.extend(store(server, &format!("gap-{i}"), 1));
        acked(server, "forward", keys.last().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.dump("").1 > 5 {
        assert!(
            Instant::now() < deadline,
            "retention ran: {}",
            consumers(server)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (got, last) = keys_of(server, "?consumer=inbox");
    assert!(got.len() == 5 && got.last() == keys.last(), "{got:?}");
    let gap = &last["gap"];
    assert_eq!(k(&gap["after"]), "0", "{last}");
    let first_kept = keys.iter().position(|x| *x == got[0]).unwrap();
    assert_eq!(k(&gap["through"]), keys[first_kept - 1], "{last}");
    let (_, tail_gap) = tail(server, "?consumer=inbox", got.len());
    assert_eq!(tail_gap.as_ref(), Some(gap), "the tail says so first");
    let cs = consumers(server);
    assert_eq!(cs["inbox"]["gap"], true, "{cs}");
    assert_eq!(
        cs["inbox"]["lost"].as_u64(),
        Some(first_kept as u64),
        "{cs}"
    );
    assert_eq!(
        (
            cs["forward"]["gap"].as_bool(),
            cs["forward"]["lost"].as_u64()
        ),
        (Some(false), Some(0)),
        "{cs}"
    );
    // Acknowledging past the gap closes it; what both have passed stays until retention.
    let a = acked(server, "inbox", keys.last().unwrap());
    assert_eq!(a["acked"].as_u64(), Some(got.len() as u64), "{a}");
    acked(server, "forward", keys.last().unwrap());
    let (left, last) = keys_of(server, "?consumer=inbox");
    assert!(
        left.is_empty() && last.get("gap").is_none(),
        "{left:?} {last}"
    );
    assert_eq!(server.dump("").1, 5);
}

fn with_max_events(conf: &str) -> String {
    conf.replace(
        "require(\"up42webhooks\").configure{}",
        "require(\"up42webhooks\").configure{ retention = { max_events = 5 } }",
    )
}

/// The consumers declared, the store Redis's when `redis` is given, default.conf passed through
/// `edit`.
fn start_edited(redis: Option<&Redis>, edit: fn(&str) -> String) -> Server {
    let mut setup = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", CONSUMERS)
        .edit(edit);
    if let Some(r) = redis {
        setup = setup.env("UP42_WEBHOOK_STORE", &r.url());
    }
    setup.start()
}

#[test]
fn retention_overtakes_a_consumer_that_never_acknowledges_in_the_journal() {
    never_dead_ends(&start_edited(None, with_max_events));
}

#[test]
fn retention_overtakes_a_consumer_that_never_acknowledges_in_redis() {
    let redis = Redis::start("consumers-gap");
    never_dead_ends(&start_edited(Some(&redis), with_max_events));
}

#[test]
fn positions_survive_kill_9_of_every_nginx_process_in_the_middle_of_a_burst() {
    let mut server = start(None, &[]);
    let (port, admin) = (server.port, server.admin_port);
    let stored: Arc<Mutex<Vec<u64>>> = Arc::default();
    let acks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<_> = (0..2)
        .map(|t| {
            let (stored, stop) = (stored.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let d = fresh(&format!("burst-{t}-{i}"));
                    if let Some(r) =
                        http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body)
                    {
                        if r.status == 200 {
                            stored
                                .lock()
                                .unwrap()
                                .push(json(&r)["key"].as_u64().unwrap());
                        } else {
                            assert_eq!(r.status, 503, "{}", r.text());
                        }
                    }
                }
            })
        })
        .collect();
    // forward reads a page after its position and acknowledges it, again and again.
    {
        let (acks, stop) = (acks.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let get = |path: &str, method: &str| http(admin, method, path, &[], b"");
            for _ in 0..100000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(page) = get("/dump-webhooks?consumer=forward&limit=20", "GET") else {
                    break;
                };
                let text = page.text();
                let Some(last) = text
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str::<Value>(l).ok())
                else {
                    break;
                };
                let next = last["next"].as_u64().unwrap_or(0);
                if next == 0 {
                    continue;
                }
                match get(
                    &format!("/ack-webhooks?consumer=forward&upto={next}"),
                    "POST",
                ) {
                    Some(r) if r.status == 200 => acks
                        .lock()
                        .unwrap()
                        .push(json(&r)["upto"].as_u64().unwrap()),
                    _ => break,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (stored.lock().unwrap().len() < 400 || acks.lock().unwrap().len() < 5)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.crash();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let stored = stored.lock().unwrap().clone();
    let acked_to = acks
        .lock()
        .unwrap()
        .iter()
        .copied()
        .max()
        .expect("forward acknowledged");
    assert!(stored.len() >= 400, "the burst ran: {}", stored.len());

    server.restart();
    let cs = consumers(&server);
    let forward = cs["forward"]["position"].as_u64().unwrap();
    assert!(
        forward >= acked_to,
        "every acknowledgement answered 200 is kept: {forward} < {acked_to}"
    );
    assert_eq!(cs["inbox"]["position"], 0, "{cs}");
    // inbox never acknowledged: every event answered 200 is still there, in the plain dump...
    let (all, _) = keys_of(&server, "");
    let all: Vec<u64> = all.iter().map(|x| x.parse().unwrap()).collect();
    for key in &stored {
        assert!(all.contains(key), "event {key} answered 200 is kept");
    }
    // ...and forward goes on after its position.
    let (after, _) = keys_of(&server, "?consumer=forward");
    let after: Vec<u64> = after.iter().map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        after,
        all.iter()
            .copied()
            .filter(|&x| x > forward)
            .collect::<Vec<_>>()
    );
    server.assert_clean_logs();
}

/// History is not consumption: what every consumer has acknowledged stays readable until
/// `retention.acked_max_age` (1 s here), and then goes; events as old that a consumer has not
/// acknowledged stay (until `max_age`).
fn acknowledged_history_ages_out(server: &Server) {
    let keys = store(server, "history", 6);
    acked(server, "forward", &keys[4]);
    acked(server, "inbox", &keys[2]);
    assert_eq!(server.dump("").1, 6, "an acknowledgement removes nothing");
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.dump("").1 > 3 {
        assert!(
            Instant::now() < deadline,
            "retention ran: {}",
            server.dump("").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The three left are as old as the three removed: only the acknowledgement told them apart.
    let (left, last) = keys_of(server, "");
    assert_eq!(left, keys[3..], "{last}");
    let stats = json(&server.admin_get("/stats"));
    assert_eq!(stats["counters"]["expired"].as_u64(), Some(3), "{stats}");
    let cs = consumers(server);
    assert_eq!(
        (cs["inbox"]["gap"].as_bool(), cs["inbox"]["lost"].as_u64()),
        (Some(false), Some(0)),
        "{cs}"
    );
    server.assert_clean_logs();
}

fn with_acked_max_age(conf: &str) -> String {
    conf.replace(
        "require(\"up42webhooks\").configure{}",
        "require(\"up42webhooks\").configure{ retention = { acked_max_age = 1 } }",
    )
}

#[test]
fn acknowledged_events_stay_until_acked_max_age_in_the_journal() {
    acknowledged_history_ages_out(&start_edited(None, with_acked_max_age));
}

#[test]
fn acknowledged_events_stay_until_acked_max_age_in_redis() {
    let redis = Redis::start("consumers-history");
    acknowledged_history_ages_out(&start_edited(Some(&redis), with_acked_max_age));
}
