//! `up42wh forward`: reads the receiver's verified events as a named consumer and delivers each to
//! the routes it matches, at least once: retries on a schedule, a circuit breaker per route, a
//! dead-letter file after the last attempt, and a state log that survives `kill -9`. Its position
//! at the receiver moves only past events every matched route has delivered or dead-lettered.

mod circuit;
pub mod config;
mod dead_letter;
pub mod event;
mod forwarder;
mod log;
mod metrics;
mod reader;
mod redis_source;
mod replay;
mod run;
pub mod sinks;
pub mod source;
pub mod state;

use std::path::{Path, PathBuf};

pub use crate::error::Error;

pub enum Action {
    Replay {
        dead_letter: Option<PathBuf>,
        route: Option<String>,
    },
    Status,
    Check,
}

use crate::runtime;

pub fn main(
    path: &Path,
    state_dir: Option<PathBuf>,
    receiver: Option<String>,
    action: Option<Action>,
) -> Result<(), Error> {
    // check and status read no secret: a route's may be set only where the forwarder runs.
    let mut conf = match action {
        Some(Action::Check | Action::Status) => config::load_without_secrets(path)?,
        _ => config::load(path)?,
    };
    if let Some(dir) = state_dir {
        // The dead letters move with the state unless the configuration put them elsewhere.
        if conf.dead_letter == conf.state_dir.join(config::DEAD_LETTER) {
            conf.dead_letter = dir.join(config::DEAD_LETTER);
        }
        conf.state_dir = dir;
    }
    if let Some(url) = receiver {
        conf.receiver.url = config::receiver_url(&url)?;
    }
    match action {
        None => runtime()?.block_on(run::forward(conf)),
        Some(Action::Check) => {
            let from = match &conf.redis {
                Some(r) => format!(
                    "the Redis stream {} as group {} (consumer {})",
                    r.stream, conf.receiver.consumer, r.name
                ),
                None => format!(
                    "the receiver at {} as consumer {}",
                    conf.receiver.url, conf.receiver.consumer
                ),
            };
            println!(
                "{}: {} routes, reading {from}",
                path.display(),
                conf.routes.len()
            );
            Ok(())
        }
        Some(Action::Status) => runtime()?.block_on(metrics::print_status(&conf)),
        Some(Action::Replay { dead_letter, route }) => {
            let file = dead_letter.unwrap_or_else(|| conf.dead_letter.clone());
            runtime()?.block_on(replay::replay(conf, &file, route.as_deref()))
        }
    }
}
