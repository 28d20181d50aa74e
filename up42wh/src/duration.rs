//! A duration as a person writes it (`250ms`, `5s`, `5m`, `2h`, `1d`): the forwarder's
//! configuration and the command line read it the same way.

use std::time::Duration;

pub fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

pub const DURATION: &str = "a duration such as 250ms, 5s, 5m, 2h or 1d";
