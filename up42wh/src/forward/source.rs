//! Where events come from: the receiver's admin listener, read as a named consumer (pages of
//! `?meta=true` lines after a key, long-polled) and acknowledged (`ack-webhooks?consumer=`).

use std::time::Duration;

use super::config::Receiver;
use super::event::{Event, Key};
use super::Error;

/// A page: its events, where the next starts, and the gap the receiver reported (retention
/// dropped events after this consumer's position, up to `through`).
pub struct Page {
    pub events: Vec<Event>,
    pub next: Option<Key>,
    pub gap: Option<(String, String)>,
}

pub struct Source {
    http: reqwest::Client,
    conf: Receiver,
}

/// Seconds a page waits at the receiver for an event (its long poll).
pub const WAIT: u64 = 25;

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Source {
    pub fn new(conf: Receiver) -> Result<Source, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(WAIT + 15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))?;
        Ok(Source { http, conf })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.conf.url));
        match &self.conf.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// An answer that is not 200, in words: a 400 about the consumer is the configuration's fault.
    async fn refused(&self, what: &str, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["msg"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        match status {
            400 if msg.contains("consumer") => Error::config(format!(
                "{}: receiver.consumer: the receiver at {} says: {msg} (declare it there: UP42_WEBHOOK_CONSUMERS)",
                self.conf.consumer_at, self.conf.url
            )),
            401 | 403 => Error::config(format!(
                "the receiver's admin listener at {} refused {what} ({status}: {msg}): give its admin token \
                 (UP42_WEBHOOK_ADMIN_TOKEN, or receiver.token_env / token_file)",
                self.conf.url
            )),
            _ => Error::run(format!("{what} at {}: {status}: {msg}", self.conf.url)),
        }
    }

    /// The events after `since` (after this consumer's position when `None`), waiting up to
    /// `wait` seconds for one.
    pub async fn page(&self, since: Option<&Key>, wait: u64) -> Result<Page, Error> {
        let mut path = format!(
            "/dump-webhooks?consumer={}&meta=true&limit={}&wait={wait}",
            self.conf.consumer, self.conf.page
        );
        if let Some(k) = since {
            path.push_str(&format!("&since={}", k.text));
        }
        let resp = self
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .map_err(|e| {
                Error::run(format!(
                    "cannot read the receiver at {}: {e}",
                    self.conf.url
                ))
            })?;
        if resp.status() != 200 {
            return Err(self.refused("the dump", resp).await);
        }
        let body = resp
            .text()
            .await
            .map_err(|e| Error::run(format!("the receiver's page was cut short: {e}")))?;
        let mut lines: Vec<&str> = body.lines().filter(|l| !l.is_empty()).collect();
        let last = lines
            .pop()
            .ok_or_else(|| Error::run("the receiver's page has no count line"))?;
        let last: serde_json::Value = serde_json::from_str(last)
            .map_err(|_| Error::run("the receiver's page was cut short (no count line)"))?;
        let events = lines
            .iter()
            .map(|l| Event::parse(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::run)?;
        let next = Key::parse(&text(&last["next"]));
        let gap = last
            .get("gap")
            .map(|g| (text(&g["after"]), text(&g["through"])));
        Ok(Page { events, next, gap })
    }

    /// Moves this consumer's position to `upto`.
    pub async fn ack(&self, upto: &Key) -> Result<(), Error> {
        let path = format!(
            "/ack-webhooks?consumer={}&upto={}",
            self.conf.consumer, upto.text
        );
        let resp = self
            .request(reqwest::Method::POST, &path)
            .send()
            .await
            .map_err(|e| Error::run(format!("cannot acknowledge at {}: {e}", self.conf.url)))?;
        if resp.status() != 200 {
            return Err(self.refused("the acknowledgement", resp).await);
        }
        Ok(())
    }
}
