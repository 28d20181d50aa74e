//! Faults and abuse, on real nginx: a journal whose disk is full; thousands of admin connections
//! held or abandoned; a worker killed with tails open; a reload with a tail and a long poll open;
//! acknowledgements below the mark and numbers beyond what a double holds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::nginx::{configured, json, now, Delivery, Server, Setup, SECRET};
use crate::common::SmallDisk;

fn fresh(id: &str) -> Delivery {
    let t = now();
    let body = format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"FAILED","pad":"{}"}}}}"#,
        up42webhooks::format_rfc3339(t),
        "x".repeat(600)
    );
    Delivery::signed(body.as_bytes(), SECRET, t)
}

/// The error log's lines at warn or above.
fn warn_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            ["[warn]", "[error]", "[crit]", "[alert]"]
                .iter()
                .any(|lv| l.contains(lv))
        })
        .count()
}

#[test]
fn a_disk_too_small_for_the_replay_index_stops_the_start_with_the_reason() {
    // 256 KiB where the default index (88 MB) must take its blocks: nginx does not start, says
    // why, and leaves no half-made index behind.
    let Some(disk) = SmallDisk::mount("small-index", "256k") else {
        eprintln!("no tmpfs (not root): skipped");
        return;
    };
    let journal_dir = disk.path().to_str().unwrap().to_string();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Setup::default()
            .env("UP42_WEBHOOK_JOURNAL_DIR", &journal_dir)
            .start()
    }));
    let Err(panic) = started else {
        panic!("nginx started with an index that cannot be made")
    };
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "cannot open the replay index {journal_dir}/replay.index: No space left on device"
        )),
        "{message}"
    );
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("replay"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_full_disk_under_the_journal_is_a_503_each_time_and_a_few_log_lines() {
    // The real thing where we may mount (root, as CI); elsewhere the journal's append fails the
    // way a full disk makes it fail.
    // The replay index beside the journal takes its blocks when it is made (a write through its
    // mapping never finds the disk full): a small one (about 560 KiB), so that the journal has
    // room to fill.
    let disk = SmallDisk::mount("full-journal", "1m");
    let srv = match &disk {
        Some(d) => Server::start_with(
            configured("log_window = 2, dedup_capacity = 6000", ""),
            &[("UP42_WEBHOOK_JOURNAL_DIR", d.path().to_str().unwrap())],
        ),
        None => {
            eprintln!("no tmpfs (not root): the journal's append is made to fail instead");
            Server::start_with(
                configured(
                    "log_window = 2, dedup_capacity = 6000",
                    r#"local native = require "up42webhooks.native"
                    local commit = native.deliver_commit
                    native.deliver_commit = function(key, journal, sync, body, now)
                        if ngx.shared.webhooks_stats:incr("test_appends", 1, 0) > 150 then
                            return nil, "journal segment 1: No space left on device", false
                        end
                        return commit(key, journal, sync, body, now)
                    end"#,
                ),
                &[],
            )
        }
    };
    // Fill it: every delivery is a 200 until the disk is full, then a 503 (bounded).
    let mut stored = Vec::new();
    let mut first_refusal = None;
    for i in 0..2000 {
        let r = srv.post(&fresh(&format!("fill-{i}")));
        match r.status {
            200 => stored.push(i),
            503 => {
                assert_eq!(json(&r)["error"], "journal_error", "{}", r.text());
                assert!(r.header("retry-after").is_some());
                first_refusal = Some(i);
                break;
            }
            s => panic!("delivery {i}: {s} {}", r.text()),
        }
    }
    let first_refusal = first_refusal.expect("the disk filled within 2000 deliveries");
    assert!(stored.len() > 10, "some fitted before it filled");
    // Then a burst of refusals: each a 503, none a 200 or a "duplicate".
    let burst = 300;
    let started = std::time::Instant::now();
    for i in 0..burst {
        let r = srv.post(&fresh(&format!("refused-{i}")));
        assert_eq!(r.status, 503, "refused-{i}: {}", r.text());
        assert_eq!(json(&r)["error"], "journal_error");
    }
    let took = started.elapsed().as_secs();
    // One line per worker and log window, not two per refusal.
    let workers = srv.worker_pids().len();
    let windows = took as usize / 2 + 2;
    let lines = warn_lines(&srv.error_log());
    assert!(
        srv.error_log().contains("503 (journal_error)"),
        "the failure is logged:\n{}",
        srv.error_log()
    );
    assert!(
        lines <= workers * windows,
        "{lines} log lines for {} refusals ({workers} workers, {took} s):\n{}",
        burst + 1,
        srv.error_log()
    );
    // After the window, the next refusal's line says how many were not logged.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let after = 8;
    for i in 0..after {
        assert_eq!(srv.post(&fresh(&format!("later-{i}"))).status, 503);
    }
    assert!(
        srv.error_log()
            .contains("more like it in the last 2 s, not logged"),
        "{}",
        srv.error_log()
    );
    let stats = json(&srv.admin_get("/stats"));
    assert_eq!(
        stats["counters"]["journal_error"].as_u64(),
        Some(burst + 1 + after),
        "every refusal counted: {stats}"
    );
    // What was answered 200 is all there.
    let (lines, n) = srv.dump("");
    assert_eq!(n as usize, stored.len(), "first refusal at {first_refusal}");
    assert!(lines.iter().all(|l| l.contains("fill-")));
    if disk.is_some() {
        // The cause and the file, named.
        let log = srv.error_log();
        assert!(
            log.contains("cannot append to ")
                && log.contains("/events.000001.log: No space left on device"),
            "{log}"
        );
        // Acknowledging still works on the full disk (its position record takes the reserve),
        // and removes nothing.
        let r = srv.admin("POST", "/ack-webhooks?upto=5", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(json(&r)["acked"], 5);
        assert!(
            srv.error_log().contains("its reserve is used for a"),
            "{}",
            srv.error_log()
        );
        assert_eq!(srv.dump("").1 as usize, stored.len());
    }
}

fn backlog(srv: &Server, what: &str) -> u64 {
    json(&srv.admin_get("/stats"))["backlog"][what]
        .as_u64()
        .unwrap_or_else(|| panic!("backlog.{what}"))
}

/// Polls `f` every 50 ms until it holds, for at most `secs` seconds.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A request written on a new connection to the admin listener, its answer not read: the client
/// holds the connection (or drops it to abandon it).
fn open_admin(port: u16, path: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )
    .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    Some(s)
}

/// Reads an open tail until `needle` arrives or the stream ends (bounded by `secs`).
fn read_until(s: &mut TcpStream, needle: &str, secs: u64) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// This process's soft limit on open files raised to its hard limit: the test holds thousands.
/// (Linux's getrlimit/setrlimit on a 64-bit target: RLIMIT_NOFILE is 7, rlim_t 64 bits.)
fn raise_nofile() -> u64 {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: both calls read or write exactly one struct laid out as the C one.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.cur = lim.max;
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &mut lim);
    }
    lim.cur
}

