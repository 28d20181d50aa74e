//! The event journal: append-only segment files of framed records, and their recovery.
//!
//! A journal is a directory: `journal.salt` (16 random bytes, made when the directory is first
//! used) and segments `events.000001.log`, `events.000002.log`, ... Several writers (nginx workers)
//! append to the newest segment at once, each record with one `write(2)` on an `O_APPEND` file
//! descriptor; retention deletes whole old segments and never rewrites a file.
//!
//! A record is one frame (src/format/frame.rs: the CRC starts from the CRC of the journal's salt,
//! so the bytes of a stored body can never pass for a frame of their own). Recovery reads every
//! segment in order: a complete frame with a good CRC is a record; damage (a flipped bit, a torn write) is
//! skipped by searching for the next good frame, so one damaged record costs that record only. A
//! damaged stretch with a good frame after it is counted as corrupt; one that runs to the end of a
//! segment is a torn tail (an append cut short by a crash), counted in bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::code::Code;
pub use crate::format::frame::{crc32c, decode_record, encode, Kind, Record};
use crate::format::frame::{decode, record, resync, Frame};

const SALT_FILE: &str = "journal.salt";
const SALT_LEN: usize = 16;
/// "No space left on device", the same number on every Linux architecture.
const ENOSPC: i32 = 28;

/// The file name of segment `n`.
pub fn segment_name(n: u32) -> String {
    format!("events.{n:06}.log")
}

/// The segment numbers in `dir`, oldest first.
pub fn segments(dir: &Path) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix("events.")
            .and_then(|s| s.strip_suffix(".log"))
            .filter(|s| s.len() >= 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new file (or an emptied one) that only its owner may read: the journal's own small files.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The CRC seed of the journal in `dir`, making its salt when there is none and `create` says so.
/// Several processes may start at once: the salt is written under a temporary name and linked into
/// place, so that every one of them reads the same complete salt.
pub fn salt_seed(dir: &Path, create: bool) -> io::Result<u32> {
    let path = dir.join(SALT_FILE);
    let salt = match fs::read(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            let mut fresh = [0u8; SALT_LEN];
            File::open("/dev/urandom")?.read_exact(&mut fresh)?;
            // A name of this process's and this call's own: workers are processes, tests threads.
            static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!("{SALT_FILE}.{}.{call}", std::process::id()));
            let mut f = create_private(&tmp)?;
            f.write_all(&fresh)?;
            f.sync_all()?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => sync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fs::read(&path)?
        }
        Err(e) => return Err(e),
    };
    if salt.len() != SALT_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "journal.salt is not 16 bytes",
        ));
    }
    Ok(crc32c(0, &salt))
}

/// A writer: appends records to one segment.
pub struct Writer {
    file: File,
    seed: u32,
    buf: Vec<u8>,
    size: u64,
}

impl Writer {
    /// Opens segment `segment` of the journal in `dir` (an existing directory) for appending,
    /// creating it (and the salt) when needed.
    pub fn open(dir: &Path, segment: u32) -> io::Result<Writer> {
        let seed = salt_seed(dir, true)?;
        let path: PathBuf = dir.join(segment_name(segment));
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        if !existed {
            sync_dir(dir)?; // the new name survives a power loss once a record in it is synced
        }
        let size = file.metadata()?.len();
        Ok(Writer {
            file,
            seed,
            buf: Vec::new(),
            size,
        })
    }

    /// Appends `r` with one `write(2)`; returns the segment's size after it (as this writer saw it:
    /// other writers add to it too). A short write is an error: the part written is damage that
    /// recovery skips, and the caller must not count the record as stored. On a regular file it
    /// means the disk (or the quota) is full, and is reported as ENOSPC: the next write would say
    /// so itself.
    pub fn append(&mut self, r: &Record) -> Result<u64, AppendError> {
        self.buf.clear();
        encode(r, self.seed, &mut self.buf).map_err(AppendError::Record)?;
        loop {
            match self.file.write(&self.buf) {
                Ok(n) if n == self.buf.len() => break,
                Ok(_) => return Err(AppendError::Io(io::Error::from_raw_os_error(ENOSPC))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AppendError::Io(e)),
            }
        }
        // After an O_APPEND write the file offset is the end of this record: the segment's size
        // as it stands (an lseek, cheaper than an fstat).
        self.size = self
            .file
            .stream_position()
            .unwrap_or(self.size + self.buf.len() as u64);
        Ok(self.size)
    }

    /// Forces what was written to the disk (`fdatasync`).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// The record cannot be framed (an id or meta over 65,535 bytes, a payload over 64 MiB).
    Record(Code),
    Io(io::Error),
}

