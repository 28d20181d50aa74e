//! `up42wh forward replay`: each dead letter (of one route, or all) is sent once more to its route.
//! A delivered letter is settled; one that fails again is written again with its new attempt and
//! error (the old one settled in the same write). Safe to stop at any point and to run beside a
//! running forwarder (dead_letter.rs says how); a second replay at once refuses.

use std::collections::HashMap;
use std::path::Path;

use super::config::{Config, Route};
use super::dead_letter::Store;
use super::log::log;
use super::sinks::{http, Outcome};
use super::Error;
use crate::clock::now_ms;

pub async fn replay(conf: Config, file: &Path, route: Option<&str>) -> Result<(), Error> {
    http::client()?;
    let store = Store::new(file);
    let io = |e: std::io::Error| Error::run(format!("{}: {e}", file.display()));
    let Some(_held) = store.replay_lock().map_err(io)? else {
        return Err(Error::run(format!(
            "another replay of {} is running: try again when it has finished",
            file.display()
        )));
    };
    let back = store.take_back_aside().map_err(io)?;
    if back > 0 {
        log("warn", format!("{back} dead letters an interrupted replay of an older version left aside are back in {}", file.display()));
    }
    let routes: HashMap<&str, &Route> = conf.routes.iter().map(|r| (r.name.as_str(), r)).collect();
    let (mut delivered, mut kept, mut unreadable) = (0, 0, 0);
    for l in store.open_letters().map_err(io)? {
        let Some(mut d) = l.letter else {
            unreadable += 1;
            continue;
        };
        if route.is_some_and(|want| want != d.route) {
            continue;
        }
        let Some(r) = routes.get(d.route.as_str()) else {
            log(
                "warn",
                format!(
                    "event {}: no route {} in {}: kept",
                    d.envelope.key,
                    d.route,
                    conf.path.display()
                ),
            );
            kept += 1;
            continue;
        };
        let outcome = r.sink.deliver(&r.call(), &d.envelope).await;
        let (status, error, reason) = match outcome {
            Outcome::Delivered => {
                store.settle(&l.id, "delivered", None).map_err(io)?;
                delivered += 1;
                log(
                    "info",
                    format!("replayed event {} to route {}", d.envelope.key, d.route),
                );
                continue;
            }
            Outcome::Retry { status, error, .. } => (status, error, "exhausted"),
            Outcome::Fail { status, error } => (status, error, "refused"),
            Outcome::Redirect { status, location } => (
                Some(status),
                format!("redirect to {location} (answered {status}): not followed"),
                "redirect",
            ),
        };
        kept += 1;
        log(
            "warn",
            format!(
                "event {} to route {}: {error}; kept in {}",
                d.envelope.key,
                d.route,
                file.display()
            ),
        );
        d.attempts += 1;
        d.last_status = status;
        d.last_error = error;
        d.reason = Some(reason.into());
        d.time = up42webhooks::format_rfc3339((now_ms() / 1000) as i64);
        store.settle(&l.id, "dead again", Some(&d)).map_err(io)?;
    }
    store.compact().map_err(io)?;
    println!(
        "{delivered} delivered, {kept} failed again and kept in {}{}",
        file.display(),
        if unreadable > 0 {
            format!(", {unreadable} lines that are not dead letters left as they are")
        } else {
            String::new()
        }
    );
    if kept > 0 {
        return Err(Error::run(format!(
            "{kept} dead letters could not be delivered"
        )));
    }
    Ok(())
}
