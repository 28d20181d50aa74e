//! The forwarder's state, so that `kill -9` neither skips an event nor forgets a retry due hours
//! later: an append-only log (`state.log`, JSON lines) of what happened to each event after the
//! receiver's position (delivered, retry due at, dead-lettered) and of the circuits, one `write(2)`
//! per line (the page cache keeps it across a crash of the process), compacted by writing the
//! entries still needed to a new file and renaming it over the old one. No database: the state is
//! small (what lies after the position) and one appended line per outcome is all it costs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::Key;

/// One line of the log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "s")]
pub enum Entry {
    /// The route delivered the event under `k`.
    #[serde(rename = "delivered")]
    Delivered { k: String, r: String },
    /// The route tried `a` times; the next attempt is due at `due` (unix milliseconds).
    #[serde(rename = "retry")]
    Retry {
        k: String,
        r: String,
        a: u32,
        due: u64,
    },
    /// Attempt `a` of the route is being made (its outcome follows): after a crash, an event with
    /// no outcome after this may have been delivered, and is sent again.
    #[serde(rename = "sending")]
    Sending { k: String, r: String, a: u32 },
    /// The route gave the event up: it is in the dead-letter file.
    #[serde(rename = "dead")]
    Dead { k: String, r: String },
    /// The receiver acknowledged everything up to `k` for this forwarder: what is at or below it
    /// is no longer needed.
    #[serde(rename = "position")]
    Position { k: String },
    /// A route's circuit: open (`open_until`, unix milliseconds) or closed (0), and its
    /// consecutive failures.
    #[serde(rename = "circuit")]
    Circuit { r: String, f: u32, open_until: u64 },
    /// UP42's transition `t` (`order:<id>:<STATUS>`, `job:...`) goes to route `r` as event `k`
    /// (taken at `at`, unix ms): another event of the same transition (UP42's delivery and the
    /// one learnt from its API by `up42 reconcile`) is not sent to the route again.
    #[serde(rename = "claim")]
    Claim {
        t: String,
        r: String,
        k: String,
        at: u64,
    },
    /// The claim's event was given up (dead-lettered): another of the transition may go.
    #[serde(rename = "unclaim")]
    Unclaim { t: String, r: String },
    /// The route did not send event `k`: the same transition as event `of`, which it has.
    #[serde(rename = "same")]
    Same { k: String, r: String, of: String },
}

/// What happened to an event on one route, as the log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Delivered,
    Dead,
    /// Tried `attempts` times, the next due at the time (unix ms).
    Retry {
        attempts: u32,
        due: u64,
    },
    /// Attempt `attempt` was being made; what came of it is not known.
    Sending {
        attempt: u32,
    },
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub routes: HashMap<(Key, String), Done>,
    pub circuits: HashMap<String, (u32, u64)>,
    pub position: Option<Key>,
    /// (transition, route) -> (its event's key, when claimed, unix ms).
    pub claims: HashMap<(String, String), (String, u64)>,
    /// Lines that could not be read (a line cut short by a crash at the end).
    pub torn: usize,
}

pub struct State {
    path: PathBuf,
    file: File,
    /// Lines appended since the last compaction.
    pub appended: usize,
}

/// A directory of the forwarder's own (made if missing): 0700, what is in it is nobody else's.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Options for a file of the forwarder's own: 0600 when it is made.
pub fn private_file() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// Puts `bytes` at `path` atomically, a file of the forwarder's own (0600).
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::durable::replace(path, bytes, private_file())
}

fn key(text: &str) -> Option<Key> {
    Key::parse(text)
}

