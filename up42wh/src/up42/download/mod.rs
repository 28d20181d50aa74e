//! `up42wh up42 download --order ID --to DIR`: a fulfilled order's assets into `DIR/ID/`, each
//! verified before it takes its name (transfer.rs), then `manifest.json`, written last, so that
//! other programs can tell a complete order from one in progress. A lock in the order's folder
//! keeps two runs for one order apart; a second run transfers nothing for what is complete.
//! docs/up42.md cites UP42's documentation for each call.

mod extract;
mod hashes;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::api::{Api, API_REFUSED};
use crate::error::Error;
use transfer::io_error;

/// Exit codes besides 7 (UP42's API refused): the order is not fulfilled (yet); the disk is full;
/// an asset did not verify after its retries.
pub const NOT_FULFILLED: u8 = 8;
pub const DISK_FULL: u8 = 9;
pub const VERIFY_FAILED: u8 = 10;

pub struct Options {
    pub order: String,
    pub to: PathBuf,
    /// Assets fetched at once.
    pub parallel: usize,
    /// How long to wait for an order that is not fulfilled yet (None: not at all), and how often
    /// to ask.
    pub wait: Option<Duration>,
    pub poll: Duration,
    /// Unpack each ZIP archive beside it (extract.rs).
    pub extract: bool,
    /// Where each asset's line goes (the terminal's standard output, the forwarder's log).
    pub say: fn(String),
}

/// One asset of the order, as UP42 lists it.
pub struct Asset {
    pub id: String,
    pub name: String,
    pub size: Option<u64>,
}

