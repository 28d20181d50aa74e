//! Where a route delivers: each kind of sink is one file here, with its configuration (what the
//! route's table may say for it) and its `Sink`, one attempt to deliver one event. Nothing from an
//! event ever goes into a program's arguments, a shell, or a Slack mention or link.
//!
//! Adding a sink (docs/forward.md says the same for people): a file with a `Conf` (serde, with
//! `deny_unknown_fields`) and a type implementing `Sink`; a variant of `SinkConf` naming it; its
//! `build` arm below. The route's common keys (filters, retries, timeout) are the loop's.

pub mod exec;
pub mod http;
pub mod slack;
pub mod up42_download;

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::Error;
use crate::forward::event::Event;

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
    /// The sink answered with a redirect. It is never followed: a POST redirected (301, 302,
    /// 303) comes back as a GET without the body, and a signature made for one URL means
    /// nothing at another. Dead-lettered at once (the route's URL needs fixing) unless the route
    /// lists the status in `retry_statuses`.
    Redirect {
        status: u16,
        location: String,
    },
}

/// What an attempt needs to know of its route.
pub struct Call<'a> {
    pub route: &'a str,
    pub timeout: Duration,
    /// Statuses besides 408, 429 and 5xx to retry (a 3xx here is not a redirect's dead letter).
    pub retry_statuses: &'a [u16],
}

/// How a sink's configuration reads its secrets and reports its mistakes: the configuration's
/// reader gives it, and each error names the file, the line and the route's key.
pub trait Context {
    /// An error about `key` of the route, at `span` (or the route's table).
    fn error(&self, span: Option<Range<usize>>, key: &str, msg: &str) -> Error;
    /// A secret of the route: `KEY`, `KEY_env` or `KEY_file`.
    fn secret(
        &self,
        key: &str,
        plain: Option<&Spanned<String>>,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
    ) -> Result<Option<String>, Error>;
    /// An http(s) URL with a host.
    fn http_url(&self, s: &Spanned<String>, key: &str) -> Result<String, Error>;
    /// A program, relative to the configuration's directory or on PATH.
    fn program(&self, name: &str) -> Option<PathBuf>;
    /// A path, relative to the configuration's directory.
    fn path(&self, p: &str) -> PathBuf;
    /// Whether a secret must be there: for `check` and `status` one not set here is empty.
    fn reads_secrets(&self) -> bool;

    fn err<T>(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        msg: impl fmt::Display,
    ) -> Result<T, Error>
    where
        Self: Sized,
    {
        Err(self.error(span, key, &msg.to_string()))
    }

    /// An error about the route as a whole.
    fn err_route<T>(&self, msg: impl fmt::Display) -> Result<T, Error>
    where
        Self: Sized,
    {
        self.err(None, "", msg)
    }
}

/// One attempt's future.
pub type Attempt<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A route's sink: made once from its configuration, then asked to deliver each event (several at
/// once, up to the route's concurrency).
pub trait Sink: Send + Sync {
    /// Its kind, as the configuration names it (`sink = "http"`).
    fn kind(&self) -> &'static str;
    /// One attempt, within `call.timeout`.
    fn deliver<'a>(&'a self, call: &'a Call<'a>, e: &'a Event) -> Attempt<'a>;
    /// Counters of its own for `/status` and `/metrics` (name, Prometheus kind, help, value).
    fn counters(&self) -> Vec<SinkCounter> {
        Vec::new()
    }
}

/// A sink's own counter, as `/metrics` shows it (`up42wh_forward_NAME{route="..."}`).
pub struct SinkCounter {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub value: u64,
}

impl fmt::Debug for dyn Sink {
    /// The kind only: a sink holds secrets (a signing key, a Slack URL).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sink", self.kind())
    }
}

/// The sink's part of a route's table, by the route's `sink` key: serde's tagged enum, each
/// variant the configuration of one kind (its keys denied when unknown).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkConf {
    Http(http::Conf),
    Slack(slack::Conf),
    Exec(exec::Conf),
    #[serde(rename = "up42-download")]
    Up42Download(up42_download::Conf),
}

impl SinkConf {
    /// How long an attempt may take unless the route says: a program may download for minutes.
    pub fn default_timeout(&self) -> Duration {
        match self {
            SinkConf::Exec(_) => Duration::from_secs(300),
            // An order is gigabytes over links that may be slow; a cut try keeps its parts.
            SinkConf::Up42Download(_) => Duration::from_secs(4 * 3600),
            _ => Duration::from_secs(15),
        }
    }

    /// The events and statuses the route takes unless it names its own.
    pub fn default_filter(&self) -> Option<(Vec<String>, Vec<String>)> {
        match self {
            SinkConf::Up42Download(_) => {
                Some((vec!["order.status".into()], vec!["FULFILLED".into()]))
            }
            _ => None,
        }
    }

    /// The sink, its secrets read and its settings checked.
    pub fn build(self, cx: &impl Context) -> Result<Arc<dyn Sink>, Error> {
        Ok(match self {
            SinkConf::Http(c) => Arc::new(c.build(cx)?),
            SinkConf::Slack(c) => Arc::new(c.build(cx)?),
            SinkConf::Exec(c) => Arc::new(c.build(cx)?),
            SinkConf::Up42Download(c) => Arc::new(c.build(cx)?),
        })
    }
}
