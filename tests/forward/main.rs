//! `up42wh forward` against a real nginx receiver and sinks written here on 127.0.0.1: what reaches
//! each route, signed so that the library's own verifier accepts it; the forwarder as a named
//! consumer; retries, dead letters, the circuit and replay; kill -9; bad configurations.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod chaos;
mod edges;
mod sink;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::nginx::{fresh, json, now, Delivery, Server, Setup, SECRET};
use common::senders::{standard_webhooks_headers, STANDARD_SECRET};
use common::up42wh;
use sink::{Answer, Sink};
use up42webhooks::format_rfc3339;

/// The forwarder's own secret for its http routes (a `whsec_` key).
pub const FORWARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// `up42wh forward --config CONFIG ARGS...` run to its end, with `env` (and none of the project's
/// settings of the shell running the tests).
fn run_up42wh(config: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(up42wh());
    common::hermetic(&mut c)
        .args(["forward", "--config"])
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A scratch directory for one test.
fn scratch(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("forward-{name}"))
}

/// The receiver with two consumers and a Standard Webhooks sender at /hooks/standard.
fn receiver() -> Server {
    Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward,other")
        .edit(|conf| {
            conf.replace(
                "require(\"up42webhooks\").configure{}",
                &format!(
                    "require(\"up42webhooks\").configure{{ senders = {{ standard = {{ profile = \"standard-webhooks\", secret = \"{STANDARD_SECRET}\" }} }} }}"
                ),
            )
            .replacen(
                "    location = /ping {",
                "    location = /hooks/standard { default_type application/json; content_by_lua_block { require(\"up42webhooks\").receive(\"standard\") } }\n    location = /ping {",
                1,
            )
        })
        .start()
}

/// A running forwarder; killed when dropped.
struct Forwarder {
    child: Child,
    log: PathBuf,
}

impl Forwarder {
    fn start(config: &Path, env: &[(&str, &str)]) -> Forwarder {
        let log = config.with_extension("log");
        let mut c = Command::new(up42wh());
        common::hermetic(&mut c)
            .args(["forward", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            );
        Forwarder {
            child: c.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and its exit status (within 15 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the forwarder did not stop within 15 s:\n{}", self.log());
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most `secs`) until `ok()`.
fn until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UP42 delivery of `kind` (job or order) with `status`.
fn up42(kind: &str, id: &str, status: &str, live: bool) -> Delivery {
    let t = now();
    let inner = if kind == "job" {
        format!(r#"{{"jobId":"j-{id}","status":"{status}"}}"#)
    } else {
        format!(r#"{{"orderId":"o-{id}","status":"{status}","statusIsFinal":true}}"#)
    };
    let body = format!(
        r#"{{"event":"{kind}.status","liveMode":{live},"messageId":"{id}","timestamp":"{}","body":{inner}}}"#,
        format_rfc3339(t)
    );
    Delivery::signed(body.as_bytes(), SECRET, t)
}

fn store(server: &Server, path: &str, d: &Delivery) -> Value {
    let h = d.header_refs();
    let r = server.request("POST", path, &h, &d.body);
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)["key"].clone()
}

/// Stores `n` fresh events, `{prefix}-{thread}-{i}`, from 4 threads posting to the receiver on
/// `port`; each answer must be 200. The caller joins them.
fn store_from_threads(port: u16, n: usize, prefix: &str) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|th| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                for i in 0..n / 4 {
                    let d = fresh(&format!("{prefix}-{th}-{i}"));
                    let r = common::nginx::post_to(port, &d);
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        })
        .collect()
}

/// Whether the library's own verifier accepts what the http sink got, under the forwarder's key.
fn verified(req: &sink::Request) -> bool {
    let mut ring = up42webhooks::KeyRing::new();
    ring.add_standard_webhooks(b"forward", FORWARD_SECRET.as_bytes())
        .unwrap();
    let pairs: Vec<(&[u8], &[u8])> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    up42webhooks::senders::standard_webhooks(
        &ring,
        &up42webhooks::Headers::Pairs(&pairs),
        &req.body,
        now(),
        &up42webhooks::Limits::default(),
    )
    .is_ok()
}

#[test]
fn each_route_gets_what_it_asks_for_signed_and_as_a_named_consumer() {
    let server = receiver();
    let http = Sink::start(Answer::Ok);
    let slack = Sink::start(Answer::Ok);
    let dir = scratch("routes");
    let out = dir.join("download.out");
    let script = dir.join("download.sh");
    executable(
        &script,
        "#!/bin/sh\n{ printf '%s %s %s %s ' \"$UP42WH_EVENT\" \"$UP42WH_STATUS\" \"$UP42WH_ID\" \"$UP42WH_LIVE\"; cat; } >> \"$DOWNLOAD_OUT\"\n",
    );
    let config = forward_config(
        &dir,
        server.admin_port,
        "",
        "",
        &format!(
            r#"[[route]]
name = "everything"
sink = "http"
url = "http://127.0.0.1:{http}/hook"
secret_env = "FORWARD_WHSEC"

[[route]]
name = "people"
sink = "slack"
notifiable = true
url_env = "FORWARD_SLACK_URL"

[[route]]
name = "download"
sink = "exec"
events = ["order.status"]
statuses = ["FULFILLED"]
command = ["{script}"]
env = ["DOWNLOAD_OUT"]
"#,
            http = http.port,
            script = script.display()
        ),
    );
    let slack_url = format!("http://127.0.0.1:{}/services/T0/B0/secret", slack.port);
    let out_env = out.to_str().unwrap().to_string();
    let mut fwd = Forwarder::start(
        &config,
        &[
            ("FORWARD_WHSEC", FORWARD_SECRET),
            ("FORWARD_SLACK_URL", &slack_url),
            ("DOWNLOAD_OUT", &out_env),
        ],
    );

    let sent = [
        (
            "/receive-webhooks",
            up42("job", "fwd-job-failed", "FAILED", false),
        ),
        (
            "/receive-webhooks",
            up42("job", "fwd-job-running", "RUNNING", false),
        ),
        (
            "/receive-webhooks",
            up42("order", "fwd-order", "FULFILLED", true),
        ),
    ];
    let mut keys: Vec<Value> = sent.iter().map(|(p, d)| store(&server, p, d)).collect();
    let body = br#"{"type":"invoice.paid","data":{"id":"in_7"}}"#;
    let standard = Delivery {
        headers: standard_webhooks_headers(STANDARD_SECRET, "msg_fwd_1", now(), body),
        body: body.to_vec(),
    };
    keys.push(store(&server, "/hooks/standard", &standard));

    until(20, "every event at the http sink", || {
        http.requests().len() >= 4
    });
    until(20, "the exec route ran", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("FULFILLED"))
    });
    until(20, "the forwarder's position at the last key", || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"] == keys[3]
    });

