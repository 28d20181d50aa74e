//! The Debian packages (packaging/deb/build.sh, `make deb`): the amd64 one installed with apt-get
//! in a clean Debian root (the bootstrapped base the container tests use; its nginx and Lua
//! packages are the dependencies, so nothing is fetched), the service's command lines taken from
//! its unit and run as its user (systemd does not run in a container), a delivery stored, a stop
//! and a start, an upgrade that keeps the secret, the edited settings and the events, a purge that
//! removes them. lintian reports only the tags build.sh explains; the units pass
//! `systemd-analyze verify`; the arm64 and armhf packages are read:
//! their architecture, their files, the machine of their library and program.

use std::path::Path;
use std::process::Command;

use crate::common::make::{run, text};
use crate::common::nginx::{free_port, now, post_to, Delivery};
use crate::containers::{docker, dumped_ids, job, wait_for_ping, RemoveContainer};

const SECRET: &str = "package-secret-cGFja2FnZQ-0123";

/// The crate's version, as the package's: -1, and -2 for the upgrade.
fn v1() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

fn v2() -> String {
    format!("{}-2", env!("CARGO_PKG_VERSION"))
}

/// build.sh ARCH DIR OUT VERSION: the package's path.
fn build(arch: &str, dir: &Path, out: &Path, version: &str) -> std::path::PathBuf {
    let root = crate::common::root();
    let built = run(
        Command::new(root.join("packaging/deb/build.sh"))
            .args([arch])
            .arg(dir)
            .arg(out)
            .arg(version),
        "packaging/deb/build.sh",
    );
    let path = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert!(
        path.ends_with(&format!("up42webhooks_{version}_{arch}.deb")),
        "{path}"
    );
    path.into()
}

