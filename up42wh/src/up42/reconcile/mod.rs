//! `up42wh up42 reconcile`: UP42 sends each notification once, so a status it could not deliver
//! (the receiver down, its address changed) is gone. This asks UP42's API what changed since the
//! last run (the watermark), compares each (order, status) and (job, status) with what the
//! receiver holds, and stores every one it lacks through the admin listener's POST
//! /learnt-webhooks: the dump, the tail, the page and `up42wh forward` then see it like any
//! other event, its envelope saying it was learnt from the API. The watermark moves only once all
//! are stored, so a run killed half-way is run again whole; the receiver stores a transition once
//! (its id is the transition), so nothing is stored twice, also by runs in several places.

mod lists;
mod receiver;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::api::Api;
use crate::clock::now_secs;
use crate::error::Error;

/// The receiver could not be read from or written to (its admin listener).
pub const RECEIVER_FAILED: u8 = 12;
/// How far before the watermark each run looks again: pages shift while they are read, and
/// UP42's clock is not ours.
const OVERLAP: i64 = 600;
/// The first run's look back, without a watermark or --since.
const FIRST: i64 = 7 * 86400;

#[derive(Clone)]
pub struct Options {
    /// The receiver's admin listener, and its token.
    pub receiver: String,
    pub admin_token: Option<String>,
    /// From this time on instead of the watermark's (unix seconds).
    pub since: Option<i64>,
    /// The watermark's file.
    pub state: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Order,
    Job,
}

impl Kind {
    fn event(self) -> &'static str {
        match self {
            Kind::Order => "order.status",
            Kind::Job => "job.status",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Order => "orderId",
            Kind::Job => "jobId",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::Job => "job",
        }
    }
}

/// An order or a job UP42 says changed, with its status now.
pub struct Found {
    pub kind: Kind,
    pub id: String,
    pub status: String,
    pub updated: Option<i64>,
    /// What the API said of it.
    pub detail: Value,
}

pub struct Summary {
    pub from: i64,
    pub orders: usize,
    pub jobs: usize,
    pub stored: usize,
    pub already: usize,
}

fn state_error(path: &Path, e: std::io::Error) -> Error {
    Error::run(format!("the watermark {}: {e}", path.display()))
}

/// The watermark: the newest `updatedAt` a run saw (UP42's clock), or None before the first run.
fn watermark(path: &Path) -> Result<Option<i64>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::run(format!(
                    "the watermark {} is not the JSON a run writes ({e}): remove it, or give --since",
                    path.display()
                ))
            })?;
            Ok(v["updated"].as_i64())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_error(path, e)),
    }
}

fn save_watermark(path: &Path, t: i64) -> Result<(), Error> {
    let text = json!({"updated": t, "at": up42webhooks::format_rfc3339(t)}).to_string();
    let mut opts = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    crate::durable::replace(path, text.as_bytes(), opts).map_err(|e| state_error(path, e))
}

/// One reconciliation; `say` gets a line for each status stored.
pub async fn run(api: &mut Api, o: &Options, say: impl Fn(String)) -> Result<Summary, Error> {
    if let Some(dir) = o.state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| state_error(dir, e))?;
    }
    // One run at a time per watermark; runs elsewhere are safe as they are (see above).
    let lock_path = o.state.with_extension("lock");
    let _lock = crate::lock::exclusive(&lock_path, || {
        eprintln!(
            "up42wh: another reconciliation holds {}: waiting for it",
            lock_path.display()
        )
    })
    .await
    .map_err(|e| state_error(&lock_path, e))?;
    let started = now_secs();
    let mark = watermark(&o.state)?;
    let from = o
        .since
        .or(mark.map(|m| m - OVERLAP))
        .unwrap_or(started - FIRST);
    let workspace = api.workspace().await?;
    let r = receiver::Receiver::new(&o.receiver, o.admin_token.clone())?;
    let held = r.held().await?;
    let mut counts = Counts::default();
    // Orders, then jobs, each stored as soon as its list is read.
    let orders = lists::orders(api, &workspace, from).await?;
    store_missing(&r, &held, &orders, &say, &mut counts).await?;
    let jobs = lists::jobs(api, &workspace, from).await?;
    store_missing(&r, &held, &jobs, &say, &mut counts).await?;
    // Forward only, and only now that everything found is stored.
    let newest = orders.iter().chain(&jobs).filter_map(|f| f.updated).max();
    let next = [mark, newest, Some(started - OVERLAP)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(started);
    save_watermark(&o.state, next)?;
    Ok(Summary {
        from,
        orders: orders.len(),
        jobs: jobs.len(),
        stored: counts.stored,
        already: counts.already,
    })
}

