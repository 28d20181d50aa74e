//! RFC 8941 structured fields: the parser (`parse`, re-exported here) and the writer (`write`).

mod parse;
pub mod write;

pub use parse::*;
