//! The forwarder where it meets the world outside: a sink that redirects, a replay cut short or
//! run twice, an outage shorter than the route's schedule behind an open circuit, programs that
//! leave children behind, hang, print much, or would see other routes' secrets.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::*;
use common::nginx::free_port;

/// The dead letters not settled by a replay's markers, as JSON.
fn open_letters(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut settled = std::collections::HashSet::new();
    let mut letters = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["settled"].as_str() {
            Some(id) => {
                settled.insert(id.to_string());
            }
            None => letters.push((line.to_string(), v)),
        }
    }
    letters
        .into_iter()
        .filter(|(line, _)| !settled.contains(&letter_id(line)))
        .map(|(_, v)| v)
        .collect()
}

/// A letter's id as the forwarder makes it: the start of the SHA-256 of its line.
fn letter_id(line: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(line.trim_end().as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A GET to 127.0.0.1:`port`, the whole answer as text.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // One write: the metrics listener reads one chunk, answers and closes.
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_redirect_is_never_followed_and_dead_letters_the_event_at_once() {
    let server = receiver();
    let moved = Sink::start(Answer::Redirect(301, "/landing"));
    let dir = scratch("redirect");
    let metrics = free_port();
    let config = one_route(
        &dir,
        server.admin_port,
        moved.port,
        &format!("metrics = \"127.0.0.1:{metrics}\""),
        "",
    );
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let mut fwd = Forwarder::start(&config, &env);
    let key = store(&server, "/receive-webhooks", &fresh("moved-1"));
    let letters = dir.join("state/dead-letter.jsonl");
    until(20, "a dead letter", || open_letters(&letters).len() == 1);
    let v = &open_letters(&letters)[0];
    assert_eq!(v["reason"], "redirect", "{v}");
    // The forwarder's state is its own: the directory 0700, its files 0600.
    use std::os::unix::fs::PermissionsExt;
    for (f, want) in [
        ("state", 0o700),
        ("state/state.log", 0o600),
        ("state/dead-letter.jsonl", 0o600),
    ] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{f}: {mode:o}");
    }
    assert_eq!(v["attempts"], 1, "dead-lettered at once: {v}");
    assert_eq!(v["last_status"], 301, "{v}");
    assert!(
        v["last_error"].as_str().unwrap().contains("/landing"),
        "names the Location: {v}"
    );
    // One POST, and no GET of the landing page after it.
    let got = moved.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "/");
    until(20, "the position past it", || {
        json(&server.admin_get("/stats"))["consumers"]["forward"]["position"] == key
    });
    // The status is published every 100 ms.
    until(10, "the status says so", || {
        let status = run_up42wh(&config, &["status"], &env);
        common::stdout_of(&status, "up42wh forward status")
            .contains("1 dead-lettered (1 redirects)")
    });
    let metrics = get(metrics, "/metrics");
    assert!(
        metrics.contains("up42wh_forward_redirects_total{route=\"one\"} 1"),
        "{metrics}"
    );
    assert!(fwd.terminate().success());
}

