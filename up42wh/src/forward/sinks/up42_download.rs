//! `sink = "up42-download"`: a fulfilled order's files into `to`, as `up42wh up42 download`
//! fetches them (the same code: each asset verified before it takes its name, resumed after a
//! cut, the manifest last). The order is the event's `body.orderId`; unless the route says
//! otherwise it takes only `order.status` events with status FULFILLED. UP42's credentials and
//! settings come from the forwarder's environment, as for `up42wh up42` (UP42_USERNAME and
//! UP42_PASSWORD or their files, UP42_REGION, UP42_API_URL, UP42_CA_FILE, UP42_WORKSPACE_ID).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use toml::Spanned;

use super::{Attempt, Call, Context, Outcome, Sink, SinkCounter};
use crate::error::Error;
use crate::forward::event::Event;
use crate::forward::log::log;
use crate::up42::download::{self, Counters};
use crate::up42::{Api, Settings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    /// The folder each order's folder goes into (relative to the configuration's directory).
    to: Spanned<String>,
    /// Assets of one order fetched at once.
    parallel: Option<Spanned<u32>>,
    /// Unpack each ZIP archive beside it.
    extract: Option<bool>,
}

pub struct Up42DownloadSink {
    to: PathBuf,
    parallel: usize,
    extract: bool,
    /// UP42's API, or why there is none: credentials missing from the forwarder's environment
    /// are said at start and by each attempt (tried again on the route's schedule: a restart
    /// with them set delivers, and `forward replay` sends the dead letters again), so that the
    /// example runs as shipped; where the configuration is only checked, none is made.
    api: Result<Arc<Mutex<Api>>, String>,
    counters: Arc<Counters>,
}

impl Conf {
    pub fn build(self, cx: &impl Context) -> Result<Up42DownloadSink, Error> {
        // An installation puts them where its service may write (the package's
        // /var/lib/up42webhooks/orders, the compose service's volume).
        let to = std::env::var_os("UP42WH_FORWARD_DOWNLOAD_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| cx.path(self.to.get_ref()));
        let parallel = match &self.parallel {
            Some(p) if (1..=16).contains(p.get_ref()) => *p.get_ref() as usize,
            Some(p) => return cx.err(Some(p.span()), "parallel", "1 to 16"),
            None => 2,
        };
        // A region UP42 does not have is a mistake in the settings: the start stops on it.
        let settings = Settings::from_env().or_else(|e| cx.err_route(format!("UP42: {e}")))?;
        let api = if !cx.reads_secrets() {
            Err("the configuration was only checked".to_string())
        } else {
            match Api::new(settings) {
                Ok(api) => Ok(Arc::new(Mutex::new(api))),
                Err(e) if e.exit_code() == 2 => {
                    log("warn", format_args!("up42-download: {e}: its deliveries are tried again until the forwarder is restarted with them"));
                    Err(e.to_string())
                }
                Err(e) => return cx.err_route(format!("UP42: {e}")),
            }
        };
        Ok(Up42DownloadSink {
            to,
            parallel,
            extract: self.extract.unwrap_or(false),
            api,
            counters: Arc::default(),
        })
    }
}

impl Sink for Up42DownloadSink {
    fn kind(&self) -> &'static str {
        "up42-download"
    }

    fn counters(&self) -> Vec<SinkCounter> {
        let c = &self.counters;
        [
            (
                "downloads_in_flight",
                "gauge",
                "Assets being fetched now.",
                &c.in_flight,
            ),
            (
                "download_bytes_total",
                "counter",
                "Bytes of assets received from the storage host.",
                &c.bytes,
            ),
            (
                "downloads_completed_total",
                "counter",
                "Assets fetched and verified under their names.",
                &c.completed,
            ),
            (
                "downloads_failed_total",
                "counter",
                "Assets an attempt gave up (tried again on the route's schedule).",
                &c.failed,
            ),
        ]
        .into_iter()
        .map(|(name, kind, help, v)| SinkCounter {
            name,
            kind,
            help,
            value: v.load(std::sync::atomic::Ordering::Relaxed),
        })
        .collect()
    }

    fn deliver<'a>(&'a self, call: &'a Call<'a>, e: &'a Event) -> Attempt<'a> {
        Box::pin(async move {
            let api = match &self.api {
                Ok(api) => api,
                Err(why) => {
                    return Outcome::Retry {
                        after: None,
                        status: None,
                        error: why.clone(),
                    }
                }
            };
            let Some(order) = e.body_member("orderId").filter(|o| download::valid_id(o)) else {
                return Outcome::Fail {
                    status: None,
                    error: "the event names no order (body.orderId, a UUID)".into(),
                };
            };
            let o = download::Options {
                order: order.clone(),
                to: self.to.clone(),
                parallel: self.parallel,
                wait: None,
                poll: Duration::from_secs(30),
                extract: self.extract,
                say: |line| log("info", format_args!("up42-download: {line}")),
            };
            match download::run(api, &o, &self.counters).await {
                Ok(s) => {
                    log(
                        "info",
                        format_args!(
                            "route {}: order {order} complete: {} assets, {} bytes in {}",
                            call.route,
                            s.assets,
                            s.bytes,
                            s.dir.display()
                        ),
                    );
                    Outcome::Delivered
                }
                // A mistake that no retry mends (a setting); anything else (UP42's rate or outage,
                // a full disk, a transfer that did not verify, an order not fulfilled yet) is
                // tried again on the route's schedule, continuing from the parts kept.
                Err(err) if err.exit_code() == 2 => Outcome::Fail {
                    status: None,
                    error: err.to_string(),
                },
                Err(err) => Outcome::Retry {
                    after: None,
                    status: None,
                    error: err.to_string(),
                },
            }
        })
    }
}
