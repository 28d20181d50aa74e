//! The host's make targets tell the truth (make in a copy of the project, tests/common/make.rs):
//! serve records where it listens and names it when it is already running; send-test posts there
//! and fails, with one line, when the post does not reach it or the event is not stored; reload,
//! restart and configtest work on the host server; logs shows the last lines after a stop; dump and
//! stats read the admin listener. And a setting nginx cannot start with is one line, no Lua stack
//! trace, on the terminal of make serve and in the error log.

use crate::common::make::{project_copy, release_dir, Make, Stop};
use crate::common::nginx::free_port;
use crate::common::Scratch;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const SECRET: &str = "make-targets-secret-c2VydmU";

fn host_make(copy: &Scratch, port: u16, admin: u16) -> Make {
    Make {
        dir: copy.path().to_path_buf(),
        release: release_dir(),
        vars: vec![
            ("PORT".into(), port.to_string()),
            ("ADMIN_PORT".into(), admin.to_string()),
        ],
        env: vec![("UP42_WEBHOOK_SECRET".into(), SECRET.into())],
    }
}

#[test]
fn the_host_targets_say_where_it_runs_and_fail_when_they_fail() {
    let copy = Scratch::new("make-host");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    let make = host_make(&copy, port, admin);
    let run = copy.path().join("run");

    // Nothing runs yet: send-test and dump fail, naming that.
    let said = make.fails("send-test");
    assert!(said.contains("make send-test: not running"), "{said}");
    assert!(make.fails("dump").contains("not running"));

    let out = make.ok("serve");
    let _stop = Stop(&make);
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{out}"
    );
    let served = std::fs::read_to_string(run.join("served")).unwrap();
    assert!(
        served.contains(&format!("public='http://127.0.0.1:{port}'")),
        "{served}"
    );
    assert!(
        served.contains(&format!("admin='http://127.0.0.1:{admin}'")),
        "{served}"
    );

    // A second serve names the port and the run directory it found.
    let again = make.fails("serve");
    assert!(
        again.contains(&format!(
            "already running: deliveries on http://127.0.0.1:{port}/receive-webhooks"
        )) && again.contains(&format!("run directory {}", run.display())),
        "{again}"
    );

    // send-test reaches the recorded port, whatever PORT says now.
    let mut elsewhere = host_make(&copy, port, admin);
    elsewhere.vars = vec![];
    let sent = elsewhere.ok("send-test");
    assert!(sent.contains(r#""msg":"stored""#), "{sent}");
    // Signed with another secret: refused, so send-test fails with the server's answer.
    let wrong = elsewhere.with_env("UP42_WEBHOOK_SECRET", "not-the-servers-secret");
    let said = wrong.fails("send-test");
    let line = said
        .lines()
        .find(|l| l.starts_with("make send-test:"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        line.contains("not stored, HTTP 401") && line.contains("signature_mismatch"),
        "{line}"
    );
    assert!(!said.contains(SECRET) && !said.contains("not-the-servers-secret"));

    let dump = elsewhere.ok("dump");
    assert_eq!(dump.lines().count(), 2, "one event and the count: {dump}");
    let dump = elsewhere.ok("dump Q=?count=false");
    assert_eq!(dump.lines().count(), 1, "{dump}");
    let stats = elsewhere.ok("stats");
    assert!(stats.contains("\"stored\": 1"), "pretty-printed: {stats}");

    // reload: new workers, the event still there; configtest on the host's run directory.
    assert!(make
        .without_env("UP42_WEBHOOK_SECRET")
        .ok("reload")
        .contains("reloaded the host server"));
    assert_eq!(elsewhere.ok("dump").lines().count(), 2);
    let tested = make.ok("configtest");
    assert!(tested.contains("test is successful"), "{tested}");
    // A reload whose configuration nginx refuses says so and fails; the old one keeps running.
    let conf = run.join("conf/nginx.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::remove_file(&conf).unwrap();
    std::fs::write(&conf, format!("{good}\nno_such_directive on;\n")).unwrap();
    let said = make.fails("reload");
    assert!(said.contains("no_such_directive"), "{said}");
    assert!(make.fails("configtest").contains("no_such_directive"));
    std::fs::write(&conf, &good).unwrap();
    assert_eq!(
        elsewhere.ok("dump").lines().count(),
        2,
        "the old config still serves"
    );

    // restart in a shell without the secret it was started with (from the environment): refused
    // before anything is stopped.
    let said = elsewhere
        .without_env("UP42_WEBHOOK_SECRET")
        .fails("restart");
    assert!(
        said.contains("started with UP42_WEBHOOK_SECRET from its shell's environment")
            && said.contains("nothing was stopped"),
        "{said}"
    );
    assert!(!said.contains("stopped the host server"), "{said}");
    assert_eq!(elsewhere.ok("dump").lines().count(), 2, "still running");
    // restart: stopped and started with the same listeners; the journal brings the event back.
    let restarted = elsewhere.ok("restart");
    assert!(restarted.contains("stopped the host server"), "{restarted}");
    assert!(
        restarted.contains(&format!("receiving on http://127.0.0.1:{port}/")),
        "{restarted}"
    );
    assert_eq!(elsewhere.ok("dump").lines().count(), 2);

    // logs after a stop: the last lines of the files, the refusal among them.
    assert!(make.ok("stop").contains("stopped the host server"));
    let logs = make.ok("logs");
    assert!(logs.contains("the host server is not running"), "{logs}");
    assert!(
        logs.contains("rejected delivery: signature_mismatch"),
        "{logs}"
    );
    assert!(make.ok("stop").contains("not running"));
}

/// Each setting nginx cannot start with: (what is set up, what the one line must say).
/// With CARGO_TARGET_DIR exported cargo builds there, and so the targets look there: make serve
/// starts on the library in that directory (none under target/), send-test signs with its tool.
#[test]
fn the_targets_look_where_cargo_target_dir_has_cargo_build() {
    let copy = Scratch::new("make-target-dir");
    project_copy(copy.path());
    let elsewhere = copy.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(release_dir(), elsewhere.join("release")).unwrap();
    let (port, admin) = (free_port(), free_port());
    let make = |target: &str| {
        let mut c = Command::new("make");
        crate::common::hermetic(&mut c)
            .current_dir(copy.path())
            .args(["--no-print-directory", target, "CARGO=true"])
            .arg(format!("PORT={port}"))
            .arg(format!("ADMIN_PORT={admin}"))
            .env("CARGO_TARGET_DIR", &elsewhere)
            .env("UP42_WEBHOOK_SECRET", SECRET);
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = make("serve");
    struct StopIt<F: Fn(&str) -> (bool, String)>(F);
    impl<F: Fn(&str) -> (bool, String)> Drop for StopIt<F> {
        fn drop(&mut self) {
            let _ = (self.0)("stop");
        }
    }
    let _stop = StopIt(&make);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{out}"
    );
    assert!(!copy.path().join("target").exists(), "{out}");
    let (ok, sent) = make("send-test");
    assert!(ok && sent.contains(r#""msg":"stored""#), "{sent}");
}

#[test]
fn a_setting_nginx_cannot_start_with_is_one_line_without_a_stack_trace() {
    let copy = Scratch::new("make-startup");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    let base = host_make(&copy, port, admin);
    let conf = copy.path().join("openresty/default.conf");
    let original = std::fs::read_to_string(&conf).unwrap();
    let empty = copy.path().join("empty-secret");
    std::fs::write(&empty, "\n  \n").unwrap();
    // Journals whose salt is damaged (1 byte) or missing, beside a segment.
    let journal_with = |name: &str, salt: Option<&[u8]>| {
        let dir = copy.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // Writable by nginx's workers (nobody, under a root master), as a journal must be.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::fs::write(dir.join("events.000001.log"), b"U42J").unwrap();
        if let Some(salt) = salt {
            std::fs::write(dir.join("journal.salt"), salt).unwrap();
        }
        dir.to_str().unwrap().to_string()
    };
    let short_salt = journal_with("short-salt", Some(b"x"));
    // A journal directory nginx's workers cannot write in (root's master could: it used to start,
    // then answer every delivery 503).
    let closed = copy.path().join("closed-journal");
    std::fs::create_dir_all(&closed).unwrap();
    std::fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let closed = closed.to_str().unwrap().to_string();
    let damaged_mark = journal_with("damaged-mark", None);
    std::fs::remove_file(std::path::Path::new(&damaged_mark).join("events.000001.log")).unwrap();
    std::fs::write(
        std::path::Path::new(&damaged_mark).join("journal.keys"),
        "not a mark",
    )
    .unwrap();
    let no_salt = journal_with("no-salt", None);
    let cases: Vec<(&str, Make, Option<String>, &str)> = vec![
        (
            "a missing secret file",
            base.without_env("UP42_WEBHOOK_SECRET")
                .with_env("UP42_WEBHOOK_SECRET_FILE", "/nonexistent/up42-secret"),
            None,
            "up42webhooks: cannot read the secret file /nonexistent/up42-secret: No such file or directory (UP42_WEBHOOK_SECRET_FILE): create it",
        ),
        (
            "a secret file with no secret",
            base.without_env("UP42_WEBHOOK_SECRET")
                .with_env("UP42_WEBHOOK_SECRET_FILE", empty.to_str().unwrap()),
            None,
            "holds no secret: put the secret you gave UP42 on its first line",
        ),
        (
            "a missing shared dict",
            base.with_env("UP42_WEBHOOK_SECRET", SECRET),
            Some(original.replace("lua_shared_dict webhooks_seen 1m;", "")),
            "lua_shared_dict webhooks_seen is not declared: add `lua_shared_dict webhooks_seen 16m;`",
        ),
        (
            "a mistyped option",
            base.with_env("UP42_WEBHOOK_SECRET", SECRET),
            Some(original.replace(
                "require(\"up42webhooks\").configure{}",
                "require(\"up42webhooks\").configure{ tolerence = 60 }",
            )),
            "configure{}: no option tolerence (options: ",
        ),
        (
            "a damaged journal salt",
            base.with_env("UP42_WEBHOOK_JOURNAL_DIR", &short_salt),
            None,
            "journal.salt is 1 bytes, not 16: it is damaged",
        ),
        (
            "a missing journal salt",
            base.with_env("UP42_WEBHOOK_JOURNAL_DIR", &no_salt),
            None,
            "journal.salt is missing: the segments beside it cannot be read without it",
        ),
        (
            "a journal directory the workers cannot write in",
            base.with_env("UP42_WEBHOOK_JOURNAL_DIR", &closed),
            None,
            "cannot write in ",
        ),
        (
            "a damaged key mark",
            base.with_env("UP42_WEBHOOK_JOURNAL_DIR", &damaged_mark),
            None,
            "journal.keys is damaged (remove it to start anyway",
        ),
        (
            "a bad fsync mode",
            base.with_env("UP42_WEBHOOK_JOURNAL_FSYNC", "sometimes"),
            None,
            "UP42_WEBHOOK_JOURNAL_FSYNC: always, interval or never, not sometimes",
        ),
    ];
    for (what, make, edit, says) in cases {
        std::fs::write(&conf, edit.as_deref().unwrap_or(&original)).unwrap();
        let log = copy.path().join("run/logs/error.log");
        let _ = std::fs::remove_file(&log);
        let out = make.command("serve").output().unwrap();
        let _stop = Stop(&make);
        assert!(!out.status.success(), "{what}: nginx started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nginx:")).collect();
        assert_eq!(lines.len(), 1, "{what}: one line from nginx: {stderr}");
        assert!(
            lines[0].contains("init_by_lua error: ") && lines[0].contains(says),
            "{what}: {}",
            lines[0]
        );
        assert!(!stderr.contains("stack traceback"), "{what}: {stderr}");
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            logged.contains(says) && !logged.contains("stack traceback"),
            "{what}: the error log has the same line: {logged}"
        );
    }
}

/// Started by root, nginx's workers run as nobody: a checkout they cannot get into (under /root, or
/// in a mktemp -d directory) is refused before nginx starts, with what to do, instead of a start
/// that looks fine and answers every delivery 503.
#[test]
fn a_checkout_the_workers_cannot_reach_is_refused_with_what_to_do() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        println!("SKIPPED: only a root master hands its workers to another user");
        return;
    }
    let closed = Scratch::new("make-closed");
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let copy = closed.path().join("up42webhooks");
    std::fs::create_dir_all(&copy).unwrap();
    project_copy(&copy);
    let mut make = host_make(&closed, free_port(), free_port());
    make.dir = copy.clone();
    let said = make.fails("serve");
    let _stop = Stop(&make);
    assert!(
        said.contains("nginx's workers run as nobody and cannot get to")
            && said.contains(&copy.join("run/data").display().to_string())
            && said.contains("not under /root"),
        "{said}"
    );
    assert!(
        !copy.join("run/logs/nginx.pid").exists(),
        "nginx was not started"
    );
}

/// Day two, as a new operator meets it: a secret file from the first command (and a warning for a
/// weak secret), a restart that checks before it stops and keeps the settings, backup and restore
/// that keep settings and keys, a port in use in one line, the receiver's own errors from make dump,
/// labelled logs without admin requests.
#[test]
fn day_two_targets_check_before_they_stop_and_keep_settings_and_keys() {
    let copy = Scratch::new("make-day-two");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    // No secret in the environment: make secret's file is what serve and restart use.
    let make = host_make(&copy, port, admin).without_env("UP42_WEBHOOK_SECRET");
    let said = make.fails("serve");
    assert!(
        said.contains("no secret: make secret writes a random one"),
        "{said}"
    );
    let said = make.ok("secret");
    assert!(
        said.contains("wrote a random secret to run/secret"),
        "{said}"
    );
    let secret_file = copy.path().join("run/secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.trim().len(), 48, "{secret:?}");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(make.ok("secret").contains("kept the secret in run/secret"));
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);

    let out = make.ok("serve");
    let _stop = Stop(&make);
    assert!(
        out.contains("store: the journal in ") && out.contains(", 0 events held"),
        "{out}"
    );
    assert!(!out.contains("warning:"), "a good secret: {out}");
    let served = std::fs::read_to_string(copy.path().join("run/served")).unwrap();
    assert!(
        served.contains(&format!("SECRET_FILE='{}'", secret_file.display())),
        "{served}"
    );
    assert!(
        !served.contains(secret.trim()),
        "the secret's value is never recorded"
    );
    let sent = make.ok("send-test");
    assert!(
        sent.contains(r#""key":1"#),
        "send-test signs with the file: {sent}"
    );

    // The receiver's own reason, from make dump; pretty stats; labelled logs; no admin requests
    // in the access log.
    let said = make.fails("dump Q=?event=job");
    assert!(
        said.contains("answered 400") && said.contains("event: job is not an event"),
        "{said}"
    );
    let stats = make.ok("stats");
    assert!(stats.contains("\n  \"counters\": {"), "{stats}");
    let access = std::fs::read_to_string(copy.path().join("run/logs/access.log")).unwrap();
    assert!(access.contains("POST /receive-webhooks"), "{access}");
    assert!(
        !access.contains("/dump-webhooks") && !access.contains("/stats"),
        "{access}"
    );

    // restart in a new shell (no secret exported): the file is found; settings kept.
    let restarted = make.ok("restart");
    assert!(
        restarted.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{restarted}"
    );
    assert!(make.ok("dump").contains("number_webhooks_received\":1"));

    // A restart that could not start again stops nothing: the secret file gone.
    std::fs::rename(&secret_file, copy.path().join("secret.aside")).unwrap();
    let said = make.fails("restart");
    assert!(
        said.contains("the secret file") && said.contains("nothing was stopped"),
        "{said}"
    );
    assert!(!said.contains("stopped the host server"), "{said}");
    assert!(
        make.ok("dump").contains("number_webhooks_received\":1"),
        "still running"
    );
    std::fs::rename(copy.path().join("secret.aside"), &secret_file).unwrap();

    // Backup, more events, restore: the backup's events, the same settings, keys above all.
    let backup = copy.path().join("backup.tgz");
    let said = make.ok(&format!("backup FILE={}", backup.display()));
    assert!(said.contains("backed up run/data"), "{said}");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the archive is the operator's alone");
    let mut last = 0;
    for _ in 0..2 {
        let sent = make.ok("send-test");
        let at = sent.find(r#""key":"#).unwrap() + 6;
        last = sent[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    let said = make.ok(&format!("restore FILE={}", backup.display()));
    assert!(
        said.contains("set the journal that was there aside"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "the recorded settings: {said}"
    );
    let from = said
        .split("new events go on from key ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(from > last, "new events from {from}, after {last}");
    assert!(
        make.ok("dump").contains("number_webhooks_received\":1"),
        "the backup's one event"
    );
    let sent = make.ok("send-test");
    let at = sent.find(r#""key":"#).unwrap() + 6;
    let key: u64 = sent[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(key >= from, "key {key}, from {from}");

    // A port in use: one line naming it and what to set.
    let other = copy.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let busy = make.with_env("RUN_DIR", other.to_str().unwrap());
    let busy = Make {
        vars: vec![
            ("PORT".into(), port.to_string()),
            ("ADMIN_PORT".into(), free_port().to_string()),
            ("RUN_DIR".into(), other.to_str().unwrap().into()),
            ("SECRET_FILE".into(), secret_file.to_str().unwrap().into()),
        ],
        ..busy
    };
    let out = busy.command("serve").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("make: ***"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "port {port} (127.0.0.1:{port}) is in use by nginx (pid "
        )) && lines[0].contains("PORT= (deliveries) or ADMIN_PORT="),
        "{}",
        lines[0]
    );

    // A weak secret: started, with one warning line naming the risk.
    make.ok("stop");
    let weak = copy.path().join("weak");
    std::fs::write(&weak, "short\n").unwrap();
    let out = make
        .with_env("UP42_WEBHOOK_SECRET_FILE", weak.to_str().unwrap())
        .ok("serve");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("the webhook secret is only 5 bytes long: whoever guesses it"),
        "{}",
        warnings[0]
    );
    // make logs follows the logs live: a line written while it runs reaches it (mawk read its pipe
    // in blocks, so nothing came before the stop). Bounded at 10 s; it comes in milliseconds.
    let marker = format!("/ping?live-{}", std::process::id());
    {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut follow = make.command("logs");
        follow
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let mut child = follow.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The backlog (the last 50 lines) first: then the new line.
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("make logs prints the last lines");
        let r = crate::common::nginx::http(port, "GET", &marker, &[], b"")
            .expect("the receiver answers");
        assert_eq!(r.status, 200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = false;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(&marker) => {
                    assert!(line.starts_with("access.log: "), "{line}");
                    seen = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
        assert!(seen, "make logs showed {marker} while the receiver runs");
    }
    // make logs labels each line with its log.
    make.ok("stop");
    let logs = make.ok("logs");
    assert!(logs.lines().any(|l| l.starts_with("error.log: ")), "{logs}");
    assert!(
        logs.lines().any(|l| l.starts_with("access.log: ")),
        "{logs}"
    );
}

/// make install into a prefix of its own, then the real nginx with nothing but what it printed
/// (the modules line, the env line, the snippet inside http {}): a signed delivery is stored and
/// dumped, and the inbox page is there.
#[test]
fn make_install_then_nginx_with_the_printed_lines_stores_a_delivery() {
    use crate::common::nginx::{http, json, now, post_to, Delivery};
    let copy = Scratch::new("make-install");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    let prefix = copy.path().join("installed");
    let make = host_make(&copy, port, admin);
    let printed = make.ok(&format!(
        "install PREFIX={} LISTEN=127.0.0.1:{port} ADMIN_LISTEN=127.0.0.1:{admin}",
        prefix.display()
    ));
    // The library under its SONAME, and the name Lua looks for a link to it.
    let lib = prefix.join("lib/lua/5.1");
    assert_eq!(
        std::fs::read_link(lib.join("libup42webhooks.so")).unwrap(),
        std::path::Path::new("libup42webhooks.so.0")
    );
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(lib.join("libup42webhooks.so.0"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&dynamic.stdout).contains("Library soname: [libup42webhooks.so.0]"),
        "{}",
        String::from_utf8_lossy(&dynamic.stdout)
    );
    // The lines to add, as printed.
    let line = |marker: &str| -> String {
        printed
            .lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.split(marker).nth(1))
            .map(|rest| format!("{marker}{}", rest.split(';').next().unwrap()) + ";")
            .unwrap_or_else(|| panic!("{marker} in {printed}"))
    };
    let modules = printed
        .lines()
        .find(|l| l.contains("in the main context:"))
        .map(|l| {
            l.split("include ")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
        })
        .map(|f| format!("include {f};"))
        .unwrap_or_else(|| panic!("the modules line in {printed}"));
    let snippet = printed
        .lines()
        .find(|l| l.contains("inside http {}:"))
        .and_then(|l| l.split("inside http {}:").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let env = line("env ");
    let run = copy.path().join("nginx");
    for d in ["logs", "tmp", "data"] {
        std::fs::create_dir_all(run.join(d)).unwrap();
    }
    // The workers (nobody, when root starts nginx) write the journal and the bodies.
    for d in ["tmp", "data"] {
        std::fs::set_permissions(run.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(
        run.join("nginx.conf"),
        format!(
            "{modules}\n{env}\nenv UP42_WEBHOOK_JOURNAL_DIR;\npid logs/nginx.pid;\nerror_log logs/error.log;\n\
             events {{}}\nhttp {{\n    client_body_temp_path tmp/body;\n    {snippet}\n}}\n"
        ),
    )
    .unwrap();
    let secret = copy.path().join("secret");
    std::fs::write(&secret, "installed-secret-aW5zdGFsbA-0123\n").unwrap();
    let nginx = crate::common::nginx::nginx_binary();
    let mut c = Command::new(&nginx);
    crate::common::hermetic(&mut c)
        .arg("-p")
        .arg(format!("{}/", run.display()))
        .args(["-c", "nginx.conf", "-e", "logs/error.log"])
        .env("UP42_WEBHOOK_SECRET_FILE", &secret)
        .env("UP42_WEBHOOK_JOURNAL_DIR", run.join("data"));
    let started = c.output().unwrap();
    assert!(
        started.status.success(),
        "nginx with the snippet: {}{}",
        String::from_utf8_lossy(&started.stderr),
        std::fs::read_to_string(run.join("logs/error.log")).unwrap_or_default()
    );
    struct Quit(std::path::PathBuf, String);
    impl Drop for Quit {
        fn drop(&mut self) {
            let _ = Command::new(&self.1)
                .arg("-p")
                .arg(format!("{}/", self.0.display()))
                .args(["-c", "nginx.conf", "-s", "quit"])
                .output();
        }
    }
    let _quit = Quit(run.clone(), nginx);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while http(port, "GET", "/ping", &[], b"").is_none() {
        assert!(std::time::Instant::now() < deadline, "no /ping");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let body = br#"{"event":"job.status","liveMode":false,"messageId":"installed-1","timestamp":"TS","body":{"jobId":"j","status":"SUCCEEDED"}}"#;
    let body = String::from_utf8_lossy(body).replace("TS", &up42webhooks::format_rfc3339(now()));
    let stored = post_to(
        port,
        &Delivery::signed(body.as_bytes(), "installed-secret-aW5zdGFsbA-0123", now()),
    );
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(json(&stored)["msg"], "stored");
    let dump = http(admin, "GET", "/dump-webhooks", &[], b"").unwrap();
    assert!(dump.text().contains("installed-1"), "{}", dump.text());
    let page = http(admin, "GET", "/", &[], b"").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("up42webhooks inbox"));
}

/// The line a start begins with (after make build's): the settings it used.
fn settings_line(out: &str) -> &str {
    let line = out
        .lines()
        .find(|l| !l.starts_with("true build") && !l.starts_with("built "))
        .unwrap_or("");
    assert!(line.starts_with("settings:"), "{out}");
    line
}

/// Settings that stay: make secret serve PORT=... ADMIN_PORT=... with consumers declared, then
/// make stop, make serve and make restart with none of them given: the same ports, the same
/// consumers and the same secret file, and each start's first line says where they came from. A
/// setting given anew wins.
#[test]
fn a_start_keeps_the_settings_of_the_last_one_unless_given_anew() {
    let copy = Scratch::new("make-settings");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    let first = host_make(&copy, port, admin)
        .without_env("UP42_WEBHOOK_SECRET")
        .with_env("UP42_WEBHOOK_CONSUMERS", "forward");
    first.ok("secret");
    let out = first.ok("serve");
    let _stop = Stop(&first);
    let line = settings_line(&out);
    assert!(
        line.starts_with("settings: given now:")
            && line.contains(&format!("PORT={port}"))
            && line.contains("UP42_WEBHOOK_CONSUMERS=forward"),
        "{out}"
    );
    let consumers = |m: &Make| {
        let stats: serde_json::Value = serde_json::from_str(&m.ok("stats")).unwrap();
        stats["consumers"]
            .as_object()
            .map(|c| c.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(consumers(&first), Some(vec!["forward".to_string()]));
    // Nothing under run/ is world-writable or world-readable: the body spool and the journal are
    // the workers' own, the logs the owner's and its group's, settings and secrets the owner's.
    for (f, want) in [
        ("settings.mk", 0o600),
        ("settings.env", 0o600),
        ("served", 0o600),
        ("secret", 0o600),
        ("tmp", 0o700),
        ("tmp/body", 0o700),
        ("data", 0o700),
        ("logs/error.log", 0o640),
        ("logs/access.log", 0o640),
    ] {
        let mode = std::fs::metadata(copy.path().join("run").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, want, "run/{f}: {:o}", mode & 0o777);
    }
    first.ok("stop");

    // Nothing given: the ports, the consumers and the secret file of the last start.
    let bare = Make {
        vars: Vec::new(),
        env: Vec::new(),
        ..host_make(&copy, port, admin)
    };
    let out = bare.ok("serve");
    let line = settings_line(&out);
    assert!(
        line.starts_with("settings: from the last start (run/settings.*):")
            && line.contains(&format!("PORT={port}"))
            && line.contains(&format!("ADMIN_PORT={admin}"))
            && line.contains("UP42_WEBHOOK_CONSUMERS=forward")
            && line.contains("UP42_WEBHOOK_SECRET_FILE=")
            && line.ends_with("/run/secret)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{out}"
    );
    assert_eq!(consumers(&bare), Some(vec!["forward".to_string()]));
    let out = bare.ok("restart");
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{out}"
    );
    assert_eq!(consumers(&bare), Some(vec!["forward".to_string()]));
    bare.ok("stop");

    // Given anew: that one wins, the rest stays.
    let other = free_port();
    let anew = Make {
        vars: vec![("PORT".into(), other.to_string())],
        ..bare
    };
    let out = anew.ok("serve");
    let line = settings_line(&out);
    assert!(
        line.contains(&format!("given now: PORT={other}"))
            && line.contains(&format!("ADMIN_PORT={admin}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{other}/receive-webhooks"
        )),
        "{out}"
    );
    anew.ok("stop");
}

/// make serve on a Redis that runs without its append-only file says, on its store line, that
/// every delivery will be refused and how to turn persistence on.
#[test]
fn make_serve_on_a_redis_without_persistence_says_so_at_start() {
    let redis = crate::common::redis::Redis::start_with("no-aof", &["--appendonly", "no"]);
    let copy = Scratch::new("make-no-aof");
    project_copy(copy.path());
    let make = host_make(&copy, free_port(), free_port()).with_env(
        "UP42_WEBHOOK_STORE",
        &format!("redis://127.0.0.1:{}/0", redis.port),
    );
    let out = make.ok("serve");
    let _stop = Stop(&make);
    let store = out
        .lines()
        .find(|l| l.starts_with("store: Redis at"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        store.contains("appendonly no")
            && store.contains("503 store_not_durable")
            && store.contains("CONFIG SET appendonly yes"),
        "{store}"
    );
}

/// make forward runs examples/forward.toml as shipped beside make serve: its programs are found
/// from its own directory, its state is in run/forward (0700, files 0600), and a fulfilled order
/// reaches its download route, which says at start and at each attempt that UP42's credentials
/// are not set (they are not, here) and keeps the event for a later attempt.
#[test]
fn make_forward_runs_the_example_as_shipped() {
    use std::os::unix::process::CommandExt;
    let copy = Scratch::new("make-forward-example");
    project_copy(copy.path());
    let make = Make {
        release: crate::common::make::release_dir_with_up42wh(),
        ..host_make(&copy, free_port(), free_port())
    }
    .with_env("UP42_WEBHOOK_CONSUMERS", "forward");
    make.ok("serve");
    let _stop = Stop(&make);
    let log = copy.path().join("forward.log");
    let mut forward = make
        .with_env("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/T0/B0/x")
        .with_env("FORWARD_WHSEC", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .command("forward");
    forward
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(copy.path().join("forward.err")).unwrap())
        .process_group(0);
    let mut child = forward.spawn().unwrap();
    let t = crate::common::nginx::now();
    let body = format!(
        r#"{{"event":"order.status","liveMode":true,"messageId":"fx-1","timestamp":"{}","body":{{"orderId":"0f0c8d4e-9a1b-4c2d-8e3f-0a1b2c3d4e5f","status":"FULFILLED","statusIsFinal":true}}}}"#,
        up42webhooks::format_rfc3339(t)
    );
    let d = crate::common::nginx::Delivery::signed(body.as_bytes(), SECRET, t);
    assert_eq!(
        crate::common::nginx::post_to(make_port(&make), &d).status,
        200
    );
    let said = |f: &str| std::fs::read_to_string(copy.path().join(f)).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let attempted = |log: String| {
        log.lines().any(|l| {
            l.contains("route download: event ")
                && l.contains(" attempt 1 failed (no UP42 credentials: set UP42_USERNAME")
        })
    };
    while !attempted(said("forward.err")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the download route was tried within 60 s:\n{}\n{}",
            said("forward.log"),
            said("forward.err")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(said("forward.log").contains("make forward: examples/forward.toml"));
    assert!(
        said("forward.err").contains("warn up42-download: no UP42 credentials"),
        "{}",
        said("forward.err")
    );
    for (f, want) in [("run/forward", 0o700), ("run/forward/state.log", 0o600)] {
        let mode = std::fs::metadata(copy.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, want, "{f}: {mode:o}");
    }
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// The public port a host make was given.
fn make_port(make: &Make) -> u16 {
    make.vars
        .iter()
        .find(|(k, _)| k == "PORT")
        .and_then(|(_, v)| v.parse().ok())
        .expect("PORT")
}
