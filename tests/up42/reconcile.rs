//! `up42wh up42 reconcile` against the stand-in of UP42's API and a real receiver: what UP42 sent
//! while the receiver was down (and never sends again) is found through the API and stored once,
//! marked as learnt; a second run finds nothing; a run killed half-way and run again stores
//! nothing twice and misses nothing; pages that shift while read and a rate limit lose nothing;
//! an unreachable receiver and a refusing API are one line and an exit code each.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::World;

const SECRET: &str = crate::common::nginx::SECRET;

fn id(n: u8) -> String {
    format!("7e1f0c2a-0000-4000-8000-{n:012}")
}

fn ago(secs: i64) -> String {
    up42webhooks::format_rfc3339(crate::common::nginx::now() - secs)
}

/// UP42 notifies `id`'s status now; whether the receiver took it (a 2xx).
fn notify(w: &World, id: &str) -> bool {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", "--cacert"])
        .arg(&w.ca)
        .arg(format!(
            "https://127.0.0.1:{}/_standin/notify/{id}",
            w.standin.port
        ))
        .output()
        .unwrap();
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    sent["sent"][0]["success"] == true
}

/// (event, id, status, sender) of every event the receiver holds.
fn held(w: &World) -> Vec<(String, String, String, String)> {
    let (lines, _) = w.server.dump("?meta=true");
    let mut all: Vec<_> = lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            let b = &e["event"]["body"];
            let id = b["orderId"].as_str().or(b["jobId"].as_str()).unwrap_or("");
            (
                e["event_type"].as_str().unwrap_or("").to_string(),
                id.to_string(),
                b["status"].as_str().unwrap_or("").to_string(),
                e["sender"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

fn learnt_lines(out: &str) -> usize {
    out.lines().filter(|l| l.starts_with("learnt: ")).count()
}

/// `up42wh up42 reconcile` against the world's receiver, its watermark in `state`.
fn reconcile_command(w: &World, state: &Path, extra: &[&str]) -> std::process::Command {
    let receiver = w.receiver();
    let mut c = w.command(
        &[
            "reconcile",
            "--receiver",
            &receiver,
            "--state",
            state.to_str().unwrap(),
        ],
        &[],
    );
    c.args(extra);
    c
}

fn reconcile(w: &mut World, state: &Path, extra: &[&str]) -> (i32, String) {
    let out = reconcile_command(w, state, extra).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    w.outputs.push(text.clone());
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn what_up42_sent_while_the_receiver_was_down_is_learnt_once() {
    let mut w =
        World::with_receiver_env("reconcile", 300, &[("UP42_WEBHOOK_CONSUMERS", "forward")]);
    let url = w.url();
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", SECRET)],
    );
    assert_eq!(code, 0, "{out}");
    let state = w.dir.join("state/reconcile.json");
    // Seven orders (pages of three at the stand-in), six notified while the receiver ran, one
    // older than the first run's look back and never notified; two processing jobs, notified.
    let mut orders = json!({});
    for n in 1..=7u8 {
        orders[id(n)] = json!({"status": "BEING_FULFILLED", "updatedAt": ago(3600 - n as i64), "type": "ARCHIVE"});
    }
    orders[id(7)]["updatedAt"] = ago(30 * 86400).into();
    // The three that will be fulfilled have a file each, for the forwarder's download route.
    let objects = w.dir.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    for n in [3u8, 4, 5] {
        let content = crate::download::bytes(n as u64, 70_000 + n as usize);
        orders[id(n)]["assets"] = json!([crate::download::asset(
            &objects,
            &id(40 + n),
            &format!("scene-{n}.zip"),
            &content
        )]);
    }
    std::fs::write(&w.standin.orders, orders.to_string()).unwrap();
    let jobs_file = w.standin.log.with_extension("jsonl.jobs");
    let jobs = json!({
        id(20): {"status": "running", "created": ago(7200), "updated": ago(3000)},
        id(21): {"status": "successful", "created": ago(9000), "updated": ago(8000)},
    });
    std::fs::write(&jobs_file, jobs.to_string()).unwrap();
    for n in [1u8, 2, 3, 4, 5, 6, 20, 21] {
        assert!(notify(&w, &id(n)), "the receiver takes UP42's notification");
    }

    // The receiver goes down; meanwhile three orders are fulfilled and the job fails, and UP42's
    // notifications of them are refused (it never sends them again).
    w.server.stop();
    for n in [3u8, 4, 5] {
        orders[id(n)]["status"] = "FULFILLED".into();
        orders[id(n)]["updatedAt"] = ago(60 - n as i64).into();
    }
    std::fs::write(&w.standin.orders, orders.to_string()).unwrap();
    let mut jobs = jobs;
    jobs[id(20)]["status"] = "failed".into();
    jobs[id(20)]["updated"] = ago(50).into();
    std::fs::write(&jobs_file, jobs.to_string()).unwrap();
    for n in [3u8, 4, 5, 20] {
        assert!(!notify(&w, &id(n)), "the receiver is down");
    }
    w.server.restart();
    let before = held(&w);
    assert_eq!(before.len(), 8, "{before:?}");

    // A rate limit on the lists, answered after its Retry-After.
    std::fs::write(w.standin.log.with_extension("jsonl.list-busy"), "1 1").unwrap();
    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(learnt_lines(&out), 4, "{out}");
    let after = held(&w);
    let learnt: Vec<_> = after.iter().filter(|e| e.3 == "up42-api").collect();
    let expected: Vec<(String, String, String, String)> = [3u8, 4, 5]
        .iter()
        .map(|n| {
            (
                "order.status".into(),
                id(*n),
                "FULFILLED".into(),
                "up42-api".into(),
            )
        })
        .chain([(
            "job.status".into(),
            id(20),
            "FAILED".into(),
            "up42-api".into(),
        )])
        .collect();
    let mut got: Vec<_> = learnt.into_iter().cloned().collect();
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want, "exactly the four statuses the receiver missed");
    assert_eq!(after.len(), 12, "{after:?}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("reconciled with UP42 since "),
        "{out}"
    );
    assert!(
        out.contains("4 statuses the receiver never received, now stored"),
        "{out}"
    );
    let busy = w
        .standin
        .log()
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v2/orders?"))
        })
        .count();
    assert!(
        busy >= 4,
        "the busy page asked again, then three pages: {busy}"
    );
    let stats = crate::common::nginx::json(&w.server.admin_get("/stats"));
    assert_eq!(stats["counters"]["stored_from_up42-api"], 4, "{stats}");

    // A second run finds nothing new.
    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!((code, learnt_lines(&out)), (0, 0), "{out}");
    assert!(out.contains("the receiver had every status"), "{out}");
    assert_eq!(held(&w), after);

    // The forwarder gets the learnt FULFILLED statuses like any (its download route fetches the
    // three orders); when UP42 notifies one of them after all (late), no route gets it again.
    let fwd = Forwarder::start(&w);
    assert!(
        notify(&w, &id(3)),
        "the receiver takes the late notification"
    );
    let status = fwd.wait(|s| {
        ["fulfilled", "download"].iter().all(|r| {
            let r = &s["routes"][r];
            r["same_transition"] == 1 && r["delivered"] == 3 && r["in_flight"] == 0
        })
    });
    assert_eq!(status["lag_events"], 0, "{status}");
    for n in [3u8, 4, 5] {
        let got = std::fs::read(fwd.orders.join(id(n)).join(format!("scene-{n}.zip"))).unwrap();
        assert_eq!(got, crate::download::bytes(n as u64, 70_000 + n as usize));
        assert!(fwd.orders.join(id(n)).join("manifest.json").exists());
    }
    let ran = std::fs::read_to_string(&fwd.out).unwrap();
    let mut orders_run: Vec<&str> = ran.lines().collect();
    orders_run.sort();
    let mut want: Vec<String> = [3u8, 4, 5].iter().map(|n| id(*n)).collect();
    want.sort();
    assert_eq!(orders_run, want, "each FULFILLED order once");
    let both = held(&w)
        .into_iter()
        .filter(|e| e.1 == id(3) && e.2 == "FULFILLED")
        .count();
    assert_eq!(
        both, 2,
        "the receiver keeps both: UP42's and the learnt one"
    );
    drop(fwd);

    // The watermark survives, and a run with --since further back than it stores nothing twice.
    let mark: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        mark["updated"].as_i64().unwrap() >= crate::common::nginx::now() - 700,
        "{mark}"
    );
    let (code, out) = reconcile(&mut w, &state, &["--since", "40d"]);
    assert_eq!(
        (code, learnt_lines(&out)),
        (0, 1),
        "the 30-day-old order only: {out}"
    );
    assert_eq!(held(&w).len(), 14);

    // watch --reconcile-state: a reconciliation after each test that passed.
    let log = w.dir.join("watch.out");
    let receiver = w.receiver();
    let mut watch = Running(
        w.command(
            &[
                "watch",
                "--every",
                "1h",
                "--url",
                &url,
                "--receiver",
                &receiver,
                "--reconcile-state",
                state.to_str().unwrap(),
            ],
            &[],
        )
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    let out = wait_for(&log, |t| t.contains("reconciled with UP42 since"));
    assert!(out.lines().next().unwrap().contains(" passed"), "{out}");
    assert!(out.contains("the receiver had every status"), "{out}");
    watch.0.kill().unwrap();
    w.assert_nothing_secret_printed(&[super::PASSWORD, SECRET]);
    w.server.assert_clean_logs();
}

