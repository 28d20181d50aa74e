//! One attempt to deliver one event to one route's sink: an HTTP POST signed with Standard
//! Webhooks headers, a Slack message, or a program with the event on its standard input. Nothing
//! from the event ever goes into a program's arguments or a shell.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{Route, Sink};
use super::event::Event;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again (408, 429, 5xx, a timeout, no connection, a program that failed), after
    /// at least `after` when the sink said so (`Retry-After`).
    Retry {
        after: Option<Duration>,
        status: Option<u16>,
        error: String,
    },
    /// Not worth trying again (another 4xx): dead-lettered at once.
    Fail {
        status: Option<u16>,
        error: String,
    },
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The `webhook-id` of an event: its delivery id when Standard Webhooks' signed content can carry
/// it as it is (letters, digits, `_`, `-`), else `msg_` and a digest of the sender and the id (or
/// of the body, for an event without one): the same event always gets the same id.
pub fn webhook_id(e: &Event) -> String {
    if let Some(id) = &e.delivery_id {
        if !id.is_empty()
            && id.len() <= 200
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return id.clone();
        }
    }
    let mut h = sha2::Sha256::new();
    h.update(e.sender.as_deref().unwrap_or("").as_bytes());
    h.update(b"\n");
    match &e.delivery_id {
        Some(id) => h.update(id.as_bytes()),
        None => h.update(e.body().as_bytes()),
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = http_date(v)?;
    Some(Duration::from_secs(
        t.saturating_sub(now_secs()).max(0) as u64
    ))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in unix seconds.
fn http_date(v: &str) -> Option<i64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? + 1;
    let stamp = format!("{year}-{m:02}-{:02}T{time}Z", day.parse::<u32>().ok()?);
    up42webhooks::parse_rfc3339(stamp.as_bytes()).ok()
}

/// What an HTTP answer means for the event.
fn judge(
    status: u16,
    retry_after_header: Option<&str>,
    retry_statuses: &[u16],
    body: &str,
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let error = format!(
        "answered {status}{}",
        if body.is_empty() {
            String::new()
        } else {
            format!(": {}", body.chars().take(200).collect::<String>())
        }
    );
    if status == 408 || status == 429 || status >= 500 || retry_statuses.contains(&status) {
        Outcome::Retry {
            after: retry_after_header.and_then(retry_after),
            status: Some(status),
            error,
        }
    } else {
        Outcome::Fail {
            status: Some(status),
            error,
        }
    }
}

fn transport(e: reqwest::Error) -> Outcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // Without the URL: a Slack URL is a secret.
    Outcome::Retry {
        after: None,
        status: None,
        error: format!("{what}: {}", e.without_url()),
    }
}

async fn post(
    client: &reqwest::Client,
    route: &Route,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> Outcome {
    let mut req = client
        .post(url)
        .timeout(route.timeout)
        .header("content-type", "application/json")
        .body(body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ra = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.text().await.unwrap_or_default();
            judge(status, ra.as_deref(), &route.retry_statuses, text.trim())
        }
        Err(e) => transport(e),
    }
}

/// The Slack message: who, what, live or test, when; in text (notifications) and blocks.
pub fn slack_message(e: &Event) -> serde_json::Value {
    let what = match e.event_type.as_deref() {
        Some("job.status") => format!(
            "job {}",
            e.body_member("jobId").unwrap_or_else(|| "?".into())
        ),
        Some("order.status") => format!(
            "order {}",
            e.body_member("orderId").unwrap_or_else(|| "?".into())
        ),
        Some(t) => t.to_string(),
        None => "event".to_string(),
    };
    let status = e.status.as_deref().unwrap_or("(no status)");
    let mode = match e.live {
        Some(true) => "live",
        Some(false) => "test",
        None => "",
    };
    let when = e
        .received
        .map(up42webhooks::format_rfc3339)
        .unwrap_or_default();
    let sender = e.sender.as_deref().unwrap_or("up42");
    let text = format!(
        "{} {what}: {status}{}{}",
        if sender == "up42" {
            "UP42".to_string()
        } else {
            sender.to_string()
        },
        if mode.is_empty() {
            String::new()
        } else {
            format!(" ({mode})")
        },
        if when.is_empty() {
            String::new()
        } else {
            format!(" at {when}")
        }
    );
    serde_json::json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{what}*: `{status}`") } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("{sender} · {} · {mode} · {when} · key {}", e.event_type.as_deref().unwrap_or("-"), e.key) } ] }
        ]
    })
}

