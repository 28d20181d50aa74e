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
    let threads: Vec<_> = (0..4)
        .map(|th| {
            let port = server.port;
            std::thread::spawn(move || {
                for i in 0..n / 4 {
                    let d = fresh(&format!("b-{th}-{i}"));
                    let r = common::nginx::post_to(port, &d);
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        })
        .collect();
    for th in threads {
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
