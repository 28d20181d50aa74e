//! Put on the internet: the two listeners, a tunnel and a reverse proxy in front (a second nginx,
//! without Lua, that forwards as ngrok or a TLS-terminating proxy does), nginx's own TLS with
//! HTTP/2 and HTTP/1.1 (curl, with a certificate made here by openssl), certificate reloads, and
//! the admin listener seen from another host (a network namespace, when we are root).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::nginx::{
    free_port, fresh, http, json, nginx_binary, now, self_signed, Response, Server, Setup,
};
use crate::common::senders::rfc9421_request;

fn scratch(name: &str) -> crate::common::Scratch {
    crate::common::Scratch::new(name)
}

/// A plain nginx (no Lua) with the given `http {}` servers, in its own prefix: what stands in
/// front of the receiver, a tunnel agent or a reverse proxy, both connecting from 127.0.0.1.
struct Front {
    /// Removed after the child stops (fields drop after `drop` runs).
    dir: crate::common::Scratch,
    child: Child,
}

impl Front {
    fn start(name: &str, servers: &str, port: u16) -> Front {
        let dir = scratch(&format!("{name}-{port}"));
        for sub in ["conf", "logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("conf/nginx.conf"),
            format!(
                "worker_processes 1;\npid logs/nginx.pid;\nerror_log logs/error.log warn;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n\
                 fastcgi_temp_path tmp/fastcgi;\n  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n{servers}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .args([
                "-e",
                "logs/error.log",
                "-c",
                "conf/nginx.conf",
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let front = Front { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return front;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the front nginx did not come up: {}",
            std::fs::read_to_string(front.dir.join("logs/error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// What a tunnel agent does (ngrok, cloudflared): plain HTTP to the public port, the Host header
/// kept, the client's address appended to X-Forwarded-For, the public side's scheme (https) in
/// X-Forwarded-Proto.
fn tunnel_to(upstream: u16, port: u16) -> Front {
    Front::start(
        "tunnel",
        &format!(
            "  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n\
             proxy_set_header Host $http_host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             proxy_set_header X-Forwarded-Proto https;\n    }}\n  }}"
        ),
        port,
    )
}

/// `curl` with the given arguments; (status, HTTP version, body). `--fail` is not used: the
/// status is the point.
fn curl(args: &[&str], body: Option<&[u8]>) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
    ])
    .args(args);
    if body.is_some() {
        c.args(["--data-binary", "@-"]).stdin(Stdio::piped());
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(b) = body {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    assert!(
        out.status.success() || code != "000",
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        code.parse().unwrap_or(0),
        version.to_string(),
        body.to_string(),
    )
}

/// curl arguments for a signed delivery's headers.
fn header_args(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .flat_map(|(n, v)| ["-H".to_string(), format!("{n}: {v}")])
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_public_listener_has_deliveries_and_ping_only() {
    let srv = Server::start();
    assert_eq!(srv.post(&fresh("pub-1")).status, 200);
    for path in [
        "/dump-webhooks",
        "/stats",
        "/dump-webhooks/",
        "/stats?format=prometheus",
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 404, "{path} on the public listener");
        let j = json(&r);
        assert_eq!(j["error"], "admin_only", "{path}");
        let msg = j["msg"].as_str().unwrap();
        assert!(
            msg.contains(&format!("admin port ({})", srv.admin_port)),
            "the 404 names the admin port: {msg}"
        );
    }
    for path in [
        "/",
        "/index.html",
        "/favicon.ico",
        "/errors/404.json",
        "/receive-webhooks/x",
    ] {
        let r = srv.get(path);
        assert_eq!(
            (r.status, json(&r)["code"].as_u64()),
            (404, Some(404)),
            "{path}"
        );
        assert!(!r.text().to_ascii_lowercase().contains("nginx"));
    }
    // The admin listener has the dump, the stats and a ping, and no delivery location.
    let (lines, n) = srv.dump("");
    assert_eq!((lines.len(), n), (1, 1));
    assert_eq!(srv.admin_get("/stats").status, 200);
    assert_eq!(srv.admin_get("/ping").status, 200);
    let r = srv.admin("POST", "/receive-webhooks", &[]);
    assert_eq!((r.status, json(&r)["code"].as_u64()), (404, Some(404)));
    srv.assert_clean_logs();
}

#[test]
fn a_tunnel_from_loopback_reaches_deliveries_and_never_the_dump() {
    // Even with the README's realip setting for a proxy on this host, which makes the tunnel's
    // X-Forwarded-For the client address.
    let srv = Server::start_with(
        |c| {
            c.replacen(
                "server {\n",
                "server {\n    set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;\n",
                1,
            )
        },
        &[("UP42_WEBHOOK_ADMIN_TOKEN", "tunnel-test-token")],
    );
    let port = free_port();
    let _tunnel = tunnel_to(srv.port, port);
    let d = fresh("tunnel-1");
    assert_eq!(
        http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body)
            .unwrap()
            .status,
        200,
        "stored through the tunnel"
    );
    let forged = [("X-Forwarded-For", "127.0.0.1")];
    let token = [("Authorization", "Bearer tunnel-test-token")];
    for path in ["/dump-webhooks", "/stats"] {
        for headers in [&[][..], &forged[..], &token[..]] {
            let r = http(port, "GET", path, headers, b"").unwrap();
            assert_eq!(r.status, 404, "{path} through the tunnel with {headers:?}");
            assert_eq!(json(&r)["error"], "admin_only");
        }
    }
    assert_eq!(srv.dump("").1, 1, "the delivery is stored");
    srv.assert_clean_logs();
}

#[test]
fn the_admin_listener_needs_a_local_client_or_the_token() {
    const TOKEN: &str = "admin-token-e2e-7c1f";
    // A test-only setting on the admin server: the client address comes from X-Forwarded-For
    // (set_real_ip_from), so that a "remote" client can be tried from this host.
    let srv = Server::start_with(
        |c| {
            c.replace(
                "    set $up42webhooks_listener admin;\n",
                "    set $up42webhooks_listener admin;\n    set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;\n",
            )
        },
        &[("UP42_WEBHOOK_ADMIN_TOKEN", TOKEN)],
    );
    assert_eq!(srv.post(&fresh("admin-1")).status, 200);
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/dump-webhooks", "/stats"] {
        assert_eq!(srv.admin_get(path).status, 200, "{path} from loopback");
        // Private addresses (a LAN, Docker's bridge) are not local: they need the token too.
        for client in ["203.0.113.7", "192.168.1.20", "172.17.0.1", "10.0.0.2"] {
            let xff = ("X-Forwarded-For", client);
            let r = srv.admin("GET", path, &[xff]);
            assert_eq!(r.status, 403, "{path} from {client}");
            assert_eq!(json(&r)["error"], "forbidden");
            let wrong = ("Authorization", "Bearer admin-token-e2e-7c1X");
            assert_eq!(srv.admin("GET", path, &[xff, wrong]).status, 403);
            let right = ("Authorization", bearer.as_str());
            assert_eq!(srv.admin("GET", path, &[xff, right]).status, 200);
        }
    }
    let log = srv.error_log();
    assert!(
        log.contains("denied /dump-webhooks to 203.0.113.7"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is not logged");
    srv.assert_clean_logs();
}

/// A network namespace with a veth pair: a second host on a /30 of the benchmarking range
/// (198.18.0.0/15, RFC 2544: never routed), reaching this one at `.1` from `.2`. The first /30 that
/// no interface or route of this machine uses. Removed on drop.
struct TestHost {
    ns: String,
    /// This host's address on the pair, and the test host's.
    here: String,
    there: String,
}

impl TestHost {
    fn create() -> Result<TestHost, String> {
        let pid = std::process::id();
        let ns = format!("up42wh-{pid}");
        let (host_if, ns_if) = (format!("u42h{pid}"), format!("u42n{pid}"));
        let used = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .map_err(|e| format!("ip: {e}"))
        };
        let in_use = used(&["-4", "addr"])? + &used(&["-4", "route"])?;
        let net = ["198.18.213", "198.19.213", "198.18.97", "198.19.97"]
            .into_iter()
            .find(|n| !in_use.contains(&format!("{n}.")))
            .ok_or("every candidate network is in use here")?;
        let (here, there) = (format!("{net}.1"), format!("{net}.2"));
        let host = TestHost {
            ns: ns.clone(),
            here: here.clone(),
            there: there.clone(),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                ns_if.clone(),
                "netns".into(),
                ns.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{here}/30"),
                "dev".into(),
                host_if.clone(),
            ],
            vec!["link".into(), "set".into(), host_if, "up".into()],
            vec![
                "-n".into(),
                ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{there}/30"),
                "dev".into(),
                ns_if.clone(),
            ],
            vec![
                "-n".into(),
                ns.clone(),
                "link".into(),
                "set".into(),
                ns_if,
                "up".into(),
            ],
            vec![
                "-n".into(),
                ns,
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for step in steps {
            let out = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(host)
    }

    /// curl run inside the namespace.
    fn curl(&self, url: &str, headers: &[&str]) -> (u16, String) {
        let mut args = vec!["netns", "exec", &self.ns, "curl", "-sS", "--max-time", "10"];
        args.extend(["-o", "-", "-w", "\n%{http_code}", url]);
        for h in headers {
            args.extend(["-H", h]);
        }
        let out = Command::new("ip").args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it ours.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn the_admin_listener_from_another_host_needs_the_token() {
    let host = match TestHost::create() {
        Ok(h) => h,
        // CI runs as root with iproute2 (make test-deps); elsewhere say why this one did not run.
        Err(e) if !is_root() => {
            eprintln!("skipped: a network namespace needs root ({e})");
            return;
        }
        Err(e) => panic!("cannot make the test host: {e}"),
    };
    const TOKEN: &str = "netns-admin-token";
    let admin_port = free_port();
    // Loopback for local reads, and the address the other host reaches.
    let srv = Setup {
        admin_listen: Some(format!("127.0.0.1:{admin_port} {}:{admin_port}", host.here)),
        ..Setup::default()
    }
    .env("UP42_WEBHOOK_ADMIN_TOKEN", TOKEN)
    .start();
    assert_eq!(srv.post(&fresh("netns-1")).status, 200);
    for path in ["/dump-webhooks", "/stats"] {
        let url = format!("http://{}:{admin_port}{path}", host.here);
        let (status, body) = host.curl(&url, &[]);
        assert_eq!(
            status, 403,
            "{path} from {} without the token: {body}",
            host.there
        );
        let (status, _) = host.curl(&url, &["Authorization: Bearer wrong"]);
        assert_eq!(status, 403);
        let (status, body) = host.curl(&url, &[&format!("Authorization: Bearer {TOKEN}")]);
        assert_eq!(status, 200, "{path} with the token: {body}");
        assert_eq!(srv.admin_get(path).status, 200, "{path} from loopback");
    }
    let denied = format!("denied /dump-webhooks to {}", host.there);
    assert!(srv.error_log().contains(&denied), "{}", srv.error_log());
    srv.assert_clean_logs();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// curl arguments that reach `port` as https://localhost, trusting `cert`.
fn tls_args(cert: &Path, port: u16) -> Vec<String> {
    vec![
        "--cacert".into(),
        cert.display().to_string(),
        "--resolve".into(),
        format!("localhost:{port}:127.0.0.1"),
    ]
}

#[test]
fn https_with_http2_and_http11_stores_signed_deliveries() {
    let dir = scratch("tls");
    let (cert, key) = self_signed(&dir, "localhost");
    let srv = Setup {
        tls: Some((cert.clone(), key)),
        ..Setup::default()
    }
    .start();
    let url = format!("https://localhost:{}/receive-webhooks", srv.port);
    for (flag, version, id) in [("--http2", "2", "h2"), ("--http1.1", "1.1", "h1")] {
        let d = fresh(id);
        let mut args = tls_args(&cert, srv.port);
        args.extend(header_args(&d.headers));
        args.extend([flag.to_string(), url.clone()]);
        let (status, got, body) = curl(&strs(&args), Some(&d.body));
        assert_eq!((status, got.as_str()), (200, version), "{flag}: {body}");
        assert!(body.contains(r#""msg":"stored""#), "{body}");
        // The same again is a duplicate, over either protocol.
        let (status, _, body) = curl(&strs(&args), Some(&d.body));
        assert_eq!(status, 200);
        assert!(body.contains("duplicate"), "{body}");
    }
    // TLS 1.2 and 1.3 both work; the certificate is checked by curl against our CA.
    for limit in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let mut args = tls_args(&cert, srv.port);
        args.extend(limit.iter().map(|s| s.to_string()));
        args.push(format!("https://localhost:{}/ping", srv.port));
        assert_eq!(curl(&strs(&args), None).0, 200, "{limit:?}");
    }
    // TLS 1.1 is refused by the server (openssl's client can still offer it at level 0).
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", srv.port)])
        .args(["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "TLS 1.1 handshake refused");
    // OCSP stapling is off: the server sends no status even when asked.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-status",
            "-connect",
            &format!("127.0.0.1:{}", srv.port),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OCSP response: no response sent"), "{text}");
    // Plain HTTP to the TLS port: a clean JSON 400 that says what to do, not nginx's page.
    let r = http(srv.port, "GET", "/ping", &[], b"").expect("an answer");
    assert_eq!(r.status, 400);
    assert_eq!(json(&r)["error"], "plain_http");
    assert!(!r.text().to_ascii_lowercase().contains("nginx"));
    // Both deliveries stored once; the admin listener stays plain HTTP on loopback.
    assert_eq!(srv.dump("").1, 2);
    srv.assert_clean_logs();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The subject of the certificate served on `port`.
fn served_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn make_reload_serves_a_renewed_certificate() {
    let dir = scratch("renew");
    let (cert, key) = self_signed(&dir, "first");
    let srv = Setup {
        tls: Some((cert.clone(), key.clone())),
        ..Setup::default()
    }
    .start();
    assert!(served_subject(srv.port).contains("first"));
    // What certbot does on renewal: new files under the same names.
    let (new_cert, new_key) = self_signed(&dir, "second");
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(crate::common::root())
        .arg("reload")
        .arg(format!("RUN_DIR={}", srv.dir.display()))
        .arg(format!("NGINX={}", srv.nginx))
        .env_remove("UP42_WEBHOOK_SECRET")
        .env_remove("UP42_WEBHOOK_SECRET_FILE")
        .output()
        .unwrap();
    let said = crate::common::stdout_of(&out, "make reload");
    assert!(said.contains("reloaded the host server"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut subject = String::new();
    while Instant::now() < deadline {
        subject = served_subject(srv.port);
        if subject.contains("second") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        subject.contains("second"),
        "the renewed certificate is served: {subject}"
    );
    assert_eq!(srv.post(&fresh("plain")).status, 400, "still TLS only");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The UbiOps key of the reference vectors and its key id.
fn ubiops_key() -> (ed25519_dalek::SigningKey, String, String) {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::root().join("tests/vectors/senders.json")).unwrap(),
    )
    .unwrap();
    let seed: [u8; 32] = core::array::from_fn(|i| i as u8); // the reference signer's UbiOps seed
    (
        ed25519_dalek::SigningKey::from_bytes(&seed),
        v["ubiops"]["keyid"].as_str().unwrap().to_string(),
        v["ubiops"]["public_key_pem"].as_str().unwrap().to_string(),
    )
}

/// A UbiOps-style delivery (covering @method, @authority, @target-uri: https://authority/path).
fn ubiops_delivery(authority: &str, path: &str, id: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let (signing, keyid, _) = ubiops_key();
    let t = now();
    let body = format!(r#"{{"event":"deployment_request_completed","request_id":"{id}"}}"#);
    let params = format!(";created={t};keyid=\"{keyid}\";alg=\"ed25519\"");
    let headers = rfc9421_request(authority, path, body.as_bytes(), t, &params, |base| {
        use ed25519_dalek::Signer;
        signing.sign(base).to_bytes().to_vec()
    });
    (headers, body.into_bytes())
}

/// The receiver with a UbiOps sender at /hooks/ubiops; `settings` go into configure{}.
fn ubiops_server(dir: &Path, settings: &str) -> Server {
    ubiops_setup(dir, settings).start()
}

fn ubiops_setup<'a>(dir: &Path, settings: &str) -> Setup<'a> {
    let pem = dir.join("ubiops.pem");
    std::fs::write(&pem, ubiops_key().2).unwrap();
    let configure = format!(
        r#"require("up42webhooks").configure{{ {settings} senders = {{ ubiops = {{ profile = "ubiops", public_key_file = "{}" }} }} }}"#,
        pem.display()
    );
    Setup::default().edit(move |conf| {
            conf.replace("require(\"up42webhooks\").configure{}", &configure)
                .replacen(
                    "    location = /ping {",
                    "    location = /hooks/ubiops { default_type application/json; content_by_lua_block { require(\"up42webhooks\").receive(\"ubiops\") } }\n\n    location = /ping {",
                    1,
                )
    })
}

/// A TLS-terminating reverse proxy on `port` in front of `upstream`: nginx's default Host (the
/// upstream's address), with the original scheme and host in X-Forwarded-Proto/-Host on `port`
/// and in an RFC 7239 Forwarded header on `port + 0` of the second server.
fn tls_proxy_to(upstream: u16, xf_port: u16, fwd_port: u16, cert: &Path, key: &Path) -> Front {
    let server = |port: u16, headers: &str| {
        format!(
            "  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n\
             location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n{headers}    }}\n  }}\n",
            cert.display(),
            key.display()
        )
    };
    let xf = "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_set_header X-Forwarded-Proto $scheme;\n      proxy_set_header X-Forwarded-Host $http_host;\n";
    let fwd = "      proxy_set_header Forwarded \"for=$remote_addr;proto=$scheme;host=\\\"$http_host\\\"\";\n";
    Front::start(
        "proxy",
        &format!("{}{}", server(xf_port, xf), server(fwd_port, fwd)),
        fwd_port,
    )
}

#[test]
fn rfc9421_scheme_and_authority_behind_a_tls_proxy_and_a_tunnel() {
    let dir = scratch("rfc9421-proxy");
    let (cert, key) = self_signed(&dir, "localhost");
    let (xf_port, fwd_port, tunnel_port) = (free_port(), free_port(), free_port());
    let post_via_proxy = |srv: &Server, port: u16, id: &str| -> (u16, String) {
        let _proxy = tls_proxy_to(srv.port, xf_port, fwd_port, &cert, &key);
        let authority = format!("localhost:{port}");
        let (headers, body) = ubiops_delivery(&authority, "/hooks/ubiops", id);
        let mut args = tls_args(&cert, port);
        args.extend(header_args(&headers));
        args.push(format!("https://{authority}/hooks/ubiops"));
        let (status, _, text) = curl(&strs(&args), Some(&body));
        (status, text)
    };

    // nginx's own TLS: nginx sees the scheme and the Host that UbiOps signed, over either
    // HTTP version (HTTP/2 has no raw header block: the module rebuilds one).
    let direct = Setup {
        tls: Some((cert.clone(), key.clone())),
        ..ubiops_setup(&dir, "")
    }
    .start();
    for (flag, id) in [("--http2", "d-h2"), ("--http1.1", "d-h1")] {
        let authority = format!("localhost:{}", direct.port);
        let (headers, body) = ubiops_delivery(&authority, "/hooks/ubiops", id);
        let mut args = tls_args(&cert, direct.port);
        args.extend(header_args(&headers));
        args.extend([
            flag.to_string(),
            format!("https://{authority}/hooks/ubiops"),
        ]);
        let (status, _, text) = curl(&strs(&args), Some(&body));
        assert_eq!(status, 200, "{flag}: {text}");
    }
    drop(direct);

    // Nothing configured: nginx sees http://127.0.0.1:PORT, not what UbiOps signed.
    let plain = ubiops_server(&dir, "");
    let (status, text) = post_via_proxy(&plain, xf_port, "p-1");
    assert_eq!(status, 401, "{text}");
    assert_eq!(json_text(&text)["error"], "signature_mismatch");
    drop(plain);

    // The proxy trusted: its X-Forwarded-Proto/-Host, or its Forwarded header.
    let trusting = ubiops_server(&dir, r#"trusted_proxies = "127.0.0.1","#);
    for (port, id) in [(xf_port, "t-xf"), (fwd_port, "t-fwd")] {
        let (status, text) = post_via_proxy(&trusting, port, id);
        assert_eq!(status, 200, "{port}: {text}");
    }
    // The same headers from a client that is not a trusted proxy are not believed.
    let (headers, body) = ubiops_delivery("localhost:443", "/hooks/ubiops", "forged");
    let mut forged: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    forged.extend([
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "localhost:443"),
    ]);
    let other = ubiops_server(&dir, r#"trusted_proxies = "192.0.2.0/24","#);
    let r = http(other.port, "POST", "/hooks/ubiops", &forged, &body).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    drop(other);
    // ...but from the trusted one they are (a proxy on this host).
    let r = http(trusting.port, "POST", "/hooks/ubiops", &forged, &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    drop(trusting);

    // Configured instead: the public URL the sender was given.
    let fixed = ubiops_server(
        &dir,
        &format!(r#"public_url = "https://localhost:{xf_port}","#),
    );
    let (status, text) = post_via_proxy(&fixed, xf_port, "f-1");
    assert_eq!(status, 200, "{text}");
    drop(fixed);

    // A tunnel: plain HTTP from loopback, the public Host kept, X-Forwarded-Proto: https.
    let tunneled = ubiops_server(&dir, r#"trusted_proxies = "loopback","#);
    let _tunnel = tunnel_to(tunneled.port, tunnel_port);
    let (headers, body) = ubiops_delivery("hooks.example.test", "/hooks/ubiops", "tun-1");
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    h.push(("Host", "hooks.example.test"));
    let r = http(tunnel_port, "POST", "/hooks/ubiops", &h, &body).unwrap();
    assert_eq!(r.status, 200, "through the tunnel: {}", r.text());
    let _ = std::fs::remove_dir_all(&dir);
}

fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// openresty/listen.sh with a stand-in nginx that reports `version`; the two files it writes, or
/// its error.
fn listen_files(version: &str, env: &[(&str, &str)]) -> Result<(String, String), String> {
    let dir = scratch(&format!("listen-{}", version.replace('/', "-")));
    let fake = dir.join("nginx");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho 'nginx version: {version}' >&2\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = Command::new("sh");
    crate::common::hermetic(&mut c)
        .arg(crate::common::root().join("openresty/listen.sh"))
        .arg(&dir)
        .env("NGINX", &fake);
    let out = c.envs(env.iter().copied()).output().unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let result = if out.status.success() {
        Ok((
            read("up42webhooks-public.conf"),
            read("up42webhooks-admin.conf"),
        ))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The directive lines of a generated file.
fn directives(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn listen_files_for_each_nginx_and_tls_setting() {
    // Defaults: both listeners on loopback, plain HTTP.
    let (public, admin) = listen_files("nginx/1.22.1", &[]).unwrap();
    assert_eq!(
        directives(&public),
        [
            "listen 127.0.0.1:9888;",
            "set $up42webhooks_admin_port 9889;"
        ]
    );
    assert_eq!(
        directives(&admin),
        ["listen 127.0.0.1:9889;", "access_log off;"]
    );
    // Admin requests in the access log only when asked for.
    let (_, logged) = listen_files("nginx/1.22.1", &[("ADMIN_ACCESS_LOG", "on")]).unwrap();
    assert_eq!(
        directives(&logged),
        ["listen 127.0.0.1:9889;", "access_log logs/access.log;"]
    );

    let dir = scratch("listen-tls");
    let (cert, key) = self_signed(&dir, "localhost");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let tls = [
        ("LISTEN", ""),
        ("TLS_LISTEN", "0.0.0.0:443"),
        ("ADMIN_LISTEN", "127.0.0.1:7001"),
        ("TLS_CERT", cert.as_str()),
        ("TLS_KEY", key.as_str()),
    ];
    // Before nginx 1.25.1 HTTP/2 is a listen parameter; from it on, a server setting. OpenResty
    // numbers its releases after the nginx they carry.
    let (public, admin) = listen_files("nginx/1.22.1", &tls).unwrap();
    assert_eq!(
        directives(&public),
        [
            "listen 0.0.0.0:443 ssl http2;".to_string(),
            format!("ssl_certificate {cert};"),
            format!("ssl_certificate_key {key};"),
            "set $up42webhooks_admin_port 7001;".to_string(),
        ]
    );
    assert_eq!(
        directives(&admin),
        ["listen 127.0.0.1:7001;", "access_log off;"]
    );
    for newer in ["nginx/1.25.1", "openresty/1.27.1.2", "nginx/2.0.0"] {
        let (public, _) = listen_files(newer, &tls).unwrap();
        let d = directives(&public);
        assert_eq!(&d[..2], ["listen 0.0.0.0:443 ssl;", "http2 on;"], "{newer}");
    }
    let (public, _) = listen_files("nginx/1.25.0", &tls).unwrap();
    assert!(public.contains("listen 0.0.0.0:443 ssl http2;"));
    // The container's shape: plain HTTP and TLS side by side.
    let mut both = tls.to_vec();
    both[0] = ("LISTEN", "80");
    both[1] = ("TLS_LISTEN", "443");
    let (public, _) = listen_files("openresty/1.27.1.2", &both).unwrap();
    assert_eq!(&directives(&public)[..2], ["listen 80;", "listen 443 ssl;"]);
    // OCSP stapling only when asked, and then with a resolver.
    assert!(!public.contains("ssl_stapling"));
    let mut stapling = tls.to_vec();
    stapling.push(("TLS_STAPLING", "on"));
    let err = listen_files("nginx/1.22.1", &stapling).unwrap_err();
    assert!(err.contains("TLS_STAPLING=on needs RESOLVER"), "{err}");
    stapling.push(("RESOLVER", "127.0.0.53"));
    let (public, _) = listen_files("nginx/1.22.1", &stapling).unwrap();
    for line in [
        "ssl_stapling on;",
        "ssl_stapling_verify on;",
        "resolver 127.0.0.53;",
    ] {
        assert!(directives(&public).contains(&line), "{public}");
    }
    // Refusals, each with its reason.
    let mut no_key = tls.to_vec();
    no_key.retain(|(k, _)| *k != "TLS_KEY");
    for (env, reason) in [
        (no_key, "TLS needs both TLS_CERT and TLS_KEY"),
        (
            vec![
                ("TLS_LISTEN", "443"),
                ("TLS_CERT", "cert.pem"),
                ("TLS_KEY", "key.pem"),
            ],
            "cert.pem: give an absolute path",
        ),
        (
            vec![
                ("TLS_LISTEN", "443"),
                ("TLS_CERT", "/nonexistent/cert.pem"),
                ("TLS_KEY", key.as_str()),
            ],
            "cannot read /nonexistent/cert.pem",
        ),
        (vec![("LISTEN", "")], "nothing to listen on"),
    ] {
        let err = listen_files("nginx/1.22.1", &env).unwrap_err();
        assert!(err.contains(reason), "{env:?}: {err}");
    }
    assert!(listen_files("something else", &[])
        .unwrap_err()
        .contains("cannot tell the version"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw request on a new connection to `port`, read to the end (nginx closes after an error).
fn raw(port: u16, request: &[u8]) -> Response {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut s, request).unwrap();
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    Response::parse(&out).unwrap_or_else(|| {
        panic!(
            "a response to {:?}",
            String::from_utf8_lossy(&request[..request.len().min(80)])
        )
    })
}

#[test]
fn every_error_nginx_answers_itself_is_json_without_its_name() {
    let srv = Setup::default()
        .edit(|c| {
            c.replacen(
                "    location = /ping {",
                "    location = /boom { content_by_lua_block { error(\"a test-only failure\") } }\n\n    location = /ping {",
                1,
            )
        })
        .start();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let long_header = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let cases: [(&[u8], u16, &str); 8] = [
        (b"GET /ping HTTP/1.1\r\n\r\n", 400, "no Host"),
        (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "TRACE"),
        (
            b"POST /receive-webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n",
            413,
            "over client_max_body_size",
        ),
        (long_uri.as_bytes(), 414, "a URI over the buffers"),
        (
            long_header.as_bytes(),
            400,
            "a header over the buffers (494)",
        ),
        (
            b"POST /receive-webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "an unknown transfer coding",
        ),
        (
            b"GET /ping HTTP/2.0\r\nHost: x\r\n\r\n",
            505,
            "HTTP/2.0 in a request line",
        ),
        (
            b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            500,
            "a failing handler",
        ),
    ];
    for (request, status, what) in cases {
        let r = raw(srv.port, request);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let body = r.text();
        let j: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert_eq!(j["code"], status, "{what}");
        assert!(
            !body.to_ascii_lowercase().contains("nginx"),
            "{what}: {body}"
        );
        assert!(
            !r.header("server")
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("nginx"),
            "{what}"
        );
    }
    // The admin listener answers the same way.
    let r = raw(srv.admin_port, b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, json(&r)["code"].as_u64()), (405, Some(405)));
}
