//! The up42wh-sign tool: what it prints verifies with the library, and it never prints the secret.

use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use up42webhooks::{check_timestamp, verify, Headers, Key, Options};

const SECRET: &str = "s3cr3t-for-the-cli-test";

fn tool(args: &[&str], env_secret: Option<&str>, stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_up42wh-sign"));
    cmd.args(args)
        .env_remove("UP42_WEBHOOK_SECRET")
        .env_remove("UP42_WEBHOOK_SECRET_FILE");
    if let Some(s) = env_secret {
        cmd.env("UP42_WEBHOOK_SECRET", s);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(SECRET),
            "the secret is never printed"
        );
    }
    out
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Splits `Name: value` lines (up to an empty line) and the rest.
fn headers_and_rest(text: &str) -> (Vec<(String, String)>, String) {
    let (head, rest) = text.split_once("\n\n").unwrap_or((text, ""));
    let headers = head
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("header line");
            (n.to_string(), v.to_string())
        })
        .collect();
    (headers, rest.trim_end_matches('\n').to_string())
}

fn verifies(headers: &[(String, String)], body: &[u8], at: i64) -> bool {
    let pairs = crate::common::byte_pairs(headers);
    verify(
        &Key::new(&[SECRET]).unwrap(),
        &Headers::Pairs(&pairs),
        body,
        at,
        &Options::default(),
    )
    .is_ok()
}

#[test]
fn signs_stdin_and_files_verifiably() {
    let body = br#"{"event":"job.status","x":"\u00fc"}"#;
    let out = tool(&["--created", "1700000000"], Some(SECRET), body);
    let (headers, rest) = headers_and_rest(&crate::common::stdout_of(&out, "up42wh-sign"));
    assert_eq!(
        headers.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        ["Content-Digest", "Signature-Input", "Signature"]
    );
    assert!(headers[0].1.starts_with("SHA-256=:"));
    assert!(headers[1].1.ends_with(";created=1700000000"));
    assert!(rest.is_empty());
    assert!(verifies(&headers, body, 1_700_000_005));
    assert!(!verifies(&headers, b"{}", 1_700_000_005));

    let dir = std::env::temp_dir().join(format!("up42wh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.json");
    std::fs::write(&file, body).unwrap();
    let secret_file = dir.join("secrets");
    std::fs::write(&secret_file, format!("\n{SECRET}\nold-secret\n")).unwrap();
    let out = tool(
        &[
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--digest",
            "sha-512",
            "--byte-sequence",
            file.to_str().unwrap(),
        ],
        None,
        b"",
    );
    let (headers, _) = headers_and_rest(&crate::common::stdout_of(&out, "up42wh-sign"));
    assert!(headers[0].1.starts_with("sha-512=:") && headers[2].1.starts_with("up42-sig=:"));
    assert!(verifies(&headers, body, now()), "created defaults to now");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generates_fresh_test_events() {
    for (kind, status, event) in [
        ("job", "FAILED", "job.status"),
        ("order", "FULFILLED", "order.status"),
    ] {
        let out = tool(&["--event", kind, "--status", status], Some(SECRET), b"");
        let (headers, body) = headers_and_rest(&crate::common::stdout_of(&out, "up42wh-sign"));
        assert!(
            verifies(&headers, body.as_bytes(), now()),
            "{kind} event verifies"
        );
        assert!(
            body.contains(&format!(r#""event":"{event}""#))
                && body.contains(&format!(r#""status":"{status}""#))
        );
        assert!(body.contains(r#""liveMode":false"#));
        let ts = body
            .split(r#""timestamp":""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            check_timestamp(ts.as_bytes(), now(), &Options::default()).is_ok(),
            "fresh timestamp {ts}"
        );
    }
    let a = tool(&["--event", "job"], Some(SECRET), b"").stdout;
    let b = tool(&["--event", "job"], Some(SECRET), b"").stdout;
    assert_ne!(a, b, "each event gets its own messageId");
}

#[test]
fn prints_a_curl_command() {
    let out = tool(
        &["--url", "http://127.0.0.1:9888/receive-webhooks", "-"],
        Some(SECRET),
        b"{\"it's\":1}",
    );
    assert!(out.status.success());
    let cmd = String::from_utf8(out.stdout).unwrap();
    assert!(cmd.starts_with("curl -sS -X POST 'http://127.0.0.1:9888/receive-webhooks' -H 'Content-Type: application/json'"));
    for h in [
        "-H 'Content-Digest: SHA-256=:",
        "-H 'Signature-Input: up42-sig=(\"content-digest\")",
        "-H 'Signature: up42-sig=",
    ] {
        assert!(cmd.contains(h), "{h} in {cmd}");
    }
    assert!(
        cmd.trim_end().ends_with(r#"--data-binary '{"it'\''s":1}'"#),
        "{cmd}"
    );
}

#[test]
fn clear_errors() {
    let out = tool(&["--event", "job"], None, b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secret: set UP42_WEBHOOK_SECRET"));
    let out = tool(&["--digest", "md5"], Some(SECRET), b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--digest takes up42, sha-256 or sha-512")
    );
    let out = tool(
        &["--event", "job", "--status", "bad\"status"],
        Some(SECRET),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let out = tool(&["--label", "Bad Label", "-"], Some(SECRET), b"x");
    assert_eq!(out.status.code(), Some(1));
    let out = tool(&["--help"], None, b"");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("usage: up42wh-sign")
    );
}
