//! One process at a time on a file's lock (flock on `path`, made when missing): a download's
//! order folder, a reconciler's watermark. Released when the returned file closes, also when the
//! process is killed.

use std::os::fd::AsRawFd;
use std::path::Path;

/// Takes the lock, waiting for whoever holds it (`waiting` is called once before the wait).
pub async fn exclusive(path: &Path, waiting: impl FnOnce()) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(f);
    }
    waiting();
    tokio::task::spawn_blocking(move || {
        // SAFETY: as above; blocks this thread only.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            Ok(f)
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
    .await
    .map_err(std::io::Error::other)?
}
