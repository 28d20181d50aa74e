//! The Docker setup, proved as far as a machine without a Docker engine can: the Dockerfile's
//! stages, pins, build flags and paths (parsed here and checked against the config they serve),
//! the compose files (validated by docker-compose itself), and the musl library the builder stage
//! makes (built here with the same files and flags, then loaded by musl's own dynamic loader).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One Dockerfile instruction: its stage (None before the first FROM), keyword and arguments.
#[derive(Debug)]
struct Instr {
    stage: Option<usize>,
    op: String,
    args: String,
}

/// Parses the Dockerfile (OpenResty's Alpine image).
fn dockerfile() -> Vec<Instr> {
    parse_dockerfile("Dockerfile")
}

/// Parses a Dockerfile: comments dropped, continuation lines joined, stages numbered.
fn parse_dockerfile(name: &str) -> Vec<Instr> {
    let text = std::fs::read_to_string(crate::common::root().join(name)).expect(name);
    let mut out = Vec::new();
    let mut stage: Option<usize> = None;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (op, args) = full
            .split_once(char::is_whitespace)
            .expect("instruction with arguments");
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stage = Some(stage.map_or(0, |s| s + 1));
        }
        out.push(Instr {
            stage,
            op,
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    assert!(pending.is_empty(), "{name} ends inside a continuation");
    out
}

fn in_stage(instrs: &[Instr], stage: usize, op: &str) -> Vec<String> {
    instrs
        .iter()
        .filter(|i| i.stage == Some(stage) && i.op == op)
        .map(|i| i.args.clone())
        .collect()
}

/// Default of a global ARG (declared before the first FROM).
fn global_arg(instrs: &[Instr], name: &str) -> String {
    instrs
        .iter()
        .filter(|i| i.stage.is_none() && i.op == "ARG")
        .find_map(|i| i.args.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("global ARG {name} with a default"))
}

/// ENV KEY="value" pairs of a stage.
fn env_of(instrs: &[Instr], stage: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for args in in_stage(instrs, stage, "ENV") {
        let mut rest = args.as_str();
        while let Some((key, tail)) = rest.split_once('=') {
            let (value, tail) = if let Some(q) = tail.strip_prefix('"') {
                let end = q.find('"').expect("closing quote");
                (&q[..end], &q[end + 1..])
            } else {
                tail.split_once(' ').unwrap_or((tail, ""))
            };
            out.push((key.trim().to_string(), value.to_string()));
            rest = tail.trim_start();
        }
    }
    out
}

/// Sources of the plain COPY instructions of a stage (not --from), with their destinations.
fn copies(instrs: &[Instr], stage: usize) -> Vec<(Vec<String>, String)> {
    in_stage(instrs, stage, "COPY")
        .into_iter()
        .filter(|a| !a.starts_with("--from"))
        .map(|a| {
            let mut parts: Vec<String> = a.split(' ').map(str::to_string).collect();
            let dest = parts.pop().expect("destination");
            (parts, dest)
        })
        .collect()
}

fn is_version(s: &str, parts: usize) -> bool {
    let v: Vec<&str> = s.split('.').collect();
    v.len() == parts
        && v.iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn dockerfile_pins_its_images_and_builds_the_library_for_musl() {
    let d = dockerfile();
    let froms: Vec<&Instr> = d.iter().filter(|i| i.op == "FROM").collect();
    assert_eq!(froms.len(), 2, "a builder stage and a runtime stage");
    assert_eq!(froms[0].args, "${RUST_IMAGE} AS builder");
    assert_eq!(froms[1].args, "${OPENRESTY_IMAGE}");

    // rust:X.Y.Z-alpine, new enough for the crate's rust-version.
    let rust = global_arg(&d, "RUST_IMAGE");
    let version = rust
        .strip_prefix("rust:")
        .and_then(|r| r.strip_suffix("-alpine"))
        .unwrap_or_else(|| panic!("{rust} is rust:<version>-alpine"));
    assert!(is_version(version, 3), "{rust} pins a full Rust version");
    let manifest = std::fs::read_to_string(crate::common::root().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-version");
    let num = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(num(version) >= num(msrv), "{rust} is at least {msrv}");

    // openresty/openresty:<openresty version>-<image revision>-alpine: the full tag, Alpine flavour.
    let openresty = global_arg(&d, "OPENRESTY_IMAGE");
    let tag = openresty
        .strip_prefix("openresty/openresty:")
        .and_then(|t| t.strip_suffix("-alpine"))
        .unwrap_or_else(|| panic!("{openresty} is openresty/openresty:<tag>-alpine"));
    let (ver, rev) = tag.rsplit_once('-').expect("<version>-<revision>");
    assert!(
        is_version(ver, 4) && is_version(rev, 1),
        "{openresty} is pinned to a full tag"
    );

    // The builder makes a shared object that links musl dynamically, stripped.
    let env = env_of(&d, 0);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("RUSTFLAGS"), Some("-C target-feature=-crt-static"));
    assert_eq!(get("CARGO_PROFILE_RELEASE_STRIP"), Some("symbols"));
    let runs = in_stage(&d, 0, "RUN");
    assert!(runs
        .iter()
        .any(|r| r.contains("apk add") && r.contains("musl-dev")));
    assert!(runs.iter().any(|r| r == BUILD_BOTH));
    assert_eq!(in_stage(&d, 0, "WORKDIR"), ["/src"]);

    // No secret is baked in: no ENV or ARG names one.
    for i in d.iter().filter(|i| i.op == "ENV" || i.op == "ARG") {
        assert!(!i.args.contains("SECRET"), "{} {}", i.op, i.args);
    }
}

/// The builders' one RUN: the library, then the up42wh program (a build of its own, so that the
/// library's dependencies stay its small set).
const BUILD_BOTH: &str =
    "cargo build --release --locked --lib && cargo build --release --locked -p up42wh";

/// Where OpenResty's image keeps things (docker-openresty: alpine/Dockerfile and nginx.conf).
const PREFIX: &str = "/usr/local/openresty/nginx/";
const CONF_D: &str = "/etc/nginx/conf.d/";

#[test]
fn dockerfile_puts_each_file_where_the_image_and_the_config_look() {
    let d = dockerfile();
    let root = crate::common::root();
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignored
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    for stage in [0, 1] {
        for (sources, _) in copies(&d, stage) {
            for s in sources {
                assert!(root.join(&s).exists(), "COPY source {s} exists");
                let top = s.trim_end_matches('/').split('/').next().unwrap();
                assert!(
                    !ignored.contains(&top),
                    "COPY source {s} is not .dockerignored"
                );
            }
        }
    }

    let runtime = copies(&d, 1);
    let dest_of = |src: &str| {
        runtime
            .iter()
            .find(|(s, _)| s.len() == 1 && s[0] == src)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("the runtime stage copies {src}"))
    };
    let conf = std::fs::read_to_string(root.join("openresty/default.conf")).unwrap();
    // The config finds the module under $prefix/lua and the library under $prefix/lib.
    assert!(conf.contains("lua_package_path '$prefix/lua/?.lua;$prefix/vendor/?.lua;;';"));
    assert!(conf.contains("lua_package_cpath '$prefix/lib/?.so;;';"));
    assert_eq!(dest_of("lua/"), format!("{PREFIX}lua/"));
    assert_eq!(
        dest_of("openresty/default.conf"),
        format!("{CONF_D}default.conf")
    );
    assert_eq!(dest_of("openresty/html/"), format!("{PREFIX}html/"));
    assert!(
        conf.contains("root html;"),
        "pages and error pages under $prefix/html"
    );

    // The library comes from the builder's release directory into $prefix/lib, the up42wh
    // program onto the PATH (the compose service "forward" runs it).
    let from_builder: Vec<String> = in_stage(&d, 1, "COPY")
        .into_iter()
        .filter(|a| a.starts_with("--from="))
        .collect();
    assert_eq!(
        from_builder,
        [
            format!(
                "--from=builder /src/target/release/libup42webhooks.so {PREFIX}lib/libup42webhooks.so"
            ),
            "--from=builder /src/target/release/up42wh /usr/local/bin/up42wh".to_string()
        ]
    );

    // default.conf includes the two listen files, relative to nginx.conf's directory
    // ($prefix/conf), where the entrypoint has listen.sh write them at every start.
    assert!(conf.contains("include up42webhooks-public.conf;"));
    assert!(conf.contains("include up42webhooks-admin.conf;"));
    assert_eq!(dest_of("openresty/listen.sh"), LISTEN_SH);
    assert_eq!(dest_of("openresty/docker-entrypoint.sh"), ENTRYPOINT);
    // Each image carries its own configtest; the Makefile only names it.
    assert_eq!(dest_of("openresty/configtest.sh"), CONFIGTEST);
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    assert!(makefile.contains(&format!(
        "CONTAINER_CONFIGTEST = {}",
        CONFIGTEST.rsplit('/').next().unwrap()
    )));
    let entrypoint = std::fs::read_to_string(root.join("openresty/docker-entrypoint.sh")).unwrap();
    assert!(entrypoint.contains(&format!(
        "{LISTEN_SH} \"${{UP42WH_CONF_DIR:-{PREFIX}conf}}\""
    )));
    assert_eq!(
        in_stage(&d, 1, "ENTRYPOINT"),
        [format!("[\"{ENTRYPOINT}\"]")]
    );
    // An ENTRYPOINT clears the base image's CMD: ours names OpenResty in the foreground again.
    assert_eq!(
        in_stage(&d, 1, "CMD"),
        [r#"["/usr/local/openresty/bin/openresty", "-g", "daemon off;"]"#]
    );
    // The config is tested at build time, through the entrypoint (so with the files it writes)
    // and with a placeholder secret that only that command sees.
    let runs = in_stage(&d, 1, "RUN").join("\n");
    assert!(runs.contains(
        "UP42_WEBHOOK_SECRET=placeholder-for-nginx-t up42webhooks-entrypoint /usr/local/openresty/bin/openresty -t"
    ));
    assert_eq!(in_stage(&d, 1, "EXPOSE"), ["80 443 9889"]);
    // The admin listener trusts loopback and the Docker host (the gateway its published port
    // arrives from), nothing else.
    let env = env_of(&d, 1);
    assert!(env.contains(&(
        "UP42_WEBHOOK_ADMIN_ALLOW".to_string(),
        "loopback,gateway".to_string()
    )));
    // The journal: a directory of the workers' user (nobody, OpenResty's default), a volume.
    assert!(env.contains(&(
        "UP42_WEBHOOK_JOURNAL_DIR".to_string(),
        "/var/lib/up42webhooks".to_string()
    )));
    assert!(runs.contains("install -d -o nobody -m 0700 /var/lib/up42webhooks"));
    assert_eq!(in_stage(&d, 1, "VOLUME"), ["/var/lib/up42webhooks"]);

    // The health check asks the admin listener's /ping for PONG, with busybox wget (no curl in
    // the Alpine flavour): plain HTTP on loopback whether or not the public side speaks TLS.
    // (The Debian image's bash path of the same script runs in tests/operations/containers.rs.)
    let health = in_stage(&d, 1, "HEALTHCHECK");
    assert_eq!(health.len(), 1);
    let cmd = health[0]
        .split_once(" CMD ")
        .expect("HEALTHCHECK ... CMD")
        .1;
    assert_eq!(cmd, format!("[\"{HEALTH_CMD}\"]"));
    assert_eq!(dest_of("openresty/healthcheck.sh"), HEALTH_CMD);
    let script = std::fs::read_to_string(root.join("openresty/healthcheck.sh")).unwrap();
    assert!(script.contains("port=${UP42_WEBHOOK_HEALTH_PORT:-9889}"));
    assert!(script.contains(r#"wget -q -O - "http://127.0.0.1:$port/ping" | grep -q PONG"#));
    let admin = &conf[conf.find("include up42webhooks-admin.conf;").unwrap()..];
    assert!(admin.contains("location = /ping"));
}

const LISTEN_SH: &str = "/usr/local/bin/up42webhooks-listen";
/// The journal's named volume, as docker-compose renders it.
const JOURNAL_VOLUME: &str = "journal:/var/lib/up42webhooks:rw";
const ENTRYPOINT: &str = "/usr/local/bin/up42webhooks-entrypoint";

/// The entrypoint run here with the image's paths pointed at a scratch directory and a stand-in
/// OpenResty: the listen files it writes for `env`.
fn entrypoint_writes(env: &[(&str, &str)]) -> (String, String) {
    let root = crate::common::root();
    let dir = std::env::temp_dir().join(format!(
        "up42wh-entrypoint-{}-{}",
        std::process::id(),
        env.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let openresty = dir.join("openresty");
    std::fs::write(
        &openresty,
        "#!/bin/sh\necho 'nginx version: openresty/1.27.1.2' >&2\n",
    )
    .unwrap();
    let script = std::fs::read_to_string(root.join("openresty/docker-entrypoint.sh"))
        .unwrap()
        .replace(
            LISTEN_SH,
            &root.join("openresty/listen.sh").display().to_string(),
        )
        .replace(
            &format!("{PREFIX}conf"),
            &dir.join("conf").display().to_string(),
        )
        .replace(
            "/usr/local/openresty/bin/openresty",
            &openresty.display().to_string(),
        );
    let entry = dir.join("entrypoint.sh");
    std::fs::write(&entry, script).unwrap();
    for f in [&entry, &openresty] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut c = Command::new("sh");
    crate::common::hermetic(&mut c)
        .arg(&entry)
        .args(["echo", "ran the command"]);
    let out = c.envs(env.iter().copied()).output().unwrap();
    assert_eq!(
        crate::common::stdout_of(&out, "the entrypoint"),
        "ran the command\n"
    );
    let read = |f: &str| std::fs::read_to_string(dir.join("conf").join(f)).unwrap();
    let files = (
        read("up42webhooks-public.conf"),
        read("up42webhooks-admin.conf"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    files
}

#[test]
fn the_entrypoint_listens_on_80_and_9889_and_on_443_with_a_certificate() {
    let (public, admin) = entrypoint_writes(&[]);
    assert!(
        public.contains("listen 80;\n") && !public.contains("ssl"),
        "{public}"
    );
    assert!(public.contains("set $up42webhooks_admin_port 9889;"));
    assert!(admin.contains("listen 9889;\n"), "{admin}");
    // A certificate (any readable file will do for listen.sh; nginx checks it at start).
    let cert = crate::common::root()
        .join("Cargo.toml")
        .display()
        .to_string();
    let (public, _) = entrypoint_writes(&[
        ("UP42_WEBHOOK_TLS_CERT", cert.as_str()),
        ("UP42_WEBHOOK_TLS_KEY", cert.as_str()),
    ]);
    for line in [
        "listen 80;".to_string(),
        "listen 443 ssl;".to_string(),
        "http2 on;".to_string(),
        format!("ssl_certificate {cert};"),
        format!("ssl_certificate_key {cert};"),
    ] {
        assert!(public.lines().any(|l| l == line), "{line} in {public}");
    }
}

/// Both images' health check: openresty/healthcheck.sh (the Alpine image's busybox wget asks the
/// admin listener's /ping).
const HEALTH_CMD: &str = "/usr/local/bin/up42webhooks-health";
/// Both images' `nginx -t` (openresty/configtest.sh), which make configtest and restart run.
const CONFIGTEST: &str = "/usr/local/bin/up42webhooks-configtest";

/// `docker-compose config` (Debian's docker-compose, or the compose plugin) on the given files,
/// as JSON. It validates the files against the compose schema and resolves them, without an engine.
fn compose_config(files: &[&str]) -> Value {
    compose_config_with(files, &[]).expect("docker-compose config")
}

/// The same with the variables that make passes (the others of make's unset); the tool's error
/// when it refuses.
fn compose_config_with(files: &[&str], env: &[(&str, &str)]) -> Result<Value, String> {
    let root = crate::common::root();
    let mut tried = Vec::new();
    for cmd in [vec!["docker-compose"], vec!["docker", "compose"]] {
        let mut c = Command::new(cmd[0]);
        crate::common::hermetic(&mut c)
            .args(&cmd[1..])
            .current_dir(&root);
        c.envs(env.iter().copied());
        for f in files {
            c.args(["-f", f]);
        }
        c.arg("config");
        match c.output() {
            Ok(out) if out.status.success() => {
                let yaml_to_json = Command::new("python3")
                    .args([
                        "-c",
                        "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
                    ])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut p| {
                        use std::io::Write;
                        p.stdin.take().unwrap().write_all(&out.stdout)?;
                        p.wait_with_output()
                    })
                    .expect("python3 with yaml (a docker-compose dependency)");
                assert!(yaml_to_json.status.success());
                return Ok(serde_json::from_slice(&yaml_to_json.stdout).unwrap());
            }
            Ok(out) => {
                return Err(format!(
                    "{} config {files:?} failed: {}",
                    cmd.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
            Err(e) => tried.push(format!("{}: {e}", cmd.join(" "))),
        }
    }
    panic!("no docker-compose to validate with (make test installs it): {tried:?}");
}

/// A service's published ports as (host address, host port, container port); v1 renders some
/// long-form and some as text, the plugin may render all long-form.
fn ports(service: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = service["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            if let Some(text) = p.as_str() {
                let text = text.trim_end_matches("/tcp");
                let parts: Vec<&str> = text.split(':').collect();
                match parts[..] {
                    [ip, host, target] => (ip.to_string(), host.to_string(), target.to_string()),
                    [host, target] => (String::new(), host.to_string(), target.to_string()),
                    _ => panic!("port {text}"),
                }
            } else {
                let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (
                    p["host_ip"].as_str().unwrap_or_default().to_string(),
                    text(&p["published"]),
                    text(&p["target"]),
                )
            }
        })
        .collect();
    out.sort_by_key(|p| p.2.parse::<u32>().unwrap());
    out
}

/// The receiver's service. Beside it are only the forwarder's and the reconciler's, each off
/// unless its profile is on.
fn service(config: &Value) -> &Value {
    let services = config["services"].as_object().expect("services");
    for (name, s) in services {
        assert!(
            name == "up42webhooks"
                || (["forward", "reconcile"].contains(&name.as_str())
                    && s["profiles"][0] == name.as_str()),
            "{name}: only the receiver starts by default"
        );
    }
    &services["up42webhooks"]
}

/// The reconciler's service: the receiver's image running `up42wh up42 reconcile --every 15m`
/// as nobody, reaching the admin listener over the compose network with the admin token (never
/// the receiver's secret), its watermark in a volume of its own.
#[test]
fn the_reconcile_service_is_off_unless_enabled_and_runs_every_15_minutes() {
    let config = compose_config_with(
        &["docker-compose.yml"],
        &[("COMPOSE_PROFILES", "reconcile")],
    )
    .unwrap();
    let r = &config["services"]["reconcile"];
    assert_eq!(r["profiles"], serde_json::json!(["reconcile"]));
    assert_eq!(r["image"], service(&config)["image"]);
    assert_eq!(
        r["entrypoint"],
        serde_json::json!(["/usr/local/bin/up42wh"])
    );
    assert_eq!(
        r["command"],
        serde_json::json!(["up42", "reconcile", "--every", "15m"])
    );
    assert_eq!(r["user"], "65534:65534");
    assert!(r["ports"].is_null(), "the reconciler publishes nothing");
    let env = r["environment"].as_object().unwrap();
    assert_eq!(env["UP42WH_RECEIVER"], "http://up42webhooks:9889");
    assert_eq!(
        env["UP42WH_RECONCILE_STATE"],
        "/var/lib/up42wh/reconcile.json"
    );
    assert!(env.contains_key("UP42_WEBHOOK_ADMIN_TOKEN") && env.contains_key("UP42_USERNAME"));
    assert!(
        !env.keys().any(|k| k.starts_with("UP42_WEBHOOK_SECRET")),
        "the reconciler never has the receiver's secret: {env:?}"
    );
    assert_eq!(
        r["volumes"][0].as_str(),
        Some("reconcile:/var/lib/up42wh:rw")
    );
}

/// The forwarder's service: the receiver's image with the up42wh program as its entry point, as
/// nobody, reading the admin listener over the compose network with the admin token (never the
/// receiver's secret), its configuration's directory read-only, its state in a volume.
#[test]
fn the_forward_service_is_off_unless_enabled_and_reaches_the_receiver_with_the_token() {
    let env = [
        ("COMPOSE_PROFILES", "forward"),
        ("FORWARD_DIR", "/srv/forward"),
        ("FORWARD_FILE", "routes.toml"),
    ];
    let config = compose_config_with(&["docker-compose.yml"], &env).unwrap();
    let f = &config["services"]["forward"];
    assert_eq!(f["profiles"], serde_json::json!(["forward"]));
    assert_eq!(f["image"], service(&config)["image"]);
    assert_eq!(
        f["entrypoint"],
        serde_json::json!(["/usr/local/bin/up42wh"])
    );
    assert_eq!(
        f["command"],
        serde_json::json!(["forward", "--receiver", "http://up42webhooks:9889"])
    );
    assert_eq!(f["user"], "65534:65534");
    assert_eq!(f["stop_signal"], "SIGTERM");
    assert!(f["ports"].is_null(), "the forwarder publishes nothing");
    let env = f["environment"].as_object().unwrap();
    assert_eq!(env["UP42WH_FORWARD_CONFIG"], "/etc/up42wh/routes.toml");
    assert_eq!(env["UP42WH_FORWARD_STATE_DIR"], "/var/lib/up42wh");
    assert!(env.contains_key("UP42_WEBHOOK_ADMIN_TOKEN"));
    assert!(
        !env.keys().any(|k| k.starts_with("UP42_WEBHOOK_SECRET")),
        "the forwarder never has the receiver's secret: {env:?}"
    );
    let mut volumes: Vec<&str> = f["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    volumes.sort();
    assert_eq!(
        volumes,
        ["/srv/forward:/etc/up42wh:ro", "forward:/var/lib/up42wh:rw"]
    );
    assert_eq!(
        f["healthcheck"]["test"],
        serde_json::json!(["CMD", "/usr/local/bin/up42wh", "forward", "status"])
    );
    // The Debian image's file names the same image for both.
    let debian = compose_config_with(
        &["docker-compose.yml", "docker-compose.debian.yml"],
        &[
            ("COMPOSE_PROFILES", "forward"),
            ("DEBIAN_IMAGE", "up42webhooks:debian-arm64"),
        ],
    )
    .unwrap();
    assert_eq!(
        debian["services"]["forward"]["image"],
        "up42webhooks:debian-arm64"
    );
    assert_eq!(service(&debian)["image"], "up42webhooks:debian-arm64");
    // Both images make the state directory for nobody.
    for file in ["Dockerfile", "Dockerfile.debian"] {
        let d = parse_dockerfile(file);
        assert!(
            in_stage(&d, 1, "RUN").iter().any(|r| r
                .contains("install -d -o nobody -m 0700 /var/lib/up42webhooks /var/lib/up42wh")),
            "{file}"
        );
    }
}

#[test]
fn compose_files_validate_and_keep_the_secret_out_of_the_image() {
    let base = compose_config(&["docker-compose.yml"]);
    let s = service(&base);
    assert_eq!(s["image"], "up42webhooks:local");
    assert_eq!(s["restart"], "unless-stopped");
    // Deliveries on the host's loopback unless opened (as make serve), the admin listener on
    // the host's loopback only.
    assert_eq!(
        ports(s),
        [
            (
                "127.0.0.1".to_string(),
                "9888".to_string(),
                "80".to_string()
            ),
            (
                "127.0.0.1".to_string(),
                "9889".to_string(),
                "9889".to_string()
            )
        ]
    );
    let moved = compose_config_with(
        &["docker-compose.yml"],
        &[("LISTEN", "0.0.0.0:8080"), ("ADMIN_PORT", "7001")],
    )
    .unwrap();
    assert_eq!(
        ports(service(&moved)),
        [
            ("0.0.0.0".to_string(), "8080".to_string(), "80".to_string()),
            (
                "127.0.0.1".to_string(),
                "7001".to_string(),
                "9889".to_string()
            )
        ]
    );
    assert_eq!(s["healthcheck"]["test"][0], "CMD");
    assert_eq!(s["healthcheck"]["test"][1], HEALTH_CMD);
    // The secret is passed through from the caller's environment, never given a value here.
    let env = &s["environment"];
    assert!(env["UP42_WEBHOOK_SECRET"].is_null(), "{env}");
    // The base file runs what the image carries, with the journal in a named volume at the
    // directory the image gives the module.
    assert_eq!(s["volumes"], serde_json::json!([JOURNAL_VOLUME]));
    assert!(
        base["volumes"]["journal"].is_object(),
        "{}",
        base["volumes"]
    );

    // HTTPS (make run TLS_CERT=... TLS_KEY=...): port 443, the certificates' directory mounted
    // read-only at the same path (certbot's live/ links point into archive/), their names passed
    // to the entrypoint. Without them compose refuses, naming what is missing.
    let le = "/etc/letsencrypt/live/hooks.example.com";
    let tls_env = [
        ("TLS_CERT", &*format!("{le}/fullchain.pem")),
        ("TLS_KEY", &*format!("{le}/privkey.pem")),
        ("TLS_DIR", "/etc/letsencrypt"),
        ("LISTEN", "0.0.0.0:80"),
        ("TLS_LISTEN", "0.0.0.0:443"),
    ]
    .map(|(k, v)| (k, v.to_string()));
    let tls_env: Vec<(&str, &str)> = tls_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tls =
        compose_config_with(&["docker-compose.yml", "docker-compose.tls.yml"], &tls_env).unwrap();
    let st = service(&tls);
    assert_eq!(
        ports(st),
        [
            ("0.0.0.0".to_string(), "80".to_string(), "80".to_string()),
            ("0.0.0.0".to_string(), "443".to_string(), "443".to_string()),
            (
                "127.0.0.1".to_string(),
                "9889".to_string(),
                "9889".to_string()
            )
        ]
    );
    assert_eq!(
        st["environment"]["UP42_WEBHOOK_TLS_CERT"],
        format!("{le}/fullchain.pem")
    );
    assert_eq!(
        st["environment"]["UP42_WEBHOOK_TLS_KEY"],
        format!("{le}/privkey.pem")
    );
    let mut volumes: Vec<&str> = st["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    volumes.sort_unstable();
    assert_eq!(
        volumes,
        ["/etc/letsencrypt:/etc/letsencrypt:ro", JOURNAL_VOLUME]
    );
    let err =
        compose_config_with(&["docker-compose.yml", "docker-compose.tls.yml"], &[]).unwrap_err();
    assert!(err.contains("set TLS_CERT"), "{err}");

    // The Docker-secret variant: a file mounted under /run/secrets, named to configure{}.
    let with_secret = compose_config(&["docker-compose.yml", "docker-compose.secret.yml"]);
    let s = service(&with_secret);
    assert_eq!(
        s["environment"]["UP42_WEBHOOK_SECRET_FILE"],
        "/run/secrets/up42_webhook_secret"
    );
    assert_eq!(s["secrets"][0]["source"], "up42_webhook_secret");
    let file = with_secret["secrets"]["up42_webhook_secret"]["file"]
        .as_str()
        .unwrap();
    assert!(file.ends_with("/secrets/up42_webhook_secret"), "{file}");
    let gitignore = std::fs::read_to_string(crate::common::root().join(".gitignore")).unwrap();
    assert!(
        gitignore.lines().any(|l| l == "/secrets/"),
        "secret files stay out of git"
    );

    // The development override mounts the checkout where the image has its copies.
    let dev = compose_config(&["docker-compose.yml", "docker-compose.override.yml"]);
    let mounts: Vec<(String, String)> = service(&dev)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter(|v| v.as_str() != Some(JOURNAL_VOLUME))
        .map(|v| {
            let text = v.as_str().expect("short volume syntax");
            let parts: Vec<&str> = text.split(':').collect();
            assert_eq!(parts.get(2), Some(&"ro"), "{text} is read-only");
            let host = Path::new(parts[0]);
            let rel = host.strip_prefix(crate::common::root()).unwrap_or(host);
            (rel.display().to_string(), parts[1].to_string())
        })
        .collect();
    let dest = |src: &str| {
        mounts
            .iter()
            .find(|(h, _)| h == src)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("{src} is mounted: {mounts:?}"))
    };
    assert_eq!(dest("lua"), format!("{PREFIX}lua"));
    assert_eq!(dest("openresty/html"), format!("{PREFIX}html"));
    assert_eq!(dest("openresty/docker-dev"), CONF_D.trim_end_matches('/'));
    // conf.d's stand-in includes default.conf from the mounted openresty/ directory.
    let stub =
        std::fs::read_to_string(crate::common::root().join("openresty/docker-dev/default.conf"))
            .unwrap();
    let include = stub
        .lines()
        .find_map(|l| l.strip_prefix("include "))
        .and_then(|l| l.strip_suffix(';'))
        .expect("an include line");
    let (dir, file) = include.rsplit_once('/').unwrap();
    assert_eq!(dest("openresty"), dir);
    assert!(crate::common::root().join("openresty").join(file).exists());
}

/// The files the builder stage copies, staged into a directory of their own, so that the build
/// below sees exactly what `docker build` would.
fn stage_builder_sources(into: &Path) {
    let d = dockerfile();
    let _ = std::fs::remove_dir_all(into);
    for (sources, dest) in copies(&d, 0) {
        for s in sources {
            let from = crate::common::root().join(&s);
            let to = if dest.ends_with('/') && dest != "./" {
                into.join(dest.trim_start_matches("./"))
            } else if dest == "./" {
                into.join(Path::new(&s).file_name().unwrap())
            } else {
                into.join(dest.trim_start_matches("./"))
            };
            copy_tree(&from, &to);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is needed (make test installs musl-tools and the Rust musl target)")
    })
}

const MUSL: &str = "x86_64-unknown-linux-musl";

#[test]
fn the_musl_library_the_builder_makes_loads_and_verifies_under_musl() {
    let musl_gcc = tool("musl-gcc");
    let target = crate::common::root().join("target").join("musl");
    let src = target.join("builder-src");
    stage_builder_sources(&src);

    // Alpine's libgcc gives the unwinder that a dynamically linked Rust library needs
    // (libgcc_s.so.1). Debian has none built for musl; Rust's musl target ships LLVM's libunwind,
    // which has the same _Unwind_* functions: made into a shared libgcc_s here, it stands in.
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    let unwind = sysroot.join(format!("lib/rustlib/{MUSL}/lib/self-contained/libunwind.a"));
    assert!(
        unwind.exists(),
        "the Rust target {MUSL} is installed (rustup target add {MUSL}; make test does it)"
    );
    let gcc_s = target.join("libgcc_s");
    std::fs::create_dir_all(&gcc_s).unwrap();
    let status = Command::new(&musl_gcc)
        .args(["-shared", "-Wl,-soname,libgcc_s.so.1", "-o"])
        .arg(gcc_s.join("libgcc_s.so.1"))
        .arg("-Wl,--whole-archive")
        .arg(&unwind)
        .arg("-Wl,--no-whole-archive")
        .status()
        .unwrap();
    assert!(status.success(), "libgcc_s stand-in links");
    let _ = std::fs::remove_file(gcc_s.join("libgcc_s.so"));
    std::os::unix::fs::symlink("libgcc_s.so.1", gcc_s.join("libgcc_s.so")).unwrap();

    // The builder's command, with the builder's ENV, for the musl target.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--locked",
            "--offline",
            "--lib",
            "--quiet",
        ])
        .args(["--target", MUSL, "--target-dir"])
        .arg(&target)
        .current_dir(&src)
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", &musl_gcc);
    for (k, v) in env_of(&dockerfile(), 0) {
        let v = if k == "RUSTFLAGS" {
            format!("{v} -C link-arg=-L{}", gcc_s.display())
        } else {
            v
        };
        build.env(k, v);
    }
    assert!(
        build.status().unwrap().success(),
        "the builder's cargo build works for musl"
    );
    let lib = target.join(MUSL).join("release/libup42webhooks.so");

    // Dynamically linked against musl, not glibc; every function of the header exported.
    let readelf = Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&readelf.stdout);
    assert!(dynamic.contains("Shared library: [libc.so]"), "{dynamic}");
    assert!(!dynamic.contains("libc.so.6"), "no glibc: {dynamic}");
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .unwrap();
    let exported = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter(|l| l.contains(" T up42wh_"))
        .count();
    let header =
        std::fs::read_to_string(crate::common::root().join("include/up42webhooks.h")).unwrap();
    let declared = header
        .lines()
        .filter(|l| {
            l.starts_with(|c: char| c.is_ascii_alphabetic())
                && l.contains("up42wh_")
                && l.contains('(')
        })
        .count();
    assert!(declared >= 17, "{declared} functions in the header");
    assert_eq!(exported, declared);

    // A musl program dlopens it; musl's loader (/lib/ld-musl-x86_64.so.1) does the loading.
    let exe = target.join("musl-dlopen");
    let status = Command::new(&musl_gcc)
        .args(["-std=gnu99", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(crate::common::root().join("include"))
        .arg(crate::common::root().join("tests/c/musl_dlopen.c"))
        .args(["-ldl", "-o"])
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "the dlopen program builds with musl-gcc");
    let interp = Command::new("readelf")
        .arg("-l")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&interp.stdout).contains("ld-musl-x86_64.so.1"));

    let vectors = crate::common::up42_vectors();
    let (mut ran, mut refused) = (0, 0);
    for v in vectors
        .iter()
        .filter(|v| v.secrets.len() == 1 && v.body.len() <= 100_000)
    {
        let raw = target.join("raw");
        let body = target.join("body");
        std::fs::write(&raw, v.raw()).unwrap();
        std::fs::write(&body, &v.body).unwrap();
        let out = Command::new(&exe)
            .arg(&lib)
            .arg(std::ffi::OsStr::new(
                std::str::from_utf8(&v.secrets[0]).unwrap(),
            ))
            .arg(&raw)
            .arg(&body)
            .arg(v.now.to_string())
            .env("LD_LIBRARY_PATH", &gcc_s)
            .output()
            .unwrap();
        let text = crate::common::stdout_of(&out, &v.name);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], env!("CARGO_PKG_VERSION"));
        assert_eq!(lines[1], v.expect, "{}", v.name);
        ran += 1;
        refused += usize::from(v.expect != "ok");
    }
    assert!(
        ran > 50 && refused > 3,
        "ran {ran} vectors under musl, {refused} refusals"
    );
}

/// The Debian image's files, as far as reading them goes (tests/operations/containers.rs builds and runs the
/// image): the library image from source copies what the Alpine builder copies (whose build the
/// test above repeats), and compose names the images make builds and mounts the checkout where the
/// Debian image has its copies.
#[test]
fn the_debian_image_files_agree_with_the_alpine_builder_and_compose() {
    let alpine = dockerfile();
    let lib = parse_dockerfile("Dockerfile.lib");
    assert_eq!(copies(&lib, 0), copies(&alpine, 0), "the same sources");
    let runs = in_stage(&lib, 0, "RUN");
    assert_eq!(runs, [BUILD_BOTH]);
    assert!(global_arg(&lib, "RUST_IMAGE").ends_with("-slim-bookworm"));
    // The result holds the library and the program alone, where Dockerfile.debian copies from.
    assert_eq!(in_stage(&lib, 1, "FROM"), ["scratch"]);
    let debian = parse_dockerfile("Dockerfile.debian");
    assert_eq!(
        in_stage(&lib, 1, "COPY"),
        ["--from=builder /src/target/release/libup42webhooks.so /src/target/release/up42wh /"]
    );
    let from_lib: Vec<String> = in_stage(&debian, 1, "COPY")
        .into_iter()
        .filter(|a| a.starts_with("--from=lib "))
        .collect();
    assert_eq!(
        from_lib,
        [
            "--from=lib /libup42webhooks.so /opt/up42webhooks/lib/libup42webhooks.so",
            "--from=lib /up42wh /usr/local/bin/up42wh"
        ]
    );
    let root = crate::common::root();
    for (sources, _) in copies(&debian, 1) {
        for src in sources.iter().filter(|s| !s.starts_with("--from")) {
            assert!(root.join(src).exists(), "COPY source {src} exists");
        }
    }

    let env = [
        ("DEBIAN_IMAGE", "up42webhooks:debian-armhf"),
        ("LIB_IMAGE", "up42webhooks-lib:host-armhf"),
        ("BASE_IMAGE", "up42webhooks-base:bookworm-armhf"),
    ];
    let files = [
        "docker-compose.yml",
        "docker-compose.debian.yml",
        "docker-compose.debian-dev.yml",
    ];
    let config = compose_config_with(&files, &env).unwrap();
    let s = service(&config);
    assert_eq!(s["image"], "up42webhooks:debian-armhf");
    assert_eq!(s["build"]["dockerfile"], "Dockerfile.debian");
    assert_eq!(
        s["build"]["args"],
        serde_json::json!({
            "BASE_IMAGE": "up42webhooks-base:bookworm-armhf",
            "LIB_IMAGE": "up42webhooks-lib:host-armhf",
        })
    );
    // The development mounts land where the image keeps lua/ and openresty/.
    let mut mounts: Vec<String> = s["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap()
                .replace(&format!("{}/", root.display()), "")
        })
        .collect();
    mounts.sort();
    assert_eq!(
        mounts,
        [
            JOURNAL_VOLUME,
            "lua:/opt/up42webhooks/lua:ro",
            "openresty:/opt/up42webhooks/openresty:ro",
        ]
    );
    let copied: Vec<(Vec<String>, String)> = copies(&debian, 1);
    for (src, dest) in [
        ("lua/", "/opt/up42webhooks/lua/"),
        ("openresty/", "/opt/up42webhooks/openresty/"),
        ("openresty/configtest.sh", CONFIGTEST),
    ] {
        assert!(
            copied
                .iter()
                .any(|(s, d)| s.len() == 1 && s[0] == src && d == dest),
            "Dockerfile.debian copies {src} to {dest}"
        );
    }
}
