//! The forwarder's configuration file (TOML): where events come from, where its state lives, and the
//! routes. Every mistake is one error naming the file, the line and the key; secrets are read here
//! from the environment or files (never kept in the file's text unless `allow_plain_secrets`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Error;

/// The file as written.
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
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RouteFile>>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: Spanned<String>,
    sink: Spanned<String>,
    events: Option<Spanned<Vec<String>>>,
    statuses: Option<Spanned<Vec<String>>>,
    notifiable: Option<bool>,
    live: Option<bool>,
    senders: Option<Spanned<Vec<String>>>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    timeout: Option<Spanned<String>>,
    retry: Option<Spanned<Vec<String>>>,
    retry_statuses: Option<Spanned<Vec<u16>>>,
    concurrency: Option<Spanned<u32>>,
    ordered: Option<bool>,
    circuit_failures: Option<Spanned<u32>>,
    circuit_probe: Option<Spanned<String>>,
}

/// Where the events come from: the receiver's admin listener, as a named consumer.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The admin listener's base URL, without a trailing slash.
    pub url: String,
    pub consumer: String,
    /// The admin token (a bearer token), when the admin listener asks for one.
    pub token: Option<String>,
    /// Events asked for at once.
    pub page: u32,
    /// Events read ahead of the position (done or not) before the reading waits.
    pub in_flight: usize,
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

/// Where a route delivers.
#[derive(Debug, Clone)]
pub enum Sink {
    /// POST the event, signed with Standard Webhooks headers under a `whsec_` secret.
    Http { url: String, secret: String },
    /// A Slack incoming-webhook message (the URL is the secret).
    Slack { url: String },
    /// A program, the event on its standard input.
    Exec { argv: Vec<String> },
}

impl Sink {
    pub fn kind(&self) -> &'static str {
        match self {
            Sink::Http { .. } => "http",
            Sink::Slack { .. } => "slack",
            Sink::Exec { .. } => "exec",
        }
    }
}

/// What a route takes: every set filter must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub events: Option<Vec<String>>,
    pub statuses: Option<Vec<String>>,
    pub notifiable: Option<bool>,
    pub live: Option<bool>,
    pub senders: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub filter: Filter,
    pub sink: Sink,
    pub timeout: Duration,
    /// When each attempt after the first is due, from the one before (the first is at once).
    pub retry: Vec<Duration>,
    /// Statuses besides 408, 429 and 5xx that are retried rather than dead-lettered.
    pub retry_statuses: Vec<u16>,
    pub concurrency: usize,
    pub ordered: bool,
    pub circuit_failures: u32,
    pub circuit_probe: Duration,
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

/// Svix's documented schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
/// The dead-letter file's name in the state directory, unless dead_letter names another.
pub const DEAD_LETTER: &str = "dead-letter.jsonl";

pub const DEFAULT_RETRY: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// One error for the file: `FILE line N: what`.
struct At<'a> {
    path: &'a Path,
    text: &'a str,
}

impl At<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        msg: impl std::fmt::Display,
    ) -> Result<T, Error> {
        Err(Error::config(format!(
            "{} line {}: {msg}",
            self.path.display(),
            self.line(span)
        )))
    }
}

/// A duration as written: `250ms`, `5s`, `5m`, `2h`, `1d`.
pub fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

const DURATION: &str = "a duration such as 250ms, 5s, 5m, 2h or 1d";

fn span_duration(at: &At, s: &Spanned<String>, key: &str) -> Result<Duration, Error> {
    duration(s.get_ref()).map_or_else(
        || {
            at.err(
                s.span(),
                format!("{key}: {DURATION}, not {:?}", s.get_ref()),
            )
        },
        Ok,
    )
}

