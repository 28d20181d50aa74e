//! The dead letters: an append-only log (`dead-letter.jsonl`, JSON lines) of the events a route
//! gave up, and of markers that settle them. A letter leaves the log only once a marker says its
//! replay was delivered or that it was dead-lettered again (a new letter and its marker in one
//! write), so `replay` may be stopped at any point (Ctrl-C, kill -9): what it had not settled is
//! still there, and is sent again by the next replay (at least once).
//!
//! Why a log and not a database: letters are few and written by one forwarder and one replay at
//! a time; a log of lines stays readable with `jq` and `grep`, and needs no crate. Every write,
//! the forwarder's and the replay's, holds an exclusive `flock` on the file; a compaction (the
//! settled letters dropped) writes a new file under that lock and renames it over the old one, so
//! a writer that waited on the old file finds it replaced and opens the new one. Two replays at
//! once: the second refuses (a lock of its own, `dead-letter.jsonl.replay`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::event::Event;
use super::state::{private_file, replace_file};

/// A dead letter: the event with its envelope, the route, the attempts and the last failure.
#[derive(Serialize, Deserialize, Clone)]
pub struct DeadLetter {
    pub route: String,
    /// Requests sent (an open circuit sends none).
    pub attempts: u32,
    /// Why: `redirect` (the sink answered 3xx), `refused` (a 4xx not retried), or `exhausted`
    /// (the route's schedule ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: String,
    pub time: String,
    pub envelope: Event,
}

/// A marker: the letter whose line has this id is settled.
#[derive(Serialize, Deserialize)]
struct Settled {
    settled: String,
    /// `delivered` (by a replay) or `dead again` (a new letter replaces it).
    outcome: String,
    time: String,
}

/// A letter's id: a digest of its line (letters of older versions have no id of their own).
pub fn id_of(line: &str) -> String {
    let d = sha2::Sha256::digest(line.trim_end().as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A letter read from the log, with its line and id.
pub struct Letter {
    pub id: String,
    pub line: String,
    pub letter: Option<DeadLetter>,
}

pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, open for appending and locked, the one at the path now (not one a compaction
    /// replaced while this waited for the lock).
    fn locked(&self) -> std::io::Result<File> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        for _ in 0..100 {
            let f = private_file()
                .create(true)
                .append(true)
                .read(true)
                .open(&self.path)?;
            f.lock()?;
            let here = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            if here == Some(f.metadata()?.ino()) {
                return Ok(f);
            }
        }
        Err(std::io::Error::other(
            "the dead-letter file keeps being replaced",
        ))
    }

    /// Appends lines in one write, under the lock.
    fn append_lines(&self, text: &[u8]) -> std::io::Result<()> {
        let mut f = self.locked()?;
        f.write_all(text)?;
        f.sync_data()
    }

    /// Appends a letter (the forwarder's, after a route's last attempt).
    pub fn append(&self, d: &DeadLetter) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(d).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.append_lines(&line)
    }

    /// Marks the letter `id` settled, with `replacement` (a letter written again) in the same
    /// write.
    pub fn settle(
        &self,
        id: &str,
        outcome: &str,
        replacement: Option<&DeadLetter>,
    ) -> std::io::Result<()> {
        let mut text = Vec::new();
        if let Some(d) = replacement {
            serde_json::to_writer(&mut text, d).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let m = Settled {
            settled: id.to_string(),
            outcome: outcome.to_string(),
            time: up42webhooks::format_rfc3339((crate::clock::now_ms() / 1000) as i64),
        };
        serde_json::to_writer(&mut text, &m).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.append_lines(&text)
    }

    /// The letters not settled, in the order they were written; read under the lock, so that a
    /// letter the forwarder is writing is read whole or not at all.
    pub fn open_letters(&self) -> std::io::Result<Vec<Letter>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let f = self.locked()?;
        let mut text = String::new();
        (&f).read_to_string(&mut text)?;
        Ok(unsettled(&text))
    }

    /// Rewrites the file with the letters not settled (and lines it cannot read), when markers
    /// make it worth it: a new file, synced, renamed over the old one under the lock.
    pub fn compact(&self) -> std::io::Result<()> {
        let f = self.locked()?;
        let mut text = String::new();
        (&f).read_to_string(&mut text)?;
        let open = unsettled(&text);
        if open.len() == text.lines().filter(|l| !l.trim().is_empty()).count() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for l in &open {
            bytes.extend_from_slice(l.line.as_bytes());
            bytes.push(b'\n');
        }
        // Renamed while `f` holds the lock on the old file: a writer waiting for it then finds
        // the new one.
        replace_file(&self.path, &bytes)?;
        drop(f);
        Ok(())
    }

    /// Letters an older version left in `NAME.replaying` (its replay moved the file aside and
    /// could lose them when cut short): appended back to the log, then that file removed.
    pub fn take_back_aside(&self) -> std::io::Result<usize> {
        let aside = self.path.with_extension("replaying");
        let text = match std::fs::read_to_string(&aside) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !lines.is_empty() {
            self.append_lines((lines.join("\n") + "\n").as_bytes())?;
        }
        std::fs::remove_file(&aside)?;
        Ok(lines.len())
    }

    /// The lock a replay holds while it runs; `None` when another replay holds it.
    pub fn replay_lock(&self) -> std::io::Result<Option<File>> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("jsonl.replay"))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The letters of `text` no marker settles.
