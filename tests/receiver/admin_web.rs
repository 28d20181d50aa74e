//! The admin listener against the web pages its operator's browser shows: a Host it does not
//! answer to (DNS rebinding) is refused before anything is read, a request from another site
//! (cross-site request forgery) changes nothing, every answer carries the headers that keep a
//! browser from sniffing, caching or framing it; a real headless Chromium tries both attacks. Also
//! the tail's opening, which must not wait for the first event.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::nginx::{configured, fresh, json, Response, Server};

/// A test hook after configure{}: every read of the store's events is counted in the stats dict
/// (`test_reads`), so that a test can tell whether a refused request read any.
const COUNTING_READS: &str = r#"
        local store = require("up42webhooks.store") -- the methods of every embedded store object
        local range = store.range
        store.range = function(...)
            ngx.shared.webhooks_stats:incr("test_reads", 1, 0)
            return range(...)
        end"#;

fn reads(srv: &Server) -> u64 {
    json(&srv.admin_get("/stats"))["counters"]["test_reads"]
        .as_u64()
        .unwrap_or(0)
}

/// How far the default consumer has acknowledged (the dump's last line says).
fn acked_to(srv: &Server) -> u64 {
    let (_, last) = srv.dump_lines("");
    last["acknowledged"]["default"]
        .as_u64()
        .unwrap_or_else(|| panic!("{last}"))
}

/// The headers every admin answer carries, whatever its status.
fn assert_browser_headers(r: &Response, what: &str) {
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    let csp = r.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp:?}");
}