    // http: every event once, its body as sent, signed for the library's verifier, its delivery id.
    let mut got = http.requests();
    assert_eq!(got.len(), 4, "once each");
    // In key order (they were sent concurrently).
    got.sort_by_key(|r| r.header("up42wh-key").unwrap().parse::<u64>().unwrap());
    for (i, (_, d)) in sent.iter().enumerate() {
        assert_eq!(got[i].body, d.body, "event {i} as it was sent");
        assert_eq!(
            got[i].header("up42wh-key"),
            Some(keys[i].to_string().as_str())
        );
    }
    assert_eq!(got[3].body, body);
    for r in &got {
        assert!(
            verified(r),
            "the library's verifier accepts {:?}",
            r.headers
        );
        assert_eq!(r.path, "/hook");
    }
    assert_eq!(got[0].header("webhook-id"), Some("fwd-job-failed"));
    let received: i64 = got[0].header("up42wh-received").unwrap().parse().unwrap();
    assert!((now() - 60..=now()).contains(&received), "{received}");
    assert_eq!(got[3].header("webhook-id"), Some("msg_fwd_1"));
    assert_eq!(
        got[0].header("up42wh-verified-by"),
        Some("scheme=\"up42\", key_index=0, sender=\"up42\"")
    );
    assert_eq!(
        got[3].header("up42wh-verified-by"),
        Some("scheme=\"standard_webhooks\", key_index=0, sender=\"standard\"")
    );

    // slack: the notifiable statuses only, for people.
    let mut msgs = slack.requests();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    msgs.sort_by_key(|r| !String::from_utf8_lossy(&r.body).contains("FAILED"));
    assert_eq!(msgs[0].path, "/services/T0/B0/secret");
    let text = |r: &sink::Request| {
        serde_json::from_slice::<Value>(&r.body).unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        text(&msgs[0]).starts_with("UP42 job j-fwd-job-failed: FAILED (test) at "),
        "{}",
        text(&msgs[0])
    );
    assert!(
        text(&msgs[1]).starts_with("UP42 order o-fwd-order: FULFILLED (live) at "),
        "{}",
        text(&msgs[1])
    );

