//! The freshness and size limits every scheme checks, in one type validated in one place, and the
//! time window they define.

use crate::code::Code;

/// Default tolerance for the age of a signature or timestamp, in seconds.
pub(crate) const DEFAULT_MAX_AGE: i64 = 300;
/// Default allowance for clock skew into the future, in seconds.
pub(crate) const DEFAULT_MAX_FUTURE: i64 = 30;
/// Default largest body, in bytes.
pub(crate) const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Freshness and size limits, in seconds and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Oldest accepted signed time, in seconds before `now`.
    pub max_age: i64,
    /// Furthest accepted signed time after `now`; also the grace allowed past `expires`.
    pub max_future: i64,
    /// Largest accepted body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_age: DEFAULT_MAX_AGE,
            max_future: DEFAULT_MAX_FUTURE,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Limits {
    /// `InvalidArgument` for a negative window.
    pub fn validate(&self) -> Result<(), Code> {
        if self.max_age < 0 || self.max_future < 0 {
            return Err(Code::InvalidArgument);
        }
        Ok(())
    }

    /// Valid limits, and a body of `len` bytes within them (`BodyTooLarge` otherwise).
    pub fn check(&self, len: usize) -> Result<(), Code> {
        self.validate()?;
        if len > self.max_body {
            return Err(Code::BodyTooLarge);
        }
        Ok(())
    }

    /// An RFC 3339 timestamp within the window around `now`, in unix seconds
    /// (`MalformedTimestamp`, `Stale`, `Future`).
    pub fn timestamp(&self, text: &[u8], now: i64) -> Result<i64, Code> {
        self.validate()?;
        let t = crate::time::parse_rfc3339(text)?;
        self.fresh(t, now)?;
        Ok(t)
    }

    /// Is `t` (unix seconds) within the window around `now`?
    pub fn fresh(&self, t: i64, now: i64) -> Result<(), Code> {
        self.window(Some(t), None, now)
    }

    /// The time window every scheme checks: a signed time at most `max_age` seconds before `now`
    /// and at most `max_future` after it, and an `expires` not passed by more than `max_future`
    /// (the same allowance for clock skew).
    pub fn window(&self, created: Option<i64>, expires: Option<i64>, now: i64) -> Result<(), Code> {
        if let Some(t) = created {
            if now.saturating_sub(t) > self.max_age {
                return Err(Code::Stale);
            }
            if t.saturating_sub(now) > self.max_future {
                return Err(Code::Future);
            }
        }
        match expires {
            Some(e) if now > e.saturating_add(self.max_future) => Err(Code::Expired),
            _ => Ok(()),
        }
    }
}