#[test]
fn cross_site_requests_change_nothing_and_programs_still_acknowledge() {
    let srv = Server::start();
    srv.store((0..4).map(|i| fresh(&format!("xs-{i}"))));
    let admin = format!("127.0.0.1:{}", srv.admin_port);
    let own_origin = format!("http://{admin}");
    let host = ("Host", admin.as_str());
    // What a form, a no-cors fetch or a sendBeacon on another site's page sends.
    let foreign: [&[(&str, &str)]; 6] = [
        &[host, ("Origin", "https://evil.example")],
        &[host, ("Sec-Fetch-Site", "cross-site")],
        &[
            host,
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        // Another port of this machine: the same site, another origin.
        &[host, ("Origin", "http://127.0.0.1:8000")],
        &[host, ("Sec-Fetch-Site", "same-site")],
        // A sandboxed frame, a file:// page, a redirect across origins.
        &[host, ("Origin", "null")],
    ];
    for headers in foreign {
        let r = srv.admin("POST", "/ack-webhooks?upto=4", headers);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        let j = json(&r);
        assert_eq!(j["error"], "cross_site", "{headers:?}");
        assert!(j["msg"].as_str().unwrap().contains("another site"), "{j}");
        assert_browser_headers(&r, "a cross-site refusal");
        assert_eq!(acked_to(&srv), 0, "nothing acknowledged after {headers:?}");
    }
    let stats = json(&srv.admin_get("/stats"));
    assert_eq!(stats["counters"]["admin_cross_site"], 6);
    assert!(stats["counters"]["acked"].is_null(), "{stats}");

    // A GET to a path that changes state changes nothing either.
    let r = srv.admin("GET", "/ack-webhooks?upto=4", &[]);
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(acked_to(&srv), 0);

    // The listener's own origin (its own page, later) and programs without those headers.
    let r = srv.admin(
        "POST",
        "/ack-webhooks?upto=1",
        &[
            host,
            ("Origin", own_origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["acked"], 1);
    let localhost = format!("localhost:{}", srv.admin_port);
    let r = srv.admin(
        "POST",
        "/ack-webhooks?upto=2",
        &[
            ("Host", &localhost),
            ("Origin", &format!("http://{localhost}")),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = srv.admin("POST", "/ack-webhooks?upto=3", &[]);
    assert_eq!(r.status, 200, "curl's request: {}", r.text());
    assert_eq!(json(&r)["acked"], 1);
    assert_eq!(acked_to(&srv), 3);

    // Reads that hold or use a connection from another site's page (a no-cors fetch, an
    // EventSource, an image) are refused too; a link followed to the dump still opens it.
    let cross_read = [host, ("Sec-Fetch-Site", "cross-site")];
    for path in ["/dump-webhooks?wait=30", "/tail", "/stats"] {
        let mut headers = cross_read.to_vec();
        headers.push(("Sec-Fetch-Mode", "no-cors"));
        let r = srv.admin("GET", path, &headers);
        assert_eq!(
            (r.status, json(&r)["error"].clone()),
            (403, "cross_site".into()),
            "{path}"
        );
        let r = srv.admin("GET", path, &[host, ("Origin", "https://evil.example")]);
        assert_eq!(r.status, 403, "{path} from another origin");
    }
    let mut navigate = cross_read.to_vec();
    navigate.push(("Sec-Fetch-Mode", "navigate"));
    let r = srv.admin("GET", "/dump-webhooks", &navigate);
    assert_eq!(r.status, 200, "a link followed: {}", r.text());
    let r = srv.admin("POST", "/ack-webhooks?upto=4", &navigate);
    assert_eq!(r.status, 403, "a form posted is no link followed");
    assert_eq!(acked_to(&srv), 3);
    srv.assert_clean_logs();
}

#[test]
fn a_foreign_host_is_refused_on_every_admin_path_before_anything_is_read() {
    let srv = Server::start_with(
        configured("", COUNTING_READS),
        &[(
            "UP42_WEBHOOK_ADMIN_HOSTS",
            "admin.example.test, tunnel.example.test:8080",
        )],
    );
    assert_eq!(srv.post(&fresh("host-1")).status, 200);
    let p = srv.admin_port;
    let paths = [
        ("GET", "/dump-webhooks"),
        ("GET", "/dump-webhooks?since=0&wait=5"),
        ("GET", "/stats"),
        ("GET", "/tail"),
        ("POST", "/ack-webhooks?upto=1"),
        ("GET", "/ping"),
        ("GET", "/no-such-path"),
    ];
    let before = reads(&srv);
    let foreign = [
        format!("evil.example:{p}"),
        "evil.example".to_string(),
        format!("127.0.0.1.evil.example:{p}"),
        format!("localhost.:{p}"),
        // A configured name at a port it was not configured with.
        "tunnel.example.test:8081".to_string(),
        "tunnel.example.test".to_string(),
        format!("admin.example.test:{p}:{p}"),
    ];
    for name in &foreign {
        for (method, path) in paths {
            let started = Instant::now();
            let r = srv.admin(method, path, &[("Host", name)]);
            assert_eq!(
                r.status,
                421,
                "{method} {path} with Host {name:?}: {}",
                r.text()
            );
            assert!(started.elapsed() < Duration::from_secs(2), "not held");
            assert_eq!(json(&r)["error"], "unknown_host");
            assert_browser_headers(&r, "a refused Host");
        }
    }
    assert_eq!(reads(&srv), before, "no event was read for a refused Host");
    let stats = json(&srv.admin_get("/stats"));
    assert_eq!(
        stats["counters"]["admin_unknown_host"].as_u64(),
        Some((foreign.len() * paths.len()) as u64)
    );
    assert!(stats["counters"]["acked"].is_null(), "{stats}");
    assert!(stats["backlog"]["tails_open"] == 0, "{stats}");

    // The names it answers to: loopback ones (any port: Docker's -p and ssh -L forward another),
    // the configured ones, and no Host at all (an HTTP/1.0 program).
    let served = [
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("[::1]:{p}"),
        format!("LOCALHOST:{p}"),
        "localhost:19889".to_string(),
        "127.0.0.1".to_string(),
        "admin.example.test".to_string(),
        format!("admin.example.test:{p}"),
        "tunnel.example.test:8080".to_string(),
    ];
    for name in &served {
        let r = srv.admin("GET", "/dump-webhooks", &[("Host", name)]);
        assert_eq!(r.status, 200, "Host {name}: {}", r.text());
        assert!(r.text().contains("host-1"), "Host {name}");
        assert_browser_headers(&r, "the dump");
    }
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.write_all(b"GET /stats HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(Response::parse(&raw).unwrap().status, 200, "no Host");
    for path in ["/stats", "/no-such-path", "/ping"] {
        assert_browser_headers(&srv.admin_get(path), path);
    }

    // The public listener is unchanged: a tunnel keeps the public Host.
    let mut d = fresh("host-2");
    d = d.with("Host", "hooks.example.test");
    assert_eq!(srv.post(&d).status, 200);
    let r = srv.request("GET", "/ping", &[("Host", "anything.example")], b"");
    assert_eq!(r.status, 200);
    srv.assert_clean_logs();
    assert!(
        srv.error_log().contains("refused Host evil.example"),
        "{}",
        srv.error_log()
    );
}

#[test]
fn the_tail_opens_at_once_at_the_newest_key_and_on_an_empty_store() {
    // The default heartbeat (15 s): what the first byte used to wait for. Memory only: no journal
    // sync of this worker's can stall it while the time is measured.
    let srv = Server::start_with(|c| c.to_string(), &[("UP42_WEBHOOK_JOURNAL", "off")]);
    let first_byte = |query: &str, headers: &[(&str, &str)]| -> (Duration, String) {
        let mut s = TcpStream::connect(("127.0.0.1", srv.admin_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = format!("GET /tail{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let started = Instant::now();
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the opening comment has come (bounded by the read timeout).
        while !String::from_utf8_lossy(&got).contains(": up42webhooks tail") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&got).into_owned(),
        )
    };
    let (took, text) = first_byte("", &[]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(": up42webhooks tail"), "{text}");
    assert!(took < Duration::from_secs(1), "empty store: {took:?}");
    srv.store((0..2).map(|i| fresh(&format!("tail-{i}"))));
    let (took, text) = first_byte("?since=2", &[]);
    assert!(
        took < Duration::from_secs(1),
        "since the newest key: {took:?}: {text}"
    );
    let (took, text) = first_byte("", &[("Last-Event-ID", "2")]);
    assert!(
        took < Duration::from_secs(1),
        "Last-Event-ID: {took:?}: {text}"
    );
    assert!(!text.contains("tail-1"), "{text}");
}

/// A web server on another local port that serves one page: the "any web page the operator
/// opens". Stops when dropped.
struct PageServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PageServer {
    fn start(page: String) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(answer.as_bytes());
            }
        });
        PageServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_string();
        }
    }
    panic!("no chromium: install Debian's chromium (make test-deps does)");
}

/// Loads `url` in headless Chromium (names in `map` resolved to 127.0.0.1), lets its scripts run
/// and returns the DOM it ended with.
fn browse(url: &str, map: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!(
        "up42wh-chromium-{}-{}",
        std::process::id(),
        crate::common::nginx::free_port()
    ));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox", // root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=5000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    if !map.is_empty() {
        let rules: Vec<String> = map.iter().map(|n| format!("MAP {n} 127.0.0.1")).collect();
        cmd.arg(format!("--host-resolver-rules={}", rules.join(",")));
    }
    // Its own process group, so that a browser that hangs is ended with all its helpers.
    let out_file = profile.with_extension("dom");
    let err_file = profile.with_extension("err");
    let mut child = crate::common::hermetic(cmd.arg(url))
        .process_group(0)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("chromium did not finish with {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let dom = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&err_file);
    assert!(status.success(), "chromium: {stderr}");
    assert!(
        !dom.is_empty(),
        "chromium showed nothing for {url}: {stderr}"
    );
    dom
}

#[test]
fn a_page_in_a_real_browser_cannot_acknowledge_or_read_the_events() {
    let srv = Server::start();
    srv.store((0..3).map(|i| fresh(&format!("browser-{i}"))));
    let admin = format!("http://127.0.0.1:{}", srv.admin_port);
    // What an attacker's page does without any preflight: a no-cors POST, a form posted into a
    // frame, a beacon; and a CORS read, which the browser must not hand to the page.
    let page = format!(
        r#"<!doctype html><html><body><pre id="out">started</pre>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" action="{admin}/ack-webhooks?upto=100"></form>
<script>
const out = document.getElementById("out");
const note = (t) => {{ out.textContent += "\n" + t; }};
document.getElementById("f").submit();
navigator.sendBeacon("{admin}/ack-webhooks?upto=100");
fetch("{admin}/ack-webhooks?upto=100", {{ method: "POST", mode: "no-cors" }})
  .then(() => note("no-cors post sent"), (e) => note("no-cors post failed " + e));
fetch("{admin}/dump-webhooks")
  .then((r) => r.text()).then((t) => note("READ " + t), (e) => note("read blocked"));
</script></body></html>"#
    );
    let pages = PageServer::start(page);
    let dom = browse(&format!("http://127.0.0.1:{}/", pages.port), &[]);
    assert!(dom.contains("no-cors post sent"), "the page ran: {dom}");
    assert!(dom.contains("read blocked"), "{dom}");
    assert!(
        !dom.contains("browser-0"),
        "the page read the events: {dom}"
    );
    drop(pages);
    assert_eq!(acked_to(&srv), 0, "nothing acknowledged");
    let stats = json(&srv.admin_get("/stats"));
    assert!(stats["counters"]["acked"].is_null(), "{stats}");
    // The browser's requests did arrive, and were refused as cross-site (not lost on the way).
    let refused = stats["counters"]["admin_cross_site"].as_u64().unwrap_or(0);
    assert!(refused >= 3, "refused cross-site requests: {stats}");

    // DNS rebinding: a name of the attacker's that now resolves to 127.0.0.1. The page is
    // same-origin with the listener as far as the browser knows; the Host gives it away.
    let rebound = format!(
        "http://rebound.example.test:{}/dump-webhooks",
        srv.admin_port
    );
    let dom = browse(&rebound, &["rebound.example.test"]);
    assert!(dom.contains("unknown_host"), "{dom}");
    assert!(!dom.contains("browser-0"), "{dom}");
    // The same browser at the listener's own address is served (a link followed; the stats,
    // which it shows: the dump's NDJSON would be a download).
    let dom = browse(&format!("{admin}/stats"), &[]);
    assert!(dom.contains("\"last_key\":3"), "{dom}");
    srv.assert_clean_logs();
}
