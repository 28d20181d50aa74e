//! Real nginx for the end-to-end tests: the project's own config (openresty/), laid out by
//! openresty/prefix.sh in a temporary prefix, the public listener and the admin listener each on a
//! free 127.0.0.1 port, `worker_processes auto`. HTTP/1.0 requests over plain sockets (curl for
//! TLS and HTTP/2); every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The UP42 secret every test server is started with (unless a test clears it).
pub const SECRET: &str = "e2e-secret-Vm9sdW1lLTM3";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn nginx_binary() -> String {
    if let Ok(n) = std::env::var("NGINX") {
        return n;
    }
    for candidate in ["openresty", "nginx", "/usr/sbin/nginx"] {
        if Command::new(candidate)
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return candidate.to_string();
        }
    }
    panic!("no nginx: install nginx + libnginx-mod-http-lua + lua-resty-core + lua-cjson (make test does)");
}

/// A port free now, and never one this process was given before: the kernel may hand the same
/// ephemeral port to two binds in a row once the first is closed, and a server given the same
/// port for its public and admin listeners answers admin requests as public ones.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no free port not given before in 1000 tries");
}

/// A change to default.conf before nginx starts.
pub type Edit<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// The edit that gives configure{} `settings` and runs `lua` in init_by_lua after it (a test hook).
pub fn configured<'a>(settings: &str, lua: &str) -> impl Fn(&str) -> String + 'a {
    let configure = format!("require(\"up42webhooks\").configure{{ {settings} }}\n{lua}");
    move |conf: &str| conf.replace("require(\"up42webhooks\").configure{}", &configure)
}

/// How to start a server; `Setup::default().start()` is the project's config as it is.
#[derive(Default)]
pub struct Setup<'a> {
    /// default.conf passed through this (a smaller store, a trusted proxy, a sender's location).
    pub edit: Option<Edit<'a>>,
    /// Extra environment for nginx, after the settings are cleared and the secret is set.
    pub env: Vec<(String, String)>,
    /// Certificate and key: the public listener speaks TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The admin listener's address instead of 127.0.0.1 and a free port.
    pub admin_listen: Option<String>,
}

