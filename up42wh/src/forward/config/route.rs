//! `[[route]]` tables: a route's own keys (its name, filters, retries, timeout, circuit) and its
//! sink's, told apart by name; the sink's part is read as `SinkConf` (serde's tagged enum, the
//! `sink` key naming the variant), so each sink's keys live in its own file.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::at::{join, At};
use super::values::{self, span_duration, up42_status, Secret, DURATION, NAME};
use crate::error::Error;
use crate::forward::event::Filter;
use crate::forward::sinks::{Call, Context, Sink, SinkConf};

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub filter: Filter,
    pub sink: Arc<dyn Sink>,
    pub timeout: Duration,
    /// When each attempt after the first is due, from the one before (the first is at once).
    pub retry: Vec<Duration>,
    /// Statuses besides 408, 429 and 5xx that are retried rather than dead-lettered (a 3xx here
    /// is retried instead of dead-lettered as a redirect).
    pub retry_statuses: Vec<u16>,
    pub concurrency: usize,
    pub ordered: bool,
    pub circuit_failures: u32,
    pub circuit_probe: Duration,
}

impl Route {
    /// What an attempt needs to know of its route.
    pub fn call(&self) -> Call<'_> {
        Call {
            route: &self.name,
            timeout: self.timeout,
            retry_statuses: &self.retry_statuses,
        }
    }
}

/// Svix's documented schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// A route's own keys, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: Spanned<String>,
    events: Option<Spanned<Vec<String>>>,
    statuses: Option<Spanned<Vec<String>>>,
    notifiable: Option<bool>,
    live: Option<bool>,
    senders: Option<Spanned<Vec<String>>>,
    timeout: Option<Spanned<String>>,
    retry: Option<Spanned<Vec<String>>>,
    retry_statuses: Option<Spanned<Vec<u16>>>,
    concurrency: Option<Spanned<u32>>,
    ordered: Option<bool>,
    circuit_failures: Option<Spanned<u32>>,
    circuit_probe: Option<Spanned<String>>,
}

/// What a sink's configuration needs to read its secrets and report its mistakes.
pub struct SinkContext<'a> {
    at: &'a At<'a>,
    /// `route NAME: `, before each key.
    prefix: String,
    /// The route's table.
    whole: Range<usize>,
    base: &'a Path,
    allow_plain: bool,
}

impl Context for SinkContext<'_> {
    fn error(&self, span: Option<Range<usize>>, key: &str, msg: &str) -> Error {
        let span = span.or(Some(self.whole.clone()));
        self.at.error(span, &join(&self.prefix, key), msg)
    }

    fn secret(
        &self,
        key: &str,
        plain: Option<&Spanned<String>>,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
    ) -> Result<Option<String>, Error> {
        let key = join(&self.prefix, key);
        Secret {
            key: &key,
            plain,
            env,
            file,
            allow_plain: self.allow_plain,
            whole: self.whole.clone(),
        }
        .read(self.at)
    }

    fn http_url(&self, s: &Spanned<String>, key: &str) -> Result<String, Error> {
        values::http_url(self.at, s, &join(&self.prefix, key))
    }

    fn program(&self, name: &str) -> Option<PathBuf> {
        values::program(name, self.base)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    fn reads_secrets(&self) -> bool {
        self.at.secrets
    }
}

/// Every `[[route]]`, checked.
pub fn routes(
    at: &At,
    routes: Option<Spanned<DeValue>>,
    base: &Path,
    allow_plain: bool,
) -> Result<Vec<Route>, Error> {
    let items = match routes.map(Spanned::into_inner) {
        Some(DeValue::Array(items)) if !items.is_empty() => items,
        Some(_) => return at.err(None, "route", "[[route]] tables"),
        None => return at.err(None, "", "no [[route]]: nothing would be delivered"),
    };
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let span = item.span();
        let DeValue::Table(table) = item.into_inner() else {
            return at.err(Some(span), &format!("route[{i}]"), "a [[route]] table");
        };
        let r = route(at, i, span.clone(), table, base, allow_plain)?;
        if !names.insert(r.name.clone()) {
            return at.err(
                Some(span),
                "route.name",
                format!("{} is used twice", r.name),
            );
        }
        out.push(r);
    }
    Ok(out)
}

