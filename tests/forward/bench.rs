//! The forwarder's figures (README, "Act on events"), not run by `cargo test`: `make bench-forward`
//! runs them against the release build (UP42WH_BIN). They print what they measure; they assert only
//! that everything arrived.

use super::*;

/// Events forwarded a second to a sink that answers at once (nginx's `return 204` on the receiver's
/// own listener): N events (20,000) stored first, then one http route (signed, concurrency 32, the
/// state log and a log line per delivery), timed from the forwarder's start to its /status saying
/// all were delivered.
#[test]
#[ignore]
fn bench_forward_rate() {
    let server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .edit(|conf| {
            conf.replacen(
                "    location = /ping {",
                "    location = /sink { return 204; }\n    location = /ping {",
                1,
            )
        })
        .start();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    let t = Instant::now();
    for th in store_from_threads(server.port, n, "b") {
        th.join().unwrap();
    }
    eprintln!("stored {n} in {:?}", t.elapsed());
    let dir = scratch("bench");
    let config = one_route(
        &dir,
        server.admin_port,
        server.port,
        "metrics = \"127.0.0.1:19890\"",
        "concurrency = 32",
    );
    let config_text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("127.0.0.1:{}/\"", server.port),
        &format!("127.0.0.1:{}/sink\"", server.port),
    );
    std::fs::write(&config, config_text).unwrap();
    let bin = std::env::var("UP42WH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| up42wh());
    let log = dir.join("f.log");
    let mut c = Command::new(bin);
    c.args(["forward", "--config"])
        .arg(&config)
        .env("FORWARD_WHSEC", FORWARD_SECRET)
        .stderr(std::fs::File::create(&log).unwrap());
    let t = Instant::now();
    let mut child = c.spawn().unwrap();
    loop {
        let s = common::nginx::http(19890, "GET", "/status", &[], b"").map(|r| json(&r));
        if let Some(s) = s {
            if s["routes"]["one"]["delivered"].as_u64() == Some(n as u64) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timeout: {}",
                std::fs::read_to_string(&log)
                    .unwrap()
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    let el = t.elapsed();
    eprintln!(
        "forwarded {n} in {:?}: {:.0}/s",
        el,
        n as f64 / el.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// From the receiver's `200 stored` to the sink's receipt, 500 events sent at 100 a second.
#[test]
#[ignore]
fn bench_forward_latency() {
    let server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .start();
    let sink = Sink::start(Answer::Ok);
    let dir = scratch("bench-lat");
    let config = one_route(&dir, server.admin_port, sink.port, "", "");
    let bin = std::env::var("UP42WH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| up42wh());
    let log = dir.join("f.log");
    let mut child = Command::new(bin)
        .args(["forward", "--config"])
        .arg(&config)
        .env("FORWARD_WHSEC", FORWARD_SECRET)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let n = 500;
    let mut answered = std::collections::HashMap::new();
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_millis(10 * i as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let d = fresh(&format!("lat-{i}"));
        let r = common::nginx::post_to(server.port, &d);
        assert_eq!(r.status, 200);
        answered.insert(format!("lat-{i}"), Instant::now());
    }
    until(10, "all", || sink.requests().len() == n);
    let _ = child.kill();
    let _ = child.wait();
    let mut lat: Vec<f64> = sink
        .arrivals()
        .into_iter()
        .map(|(id, t)| t.duration_since(answered[&id]).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "latency ms: median {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        lat[n / 2],
        lat[n * 9 / 10],
        lat[n * 99 / 100],
        lat[n - 1]
    );
}

/// A process killed when the bench ends, also when it fails.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The program both run, one line per run in `out`: the event's messageId. The body comes on
/// standard input (up42wh's exec route) or in the file that webhook names in HOOK_BODY (Debian's
/// webhook 2.8.0 cannot give it on stdin: adnanh/webhook#190). While `fail` exists it exits 1.
fn record_program(dir: &Path, out: &Path, fail: &Path) -> PathBuf {
    let program = dir.join("record.sh");
    executable(
        &program,
        &format!(
            "#!/bin/sh\nif [ -n \"$HOOK_BODY\" ]; then body=$(cat \"$HOOK_BODY\"); else body=$(cat); fi\n\
             [ ! -e '{}' ] || exit 1\nid=${{body#*\\\"messageId\\\":\\\"}}\nprintf '%s\\n' \"${{id%%\\\"*}}\" >> '{}'\n",
            fail.display(),
            out.display()
        ),
    );
    program
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A delivery to post: its headers and its body.
type Post = (Vec<(String, String)>, Vec<u8>);

/// Posts `n` deliveries from 4 threads, `make(i)` giving each as (headers, body); every answer
/// must be `want`.
fn post_all(port: u16, path: &str, n: usize, want: u16, make: fn(usize) -> Post) {
    let threads: Vec<_> = (0..4)
        .map(|th| {
            let path = path.to_string();
            std::thread::spawn(move || {
                for i in (th..n).step_by(4) {
                    let (headers, body) = make(i);
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let r = common::nginx::http(port, "POST", &path, &h, &body)
                        .unwrap_or_else(|| panic!("no answer to event {i} on port {port}"));
                    assert_eq!(r.status, want, "{}", r.text());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

const WEBHOOK_SECRET: &str = "webhook-side-by-side-secret";

fn up42_delivery(i: usize) -> Post {
    let d = fresh(&format!("sbs-{i}"));
    let headers = d
        .header_refs()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (headers, d.body)
}

/// The same event, signed as webhook's payload-hmac-sha256 rule checks it (GitHub's header: the
/// body alone, no time, no id).
fn hmac_delivery(i: usize) -> Post {
    let (_, body) = up42_delivery(i);
    let mac = common::senders::hmac_sha256(WEBHOOK_SECRET.as_bytes(), &[&body]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    (
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Hub-Signature-256".into(), format!("sha256={hex}")),
        ],
        body,
    )
}

/// Waits (at most `secs`) until `out` has `n` lines; the time from `t`.
fn wait_lines(out: &Path, n: usize, secs: u64, t: Instant) -> Option<Duration> {
    while t.elapsed() < Duration::from_secs(secs) {
        if lines_of(out).len() >= n {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Side by side with adnanh/webhook (Debian's `webhook` package), the usual "run a command when a
/// signed webhook arrives": the same program, fed the same events, signed for each. Deliveries a
/// second from the first post to the program's last run (N, 2,000), then what each does when the
/// program fails: M (200) events while it exits 1, then it recovers.
#[test]
#[ignore]
fn bench_beside_adnanh_webhook() {
    let webhook = Path::new("/usr/bin/webhook");
    assert!(
        webhook.exists(),
        "make bench-forward installs Debian's webhook package"
    );
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let m = 200;
    let dir = scratch("side-by-side");

    // adnanh/webhook: one hook, payload-hmac-sha256 over the body, the body in a file.
    let out = dir.join("webhook.out");
    let fail = dir.join("webhook.fail");
    let program = record_program(&dir, &out, &fail);
    let hooks = dir.join("hooks.json");
    std::fs::write(
        &hooks,
        serde_json::json!([{
            "id": "record",
            "execute-command": program,
            "command-working-directory": dir.path(),
            "pass-file-to-command": [{"source": "raw-request-body", "name": "body", "envname": "HOOK_BODY"}],
            "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": WEBHOOK_SECRET,
                "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}
        }])
        .to_string(),
    )
    .unwrap();
    let port = common::nginx::free_port();
    let wh = KilledOnDrop(
        Command::new(webhook)
            .args(["-hooks"])
            .arg(&hooks)
            .args(["-ip", "127.0.0.1", "-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("webhook.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    until(10, "webhook listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let t = Instant::now();
    post_all(port, "/hooks/record", n, 200, hmac_delivery);
    let posted = t.elapsed();
    let took = wait_lines(&out, n, 120, t).expect("webhook ran the program for each");
    eprintln!(
        "webhook 2.8.0: {n} posted in {posted:.2?}, the program ran {n} times in {took:.2?}: {:.0}/s",
        n as f64 / took.as_secs_f64()
    );
    // The program fails for M events, then recovers: webhook has answered 200 before running
    // it (the default; with include-command-output-in-response it answers 500 and leaves the
    // retry to the sender), and never runs it again.
    std::fs::write(&fail, "").unwrap();
    let before = lines_of(&out).len();
    post_all(port, "/hooks/record", m, 200, |i| {
        hmac_delivery(100_000 + i)
    });
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&fail).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let webhook_recovered = lines_of(&out).len() - before;
    eprintln!(
        "webhook 2.8.0: {m} events while the program failed: {m} answered 200, the program run again for {webhook_recovered} of them after it recovered"
    );
    drop(wh);

    // up42wh: the receiver stores each, the forwarder's exec route runs the same program.
    let server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .start();
    let out = dir.join("up42wh.out");
    let fail = dir.join("up42wh.fail");
    let program = record_program(&dir, &out, &fail);
    let config = forward_config(
        &dir,
        server.admin_port,
        "",
        "",
        &format!(
            "[[route]]\nname = \"record\"\nsink = \"exec\"\ncommand = [\"{}\"]\nconcurrency = 32\nretry = [\"1s\", \"1s\", \"2s\", \"5s\"]\ncircuit_failures = 1000\n",
            program.display()
        ),
    );
    let bin = std::env::var("UP42WH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| up42wh());
    let _forwarder = KilledOnDrop(
        Command::new(bin)
            .args(["forward", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.join("up42wh.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    post_all(server.port, "/receive-webhooks", n, 200, up42_delivery);
    let posted = t.elapsed();
    let took = wait_lines(&out, n, 120, t).expect("up42wh ran the program for each");
    eprintln!(
        "up42wh forward: {n} posted in {posted:.2?}, the program ran {n} times in {took:.2?}: {:.0}/s",
        n as f64 / took.as_secs_f64()
    );
    std::fs::write(&fail, "").unwrap();
    let before = lines_of(&out).len();
    post_all(server.port, "/receive-webhooks", m, 200, |i| {
        up42_delivery(100_000 + i)
    });
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&fail).unwrap();
    let t = Instant::now();
    let recovered = wait_lines(&out, before + m, 60, t);
    let up42wh_recovered = lines_of(&out).len() - before;
    eprintln!(
        "up42wh forward: {m} events while the program failed: {m} answered 200 (stored), the program run again for {up42wh_recovered} of them, within {} of its recovery", recovered.map_or("(not all)".to_string(), |d| format!("{d:.2?}"))
    );
    assert_eq!(
        up42wh_recovered, m,
        "every event once the program recovered"
    );
    let mut ids = lines_of(&out);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n + m, "each event once");
}