fn unsettled(text: &str) -> Vec<Letter> {
    let mut settled = HashSet::new();
    let mut letters = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(m) = serde_json::from_str::<Settled>(line) {
            settled.insert(m.settled);
            continue;
        }
        letters.push(Letter {
            id: id_of(line),
            line: line.to_string(),
            letter: serde_json::from_str(line).ok(),
        });
    }
    letters.retain(|l| !settled.contains(&l.id));
    letters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(key: u64) -> DeadLetter {
        let line = format!(
            r#"{{"key":{key},"received":1,"event_type":null,"status":null,"live":null,"event":{{}}}}"#
        );
        DeadLetter {
            route: "r".into(),
            attempts: 1,
            reason: Some("refused".into()),
            last_status: Some(400),
            last_error: "answered 400".into(),
            time: "2026-01-01T00:00:00Z".into(),
            envelope: Event::parse(&line).unwrap(),
        }
    }

    #[test]
    fn a_letter_leaves_only_when_settled_and_compaction_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("up42wh-dl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::new(&dir.join("dead-letter.jsonl"));
        assert!(s.open_letters().unwrap().is_empty());
        for k in 1..=3 {
            s.append(&letter(k)).unwrap();
        }
        let open = s.open_letters().unwrap();
        assert_eq!(open.len(), 3);
        s.settle(&open[0].id, "delivered", None).unwrap();
        let mut again = letter(2);
        again.attempts = 2;
        s.settle(&open[1].id, "dead again", Some(&again)).unwrap();
        let open = s.open_letters().unwrap();
        let keys: Vec<(String, u32)> = open
            .iter()
            .map(|l| {
                let d = l.letter.as_ref().unwrap();
                (d.envelope.key.text.clone(), d.attempts)
            })
            .collect();
        assert_eq!(keys, [("3".into(), 1), ("2".into(), 2)]);
        s.compact().unwrap();
        let text = std::fs::read_to_string(s.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("settled"));
        // An older version's file set aside comes back.
        std::fs::write(
            dir.join("dead-letter.replaying"),
            format!("{}\n", serde_json::to_string(&letter(9)).unwrap()),
        )
        .unwrap();
        assert_eq!(s.take_back_aside().unwrap(), 1);
        assert_eq!(s.open_letters().unwrap().len(), 3);
        assert!(!dir.join("dead-letter.replaying").exists());
        // One replay at a time.
        let held = s.replay_lock().unwrap();
        assert!(held.is_some());
        assert!(s.replay_lock().unwrap().is_none());
        drop(held);
        assert!(s.replay_lock().unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
