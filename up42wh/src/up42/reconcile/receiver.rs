//! The receiver's side of a reconciliation, through its admin listener: the transitions it holds
//! (the dump of its order.status and job.status events, whoever sent them) and the storing of one
//! it lacks (POST /learnt-webhooks).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Found, Kind, RECEIVER_FAILED};
use crate::error::Error;

/// Events read from the dump a page at a time, and at most this many pages.
const PAGE: usize = 1000;
const PAGES: usize = 100_000;

pub struct Receiver {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

/// What storing a transition came to.
pub enum Stored {
    /// Stored now, under this key.
    Key(String),
    /// Another reconciler stored it first.
    Already,
}

fn failed(msg: String) -> Error {
    Error::code(RECEIVER_FAILED, msg)
}

impl Receiver {
    pub fn new(url: &str, token: Option<String>) -> Result<Receiver, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::run(format!("an HTTP client: {e}")))?;
        Ok(Receiver {
            http,
            url: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        failed(format!(
            "cannot reach the receiver's admin listener at {}: {} (is it running? make serve)",
            self.url,
            crate::up42::sign_in::reason(e)
        ))
    }

    /// Every (kind, id, STATUS) the receiver holds an event of.
    pub async fn held(&self) -> Result<HashSet<(Kind, String, String)>, Error> {
        let mut held = HashSet::new();
        for kind in [Kind::Order, Kind::Job] {
            let mut since: Option<String> = None;
            for _ in 0..PAGES {
                let mut path = format!("/dump-webhooks?event={}&limit={PAGE}", kind.event());
                if let Some(k) = &since {
                    path.push_str(&format!("&since={k}"));
                }
                let resp = self
                    .request(reqwest::Method::GET, &path)
                    .send()
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
                if status != 200 {
                    return Err(failed(format!(
                        "the receiver's admin listener at {} answered {status} to the dump: {} (its admin token: UP42_WEBHOOK_ADMIN_TOKEN)",
                        self.url,
                        text.trim()
                    )));
                }
                let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
                let last: Value = lines
                    .pop()
                    .and_then(|l| serde_json::from_str(l).ok())
                    .filter(|v: &Value| v.get("number_webhooks_received").is_some())
                    .ok_or_else(|| {
                        failed(format!(
                            "the receiver's dump at {} ended without its count: cut short",
                            self.url
                        ))
                    })?;
                for line in &lines {
                    let Ok(e) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    let b = &e["body"];
                    if let (Some(id), Some(s)) = (b[kind.field()].as_str(), b["status"].as_str()) {
                        held.insert((kind, id.to_string(), s.to_ascii_uppercase()));
                    }
                }
                if lines.len() < PAGE {
                    break;
                }
                since = match &last["next"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => break,
                };
            }
        }
        Ok(held)
    }

    /// Stores `f` as the event UP42 would have sent, tried again while the receiver answers 503
    /// (its store busy or down for a moment).
    pub async fn store(&self, f: &Found) -> Result<Stored, Error> {
        let body = f
            .event(&up42webhooks::format_rfc3339(crate::clock::now_secs()))
            .to_string();
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=5 {
            let resp = self
                .request(reqwest::Method::POST, "/learnt-webhooks")
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status().as_u16();
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::retry_after::retry_after);
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            match status {
                200 if v["key"].is_null() => return Ok(Stored::Already),
                200 => {
                    let key = match &v["key"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    return Ok(Stored::Key(key));
                }
                // The transition's id is stored with another body: another reconciler's, with
                // its own timestamp.
                409 => return Ok(Stored::Already),
                503 if attempt < 5 => {
                    tokio::time::sleep(after.unwrap_or(wait).min(Duration::from_secs(30))).await;
                    wait *= 2;
                }
                _ => {
                    return Err(failed(format!(
                        "the receiver at {} answered {status} to {} {} {}: {}",
                        self.url,
                        f.kind.noun(),
                        f.id,
                        f.status,
                        if v.is_null() {
                            "no JSON".to_string()
                        } else {
                            v.to_string()
                        }
                    )))
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

impl Found {
    /// The event UP42's webhook carries for this status, as far as the API tells it.
    pub fn event(&self, now: &str) -> Value {
        let d = &self.detail;
        let body = match self.kind {
            Kind::Order => {
                let mut b = json!({
                    "orderId": self.id,
                    "orderType": d["type"],
                    "status": self.status,
                });
                if let Some(fin) = order_final(&self.status) {
                    b["statusIsFinal"] = fin.into();
                }
                b
            }
            Kind::Job => json!({
                "jobId": self.id,
                "status": self.status,
                "processId": d["processID"],
                "startedAt": d["started"],
                "finishedAt": d["finished"],
            }),
        };
        json!({
            "event": self.kind.event(),
            "liveMode": true,
            "messageId": format!("{}:{}:{}", self.kind.noun(), self.id, self.status),
            "timestamp": now,
            "body": body,
        })
    }
}

/// Whether an order's status is final, for the statuses UP42 names; None for one it may add.
fn order_final(status: &str) -> Option<bool> {
    match status {
        "FULFILLED" | "FAILED_PERMANENTLY" | "FAILED PERMANENTLY" | "CANCELED" | "CANCELLED" => {
            Some(true)
        }
        "CREATED" | "PLACED" | "BEING_FULFILLED" => Some(false),
        _ => None,
    }
}
