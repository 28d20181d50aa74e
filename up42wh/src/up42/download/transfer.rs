//! One asset, from its signed storage URL to `DIR/ORDER/NAME`: streamed into `NAME.part`, continued
//! with `Range` after a cut, checked (length against the asset's `size` and the answer's,
//! `x-goog-hash`'s CRC32C and MD5) before it takes its final name, then fsynced and renamed. A
//! file under its final name is therefore always complete and verified. The URL is asked for
//! afresh before every try (they live seconds to minutes) and never carries UP42's token.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::hashes::{self, Running, Sums};
use super::{Asset, Counters, DISK_FULL, VERIFY_FAILED};
use crate::error::Error;
use crate::up42::api::{Api, API_REFUSED};

/// A verified file.
pub struct Done {
    pub sums: Sums,
    /// Its length.
    pub len: u64,
    /// Bytes received for it in this run (0 when it was complete before).
    pub received: u64,
    /// How many times this run continued a part an earlier try or run left.
    pub resumed: u32,
}

/// Tries that failed on the way (a cut, a timeout, 429, 5xx) before the asset is given up.
const TRIES: u32 = 8;
/// Transfers that arrived whole but did not match their hashes or length.
const VERIFY_TRIES: u32 = 3;
/// URLs refused as expired or not valid in a row.
const URL_TRIES: u32 = 5;

/// What one try came to.
enum Try {
    /// The part is complete: verify it.
    Whole(hashes::Stated, u64),
    /// Cut, or the storage host was busy: continue from the part, after the wait it asked for
    /// (Retry-After) or a backoff.
    Again(Option<Duration>, String),
    /// The URL was refused (expired, signature): a fresh one at once.
    Url(String),
    /// The part does not continue what the host sends: start over.
    Restart(String),
}

pub async fn fetch(
    api: &Arc<Mutex<Api>>,
    storage: &reqwest::Client,
    dir: &Path,
    a: &Asset,
    counters: &Counters,
) -> Result<Done, Error> {
    let target = dir.join(&a.name);
    let part = dir.join(format!("{}.part", a.name));
    if target.exists() {
        let r = Running::of_file(&target).map_err(|e| io_error(&target, e))?;
        if a.size.is_none_or(|s| s == r.len) {
            return Ok(Done {
                sums: r.sums(),
                len: r.len,
                received: 0,
                resumed: 0,
            });
        }
        // Another size than UP42 states now: fetched again (the old one stays until then).
    }
    let mut running: Option<Running> = None;
    let (mut tries, mut bad, mut urls) = (0, 0, 0);
    let mut received = 0;
    let mut resumed = 0;
    loop {
        let url = api.lock().await.download_url(&a.id).await?;
        // The hashes so far cover the part as it is on disk (read once when an earlier run left it).
        let on_disk = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let mut r = match running.take() {
            Some(r) if r.len == on_disk => r,
            _ if on_disk == 0 => Running::default(),
            _ => Running::of_file(&part).map_err(|e| io_error(&part, e))?,
        };
        if r.len > 0 {
            resumed += 1;
        }
        let before = r.len;
        let outcome = one_try(storage, &url, &part, &mut r, a, counters, &mut received).await?;
        // A pause before the next try, after a cut, a busy host or a transfer to start over.
        let pause = match outcome {
            Try::Whole(stated, total) => {
                let sums = r.sums();
                let mut wrong: Vec<String> = sums
                    .mismatches(&stated)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                if a.size.is_some_and(|s| s != r.len) || total != r.len {
                    wrong.push(format!(
                        "length {} (UP42 states {}, the storage host {total})",
                        r.len,
                        a.size.map(|s| s.to_string()).unwrap_or("none".into())
                    ));
                }
                if wrong.is_empty() {
                    finish(&part, &target)?;
                    return Ok(Done {
                        sums,
                        len: r.len,
                        received,
                        resumed,
                    });
                }
                let _ = std::fs::remove_file(&part);
                bad += 1;
                eprintln!(
                    "up42wh: {}: does not verify ({}): fetched again from the start",
                    a.name,
                    wrong.join(", ")
                );
                if bad >= VERIFY_TRIES {
                    return Err(Error::code(
                        VERIFY_FAILED,
                        format!(
                            "{}: did not verify in {VERIFY_TRIES} transfers ({}): nothing kept under its name",
                            a.name,
                            wrong.join(", ")
                        ),
                    ));
                }
                None
            }
            Try::Url(why) => {
                running = Some(r);
                urls += 1;
                if urls >= URL_TRIES {
                    return Err(Error::code(
                        API_REFUSED,
                        format!("{}: the storage host refused {URL_TRIES} fresh URLs from UP42, the last: {why}", a.name),
                    ));
                }
                None
            }
            Try::Again(wait, why) => {
                // Tries count while nothing arrives: a link that drops every few MiB still ends.
                tries = if r.len > before { 0 } else { tries + 1 };
                running = Some(r);
                Some((wait, why))
            }
            Try::Restart(why) => {
                eprintln!("up42wh: {}: {why}: fetched again from the start", a.name);
                let _ = std::fs::remove_file(&part);
                // Counted too: a host that never sends what it announces is given up as well.
                tries += 1;
                Some((None, why))
            }
        };
        if let Some((wait, why)) = pause {
            if tries >= TRIES {
                return Err(Error::code(
                    API_REFUSED,
                    format!("{}: the storage host failed {TRIES} times in a row, the last: {why}; what arrived is kept for the next run", a.name),
                ));
            }
            let backoff = Duration::from_millis(500u64 << tries.min(6));
            tokio::time::sleep(wait.unwrap_or(backoff)).await;
        }
    }
}

