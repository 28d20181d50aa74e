//! The forwarder's log: one line per happening on standard error, with the time (systemd and
//! Docker keep it; nothing is buffered, so `kill -9` loses no line).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// A line for the log, with the time.
pub fn log(level: &str, msg: impl std::fmt::Display) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!(
        "{}.{:03} {level} {msg}\n",
        up42webhooks::format_rfc3339(now.as_secs() as i64).trim_end_matches('Z'),
        now.subsec_millis()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
