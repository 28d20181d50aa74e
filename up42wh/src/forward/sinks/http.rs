//! `sink = "http"`: the event POSTed as the sender sent it, signed with Standard Webhooks headers
//! under the route's `whsec_` secret, its envelope in `up42wh-*` headers. Also the HTTP plumbing
//! the Slack sink shares: one client that never follows a redirect, and what an answer means.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest;
use toml::Spanned;

use super::{Attempt, Call, Context, Outcome, Sink};
use crate::error::Error;
use crate::forward::event::Event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    url: Spanned<String>,
    secret: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
}

pub struct HttpSink {
    url: String,
    secret: String,
}

impl Conf {
    pub fn build(self, cx: &impl Context) -> Result<HttpSink, Error> {
        let url = cx.http_url(&self.url, "url")?;
        let Some(secret) = cx.secret(
            "secret",
            self.secret.as_ref(),
            self.secret_env.as_ref(),
            self.secret_file.as_ref(),
        )?
        else {
            return cx
                .err_route("an http sink signs with a whsec_ secret: secret_env or secret_file");
        };
        let unread = secret.is_empty() && !cx.reads_secrets();
        if !unread
            && up42webhooks::sign_standard_webhooks(secret.as_bytes(), b"check", 0, b"").is_err()
        {
            let span = self
                .secret_env
                .as_ref()
                .or(self.secret_file.as_ref())
                .or(self.secret.as_ref())
                .map(|s| s.span());
            return cx.err(
                span,
                "secret",
                "not a Standard Webhooks secret (whsec_ and base64)",
            );
        }
        Ok(HttpSink { url, secret })
    }
}

impl Sink for HttpSink {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn deliver<'a>(&'a self, call: &'a Call<'a>, e: &'a Event) -> Attempt<'a> {
        Box::pin(async move {
            let id = webhook_id(e);
            let ts = crate::clock::now_secs();
            let body = e.body().to_string();
            let signature = match up42webhooks::sign_standard_webhooks(
                self.secret.as_bytes(),
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
            post(call, &self.url, headers, body).await
        })
    }
}

/// The one HTTP client of the sinks: pooled connections, and no redirect ever followed (reqwest
/// follows up to ten by default).
pub fn client() -> Result<&'static reqwest::Client, Error> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| c))
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

/// What an HTTP answer means for the event: the answer's status, its `Retry-After` and
/// `Location`, the route's extra statuses to retry, the start of its body.
struct Answer<'a> {
    status: u16,
    retry_after: Option<&'a str>,
    location: Option<&'a str>,
    body: &'a str,
}

fn judge(a: &Answer, retry_statuses: &[u16]) -> Outcome {
    let status = a.status;
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let error = format!(
        "answered {status}{}",
        if a.body.is_empty() {
            String::new()
        } else {
            format!(": {}", a.body.chars().take(200).collect::<String>())
        }
    );
    let retried = status == 408 || status == 429 || status >= 500;
    if retried || retry_statuses.contains(&status) {
        return Outcome::Retry {
            after: a.retry_after.and_then(crate::retry_after::retry_after),
            status: Some(status),
            error,
        };
    }
    if (300..400).contains(&status) {
        return Outcome::Redirect {
            status,
            location: a
                .location
                .map_or("(no Location)".into(), |l| l.chars().take(300).collect()),
        };
    }
    Outcome::Fail {
        status: Some(status),
        error,
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

/// POSTs `body` (JSON) to `url` with `headers`, within the route's timeout.
pub async fn post(
    call: &Call<'_>,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> Outcome {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Retry {
                after: None,
                status: None,
                error: e.to_string(),
            }
        }
    };
    let mut req = client
        .post(url)
        .timeout(call.timeout)
        .header("content-type", "application/json")
        .body(body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (ra, location) = (header("retry-after"), header("location"));
            let text = resp.text().await.unwrap_or_default();
            let answer = Answer {
                status,
                retry_after: ra.as_deref(),
                location: location.as_deref(),
                body: text.trim(),
            };
            judge(&answer, call.retry_statuses)
        }
        Err(e) => transport(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer<'a>(
        status: u16,
        retry_after: Option<&'a str>,
        location: Option<&'a str>,
    ) -> Answer<'a> {
        Answer {
            status,
            retry_after,
            location,
            body: "no",
        }
    }

    #[test]
    fn answers_and_what_they_mean() {
        assert_eq!(judge(&answer(204, None, None), &[]), Outcome::Delivered);
        assert!(
            matches!(judge(&answer(503, Some("7"), None), &[]), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(
            judge(&answer(429, None, None), &[]),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            judge(&answer(408, None, None), &[]),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            judge(&answer(404, None, None), &[]),
            Outcome::Fail {
                status: Some(404),
                ..
            }
        ));
        assert!(matches!(
            judge(&answer(409, None, None), &[409]),
            Outcome::Retry { .. }
        ));
        assert_eq!(
            judge(&answer(301, None, Some("https://x/landing")), &[]),
            Outcome::Redirect {
                status: 301,
                location: "https://x/landing".into()
            }
        );
        assert!(matches!(
            judge(&answer(307, None, None), &[307]),
            Outcome::Retry {
                status: Some(307),
                ..
            }
        ));
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
