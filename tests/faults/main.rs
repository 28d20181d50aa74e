//! Faults and abuse on real nginx, in a test binary of their own: thousands of connections and a
//! full disk do not run beside the other receiver tests' timings.

#[path = "../common/mod.rs"]
mod common;

mod faults;
