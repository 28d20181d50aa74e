//! `up42wh up42 test` and `watch`: the receiver's tail is opened first (no other consumer's
//! acknowledgement can hide the event from it), then UP42 is asked to send its test event, and the
//! outcome is one line: passed with the round trip, or what failed in words a user can act on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::api::Api;
use crate::error::Error;

pub const REFUSED_BY_RECEIVER: u8 = 3;
pub const UNREACHABLE: u8 = 4;
pub const NOT_STORED: u8 = 5;
pub const NOTHING: u8 = 6;

pub struct Test {
    /// The webhook: its id, or its URL (else the workspace's only one).
    pub id: Option<String>,
    pub url: Option<String>,
    pub event: String,
    /// The receiver's admin listener, and its token (UP42_WEBHOOK_ADMIN_TOKEN).
    pub receiver: String,
    pub admin_token: Option<String>,
    pub timeout: Duration,
}

/// The receiver's admin listener.
struct Receiver<'a> {
    http: reqwest::Client,
    t: &'a Test,
}

impl Receiver<'_> {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.get(format!("{}{path}", self.t.receiver));
        match &self.t.admin_token {
            Some(tok) => r.bearer_auth(tok),
            None => r,
        }
    }

    /// The outcome counters and the newest key.
    async fn stats(&self) -> Result<(BTreeMap<String, u64>, Option<String>), Error> {
        let resp = self.get("/stats").send().await.map_err(|e| {
            Error::run(format!(
                "cannot read the receiver's stats at {}: {e} (is it running? make serve)",
                self.t.receiver
            ))
        })?;
        if resp.status() != 200 {
            return Err(Error::run(format!(
                "the receiver's admin listener at {} answered {} to /stats (its admin token: UP42_WEBHOOK_ADMIN_TOKEN)",
                self.t.receiver,
                resp.status().as_u16()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| Error::run(format!("the receiver's stats: {e}")))?;
        let counters = v["counters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
                    .collect()
            })
            .unwrap_or_default();
        let last = match &v["last_key"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        Ok((counters, last))
    }

    /// Opens the tail after `since` and passes each event's (key, data) on.
    async fn tail(&self, since: Option<&str>) -> Result<Tail, Error> {
        let path = match since {
            Some(k) => format!("/tail?since={k}"),
            None => "/tail".to_string(),
        };
        let mut resp = self.get(&path).send().await.map_err(|e| {
            Error::run(format!(
                "cannot open the receiver's tail at {}: {e}",
                self.t.receiver
            ))
        })?;
        if resp.status() != 200 {
            return Err(Error::run(format!(
                "the receiver's tail at {} answered {}",
                self.t.receiver,
                resp.status().as_u16()
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            let mut buf = String::new();
            let (mut id, mut data) = (String::new(), String::new());
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(n) = buf.find('\n') {
                    let line: String = buf.drain(..=n).collect();
                    let line = line.trim_end_matches(['\r', '\n']);
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    } else if line.is_empty() && !data.is_empty() {
                        let v = serde_json::from_str(&data).unwrap_or(Value::Null);
                        if tx.send((std::mem::take(&mut id), v)).await.is_err() {
                            return;
                        }
                        data.clear();
                    }
                }
            }
        });
        Ok(Tail { rx, reader })
    }
}

/// An open tail: its events, and the task reading it, ended (and the connection closed) when the
/// tail is dropped. Without that, `watch` would keep one of the receiver's tails (16 at most) per
/// test, since the reader waits on a stream that only heartbeats.
struct Tail {
    rx: mpsc::Receiver<(String, Value)>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The webhook to test: by id, by URL, or the only one.
async fn webhook(api: &mut Api, t: &Test) -> Result<(String, String), Error> {
    let hooks = api.list().await?;
    let pick = |w: &Value| {
        (
            w["id"].as_str().unwrap_or_default().to_string(),
            w["url"].as_str().unwrap_or_default().to_string(),
        )
    };
    if let Some(id) = &t.id {
        return hooks
            .iter()
            .find(|w| w["id"].as_str() == Some(id))
            .map(pick)
            .ok_or_else(|| {
                Error::code(
                    super::API_REFUSED,
                    format!("UP42 has no webhook {id} in this workspace (up42wh up42 list)"),
                )
            });
    }
    if let Some(url) = &t.url {
        return hooks
            .iter()
            .find(|w| w["url"].as_str() == Some(url))
            .map(pick)
            .ok_or_else(|| {
                Error::config(format!(
                    "no webhook for {url}: up42wh up42 connect --url {url} registers it"
                ))
            });
    }
    match hooks.as_slice() {
        [one] => Ok(pick(one)),
        [] => Err(Error::config(
            "no webhook in this workspace: up42wh up42 connect --url https://... registers one",
        )),
        _ => Err(Error::config(
            "several webhooks in this workspace: say which with --url or --id (up42wh up42 list)",
        )),
    }
}

/// The status code in UP42's report of the receiver's answer ("HttpResponse[url, 401 Unauthorized]").
fn answered_status(response: &str) -> Option<u16> {
    let after = response.rsplit_once(", ")?.1;
    after.get(..3)?.parse().ok()
}

/// One test: the line to print when it passed, an error with its exit code when it did not.
pub async fn run(api: &mut Api, t: &Test) -> Result<String, Error> {
    let (id, url) = webhook(api, t).await?;
    let receiver = Receiver {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))?,
        t,
    };
    // What the receiver counted before, and its tail: when its admin listener cannot be read,
    // UP42's test still says whether UP42 reached the URL.
    let watched = match receiver.stats().await {
        Ok((before, last)) => receiver.tail(last.as_deref()).await.map(|t| (before, t)),
        Err(e) => Err(e),
    };
    let started = Instant::now();
    let report = api.test(&id, &t.event).await?;
    let tests = report["tests"].as_array().cloned().unwrap_or_default();
    let this = tests
        .iter()
        .find(|x| x["eventName"].as_str() == Some(t.event.as_str()))
        .or(tests.first())
        .cloned()
        .unwrap_or(Value::Null);
    let message_id = this["request"]["body"]["messageId"]
        .as_str()
        .map(str::to_string);
    if this["success"].as_bool() == Some(false) {
        let response = this["response"].as_str().unwrap_or("");
        let message = this["message"].as_str().unwrap_or("no message");
        return Err(match answered_status(response) {
            Some(401) => Error::code(REFUSED_BY_RECEIVER, format!(
                "failed: UP42 reported that {url} answered 401: the secrets differ (run up42wh up42 connect again, or look at make stats' refusals)"
            )),
            Some(code) => Error::code(REFUSED_BY_RECEIVER, format!(
                "failed: UP42 reported that {url} answered {code} ({response}): see make logs"
            )),
            None => Error::code(UNREACHABLE, format!(
                "failed: UP42 could not reach {url}: {message} (is the tunnel up, does the name resolve from the internet?)"
            )),
        });
    }
    // Either a success, or a report this program cannot read: the tail decides.
    let (before, mut tail) = match watched {
        Ok(w) => w,
        Err(e) => {
            return Err(Error::run(format!(
                "UP42 reported {} for {url}, but the arrival cannot be checked: {e}",
                match this["success"].as_bool() {
                    Some(true) => "that it was answered",
                    _ => "nothing this program can read",
                }
            )))
        }
    };
    let deadline = started + t.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tail.rx.recv()).await {
            Ok(Some((key, ev))) => {
                let matches = match &message_id {
                    Some(m) => ev["messageId"].as_str() == Some(m),
                    None => {
                        ev["event"].as_str() == Some(t.event.as_str()) && ev["liveMode"] == false
                    }
                };
                if matches {
                    return Ok(format!(
                        "passed: UP42's test {} ({}) stored as key {key}, round trip {} ms",
                        t.event,
                        ev["messageId"].as_str().unwrap_or("?"),
                        started.elapsed().as_millis()
                    ));
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let (after, _) = receiver.stats().await.unwrap_or_default();
    let refused: Vec<String> = after
        .iter()
        .filter(|(k, _)| k.starts_with("rejected_"))
        .filter_map(|(k, n)| {
            let was = before.get(k).copied().unwrap_or(0);
            (*n > was).then(|| format!("{} ({})", k.trim_start_matches("rejected_"), n - was))
        })
        .collect();
    if !refused.is_empty() {
        return Err(Error::code(NOT_STORED, format!(
            "failed: UP42 reached the receiver but nothing was stored: refused during the test: {} (make stats, make logs)",
            refused.join(", ")
        )));
    }
    if this["success"].as_bool() == Some(true) {
        return Err(Error::code(NOT_STORED, format!(
            "failed: UP42 reported that {url} answered, but nothing arrived in the receiver at {} within {} s: does {url} lead to it?",
            t.receiver,
            t.timeout.as_secs()
        )));
    }
    Err(Error::code(
        NOTHING,
        format!(
            "failed: nothing arrived within {} s, and UP42's report could not be read: {}",
            t.timeout.as_secs(),
            report.to_string().chars().take(300).collect::<String>()
        ),
    ))
}

/// The test every `every`, a line each time; the first failure ends it with that test's code.
pub async fn watch(
    api: &mut Api,
    t: &Test,
    every: Duration,
    reconcile: Option<&super::reconcile::Options>,
) -> Result<(), Error> {
    loop {
        let line = run(api, t).await?;
        println!(
            "{} {line}",
            up42webhooks::format_rfc3339(crate::clock::now_secs())
        );
        if let Some(o) = reconcile {
            let stamp = || up42webhooks::format_rfc3339(crate::clock::now_secs());
            let s = super::reconcile::run(api, o, |l| println!("{} {l}", stamp())).await?;
            println!("{} {}", stamp(), s.line());
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
