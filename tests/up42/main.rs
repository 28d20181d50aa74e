//! `up42wh up42` against a stand-in for UP42's API (tests/up42/standin.py: HTTPS on 127.0.0.1,
//! a certificate of a CA the test makes, which the program is told to trust with UP42_CA_FILE) and
//! a real nginx receiver speaking HTTPS with a certificate of the same CA: connect creates once and
//! updates after; test passes with the round trip; a different secret is UP42's report of a 401; a
//! stopped receiver is "could not reach"; watch ends at the first failure; each refusal of UP42's
//! API is one line; no token, password or secret is ever printed. The inbox page's tests in a
//! real browser are here too (inbox.rs): like these, they need the release build.

#[path = "../common/mod.rs"]
mod common;
mod download;
mod inbox;
mod reconcile;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::nginx::{free_port, Server, Setup, SECRET};

const USERNAME: &str = "pilot@example.com";
const PASSWORD: &str = "stand-in-password-Vh3k9";
const WORKSPACE: &str = "5f0c8d4e-9a1b-4c2d-8e3f-0a1b2c3d4e5f";

fn scratch(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("up42-{name}"))
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed for localhost and 127.0.0.1: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=up42wh test CA"],
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
        dir,
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
        dir,
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
        dir,
    );
    (
        dir.join("ca.crt"),
        dir.join("leaf.crt"),
        dir.join("leaf.key"),
    )
}

/// The stand-in, stopped when dropped.
struct StandIn {
    port: u16,
    child: Child,
    log: PathBuf,
    /// The orders and assets it serves (JSON, read at each request).
    orders: PathBuf,
}