/// One GET of the signed URL, from the part's length on; the bytes appended to the part as they
/// arrive. Never an Authorization header: the storage host refuses a signed URL that carries one,
/// and UP42's token is not for it.
async fn one_try(
    storage: &reqwest::Client,
    url: &str,
    part: &Path,
    r: &mut Running,
    a: &Asset,
    counters: &Counters,
    received: &mut u64,
) -> Result<Try, Error> {
    let offset = r.len;
    let mut req = storage.get(url);
    if offset > 0 {
        req = req.header("range", format!("bytes={offset}-"));
    }
    let mut resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return Ok(Try::Again(None, crate::up42::sign_in::reason(&e))),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("retry-after");
    let total = match status {
        200 if offset > 0 => {
            return Ok(Try::Restart(
                "the storage host sent the whole file for a range".into(),
            ))
        }
        200 => header("content-length").and_then(|l| l.parse::<u64>().ok()),
        206 => match header("content-range").as_deref().and_then(content_range) {
            Some((start, total)) if start == offset => Some(total),
            _ => {
                return Ok(Try::Restart(format!(
                    "the storage host answered the range {offset}- with {:?}",
                    header("content-range")
                )))
            }
        },
        416 => return Ok(Try::Restart("the part is longer than the file".into())),
        400 | 401 | 403 => {
            let body = resp.text().await.unwrap_or_default();
            let code = xml_code(&body).unwrap_or("no code");
            return Ok(Try::Url(format!("{status} {code}")));
        }
        408 | 429 | 500..=599 => {
            let wait = retry_after
                .as_deref()
                .and_then(crate::retry_after::retry_after)
                .map(|d| d.min(Duration::from_secs(60)));
            return Ok(Try::Again(wait, format!("{status}")));
        }
        s => {
            return Err(Error::code(
                API_REFUSED,
                format!("{}: the storage host answered {s}", a.name),
            ))
        }
    };
    let Some(total) = total else {
        return Ok(Try::Restart("the storage host sent no length".into()));
    };
    let stated = hashes::stated(
        resp.headers()
            .get_all("x-goog-hash")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .map_err(|e| io_error(part, e))?;
    if offset == 0 {
        file.set_len(0).map_err(|e| io_error(part, e))?;
    }
    // The bytes are written (with their CRC32C) on one thread and go through MD5 on another
    // while the next arrive: TLS, the disk and MD5, which alone takes as long as the network,
    // each on a core when there are cores. Bounded channels: memory stays flat whatever the size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let (tx_md5, mut rx_md5) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let mut hashed = std::mem::take(r);
    let mut md5 = hashed.split_md5();
    let hasher = tokio::task::spawn_blocking(move || {
        while let Some(bytes) = rx_md5.blocking_recv() {
            md5::Digest::update(&mut md5, &bytes);
        }
        md5
    });
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut flushed = Writeback::new(offset);
        while let Some(bytes) = rx.blocking_recv() {
            let wrote = out.write_all(&bytes).and_then(|()| {
                hashed.update_crc(&bytes);
                flushed.wrote(&mut out, hashed.len)
            });
            if let Err(e) = wrote {
                // Gone with `rx`: the network side stops at its next chunk rather than fetching
                // the rest of the asset for a full disk.
                return (hashed, Some(e));
            }
        }
        let failed = out.flush().err();
        (hashed, failed)
    });
    let mut got = offset;
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                let n = bytes.len() as u64;
                if got + n > total {
                    break Try::Restart(format!(
                        "the storage host sent more than the {total} bytes it announced"
                    ));
                }
                got += n;
                *received += n;
                counters.add_bytes(n);
                if tx_md5.send(bytes.clone()).await.is_err() || tx.send(bytes).await.is_err() {
                    break Try::Again(None, "the writer stopped".into());
                }
            }
            Ok(None) if got == total => break Try::Whole(stated, total),
            Ok(None) => break Try::Again(None, format!("cut at {got} of {total} bytes")),
            Err(e) => {
                break Try::Again(
                    None,
                    format!(
                        "cut at {got} of {total} bytes: {}",
                        crate::up42::sign_in::reason(&e)
                    ),
                )
            }
        }
    };
    drop((tx, tx_md5));
    let (mut hashed, failed) = writer
        .await
        .map_err(|e| Error::run(format!("the writing thread: {e}")))?;
    let md5 = hasher
        .await
        .map_err(|e| Error::run(format!("the hashing thread: {e}")))?;
    hashed.join(md5);
    *r = hashed;
    if let Some(e) = failed {
        return Err(io_error(part, e));
    }
    Ok(outcome)
}

