//! `up42wh up42`: connects the receiver to UP42 through UP42's webhook API and proves the path end
//! to end: `connect` registers (or updates) the webhook with the receiver's secret, `test` has
//! UP42 send its test event and watches it arrive, `watch` repeats that on a schedule, `list` and
//! `delete` manage what is registered. docs/up42.md cites UP42's documentation for each call.
//!
//! Exit codes (for scripts): 0 passed or done; 1 another failure; 2 usage or settings; 3 UP42
//! reached the receiver and it refused (the answer says which status); 4 UP42 could not reach the
//! URL; 5 UP42 reached it and nothing was stored; 6 nothing arrived in time; 7 UP42's API refused
//! (credentials, workspace, rate, its own error); 8 to 11 `download`'s; 12 the receiver's admin
//! listener could not be read or written (`reconcile`).

mod api;
mod check;
pub mod download;
pub mod reconcile;
mod sign_in;

use std::path::PathBuf;
use std::time::Duration;

use api::API_REFUSED;
pub use api::{Api, Settings};

use crate::error::Error;

/// The two events the receiver takes, registered as two strings.
const EVENTS: [&str; 2] = ["job.status", "order.status"];

pub enum Action {
    Connect {
        url: String,
        name: String,
        secret_file: Option<PathBuf>,
    },
    Test(check::Test),
    Watch {
        test: check::Test,
        every: Duration,
        /// A reconciliation after each test that passed.
        reconcile: Option<reconcile::Options>,
    },
    Download(download::Options),
    /// Once, or every given time until stopped.
    Reconcile(reconcile::Options, Option<Duration>),
    List,
    Delete {
        id: String,
    },
}

pub use check::Test;

pub fn main(settings: Settings, action: Action) -> Result<(), Error> {
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let mut api = Api::new(settings)?;
        match action {
            Action::Connect {
                url,
                name,
                secret_file,
            } => connect(&mut api, &url, &name, secret_file).await,
            Action::Download(o) => {
                let api = std::sync::Arc::new(tokio::sync::Mutex::new(api));
                let counters = std::sync::Arc::default();
                let s = download::with_progress(&counters, download::run(&api, &o, &counters))
                    .await?;
                println!(
                    "order {} complete: {} assets, {} bytes ({} received now) in {}, listed in manifest.json",
                    o.order,
                    s.assets,
                    s.bytes,
                    s.received,
                    s.dir.display()
                );
                Ok(())
            }
            Action::Reconcile(o, None) => {
                let s = reconcile::run(&mut api, &o, |line| println!("{line}")).await?;
                println!("{}", s.line());
                Ok(())
            }
            Action::Reconcile(o, Some(every)) => reconcile::every(&mut api, &o, every).await,
            Action::List => list(&mut api).await,
            Action::Delete { id } => {
                api.delete(&id).await?;
                println!("deleted webhook {id}");
                Ok(())
            }
            Action::Test(t) => {
                let line = check::run(&mut api, &t).await?;
                println!("{line}");
                Ok(())
            }
            Action::Watch {
                test,
                every,
                reconcile,
            } => check::watch(&mut api, &test, every, reconcile.as_ref()).await,
        }
    })
}

/// The receiver's current secret, where the receiver reads it: UP42_WEBHOOK_SECRET, else the first
/// line of UP42_WEBHOOK_SECRET_FILE or of `file` (make connect names the one make serve uses).
fn receiver_secret(file: Option<PathBuf>) -> Result<(String, String), Error> {
    if let Some(s) = std::env::var("UP42_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Ok((s.trim().to_string(), "UP42_WEBHOOK_SECRET".into()));
    }
    let file = std::env::var("UP42_WEBHOOK_SECRET_FILE")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or(file)
        .ok_or_else(|| {
            Error::config(
                "no secret to give UP42: set UP42_WEBHOOK_SECRET or UP42_WEBHOOK_SECRET_FILE as the receiver has it, or --secret-file (make connect passes make serve's)",
            )
        })?;
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::config(format!(
            "cannot read the secret file {}: {e}",
            file.display()
        ))
    })?;
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            Error::config(format!(
                "the secret file {} holds no secret",
                file.display()
            ))
        })?;
    Ok((
        first.to_string(),
        format!("the first line of {}", file.display()),
    ))
}

async fn connect(
    api: &mut Api,
    url: &str,
    name: &str,
    secret_file: Option<PathBuf>,
) -> Result<(), Error> {
    if !url.starts_with("https://") {
        return Err(Error::config(format!(
            "--url {url}: UP42 delivers only to https:// URLs (make serve TLS_CERT=... TLS_KEY=..., a tunnel or a proxy gives one)"
        )));
    }
    let (secret, from) = receiver_secret(secret_file)?;
    let offered = api.events().await?;
    for e in EVENTS {
        if !offered.iter().any(|o| o == e) {
            return Err(Error::code(
                API_REFUSED,
                format!("UP42 no longer offers the event {e} (it offers: {}): this version cannot register it", offered.join(", ")),
            ));
        }
    }
    let existing = api
        .list()
        .await?
        .into_iter()
        .find(|w| w["url"].as_str() == Some(url));
    let id = existing
        .as_ref()
        .and_then(|w| w["id"].as_str())
        .map(str::to_string);
    let saved = api.save(id.as_deref(), name, url, &EVENTS, &secret).await?;
    let saved_id = saved["id"].as_str().ok_or_else(|| {
        Error::code(
            API_REFUSED,
            format!(
                "UP42's API answered the {} without the webhook's id: it may or may not be saved; up42wh up42 list shows what is",
                if id.is_some() { "update" } else { "creation" }
            ),
        )
    })?;
    println!(
        "{} webhook {saved_id} for {url}: {}, active; its secret is the receiver's ({from})",
        if id.is_some() { "updated" } else { "created" },
        EVENTS.join(" and ")
    );
    Ok(())
}

async fn list(api: &mut Api) -> Result<(), Error> {
    let hooks = api.list().await?;
    if hooks.is_empty() {
        println!(
            "no webhooks in this workspace (up42wh up42 connect --url https://... registers one)"
        );
    }
    for w in hooks {
        let events: Vec<&str> = w["events"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
            .unwrap_or_default();
        println!(
            "{}  {}  {}  {}  {}",
            w["id"].as_str().unwrap_or("?"),
            if w["active"].as_bool() == Some(true) {
                "active"
            } else {
                "inactive"
            },
            w["url"].as_str().unwrap_or("?"),
            events.join(","),
            w["name"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