impl StandIn {
    fn start(dir: &Path, ca: &Path, cert: &Path, key: &Path, token_life: u32) -> StandIn {
        let (port, storage_port) = (free_port(), free_port());
        let log = dir.join("standin.jsonl");
        let orders = dir.join("orders.json");
        std::fs::write(&orders, "{}").unwrap();
        let child = Command::new("python3")
            .arg(common::root().join("tests/up42/standin.py"))
            .args([
                "--port",
                &port.to_string(),
                "--token-life",
                &token_life.to_string(),
                "--storage-port",
                &storage_port.to_string(),
            ])
            .arg("--orders")
            .arg(&orders)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca)
            .arg("--log")
            .arg(&log)
            .env("STANDIN_USERNAME", USERNAME)
            .env("STANDIN_PASSWORD", PASSWORD)
            .env("STANDIN_WORKSPACE", WORKSPACE)
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the stand-in");
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in [port, storage_port] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(Instant::now() < deadline, "the stand-in listens");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        StandIn {
            port,
            child,
            log,
            orders,
        }
    }

    fn log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every token it issued.
    fn tokens(&self) -> Vec<String> {
        self.log()
            .iter()
            .filter_map(|e| e["issued"].as_str().map(str::to_string))
            .collect()
    }

    /// Makes every API call answer `what` ("429 7", "503") until `None`.
    fn fail(&self, what: Option<&str>) {
        let f = self.log.with_extension("jsonl.fail");
        match what {
            Some(w) => std::fs::write(f, w).unwrap(),
            None => {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's world: the stand-in and an HTTPS receiver with certificates of one CA.
struct World {
    standin: StandIn,
    server: Server,
    ca: PathBuf,
    outputs: Vec<String>,
    /// The stand-in's certificates and files: removed last, after both servers stop.
    dir: common::Scratch,
}

impl World {
    fn new(name: &str, token_life: u32) -> World {
        World::with_receiver_env(name, token_life, &[])
    }

    /// The same, the receiver started with `env` besides.
    fn with_receiver_env(name: &str, token_life: u32, env: &[(&str, &str)]) -> World {
        let dir = scratch(name);
        let (ca, cert, key) = certificates(&dir);
        let standin = StandIn::start(&dir, &ca, &cert, &key, token_life);
        let mut setup = Setup {
            tls: Some((cert, key)),
            ..Setup::default()
        };
        for (k, v) in env {
            setup = setup.env(k, v);
        }
        let server = setup.start();
        World {
            standin,
            server,
            ca,
            outputs: Vec::new(),
            dir,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/receive-webhooks", self.server.port)
    }

    /// `up42wh ARGS` (hermetic) with the stand-in as UP42 and its account.
    fn up42wh(&self, args: &[&str]) -> Command {
        let api = format!("https://127.0.0.1:{}", self.standin.port);
        let mut c = Command::new(common::up42wh());
        common::hermetic(&mut c)
            .args(args)
            .env("UP42_API_URL", &api)
            .env("UP42_AUTH_URL", &api)
            .env("UP42_CA_FILE", &self.ca)
            .env("UP42_USERNAME", USERNAME)
            .env("UP42_PASSWORD", PASSWORD);
        c
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = self.up42wh(&["up42"]);
        c.args(args).envs(env.iter().copied());
        c
    }

    /// `up42wh up42 ARGS` to its end: (exit code, stdout + stderr), kept for the secrets check.
    fn run(&mut self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let out: Output = self.command(args, env).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.outputs.push(text.clone());
        (out.status.code().unwrap_or(-1), text)
    }

    /// A token from the stand-in, asked for by hand with the password grant and `form` besides.
    fn token(&self, form: &[&str]) -> serde_json::Value {
        let mut c = Command::new("curl");
        c.args(["-sS", "--cacert"])
            .arg(&self.ca)
            .args(["-d", "grant_type=password", "-d", "client_id=up42-api"])
            .args(["--data-urlencode", &format!("username={USERNAME}")])
            .args(["--data-urlencode", &format!("password={PASSWORD}")]);
        for f in form {
            c.args(["-d", f]);
        }
        let out = c
            .arg(format!(
                "https://127.0.0.1:{}/realms/public/protocol/openid-connect/token",
                self.standin.port
            ))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn receiver(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.admin_port)
    }

    /// No output ever held a token, the password or a secret.
    fn assert_nothing_secret_printed(&self, secrets: &[&str]) {
        let tokens = self.standin.tokens();
        assert!(!tokens.is_empty(), "tokens were issued");
        // Nor did the receiver's log, which saw every test delivery.
        let logged = self.server.error_log();
        for out in self.outputs.iter().chain([&logged]) {
            for s in tokens
                .iter()
                .map(String::as_str)
                .chain([PASSWORD])
                .chain(secrets.iter().copied())
            {
                assert!(!out.contains(s), "printed a secret ({s}): {out}");
            }
        }
    }
}

/// `up42wh up42 test` of the webhook for `url`, waiting 2 s for the event.
fn test_quickly(w: &mut World, url: &str) -> (i32, String) {
    let receiver = w.receiver();
    w.run(
        &[
            "test",
            "--url",
            url,
            "--timeout",
            "2s",
            "--receiver",
            &receiver,
        ],
        &[],
    )
}

#[test]
fn connect_registers_once_updates_after_and_test_proves_the_path_or_says_why_not() {
    let mut w = World::new("path", 300);
    let url = w.url();
    let secret_env = [("UP42_WEBHOOK_SECRET", SECRET)];

    // UP42 delivers only to https.
    let (code, out) = w.run(
        &["connect", "--url", "http://example.com/receive-webhooks"],
        &secret_env,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("UP42 delivers only to https:// URLs"), "{out}");

    let (code, out) = w.run(&["connect", "--url", &url], &secret_env);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("created webhook "), "{out}");
    assert!(
        out.contains("its secret is the receiver's (UP42_WEBHOOK_SECRET)"),
        "{out}"
    );
    // Two event names, the secret, active, as the create request carried them.
    let created = w
        .standin
        .log()
        .into_iter()
        .find(|e| e["method"] == "POST" && e["path"] == format!("/workspaces/{WORKSPACE}/webhooks"))
        .expect("the create request");
    let body: serde_json::Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["events"],
        serde_json::json!(["job.status", "order.status"])
    );
    assert_eq!(body["secret"], SECRET);
    assert_eq!(body["active"], true);
    assert_eq!(body["url"], url.as_str());
    let id = out.split_whitespace().nth(2).unwrap().to_string();

    // Again: the same webhook, updated.
    let (code, out) = w.run(&["connect", "--url", &url], &secret_env);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("updated webhook {id} ")), "{out}");
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            "{id}  active  {url}  job.status,order.status  up42webhooks"
        )),
        "{out}"
    );

    // UP42's test reaches the receiver and the event is stored: passed, with the round trip.
    let receiver = w.receiver();
    for event in ["job.status", "order.status"] {
        let (code, out) = w.run(&["test", "--event", event, "--receiver", &receiver], &[]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.starts_with(&format!("passed: UP42's test {event} (")) && out.contains(" ms"),
            "{out}"
        );
    }
    let (dumped, _) = w.server.dump("?live=false");
    assert_eq!(dumped.len(), 2, "{dumped:?}");

    // UP42 given another secret: its report of the receiver's 401.
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", "another-secret-0123456789")],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = w.run(&["test", "--receiver", &receiver], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!(
            "UP42 reported that {url} answered 401: the secrets differ"
        )),
        "{out}"
    );
    // The secret from a file, as make serve keeps it (its first line).
    let secrets = scratch("secret-file");
    let file = secrets.join("secret");
    std::fs::write(&file, format!("\n{SECRET}\nolder-secret\n")).unwrap();
    let (code, out) = w.run(
        &[
            "connect",
            "--url",
            &url,
            "--secret-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("the first line of {}", file.display())),
        "{out}"
    );
    let (code, out) = w.run(&["test", "--receiver", &receiver], &[]);
    assert_eq!(code, 0, "{out}");

    // A URL that leads to another server, which answers 200: UP42 reports success, nothing
    // arrives.
    let elsewhere = format!("https://127.0.0.1:{}/elsewhere", w.standin.port);
    let (code, out) = w.run(&["connect", "--url", &elsewhere], &secret_env);
    assert_eq!(code, 0, "{out}");
    let other = out.split_whitespace().nth(2).unwrap().to_string();
    let (code, out) = test_quickly(&mut w, &elsewhere);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains(&format!(
            "UP42 reported that {elsewhere} answered, but nothing arrived in the receiver"
        )),
        "{out}"
    );
    // A report the program cannot read: what it saw decides. Nothing arrived: the report as it
    // is (6).
    let opaque = w.standin.log.with_extension("jsonl.opaque");
    std::fs::write(&opaque, "").unwrap();
    let (code, out) = test_quickly(&mut w, &elsewhere);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("UP42's report could not be read: {\"outcome\":\"see the console\"}"),
        "{out}"
    );
    // The receiver refused it: the refusal counted during the test (5).
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", "a-third-secret-0123456789")],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = test_quickly(&mut w, &url);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("UP42 reached the receiver but nothing was stored: refused during the test: signature_mismatch (1)"),
        "{out}"
    );
    std::fs::remove_file(&opaque).unwrap();
    let (code, out) = w.run(&["connect", "--url", &url], &secret_env);
    assert_eq!(code, 0, "{out}");

    let (code, out) = w.run(&["test", "--receiver", &receiver], &[]);
    assert_eq!(code, 2, "two webhooks: say which: {out}");
    assert!(out.contains("say which with --url or --id"), "{out}");
    let (code, out) = w.run(&["delete", "--id", &other], &[]);
    assert_eq!(code, 0, "{out}");

    // The receiver stopped: UP42 could not reach it; watch ends at that first failure.
    w.server.stop();
    let (code, out) = w.run(&["test", "--receiver", &receiver], &[]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains(&format!("UP42 could not reach {url}")),
        "{out}"
    );
    let (code, out) = w.run(&["watch", "--every", "1s", "--receiver", &receiver], &[]);
    assert_eq!(code, 4, "{out}");
    assert_eq!(out.lines().count(), 1, "one line: {out}");

    let (code, out) = w.run(&["delete", "--id", &id], &[]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = w.run(&["list"], &[]);
    assert!(out.starts_with("no webhooks"), "{out}");
    w.assert_nothing_secret_printed(&[
        SECRET,
        "another-secret-0123456789",
        "a-third-secret-0123456789",
    ]);
}