/// A child killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The file's text once `done` holds of it (bounded).
fn wait_for(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{}: {text}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `up42wh forward` with two routes for FULFILLED orders: a program that writes the order's id,
/// and the order's download.
struct Forwarder {
    child: std::process::Child,
    metrics: u16,
    out: std::path::PathBuf,
    orders: std::path::PathBuf,
}

impl Forwarder {
    fn start(w: &World) -> Forwarder {
        let out = w.dir.join("fulfilled.txt");
        let orders = w.dir.join("orders");
        let script = w.dir.join("record.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\npython3 -c 'import json, sys; print(json.load(sys.stdin)[\"body\"][\"orderId\"])' >> \"$1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let config = w.dir.join("forward.toml");
        let metrics = crate::common::nginx::free_port();
        let toml = format!(
            "state_dir = {:?}\nmetrics = \"127.0.0.1:{metrics}\"\n[receiver]\nurl = {:?}\nconsumer = \"forward\"\n\n\
             [[route]]\nname = \"fulfilled\"\nsink = \"exec\"\nevents = [\"order.status\"]\nstatuses = [\"FULFILLED\"]\n\
             command = [{:?}, {:?}]\n\n\
             [[route]]\nname = \"download\"\nsink = \"up42-download\"\nto = {:?}\n",
            w.dir.join("forward-state").display().to_string(),
            w.receiver(),
            script.display().to_string(),
            out.display().to_string(),
            orders.display().to_string(),
        );
        std::fs::write(&config, toml).unwrap();
        let mut cmd = w.up42wh(&["forward", "--config", config.to_str().unwrap()]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(w.dir.join("forward.err")).unwrap());
        Forwarder {
            child: cmd.spawn().unwrap(),
            metrics,
            out,
            orders,
        }
    }

    /// The forwarder's /status once `done` holds of it (bounded).
    fn wait(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = crate::common::nginx::http(self.metrics, "GET", "/status", &[], b"")
                .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "the forwarder's status: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Killed while the jobs are listed, after the orders were stored: run again, nothing twice and
/// nothing missed. An order that changes while its pages are read is caught (now or next run).
#[test]
fn a_run_killed_half_way_and_pages_that_shift_lose_nothing_and_store_nothing_twice() {
    let mut w = World::new("reconcile-kill", 300);
    let state = w.dir.join("reconcile.json");
    let mut orders = json!({});
    for n in 1..=8u8 {
        orders[id(n)] = json!({"status": "FULFILLED", "updatedAt": ago(1000 + n as i64)});
    }
    std::fs::write(&w.standin.orders, orders.to_string()).unwrap();
    let jobs_file = w.standin.log.with_extension("jsonl.jobs");
    std::fs::write(
        &jobs_file,
        json!({id(30): {"status": "failed", "created": ago(4000), "updated": ago(900)}})
            .to_string(),
    )
    .unwrap();
    // The jobs list stays busy (429, Retry-After 30 s): the run stores the orders, then waits on
    // it, and cannot end well while the file is there.
    let jobs_busy = w.standin.log.with_extension("jsonl.jobs-busy");
    std::fs::write(&jobs_busy, "100 30").unwrap();
    // Order 8 changes while the first page is read (it moves to the front).
    std::fs::write(
        w.standin.log.with_extension("jsonl.orders-shift"),
        format!("{} FAILED_PERMANENTLY", id(8)),
    )
    .unwrap();
    let mut child = reconcile_command(&w, &state, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the orders are stored and the jobs list is being asked for: kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = held(&w).len();
        let asked = w.standin.log().iter().any(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v2/processing/jobs"))
        });
        // Order 8 moves to the front once the first page is served: this run sees 1 to 7.
        if stored >= 7 && asked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} stored, jobs asked: {asked}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run waits on the busy list"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!state.exists(), "no watermark before the run's end");
    std::fs::remove_file(&jobs_busy).unwrap();

    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!(code, 0, "{out}");
    let all = held(&w);
    let mut transitions: Vec<_> = all.iter().map(|e| (e.1.clone(), e.2.clone())).collect();
    transitions.dedup();
    assert_eq!(transitions.len(), all.len(), "nothing twice: {all:?}");
    for n in 1..=7u8 {
        assert!(
            all.iter().any(|e| e.1 == id(n) && e.2 == "FULFILLED"),
            "{all:?}"
        );
    }
    assert!(
        all.iter().any(|e| e.1 == id(30) && e.2 == "FAILED"),
        "{all:?}"
    );
    // Order 8: its new status, whichever run saw it.
    assert!(
        all.iter()
            .any(|e| e.1 == id(8) && e.2 == "FAILED_PERMANENTLY"),
        "{all:?}"
    );
    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!((code, learnt_lines(&out)), (0, 0), "{out}");
}

#[test]
fn an_unreachable_receiver_and_a_refusing_api_are_one_line_each() {
    let mut w = World::new("reconcile-errors", 300);
    let state = w.dir.join("reconcile.json");
    std::fs::write(
        &w.standin.orders,
        json!({id(1): {"status": "FULFILLED", "updatedAt": ago(60)}}).to_string(),
    )
    .unwrap();
    let closed = format!("http://127.0.0.1:{}", crate::common::nginx::free_port());
    let (code, out) = w.run(
        &[
            "reconcile",
            "--receiver",
            &closed,
            "--state",
            state.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 12, "{out}");
    assert!(
        out.contains("cannot reach the receiver's admin listener"),
        "{out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(!state.exists());
    // A token the admin listener does not take, from an address it does not trust: 401, said.
    w.standin.fail(Some("403"));
    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!(code, 7, "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    w.standin.fail(None);
    // Rate-limited past its tries: UP42's rate limit, named as such.
    std::fs::write(w.standin.log.with_extension("jsonl.list-busy"), "20 1").unwrap();
    let (code, out) = reconcile(&mut w, &state, &[]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("429"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    std::fs::remove_file(w.standin.log.with_extension("jsonl.list-busy")).unwrap();
    // UP42 unreachable.
    let receiver = w.receiver();
    let (code, out) = w.run(
        &[
            "reconcile",
            "--receiver",
            &receiver,
            "--state",
            state.to_str().unwrap(),
        ],
        &[("UP42_API_URL", &closed), ("UP42_AUTH_URL", &closed)],
    );
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("cannot reach UP42"), "{out}");
    assert!(!state.exists());
    let (code, out) = reconcile(&mut w, &state, &["--since", "yesterday"]);
    assert_eq!(code, 2, "{out}");

    // --every: a run that fails is said and tried again; SIGTERM ends it well.
    let err = w.dir.join("every.err");
    let mut every = Running(
        w.command(
            &[
                "reconcile",
                "--receiver",
                &closed,
                "--state",
                state.to_str().unwrap(),
                "--every",
                "1s",
            ],
            &[],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap(),
    );
    let text = wait_for(&err, |t| t.matches("trying again in 1 s").count() >= 2);
    assert!(text.contains("(exit code 12)"), "{text}");
    let pid = every.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(every.0.wait().unwrap().success());
}

/// Two reconcilers at once, each with its own watermark (two machines): each transition stored
/// once.
#[test]
fn reconcilers_in_two_places_at_once_store_each_status_once() {
    let w = World::new("reconcile-two", 300);
    let mut orders = json!({});
    for n in 1..=9u8 {
        orders[id(n)] = json!({"status": "FULFILLED", "updatedAt": ago(100 + n as i64)});
    }
    std::fs::write(&w.standin.orders, orders.to_string()).unwrap();
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            reconcile_command(&w, &w.dir.join(format!("{name}/reconcile.json")), &[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut learnt = 0;
    for r in runs {
        let out = r.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        learnt += learnt_lines(&text);
    }
    let all = held(&w);
    assert_eq!(all.len(), 9, "{all:?}");
    assert_eq!(learnt, 9, "each stored by one of the two");
}
