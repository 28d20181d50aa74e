//! The receiver on real nginx (and redis-server), in one test binary: deliveries end to end, durability
//! under kill -9, the listeners put on the internet, the admin listener against web pages, the
//! Redis store.

#[path = "../common/mod.rs"]
mod common;

mod admin_web;
mod consumers;
mod durability;
mod e2e;
mod envelope;
mod exposure;
mod horizon;
mod learnt;
mod redis;