/// A secret from `NAME` (the value), `NAME_env` (an environment variable) or `NAME_file` (its
/// first line): exactly one of them; the plain value only when the file allows it.
fn secret(
    at: &At,
    key: &str,
    plain: Option<&Spanned<String>>,
    env: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
    allow_plain: bool,
    whole: std::ops::Range<usize>,
) -> Result<Option<String>, Error> {
    let given = [plain.is_some(), env.is_some(), file.is_some()]
        .iter()
        .filter(|&&b| b)
        .count();
    if given > 1 {
        return at.err(
            whole,
            format!("{key}: give one of {key}, {key}_env and {key}_file"),
        );
    }
    if let Some(p) = plain {
        if !allow_plain {
            return at.err(
                p.span(),
                format!(
                    "{key}: a secret in the file's text; use {key}_env (an environment variable) or {key}_file, \
                     or set allow_plain_secrets = true"
                ),
            );
        }
        return Ok(Some(p.get_ref().clone()));
    }
    if let Some(e) = env {
        return match std::env::var(e.get_ref()) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => at.err(
                e.span(),
                format!(
                    "{key}_env: the environment variable {} is not set",
                    e.get_ref()
                ),
            ),
        };
    }
    if let Some(f) = file {
        return match std::fs::read_to_string(f.get_ref()) {
            Ok(text) => match text.lines().map(str::trim).find(|l| !l.is_empty()) {
                Some(first) => Ok(Some(first.to_string())),
                None => at.err(f.span(), format!("{key}_file: {} is empty", f.get_ref())),
            },
            Err(e) => at.err(
                f.span(),
                format!("{key}_file: cannot read {}: {e}", f.get_ref()),
            ),
        };
    }
    Ok(None)
}

fn http_url(at: &At, s: &Spanned<String>, key: &str) -> Result<String, Error> {
    let u = s.get_ref().trim();
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(u.trim_end_matches('/').to_string())
        }
        _ => at.err(
            s.span(),
            format!("{key}: not an http:// or https:// URL: {u:?}"),
        ),
    }
}

/// `--receiver URL`, checked as receiver.url is.
pub fn receiver_url(url: &str) -> Result<String, Error> {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim().trim_end_matches('/').to_string())
        }
        _ => Err(Error::config(format!(
            "--receiver: not an http:// or https:// URL: {url:?}"
        ))),
    }
}

/// A program for `exec`: a path (relative to the configuration's directory), or a name found on
/// PATH; executable.
fn program(name: &str, base: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = base.join(name);
        return runnable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
}