/// Runs the program with the event on its standard input; exit 0 is delivered.
async fn exec(route: &Route, argv: &[String], e: &Event) -> Outcome {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("UP42WH_EVENT", e.event_type.as_deref().unwrap_or(""))
        .env("UP42WH_STATUS", e.status.as_deref().unwrap_or(""))
        .env("UP42WH_ID", e.delivery_id.as_deref().unwrap_or(""))
        .env(
            "UP42WH_LIVE",
            e.live.map_or("", |l| if l { "true" } else { "false" }),
        )
        .env("UP42WH_SENDER", e.sender.as_deref().unwrap_or(""))
        .env("UP42WH_KEY", &e.key.text)
        .env("UP42WH_ROUTE", &route.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            return Outcome::Retry {
                after: None,
                status: None,
                error: format!("cannot run {}: {err}", argv[0]),
            }
        }
    };
    let mut stdin = child.stdin.take();
    let mut stderr = child.stderr.take();
    let body = e.body().as_bytes().to_vec();
    let run = async {
        if let Some(mut s) = stdin.take() {
            // A program that does not read its input is not a failure.
            let _ = s.write_all(&body).await;
            let _ = s.write_all(b"\n").await;
        }
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(4096).read_to_end(&mut err).await;
        }
        (child.wait().await, err)
    };
    match tokio::time::timeout(route.timeout, run).await {
        Ok((Ok(status), _)) if status.success() => Outcome::Delivered,
        Ok((Ok(status), err)) => {
            let last = String::from_utf8_lossy(&err)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            Outcome::Retry {
                after: None,
                status: status.code().map(|c| c as u16),
                error: format!(
                    "{} exited with {status}{}",
                    argv[0],
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                ),
            }
        }
        Ok((Err(err), _)) => Outcome::Retry {
            after: None,
            status: None,
            error: format!("{}: {err}", argv[0]),
        },
        Err(_) => Outcome::Retry {
            after: None,
            status: None,
            error: format!(
                "{} did not finish within {:?}: killed",
                argv[0], route.timeout
            ),
        },
    }
}

/// One attempt.
pub async fn deliver(client: &reqwest::Client, route: &Route, e: &Event) -> Outcome {
    match &route.sink {
        Sink::Http { url, secret } => {
            let id = webhook_id(e);
            let ts = now_secs();
            let body = e.body().to_string();
            let signature = match up42webhooks::sign_standard_webhooks(
                secret.as_bytes(),
                id.as_bytes(),
                ts,
                body.as_bytes(),
            ) {
                Ok(s) => s,
                Err(code) => {
                    return Outcome::Fail {
                        status: None,
                        error: format!("cannot sign: {code:?}"),
                    }
                }
            };
            let mut verified = format!("scheme=\"{}\"", e.scheme.as_deref().unwrap_or("unknown"));
            if let Some(k) = e.key_index {
                verified.push_str(&format!(", key_index={k}"));
            }
            if let Some(s) = &e.sender {
                verified.push_str(&format!(", sender=\"{s}\""));
            }
            // The envelope travels in headers: the body stays the event as the sender sent it.
            let mut headers = vec![
                ("webhook-id", id),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", signature),
                ("up42wh-verified-by", verified),
                ("up42wh-key", e.key.text.clone()),
            ];
            if let Some(r) = e.received {
                headers.push(("up42wh-received", r.to_string()));
            }
            post(client, route, url, headers, body).await
        }
        Sink::Slack { url } => {
            post(client, route, url, Vec::new(), slack_message(e).to_string()).await
        }
        Sink::Exec { argv } => exec(route, argv, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_what_they_mean() {
        assert_eq!(judge(204, None, &[], ""), Outcome::Delivered);
        assert!(
            matches!(judge(503, Some("7"), &[], ""), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(
            judge(429, None, &[], ""),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(judge(408, None, &[], ""), Outcome::Retry { .. }));
        assert!(matches!(
            judge(404, None, &[], "no"),
            Outcome::Fail {
                status: Some(404),
                ..
            }
        ));
        assert!(matches!(
            judge(409, None, &[409], ""),
            Outcome::Retry { .. }
        ));
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn webhook_ids_are_the_delivery_id_when_they_can_be() {
        let e = |id: Option<&str>| {
            let mut line = String::from(
                r#"{"key":1,"received":1,"sender":"up42","event_type":null,"status":null,"live":null,"event":{}"#,
            );
            if let Some(id) = id {
                line.push_str(&format!(
                    r#","delivery_id":{}"#,
                    serde_json::to_string(id).unwrap()
                ));
            }
            line.push('}');
            Event::parse(&line).unwrap()
        };
        assert_eq!(webhook_id(&e(Some("377669ea-5521"))), "377669ea-5521");
        let dotted = webhook_id(&e(Some("a.b")));
        assert!(dotted.starts_with("msg_") && dotted.len() == 36, "{dotted}");
        assert_eq!(
            dotted,
            webhook_id(&e(Some("a.b"))),
            "the same id every time"
        );
        assert_ne!(webhook_id(&e(None)), dotted);
    }
}
