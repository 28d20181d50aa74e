//! Faults under the receiver, on real nginx: a journal whose disk is full.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::nginx::{json, now, Delivery, Server, SECRET};

fn fresh(id: &str) -> Delivery {
    let t = now();
    let body = format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"FAILED","pad":"{}"}}}}"#,
        up42webhooks::format_rfc3339(t),
        "x".repeat(600)
    );
    Delivery::signed(body.as_bytes(), SECRET, t)
}

/// A small tmpfs the test mounts (as root, as CI runs), unmounted on drop; None where mounting
/// is not allowed.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(name: &str, size: &str) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("up42wh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
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

/// The project's config with a shorter log window (2 s), and `hook` after configure{}.
fn with_window(hook: &'static str) -> impl Fn(&str) -> String {
    move |c: &str| {
        c.replace(
            "require(\"up42webhooks\").configure{}",
            &format!("require(\"up42webhooks\").configure{{ log_window = 2 }}\n{hook}"),
        )
    }
}

#[test]
fn a_full_disk_under_the_journal_is_a_503_each_time_and_a_few_log_lines() {
    // The real thing where we may mount (root, as CI); elsewhere the journal's append fails the
    // way a full disk makes it fail.
    let disk = SmallDisk::mount("full-journal", "256k");
    let srv = match &disk {
        Some(d) => Server::start_with(
            with_window(""),
            &[("UP42_WEBHOOK_JOURNAL_DIR", d.0.to_str().unwrap())],
        ),
        None => {
            eprintln!("no tmpfs (not root): the journal's append is made to fail instead");
            Server::start_with(
                with_window(
                    r#"local journal = require "up42webhooks.journal"
                    local append = journal.append
                    journal.append = function(c, kind, reason, key, time, digest, id, meta, body)
                        if body and ngx.shared.webhooks_stats:incr("test_appends", 1, 0) > 150 then
                            return nil, "journal segment 1: No space left on device", false
                        end
                        return append(c, kind, reason, key, time, digest, id, meta, body)
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
}
