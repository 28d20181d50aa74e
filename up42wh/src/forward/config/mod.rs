//! The forwarder's configuration file (TOML): where events come from, where its state lives, and the
//! routes. Every mistake is one error naming the file, the line and the key (config/at.rs); secrets
//! are read here from the environment or files (never kept in the file's text unless
//! `allow_plain_secrets`).

mod at;
mod route;
mod values;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use crate::error::Error;
use at::At;
pub use route::Route;
pub use values::receiver_url;
use values::{http_url, name_ok, positive, span_duration, Secret, NAME};

/// The file as written, less its routes (config/route.rs reads those).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    receiver: Option<Spanned<ReceiverFile>>,
    redis: Option<Spanned<RedisFile>>,
    state_dir: Option<Spanned<String>>,
    dead_letter: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    #[serde(default)]
    allow_plain_secrets: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverFile {
    url: Spanned<String>,
    consumer: Spanned<String>,
    token: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    page: Option<Spanned<u32>>,
    in_flight: Option<Spanned<u32>>,
    retry_max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisFile {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    stream: Option<Spanned<String>>,
    group: Spanned<String>,
    consumer: Option<Spanned<String>>,
    page: Option<Spanned<u32>>,
    in_flight: Option<Spanned<u32>>,
    claim_idle: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
}

/// Where events come from: the receiver's admin listener, as a named consumer.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The admin listener's base URL, without a trailing slash.
    pub url: String,
    pub consumer: String,
    /// Where the consumer's name is written (`FILE line N`), for the receiver's refusal of it.
    pub consumer_at: String,
    /// The admin token (a bearer token), when the admin listener asks for one.
    pub token: Option<String>,
    /// Events asked for at once.
    pub page: u32,
    /// Events read ahead of the position (done or not) before the reading waits.
    pub in_flight: usize,
    /// The longest pause between tries to reach the receiver (or Redis) when it does not answer;
    /// the pauses double from 0.5 s up to it.
    pub retry_max: Duration,
}

/// With the Redis store: its stream's consumer group, read directly.
#[derive(Debug, Clone)]
pub struct RedisSource {
    /// `redis://[user:password@]host:port/db`: a secret when it holds a password (never logged).
    pub url: String,
    pub stream: String,
    /// This process's name in the group (several forwarders share a group).
    pub name: String,
    /// Entries another consumer of the group has held this long (it died) are taken over.
    pub claim_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// How events are read: the consumer's name (the group, with Redis), the page, the window; and
    /// with the admin listener its URL and token.
    pub receiver: Receiver,
    /// Set when the events are read from the Redis store's consumer group instead.
    pub redis: Option<RedisSource>,
    pub state_dir: PathBuf,
    pub dead_letter: PathBuf,
    /// The status and metrics listener (127.0.0.1 or another loopback address).
    pub metrics: Option<std::net::SocketAddr>,
    /// How long a stop (SIGTERM) waits for the attempts in flight before it hands them back.
    pub stop_timeout: Duration,
    pub routes: Vec<Route>,
}

/// The dead-letter file's name in the state directory, unless dead_letter names another.
pub const DEAD_LETTER: &str = "dead-letter.jsonl";

/// Reads and checks the configuration at `path`, and the secrets it names.
pub fn load(path: &Path) -> Result<Config, Error> {
    load_with(path, true)
}

/// The same for `check` and `status`, which need no secret: one that is not set here (it may be
/// only where the forwarder runs) is an empty value; one that is set is checked.
pub fn load_without_secrets(path: &Path) -> Result<Config, Error> {
    load_with(path, false)
}

fn load_with(path: &Path, secrets: bool) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format!(
            "cannot read the configuration {}: {e}",
            path.display()
        ))
    })?;
    parse_with(path, &text, secrets)
}

#[cfg(test)]
pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
    parse_with(path, text, true)
}

