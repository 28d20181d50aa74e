//! The Debian image on a real Docker engine: `make run FLAVOR=debian` and the other make targets
//! against the published 127.0.0.1 ports, then the same image built for linux/arm64 and
//! linux/arm/v7 and started under qemu emulation; and the Debian packages installed in the same
//! bootstrapped roots (tests/operations/packages.rs). No registry is reached: each base is a Debian
//! root made by debootstrap and imported (docker/bootstrap-base.sh, kept in the engine and under
//! target/docker/), and the library comes from this checkout's own builds (LIB=host: a release
//! build here, `make cross` for the boards).
//!
//! The engine is started when it is not running (and stopped again at the end); a machine where it
//! cannot start skips these tests with one line saying why, unless UP42WH_REQUIRE_DOCKER=1 (CI)
//! makes that a failure. make runs in a copy of the project's files, so that `make clean` and the
//! compose project (named after the copy) touch nothing of the checkout's or a user's.

use crate::common::make::{project_copy, release_dir_with_up42wh, run, Make};
use crate::common::nginx::{free_port, http, json, now, post_to, Delivery};
use crate::common::Scratch;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use up42webhooks::format_rfc3339;

/// A started dockerd, stopped when dropped; `None` inside when the engine was already running.
struct Engine(Option<Child>);

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // SIGTERM: dockerd stops its containers and its containerd, then exits.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_engine() -> Result<Engine, String> {
    if Command::new("docker").arg("--version").output().is_err() {
        return Err("no docker command (make docker-deps installs docker.io)".into());
    }
    if docker_answers() {
        return Ok(Engine(None));
    }
    if Command::new("dockerd").arg("--version").output().is_err() {
        return Err("no dockerd (make docker-deps installs docker.io)".into());
    }
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        return Err("the engine is not running and only root can start dockerd".into());
    }
    let log_path = crate::common::root().join("target/docker/dockerd.log");
    std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("dockerd")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("dockerd: {e}"))?;
    let mut engine = Engine(Some(child));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(engine);
        }
        if let Some(Ok(Some(status))) = engine.0.as_mut().map(|c| c.try_wait()) {
            engine.0 = None;
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = text.lines().last().unwrap_or("").to_string();
            return Err(format!("dockerd exited ({status}): {last}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "dockerd did not answer within 60 s (its log: {})",
        log_path.display()
    ))
}

pub(crate) fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// A job event with a fresh id and timestamp.
pub(crate) fn job(id: &str, status: &str) -> Vec<u8> {
    format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"{status}","tasks":[]}}}}"#,
        format_rfc3339(now())
    )
    .into_bytes()
}