    // exec: the fulfilled order only, its body on stdin, its fields in the environment.
    let ran = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        ran,
        format!(
            "order.status FULFILLED fwd-order true {}\n",
            String::from_utf8(sent[2].1.body.clone()).unwrap()
        )
    );

    // A named consumer: the other consumer and the plain dump still see every event.
    assert_eq!(server.dump("").1, 4);
    assert_eq!(server.dump("?consumer=other").1, 4);
    assert_eq!(server.dump("?consumer=forward").1, 0);

    assert!(fwd.terminate().success(), "{}", fwd.log());
    let log = fwd.log();
    assert!(
        log.contains("delivered event")
            && !log.contains(FORWARD_SECRET)
            && !log.contains("secret\""),
        "{log}"
    );
    assert!(
        !log.contains("/services/T0/B0/secret"),
        "the Slack URL is a secret: {log}"
    );
}

#[test]
fn a_sink_that_asks_to_wait_gets_everything_and_one_that_never_recovers_gets_dead_letters_and_replay(
) {
    let server = receiver();
    // 503 with Retry-After: 1 for the first three requests, then 200.
    let flaky = Sink::start(Answer::FailFirst(3, 503, Some("1")));
    let dead = Sink::start(Answer::Always(500));
    let dir = scratch("retries");
    let write_config = |dead_port: u16| {
        forward_config(
            &dir,
            server.admin_port,
            "",
            "",
            &format!(
                r#"[[route]]
name = "flaky"
sink = "http"
url = "http://127.0.0.1:{flaky}/"
secret_env = "FORWARD_WHSEC"
retry = ["100ms", "100ms", "100ms", "100ms"]

[[route]]
name = "dead"
sink = "http"
url = "http://127.0.0.1:{dead_port}/"
secret_env = "FORWARD_WHSEC"
retry = ["100ms", "100ms"]
circuit_failures = 3
circuit_probe = "300ms"
"#,
                flaky = flaky.port,
            ),
        )
    };
    let config = write_config(dead.port);
    let mut fwd = Forwarder::start(&config, &[("FORWARD_WHSEC", FORWARD_SECRET)]);
    let keys: Vec<Value> = (0..4)
        .map(|i| store(&server, "/receive-webhooks", &fresh(&format!("retry-{i}"))))
        .collect();
    until(30, "the flaky sink got all four", || {
        let mut ids: Vec<String> = flaky
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.header("webhook-id").unwrap().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids.len() == 4
    });
    let dead_letters = dir.join("state/dead-letter.jsonl");
    until(30, "four dead letters", || {
        std::fs::read_to_string(&dead_letters).is_ok_and(|s| s.lines().count() == 4)
    });
    until(20, "the position past every event", || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"] == keys[3]
    });
    let letters = std::fs::read_to_string(&dead_letters).unwrap();
    for line in letters.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["route"], "dead", "{line}");
        assert_eq!(v["attempts"], 3, "{line}");
        assert!(
            v["envelope"]["event"]["messageId"]
                .as_str()
                .unwrap()
                .starts_with("retry-"),
            "{line}"
        );
        assert_eq!(v["last_status"], 500, "{line}");
        assert_eq!(v["reason"], "exhausted", "{line}");
    }
    // Nothing of the flaky route is dead: only its own letters are in the file.
    assert!(!letters.contains("\"route\":\"flaky\""));
    // The circuit opened, and the attempts due meanwhile waited for its probes instead of being
    // spent: an attempt is a request sent (4 events, 3 each).
    let log = fwd.log();
    assert!(
        log.contains("route dead: circuit open after 3 failures"),
        "{log}"
    );
    assert!(!log.contains("circuit open: not sent"), "{log}");
    assert_eq!(dead.requests().len(), 12, "{log}");
    // Once open, one request at a time (the probe), circuit_probe (300 ms) apart.
    let at: Vec<Instant> = dead.requests().iter().map(|r| r.at).collect();
    for w in at[4..].windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(250),
            "probes {:?} apart",
            w[1] - w[0]
        );
    }
    assert!(fwd.terminate().success());

    // The sink is back: replay delivers each dead letter once and empties the file.
    let back = Sink::start(Answer::Ok);
    write_config(back.port);
    common::stdout_of(
        &run_up42wh(
            &config,
            &["replay", "--route", "dead"],
            &[("FORWARD_WHSEC", FORWARD_SECRET)],
        ),
        "up42wh forward replay",
    );
    assert_eq!(back.requests().len(), 4);
    assert!(back.requests().iter().all(verified));
    assert_eq!(
        std::fs::read_to_string(&dead_letters).unwrap_or_default(),
        ""
    );
}

