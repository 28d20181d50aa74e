//! A route's circuit breaker and the retries' jitter. While a circuit is open nothing is sent but
//! one probe per `circuit_probe`: the attempts due meanwhile wait for it (parked) instead of
//! being spent, so `attempts` counts requests sent and an outage shorter than the route's schedule
//! dead-letters nothing.

use std::time::Duration;

use super::event::Key;

#[derive(Default)]
pub struct Circuit {
    pub failures: u32,
    /// Open until this time (unix ms); 0 when closed.
    pub open_until: u64,
    /// The event whose attempt is the probe in flight.
    pub probing: Option<Key>,
    /// Attempts due while open, with the attempts each made: sent once the probe succeeds.
    pub parked: Vec<(Key, u32)>,
}

impl Circuit {
    pub fn is_open(&self) -> bool {
        self.open_until > 0
    }

    /// Whether an attempt due `now` must wait for the probe.
    pub fn holds(&self, now: u64) -> bool {
        self.is_open() && (now < self.open_until || self.probing.is_some())
    }

    /// When the parked attempts are worth a look again: the probe's time, unless one is in
    /// flight.
    pub fn wakes_at(&self) -> Option<u64> {
        (!self.parked.is_empty() && self.probing.is_none() && self.is_open())
            .then_some(self.open_until)
    }

    /// The state for the text of the status: closed, open or half-open (a probe in flight).
    pub fn describe(&self) -> &'static str {
        if !self.is_open() {
            "closed"
        } else if self.probing.is_some() {
            "half-open"
        } else {
            "open"
        }
    }
}

/// A small generator for the retries' jitter (no need for a crate: nothing secret depends on it).
pub struct Jitter(pub u64);

impl Jitter {
    /// `d` stretched by 0 to 20 %.
    pub fn spread(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        d + d.mul_f64((self.0 % 1000) as f64 / 5000.0)
    }
}
