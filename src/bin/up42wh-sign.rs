//! up42wh-sign: sign a webhook body the way UP42 does, to send test events without a UP42 account.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use up42webhooks::{format_rfc3339, sign, DigestAlg, Key, SignOptions};

const USAGE: &str = "\
usage: up42wh-sign [options] [BODY_FILE | -]
       up42wh-sign [options] --event job|order

Signs a webhook body like UP42 does and prints the Content-Digest, Signature-Input and
Signature headers, or with --url a ready curl command that posts it.

The secret comes from --secret-file FILE, else the environment: UP42_WEBHOOK_SECRET, or
UP42_WEBHOOK_SECRET_FILE (the first line of that file signs). It is never printed.

options:
  --event job|order   sign a fresh UP42-style test event (liveMode false, new messageId, timestamp
                      now) instead of a body read from BODY_FILE or standard input
  --status STATUS     status of the --event (default SUCCEEDED for jobs, FULFILLED for orders)
  --url URL           print a curl command that posts the signed body to URL
  --body-out FILE     also write the body that was signed to FILE
  --created UNIX      the signature's created time (default: now)
  --label LABEL       signature label (default up42-sig)
  --keyid KEYID       keyid parameter (default secret)
  --digest ALG        up42 (SHA-256=, default), sha-256 or sha-512
  --byte-sequence     write the signature as :base64: (RFC 9421) instead of bare base64
  -h, --help          this text

Without --url the headers are printed one per line; a generated --event body follows after an
empty line.";

struct Args {
    body_file: Option<String>,
    event: Option<String>,
    status: Option<String>,
    url: Option<String>,
    body_out: Option<String>,
    created: Option<i64>,
    label: String,
    keyid: String,
    digest: DigestAlg,
    byte_sequence: bool,
    secret_file: Option<String>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        body_file: None,
        event: None,
        status: None,
        url: None,
        body_out: None,
        created: None,
        label: "up42-sig".into(),
        keyid: "secret".into(),
        digest: DigestAlg::Sha256Up42,
        byte_sequence: false,
        secret_file: None,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--event" => a.event = Some(value("--event")?),
            "--status" => a.status = Some(value("--status")?),
            "--url" => a.url = Some(value("--url")?),
            "--body-out" => a.body_out = Some(value("--body-out")?),
            "--secret-file" => a.secret_file = Some(value("--secret-file")?),
            "--label" => a.label = value("--label")?,
            "--keyid" => a.keyid = value("--keyid")?,
            "--byte-sequence" => a.byte_sequence = true,
            "--created" => {
                let v = value("--created")?;
                a.created = Some(
                    v.parse()
                        .map_err(|_| format!("--created takes unix seconds, not {v:?}"))?,
                );
            }
            "--digest" => {
                a.digest = match value("--digest")?.as_str() {
                    "up42" | "SHA-256" => DigestAlg::Sha256Up42,
                    "sha-256" => DigestAlg::Sha256,
                    "sha-512" => DigestAlg::Sha512,
                    other => {
                        return Err(format!(
                            "--digest takes up42, sha-256 or sha-512, not {other:?}"
                        ))
                    }
                }
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ if a.body_file.is_none() => a.body_file = Some(arg),
            _ => return Err("only one BODY_FILE".into()),
        }
    }
    if a.event.is_some() && a.body_file.is_some() {
        return Err("give either --event or a BODY_FILE, not both".into());
    }
    Ok(Some(a))
}

/// The secrets file format of the receiver: one secret a line; the first one signs.
fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

fn read_secret(file: Option<&str>) -> Result<String, String> {
    let from_file = |path: &str| {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read secret file {path}: {e}"))?;
        first_line(&text).ok_or(format!("secret file {path} holds no secret"))
    };
    if let Some(path) = file {
        return from_file(path);
    }
    match std::env::var("UP42_WEBHOOK_SECRET") {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => match std::env::var("UP42_WEBHOOK_SECRET_FILE") {
            Ok(path) if !path.is_empty() => from_file(&path),
            _ => Err("no secret: set UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE, or pass --secret-file".into()),
        },
    }
}

fn random_uuid() -> Result<String, String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn event_body(kind: &str, status: Option<&str>, now: i64) -> Result<Vec<u8>, String> {
    if let Some(s) = status {
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b' ')
        {
            return Err(format!(
                "--status takes an upper-case status like SUCCEEDED, not {s:?}"
            ));
        }
    }
    let (id, ts) = (random_uuid()?, format_rfc3339(now));
    let body = match kind {
        "job" => format!(
            r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{ts}","body":{{"jobId":"{}","status":"{}","tasks":[],"startedAt":"{ts}","finishedAt":"{ts}"}}}}"#,
            random_uuid()?,
            status.unwrap_or("SUCCEEDED")
        ),
        "order" => format!(
            r#"{{"event":"order.status","liveMode":false,"messageId":"{id}","timestamp":"{ts}","body":{{"orderId":"{}","orderType":"ARCHIVE","dataHostName":"oneatlas","status":"{}","statusIsFinal":true}}}}"#,
            random_uuid()?,
            status.unwrap_or("FULFILLED")
        ),
        other => return Err(format!("--event takes job or order, not {other:?}")),
    };
    Ok(body.into_bytes())
}

/// Quotes a word for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(args: Args) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let secret = read_secret(args.secret_file.as_deref())?;
    let key = Key::new(&[secret.as_bytes()]).map_err(|e| format!("bad secret: {e}"))?;
    let body = match (&args.event, args.body_file.as_deref()) {
        (Some(kind), _) => event_body(kind, args.status.as_deref(), now)?,
        (None, None | Some("-")) => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            b
        }
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?
        }
    };
    if let Some(path) = &args.body_out {
        std::fs::write(path, &body).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    let opts = SignOptions {
        label: args.label.as_bytes(),
        keyid: args.keyid.as_bytes(),
        digest: args.digest,
        byte_sequence: args.byte_sequence,
    };
    let signed = sign(&key, &body, args.created.unwrap_or(now), &opts).map_err(|e| {
        format!("cannot sign: {e} (is the label lower-case and the keyid printable ASCII?)")
    })?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let headers = [
        ("Content-Digest", text(signed.content_digest())),
        ("Signature-Input", text(signed.signature_input())),
        ("Signature", text(signed.signature())),
    ];
    let mut out = String::new();
    if let Some(url) = &args.url {
        out.push_str(&format!(
            "curl -sS -X POST {} -H 'Content-Type: application/json'",
            shell_quote(url)
        ));
        for (name, value) in &headers {
            out.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
        }
        match (args.body_file.as_deref(), std::str::from_utf8(&body)) {
            (Some(path), _) if path != "-" => {
                out.push_str(&format!(" --data-binary @{}", shell_quote(path)))
            }
            (_, Ok(s)) if !s.contains('\0') => {
                out.push_str(&format!(" --data-binary {}", shell_quote(s)))
            }
            _ => {
                return Err(
                    "a binary body cannot go inline into a curl command: pass it as BODY_FILE"
                        .into(),
                )
            }
        }
        out.push('\n');
    } else {
        for (name, value) in &headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        if args.event.is_some() {
            out.push('\n');
            out.push_str(&text(&body));
            out.push('\n');
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("up42wh-sign: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Some(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("up42wh-sign: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