/// What the downloads have done so far (forward status and the metrics read them).
#[derive(Default)]
pub struct Counters {
    /// The bytes the order's assets come to (those not complete before), once they are listed.
    pub total: AtomicU64,
    pub in_flight: AtomicU64,
    pub bytes: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// An id as UP42 writes them (UUIDs): it goes into URL paths and a folder name, so nothing else
/// is taken, from the command line or from an event's body.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A file name of UP42's, kept as it is when it is one plain name; else the asset's id.
fn file_name(name: Option<&str>, id: &str) -> String {
    match name {
        Some(n)
            if !n.is_empty()
                && n.len() <= 200
                && !n.starts_with('.')
                && !n.contains(['/', '\\', '\0'])
                && !n.ends_with(".part")
                && n != "manifest.json" =>
        {
            n.to_string()
        }
        _ => format!("{id}.zip"),
    }
}

/// The order's status, waited for when asked: Ok when FULFILLED.
async fn fulfilled(api: &Arc<Mutex<Api>>, o: &Options) -> Result<(), Error> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let order = api.lock().await.order(&o.order).await?;
        let status = order["status"].as_str().unwrap_or("?").to_string();
        if status == "FULFILLED" {
            return Ok(());
        }
        let over = status.ends_with("FAILED") || status.ends_with("FAILED_PERMANENTLY");
        let waited = started.elapsed();
        match o.wait {
            Some(limit) if !over && waited + o.poll <= limit => {
                if !said {
                    eprintln!(
                        "up42wh: order {} is {status}: waiting for FULFILLED (asking every {} s, for up to {} s)",
                        o.order,
                        o.poll.as_secs(),
                        limit.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(o.poll).await;
            }
            _ => {
                return Err(Error::code(
                    NOT_FULFILLED,
                    format!(
                        "order {} is {status}, not FULFILLED: {}",
                        o.order,
                        if over {
                            "it will not be; nothing to download"
                        } else if o.wait.is_some() {
                            "still, at the end of --wait"
                        } else {
                            "its assets come when it is (--wait waits for it)"
                        }
                    ),
                ))
            }
        }
    }
}

/// Takes the order folder's lock (flock on `.lock`), waiting for another run that holds it.
async fn lock(dir: &Path, order: &str) -> Result<std::fs::File, Error> {
    let path = dir.join(".lock");
    crate::lock::exclusive(&path, || {
        eprintln!(
            "up42wh: another download of order {order} holds {}: waiting for it",
            path.display()
        )
    })
    .await
    .map_err(|e| io_error(&path, e))
}

/// What a complete order came to.
pub struct Summary {
    pub dir: PathBuf,
    pub assets: usize,
    pub bytes: u64,
    pub received: u64,
}

pub async fn run(
    api: &Arc<Mutex<Api>>,
    o: &Options,
    counters: &Arc<Counters>,
) -> Result<Summary, Error> {
    if !valid_id(&o.order) {
        return Err(Error::config(format!(
            "order {:?}: UP42's order ids are UUIDs (letters, digits and -)",
            o.order
        )));
    }
    let storage = api.lock().await.storage();
    fulfilled(api, o).await?;
    let listed = api.lock().await.assets(&o.order).await?;
    let mut assets = Vec::new();
    for x in &listed {
        let Some(id) = x["id"].as_str().filter(|i| valid_id(i)) else {
            return Err(Error::code(
                API_REFUSED,
                format!(
                    "UP42 listed an asset of order {} without a valid id",
                    o.order
                ),
            ));
        };
        assets.push(Asset {
            id: id.to_string(),
            name: file_name(x["name"].as_str(), id),
            size: x["size"].as_u64(),
        });
    }
    if assets.is_empty() {
        return Err(Error::code(
            API_REFUSED,
            format!(
                "UP42 lists no asset for the fulfilled order {}: nothing to download",
                o.order
            ),
        ));
    }
    // Two assets of one name (UP42 does not promise unique names): the later ones by id.
    for i in 1..assets.len() {
        if assets[..i].iter().any(|a| a.name == assets[i].name) {
            assets[i].name = format!("{}-{}", assets[i].id, assets[i].name);
        }
    }
    let dir = o.to.join(&o.order);
    let total: u64 = assets
        .iter()
        .filter(|a| !dir.join(&a.name).exists())
        .filter_map(|a| a.size)
        .sum();
    counters.total.fetch_add(total, Ordering::Relaxed);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let _lock = lock(&dir, &o.order).await?;

    // Up to `parallel` assets at once, each from a shared queue; the first error ends the order.
    let assets = Arc::new(assets);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..o.parallel.clamp(1, 16) {
        let (say, unpack) = (o.say, o.extract);
        let (api, storage, assets, next, dir, counters) = (
            api.clone(),
            storage.clone(),
            assets.clone(),
            next.clone(),
            dir.clone(),
            counters.clone(),
        );
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(a) = assets.get(i) else {
                    return Ok::<_, Error>(done);
                };
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let r = transfer::fetch(&api, &storage, &dir, a, &counters).await;
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                // Unpacked once verified, off the runtime's threads; refused whole or done whole.
                let r = match r {
                    Ok(d) if unpack => {
                        let path = dir.join(&a.name);
                        tokio::task::spawn_blocking(move || extract::unpack(&path))
                            .await
                            .map_err(|e| Error::run(format!("the unpacking thread: {e}")))
                            .and_then(|u| u)
                            .map(|_| d)
                    }
                    r => r,
                };
                match r {
                    Ok(d) => {
                        // Counted when this run fetched it, not when it was complete before.
                        if d.received > 0 {
                            counters.completed.fetch_add(1, Ordering::Relaxed);
                        }
                        say(format!(
                            "{}: {} bytes{}, verified{}",
                            a.name,
                            d.len,
                            if d.received == 0 {
                                " (complete before)".to_string()
                            } else {
                                String::new()
                            },
                            match d.resumed {
                                0 => String::new(),
                                1 => ", resumed once".to_string(),
                                n => format!(", resumed {n} times"),
                            }
                        ));
                        done.push((i, d));
                    }
                    Err(e) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        // The others stop taking assets; what is under way ends its try.
                        next.store(u64::MAX / 2, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(d)) => done.extend(d),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::run(format!("a download task failed: {e}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    done.sort_by_key(|(i, _)| *i);
    let mut entries = Vec::new();
    let (mut bytes, mut received) = (0, 0);
    let now = crate::clock::now_secs();
    for (i, d) in &done {
        let a = &assets[*i];
        let size = d.len;
        bytes += size;
        received += d.received;
        let mut entry = json!({
            "id": a.id,
            "name": a.name,
            "size": size,
            "crc32c": hashes::hex(&d.sums.crc32c),
            "md5": hashes::hex(&d.sums.md5),
        });
        if o.extract {
            let folder = extract::folder_of(&dir.join(&a.name));
            entry["unpacked_to"] = json!(folder.file_name().map(|n| n.to_string_lossy()));
        }
        entries.push(entry);
    }
    let manifest = json!({
        "order": o.order,
        "status": "FULFILLED",
        "completed_at": up42webhooks::format_rfc3339(now),
        "assets": entries,
    });
    write_manifest(&dir, &manifest)?;
    Ok(Summary {
        dir,
        assets: done.len(),
        bytes,
        received,
    })
}

/// manifest.json through a temporary file, synced and renamed: there whole or not at all
/// (readable by other programs, as the files are).
fn write_manifest(dir: &Path, manifest: &Value) -> Result<(), Error> {
    let path = dir.join("manifest.json");
    let mut text = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    text.push(b'\n');
    crate::durable::replace(&path, &text, std::fs::OpenOptions::new())
        .map_err(|e| io_error(&path, e))
}

/// On a terminal: one bar for the order's bytes, drawn from the counters until `done` ends; the
/// asset lines print above it. Elsewhere nothing (each asset's line is the log).
pub async fn with_progress<T>(
    counters: &Arc<Counters>,
    done: impl std::future::Future<Output = T>,
) -> T {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return done.await;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let c = counters.clone();
    let drawn = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            drawn.set_length(c.total.load(Ordering::Relaxed));
            drawn.set_position(c.bytes.load(Ordering::Relaxed));
            drawn.set_message(format!(
                "{} in flight, {} done",
                c.in_flight.load(Ordering::Relaxed),
                c.completed.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let out = done.await;
    ticker.abort();
    bar.set_position(counters.bytes.load(Ordering::Relaxed));
    bar.finish_and_clear();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_from_up42_stay_inside_the_folder() {
        assert!(valid_id("5f0c8d4e-9a1b-4c2d-8e3f-0a1b2c3d4e5f"));
        for bad in ["", "../x", "a/b", "a b", "a?b", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(file_name(Some("scene.zip"), "i"), "scene.zip");
        for bad in [
            "../x.zip",
            "/etc/passwd",
            ".hidden",
            "a\\b",
            "x.part",
            "manifest.json",
            "",
        ] {
            assert_eq!(file_name(Some(bad), "i"), "i.zip", "{bad}");
        }
        assert_eq!(file_name(None, "i"), "i.zip");
    }
}