#[test]
fn watch_passes_each_time_with_tokens_renewed_and_each_api_refusal_is_one_line() {
    // Tokens live one second: watch every 3 s fetches new ones as they expire.
    let mut w = World::new("watch", 1);
    let url = w.url();
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", SECRET)],
    );
    assert_eq!(code, 0, "{out}");
    let receiver = w.receiver();
    let mut child = w
        .command(&["watch", "--every", "3s", "--receiver", &receiver], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut passed = Vec::new();
    while passed.len() < 3 {
        let line = lines.next().expect("a line a test").unwrap();
        assert!(line.contains(" passed: UP42's test job.status"), "{line}");
        passed.push(line);
        // Between two tests no tail is held: each test's is closed when it ends (the receiver
        // allows 16 at once, and the reader would otherwise wait for the next test's event).
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let open = common::nginx::json(&w.server.admin_get("/stats"))["backlog"]["tails_open"]
                .as_u64()
                .unwrap();
            if open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{open} tails still open after a test"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    w.outputs.push(passed.join("\n"));
    assert!(
        w.standin.tokens().len() >= 3,
        "a token per second, at least"
    );

    // (environment, arguments, what the one line says)
    type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let refusals: [Refusal; 4] = [
        (
            &[("UP42_TOKEN", "not-a-token"), ("UP42_USERNAME", "")],
            &["list"],
            "UP42 refused the token for GET (the user info) (401: expired or not valid)",
        ),
        (
            &[("UP42_PASSWORD", "wrong")],
            &["list"],
            "UP42 refused the account's credentials (401: Invalid user credentials)",
        ),
        (
            &[],
            &["--workspace", "nope", "list"],
            "UP42 does not know GET /workspaces/nope/webhooks (404",
        ),
        (
            &[],
            &["delete", "--id", "nope"],
            "(404: no such workspace or webhook): webhook nope not found",
        ),
    ];
    for (env, args, want) in refusals {
        let (code, out) = w.run(args, env);
        assert_eq!(code, 7, "{args:?}: {out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains(want), "{args:?}: {out}");
    }
    for (fail, want) in [
        ("429 7", "UP42 asks to slow down (429), retry after 7 s"),
        (
            "503",
            "UP42's API failed on GET /webhooks/events (503): try again later",
        ),
    ] {
        w.standin.fail(Some(fail));
        let (code, out) = w.run(
            &["connect", "--url", &url],
            &[("UP42_WEBHOOK_SECRET", SECRET)],
        );
        assert_eq!(code, 7, "{out}");
        assert!(out.contains(want), "{out}");
    }
    w.standin.fail(None);
    // No credentials at all: a settings error naming the variables.
    let (code, out) = w.run(&["list"], &[("UP42_USERNAME", "")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("set UP42_USERNAME and UP42_PASSWORD"), "{out}");
    w.assert_nothing_secret_printed(&[SECRET]);
}

/// Sign-in as UP42's server (Keycloak 20 and later) takes it: the token is asked for with
/// `scope=openid` (userinfo refuses a token without it); a userinfo that refuses anyway leaves the
/// workspace to the token's own `sub`; 429 and 503 from the authentication server are retried,
/// then reported as UP42's rate limit or outage (never as wrong credentials); a 200 that is not
/// UP42's JSON (a proxy's page) answering a creation is an error naming it, never "created".
#[test]
fn sign_in_as_keycloak_takes_it_and_busy_or_odd_answers_are_named_as_such() {
    let mut w = World::new("sign-in", 300);
    let token_path = "/realms/public/protocol/openid-connect/token";
    let userinfo_path = "/realms/public/protocol/openid-connect/userinfo";
    let requests = |w: &World, path: &str| {
        w.standin
            .log()
            .iter()
            .filter(|e| e["path"].as_str() == Some(path))
            .count()
    };
    let listed = format!("/workspaces/{WORKSPACE}/webhooks");

    // The token request asks for openid; the token's userinfo names the workspace.
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 0, "{out}");
    let log = w.standin.log();
    let asked = log
        .iter()
        .find(|e| e["path"].as_str() == Some(token_path))
        .unwrap();
    let form: Vec<&str> = asked["body"].as_str().unwrap().split('&').collect();
    assert!(form.contains(&"scope=openid"), "{form:?}");
    assert!(form.contains(&"client_id=up42-api"), "{form:?}");
    let issued = log.iter().find(|e| e["issued"].is_string()).unwrap();
    assert_eq!(issued["scope"], "openid profile email");
    assert!(log.iter().any(|e| e["path"].as_str() == Some(&listed)));

    // A token asked for as before (no scope): the stand-in's userinfo refuses it as Keycloak does,
    // and the program takes the workspace from the token itself.
    let api = format!("https://127.0.0.1:{}", w.standin.port);
    let plain = w.token(&[]);
    let token = plain["access_token"].as_str().unwrap().to_string();
    assert_eq!(plain["scope"], "profile email");
    let refused = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&w.ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{api}{userinfo_path}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");
    let before = requests(&w, &listed);
    let (code, out) = w.run(&["list"], &[("UP42_TOKEN", &token), ("UP42_USERNAME", "")]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(requests(&w, &listed), before + 1);

    // A userinfo that refuses every token (a policy of UP42's own): the token's sub again.
    std::fs::write(w.standin.log.with_extension("jsonl.userinfo"), "403").unwrap();
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(requests(&w, &listed), before + 2);
    std::fs::remove_file(w.standin.log.with_extension("jsonl.userinfo")).unwrap();

    // 429 twice from the token endpoint: retried after Retry-After, then signed in.
    let auth_fail = w.standin.log.with_extension("jsonl.auth-fail");
    std::fs::write(&auth_fail, "429 1 2").unwrap();
    let tokens = requests(&w, token_path);
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(requests(&w, token_path), tokens + 3);
    assert!(!auth_fail.exists());

    // An outage: four tries, then one line that says so and blames no credentials.
    std::fs::write(&auth_fail, "503 1").unwrap();
    let tokens = requests(&w, token_path);
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 7, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(
            "UP42's authentication is unavailable (the token: 503, retry after 1 s, 4 tries)"
        ),
        "{out}"
    );
    assert!(!out.contains("UP42_USERNAME"), "{out}");
    assert_eq!(requests(&w, token_path), tokens + 4);
    std::fs::write(&auth_fail, "429 1").unwrap();
    let (code, out) = w.run(&["list"], &[]);
    assert_eq!(code, 7, "{out}");
    assert!(
        out.contains("UP42's authentication asks to slow down (the token: 429, retry after 1 s"),
        "{out}"
    );
    std::fs::remove_file(&auth_fail).unwrap();

    // A proxy's page answering the creation with 200: an error that names it; nothing "created".
    let html = w.standin.log.with_extension("jsonl.html");
    std::fs::write(&html, "POST").unwrap();
    let url = w.url();
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", SECRET)],
    );
    std::fs::remove_file(&html).unwrap();
    assert_eq!(code, 7, "{out}");
    assert!(
        out.contains(&format!(
            "UP42's API answered POST /workspaces/{WORKSPACE}/webhooks with what is not its JSON: 200 with text/html \"<html><head><title>Sign in to the network"
        )),
        "{out}"
    );
    assert!(!out.contains("created"), "{out}");
    w.assert_nothing_secret_printed(&[SECRET]);
}

/// make connect and make up42-test, against make serve over HTTPS with its own secret file (make
/// secret): connect gives UP42 that file's first line, up42-test reads make serve's admin address.
#[test]
fn make_connect_and_make_up42_test_wrap_the_commands_for_make_serve() {
    use common::make::{project_copy, release_dir_with_up42wh, Make, Stop};
    use common::Scratch;
    let copy = Scratch::new("make-up42");
    project_copy(copy.path());
    let dir = scratch("make");
    let (ca, cert, key) = certificates(&dir);
    let standin = StandIn::start(&dir, &ca, &cert, &key, 300);
    let (port, admin) = (free_port(), free_port());
    let api = format!("https://127.0.0.1:{}", standin.port);
    let make = Make {
        dir: copy.path().to_path_buf(),
        release: release_dir_with_up42wh(),
        vars: vec![
            ("PORT".into(), port.to_string()),
            ("ADMIN_PORT".into(), admin.to_string()),
            ("TLS_CERT".into(), cert.display().to_string()),
            ("TLS_KEY".into(), key.display().to_string()),
        ],
        env: [
            ("UP42_API_URL", api.as_str()),
            ("UP42_AUTH_URL", api.as_str()),
            ("UP42_CA_FILE", ca.to_str().unwrap()),
            ("UP42_USERNAME", USERNAME),
            ("UP42_PASSWORD", PASSWORD),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec(),
    };
    assert!(make.fails("connect").contains("make connect URL=https://"));
    make.ok("secret");
    let secret = std::fs::read_to_string(copy.path().join("run/secret")).unwrap();
    make.ok("serve");
    let _stop = Stop(&make);
    let url = format!("https://127.0.0.1:{port}/receive-webhooks");
    let out = make.ok(&format!("connect URL={url}"));
    assert!(
        out.contains("created webhook ") && out.contains("run/secret"),
        "{out}"
    );
    let created = standin
        .log()
        .into_iter()
        .find(|e| e["method"] == "POST" && e["path"] == format!("/workspaces/{WORKSPACE}/webhooks"))
        .expect("the create request");
    let body: serde_json::Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["secret"], secret.lines().next().unwrap());
    let tested = make.ok("up42-test");
    assert!(
        tested.contains("passed: UP42's test job.status"),
        "{tested}"
    );
    // make reconcile: what UP42 says changed, stored in make serve's receiver; make serve
    // RECONCILE=1 runs it once the receiver answers.
    let order = "0d1f2e3c-0000-4000-8000-000000000001";
    std::fs::write(
        &standin.orders,
        serde_json::json!({order: {"status": "FULFILLED", "updatedAt": up42webhooks::format_rfc3339(common::nginx::now() - 60)}})
            .to_string(),
    )
    .unwrap();
    let reconciled = make.ok("reconcile");
    assert!(
        reconciled.contains(&format!("learnt: order {order} is FULFILLED"))
            && copy.path().join("run/reconcile.json").exists(),
        "{reconciled}"
    );
    make.ok("stop");
    let served = make.ok("serve RECONCILE=1");
    assert!(
        served.contains("receiving on ") && served.contains("the receiver had every status"),
        "{served}"
    );
    for out in [&out, &tested, &reconciled, &served] {
        assert!(!out.contains(secret.trim()), "the secret printed: {out}");
        for t in standin.tokens() {
            assert!(!out.contains(&t), "a token printed: {out}");
        }
    }
}