#[test]
fn kill_9_then_restart_loses_nothing_and_keeps_a_retry_due_later() {
    let server = receiver();
    let slow = Sink::start(Answer::Delay(Duration::from_millis(20)));
    // Fails the first request, then answers: its retry is due 5 s later, after the kill.
    let later = Sink::start(Answer::FailFirst(1, 503, None));
    let dir = scratch("kill");
    let config = forward_config(
        &dir,
        server.admin_port,
        "",
        "page = 20",
        &format!(
            r#"[[route]]
name = "slow"
sink = "http"
url = "http://127.0.0.1:{slow}/"
secret_env = "FORWARD_WHSEC"
concurrency = 4

[[route]]
name = "later"
sink = "http"
events = ["order.status"]
url = "http://127.0.0.1:{later}/"
secret_env = "FORWARD_WHSEC"
retry = ["5s"]
"#,
            slow = slow.port,
            later = later.port
        ),
    );
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let mut fwd = Forwarder::start(&config, &env);
    store(
        &server,
        "/receive-webhooks",
        &up42("order", "kill-order", "FULFILLED", true),
    );
    until(10, "the first attempt at the later sink", || {
        later.requests().len() == 1
    });
    let mut keys = Vec::new();
    for i in 0..200 {
        keys.push(store(
            &server,
            "/receive-webhooks",
            &fresh(&format!("kill-{i}")),
        ));
    }
    until(20, "some of the burst delivered", || {
        slow.requests().len() >= 60
    });
    fwd.kill9();
    assert_eq!(
        later.requests().len(),
        1,
        "the retry was not due yet at the kill"
    );
    let before = slow.requests().len();
    let mut fwd = Forwarder::start(&config, &env);
    until(30, "everything delivered after the restart", || {
        let mut ids: Vec<String> = slow
            .requests()
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids.len() == 201
    });
    // The retry scheduled before the kill happens after it.
    until(15, "the retry due after the kill", || {
        later.requests().len() == 2
    });
    // Duplicates: only what was in flight at the kill (at most `concurrency` of them), and the
    // forwarder says how many it sent again.
    let total = slow.requests().len();
    assert!(
        total - 201 <= 4,
        "{} duplicates ({before} before the kill)",
        total - 201
    );
    assert!(fwd.terminate().success());
    let log = fwd.log();
    if total > 201 {
        assert!(log.contains("may arrive twice"), "{log}");
    }
    let position = json(&server.admin_get("/stats"))["consumers"]["forward"]["position"].clone();
    assert_eq!(
        position,
        *keys.last().unwrap(),
        "the position past every event"
    );
}

