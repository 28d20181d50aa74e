//! Where the loop reads events and tells what is done: the receiver's admin listener (a
//! position), or the Redis store's consumer group (each entry acknowledged).

use super::event::Key;
use super::redis_source::RedisReader;
use super::source::{Page, Source, WAIT};
use super::Error;

pub enum Reader {
    Admin(Source),
    Redis(Box<RedisReader>),
}

/// What an acknowledgement said: everything up to a key (the admin listener), or these entries
/// (Redis).
pub enum Acked {
    Through(Key),
    Each(Vec<Key>),
}

impl Reader {
    /// The next page; the admin listener's first one without waiting for an event, so that the
    /// start is told (or the consumer refused) at once.
    pub async fn page(&self, since: Option<Key>, first: bool) -> Result<Page, Error> {
        match self {
            Reader::Admin(s) => s.page(since.as_ref(), if first { 0 } else { WAIT }).await,
            Reader::Redis(r) => r.page(WAIT).await,
        }
    }
}