impl<'a> Setup<'a> {
    pub fn edit(mut self, f: impl Fn(&str) -> String + 'a) -> Setup<'a> {
        self.edit = Some(Box::new(f));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Setup<'a> {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> Server {
        let lib = crate::common::cdylib();
        let port = free_port();
        let admin_listen = self
            .admin_listen
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        // The first admin address is the one the tests read from.
        let (admin_host, admin_port) = admin_listen
            .split_whitespace()
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .expect("host:port");
        let (admin_host, admin_port) = (admin_host.to_string(), admin_port.parse().unwrap());
        let dir = std::env::temp_dir().join(format!("up42wh-e2e-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nginx = nginx_binary();
        let mut prefix = Command::new(crate::common::root().join("openresty/prefix.sh"));
        crate::common::hermetic(&mut prefix)
            .arg(&dir)
            .arg(port.to_string())
            .arg(lib.parent().unwrap())
            .arg(&nginx)
            .env("ADMIN_LISTEN", &admin_listen);
        if let Some((cert, key)) = &self.tls {
            prefix.env("TLS_CERT", cert).env("TLS_KEY", key);
        }
        let out = prefix.output().unwrap();
        assert!(
            out.status.success(),
            "prefix.sh lays out the prefix: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf_path = dir.join("conf/default.conf");
        let conf = std::fs::read_to_string(&conf_path).unwrap();
        if let Some(edit) = &self.edit {
            let edited = edit(&conf);
            if edited != conf {
                std::fs::remove_file(&conf_path).unwrap(); // a link to the project's file: replace, not write through
                std::fs::write(&conf_path, edited).unwrap();
            }
        }
        let env: Vec<(String, String)> =
            std::iter::once(("UP42_WEBHOOK_SECRET".to_string(), SECRET.to_string()))
                .chain(self.env)
                .collect();
        let child = spawn(&nginx, &dir, &env);
        let mut server = Server {
            port,
            admin_port,
            admin_host,
            tls: self.tls.is_some(),
            dir,
            nginx,
            env,
            child,
        };
        server.wait_up();
        server
    }
}

/// nginx in the foreground on the prefix `dir`, with only `env` of the project's settings.
fn spawn(nginx: &str, dir: &Path, env: &[(String, String)]) -> Child {
    use std::os::unix::process::CommandExt;
    crate::common::hermetic(&mut Command::new(nginx))
        // A process group of its own: a crash kills the master and every worker in one signal,
        // so the master cannot respawn a worker between them.
        .process_group(0)
        .arg("-p")
        .arg(dir)
        .args(["-c", "conf/nginx.conf", "-g", "daemon off;"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The processes whose parent is `pid` (from /proc: no procps needed).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after its closing paren.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Whether `pid` runs: gone, or a zombie waiting for its parent to reap it, is not.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

pub fn kill9(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let _ = Command::new("kill").arg("-9").args(&list).status();
}

pub struct Server {
    /// The public listener's port, on 127.0.0.1.
    pub port: u16,
    /// The admin listener's port, on `admin_host`.
    pub admin_port: u16,
    pub admin_host: String,
    pub tls: bool,
    pub dir: PathBuf,
    pub nginx: String,
    env: Vec<(String, String)>,
    child: Child,
}

impl Server {
    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.admin_ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not come up: {}", self.error_log());
    }

    /// The master's pid and its workers'.
    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    /// `kill -9` of the master and every worker at once, as a crash or an OOM kill would.
    pub fn crash(&mut self) {
        let mut all = self.worker_pids();
        all.push(self.child.id());
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        // The workers die with the master's signal or their own; wait until none is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && all.iter().any(|&p| alive(p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A clean stop (QUIT: the workers finish and run exit_worker), waited for (bounded).
    pub fn stop(&mut self) {
        assert!(
            self.signal_and_wait("QUIT", 10),
            "nginx did not stop within 10 s"
        );
    }

    /// Sends the master `signal` and waits up to `seconds` for it to exit: whether it did.
    fn signal_and_wait(&mut self, signal: &str, seconds: u64) -> bool {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts nginx again on the same prefix (run directory), as `make serve` after a crash; one
    /// still running is stopped first (QUIT, as `make restart`). Without that, the old master
    /// would keep the ports, the new one would exit, and the old one would answer for it.
    pub fn restart(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
        self.child = spawn(&self.nginx, &self.dir, &self.env);
        self.wait_up();
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "the restarted nginx exited: {}",
            self.error_log()
        );
    }

    /// HUP: nginx re-reads its config and starts new workers; the shared dicts stay.
    pub fn reload(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    pub fn start() -> Server {
        Setup::default().start()
    }

    /// The project's config passed through `edit`, with extra environment variables.
    pub fn start_with(edit: impl Fn(&str) -> String, env: &[(&str, &str)]) -> Server {
        let mut setup = Setup::default().edit(edit);
        for (k, v) in env {
            setup = setup.env(k, v);
        }
        setup.start()
    }

    fn admin_ping(&self) -> bool {
        let Ok(addr) = format!("{}:{}", self.admin_host, self.admin_port).parse() else {
            return false;
        };
        http_at(addr, "GET", "/ping", &[], b"").is_some_and(|r| r.status == 200)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    /// A request to the public listener (plain HTTP).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Response> {
        http(self.port, method, path, headers, body)
    }

    pub fn try_get(&self, path: &str) -> Option<Response> {
        self.try_request("GET", path, &[], b"")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, path, headers, body)
            .expect("a complete HTTP response")
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Posts each delivery, asserting that it was stored (200).
    pub fn store(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        for d in deliveries {
            let r = self.post(&d);
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    pub fn post(&self, d: &Delivery) -> Response {
        post_to(self.port, d)
    }

    /// A request to the admin listener, from 127.0.0.1.
    pub fn admin(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        http(self.admin_port, method, path, headers, b"").unwrap_or_else(|| {
            panic!(
                "{method} {path}: no complete HTTP response; error.log:\n{}",
                self.error_log()
            )
        })
    }

    pub fn admin_get(&self, path: &str) -> Response {
        self.admin("GET", path, &[])
    }

    /// The dump's event lines and its closing count, from the admin listener.
    pub fn dump(&self, query: &str) -> (Vec<String>, u64) {
        let (lines, last) = self.dump_lines(query);
        let n = last["number_webhooks_received"]
            .as_u64()
            .expect("the count");
        (lines, n)
    }

    /// The dump's event lines, its count and its `next` cursor (a key of the shared-dict store).
    pub fn dump_page(&self, query: &str) -> (Vec<String>, u64, u64) {
        let (lines, last) = self.dump_lines(query);
        let n = last["number_webhooks_received"]
            .as_u64()
            .expect("the count");
        let next = last["next"].as_u64().expect("the cursor");
        (lines, n, next)
    }

    /// The dump's event lines and its closing line.
    pub fn dump_lines(&self, query: &str) -> (Vec<String>, serde_json::Value) {
        let r = self.admin_get(&format!("/dump-webhooks{query}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let last = serde_json::from_str(&lines.pop().expect("a last line"))
            .expect("the last line is JSON");
        (lines, last)
    }

    /// No error-level line in the log, and the secret in no log.
    pub fn assert_clean_logs(&self) {
        let error = self.error_log();
        for level in ["[error]", "[crit]", "[alert]", "[emerg]"] {
            assert!(!error.contains(level), "error.log has {level}:\n{error}");
        }
        let access = std::fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default();
        assert!(
            !error.contains(SECRET) && !access.contains(SECRET),
            "the secret is in a log"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The master runs in the foreground as our child: TERM is nginx's fast shutdown.
        if self.signal_and_wait("TERM", 5) {
            let _ = std::fs::remove_dir_all(&self.dir);
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(raw: &[u8]) -> Option<Response> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        Some(Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// A signed job.status FAILED delivery with message id `id`, timestamped now.
pub fn fresh(id: &str) -> Delivery {
    let t = now();
    let body = format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"FAILED"}}}}"#,
        up42webhooks::format_rfc3339(t)
    );
    Delivery::signed(body.as_bytes(), SECRET, t)
}

/// A signed UP42 delivery; fields are public so that cases can break one thing at a time.
#[derive(Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn signed(body: &[u8], secret: &str, created: i64) -> Delivery {
        Delivery {
            headers: crate::common::signed_headers(body, secret, created),
            body: body.to_vec(),
        }
    }

    pub fn without(mut self, name: &str) -> Delivery {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    pub fn with(mut self, name: &str, value: &str) -> Delivery {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` on a new connection, read to the end; `None` when any
/// step fails.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    http_at(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        method,
        path,
        headers,
        body,
    )
}

/// The same to any address (a test host in a network namespace).
pub fn http_at(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("Host: 127.0.0.1\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    Response::parse(&raw)
}

/// Posts a delivery to /receive-webhooks on `port` (usable from threads, which cannot borrow a
/// Server).
pub fn post_to(port: u16, d: &Delivery) -> Response {
    http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body)
        .expect("a complete HTTP response")
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (openssl), in `dir`: (cert, key).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