#[test]
fn each_bad_configuration_is_one_line_naming_the_key_and_the_line() {
    let dir = scratch("config");
    let base = "[receiver]\nurl = \"http://127.0.0.1:9889\"\nconsumer = \"forward\"\n\n[[route]]\nname = \"r\"\n";
    let cases: &[(&str, &str, &str)] = &[
        ("sink = \"http\"\nurl = \"http://x/\"\nsecret_env = \"W\"\ncolour = 1\n", "line 10", "unknown field `colour`"),
        ("sink = \"http\"\nurl = \"ftp://x/\"\nsecret_env = \"W\"\n", "line 8", "not an http:// or https:// URL"),
        ("sink = \"http\"\nurl = \"http://x/\"\nsecret_env = \"BAD_WHSEC\"\n", "line 9", "not a Standard Webhooks secret"),
        ("sink = \"http\"\nurl = \"http://x/\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n", "line 9", "a secret in the file's text"),
        ("sink = \"exec\"\ncommand = [\"/nonexistent/program\"]\n", "line 8", "no such program"),
        ("sink = \"slack\"\nurl_env = \"S\"\nstatuses = [\"failed\"]\n", "line 9", "not a status as UP42 writes it"),
        ("sink = \"smtp\"\n", "line 7", "sink: http, slack, exec or up42-download"),
        ("sink = \"http\"\nurl = \"http://x/\"\nsecret_env = \"W\"\nretry = [\"5 minutes\"]\n", "line 10", "retry"),
        // A wrong type names the key, not only the line.
        ("sink = \"exec\"\ncommand = [\"sh\"]\nconcurrency = \"lots\"\n", "line 9", "route r: concurrency: invalid type: string \"lots\", expected u32"),
        ("sink = \"exec\"\ncommand = [\"sh\"]\nurl = \"http://x/\"\n", "line 9", "route r: url: unknown field `url`, expected `command` or `env`"),
    ];
    for (i, (route, line, says)) in cases.iter().enumerate() {
        let config = dir.join(format!("bad{i}.toml"));
        std::fs::write(&config, format!("{base}{route}")).unwrap();
        let out = run_up42wh(
            &config,
            &["check"],
            &[
                ("W", FORWARD_SECRET),
                ("S", "http://127.0.0.1:9/slack"),
                ("BAD_WHSEC", "whsec_not base64!"),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{route}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("bad{i}.toml {line}: ")) && err.contains(says),
            "{route}: {err}"
        );
    }
    // A consumer the receiver does not declare: said at the first read, exit 2.
    let server = receiver();
    let config = dir.join("undeclared.toml");
    std::fs::write(
        &config,
        format!(
            "[receiver]\nurl = \"http://127.0.0.1:{}\"\nconsumer = \"nobody\"\n\n[[route]]\nname = \"r\"\nsink = \"http\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"W\"\n",
            server.admin_port
        ),
    )
    .unwrap();
    let out = run_up42wh(&config, &[], &[("W", FORWARD_SECRET)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // One line, before any log line, naming the file, the line and the key.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("undeclared.toml line 3: receiver.consumer: ")
            && err.contains("nobody is not declared"),
        "{err}"
    );
}

#[test]
fn a_gap_is_reported_and_passed_the_receiver_restarted_is_resumed_and_status_says_so() {
    // Retention keeps 3 events; the forwarder is not running while 6 arrive.
    let mut server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .edit(|conf| {
            conf.replace(
                "require(\"up42webhooks\").configure{}",
                "require(\"up42webhooks\").configure{ retention = { max_events = 3 } }",
            )
        })
        .start();
    let http = Sink::start(Answer::Ok);
    let dir = scratch("gap");
    let metrics = common::nginx::free_port();
    let config = forward_config(
        &dir,
        server.admin_port,
        &format!("metrics = \"127.0.0.1:{metrics}\""),
        "",
        &format!(
            r#"[[route]]
name = "all"
sink = "http"
url = "http://127.0.0.1:{http}/"
secret_env = "FORWARD_WHSEC"
"#,
            http = http.port
        ),
    );
    let keys: Vec<Value> = (0..6)
        .map(|i| store(&server, "/receive-webhooks", &fresh(&format!("gap-{i}"))))
        .collect();
    until(15, "retention down to 3 events", || server.dump("").1 == 3);
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let mut fwd = Forwarder::start(&config, &env);
    until(20, "the three kept delivered", || {
        http.requests().len() == 3
    });
    let ids = http.ids();
    for i in 3..6 {
        assert!(ids.contains(&format!("gap-{i}")), "{ids:?}");
    }
    let status = |fwd: &Forwarder| -> Value {
        let r = common::nginx::http(metrics, "GET", "/status", &[], b"")
            .unwrap_or_else(|| panic!("{}", fwd.log()));
        json(&r)
    };
    until(10, "the gap counted and the deliveries", || {
        let s = status(&fwd);
        s["gaps"] == 1
            && s["routes"]["all"]["delivered"] == 3
            && s["position"].as_str() == Some(keys[5].to_string().as_str())
    });
    assert!(
        fwd.log()
            .contains("gap: the receiver's retention dropped events"),
        "{}",
        fwd.log()
    );
    let text = common::stdout_of(
        &run_up42wh(&config, &["status"], &[("FORWARD_WHSEC", FORWARD_SECRET)]),
        "up42wh forward status",
    );
    assert!(
        text.contains("1 gaps")
            && text.contains("route all (http): 3 delivered, 0 retried, 0 dead-lettered"),
        "{text}"
    );
    let prometheus = common::nginx::http(metrics, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    assert!(
        prometheus.contains("up42wh_forward_delivered_total{route=\"all\"} 3\n"),
        "{prometheus}"
    );
    assert!(
        prometheus.contains("up42wh_forward_gaps_total 1\n"),
        "{prometheus}"
    );

    // The receiver stops and comes back: the forwarder reads on where it was.
    server.stop();
    std::thread::sleep(Duration::from_millis(300));
    server.restart();
    let more: Vec<Value> = (0..3)
        .map(|i| store(&server, "/receive-webhooks", &fresh(&format!("after-{i}"))))
        .collect();
    until(40, "the events after the restart delivered", || {
        http.requests().len() == 6
    });
    until(10, "the position at the newest", || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"]
            == *more.last().unwrap()
    });
    assert!(keys.len() == 6);
    assert!(fwd.terminate().success());
}

#[test]
fn the_readme_example_configuration_checks_and_its_email_route_sends_mail() {
    let example = common::root().join("examples/forward.toml");
    let checked = common::stdout_of(
        &run_up42wh(
            &example,
            &["check"],
            &[
                (
                    "SLACK_WEBHOOK_URL",
                    "https://hooks.slack.com/services/T0/B0/x",
                ),
                ("FORWARD_WHSEC", FORWARD_SECRET),
            ],
        ),
        "up42wh forward check of examples/forward.toml",
    );
    assert!(checked.contains("4 routes"), "{checked}");
    // check and status need no sink's secret: none set here is no mistake (the forwarder may run
    // elsewhere); one that is set is still checked.
    let bare = common::stdout_of(
        &run_up42wh(&example, &["check"], &[]),
        "up42wh forward check of examples/forward.toml without secrets",
    );
    assert!(bare.contains("4 routes"), "{bare}");
    let status = run_up42wh(&example, &["status"], &[]);
    let said = String::from_utf8_lossy(&status.stderr);
    // It asks the forwarder (none runs here: exit 1), not for a secret (a configuration error
    // would exit 2).
    assert_ne!(status.status.code(), Some(2), "{said}");
    assert!(!said.contains("SLACK_WEBHOOK_URL"), "{said}");
    let bad = run_up42wh(
        &example,
        &["check"],
        &[("FORWARD_WHSEC", "whsec_not base64!")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a Standard Webhooks secret"));

    // The email route as examples/forward.toml has it, with a stand-in for sendmail.
    let server = receiver();
    let dir = scratch("mail");
    let mailbox = dir.join("mailbox");
    let sendmail = dir.join("sendmail");
    executable(
        &sendmail,
        &format!(
            "#!/bin/sh\n[ \"$1\" = -t ] || exit 64\ncat >> '{}'\n",
            mailbox.display()
        ),
    );
    let config = forward_config(
        &dir,
        server.admin_port,
        "",
        "",
        &format!(
            r#"[[route]]
name = "email"
sink = "exec"
notifiable = true
command = ["{script}", "ops@example.com"]
env = ["SENDMAIL"]
"#,
            script = common::root()
                .join("examples/forward/mail-event.sh")
                .display()
        ),
    );
    let sendmail_env = sendmail.to_str().unwrap().to_string();
    let mut fwd = Forwarder::start(&config, &[("SENDMAIL", &sendmail_env)]);
    let failed = up42("job", "mail-1", "FAILED", false);
    store(
        &server,
        "/receive-webhooks",
        &up42("job", "mail-0", "RUNNING", false),
    );
    store(&server, "/receive-webhooks", &failed);
    until(20, "the mail", || {
        std::fs::read_to_string(&mailbox).is_ok_and(|m| m.contains("mail-1"))
    });
    assert!(fwd.terminate().success());
    let mail = std::fs::read_to_string(&mailbox).unwrap();
    assert_eq!(
        mail,
        format!(
            "To: ops@example.com\nSubject: UP42 job.status FAILED (test)\nContent-Type: application/json\n\n{}\n\n",
            String::from_utf8(failed.body.clone()).unwrap()
        ),
        "one mail, for the notifiable status only"
    );
}

/// A configuration in `dir` reading the receiver on `admin` as consumer `forward`: `top` lines
/// above its `[receiver]` table, `receiver` lines in it, then `routes`.
fn forward_config(dir: &Path, admin: u16, top: &str, receiver: &str, routes: &str) -> PathBuf {
    let config = dir.join("forward.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n{top}\n[receiver]\nurl = \"http://127.0.0.1:{admin}\"\nconsumer = \"forward\"\n{receiver}\n\n{routes}"
        ),
    )
    .unwrap();
    config
}

/// A configuration of one http route to `port` with `extra` lines for it, and `top` lines above.
fn one_route(dir: &Path, admin: u16, port: u16, top: &str, extra: &str) -> PathBuf {
    forward_config(
        dir,
        admin,
        top,
        "",
        &format!(
            "[[route]]\nname = \"one\"\nsink = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\nsecret_env = \"FORWARD_WHSEC\"\n{extra}\n"
        ),
    )
}

/// An executable script at `path`.
fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn sigterm_finishes_what_is_in_flight_or_hands_it_back() {
    let server = receiver();
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    // Answers after 1 s: a stop waits for both attempts, which are delivered, not sent again.
    let slow = Sink::start(Answer::Delay(Duration::from_secs(1)));
    let dir = scratch("sigterm");
    let config = one_route(&dir, server.admin_port, slow.port, "", "");
    let mut fwd = Forwarder::start(&config, &env);
    let keys: Vec<Value> = (0..2)
        .map(|i| store(&server, "/receive-webhooks", &fresh(&format!("term-{i}"))))
        .collect();
    until(10, "both in flight", || slow.requests().len() == 2);
    let stopped = Instant::now();
    assert!(fwd.terminate().success(), "{}", fwd.log());
    assert!(
        stopped.elapsed() >= Duration::from_millis(500),
        "it waited for the attempts in flight"
    );
    assert_eq!(
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"],
        keys[1],
        "and told the receiver"
    );
    let mut fwd = Forwarder::start(&config, &env);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(slow.requests().len(), 2, "nothing sent again");
    assert!(fwd.terminate().success());

    // Answers after 30 s: past stop_timeout the attempt is handed back, and sent at the next start.
    let stuck = Sink::start(Answer::Delay(Duration::from_secs(30)));
    let dir = scratch("sigterm-stuck");
    let config = one_route(
        &dir,
        server.admin_port,
        stuck.port,
        "stop_timeout = \"500ms\"",
        "",
    );
    let mut fwd = Forwarder::start(&config, &env);
    store(&server, "/receive-webhooks", &fresh("term-stuck"));
    until(10, "in flight", || {
        stuck
            .requests()
            .iter()
            .any(|r| r.header("webhook-id") == Some("term-stuck"))
    });
    let stopped = Instant::now();
    assert!(fwd.terminate().success());
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "it did not wait for the sink"
    );
    assert!(fwd.log().contains("handed back"), "{}", fwd.log());
    let before = stuck.requests().len();
    let fwd = Forwarder::start(&config, &env);
    until(10, "sent again at the next start", || {
        stuck.requests().len() > before
    });
    until(5, "and said so", || fwd.log().contains("may arrive twice"));
}

#[test]
fn an_ordered_route_holds_later_events_behind_a_retry_and_another_does_not() {
    let server = receiver();
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    for ordered in [true, false] {
        let sink = Sink::start(Answer::FailFirst(1, 503, None));
        let dir = scratch(&format!("ordered-{ordered}"));
        let config = one_route(
            &dir,
            server.admin_port,
            sink.port,
            "",
            &format!("ordered = {ordered}\nretry = [\"500ms\"]\nconcurrency = 1"),
        );
        // Three events waiting before the forwarder starts: the first attempt of the first fails.
        let consumer_start =
            json(&server.admin_get("/stats"))["consumers"]["forward"]["position"].clone();
        let ids: Vec<String> = (0..3).map(|i| format!("ord-{ordered}-{i}")).collect();
        for id in &ids {
            store(&server, "/receive-webhooks", &fresh(id));
        }
        let mut fwd = Forwarder::start(&config, &env);
        until(10, "all three delivered", || {
            sink.requests().iter().filter(|r| r.status == 200).count() == 3
        });
        let order: Vec<(String, u16)> = sink
            .requests()
            .iter()
            .map(|r| (r.header("webhook-id").unwrap().to_string(), r.status))
            .collect();
        let first = (ids[0].clone(), 503);
        if ordered {
            assert_eq!(
                order,
                [
                    first,
                    (ids[0].clone(), 200),
                    (ids[1].clone(), 200),
                    (ids[2].clone(), 200)
                ],
                "in key order, the later ones behind the retry"
            );
        } else {
            assert_eq!(order[0], first);
            assert_eq!(
                order[1..3],
                [(ids[1].clone(), 200), (ids[2].clone(), 200)],
                "the later ones did not wait (from {consumer_start})"
            );
        }
        assert!(fwd.terminate().success());
    }
}

#[test]
fn two_forwarders_in_one_redis_group_share_the_events_and_one_takes_over_from_a_dead_one() {
    let redis = common::redis::Redis::start("forward");
    let server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .env("UP42_WEBHOOK_STORE", &redis.url())
        .start();
    let sink = Sink::start(Answer::Delay(Duration::from_millis(5)));
    let dir = scratch("redis-group");
    let config = |name: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "state_dir = \"state-{name}\"\n[redis]\nurl = \"{url}\"\ngroup = \"forward\"\nconsumer = \"{name}\"\nclaim_idle = \"2s\"\npage = 10\n\n\
                 [[route]]\nname = \"one\"\nsink = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\nsecret_env = \"FORWARD_WHSEC\"\nconcurrency = 2\n",
                url = redis.url(),
                port = sink.port
            ),
        )
        .unwrap();
        path
    };
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let mut a = Forwarder::start(&config("a"), &env);
    let mut b = Forwarder::start(&config("b"), &env);
    let ids: Vec<String> = (0..200).map(|i| format!("group-{i}")).collect();
    for id in &ids {
        store(&server, "/receive-webhooks", &fresh(id));
    }
    let delivered = || sink.ids();
    until(30, "every event delivered", || delivered().len() >= 200);
    let mut got = delivered();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each event once for the group");
    // A log line follows each delivery: wait for the last ones.
    let counts = || {
        (
            a.log().matches("delivered event").count(),
            b.log().matches("delivered event").count(),
        )
    };
    until(5, "a log line for each delivery", || {
        counts().0 + counts().1 == 200
    });
    let (by_a, by_b) = counts();
    assert!(by_a > 0 && by_b > 0, "shared: {by_a} and {by_b}");
    until(10, "nothing pending in the group", || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["pending"] == 0
    });

    // a dies holding entries (the sink answers slowly now); b takes them over after claim_idle.
    let slow = Sink::start(Answer::Delay(Duration::from_secs(60)));
    std::fs::write(
        dir.join("a.toml"),
        std::fs::read_to_string(dir.join("a.toml"))
            .unwrap()
            .replace(&format!(":{}/", sink.port), &format!(":{}/", slow.port)),
    )
    .unwrap();
    assert!(a.terminate().success());
    let mut a = Forwarder::start(&dir.join("a.toml"), &env);
    assert!(b.terminate().success(), "b stopped while a reads");
    let more: Vec<String> = (0..4).map(|i| format!("takeover-{i}")).collect();
    for id in &more {
        store(&server, "/receive-webhooks", &fresh(id));
    }
    until(10, "a holds them", || slow.requests().len() == 2);
    a.kill9();
    let b = Forwarder::start(&config("b"), &env);
    until(20, "b delivered what a held", || {
        let d = delivered();
        more.iter().all(|id| d.contains(id))
    });
    assert!(b.log().contains("took over"), "{}", b.log());
}

