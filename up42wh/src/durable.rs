//! Names put in place so that a crash leaves the old content or the new, whole: the new file
//! written and synced beside, renamed over, the directory synced (the forwarder's state and dead
//! letters, a download's files, its manifest and unpacked folders).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Renames `from` (a file already synced, or a folder of such files) to `to`, then syncs the
/// directory: the new name survives a crash.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    match to.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Puts `bytes` at `path` through `NAME.tmp` beside it, made with `opts` (its mode).
pub fn replace(path: &Path, bytes: &[u8], mut opts: OpenOptions) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = opts.write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    rename(&tmp, path)
}