fn parse_with(path: &Path, text: &str, secrets: bool) -> Result<Config, Error> {
    let at = At {
        path,
        text,
        secrets,
    };
    let doc = DeTable::parse(text).map_err(|e| at.toml(&e, None, ""))?;
    let span = doc.span();
    let mut doc = doc.into_inner();
    let routes = doc.remove("route");
    let spans = doc.clone();
    let file = File::deserialize(toml::de::Deserializer::from(Spanned::new(span, doc)))
        .map_err(|e| at.toml(&e, Some(&spans), ""))?;
    let allow_plain = file.allow_plain_secrets;
    let (receiver, redis) = match (&file.receiver, &file.redis) {
        (Some(r), None) => (receiver(&at, r, allow_plain)?, None),
        (None, Some(r)) => {
            let (receiver, redis) = redis(&at, r, allow_plain)?;
            (receiver, Some(redis))
        }
        (Some(a), Some(_)) => {
            return at.err(
                Some(a.span()),
                "",
                "[receiver] and [redis]: read from one of them",
            );
        }
        (None, None) => {
            return at.err(None, "", "no [receiver] (the admin listener) and no [redis] (the Redis store's group): where are the events?");
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let state_dir = base.join(
        file.state_dir
            .as_ref()
            .map_or("forward-state", |s| s.get_ref()),
    );
    let dead_letter = match &file.dead_letter {
        Some(s) => base.join(s.get_ref()),
        None => state_dir.join(DEAD_LETTER),
    };
    let metrics = match &file.metrics {
        None => None,
        Some(s) => match s.get_ref().parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            _ => {
                return at.err(
                    Some(s.span()),
                    "metrics",
                    format!(
                        "a loopback address and port, such as 127.0.0.1:9890, not {:?}",
                        s.get_ref()
                    ),
                )
            }
        },
    };
    let routes = route::routes(&at, routes, base, allow_plain)?;
    let stop_timeout = match &file.stop_timeout {
        Some(t) => span_duration(&at, t, "stop_timeout")?,
        None => Duration::from_secs(10),
    };
    Ok(Config {
        path: path.to_path_buf(),
        receiver,
        redis,
        state_dir,
        dead_letter,
        metrics,
        stop_timeout,
        routes,
    })
}

fn retry_max(at: &At, v: &Option<Spanned<String>>, key: &str) -> Result<Duration, Error> {
    match v {
        Some(t) => {
            let d = span_duration(at, t, key)?;
            if d < Duration::from_millis(100) {
                return at.err(Some(t.span()), key, "at least 100ms");
            }
            Ok(d)
        }
        None => Ok(Duration::from_secs(30)),
    }
}

fn receiver(at: &At, sr: &Spanned<ReceiverFile>, allow_plain: bool) -> Result<Receiver, Error> {
    let r = sr.get_ref();
    let url = http_url(at, &r.url, "receiver.url")?;
    if !name_ok(r.consumer.get_ref()) {
        return at.err(Some(r.consumer.span()), "receiver.consumer", NAME);
    }
    // The admin token: UP42_WEBHOOK_ADMIN_TOKEN unless the file says where else it is.
    let token = match (&r.token, &r.token_env, &r.token_file) {
        (None, None, None) => std::env::var("UP42_WEBHOOK_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        _ => Secret {
            key: "receiver.token",
            plain: r.token.as_ref(),
            env: r.token_env.as_ref(),
            file: r.token_file.as_ref(),
            allow_plain,
            whole: sr.span(),
        }
        .read(at)?,
    };
    Ok(Receiver {
        url,
        consumer: r.consumer.get_ref().clone(),
        consumer_at: format!(
            "{} line {}",
            at.path.display(),
            at.line(r.consumer.span().start)
        ),
        token,
        page: positive(at, &r.page, "receiver.page", 500, 10_000)?,
        in_flight: positive(at, &r.in_flight, "receiver.in_flight", 100_000, 10_000_000)? as usize,
        retry_max: retry_max(at, &r.retry_max, "receiver.retry_max")?,
    })
}

fn redis(
    at: &At,
    sr: &Spanned<RedisFile>,
    allow_plain: bool,
) -> Result<(Receiver, RedisSource), Error> {
    let r = sr.get_ref();
    if !name_ok(r.group.get_ref()) {
        return at.err(Some(r.group.span()), "redis.group", NAME);
    }
    // A URL without a password is no secret; one with a password comes from the environment or
    // a file.
    let plain_ok = allow_plain || r.url.as_ref().is_some_and(|u| !u.get_ref().contains('@'));
    let url = Secret {
        key: "redis.url",
        plain: r.url.as_ref(),
        env: r.url_env.as_ref(),
        file: r.url_file.as_ref(),
        allow_plain: plain_ok,
        whole: sr.span(),
    }
    .read(at)?;
    let whole: Option<Range<usize>> = Some(sr.span());
    let Some(url) = url else {
        return at.err(whole, "redis", "url, url_env or url_file");
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return at.err(whole, "redis.url", "redis://[user:password@]host:port/db");
    }
    let name = match &r.consumer {
        Some(c) if name_ok(c.get_ref()) => c.get_ref().clone(),
        Some(c) => return at.err(Some(c.span()), "redis.consumer", NAME),
        None => format!("up42wh-{}", std::process::id()),
    };
    let claim_idle = match &r.claim_idle {
        Some(t) => span_duration(at, t, "redis.claim_idle")?,
        None => Duration::from_secs(60),
    };
    let receiver = Receiver {
        url: String::new(),
        consumer: r.group.get_ref().clone(),
        consumer_at: format!(
            "{} line {}",
            at.path.display(),
            at.line(r.group.span().start)
        ),
        token: None,
        page: positive(at, &r.page, "redis.page", 500, 10_000)?,
        in_flight: positive(at, &r.in_flight, "redis.in_flight", 100_000, 10_000_000)? as usize,
        retry_max: retry_max(at, &r.retry_max, "redis.retry_max")?,
    };
    let stream = r
        .stream
        .as_ref()
        .map_or("up42webhooks".to_string(), |s| s.get_ref().clone());
    let source = RedisSource {
        url,
        stream,
        name,
        claim_idle,
    };
    Ok((receiver, source))
}