/// A receiver that is down while a delivery finishes: the acknowledgement fails and is sent again
/// after pauses that double, not in a tight loop (a bench once logged millions of lines a minute),
/// and reaches the receiver once it is back.
#[test]
fn a_receiver_that_is_down_is_asked_again_after_pauses_not_in_a_loop() {
    let mut server = Setup::default()
        .env("UP42_WEBHOOK_CONSUMERS", "forward")
        .start();
    let http = Sink::start(Answer::Delay(Duration::from_millis(1500)));
    let dir = scratch("receiver-down");
    // Pauses bounded at 1 s: once the receiver is back, the next try reaches it within a second,
    // whenever the restart happens (the default bound, 30 s, raced the test's wait).
    let config = forward_config(
        &dir,
        server.admin_port,
        "",
        "retry_max = \"1s\"",
        &format!("[[route]]\nname = \"one\"\nsink = \"http\"\nurl = \"http://127.0.0.1:{}/\"\nsecret_env = \"FORWARD_WHSEC\"\n", http.port),
    );
    let key = store(&server, "/receive-webhooks", &fresh("down-1"));
    let fwd = Forwarder::start(&config, &[("FORWARD_WHSEC", FORWARD_SECRET)]);
    until(10, "the sink has the event", || http.requests().len() == 1);
    // Down before the sink answers: the acknowledgement that follows cannot reach it.
    server.stop();
    std::thread::sleep(Duration::from_secs(5));
    let log = fwd.log();
    let failed_acks = log.matches("cannot acknowledge").count();
    let failed_reads = log.matches("cannot read the receiver").count();
    assert!(
        (1..=8).contains(&failed_acks) && failed_reads <= 8,
        "{failed_acks} failed acknowledgements and {failed_reads} failed reads in 5 s:\n{}",
        log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    server.restart();
    // Past the event: at it (the acknowledgement got through first), or at the key the next read
    // ended at (the receiver hands out keys above the old ones after a restart).
    let past = || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"]
            .as_u64()
            .is_some_and(|p| p >= key.as_u64().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !past() {
        assert!(
            Instant::now() < deadline,
            "the position past the event within 60 s: {}\n{}",
            server.admin_get("/stats").text(),
            fwd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http.requests().len(), 1, "delivered once");
}
