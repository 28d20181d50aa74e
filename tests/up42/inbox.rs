//! The inbox page (GET / on the admin listener) in a real browser: headless Chromium driven by
//! Selenium (tests/up42/inbox_drive.py) against `make serve`. This side runs the receiver and does what
//! the driver asks: posts signed deliveries, restarts the receiver. With both stores (the journal,
//! Redis). Screenshots go to target/inbox/NAME/.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::make::{project_copy, release_dir, Make, Stop};
use crate::common::nginx::{free_port, http, now, post_to, Delivery};
use crate::common::Scratch;
use up42webhooks::format_rfc3339;

const SECRET: &str = "inbox-secret-aW5ib3g-0123456789";

/// A job delivery; with `xss`, script in every string field, and an image from another origin.
fn delivery(id: &str, status: &str, xss: bool) -> Delivery {
    let t = now();
    let evil = r#"<img src=http://127.0.0.2:9/x onerror=alert(1)><script>alert(2)</script>javascript:alert(3)"#;
    let body = if xss {
        serde_json::json!({
            "event": "job.status", "liveMode": false, "messageId": id,
            "timestamp": format_rfc3339(t),
            "body": {"jobId": evil, "status": status, "name": evil, "tasks": [{"id": evil, "status": evil}]}
        })
    } else {
        serde_json::json!({
            "event": "job.status", "liveMode": false, "messageId": id,
            "timestamp": format_rfc3339(t),
            "body": {"jobId": format!("j-{id}"), "status": status}
        })
    };
    Delivery::signed(body.to_string().as_bytes(), SECRET, t)
}

/// A process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `make serve` in a copy, then the driver against its admin listener until it says `passed`.
/// With `forwarder`, up42wh forward runs beside it and the admin listener passes /forward/status
/// to the forwarder's status.
fn drive(name: &str, extra_env: &[(&str, &str)], token: Option<&str>, forwarder: bool) {
    let copy = Scratch::new(name);
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    let mut env = vec![("UP42_WEBHOOK_SECRET".to_string(), SECRET.to_string())];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let make = Make {
        dir: copy.path().to_path_buf(),
        release: release_dir(),
        vars: vec![
            ("PORT".into(), port.to_string()),
            ("ADMIN_PORT".into(), admin.to_string()),
        ],
        env,
    };
    let metrics = free_port();
    if forwarder {
        let conf = copy.path().join("openresty/default.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        let at = "    location = /stats {";
        assert!(text.contains(at));
        let text = text.replacen(
            at,
            &format!("    location = /forward/status {{ proxy_pass http://127.0.0.1:{metrics}/status; }}\n\n{at}"),
            1,
        );
        std::fs::write(&conf, text).unwrap();
    }
    make.ok("serve");
    let _stop = Stop(&make);
    let _forward = forwarder.then(|| {
        let dir = copy.path().join("forward");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("forward.toml");
        std::fs::write(
            &config,
            format!(
                "metrics = \"127.0.0.1:{metrics}\"\n[receiver]\nurl = \"http://127.0.0.1:{admin}\"\nconsumer = \"forward\"\n\n[[route]]\nname = \"keep\"\nsink = \"exec\"\ncommand = [\"/bin/cat\"]\n"
            ),
        )
        .unwrap();
        let mut c = Command::new(crate::common::up42wh());
        crate::common::hermetic(&mut c)
            .args(["forward", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Killed(c.spawn().unwrap())
    });

    // The public listener does not serve the page.
    for path in ["/", "/inbox/index.html", "/inbox/inbox.js"] {
        let r = http(port, "GET", path, &[], b"").unwrap();
        assert_eq!(r.status, 404, "{path} on the public listener");
    }

    let shots = crate::common::root().join("target/inbox").join(name);
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = Command::new("python3");
    crate::common::hermetic(&mut cmd)
        .arg(crate::common::root().join("tests/up42/inbox_drive.py"))
        .arg(format!("http://127.0.0.1:{admin}"))
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    if forwarder {
        cmd.arg("--forwarder");
    }
    let mut child = cmd.spawn().expect("python3 runs the driver");
    let mut to = child.stdin.take().unwrap();
    let from = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut passed = false;
    for line in from.lines() {
        let line = line.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the driver took over 180 s"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["post", id, status, "forged"] => {
                // Signed with another secret: refused, and counted.
                let mut d = delivery(id, status, false);
                d = Delivery::signed(&d.body, "not-the-receiver-secret-0123456789", now());
                let r = post_to(port, &d);
                assert_eq!(r.status, 401, "{}", r.text());
                writeln!(to, "ok").unwrap();
            }
            ["post", id, status, rest @ ..] => {
                let r = post_to(port, &delivery(id, status, rest == ["xss"]));
                assert_eq!(r.status, 200, "{}", r.text());
                let key = crate::common::nginx::json(&r)["key"].to_string();
                writeln!(to, "ok {}", key.trim_matches('"')).unwrap();
            }
            ["restart"] => {
                make.ok("restart");
                writeln!(to, "ok").unwrap();
            }
            ["passed"] => passed = true,
            _ => eprintln!("driver: {line}"),
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        passed && out.status.success(),
        "the driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_page_lists_filters_shows_acknowledges_reconnects_and_runs_no_script_from_events() {
    drive("inbox", &[], None, false);
    for shot in ["inbox-light.png", "inbox-dark.png"] {
        let png =
            std::fs::read(crate::common::root().join("target/inbox/inbox").join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
}

#[test]
fn the_page_works_the_same_with_the_redis_store() {
    let redis = crate::common::redis::Redis::start("inbox");
    drive(
        "inbox-redis",
        &[("UP42_WEBHOOK_STORE", &redis.url())],
        None,
        false,
    );
}

#[test]
fn with_a_token_the_page_asks_for_it_then_streams() {
    // Loopback is not trusted here: only the token opens the admin listener.
    let token = "inbox-admin-token-0123456789abcdef";
    drive(
        "inbox-token",
        &[
            ("UP42_WEBHOOK_ADMIN_TOKEN", token),
            ("UP42_WEBHOOK_ADMIN_ALLOW", "192.0.2.10"),
        ],
        Some(token),
        false,
    );
}

#[test]
fn with_a_forwarder_the_page_shows_its_routes_the_consumers_and_the_refusals() {
    drive(
        "inbox-forward",
        &[("UP42_WEBHOOK_CONSUMERS", "forward,inbox")],
        None,
        true,
    );
}