#[test]
fn a_replay_cut_short_or_run_twice_loses_no_dead_letter() {
    let server = receiver();
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let refuse = Sink::start(Answer::Always(400));
    let dir = scratch("replay-cut");
    let config = one_route(&dir, server.admin_port, refuse.port, "", "");
    let letters = dir.join("state/dead-letter.jsonl");
    let mut fwd = Forwarder::start(&config, &env);
    for i in 0..3 {
        store(&server, "/receive-webhooks", &fresh(&format!("cut-{i}")));
    }
    until(20, "three dead letters", || {
        open_letters(&letters).len() == 3
    });

    // A replay against a sink that hangs, a second replay beside it, then kill -9 of the first.
    let hang = Sink::start(Answer::Delay(Duration::from_secs(60)));
    one_route(&dir, server.admin_port, hang.port, "", "timeout = \"50s\"");
    let mut first = Command::new(common::up42wh());
    common::hermetic(&mut first)
        .args(["forward", "--config"])
        .arg(&config)
        .arg("replay")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut first = first.spawn().unwrap();
    until(10, "the first replay sending", || {
        hang.requests().len() == 1
    });
    let second = run_up42wh(&config, &["replay"], &env);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("another replay of"), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(open_letters(&letters).len(), 3, "all three still there");

    // The running forwarder gives one more up meanwhile; a replay then delivers all four.
    store(&server, "/receive-webhooks", &fresh("cut-3"));
    until(20, "a fourth dead letter", || {
        open_letters(&letters).len() == 4
    });
    let back = Sink::start(Answer::Ok);
    one_route(&dir, server.admin_port, back.port, "", "");
    let out = run_up42wh(&config, &["replay"], &env);
    let text = common::stdout_of(&out, "up42wh forward replay");
    assert!(text.contains("4 delivered, 0 failed again"), "{text}");
    let mut ids = back.ids();
    ids.sort();
    assert_eq!(ids, ["cut-0", "cut-1", "cut-2", "cut-3"]);
    assert!(open_letters(&letters).is_empty());
    assert_eq!(
        std::fs::read_to_string(&letters).unwrap(),
        "",
        "compacted once settled"
    );
    assert!(fwd.terminate().success());
}

#[test]
fn an_outage_shorter_than_the_schedule_dead_letters_nothing_behind_an_open_circuit() {
    let server = receiver();
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    // Nothing listens on the sink's port for the first 5 s: connections are refused.
    let port = free_port();
    let dir = scratch("outage");
    let config = one_route(
        &dir,
        server.admin_port,
        port,
        "",
        "retry = [\"1s\", \"1s\", \"1s\", \"2s\", \"2s\", \"3s\", \"3s\"]\ncircuit_probe = \"20s\"",
    );
    let ids: Vec<String> = (0..60).map(|i| format!("outage-{i}")).collect();
    for id in &ids {
        store(&server, "/receive-webhooks", &fresh(id));
    }
    let fwd = Forwarder::start(&config, &env);
    std::thread::sleep(Duration::from_secs(5));
    let sink = Sink::start_on(port, Answer::Ok);
    until(60, "all sixty delivered", || {
        sink.requests().iter().filter(|r| r.status == 200).count() >= 60
    });
    let mut got = sink.ids();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each once");
    let log = fwd.log();
    assert!(log.contains("circuit open after"), "{log}");
    assert!(log.contains("circuit closed"), "{log}");
    assert!(!log.contains("gave event"), "{log}");
    assert!(open_letters(&dir.join("state/dead-letter.jsonl")).is_empty());
}

/// Whether a process is gone (or a zombie no one waits for).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
}