#[derive(Default)]
struct Counts {
    stored: usize,
    already: usize,
}

/// Stores each of `found` the receiver does not hold, a line for each.
async fn store_missing(
    r: &receiver::Receiver,
    held: &std::collections::HashSet<(Kind, String, String)>,
    found: &[Found],
    say: &impl Fn(String),
    counts: &mut Counts,
) -> Result<(), Error> {
    for f in found {
        if held.contains(&(f.kind, f.id.clone(), f.status.to_ascii_uppercase())) {
            continue;
        }
        match r.store(f).await? {
            receiver::Stored::Key(key) => {
                counts.stored += 1;
                say(format!(
                    "learnt: {} {} is {}{}, which the receiver never received: stored as key {key}",
                    f.kind.noun(),
                    f.id,
                    f.status,
                    f.updated
                        .map(|t| format!(" (since {})", up42webhooks::format_rfc3339(t)))
                        .unwrap_or_default()
                ));
            }
            receiver::Stored::Already => counts.already += 1,
        }
    }
    Ok(())
}

/// A reconciliation now and every `every` until SIGTERM or Ctrl-C, each line with its time. A run
/// that fails (UP42 or the receiver unreachable a while) is said and tried again, sooner; only a
/// mistake in the settings ends it.
pub async fn every(api: &mut Api, o: &Options, every: std::time::Duration) -> Result<(), Error> {
    let stamp = || up42webhooks::format_rfc3339(now_secs());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::run(format!("cannot watch for SIGTERM: {e}")))?;
    // --since is the first good run's; the next ones go on from the watermark.
    let mut o = o.clone();
    let mut failed = 0u32;
    loop {
        let result = run(api, &o, |l| println!("{} {l}", stamp())).await;
        // After a failure, sooner than `every` (the receiver starting beside it, a short outage):
        // 30 s, doubling, up to `every`.
        let wait = match result {
            Ok(s) => {
                println!("{} {}", stamp(), s.line());
                o.since = None;
                failed = 0;
                every
            }
            Err(e) if e.exit_code() == 2 => return Err(e),
            Err(e) => {
                let wait = every.min(std::time::Duration::from_secs(30 << failed.min(10)));
                failed += 1;
                eprintln!(
                    "{} up42wh: {e} (exit code {}); trying again in {} s",
                    stamp(),
                    e.exit_code(),
                    wait.as_secs()
                );
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

impl Summary {
    pub fn line(&self) -> String {
        let n = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        let changed = format!(
            "reconciled with UP42 since {}: {} and {} changed",
            up42webhooks::format_rfc3339(self.from),
            n(self.orders, "order", "orders"),
            n(self.jobs, "processing job", "processing jobs")
        );
        let stored = n(self.stored, "status", "statuses");
        match (self.stored, self.already) {
            (0, 0) => format!("{changed}; the receiver had every status"),
            (_, 0) => format!("{changed}; {stored} the receiver never received, now stored"),
            (_, a) => format!(
                "{changed}; {stored} the receiver never received, now stored ({a} stored meanwhile by another run)"
            ),
        }
    }
}

/// `--since`: a duration back from now (7d, 36h) or a time (RFC 3339).
pub fn since(text: &str) -> Option<i64> {
    if let Some(d) = crate::duration::duration(text) {
        return Some(now_secs() - d.as_secs() as i64);
    }
    up42webhooks::parse_rfc3339(text.trim().as_bytes()).ok()
}

/// Where the watermark is kept when --state does not say: systemd's StateDirectory, else the
/// XDG state folder.
pub fn default_state() -> PathBuf {
    let base = std::env::var("STATE_DIRECTORY")
        .ok()
        .and_then(|d| d.split(':').next().map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("up42wh")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/up42wh")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("reconcile.json")
}