/// The field names of a struct that serde derives (to tell a route's own keys from its sink's).
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Names {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

/// A table of the document as a value to deserialize, with its span.
fn table_value(span: Range<usize>, t: DeTable<'_>) -> Spanned<DeValue<'_>> {
    Spanned::new(span, DeValue::Table(t))
}

/// A route's table split in three: its own keys, its `sink`, and the sink's keys.
fn split(table: DeTable<'_>) -> (DeTable<'_>, Option<Spanned<DeValue<'_>>>, DeTable<'_>) {
    let own = fields_of::<RouteFile>();
    let (mut mine, mut sink) = (DeTable::new(), DeTable::new());
    let mut kind = None;
    for (k, v) in table {
        if k.get_ref() == "sink" {
            kind = Some(v);
        } else if own.contains(&k.get_ref().as_ref()) {
            mine.insert(k, v);
        } else {
            sink.insert(k, v);
        }
    }
    (mine, kind, sink)
}

fn route(
    at: &At,
    i: usize,
    span: Range<usize>,
    table: DeTable<'_>,
    base: &Path,
    allow_plain: bool,
) -> Result<Route, Error> {
    let name = match table.get("name").map(Spanned::get_ref) {
        Some(DeValue::String(s)) => s.to_string(),
        _ => format!("[{i}]"),
    };
    let prefix = format!("route {name}: ");
    let (mine, kind, sink_keys) = split(table);
    let spans = mine.clone();
    let rf = RouteFile::deserialize(ValueDeserializer::from(table_value(span.clone(), mine)))
        .map_err(|e| at.toml(&e, Some(&spans), &prefix))?;
    if !values::name_ok(rf.name.get_ref()) {
        return at.err(Some(rf.name.span()), "route.name", NAME);
    }
    let kinds = "http, slack, exec or up42-download";
    let (kind, kind_span) = match kind {
        Some(k) => match k.get_ref() {
            DeValue::String(s) => (s.clone(), k.span()),
            _ => return at.err(Some(k.span()), &join(&prefix, "sink"), kinds),
        },
        None => {
            return at.err(
                Some(span),
                &join(&prefix, "sink"),
                format!("missing: {kinds}"),
            )
        }
    };
    let kind_name = kind.to_string();
    // The sink's keys under its kind: {kind = {...}}, serde's externally tagged enum.
    let spans = sink_keys.clone();
    let mut tagged = DeTable::new();
    tagged.insert(
        Spanned::new(kind_span.clone(), kind),
        table_value(span.clone(), sink_keys),
    );
    let conf = SinkConf::deserialize(ValueDeserializer::from(table_value(span.clone(), tagged)))
        .map_err(|e| {
            if e.span() == Some(kind_span.clone()) || e.message().contains("unknown variant") {
                let msg = format!("{kinds}, not {kind_name:?}");
                at.error(Some(kind_span.clone()), &join(&prefix, "sink"), msg)
            } else {
                at.toml(&e, Some(&spans), &prefix)
            }
        })?;
    let cx = SinkContext {
        at,
        prefix: prefix.clone(),
        whole: span,
        base,
        allow_plain,
    };
    let default_timeout = conf.default_timeout();
    let default_filter = conf.default_filter();
    let sink = conf.build(&cx)?;
    let mut route = policy(at, &prefix, rf, sink, default_timeout)?;
    if let Some((events, statuses)) = default_filter {
        route.filter.events.get_or_insert(events);
        route.filter.statuses.get_or_insert(statuses);
    }
    Ok(route)
}

/// The route's filters, retries, timeout and circuit, checked.
fn policy(
    at: &At,
    prefix: &str,
    rf: RouteFile,
    sink: Arc<dyn Sink>,
    default_timeout: Duration,
) -> Result<Route, Error> {
    let key = |k: &str| join(prefix, k);
    let senders = rf.senders.as_ref().map(|s| s.get_ref().clone());
    if let Some(st) = &rf.statuses {
        let up42 = senders
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == "up42"));
        for s in st.get_ref() {
            if up42 && !up42_status(s) {
                return at.err(Some(st.span()), &key("statuses"), format!(
                    "{s:?} is not a status as UP42 writes it: in capitals, such as FAILED or FAILED_PERMANENTLY ({}?)",
                    s.to_uppercase().replace(' ', "_")
                ));
            }
        }
    }
    if let Some(ev) = &rf.events {
        for e in ev.get_ref() {
            if e == "job" || e == "order" {
                return at.err(
                    Some(ev.span()),
                    &key("events"),
                    format!("{e:?} is not an event type; UP42's are job.status and order.status"),
                );
            }
        }
    }
    let timeout = match &rf.timeout {
        Some(t) => span_duration(at, t, &key("timeout"))?,
        None => default_timeout,
    };
    let retry = match &rf.retry {
        Some(list) => list
            .get_ref()
            .iter()
            .map(|t| {
                values::duration(t).map_or_else(
                    || {
                        at.err(
                            Some(list.span()),
                            &key("retry"),
                            format!("{DURATION}, not {t:?}"),
                        )
                    },
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
            if let Some(s) = list.get_ref().iter().find(|s| !(300..500).contains(*s)) {
                return at.err(Some(list.span()), &key("retry_statuses"), format!(
                    "3xx or 4xx statuses to retry besides 408 and 429 (5xx are always retried), not {s}"
                ));
            }
            list.get_ref().clone()
        }
        None => Vec::new(),
    };
    let concurrency = match &rf.concurrency {
        Some(c) if (1..=1000).contains(c.get_ref()) => *c.get_ref() as usize,
        Some(c) => return at.err(Some(c.span()), &key("concurrency"), "1 to 1000"),
        None => 16,
    };
    let circuit_failures = match &rf.circuit_failures {
        Some(c) if *c.get_ref() >= 1 => *c.get_ref(),
        Some(c) => return at.err(Some(c.span()), &key("circuit_failures"), "1 or more"),
        None => 5,
    };
    let circuit_probe = match &rf.circuit_probe {
        Some(t) => span_duration(at, t, &key("circuit_probe"))?,
        None => Duration::from_secs(60),
    };
    Ok(Route {
        name: rf.name.into_inner(),
        filter: Filter {
            events: rf.events.map(Spanned::into_inner),
            statuses: rf.statuses.map(Spanned::into_inner),
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
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    fn err(route: &str) -> String {
        let text = format!(
            "[receiver]\nurl = \"http://127.0.0.1:9889\"\nconsumer = \"forward\"\n\n[[route]]\nname = \"r\"\n{route}"
        );
        parse(std::path::Path::new("f.toml"), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn an_up42_download_route_takes_fulfilled_orders_unless_it_says_otherwise() {
        let conf = |route: &str| {
            let text = format!(
                "[receiver]\nurl = \"http://127.0.0.1:9889\"\nconsumer = \"forward\"\n\n[[route]]\nname = \"r\"\nsink = \"up42-download\"\nto = \"orders\"\n{route}"
            );
            parse(std::path::Path::new("/etc/x/f.toml"), &text).unwrap()
        };
        let c = conf("");
        let f = &c.routes[0].filter;
        assert_eq!(f.events.as_deref(), Some(&["order.status".to_string()][..]));
        assert_eq!(f.statuses.as_deref(), Some(&["FULFILLED".to_string()][..]));
        assert_eq!(
            c.routes[0].timeout,
            std::time::Duration::from_secs(4 * 3600)
        );
        let c = conf("statuses = [\"FULFILLED\", \"DOWNLOADED\"]\n");
        assert_eq!(c.routes[0].filter.statuses.as_ref().unwrap().len(), 2);
        assert_eq!(c.routes[0].sink.kind(), "up42-download");
    }

    #[test]
    fn each_mistake_names_the_line_and_the_key() {
        let exec = "sink = \"exec\"\ncommand = [\"sh\"]\n";
        assert_eq!(
            err(&format!("{exec}concurrency = \"lots\"\n")),
            "f.toml line 9: route r: concurrency: invalid type: string \"lots\", expected u32"
        );
        assert_eq!(
            err(&format!("{exec}url = \"http://x/\"\n")),
            "f.toml line 9: route r: url: unknown field `url`, expected `command` or `env`"
        );
        assert_eq!(
            err("sink = \"smtp\"\n"),
            "f.toml line 7: route r: sink: http, slack, exec or up42-download, not \"smtp\""
        );
        assert_eq!(
            err("sink = \"exec\"\ncommand = \"sh\"\n"),
            "f.toml line 8: route r: command: invalid type: string \"sh\", expected a sequence"
        );
        assert_eq!(
            err(&format!("{exec}retry_statuses = [200]\n")),
            "f.toml line 9: route r: retry_statuses: 3xx or 4xx statuses to retry besides 408 and 429 (5xx are always retried), not 200"
        );
        assert!(
            err(&format!("{exec}env = [\"A B\"]\n")).starts_with("f.toml line 9: route r: env: ")
        );
        assert_eq!(
            err("sink = \"up42-download\"\nto = \"orders\"\nparallel = 0\n"),
            "f.toml line 9: route r: parallel: 1 to 16"
        );
        let top = parse(
            std::path::Path::new("f.toml"),
            "[receiver]\nurl = \"http://127.0.0.1:9889\"\nconsumer = \"forward\"\npage = \"ten\"\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            top,
            "f.toml line 4: receiver.page: invalid type: string \"ten\", expected u32"
        );
    }
}
