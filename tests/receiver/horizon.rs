//! The replay horizon (issue 24): a delivery id is remembered for days, whatever became of its
//! event, in the replay index beside the journal (or in Redis). The receiver's clock is moved on
//! by a test hook (ngx.time plus an offset, kept in a file so that it survives a restart), so that
//! hours and days pass in a second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::nginx::{http, json, now, Delivery, Response, Server, Setup};
use crate::common::redis::Redis;
use crate::common::senders::{standard_webhooks_headers, STANDARD_SECRET};

/// Before the module is loaded (its handlers keep ngx.time in locals): the receiver's clock is
/// the real one plus the offset /test-clock last set, or the one in the prefix's test-clock file
/// when it starts.
const CLOCK_HOOK: &str = r#"
    local offset_file = ngx.config.prefix() .. "test-clock"
    local real_time, at_start = ngx.time, 0
    local f = io.open(offset_file)
    if f then at_start = tonumber(f:read("*a")) or 0; f:close() end
    ngx.time = function()
        return real_time() + (ngx.shared.webhooks_stats:get("test:offset") or at_start)
    end
"#;

const CLOCK_LOCATION: &str = r#"    location = /test-clock {
        content_by_lua_block {
            ngx.shared.webhooks_stats:set("test:offset", tonumber(ngx.var.arg_s))
            ngx.say("ok")
        }
    }
"#;

/// The project's config with the clock hook, configure{`settings`} plus a Standard Webhooks
/// sender at /hooks/standard, and the admin listener's /test-clock.
fn with_clock(settings: &str) -> impl Fn(&str) -> String + '_ {
    move |conf: &str| {
        let configure = format!(
            "{CLOCK_HOOK}\n    require(\"up42webhooks\").configure{{ {settings} senders = {{ \
             standard = {{ profile = \"standard-webhooks\", secret = \"{STANDARD_SECRET}\" }} }} }}"
        );
        conf.replace("require(\"up42webhooks\").configure{}", &configure)
            .replacen(
                "    location = /ping {",
                "    location = /hooks/standard { default_type application/json; \
                 content_by_lua_block { require(\"up42webhooks\").receive(\"standard\") } }\n    \
                 location = /ping {",
                1,
            )
            .replacen(
                "    location = /stats {",
                &format!("{CLOCK_LOCATION}    location = /stats {{"),
                1,
            )
    }
}

struct Clock {
    offset: i64,
}

impl Clock {
    /// Moves the receiver's clock `seconds` on (in its workers, and in the file a start reads).
    fn advance(&mut self, srv: &Server, seconds: i64) {
        self.offset += seconds;
        std::fs::write(srv.dir.join("test-clock"), self.offset.to_string()).unwrap();
        let r = srv.admin_get(&format!("/test-clock?s={}", self.offset));
        assert_eq!(r.status, 200, "{}", r.text());
    }

    fn now(&self) -> i64 {
        now() + self.offset
    }
}

/// A Standard Webhooks delivery of `body` with `id`, signed at `t` (as a sender signs each
/// attempt afresh).
fn standard(srv: &Server, id: &str, body: &str, t: i64) -> Response {
    standard_at(srv.port, id, body, t).expect("an answer")
}

/// The same to the receiver on `port`: None when it gave no answer (it died under the request).
fn standard_at(port: u16, id: &str, body: &str, t: i64) -> Option<Response> {
    let headers = standard_webhooks_headers(STANDARD_SECRET, id, t, body.as_bytes());
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    http(port, "POST", "/hooks/standard", &headers, body.as_bytes())
}

fn outcome(r: &Response) -> String {
    let j = json(r);
    match r.status {
        200 if j["msg"] == "stored" => "stored".into(),
        200 if j["msg"] == "duplicate: already stored" => "duplicate".into(),
        _ => format!("{} {}", r.status, j["error"].as_str().unwrap_or("")),
    }
}

