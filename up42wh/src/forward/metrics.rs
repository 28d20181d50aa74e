//! What people can see of a running forwarder: `/metrics` (Prometheus text) and `/status` (JSON)
//! on a loopback address, and `up42wh forward status`, which prints the latter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::Config;
use super::sinks::Sink;
use super::Error;

#[derive(Serialize, Default, Clone)]
pub struct RouteStatus {
    pub sink: String,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Retries scheduled, not yet due.
    pub retries_pending: u64,
    pub in_flight: u64,
    /// closed, open or half-open (a probe in flight).
    pub circuit: String,
    pub consecutive_failures: u32,
    /// Attempts due while the circuit is open, waiting for its probe (none of them is spent).
    pub waiting_for_probe: u64,
    /// Answers that were redirects (3xx): never followed, the event dead-lettered.
    pub redirects: u64,
    /// Events not sent: a transition the route has from another event (UP42's delivery and
    /// the one learnt from its API).
    pub same_transition: u64,
    /// The sink's own counters (an up42-download route's downloads), read when asked for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// Each route's sink, for its own counters.
pub type Sinks = Vec<(String, Arc<dyn Sink>)>;

#[derive(Serialize, Default, Clone)]
pub struct Status {
    pub consumer: String,
    /// The last key acknowledged at the receiver.
    pub position: Option<String>,
    /// Events read and not yet delivered or dead-lettered on every route they match.
    pub lag_events: u64,
    /// How long ago the oldest of them arrived at the receiver.
    pub lag_seconds: i64,
    /// Gaps the receiver reported (retention dropped events this forwarder had not reached).
    pub gaps: u64,
    /// Events read again after a restart that may have been delivered before it (in flight at a
    /// crash): at least once means these may arrive twice.
    pub resumed_unsure: u64,
    pub routes: BTreeMap<String, RouteStatus>,
}

pub type Shared = Arc<Mutex<Status>>;

fn prometheus(s: &Status, sinks: &Sinks) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!(
            "# HELP up42wh_forward_{name} {help}\n# TYPE up42wh_forward_{name} {kind}\n"
        ));
        for (labels, v) in rows {
            out.push_str(&format!("up42wh_forward_{name}{labels} {v}\n"));
        }
    };
    let per_route = |f: &dyn Fn(&RouteStatus) -> String| -> Vec<(String, String)> {
        s.routes
            .iter()
            .map(|(name, r)| (format!("{{route=\"{name}\"}}"), f(r)))
            .collect()
    };
    metric(
        "delivered_total",
        "counter",
        "Events delivered.",
        per_route(&|r| r.delivered.to_string()),
    );
    metric(
        "retried_total",
        "counter",
        "Attempts that failed and were scheduled again.",
        per_route(&|r| r.retried.to_string()),
    );
    metric(
        "dead_lettered_total",
        "counter",
        "Events given up after the last attempt.",
        per_route(&|r| r.dead_lettered.to_string()),
    );
    metric(
        "same_transition_total",
        "counter",
        "Events not sent: the same UP42 transition as an event the route has (delivered and learnt).",
        per_route(&|r| r.same_transition.to_string()),
    );
    metric(
        "redirects_total",
        "counter",
        "Answers that were redirects (never followed; the event dead-lettered).",
        per_route(&|r| r.redirects.to_string()),
    );
    metric(
        "waiting_for_probe",
        "gauge",
        "Attempts waiting for the probe of an open circuit.",
        per_route(&|r| r.waiting_for_probe.to_string()),
    );
    metric(
        "retries_pending",
        "gauge",
        "Retries scheduled.",
        per_route(&|r| r.retries_pending.to_string()),
    );
    metric(
        "circuit_open",
        "gauge",
        "1 while the route's circuit is open or probing.",
        per_route(&|r| u8::from(r.circuit != "closed").to_string()),
    );
    metric(
        "lag_events",
        "gauge",
        "Events read and not yet done.",
        vec![(String::new(), s.lag_events.to_string())],
    );
    metric(
        "lag_seconds",
        "gauge",
        "Age of the oldest event not yet done.",
        vec![(String::new(), s.lag_seconds.to_string())],
    );
    metric(
        "gaps_total",
        "counter",
        "Gaps the receiver reported.",
        vec![(String::new(), s.gaps.to_string())],
    );
    metric(
        "resumed_unsure_total",
        "counter",
        "Events that may be delivered twice after a restart.",
        vec![(String::new(), s.resumed_unsure.to_string())],
    );
    // The sinks' own, each counter once with a row per route that has it.
    type Rows = Vec<(String, String)>;
    let mut own: BTreeMap<&str, (&str, &str, Rows)> = BTreeMap::new();
    for (route, sink) in sinks {
        for c in sink.counters() {
            own.entry(c.name)
                .or_insert((c.kind, c.help, Vec::new()))
                .2
                .push((format!("{{route=\"{route}\"}}"), c.value.to_string()));
        }
    }
    for (name, (kind, help, rows)) in own {
        metric(name, kind, help, rows);
    }
    out
}

