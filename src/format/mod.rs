//! What the receiver writes, each format defined once and read back by the same module: the
//! shared dict's record of an event (`record`), the journal's frame of a record (`frame`), the
//! envelope of what was verified (`envelope`) and the Redis store's stream entry (`entry`). Lua
//! reads them through the C ABI, up42wh through this crate, the inbox page through the admin API.

pub mod entry;
pub mod envelope;
pub mod frame;
pub mod record;