/// What recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub segments: u32,
    pub first_segment: u32,
    pub last_segment: u32,
    /// Bytes in all segments read.
    pub bytes: u64,
    /// Good records.
    pub records: u64,
    /// Damaged stretches with a good record after them: each lost one or more records.
    pub corrupt: u64,
    /// Bytes of damaged stretches that run to the end of a segment (appends cut short).
    pub torn_bytes: u64,
    /// The highest key of any record, and the latest time.
    pub max_key: u64,
    pub max_time: i64,
}

/// Reads every good record of a journal, oldest segment first.
pub struct Reader {
    dir: PathBuf,
    seed: u32,
    segments: Vec<u32>,
    next_segment: usize,
    data: Vec<u8>,
    pos: usize,
    stats: Stats,
    /// Each segment read whose end is a torn tail, and the offset where that tail starts.
    torn: Vec<(u32, u64)>,
}

impl Reader {
    /// A reader of every segment in `dir`, or only of `segment` when it is not 0. A directory with
    /// no segments (and no salt yet) reads as empty.
    pub fn open(dir: &Path, segment: u32) -> io::Result<Reader> {
        let mut list = segments(dir)?;
        if segment != 0 {
            list.retain(|&n| n == segment);
        }
        // Segments without their salt cannot be read: say so rather than call every record damage.
        let seed = if list.is_empty() {
            0
        } else {
            salt_seed(dir, false)?
        };
        let stats = Stats {
            segments: list.len() as u32,
            first_segment: list.first().copied().unwrap_or(0),
            last_segment: list.last().copied().unwrap_or(0),
            ..Stats::default()
        };
        Ok(Reader {
            dir: dir.to_path_buf(),
            seed,
            segments: list,
            next_segment: 0,
            data: Vec::new(),
            pos: 0,
            stats,
            torn: Vec::new(),
        })
    }

    /// Cuts the torn tails of the segments read so far (appends a crash cut short: bytes that
    /// were never a record) off their files, so that the next recovery does not count them again,
    /// nor, once later records follow them, as damage. Only while nothing appends to the journal
    /// (before the writers start). Returns the bytes cut.
    pub fn cut_torn_tails(&mut self) -> io::Result<u64> {
        let mut cut = 0;
        for (segment, at) in std::mem::take(&mut self.torn) {
            let f = OpenOptions::new()
                .write(true)
                .open(self.dir.join(segment_name(segment)))?;
            let len = f.metadata()?.len();
            if len > at {
                f.set_len(at)?;
                f.sync_all()?;
                cut += len - at;
            }
        }
        Ok(cut)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next good record, `Ok(None)` at the end.
    pub fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        loop {
            if self.pos >= self.data.len() {
                if self.next_segment == self.segments.len() {
                    return Ok(None);
                }
                let name = segment_name(self.segments[self.next_segment]);
                self.next_segment += 1;
                self.data.clear();
                File::open(self.dir.join(name))?.read_to_end(&mut self.data)?;
                self.stats.bytes += self.data.len() as u64;
                self.pos = 0;
                continue;
            }
            let torn_before = self.stats.torn_bytes;
            let found = next_frame(&self.data, &mut self.pos, self.seed, &mut self.stats);
            if self.stats.torn_bytes > torn_before {
                let at = self.data.len() as u64 - (self.stats.torn_bytes - torn_before);
                self.torn.push((self.segments[self.next_segment - 1], at));
            }
            if let Some(f) = found {
                return Ok(Some(record(&self.data[self.pos - f.len..], f)));
            }
        }
    }
}

/// The next good frame in `data` from `*pos` on, skipping and counting damage; moves `*pos` past
/// it (or to the end).
fn next_frame(data: &[u8], pos: &mut usize, seed: u32, stats: &mut Stats) -> Option<Frame> {
    while *pos < data.len() {
        let at = *pos;
        match decode(&data[at..], seed) {
            Some(f) => {
                *pos += f.len;
                stats.records += 1;
                let r = record(&data[at..], f);
                stats.max_key = stats.max_key.max(r.key);
                stats.max_time = stats.max_time.max(r.time);
                return Some(f);
            }
            None => match resync(&data[at..], seed) {
                Some(skip) => {
                    stats.corrupt += 1;
                    *pos += skip;
                }
                None => {
                    stats.torn_bytes += (data.len() - at) as u64;
                    *pos = data.len();
                }
            },
        }
    }
    None
}