/// The disk's writeback started as the file grows (every WINDOW bytes), and waited for one window
/// behind: the fsync before the rename then finds little left to write, and a download is not
/// slowed at its end by all of it at once.
struct Writeback {
    started: u64,
}

const WINDOW: u64 = 16 << 20;

impl Writeback {
    fn new(offset: u64) -> Writeback {
        Writeback { started: offset }
    }

    fn wrote(
        &mut self,
        out: &mut std::io::BufWriter<std::fs::File>,
        len: u64,
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        if len < self.started + WINDOW {
            return Ok(());
        }
        out.flush()?;
        let fd = out.get_ref().as_raw_fd();
        // SAFETY: sync_file_range on a descriptor this thread owns, over written bytes. Advice
        // only: a file system that does not take it loses nothing.
        unsafe {
            libc::sync_file_range(
                fd,
                self.started as i64,
                (len - self.started) as i64,
                libc::SYNC_FILE_RANGE_WRITE,
            );
            if self.started >= WINDOW {
                libc::sync_file_range(
                    fd,
                    (self.started - WINDOW) as i64,
                    WINDOW as i64,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
        }
        self.started = len;
        Ok(())
    }
}

/// `bytes START-END/TOTAL`: (START, TOTAL).
fn content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// The `<Code>` of a storage error's XML body (ExpiredToken, SignatureDoesNotMatch, ...).
fn xml_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(&body[start..start + len]).filter(|c| c.len() <= 64)
}

/// fsync the part, rename it to its final name, fsync the folder: the name appears complete.
fn finish(part: &Path, target: &Path) -> Result<(), Error> {
    std::fs::File::open(part)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(part, e))?;
    crate::durable::rename(part, target).map_err(|e| io_error(target, e))
}

/// A file error: the disk is full (its own exit code, naming the path), or another.
pub fn io_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        return Error::code(
            DISK_FULL,
            format!(
                "the disk is full at {}: free space there and run again (the parts are kept)",
                path.display()
            ),
        );
    }
    Error::run(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_codes_of_the_storage_host() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(content_range("bytes */1000"), None);
        assert_eq!(content_range("items 1-2/3"), None);
        let xml = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code><Message>Invalid argument.</Message></Error>";
        assert_eq!(xml_code(xml), Some("ExpiredToken"));
        assert_eq!(xml_code("<html>"), None);
    }
}