/// A shell command in the container, as root; its output, and whether it succeeded.
fn sh(container: &str, script: &str) -> (bool, String) {
    let out = docker(&["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

fn sh_ok(container: &str, script: &str) -> String {
    let (ok, out) = sh(container, script);
    assert!(ok, "{script}: {out}");
    out
}

/// The unit's `KEY=` lines, as written.
fn unit_lines(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// The forwarder with the shipped example: copied into place, the receiver (restarted) declares
/// its consumer, its programs are found, a missing secret is one line and exit 2 (which its unit
/// does not restart), and with its secrets it runs and delivers the stored event by email (an exec
/// route; `SENDMAIL` a stand-in).
fn forwarder_as_shipped(name: &str, unit: &str, admin: u16) {
    sh_ok(
        name,
        "cp /usr/share/up42webhooks/examples/forward.toml /etc/up42webhooks/forward.toml",
    );
    stop(name, unit);
    sh_ok(name, &start_script(unit));
    wait_for_ping(admin, 30);
    let stats = crate::common::nginx::json(
        &crate::common::nginx::http(admin, "GET", "/stats", &[], b"").expect("the stats"),
    );
    assert!(stats["consumers"]["forward"].is_object(), "{stats}");

    let forward_unit = sh_ok(name, "cat /lib/systemd/system/up42webhooks-forward.service");
    assert_eq!(unit_lines(&forward_unit, "RestartPreventExitStatus"), ["2"]);
    let exec = unit_lines(&forward_unit, "ExecStart").pop().unwrap();
    let env = unit_lines(&forward_unit, "Environment").join(" ");
    let user = unit_lines(&forward_unit, "User").pop().unwrap();
    let run = |secrets: &str, args: &str| {
        format!("cd / && runuser -u {user} -- env {env} {secrets} {exec} {args}")
    };
    sh_ok(name, &run("", "check"));
    let (_, said) = sh(name, &format!("{} 2>&1; echo \"exit $?\"", run("", "")));
    assert!(
        said.contains("SLACK_WEBHOOK_URL is not set") && said.trim_end().ends_with("exit 2"),
        "{said}"
    );
    let secrets = "SLACK_WEBHOOK_URL=http://127.0.0.1:9/hook \
                   FORWARD_WHSEC=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw SENDMAIL=/bin/true";
    sh_ok(
        name,
        &format!(
            "{} > /tmp/forward.log 2>&1 & echo $! > /tmp/forward.pid",
            run(secrets, "")
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, status) = sh(name, &run("", "status"));
        if status.contains("route email (exec): 1 delivered") {
            break;
        }
        let (_, log) = sh(name, "cat /tmp/forward.log");
        assert!(
            std::time::Instant::now() < deadline,
            "status: {status}\nlog: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    sh_ok(name, "kill -TERM $(cat /tmp/forward.pid)");
}

/// What systemd would run to start the service: its settings, then each ExecStartPre and the
/// ExecStart, as the unit's user.
fn start_script(unit: &str) -> String {
    let user = unit_lines(unit, "User").pop().expect("User=");
    let env = unit_lines(unit, "EnvironmentFile")
        .pop()
        .expect("EnvironmentFile=");
    let mut script = format!("set -e; set -a; . {env}; set +a; ");
    for cmd in unit_lines(unit, "ExecStartPre")
        .into_iter()
        .chain(unit_lines(unit, "ExecStart"))
    {
        script.push_str(&format!("runuser -u {user} -- {cmd}; "));
    }
    script
}

/// systemd's stop: ExecStop as the unit's user, then waits for the PIDFile's process to end.
fn stop(container: &str, unit: &str) {
    let user = unit_lines(unit, "User").pop().expect("User=");
    let pid_file = unit_lines(unit, "PIDFile").pop().expect("PIDFile=");
    let stop = unit_lines(unit, "ExecStop").pop().expect("ExecStop=");
    sh_ok(
        container,
        &format!(
            "pid=$(cat {pid_file}); runuser -u {user} -- {stop}; \
             for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
        ),
    );
}

/// Where the packages are built: this run's own directory.
pub(crate) fn debs_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("up42wh-debs-{}", std::process::id()))
}

/// Builds every architecture's package twice (two versions, for the upgrade) and reads them:
/// lintian, the units, the boards' architecture and machine.
pub(crate) fn the_debian_packages_build_and_read_right(release: &Path) {
    let root = crate::common::root();
    let out = debs_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let first = build("amd64", release, &out, &v1());
    build("amd64", release, &out, &v2());

    // make deb: the three packages, from this machine's release build and make cross's.
    let copy = crate::common::Scratch::new("make-deb");
    crate::common::make::project_copy(copy.path());
    let make = crate::common::make::Make {
        dir: copy.path().to_path_buf(),
        release: release.to_path_buf(),
        vars: vec![],
        env: vec![],
    };
    let made = make.ok("deb");
    for arch in ["amd64", "arm64", "armhf"] {
        let deb = format!("dist/up42webhooks_{}_{arch}.deb", v1());
        assert!(made.contains(&deb), "{made}");
        assert!(copy.path().join(&deb).exists(), "{deb}");
    }

    // lintian: only the two tags build.sh explains.
    let linted = Command::new("lintian").arg(&first).output().unwrap();
    let tags: Vec<String> = text(&linted)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .filter(|l| !l.contains("initial-upload-closes-no-bugs") && !l.contains("no-manual-page"))
        .map(str::to_string)
        .collect();
    assert!(tags.is_empty(), "lintian: {tags:?}");

    // No second nginx by default: the Redis client (which brings nginx-extras) is only suggested.
    // A mistake in forward.toml is not restarted every 5 s; the env file says what a reload does.
    let control = text(&run(
        Command::new("dpkg-deb").arg("--info").arg(&first),
        "dpkg-deb --info",
    ));
    assert!(!control.contains("Recommends:"), "{control}");
    assert!(
        control.contains("Suggests: lua-nginx-redis, lua-nginx-redis-connector"),
        "{control}"
    );
    let unit =
        std::fs::read_to_string(root.join("packaging/deb/up42webhooks-forward.service")).unwrap();
    assert_eq!(unit_lines(&unit, "RestartPreventExitStatus"), ["2"]);
    let env = std::fs::read_to_string(root.join("packaging/deb/up42webhooks.env")).unwrap();
    assert!(
        env.contains("A reload")
            && env.contains("every UP42_WEBHOOK_* setting takes effect at a restart"),
        "{env}"
    );

    // The boards' packages, read: architecture, files, and the machine their code is for.
    for (arch, triple, machine) in [
        ("arm64", "aarch64-unknown-linux-gnu", "AArch64"),
        ("armhf", "armv7-unknown-linux-gnueabihf", "ARM"),
    ] {
        let deb = build(arch, &crate::common::dist().join(triple), &out, &v1());
        build(arch, &crate::common::dist().join(triple), &out, &v2());
        let info = text(&run(
            Command::new("dpkg-deb").arg("--info").arg(&deb),
            "dpkg-deb --info",
        ));
        assert!(info.contains(&format!("Architecture: {arch}")), "{info}");
        let x = out.join(format!("x-{arch}"));
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
            "dpkg-deb -x",
        );
        let lib_dir = if arch == "arm64" {
            "aarch64-linux-gnu"
        } else {
            "arm-linux-gnueabihf"
        };
        for f in [
            format!("usr/lib/{lib_dir}/lua/5.1/libup42webhooks.so"),
            "usr/bin/up42wh".to_string(),
        ] {
            let header = text(&run(
                Command::new("readelf").arg("-h").arg(x.join(&f)),
                "readelf",
            ));
            assert!(
                header
                    .lines()
                    .any(|l| l.trim_start().starts_with("Machine:") && l.contains(machine)),
                "{f} for {machine}: {header}"
            );
        }
        // The library under its SONAME, the name Lua looks for a link to it.
        let lib = x.join(format!("usr/lib/{lib_dir}/lua/5.1"));
        assert_eq!(
            std::fs::read_link(lib.join("libup42webhooks.so")).unwrap(),
            std::path::Path::new("libup42webhooks.so.0")
        );
        let dynamic = text(&run(
            Command::new("readelf")
                .arg("-d")
                .arg(lib.join("libup42webhooks.so.0")),
            "readelf -d",
        ));
        assert!(
            dynamic.contains("Library soname: [libup42webhooks.so.0]"),
            "{dynamic}"
        );
    }

    // The units: systemd's own check, with the package's commands where this host has them.
    let units = out.join("units");
    std::fs::create_dir_all(&units).unwrap();
    for script in ["prestart", "start"] {
        std::fs::copy(root.join("packaging/deb").join(script), units.join(script)).unwrap();
    }
    let local = |p: &str| units.join(p).display().to_string();
    for (name, from, to) in [
        (
            "up42webhooks.service",
            "/usr/share/up42webhooks/prestart",
            local("prestart"),
        ),
        (
            "up42webhooks.service",
            "/usr/share/up42webhooks/start",
            local("start"),
        ),
        (
            "up42webhooks-forward.service",
            "/usr/bin/up42wh",
            release.join("up42wh").display().to_string(),
        ),
        (
            "up42webhooks-reconcile.service",
            "/usr/bin/up42wh",
            release.join("up42wh").display().to_string(),
        ),
        ("up42webhooks-reconcile.timer", "", String::new()),
    ] {
        let path = units.join(name);
        let unit = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            std::fs::read_to_string(root.join("packaging/deb").join(name)).unwrap()
        });
        std::fs::write(&path, unit.replace(from, &to)).unwrap();
    }
    let verified = Command::new("systemd-analyze")
        .args([
            "verify",
            "up42webhooks.service",
            "up42webhooks-forward.service",
            "up42webhooks-reconcile.service",
            "up42webhooks-reconcile.timer",
        ])
        .current_dir(&units)
        .output()
        .unwrap();
    assert!(
        verified.status.success() && text(&verified).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&verified)
    );
}