/// Every good record in the bytes of one segment, and what was skipped: what recovery does with
/// each segment file.
pub fn recover(data: &[u8], seed: u32) -> (Vec<Record<'_>>, Stats) {
    let (mut pos, mut stats, mut out) = (0, Stats::default(), Vec::new());
    while let Some(f) = next_frame(data, &mut pos, seed, &mut stats) {
        out.push(record(&data[pos - f.len..], f));
    }
    (out, stats)
}

/// How much disk a journal takes, from its file sizes (nothing is read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub segments: u32,
    pub first_segment: u32,
    pub last_segment: u32,
    pub bytes: u64,
}

/// The segments of the journal in `dir` and their total size.
pub fn usage(dir: &Path) -> io::Result<Usage> {
    let list = segments(dir)?;
    let mut bytes = 0;
    for &n in &list {
        bytes += fs::metadata(dir.join(segment_name(n)))?.len();
    }
    Ok(Usage {
        segments: list.len() as u32,
        first_segment: list.first().copied().unwrap_or(0),
        last_segment: list.last().copied().unwrap_or(0),
        bytes,
    })
}

/// The key mark: kept beside the segments in its own file, so that a journal cut short (a crash,
/// a disk that lost its last blocks, a file emptied) cannot take it. Every key up to `reserved`
/// may have been handed out, so keys go on above it. A worker that stops cleanly writes `last`,
/// the last key handed out, with `clean` set: a journal that then ends below `last` lost events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyMark {
    pub reserved: u64,
    pub last: u64,
    pub clean: bool,
}

const MARK_FILE: &str = "journal.keys";

/// The key mark of the journal in `dir`; `None` when it has none yet.
pub fn read_key_mark(dir: &Path) -> io::Result<Option<KeyMark>> {
    let text = match fs::read_to_string(dir.join(MARK_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "journal.keys is damaged");
    let mut words = text.trim_end().split(' ');
    if words.next() != Some("up42wh-keys") {
        return Err(bad());
    }
    let mut field = |name: &str| -> io::Result<u64> {
        let w = words.next().ok_or_else(bad)?;
        let v = w
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('='))
            .ok_or_else(bad)?;
        v.parse().map_err(|_| bad())
    };
    let reserved = field("reserved")?;
    let last = field("last")?;
    let clean = field("clean")?;
    if clean > 1 || words.next().is_some() {
        return Err(bad());
    }
    Ok(Some(KeyMark {
        reserved,
        last,
        clean: clean == 1,
    }))
}

/// Writes the key mark of the journal in `dir`, durably (a new file synced, renamed over the old
/// one, the directory synced) before it returns.
pub fn write_key_mark(dir: &Path, m: &KeyMark) -> io::Result<()> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{MARK_FILE}.{}.{call}", std::process::id()));
    let text = format!(
        "up42wh-keys reserved={} last={} clean={}\n",
        m.reserved, m.last, m.clean as u8
    );
    let written = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(MARK_FILE))?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Whether the user `uid` (group `gid`) may create files in `dir`: every directory on the way
/// searchable, `dir` itself writable, by its mode bits (ACLs and other groups are not looked at).
/// The check nginx's master makes at start for its workers, which run as another user when it is
/// started as root. EACCES when not, ENOTDIR when `dir` is no directory.
pub(crate) fn writable_by(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    const EACCES: i32 = 13;
    const ENOTDIR: i32 = 20;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::from_raw_os_error(ENOTDIR));
    }
    if uid == 0 {
        return Ok(());
    }
    // The permission bits that apply to this user: owner's, group's or others'.
    let bits = |m: &fs::Metadata| {
        let shift = if m.uid() == uid {
            6
        } else if m.gid() == gid {
            3
        } else {
            0
        };
        (m.mode() >> shift) & 7
    };
    let dir = fs::canonicalize(dir)?;
    for ancestor in dir.ancestors().skip(1) {
        if bits(&fs::metadata(ancestor)?) & 1 == 0 {
            return Err(io::Error::from_raw_os_error(EACCES));
        }
    }
    if bits(&meta) & 3 != 3 {
        return Err(io::Error::from_raw_os_error(EACCES));
    }
    Ok(())
}

/// Deletes segment `segment` of the journal in `dir` (retention: every record in it is gone).
pub fn remove_segment(dir: &Path, segment: u32) -> io::Result<()> {
    fs::remove_file(dir.join(segment_name(segment)))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // RFC 3720 (iSCSI) B.4 test vectors and the standard check value.
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(0, &[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(0, &inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(0, &dec), 0x113F_DB5C);
        // Continuing equals hashing the concatenation, at every split.
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        for cut in 0..data.len() {
            assert_eq!(
                crc32c(crc32c(0, &data[..cut]), &data[cut..]),
                crc32c(0, &data)
            );
        }
    }
}