/// Serves `/metrics` and `/status` on `addr` until the runtime stops.
pub async fn serve(addr: std::net::SocketAddr, status: Shared, sinks: Sinks) -> Result<(), Error> {
    let sinks = Arc::new(sinks);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::run(format!("cannot listen on {addr} for the metrics: {e}")))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let (status, sinks) = (status.clone(), sinks.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    conn.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let mut snapshot = status.lock().unwrap().clone();
                for (route, sink) in sinks.iter() {
                    if let Some(r) = snapshot.routes.get_mut(route) {
                        r.counters = sink
                            .counters()
                            .into_iter()
                            .map(|c| (c.name.to_string(), c.value))
                            .collect();
                    }
                }
                let (code, kind, body) = match path {
                    "/metrics" => (
                        "200 OK",
                        "text/plain; version=0.0.4",
                        prometheus(&snapshot, &sinks),
                    ),
                    "/status" => (
                        "200 OK",
                        "application/json",
                        serde_json::to_string(&snapshot).unwrap_or_default(),
                    ),
                    _ => (
                        "404 Not Found",
                        "text/plain",
                        "/metrics or /status\n".to_string(),
                    ),
                };
                let reply = format!("HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// `up42wh forward status`: what the running forwarder's `/status` says, one route a line.
pub async fn print_status(conf: &Config) -> Result<(), Error> {
    let Some(addr) = conf.metrics else {
        return Err(Error::config(format!(
            "{}: no metrics = \"127.0.0.1:PORT\": the status is served there",
            conf.path.display()
        )));
    };
    let url = format!("http://{addr}/status");
    let body = reqwest::get(&url)
        .await
        .map_err(|e| Error::run(format!("no forwarder answers at {url}: {e}")))?
        .text()
        .await
        .map_err(|e| Error::run(format!("{url}: {e}")))?;
    let s: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| Error::run(format!("{url}: {e}")))?;
    println!(
        "consumer {} at {}: {} events behind ({} s), {} gaps, {} possibly delivered twice after a restart",
        s["consumer"].as_str().unwrap_or("?"),
        s["position"].as_str().unwrap_or("(none yet)"),
        s["lag_events"],
        s["lag_seconds"],
        s["gaps"],
        s["resumed_unsure"]
    );
    if let Some(routes) = s["routes"].as_object() {
        for (name, r) in routes {
            println!(
                "route {name} ({}): {} delivered{}, {} retried, {} dead-lettered ({} redirects), {} retries pending, {} in flight, circuit {} ({} waiting for its probe)",
                r["sink"].as_str().unwrap_or("?"),
                r["delivered"],
                match r["same_transition"].as_u64().unwrap_or(0) {
                    0 => String::new(),
                    n => format!(" ({n} not sent again: UP42 transitions it had)"),
                },
                r["retried"],
                r["dead_lettered"],
                r["redirects"],
                r["retries_pending"],
                r["in_flight"],
                r["circuit"].as_str().unwrap_or("?"),
                r["waiting_for_probe"]
            );
            if let Some(c) = r["counters"].as_object() {
                let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                if c.contains_key("downloads_in_flight") {
                    println!(
                        "  downloads: {} in flight, {} bytes received, {} completed, {} failed",
                        n("downloads_in_flight"),
                        n("download_bytes_total"),
                        n("downloads_completed_total"),
                        n("downloads_failed_total")
                    );
                }
            }
        }
    }
    Ok(())
}