impl State {
    /// Opens the log in `dir` (made if missing) and reads what it says.
    pub fn open(dir: &Path) -> std::io::Result<(State, Loaded)> {
        private_dir(dir)?;
        let path = dir.join("state.log");
        let mut loaded = Loaded::default();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) => apply(&mut loaded, e),
                    Err(_) => loaded.torn += 1,
                }
            }
        }
        let file = private_file().create(true).append(true).open(&path)?;
        // A torn last line would glue onto the next one: start on a fresh line.
        if loaded.torn > 0 {
            (&file).write_all(b"\n")?;
        }
        Ok((
            State {
                path,
                file,
                appended: 0,
            },
            loaded,
        ))
    }

    /// Appends one entry (one write).
    pub fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.appended += 1;
        Ok(())
    }

    /// Rewrites the log with `entries` only (what is still needed), atomically: a new file, synced,
    /// renamed over the old one, the directory synced.
    pub fn compact(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        replace_file(&self.path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.appended = 0;
        Ok(())
    }

    /// Syncs what was appended (at a clean stop).
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

fn apply(l: &mut Loaded, e: Entry) {
    match e {
        Entry::Delivered { k, r } => {
            if let Some(k) = key(&k) {
                l.routes.insert((k, r), Done::Delivered);
            }
        }
        Entry::Dead { k, r } => {
            if let Some(k) = key(&k) {
                l.routes.insert((k, r), Done::Dead);
            }
        }
        Entry::Retry { k, r, a, due } => {
            if let Some(k) = key(&k) {
                l.routes.insert((k, r), Done::Retry { attempts: a, due });
            }
        }
        Entry::Sending { k, r, a } => {
            if let Some(k) = key(&k) {
                l.routes.insert((k, r), Done::Sending { attempt: a });
            }
        }
        Entry::Position { k } => {
            if let Some(k) = key(&k) {
                l.routes.retain(|(ek, _), _| *ek > k);
                if l.position.as_ref().is_none_or(|p| k > *p) {
                    l.position = Some(k);
                }
            }
        }
        Entry::Circuit { r, f, open_until } => {
            l.circuits.insert(r, (f, open_until));
        }
        Entry::Claim { t, r, k, at } => {
            l.claims.insert((t, r), (k, at));
        }
        Entry::Unclaim { t, r } => {
            l.claims.remove(&(t, r));
        }
        Entry::Same { k, r, .. } => {
            if let Some(k) = key(&k) {
                l.routes.insert((k, r), Done::Delivered);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_log_says_survives_a_torn_line_and_a_compaction() {
        let dir = std::env::temp_dir().join(format!("up42wh-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut s, l) = State::open(&dir).unwrap();
        assert!(l.routes.is_empty());
        for e in [
            Entry::Delivered {
                k: "1".into(),
                r: "a".into(),
            },
            Entry::Retry {
                k: "2".into(),
                r: "a".into(),
                a: 1,
                due: 5000,
            },
            Entry::Retry {
                k: "2".into(),
                r: "a".into(),
                a: 2,
                due: 9000,
            },
            Entry::Dead {
                k: "3".into(),
                r: "b".into(),
            },
            Entry::Sending {
                k: "6".into(),
                r: "b".into(),
                a: 1,
            },
            Entry::Position { k: "1".into() },
            Entry::Circuit {
                r: "a".into(),
                f: 5,
                open_until: 7000,
            },
        ] {
            s.append(&e).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("state.log"))
            .unwrap()
            .write_all(b"{\"s\":\"deli")
            .unwrap();
        drop(s);
        let (mut s, l) = State::open(&dir).unwrap();
        let k = |t: &str| Key::parse(t).unwrap();
        assert_eq!(l.torn, 1);
        assert_eq!(l.position, Some(k("1")));
        assert!(
            !l.routes.contains_key(&(k("1"), "a".into())),
            "at or below the position"
        );
        assert_eq!(
            l.routes[&(k("2"), "a".into())],
            Done::Retry {
                attempts: 2,
                due: 9000
            }
        );
        assert_eq!(l.routes[&(k("3"), "b".into())], Done::Dead);
        assert_eq!(
            l.routes[&(k("6"), "b".into())],
            Done::Sending { attempt: 1 }
        );
        assert_eq!(l.circuits["a"], (5, 7000));
        s.append(&Entry::Delivered {
            k: "4".into(),
            r: "a".into(),
        })
        .unwrap();
        s.compact(&[Entry::Delivered {
            k: "4".into(),
            r: "a".into(),
        }])
        .unwrap();
        s.append(&Entry::Dead {
            k: "5".into(),
            r: "a".into(),
        })
        .unwrap();
        drop(s);
        let (_, l) = State::open(&dir).unwrap();
        assert_eq!(l.torn, 0);
        assert_eq!(l.routes.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn claims_of_transitions_come_back_after_a_restart_and_go_when_given_up() {
        let dir = std::env::temp_dir().join(format!("up42wh-state-claims-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut s, _) = State::open(&dir).unwrap();
        let claim = |t: &str, r: &str, k: &str| Entry::Claim {
            t: t.into(),
            r: r.into(),
            k: k.into(),
            at: 1000,
        };
        for e in [
            claim("order:a:FULFILLED", "slack", "4"),
            claim("order:a:FULFILLED", "download", "4"),
            claim("job:b:FAILED", "slack", "5"),
            Entry::Same {
                k: "9".into(),
                r: "slack".into(),
                of: "4".into(),
            },
            Entry::Unclaim {
                t: "job:b:FAILED".into(),
                r: "slack".into(),
            },
        ] {
            s.append(&e).unwrap();
        }
        drop(s);
        let (_, l) = State::open(&dir).unwrap();
        assert_eq!(
            l.claims[&("order:a:FULFILLED".to_string(), "slack".to_string())],
            ("4".to_string(), 1000)
        );
        assert_eq!(l.claims.len(), 2, "the job's claim was given up");
        assert_eq!(
            l.routes[&(Key::parse("9").unwrap(), "slack".into())],
            Done::Delivered,
            "an event not sent again is done"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