#[test]
fn a_program_decides_by_its_exit_in_a_group_of_its_own_with_a_clean_environment() {
    let server = receiver();
    let dir = scratch("exec-edges");
    // Exits 0 at once, leaving a child that runs on (a download started in the background) and
    // holds its output 3 s: past the route's 2 s timeout, which a wait for that output would hit.
    executable(
        &dir.join("bg.sh"),
        "#!/bin/sh\ncat >/dev/null\n(sleep 3; echo late) &\necho \"started $UP42WH_KEY\"\nexit 0\n",
    );
    // Never ends, and neither does its child: the timeout kills both.
    executable(
        &dir.join("hang.sh"),
        &format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {}/child.pid\nsleep 60\n",
            dir.display()
        ),
    );
    // Prints a megabyte.
    executable(
        &dir.join("loud.sh"),
        "#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\000' x\necho\nexit 0\n",
    );
    let route = |name: &str, command: &str, extra: &str| {
        format!("[[route]]\nname = \"{name}\"\nsink = \"exec\"\ncommand = [{command}]\n{extra}\n")
    };
    let routes = [
        route("bg", "\"./bg.sh\"", "timeout = \"2s\""),
        route("hang", "\"./hang.sh\"", "timeout = \"1s\"\nretry = []"),
        route("env", "\"env\"", "env = [\"EXTRA_FOR_PROGRAM\"]"),
        route("loud", "\"./loud.sh\"", ""),
    ]
    .concat();
    let config = forward_config(&dir, server.admin_port, "", "", &routes);
    let secrets = [
        ("FORWARD_WHSEC", FORWARD_SECRET),
        ("UP42_WEBHOOK_ADMIN_TOKEN", "admin-token-never-seen"),
        ("SLACK_WEBHOOK_URL", "https://hooks.example/never-seen"),
        ("EXTRA_FOR_PROGRAM", "listed"),
    ];
    let fwd = Forwarder::start(&config, &secrets);
    let key = store(&server, "/receive-webhooks", &fresh("exec-1"));
    let key = key.to_string().trim_matches('"').to_string();
    until(30, "every route done", || {
        let log = fwd.log();
        ["bg", "env", "loud"]
            .iter()
            .all(|r| log.contains(&format!("to route {r} (attempt 1")))
            && log.contains("route hang: gave event")
    });
    let log = fwd.log();
    // bg: delivered at its first attempt, its child not waited for.
    assert!(!log.contains("route bg: event"), "no failed attempt: {log}");
    assert!(log.contains(&format!("bg.sh said: started {key}")), "{log}");
    // hang: killed with its child.
    assert!(
        log.contains("hang.sh: did not finish within 1s: its process group was killed"),
        "{log}"
    );
    let pid = std::fs::read_to_string(dir.join("child.pid")).unwrap();
    until(10, "the program's child killed too", || gone(pid.trim()));
    // env: PATH, HOME, LANG, the UP42WH_* variables and what the route lists; nothing else.
    let said = log
        .lines()
        .find(|l| l.contains(" env said: "))
        .unwrap_or_else(|| panic!("{log}"));
    let names: Vec<&str> = said
        .split(" env said: ")
        .nth(1)
        .unwrap()
        .split(" | ")
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    for n in &names {
        assert!(
            ["PATH", "HOME", "LANG", "EXTRA_FOR_PROGRAM"].contains(n) || n.starts_with("UP42WH_"),
            "{n} in the program's environment: {said}"
        );
    }
    assert!(names.contains(&"UP42WH_KEY") && names.contains(&"EXTRA_FOR_PROGRAM"));
    assert!(said.contains(&format!("UP42WH_KEY={key}")), "{said}");
    for (_, secret) in &secrets[..3] {
        assert!(!log.contains(secret), "a secret in the log: {log}");
    }
    // loud: its output read to the end (it exited 0) and logged within a bound.
    let loud = log.lines().find(|l| l.contains("loud.sh said:")).unwrap();
    assert!(loud.len() < 5000, "{} bytes", loud.len());
}

#[test]
fn a_stop_kills_a_program_still_running_with_its_children() {
    let server = receiver();
    let dir = scratch("exec-stop");
    executable(
        &dir.join("slow.sh"),
        &format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {d}/child.pid\necho $$ > {d}/program.pid\nsleep 60\n",
            d = dir.display()
        ),
    );
    let config = forward_config(
        &dir,
        server.admin_port,
        "stop_timeout = \"500ms\"",
        "",
        "[[route]]\nname = \"slow\"\nsink = \"exec\"\ncommand = [\"./slow.sh\"]\n",
    );
    let mut fwd = Forwarder::start(&config, &[]);
    store(&server, "/receive-webhooks", &fresh("stop-1"));
    until(10, "the program running", || {
        dir.join("program.pid").exists() && dir.join("child.pid").exists()
    });
    assert!(fwd.terminate().success(), "{}", fwd.log());
    assert!(fwd.log().contains("handed back"), "{}", fwd.log());
    for f in ["program.pid", "child.pid"] {
        let pid = std::fs::read_to_string(dir.join(f)).unwrap();
        until(10, &format!("{f} gone"), || gone(pid.trim()));
    }
}