/// ARCH's package (built by the function above) in a clean Debian root of that architecture
/// (under qemu for a board): installed, refused without a secret, a delivery stored, stopped and
/// started, upgraded keeping secret, settings and events, purged.
pub(crate) fn the_debian_package_installs_runs_upgrades_and_purges(arch: &str) {
    let out = debs_dir();
    let first = out.join(format!("up42webhooks_{}_{arch}.deb", v1()));
    let second = out.join(format!("up42webhooks_{}_{arch}.deb", v2()));
    let began = std::time::Instant::now();
    let (port, admin) = (free_port(), free_port());
    let name = format!("up42wh-deb-{arch}-{}", std::process::id());
    let _gone = RemoveContainer(name.clone());
    run(
        // --init: the stopped nginx is reaped (sleep, as process 1, would leave it a zombie).
        docker(&["run", "-d", "--init", "--name", &name, "-v"])
            .arg(format!("{}:/debs:ro", out.display()))
            .arg("-p")
            .arg(format!("127.0.0.1:{port}:9888"))
            .arg("-p")
            .arg(format!("127.0.0.1:{admin}:9889"))
            .arg(format!("up42webhooks-base:bookworm-{arch}"))
            .args(["sleep", "infinity"]),
        "docker run",
    );
    let file = |p: &Path| format!("/debs/{}", p.file_name().unwrap().to_string_lossy());
    sh_ok(
        &name,
        &format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            file(&first)
        ),
    );
    let triplet = match arch {
        "arm64" => "aarch64-linux-gnu",
        "armhf" => "arm-linux-gnueabihf",
        _ => "x86_64-linux-gnu",
    };
    let listed = sh_ok(
        &name,
        &format!("ls /usr/lib/{triplet}/lua/5.1/libup42webhooks.so /usr/share/lua/5.1/up42webhooks.lua \
         /usr/share/lua/5.1/up42webhooks/native.lua /usr/bin/up42wh /lib/systemd/system/up42webhooks.service \
         /lib/systemd/system/up42webhooks-forward.service /etc/logrotate.d/up42webhooks \
         /usr/share/up42webhooks/html/inbox/index.html && stat -c '%a %U %s' /etc/up42webhooks/secret && \
         stat -c '%U' /var/lib/up42webhooks/data /var/log/up42webhooks && up42wh --version"),
    );
    assert!(listed.contains("600 up42webhooks 0"), "{listed}");
    assert!(!listed.contains("root\n"), "{listed}");
    let unit = sh_ok(&name, "cat /lib/systemd/system/up42webhooks.service");
    let start = start_script(&unit);

    // No secret yet: the service refuses to start, saying what to do.
    let (started, said) = sh(&name, &start);
    assert!(!started, "{said}");
    assert!(
        said.contains("no secret in /etc/up42webhooks/secret: put the secret you gave UP42"),
        "{said}"
    );
    // The operator's edits: the secret, and listeners the test reaches through Docker's ports.
    sh_ok(
        &name,
        &format!(
            "echo {SECRET} > /etc/up42webhooks/secret && \
             sed -i -e 's/^LISTEN=.*/LISTEN=0.0.0.0:9888/' -e 's/^ADMIN_LISTEN=.*/ADMIN_LISTEN=0.0.0.0:9889/' \
             /etc/up42webhooks/up42webhooks.env && \
             echo UP42_WEBHOOK_ADMIN_ALLOW=loopback,gateway >> /etc/up42webhooks/up42webhooks.env"
        ),
    );
    sh_ok(&name, &start);
    wait_for_ping(admin, 30);
    let first_delivery = Delivery::signed(&job("deb-1", "SUCCEEDED"), SECRET, now());
    let stored = post_to(port, &first_delivery);
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(dumped_ids(admin), ["deb-1"]);
    // The workers run as the package's user.
    let users = sh_ok(
        &name,
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = nginx ] && stat -c %U $p; done | sort -u",
    );
    assert_eq!(users.trim(), "up42webhooks", "{users}");

    // nginx's errors name the file the operator edits, not the link in its prefix.
    let env_file = unit_lines(&unit, "EnvironmentFile").pop().unwrap();
    let check = format!(
        "set -a; . {env_file}; set +a; runuser -u up42webhooks -- /usr/share/up42webhooks/prestart"
    );
    sh_ok(
        &name,
        "cp /etc/up42webhooks/default.conf /tmp/default.conf && \
         echo 'no_such_directive on;' >> /etc/up42webhooks/default.conf",
    );
    let (passed, said) = sh(&name, &check);
    assert!(
        !passed
            && said.contains("no_such_directive")
            && said.contains("/etc/up42webhooks/default.conf")
            && !said.contains("/var/lib/up42webhooks/conf/"),
        "{said}"
    );
    sh_ok(&name, "cp /tmp/default.conf /etc/up42webhooks/default.conf");

    forwarder_as_shipped(&name, &unit, admin);

    // A stop and a start keep it (the journal).
    stop(&name, &unit);
    sh_ok(&name, &start);
    wait_for_ping(admin, 30);
    assert_eq!(dumped_ids(admin), ["deb-1"]);

    // An upgrade keeps the secret, the edited settings and the events.
    stop(&name, &unit);
    sh_ok(
        &name,
        &format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             -o Dpkg::Options::=--force-confold {}",
            file(&second)
        ),
    );
    let kept = sh_ok(
        &name,
        "dpkg-query -W -f='${Version}\\n' up42webhooks && cat /etc/up42webhooks/secret && \
         grep ^LISTEN= /etc/up42webhooks/up42webhooks.env",
    );
    assert!(
        kept.contains(&v2()) && kept.contains(SECRET) && kept.contains("LISTEN=0.0.0.0:9888"),
        "{kept}"
    );
    sh_ok(&name, &start);
    wait_for_ping(admin, 30);
    assert_eq!(dumped_ids(admin), ["deb-1"]);
    // The replay index beside the journal was kept too: the sender's retry is a duplicate.
    let retried = post_to(port, &first_delivery);
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert!(retried.text().contains("duplicate"), "{}", retried.text());
    let again = post_to(
        port,
        &Delivery::signed(&job("deb-2", "FAILED"), SECRET, now()),
    );
    assert_eq!(again.status, 200, "{}", again.text());

    // Purge: the events, the secret and the settings go.
    stop(&name, &unit);
    sh_ok(
        &name,
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y up42webhooks",
    );
    let (_, left) = sh(
        &name,
        "ls -d /var/lib/up42webhooks /etc/up42webhooks /var/log/up42webhooks /usr/bin/up42wh 2>&1",
    );
    assert_eq!(
        left.matches("No such file or directory").count(),
        4,
        "{left}"
    );
    eprintln!(
        "the {arch} package: installed, refused without a secret, stored, restarted, upgraded and purged in {:.1?}",
        began.elapsed()
    );
}