/// Waits (bounded) until the store holds `n` events.
fn until_held(srv: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = json(&srv.admin_get("/stats"))["backlog"]["events"].as_u64();
        if held == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{held:?} events held, not {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_late_standard_webhooks_retry_is_a_duplicate_for_the_horizon() {
    let mut srv = Setup::default()
        .edit(with_clock("retention = { max_age = 3600 },"))
        .start();
    let mut clock = Clock { offset: 0 };
    let started = now();
    let first = r#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;
    let second = r#"{"type":"invoice.paid","data":{"id":"in_2"}}"#;
    assert_eq!(
        outcome(&standard(&srv, "msg_1", first, clock.now())),
        "stored"
    );
    // 30 minutes on (Svix's fourth attempt; the old dedup window was 720 s), signed afresh: a
    // duplicate; the same id with another body, a conflict.
    clock.advance(&srv, 1800);
    assert_eq!(
        outcome(&standard(&srv, "msg_1", first, clock.now())),
        "duplicate"
    );
    assert_eq!(
        outcome(&standard(&srv, "msg_1", second, clock.now())),
        "409 id_conflict"
    );
    // Acknowledged: still remembered.
    let ack = srv.admin("POST", "/ack-webhooks?upto=1", &[]);
    assert_eq!(ack.status, 200, "{}", ack.text());
    assert_eq!(
        outcome(&standard(&srv, "msg_1", first, clock.now())),
        "duplicate"
    );
    // Dropped by retention (an hour here): still remembered.
    assert_eq!(
        outcome(&standard(&srv, "msg_2", second, clock.now())),
        "stored"
    );
    until_held(&srv, 2);
    clock.advance(&srv, 2 * 3600);
    until_held(&srv, 0);
    assert_eq!(json(&srv.admin_get("/stats"))["counters"]["expired"], 2);
    assert_eq!(
        outcome(&standard(&srv, "msg_2", second, clock.now())),
        "duplicate"
    );
    // After a clean restart, and after kill -9 of every process, a day later.
    srv.stop();
    srv.restart();
    clock.advance(&srv, 86400);
    assert_eq!(
        outcome(&standard(&srv, "msg_1", first, clock.now())),
        "duplicate"
    );
    assert_eq!(
        outcome(&standard(&srv, "msg_2", first, clock.now())),
        "409 id_conflict"
    );
    srv.crash();
    srv.restart();
    assert_eq!(
        outcome(&standard(&srv, "msg_2", second, clock.now())),
        "duplicate"
    );
    // /stats says what the index holds.
    let dedup = json(&srv.admin_get("/stats"))["dedup"].clone();
    assert_eq!(dedup["replay_horizon"], 3 * 86400, "{dedup}");
    assert_eq!(dedup["ids"], 2, "{dedup}");
    assert_eq!(dedup["capacity"], 1_000_002, "{dedup}");
    let oldest = dedup["oldest"].as_i64().unwrap();
    assert!(oldest >= started && oldest <= now(), "{dedup}");
    // Past the horizon (and the window beyond it) the id is forgotten: a delivery that late is
    // new, and stored.
    clock.advance(&srv, 4 * 86400);
    assert_eq!(
        outcome(&standard(&srv, "msg_1", first, clock.now())),
        "stored"
    );
    srv.assert_clean_logs();
}

#[test]
fn a_deleted_truncated_or_damaged_index_is_rebuilt_from_the_journal() {
    let mut srv = Server::start();
    let deliveries: Vec<Delivery> = (0..5)
        .map(|i| crate::common::nginx::fresh(&format!("ix-{i}")))
        .collect();
    for d in &deliveries {
        assert_eq!(outcome(&srv.post(d)), "stored");
    }
    let index = srv.dir.join("data/replay.index");
    let damages: [(&str, Damage); 4] = [
        ("deleted", &|p| std::fs::remove_file(p).unwrap()),
        ("truncated", &|p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        }),
        ("its header damaged", &|p| flip(p, 20)),
        ("a slot damaged", &|p| {
            // Every slot's first byte, in the second half of the file (the tables): wherever
            // the ids are, some are hit.
            let len = std::fs::metadata(p).unwrap().len();
            for at in (len / 2..len).step_by(32) {
                flip(p, at);
            }
        }),
    ];
    for (what, damage) in damages {
        srv.stop();
        damage(&index);
        srv.restart();
        for d in &deliveries {
            assert_eq!(outcome(&srv.post(d)), "duplicate", "index {what}");
        }
    }
    assert_eq!(srv.dump("").1, 5);
    srv.assert_clean_logs();
}

/// Something done to the index file while nginx is stopped.
type Damage<'a> = &'a dyn Fn(&std::path::Path);

fn flip(path: &std::path::Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x5a;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

#[test]
fn without_a_journal_ids_last_as_long_as_the_events_do() {
    let mut srv = Setup::default().env("UP42_WEBHOOK_JOURNAL", "off").start();
    let d = crate::common::nginx::fresh("mem-1");
    assert_eq!(outcome(&srv.post(&d)), "stored");
    // A reload keeps the events and the ids.
    srv.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.error_log().matches("reconfiguring").count() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outcome(&srv.post(&d)), "duplicate");
    assert_eq!(srv.dump("").1, 1);
    // A restart loses the events, and so the ids: the sender's retry is stored again.
    srv.stop();
    srv.restart();
    assert_eq!(srv.dump("").1, 0);
    assert_eq!(outcome(&srv.post(&d)), "stored");
    srv.assert_clean_logs();
}

#[test]
fn a_burst_of_one_delivery_over_many_connections_is_stored_once() {
    let srv = Server::start();
    let d = crate::common::nginx::fresh("burst-1");
    let port = srv.port;
    let outcomes: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (d, outcomes) = (d.clone(), outcomes.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let r = crate::common::nginx::post_to(port, &d);
                    outcomes.lock().unwrap().push(outcome(&r));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    let stored = outcomes.iter().filter(|o| *o == "stored").count();
    assert_eq!(stored, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o == "stored" || o == "duplicate" || o == "503 in_flight"),
        "{outcomes:?}"
    );
    assert_eq!(srv.dump("").1, 1);
}

#[test]
fn a_window_past_80_percent_is_said_and_a_full_one_is_a_503_that_names_the_setting() {
    // 30 ids over the horizon: a window (a day) sized for 10, taking 15.
    let srv = Setup::default()
        .edit(crate::common::nginx::configured("dedup_capacity = 30", ""))
        .start();
    let deliveries: Vec<Delivery> = (0..15)
        .map(|i| crate::common::nginx::fresh(&format!("full-{i}")))
        .collect();
    for d in &deliveries[..8] {
        assert_eq!(outcome(&srv.post(d)), "stored");
    }
    // At 8 of 10, the upkeep (once a second) says so, once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stats = crate::common::nginx::json(&srv.admin_get("/stats"));
        if stats["counters"]["replay_index_window_warned"] == 1 {
            assert_eq!(stats["dedup"]["window_held"], 8, "{stats}");
            assert_eq!(stats["dedup"]["window_limit"], 15, "{stats}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stats}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        srv.error_log()
            .contains("holds 8 new delivery ids, 80 % or more of the 10 that dedup_capacity (30)"),
        "{}",
        srv.error_log()
    );
    // Past what it is sized for, up to half as many again: still stored.
    for d in &deliveries[8..] {
        assert_eq!(outcome(&srv.post(d)), "stored");
    }
    let r = srv.post(&crate::common::nginx::fresh("full-15"));
    assert_eq!(outcome(&r), "503 store_full", "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let log = srv.error_log();
    assert!(
        log.contains(
            "holds 15 new ids in 86400 s, as many as dedup_capacity (30 over the replay horizon) allows (half as many again as it is sized for): raise dedup_capacity"
        ),
        "{log}"
    );
    for d in &deliveries {
        assert_eq!(outcome(&srv.post(d)), "duplicate");
    }
    assert_eq!(srv.dump("").1, 15);
    let stats = crate::common::nginx::json(&srv.admin_get("/stats"));
    assert_eq!(
        stats["counters"]["replay_index_window_warned"], 1,
        "once a window"
    );
}

#[test]
fn the_redis_store_remembers_an_id_for_the_horizon_on_every_receiver() {
    let redis = Redis::start("horizon");
    let receivers: Vec<Server> = (0..2)
        .map(|_| {
            Setup::default()
                .env("UP42_WEBHOOK_STORE", &redis.url())
                .edit(with_clock(""))
                .start()
        })
        .collect();
    let mut clocks = [Clock { offset: 0 }, Clock { offset: 0 }];
    let body = r#"{"type":"invoice.paid","data":{"id":"in_r"}}"#;
    assert_eq!(
        outcome(&standard(&receivers[0], "msg_r", body, clocks[0].now())),
        "stored"
    );
    // Redis keeps the id for the horizon, not the old 720 s.
    let ttl: i64 = redis
        .cli(&["TTL", "up42webhooks:seen:standard:i:msg_r"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        ttl > 3 * 86400 - 60 && ttl <= 3 * 86400,
        "TTL {ttl}: {}",
        redis.cli(&["KEYS", "*"])
    );
    // The late retry, signed afresh 30 minutes on, at either receiver.
    for (srv, clock) in receivers.iter().zip(clocks.iter_mut()) {
        clock.advance(srv, 1800);
        assert_eq!(
            outcome(&standard(srv, "msg_r", body, clock.now())),
            "duplicate"
        );
    }
    let dedup = json(&receivers[1].admin_get("/stats"))["dedup"].clone();
    assert_eq!(dedup["replay_horizon"], 3 * 86400, "{dedup}");
}

#[test]
fn late_retries_of_a_burst_cut_by_kill_9_are_each_stored_once() {
    let mut srv = Setup::default().edit(with_clock("")).start();
    let port = srv.port;
    let body = |id: &str| format!(r#"{{"type":"invoice.paid","data":{{"id":"{id}"}}}}"#);
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let (answered, stop) = (answered.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..2000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("burst-{t}-{i}");
                    match standard_at(port, &id, &body(&id), now()) {
                        Some(r) if r.status == 200 => answered.lock().unwrap().push(id),
                        Some(r) => assert_eq!(r.status, 503, "{}", r.text()),
                        None => {} // killed under the request: no answer, no promise
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.lock().unwrap().len() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.crash();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 300, "{} answered", answered.len());
    srv.restart();
    // Half an hour later each sender retries what it was answered 200 for, signed afresh.
    let mut clock = Clock { offset: 0 };
    clock.advance(&srv, 1800);
    for id in &answered {
        let r = standard(&srv, id, &body(id), clock.now());
        assert_eq!(outcome(&r), "duplicate", "{id}: {}", r.text());
    }
    // Every 200 is there once (and what was written but not answered at the crash, once too).
    let (lines, n) = srv.dump("");
    assert_eq!(lines.len() as u64, n);
    let mut stored: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    stored.sort();
    let all = stored.len();
    stored.dedup();
    assert_eq!(all, stored.len(), "an event stored twice");
    for id in &answered {
        assert!(
            stored.binary_search(id).is_ok(),
            "{id} answered 200, and lost"
        );
    }
}