#[test]
fn thousands_of_admin_connections_held_or_abandoned_never_starve_deliveries() {
    const HELD: usize = 4000;
    assert!(
        raise_nofile() > HELD as u64 + 200,
        "this test needs {HELD} open files"
    );
    let srv = Server::start();
    let port = srv.port;
    let deliver = |id: &str| -> (u16, Duration) {
        let started = Instant::now();
        let r = crate::common::nginx::post_to(port, &fresh(id));
        (r.status, started.elapsed())
    };
    // The usual latency, before.
    let mut before = Vec::new();
    for i in 0..20 {
        let (status, took) = deliver(&format!("before-{i}"));
        assert_eq!(status, 200);
        before.push(took);
    }
    before.sort();
    // Long polls beyond the newest key (each would wait 60 s), tails, and connections that send
    // nothing at all: half abandoned by their client at once, half held.
    let beyond = "/dump-webhooks?since=1000000&wait=60";
    let mut held = Vec::new();
    let mut abandoned = Vec::new();
    for i in 0..HELD {
        let path = match i % 8 {
            0 => "/tail?since=1000000",
            1 => "",
            _ => beyond,
        };
        let s = if path.is_empty() {
            TcpStream::connect(("127.0.0.1", srv.admin_port)).ok()
        } else {
            open_admin(srv.admin_port, path)
        };
        let s = s.unwrap_or_else(|| panic!("admin connection {i} opened"));
        if i % 2 == 0 {
            held.push(s);
        } else {
            abandoned.push(s);
        }
        if i % 400 == 0 {
            // Deliveries go on while the connections pile up.
            let (status, _) = deliver(&format!("during-open-{i}"));
            assert_eq!(status, 200, "delivery with {i} admin connections opened");
        }
    }
    // Half of them abandoned by their clients half a second later, while they wait: their places
    // come back at once (a client that closes before its request is even read is not seen until
    // its wait ends: lua_check_client_abort watches for a close after the request).
    std::thread::sleep(Duration::from_millis(500));
    let abandoned = {
        let n = abandoned.len();
        drop(abandoned);
        n
    };
    // Held: the caps hold at max_held (128) places, the rest of the long polls and tails answered 503.
    let mut during = Vec::new();
    for i in 0..40 {
        let (status, took) = deliver(&format!("during-{i}"));
        assert_eq!(
            status,
            200,
            "delivery {i} with {} admin connections held",
            held.len()
        );
        during.push(took);
        std::thread::sleep(Duration::from_millis(25));
    }
    during.sort();
    let (b, d) = (before[before.len() / 2], during[during.len() / 2]);
    eprintln!("{HELD} admin connections ({abandoned} abandoned): median delivery {b:?} before, {d:?} during, slowest {:?}", during.last().unwrap());
    assert!(
        *during.last().unwrap() < Duration::from_secs(2),
        "no delivery waits: {during:?}"
    );
    let stats = json(&srv.admin_get("/stats"));
    let open = stats["backlog"]["waits_open"].as_u64().unwrap()
        + stats["backlog"]["tails_open"].as_u64().unwrap();
    assert!(open <= 128, "held places within max_held: {stats}");
    assert!(
        stats["counters"]["wait_refused"].as_u64().unwrap_or(0) > 0,
        "long polls beyond the cap refused: {stats}"
    );
    // Let them all go: every place is given back within a second or two.
    drop(held);
    let given_back = Instant::now();
    while backlog(&srv, "waits_open") + backlog(&srv, "tails_open") > 0 {
        assert!(
            given_back.elapsed() < Duration::from_secs(5),
            "places given back: {}",
            json(&srv.admin_get("/stats"))["backlog"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = deliver("after");
    assert_eq!(status, 200);
    let log = srv.error_log();
    assert!(!log.contains("worker_connections are not enough"), "{log}");
    assert!(!log.contains("timer"), "the timers kept running: {log}");
    assert_eq!(srv.dump("?limit=1000").1, 20 + 10 + 40 + 1);
}

#[test]
fn a_wait_ends_when_its_client_goes_away_and_at_a_reload() {
    let srv = Server::start();
    // Abandoned: the place comes back at once, not after the 60 s wait.
    let s = open_admin(srv.admin_port, "/dump-webhooks?since=0&wait=60").unwrap();
    eventually(3, "the long poll holds a place", || {
        backlog(&srv, "waits_open") == 1
    });
    drop(s);
    eventually(2, "the abandoned long poll gives its place back", || {
        backlog(&srv, "waits_open") == 0
    });
    // A tail and a long poll open across a reload: both end, the tail with `retry:`, and the old
    // workers are gone within 5 s.
    let old = srv.worker_pids();
    let mut tail = open_admin(srv.admin_port, "/tail").unwrap();
    let opened = read_until(&mut tail, ": up42webhooks tail", 5);
    assert!(opened.contains(": up42webhooks tail"), "{opened}");
    let mut poll = open_admin(srv.admin_port, "/dump-webhooks?since=0&wait=60").unwrap();
    eventually(3, "the long poll holds a place", || {
        backlog(&srv, "waits_open") == 1
    });
    let reloaded = Instant::now();
    srv.reload();
    let rest = read_until(&mut tail, "\r\n0\r\n\r\n", 8);
    assert!(
        rest.contains("retry: "),
        "the tail tells its client to reconnect: {rest}"
    );
    let answer = read_until(&mut poll, "number_webhooks_received", 8);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually(5, "the old workers exit", || {
        old.iter().all(|&p| !crate::common::nginx::alive(p))
    });
    eprintln!("old workers gone {:?} after the reload", reloaded.elapsed());
    assert!(reloaded.elapsed() < Duration::from_secs(5));
    // The new workers serve a tail.
    let mut again = open_admin(srv.admin_port, "/tail").unwrap();
    assert!(read_until(&mut again, ": up42webhooks tail", 5).contains("200 OK"));
}

#[test]
fn a_worker_killed_with_tails_open_takes_its_count_with_it() {
    let srv = Server::start_with(configured("max_tails = 2", ""), &[]);
    let mut tails: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = open_admin(srv.admin_port, "/tail").unwrap();
            assert!(read_until(&mut s, ": up42webhooks tail", 5).contains("200 OK"));
            s
        })
        .collect();
    let third = srv.admin_get("/tail");
    assert_eq!(third.status, 503, "{}", third.text());
    assert_eq!(json(&third)["error"], "tail_refused");
    assert!(third.header("retry-after").is_some());
    // kill -9 of every worker: the master starts new ones; the tails' counts go with the dead.
    let workers = srv.worker_pids();
    crate::common::nginx::kill9(&workers);
    for t in &mut tails {
        let _ = read_until(t, "never", 1);
    }
    drop(tails);
    eventually(10, "new workers", || {
        let now = srv.worker_pids();
        now.len() == workers.len() && now.iter().all(|p| !workers.contains(p))
    });
    let started = Instant::now();
    let mut accepted = None;
    while started.elapsed() < Duration::from_secs(8) {
        let mut s = open_admin(srv.admin_port, "/tail").unwrap();
        let head = read_until(&mut s, ": up42webhooks tail", 3);
        if head.contains("200 OK") {
            accepted = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        accepted.is_some(),
        "a tail is accepted after the workers died"
    );
    eprintln!(
        "a tail accepted {:?} after the new workers started",
        started.elapsed()
    );
    assert_eq!(backlog(&srv, "tails_open"), 1);
}

#[test]
fn marks_only_go_forward_and_numbers_beyond_2_53_are_refused() {
    let srv = Server::start();
    srv.store((0..10).map(|i| fresh(&format!("mark-{i}"))));
    let r = srv.admin("POST", "/ack-webhooks?upto=8", &[]);
    assert_eq!(
        (json(&r)["acked"].as_u64(), json(&r)["upto"].as_u64()),
        (Some(8), Some(8))
    );
    for below in [1, 8] {
        let r = srv.admin("POST", &format!("/ack-webhooks?upto={below}"), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            (json(&r)["acked"].as_u64(), json(&r)["upto"].as_u64()),
            (Some(0), Some(8)),
            "upto={below}: nothing changes, the mark is said"
        );
    }
    let position = |srv: &Server| json(&srv.admin_get("/stats"))["positions"]["default"].as_u64();
    assert_eq!(position(&srv), Some(8));
    // New events are there at once, from any cursor below the mark; the acknowledged ones stay.
    for i in 10..12 {
        assert_eq!(srv.post(&fresh(&format!("mark-{i}"))).status, 200);
    }
    let (lines, n) = srv.dump("");
    assert_eq!(n, 12, "{lines:?}");
    assert_eq!(srv.dump("?since=1").1, 11);

    let max = "9007199254740991";
    for (path, ok) in [
        (
            "/dump-webhooks?since=9223372036854775808".to_string(),
            false,
        ),
        ("/dump-webhooks?since=9007199254740992".to_string(), false),
        (format!("/dump-webhooks?since={max}"), true),
        (
            "/dump-webhooks?limit=99999999999999999999".to_string(),
            false,
        ),
        ("/dump-webhooks?limit=1e3".to_string(), false),
        (format!("/dump-webhooks?limit={max}"), true),
        ("/tail?since=18446744073709551616".to_string(), false),
    ] {
        let r = srv.admin_get(&path);
        if ok {
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert!(!r.text().contains("e+"), "{path}: {}", r.text());
        } else {
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            assert_eq!(json(&r)["error"], "bad_argument");
            assert!(
                json(&r)["msg"].as_str().unwrap().contains(max),
                "{}",
                r.text()
            );
        }
    }
    let r = srv.admin("POST", "/ack-webhooks?upto=9223372036854775808", &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(position(&srv), Some(8));
}

/// The key of a 200.
fn stored_key(srv: &Server, id: &str) -> u64 {
    let r = srv.post(&fresh(id));
    assert_eq!(r.status, 200, "{id}: {}", r.text());
    json(&r)["key"].as_u64().unwrap()
}

fn segment(srv: &Server) -> PathBuf {
    srv.dir.join("data/events.000001.log")
}

/// The error log's lines written since `from` bytes.
fn log_since(srv: &Server, from: usize) -> String {
    srv.error_log().get(from..).unwrap_or("").to_string()
}

#[test]
fn a_journal_cut_short_or_emptied_never_hands_a_key_out_twice_and_says_what_it_lost() {
    let mut srv = Server::start();
    let mut last = 0;
    for i in 0..100 {
        last = stored_key(&srv, &format!("cut-{i}"));
    }
    assert_eq!(last, 100);
    // A consumer has read everything up to the last key.
    let consumer_at = last;
    srv.stop();
    // The disk lost the journal's last blocks: cut in the middle of a record, 40% in.
    let seg = segment(&srv);
    let whole = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &whole[..whole.len() * 2 / 5]).unwrap();
    let from = srv.error_log().len();
    srv.restart();
    let said = log_since(&srv, from);
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("were handed out before the last clean stop"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {said}");
    assert!(
        lines[0].contains("[error]") && lines[0].contains("keys up to 100"),
        "{}",
        lines[0]
    );
    let kept = srv.dump("").1;
    assert!(kept > 0 && kept < 100, "{kept} kept");
    // The new event gets a key above every key handed out: the consumer at 100 sees it.
    let new_key = stored_key(&srv, "after-cut");
    assert!(new_key > last, "key {new_key} after {last}");
    let (lines, n) = srv.dump(&format!("?since={consumer_at}"));
    assert_eq!(n, 1);
    assert!(lines[0].contains("after-cut"));

    // Said once: a clean stop and a start later, nothing more.
    srv.stop();
    let from = srv.error_log().len();
    srv.restart();
    assert!(
        !log_since(&srv, from).contains("handed out before the last clean stop"),
        "{}",
        log_since(&srv, from)
    );
    // Emptied: a journal cut to 0 bytes, after a clean stop.
    let last = stored_key(&srv, "before-empty");
    srv.stop();
    std::fs::write(segment(&srv), b"").unwrap();
    let from = srv.error_log().len();
    srv.restart();
    let said = log_since(&srv, from);
    assert!(
        said.contains(&format!(
            "ends at key 0, but keys up to {last} were handed out"
        )),
        "{said}"
    );
    assert_eq!(srv.dump("").1, 0);
    let next = stored_key(&srv, "after-empty");
    assert!(next > last, "key {next} after {last}");

    // After a crash (no clean stop to compare with) keys still never repeat.
    srv.crash();
    std::fs::write(segment(&srv), b"").unwrap();
    srv.restart();
    let after_crash = stored_key(&srv, "after-crash");
    assert!(after_crash > next, "key {after_crash} after {next}");
}

#[test]
fn a_torn_tail_is_cut_once_and_the_next_start_is_quiet() {
    let mut srv = Server::start_with(configured("journal = { fsync = \"always\" }", ""), &[]);
    for i in 0..12 {
        stored_key(&srv, &format!("torn-{i}"));
    }
    srv.crash();
    // An append cut short by the crash: the first 30 bytes of a frame at the end.
    let seg = segment(&srv);
    let mut bytes = std::fs::read(&seg).unwrap();
    let frame: Vec<u8> = bytes[..30].to_vec();
    bytes.extend_from_slice(&frame);
    std::fs::write(&seg, &bytes).unwrap();
    let from = srv.error_log().len();
    srv.restart();
    let said = log_since(&srv, from);
    assert!(
        said.contains(
            "30 bytes of an append cut short skipped and cut off the end of their segment"
        ),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len() as usize,
        bytes.len() - 30
    );
    // Later appends follow the good records; a crash, and the next start finds nothing to say.
    stored_key(&srv, "after-torn");
    srv.crash();
    let from = srv.error_log().len();
    srv.restart();
    let said = log_since(&srv, from);
    assert!(
        !said.contains("cut short") && !said.contains("damaged"),
        "{said}"
    );
    assert_eq!(srv.dump("").1, 13);
    let counters = json(&srv.admin_get("/stats"))["counters"].clone();
    assert!(counters["journal_corrupt"].is_null(), "{counters}");
    assert!(counters["journal_torn_bytes"].is_null(), "{counters}");
}