/// The ids in the dump, waiting (bounded) for the admin listener to answer.
pub(crate) fn dumped_ids(admin: u16) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = http(admin, "GET", "/dump-webhooks", &[], b"") {
            if r.status == 200 {
                return r
                    .text()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["messageId"].as_str().map(str::to_string))
                    .collect();
            }
        }
        assert!(Instant::now() < deadline, "no dump on port {admin}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn wait_for_ping(port: u16, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(r) = http(port, "GET", "/ping", &[], b"") {
            if r.status == 200 {
                assert_eq!(r.text().trim(), "PONG");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no PONG on port {port} in {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn inspect(container: &str, format: &str) -> String {
    let out = run(
        &mut docker(&["inspect", "-f", format, container]),
        "docker inspect",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits (bounded) for Docker's health check to call the container healthy; the time it took.
fn wait_healthy(container: &str, secs: u64) -> Duration {
    let start = Instant::now();
    loop {
        let status = inspect(container, "{{.State.Health.Status}}");
        if status == "healthy" {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs) && status != "unhealthy",
            "{container} is {status} after {:?}: {}",
            start.elapsed(),
            inspect(container, "{{json .State.Health}}")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `make logs` follows the logs: read what it prints until `want` shows (at most 20 s), then end it.
fn logs_show(make: &Make, want: &str) -> String {
    let mut child = make
        .command("logs")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !seen.contains(want) {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

const SECRET: &str = "containers-secret-T3N0cmFjb2Q";

/// make for the Debian image of `arch` in `copy`: this checkout's library (LIB=host), the
/// bootstrapped base, and a test tag of its own (a user's up42webhooks:debian-* stay as they are).
fn debian_make(copy: &Scratch, release: &Path, arch: &str) -> Make {
    Make {
        dir: copy.path().to_path_buf(),
        release: release.to_path_buf(),
        vars: [
            ("FLAVOR", "debian".to_string()),
            ("LIB", "host".to_string()),
            ("ARCH", arch.to_string()),
            ("BASE_IMAGE", format!("up42webhooks-base:bookworm-{arch}")),
            ("DEBIAN_IMAGE", format!("up42webhooks-test:debian-{arch}")),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec(),
        env: vec![],
    }
}

/// The amd64 image through make: run, ping, health, store, refuse, logs, reload, restart,
/// configtest, list, stop (graceful), a start with the secret as a Docker secret file, clean.
fn debian_through_make(release: &Path) {
    let copy = Scratch::new("make-amd64");
    project_copy(copy.path());
    let (port, admin) = (free_port(), free_port());
    // Named after the copy's directory: this run's own compose project, network and volume.
    let project: String = copy
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_lowercase();
    let mut make = debian_make(&copy, release, "amd64");
    make.vars.retain(|(k, _)| k != "ARCH"); // this machine's own
    make.vars.extend([
        ("PORT".to_string(), port.to_string()),
        ("ADMIN_PORT".to_string(), admin.to_string()),
    ]);
    make.env = vec![("UP42_WEBHOOK_SECRET".into(), SECRET.into())];
    let container = format!("{project}_up42webhooks_1");
    let cleanup = Cleanup(project.clone());

    // A built image first, so that the time below is make run's from a built image to healthy.
    make.ok("image");
    let started = Instant::now();
    let out = make.ok("run");
    assert!(
        out.contains(&format!(
            "receiving on http://127.0.0.1:{port}/receive-webhooks"
        )),
        "{out}"
    );
    let healthy = started.elapsed() + wait_healthy(&container, 90);
    eprintln!("make run FLAVOR=debian: healthy {healthy:.1?} after the command started");
    // Published on the host's loopback only, both ports.
    let ports = inspect(&container, "{{json .HostConfig.PortBindings}}");
    assert!(
        ports.contains(&format!(
            r#"[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]"#
        )) && ports.contains(&format!(
            r#"[{{"HostIp":"127.0.0.1","HostPort":"{admin}"}}]"#
        )),
        "{ports}"
    );
    wait_for_ping(port, 10);
    assert_eq!(
        inspect(&container, "{{.Config.Image}}"),
        "up42webhooks-test:debian-amd64"
    );

    // A signed delivery is stored and dumped; a tampered one is refused and stores nothing.
    let body = job("docker-1", "SUCCEEDED");
    let stored = post_to(port, &Delivery::signed(&body, SECRET, now()));
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(json(&stored)["msg"], "stored");
    let mut tampered = Delivery::signed(&job("docker-2", "FAILED"), SECRET, now());
    tampered.body = job("docker-2", "SUCCEEDED");
    let refused = post_to(port, &tampered);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(dumped_ids(admin), ["docker-1"]);
    // make send-test signs with the same secret and reaches the same ports.
    let sent = make.ok("send-test");
    assert!(sent.contains(r#""msg":"stored""#), "{sent}");
    assert_eq!(dumped_ids(admin).len(), 2);

    // make logs shows the refusal, from the container's stderr.
    let logs = logs_show(&make, "rejected delivery");
    assert!(
        logs.contains("rejected delivery: digest_mismatch"),
        "{logs}"
    );

    // reload (HUP) and restart keep the events: the first in memory, the second from the
    // journal volume.
    assert!(make.ok("reload").contains("reloaded the container"));
    wait_for_ping(port, 30);
    assert_eq!(dumped_ids(admin).len(), 2);
    make.ok("restart");
    wait_for_ping(port, 60);
    let ids = dumped_ids(admin);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], "docker-1");

    let tested = make.ok("configtest");
    assert!(tested.contains("test is successful"), "{tested}");
    let listed = make.ok("list");
    assert!(
        listed.contains(&container) && listed.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{listed}"
    );

    // SIGQUIT: nginx finishes what it was doing and exits 0.
    assert!(make.ok("stop").contains("stopped the container"));
    assert_eq!(inspect(&container, "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&container, "{{.State.ExitCode}}"), "0");

    // The secret as a Docker secret file instead (nothing in the environment), and the image as
    // it is (BUILD=0, as after a docker load): the journal's events are there again, and the
    // file's secret signs.
    let secret_file = copy.path().join("hook-secret");
    std::fs::write(&secret_file, "file-secret-Zm9vYmFy\n").unwrap();
    let from_file = make.without_env("UP42_WEBHOOK_SECRET").with_env(
        "UP42_WEBHOOK_SECRET_HOST_FILE",
        secret_file.to_str().unwrap(),
    );
    let rerun = from_file.ok("run BUILD=0");
    assert!(!rerun.contains("docker build"), "{rerun}");
    wait_for_ping(port, 30);
    assert_eq!(dumped_ids(admin).len(), 2);
    let env = inspect(&container, "{{json .Config.Env}}");
    assert!(
        env.contains("UP42_WEBHOOK_SECRET_FILE=/run/secrets/up42_webhook_secret")
            && !env.contains(SECRET)
            && !env.contains("file-secret"),
        "{env}"
    );
    let by_file = post_to(
        port,
        &Delivery::signed(&job("docker-3", "RUNNING"), "file-secret-Zm9vYmFy", now()),
    );
    assert_eq!(by_file.status, 200, "{}", by_file.text());
    let by_env = post_to(
        port,
        &Delivery::signed(&job("docker-4", "RUNNING"), SECRET, now()),
    );
    assert_eq!(by_env.status, 401, "the environment's secret is not in use");

    forward_beside(&from_file, &copy, &project, port, admin);

    // make clean removes the container (and the copy's build output); the journal volume stays.
    let cleaned = from_file.ok("clean");
    assert!(
        !docker(&["inspect", &container])
            .output()
            .unwrap()
            .status
            .success(),
        "make clean removed {container}: {cleaned}"
    );
    assert!(
        !docker(&["inspect", &format!("{project}_forward_1")])
            .output()
            .unwrap()
            .status
            .success(),
        "make clean removed the forwarder's container too: {cleaned}"
    );
    let volume = format!("{project}_journal");
    assert!(docker(&["volume", "inspect", &volume])
        .output()
        .unwrap()
        .status
        .success());
    drop(cleanup);
}

/// make run FORWARD=1: the forwarder in its own container of the same image, as nobody, reading
/// the receiver's admin listener with the admin token, its configuration's directory mounted
/// read-only and its state in a volume. The receiver declares its consumer (a consumer declared
/// later starts at the low mark: the events stored before reach the route too). make stop stops
/// both, the forwarder on SIGTERM with exit 0.
fn forward_beside(make: &Make, copy: &Scratch, project: &str, port: u16, admin: u16) {
    let conf_dir = copy.path().join("forward-conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = conf_dir.join("forward.toml");
    // The program writes where the test can read it: the forwarder's own volume.
    std::fs::write(
        &conf,
        r#"metrics = "127.0.0.1:9890"
[receiver]
url = "http://127.0.0.1:9889"
consumer = "forward"
[[route]]
name = "to-a-file"
sink = "exec"
command = ["/bin/sh", "-c", "cat >> /var/lib/up42wh/got.jsonl && echo >> /var/lib/up42wh/got.jsonl"]
"#,
    )
    .unwrap();
    let forwarding = make.with_env(
        "UP42_WEBHOOK_ADMIN_TOKEN",
        "containers-admin-token-0123456789",
    );
    let refused = make.fails(&format!(
        "run BUILD=0 FORWARD=1 FORWARD_CONFIG={}",
        conf.display()
    ));
    assert!(
        refused.contains("set UP42_WEBHOOK_ADMIN_TOKEN"),
        "{refused}"
    );
    let out = forwarding.ok(&format!(
        "run BUILD=0 FORWARD=1 FORWARD_CONFIG={}",
        conf.display()
    ));
    assert!(
        out.contains(&format!(
            "forwarding with {} as a consumer of forward",
            conf.display()
        )),
        "{out}"
    );
    wait_for_ping(port, 30);
    let forward = format!("{project}_forward_1");
    assert_eq!(inspect(&forward, "{{.Config.User}}"), "65534:65534");
    let fresh = post_to(
        port,
        &Delivery::signed(&job("docker-5", "FAILED"), "file-secret-Zm9vYmFy", now()),
    );
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let got = || {
        let out = docker(&["exec", &forward, "cat", "/var/lib/up42wh/got.jsonl"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(got().contains("docker-5") && got().contains("docker-1")) {
        assert!(
            Instant::now() < deadline,
            "the forwarder's program has not had docker-1 and docker-5 in 60 s: {:?}; logs: {}",
            got(),
            String::from_utf8_lossy(&docker(&["logs", &forward]).output().unwrap().stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Each stored event once: docker-1, send-test's, docker-3 and docker-5.
    let lines: Vec<serde_json::Value> = got()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let status = run(
        &mut docker(&["exec", &forward, "up42wh", "forward", "status"]),
        "up42wh forward status",
    );
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("consumer forward"), "{status}");
    assert!(status.contains("to-a-file"), "{status}");
    // The receiver declares the consumer; the forwarder's acknowledgements bring its lag to 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = json(&http(admin, "GET", "/stats", &[], b"").unwrap());
        if stats["consumers"]["forward"]["lag"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(250));
    }

    assert!(forwarding.ok("stop").contains("stopped the container"));
    assert_eq!(inspect(&forward, "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&forward, "{{.State.ExitCode}}"), "0");
}

/// Removes what a compose project left (containers, network, journal volume), also when a step
/// above failed.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=com.docker.compose.project={}", self.0);
        if let Ok(out) = docker(&["ps", "-aq", "--filter", &filter]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]).output();
            }
        }
        let _ = docker(&["network", "rm", &format!("{}_default", self.0)]).output();
        let _ = docker(&["volume", "rm", &format!("{}_journal", self.0)]).output();
    }
}

/// A board's image (arm64 or armhf), built with make from its bootstrapped root and make cross's
/// library, started under qemu: it answers /ping, stores a signed delivery, refuses a tampered
/// one, turns healthy and stops gracefully.
fn debian_on_a_board(release: &Path, arch: &str, machine: &str) {
    let triple = match arch {
        "arm64" => "aarch64-unknown-linux-gnu",
        _ => "armv7-unknown-linux-gnueabihf",
    };
    let lib = crate::common::dist()
        .join(triple)
        .join("libup42webhooks.so");
    for built in [&lib, &lib.with_file_name("up42wh")] {
        assert!(
            built.exists(),
            "{} is make cross's output (make test runs it first)",
            built.display()
        );
    }
    let copy = Scratch::new(&format!("make-{arch}"));
    project_copy(copy.path());
    let image = format!("up42webhooks-test:debian-{arch}");
    let make = debian_make(&copy, release, arch);
    make.ok("image");
    let platform = inspect(
        &image,
        "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}",
    );
    assert_eq!(
        platform,
        if arch == "arm64" {
            "linux/arm64"
        } else {
            "linux/arm/v7"
        }
    );

    let (port, admin) = (free_port(), free_port());
    let name = format!("up42wh-test-{arch}-{}", std::process::id());
    let _gone = RemoveContainer(name.clone());
    run(
        docker(&["run", "-d", "--name", &name, "-e"])
            .arg(format!("UP42_WEBHOOK_SECRET={SECRET}"))
            .arg("-p")
            .arg(format!("127.0.0.1:{port}:80"))
            .arg("-p")
            .arg(format!("127.0.0.1:{admin}:9889"))
            .arg(&image),
        "docker run",
    );
    wait_for_ping(port, 120);
    let uname = run(&mut docker(&["exec", &name, "uname", "-m"]), "uname");
    assert_eq!(String::from_utf8_lossy(&uname.stdout).trim(), machine);
    // make cross's up42wh runs on the board too (the compose service "forward" uses this image).
    let version = run(
        &mut docker(&["exec", &name, "up42wh", "--version"]),
        "up42wh --version",
    );
    let manifest =
        std::fs::read_to_string(crate::common::root().join("up42wh/Cargo.toml")).unwrap();
    let want = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("up42wh {want}")
    );
    let body = job(&format!("{arch}-1"), "SUCCEEDED");
    let stored = post_to(port, &Delivery::signed(&body, SECRET, now()));
    assert_eq!(stored.status, 200, "{}", stored.text());
    let mut tampered = Delivery::signed(&job(&format!("{arch}-2"), "FAILED"), SECRET, now());
    tampered.body = job(&format!("{arch}-2"), "SUCCEEDED");
    assert_eq!(post_to(port, &tampered).status, 401);
    assert_eq!(dumped_ids(admin), [format!("{arch}-1")]);
    let healthy = wait_healthy(&name, 120);
    run(&mut docker(&["stop", "-t", "30", &name]), "docker stop");
    assert_eq!(inspect(&name, "{{.State.ExitCode}}"), "0");
    eprintln!("{platform} under qemu ({machine}): stored one, refused one, healthy after {healthy:.1?} more");
}

pub(crate) struct RemoveContainer(pub(crate) String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.0]).output();
    }
}

fn bootstrap(arch: &str) {
    run(
        Command::new(crate::common::root().join("docker/bootstrap-base.sh"))
            .args([arch, &format!("up42webhooks-base:bookworm-{arch}")]),
        &format!("bootstrapping {arch}"),
    );
}

#[test]
fn the_debian_image_runs_through_make_and_on_arm_under_qemu() {
    let engine = match start_engine() {
        Ok(e) => e,
        Err(why) => {
            assert!(
                std::env::var("UP42WH_REQUIRE_DOCKER").as_deref() != Ok("1"),
                "UP42WH_REQUIRE_DOCKER=1 and no Docker engine: {why}"
            );
            eprintln!("SKIPPED: the container tests: {why}");
            println!("SKIPPED: the container tests: {why}");
            return;
        }
    };
    // The boards need qemu's binfmt handlers (make docker-deps registers them).
    for handler in ["qemu-aarch64", "qemu-arm"] {
        let path = Path::new("/proc/sys/fs/binfmt_misc").join(handler);
        let state = std::fs::read_to_string(&path).unwrap_or_default();
        let flags = state
            .lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or("");
        assert!(
            state.starts_with("enabled") && flags.contains('F'),
            "{} is registered, with the F flag, so that containers find qemu (make docker-deps): {state}",
            path.display()
        );
    }
    // The boards' roots take a couple of minutes each under qemu: they bootstrap while the
    // amd64 image is tested, one after the other (two cores).
    let boards = std::thread::spawn(|| {
        bootstrap("arm64");
        bootstrap("armhf");
    });
    let release = release_dir_with_up42wh();
    bootstrap("amd64");
    let amd64 = std::panic::catch_unwind(|| {
        debian_through_make(&release);
        crate::packages::the_debian_packages_build_and_read_right(&release);
        crate::packages::the_debian_package_installs_runs_upgrades_and_purges("amd64");
    });
    let bootstrapped = boards.join();
    if let Err(e) = amd64 {
        std::panic::resume_unwind(e);
    }
    if let Err(e) = bootstrapped {
        std::panic::resume_unwind(e);
    }
    let arm64 = {
        let release = release.clone();
        std::thread::spawn(move || {
            debian_on_a_board(&release, "arm64", "aarch64");
            crate::packages::the_debian_package_installs_runs_upgrades_and_purges("arm64");
        })
    };
    let armhf = std::panic::catch_unwind(|| {
        debian_on_a_board(&release, "armhf", "armv7l");
        crate::packages::the_debian_package_installs_runs_upgrades_and_purges("armhf");
    });
    let arm64 = arm64.join();
    for r in [arm64, armhf] {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
    let _ = std::fs::remove_dir_all(crate::packages::debs_dir());
    drop(engine);
}