/// UP42 writes its statuses in capitals, words joined by `_`.
fn up42_status(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_uppercase() || *c == b'_')
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Reads and checks the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format!(
            "cannot read the configuration {}: {e}",
            path.display()
        ))
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
    let at = At { path, text };
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let msg = e.message().replace('\n', " ");
            return match e.span() {
                Some(span) => at.err(span, msg),
                None => Err(Error::config(format!("{}: {msg}", path.display()))),
            };
        }
    };
    let allow_plain = file.allow_plain_secrets;
    let positive =
        |v: &Option<Spanned<u32>>, key: &str, default: u32, max: u32| -> Result<u32, Error> {
            match v {
                None => Ok(default),
                Some(s) if (1..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
                Some(s) => at.err(s.span(), format!("{key}: 1 to {max}")),
            }
        };
    let (receiver, redis) = match (&file.receiver, &file.redis) {
        (Some(sr), None) => {
            let r = sr.get_ref();
            let url = http_url(&at, &r.url, "receiver.url")?;
            if !name_ok(r.consumer.get_ref()) {
                return at.err(
                    r.consumer.span(),
                    "receiver.consumer: 1 to 64 letters, digits, '_', '.' or '-'",
                );
            }
            // The admin token: UP42_WEBHOOK_ADMIN_TOKEN unless the file says where else it is.
            let token = match (&r.token, &r.token_env, &r.token_file) {
                (None, None, None) => std::env::var("UP42_WEBHOOK_ADMIN_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                _ => secret(
                    &at,
                    "receiver.token",
                    r.token.as_ref(),
                    r.token_env.as_ref(),
                    r.token_file.as_ref(),
                    allow_plain,
                    sr.span(),
                )?,
            };
            let receiver = Receiver {
                url,
                consumer: r.consumer.get_ref().clone(),
                token,
                page: positive(&r.page, "receiver.page", 500, 10_000)?,
                in_flight: positive(&r.in_flight, "receiver.in_flight", 100_000, 10_000_000)?
                    as usize,
            };
            (receiver, None)
        }
        (None, Some(sr)) => {
            let r = sr.get_ref();
            if !name_ok(r.group.get_ref()) {
                return at.err(
                    r.group.span(),
                    "redis.group: 1 to 64 letters, digits, '_', '.' or '-'",
                );
            }
            // A URL without a password is no secret; one with a password comes from the
            // environment or a file.
            let plain_ok =
                allow_plain || r.url.as_ref().is_some_and(|u| !u.get_ref().contains('@'));
            let url = secret(
                &at,
                "redis.url",
                r.url.as_ref(),
                r.url_env.as_ref(),
                r.url_file.as_ref(),
                plain_ok,
                sr.span(),
            )?
            .ok_or_else(|| {
                Error::config(format!(
                    "{} [redis]: url, url_env or url_file",
                    path.display()
                ))
            })?;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return at.err(sr.span(), "redis.url: redis://[user:password@]host:port/db");
            }
            let name = match &r.consumer {
                Some(c) if name_ok(c.get_ref()) => c.get_ref().clone(),
                Some(c) => {
                    return at.err(
                        c.span(),
                        "redis.consumer: 1 to 64 letters, digits, '_', '.' or '-'",
                    )
                }
                None => format!("up42wh-{}", std::process::id()),
            };
            let claim_idle = match &r.claim_idle {
                Some(t) => span_duration(&at, t, "redis.claim_idle")?,
                None => Duration::from_secs(60),
            };
            let receiver = Receiver {
                url: String::new(),
                consumer: r.group.get_ref().clone(),
                token: None,
                page: positive(&r.page, "redis.page", 500, 10_000)?,
                in_flight: positive(&r.in_flight, "redis.in_flight", 100_000, 10_000_000)? as usize,
            };
            let stream = r
                .stream
                .as_ref()
                .map_or("up42webhooks".to_string(), |s| s.get_ref().clone());
            (
                receiver,
                Some(RedisSource {
                    url,
                    stream,
                    name,
                    claim_idle,
                }),
            )
        }
        (Some(a), Some(_)) => {
            return at.err(a.span(), "[receiver] and [redis]: read from one of them");
        }
        (None, None) => {
            return Err(Error::config(format!(
                "{}: no [receiver] (the admin listener) and no [redis] (the Redis store's group): where are the events?",
                path.display()
            )));
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let state_dir = match &file.state_dir {
        Some(s) => base.join(s.get_ref()),
        None => base.join("forward-state"),
    };
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
                    s.span(),
                    format!(
                        "metrics: a loopback address and port, such as 127.0.0.1:9890, not {:?}",
                        s.get_ref()
                    ),
                )
            }
        },
    };
    if file.routes.is_empty() {
        return Err(Error::config(format!(
            "{}: no [[route]]: nothing would be delivered",
            path.display()
        )));
    }
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    for sr in &file.routes {
        let rf = sr.get_ref();
        let name = rf.name.get_ref().clone();
        if !name_ok(&name) {
            return at.err(
                rf.name.span(),
                "route.name: 1 to 64 letters, digits, '_', '.' or '-'",
            );
        }
        if !names.insert(name.clone()) {
            return at.err(rf.name.span(), format!("route.name: {name} is used twice"));
        }
        let key = |k: &str| format!("route {name}: {k}");
        let sink = match rf.sink.get_ref().as_str() {
            "http" => {
                let Some(u) = &rf.url else {
                    return at.err(sr.span(), key("an http sink needs url"));
                };
                let url = http_url(&at, u, &key("url"))?;
                let Some(secret) = secret(
                    &at,
                    &key("secret"),
                    rf.secret.as_ref(),
                    rf.secret_env.as_ref(),
                    rf.secret_file.as_ref(),
                    allow_plain,
                    sr.span(),
                )?
                else {
                    return at.err(
                        sr.span(),
                        key("an http sink signs with a whsec_ secret: secret_env or secret_file"),
                    );
                };
                if up42webhooks::sign_standard_webhooks(secret.as_bytes(), b"check", 0, b"")
                    .is_err()
                {
                    let span = rf
                        .secret_env
                        .as_ref()
                        .or(rf.secret_file.as_ref())
                        .or(rf.secret.as_ref())
                        .map_or(sr.span(), |s| s.span());
                    return at.err(
                        span,
                        key("secret: not a Standard Webhooks secret (whsec_ and base64)"),
                    );
                }
                Sink::Http { url, secret }
            }
            "slack" => {
                let url = secret(
                    &at,
                    &key("url"),
                    rf.url.as_ref(),
                    rf.url_env.as_ref(),
                    rf.url_file.as_ref(),
                    allow_plain,
                    sr.span(),
                )?;
                let Some(url) = url else {
                    return at.err(
                        sr.span(),
                        key("a slack sink needs its incoming-webhook URL: url_env or url_file"),
                    );
                };
                if !matches!(reqwest::Url::parse(&url), Ok(u) if matches!(u.scheme(), "http" | "https"))
                {
                    return at.err(sr.span(), key("url: the Slack URL is not an http(s) URL"));
                }
                Sink::Slack { url }
            }
            "exec" => {
                let Some(cmd) = &rf.command else {
                    return at.err(
                        sr.span(),
                        key("an exec sink needs command = [\"program\", \"arg\", ...]"),
                    );
                };
                let argv = cmd.get_ref().clone();
                let Some(first) = argv.first() else {
                    return at.err(
                        cmd.span(),
                        key("command: the program and its arguments, not an empty list"),
                    );
                };
                let Some(found) = program(first, base) else {
                    return at.err(
                        cmd.span(),
                        key(&format!(
                            "command: {first}: no such program (or not executable)"
                        )),
                    );
                };
                let mut argv = argv.clone();
                argv[0] = found.to_string_lossy().into_owned();
                Sink::Exec { argv }
            }
            other => {
                return at.err(
                    rf.sink.span(),
                    key(&format!("sink: http, slack or exec, not {other:?}")),
                )
            }
        };
        for (k, present) in [
            (
                "url",
                rf.url.is_some() || rf.url_env.is_some() || rf.url_file.is_some(),
            ),
            (
                "secret",
                rf.secret.is_some() || rf.secret_env.is_some() || rf.secret_file.is_some(),
            ),
            ("command", rf.command.is_some()),
        ] {
            let used = match &sink {
                Sink::Http { .. } => k != "command",
                Sink::Slack { .. } => k == "url",
                Sink::Exec { .. } => k == "command",
            };
            if present && !used {
                return at.err(
                    sr.span(),
                    key(&format!("{k} is not for a {} sink", sink.kind())),
                );
            }
        }
        let senders = rf.senders.as_ref().map(|s| s.get_ref().clone());
        if let Some(st) = &rf.statuses {
            let up42 = senders
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == "up42"));
            for s in st.get_ref() {
                if up42 && !up42_status(s) {
                    return at.err(st.span(), key(&format!(
                        "statuses: {s:?} is not a status as UP42 writes it: in capitals, such as FAILED or FAILED_PERMANENTLY ({}?)",
                        s.to_uppercase().replace(' ', "_")
                    )));
                }
            }
        }
        if let Some(ev) = &rf.events {
            for e in ev.get_ref() {
                if e == "job" || e == "order" {
                    return at.err(ev.span(), key(&format!("events: {e:?} is not an event type; UP42's are job.status and order.status")));
                }
            }
        }
        let timeout = match &rf.timeout {
            Some(t) => span_duration(&at, t, &key("timeout"))?,
            None => Duration::from_secs(match &sink {
                Sink::Exec { .. } => 300,
                _ => 15,
            }),
        };
        let retry = match &rf.retry {
            Some(list) => list
                .get_ref()
                .iter()
                .map(|t| {
                    duration(t).map_or_else(
                        || at.err(list.span(), key(&format!("retry: {DURATION}, not {t:?}"))),
                        Ok,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_RETRY
                .iter()
                .map(|&s| Duration::from_secs(s))
                .collect(),
        };
        let retry_statuses = match &rf.retry_statuses {
            Some(list) => {
                for &s in list.get_ref() {
                    if !(400..500).contains(&s) {
                        return at.err(list.span(), key(&format!("retry_statuses: 4xx statuses to retry besides 408 and 429 (5xx are always retried), not {s}")));
                    }
                }
                list.get_ref().clone()
            }
            None => Vec::new(),
        };
        let concurrency = match &rf.concurrency {
            Some(c) if (1..=1000).contains(c.get_ref()) => *c.get_ref() as usize,
            Some(c) => return at.err(c.span(), key("concurrency: 1 to 1000")),
            None => 16,
        };
        let circuit_failures = match &rf.circuit_failures {
            Some(c) if *c.get_ref() >= 1 => *c.get_ref(),
            Some(c) => return at.err(c.span(), key("circuit_failures: 1 or more")),
            None => 5,
        };
        let circuit_probe = match &rf.circuit_probe {
            Some(t) => span_duration(&at, t, &key("circuit_probe"))?,
            None => Duration::from_secs(60),
        };
        routes.push(Route {
            name,
            filter: Filter {
                events: rf.events.as_ref().map(|e| e.get_ref().clone()),
                statuses: rf.statuses.as_ref().map(|e| e.get_ref().clone()),
                notifiable: rf.notifiable,
                live: rf.live,
                senders,
            },
            sink,
            timeout,
            retry,
            retry_statuses,
            concurrency,
            ordered: rf.ordered.unwrap_or(false),
            circuit_failures,
            circuit_probe,
        });
    }
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
