//! The forwarder's loop: one task owns the state (events read, attempts due, circuits) and hears
//! of pages read, attempts finished, the clock and the signals; attempts run as tasks of their
//! own, at most `concurrency` at once per route (one at a time, in key order, for `ordered`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::config::{Config, Route};
use super::event::{Event, Key};
use super::metrics::{self, RouteStatus, Shared, Status};
use super::redis_source::RedisReader;
use super::sink::{self, Outcome};
use super::source::{Page, Source, WAIT};
use super::state::{Done, Entry, State};
use super::Error;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A line for the log, with the time.
pub fn log(level: &str, msg: impl std::fmt::Display) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!(
        "{}.{:03} {level} {msg}\n",
        up42webhooks::format_rfc3339(now.as_secs() as i64).trim_end_matches('Z'),
        now.subsec_millis()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A small generator for the retries' jitter (no need for a crate: nothing secret depends on it).
struct Jitter(u64);

impl Jitter {
    /// `d` stretched by 0 to 20 %.
    fn spread(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        d + d.mul_f64((self.0 % 1000) as f64 / 5000.0)
    }
}

/// A route's circuit breaker.
#[derive(Default)]
struct Circuit {
    failures: u32,
    /// Open until this time (unix ms); 0 when closed.
    open_until: u64,
    probing: bool,
}

struct RouteRt {
    conf: Arc<Route>,
    /// Attempts running now, at most `concurrency`.
    running: usize,
    /// Attempts due, waiting for one of the running ones to finish.
    ready: std::collections::VecDeque<(Key, u32)>,
    circuit: Circuit,
    /// `ordered`: the keys waiting, with their attempts made and when the next is due; only the
    /// first may run, and only when none is running.
    waiting: BTreeMap<Key, (u32, u64)>,
    busy: bool,
    status: RouteStatus,
}

/// An event read and not yet acknowledged at the receiver: what each matched route did with it.
struct Tracked {
    event: Arc<Event>,
    /// Per route index: `None` still to do, or what was done.
    routes: Vec<(usize, Option<Done>)>,
}

impl Tracked {
    fn finished(&self) -> bool {
        self.routes
            .iter()
            .all(|(_, d)| matches!(d, Some(Done::Delivered | Done::Dead)))
    }
}

/// An attempt that finished.
struct Finished {
    key: Key,
    route: usize,
    attempts: u32,
    outcome: Outcome,
}

/// A dead letter: the event with its envelope, the route, the attempts and the last failure.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub route: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: String,
    pub time: String,
    pub envelope: Event,
}

fn append_dead_letter(path: &Path, d: &DeadLetter) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(d).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // Opened for each letter: a replay may have moved the file aside meanwhile.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// An attempt due: (due unix ms, a tie-breaker, key, route, attempts made), the earliest first.
type Due = (u64, u64, Key, usize, u32);

struct Forwarder {
    conf: Config,
    routes: Vec<RouteRt>,
    state: State,
    tracked: BTreeMap<Key, Tracked>,
    due: BinaryHeap<Reverse<Due>>,
    tie: u64,
    jitter: Jitter,
    /// What the state log said at start, used up as the events come again.
    resumed: HashMap<(Key, String), Done>,
    /// Everything up to this key is done (read and finished); what the receiver was told.
    read_through: Option<Key>,
    acked: Option<Key>,
    status: Shared,
    done_tx: mpsc::UnboundedSender<Finished>,
    in_flight: usize,
    last_gap: Option<String>,
    /// With Redis (entries acknowledged one by one): the events finished since the last XACK, so
    /// that finding them does not scan every event still held.
    finished_keys: Option<Vec<Key>>,
}

impl Forwarder {
    fn record(&mut self, e: Entry) {
        if let Err(err) = self.state.append(&e) {
            log(
                "error",
                format!(
                    "cannot write the state log in {}: {err}",
                    self.conf.state_dir.display()
                ),
            );
        }
    }

    fn schedule(&mut self, key: Key, route: usize, attempts: u32, due: u64) {
        let rt = &mut self.routes[route];
        if rt.conf.ordered {
            rt.waiting.insert(key, (attempts, due));
            self.release_ordered(route);
            return;
        }
        self.tie += 1;
        self.due
            .push(Reverse((due, self.tie, key, route, attempts)));
    }

    /// An ordered route's first waiting key goes to the queue once nothing of it runs.
    fn release_ordered(&mut self, route: usize) {
        let rt = &mut self.routes[route];
        if rt.busy {
            return;
        }
        if let Some((key, &(attempts, due))) = rt.waiting.iter().next() {
            let key = key.clone();
            rt.waiting.remove(&key);
            rt.busy = true;
            self.tie += 1;
            self.due
                .push(Reverse((due, self.tie, key, route, attempts)));
        }
    }

    /// A page read: each event's routes, as the state log left them or from the first attempt.
    fn take(&mut self, page: Page) {
        if let Some((after, through)) = &page.gap {
            if self.last_gap.as_deref() != Some(through) {
                self.last_gap = Some(through.clone());
                self.status.lock().unwrap().gaps += 1;
                log("ERROR", format!(
                    "gap: the receiver's retention dropped events after this consumer's position {after}, up to {through}, \
                     before they were forwarded; they are lost to the routes (going on with the next event)"
                ));
            }
        }
        let now = now_ms();
        for e in page.events {
            // Taken over again (Redis) while this forwarder still works on it.
            if self.tracked.contains_key(&e.key) {
                continue;
            }
            let e = Arc::new(e);
            let mut routes = Vec::new();
            for (i, rt) in self.routes.iter().enumerate() {
                if e.matches(&rt.conf.filter) {
                    routes.push((
                        i,
                        self.resumed.remove(&(e.key.clone(), rt.conf.name.clone())),
                    ));
                }
            }
            let key = e.key.clone();
            for &(i, done) in &routes {
                match done {
                    None => self.schedule(key.clone(), i, 0, now),
                    Some(Done::Retry { attempts, due }) => {
                        self.routes[i].status.retries_pending += 1;
                        self.schedule(key.clone(), i, attempts, due)
                    }
                    Some(Done::Sending { attempt }) => {
                        // Sent when the forwarder stopped, its outcome unknown: sent again, and it
                        // may arrive twice (at least once).
                        self.status.lock().unwrap().resumed_unsure += 1;
                        log("warn", format!(
                            "event {key} was being sent to route {} when the forwarder stopped: sending it again (it may arrive twice)",
                            self.routes[i].conf.name
                        ));
                        self.schedule(key.clone(), i, attempt - 1, now)
                    }
                    Some(Done::Delivered | Done::Dead) => {}
                }
            }
            let t = Tracked { event: e, routes };
            if let Some(f) = self.finished_keys.as_mut().filter(|_| t.finished()) {
                f.push(key.clone());
            }
            self.tracked.insert(key, t);
        }
        if let Some(next) = page.next {
            if self.read_through.as_ref().is_none_or(|r| next > *r) {
                self.read_through = Some(next);
            }
        }
    }

    /// Starts the attempts that are due, as far as each route's concurrency allows (the others
    /// wait their turn in the route's queue); returns when the next one is due.
    fn start_due(&mut self) -> Option<u64> {
        let now = now_ms();
        let mut next = None;
        while let Some(Reverse((due, _, _, _, _))) = self.due.peek() {
            if *due > now {
                next = Some(*due);
                break;
            }
            let Reverse((_, _, key, route, attempts)) = self.due.pop().unwrap();
            self.routes[route].ready.push_back((key, attempts));
        }
        for route in 0..self.routes.len() {
            while let Some((key, attempts)) = self.routes[route].ready.pop_front() {
                if !self.start(key.clone(), route, attempts, now) {
                    self.routes[route].ready.push_front((key, attempts));
                    break;
                }
            }
        }
        next
    }

    /// Starts one attempt, or counts it as failed while the circuit is open; false when the
    /// route runs as many as it may.
    fn start(&mut self, key: Key, route: usize, attempts: u32, now: u64) -> bool {
        let Some(t) = self.tracked.get(&key) else {
            return true;
        };
        let event = t.event.clone();
        let rt = &mut self.routes[route];
        // An open circuit sends nothing but one probe per interval; the attempt counts.
        if rt.circuit.open_until > 0 {
            if now < rt.circuit.open_until || rt.circuit.probing {
                if rt.status.retries_pending > 0 && attempts > 0 {
                    rt.status.retries_pending -= 1;
                }
                let _ = self.done_tx.send(Finished {
                    key,
                    route,
                    attempts: attempts + 1,
                    outcome: Outcome::Retry {
                        after: None,
                        status: None,
                        error: "circuit open: not sent".into(),
                    },
                });
                return true;
            }
            rt.circuit.probing = true;
            log(
                "warn",
                format!(
                    "route {}: circuit half-open: probing with event {key}",
                    rt.conf.name
                ),
            );
        }
        if rt.running >= rt.conf.concurrency {
            return false;
        }
        if rt.status.retries_pending > 0 && attempts > 0 {
            rt.status.retries_pending -= 1;
        }
        rt.running += 1;
        rt.status.in_flight += 1;
        self.in_flight += 1;
        let (conf, tx) = (rt.conf.clone(), self.done_tx.clone());
        self.record(Entry::Sending {
            k: key.text.clone(),
            r: conf.name.clone(),
            a: attempts + 1,
        });
        self.finish_route(
            &key,
            route,
            Done::Sending {
                attempt: attempts + 1,
            },
        );
        let client = CLIENT.get().unwrap().clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = sink::deliver(&client, &conf, &event).await;
            if outcome == Outcome::Delivered {
                log(
                    "info",
                    format!(
                        "delivered event {key} to route {} (attempt {}, {} ms)",
                        conf.name,
                        attempts + 1,
                        started.elapsed().as_millis()
                    ),
                );
            }
            let _ = tx.send(Finished {
                key,
                route,
                attempts: attempts + 1,
                outcome,
            });
        });
        true
    }

    fn finish_route(&mut self, key: &Key, route: usize, done: Done) {
        if let Some(t) = self.tracked.get_mut(key) {
            for r in &mut t.routes {
                if r.0 == route {
                    r.1 = Some(done);
                }
            }
            // The last route delivered or gave it up (a route finishes once).
            if matches!(done, Done::Delivered | Done::Dead) && t.finished() {
                if let Some(f) = self.finished_keys.as_mut() {
                    f.push(key.clone());
                }
            }
        }
    }

    fn circuit_entry(&self, route: usize) -> Entry {
        let rt = &self.routes[route];
        Entry::Circuit {
            r: rt.conf.name.clone(),
            f: rt.circuit.failures,
            open_until: rt.circuit.open_until,
        }
    }

    fn finished(&mut self, f: Finished) {
        let Finished {
            key,
            route,
            attempts,
            outcome,
        } = f;
        let sent =
            !matches!(&outcome, Outcome::Retry { error, .. } if error.starts_with("circuit open"));
        let now = now_ms();
        let name = self.routes[route].conf.name.clone();
        if sent {
            let rt = &mut self.routes[route];
            rt.running = rt.running.saturating_sub(1);
            rt.status.in_flight = rt.status.in_flight.saturating_sub(1);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if self.routes[route].conf.ordered {
            self.routes[route].busy = false;
        }
        // The circuit hears of every attempt that was sent.
        if sent {
            let rt = &mut self.routes[route];
            let was_open = rt.circuit.open_until > 0;
            if outcome == Outcome::Delivered {
                rt.circuit = Circuit::default();
                if was_open {
                    log(
                        "warn",
                        format!("route {name}: circuit closed: the sink answers again"),
                    );
                    let e = self.circuit_entry(route);
                    self.record(e);
                }
            } else {
                rt.circuit.failures += 1;
                rt.circuit.probing = false;
                if was_open || rt.circuit.failures >= rt.conf.circuit_failures {
                    rt.circuit.open_until = now + rt.conf.circuit_probe.as_millis() as u64;
                    if !was_open {
                        log("ERROR", format!(
                            "route {name}: circuit open after {} failures in a row: sending nothing but one probe every {:?}",
                            rt.circuit.failures, rt.conf.circuit_probe
                        ));
                    }
                    let e = self.circuit_entry(route);
                    self.record(e);
                }
            }
        }
        let Some(event) = self.tracked.get(&key).map(|t| t.event.clone()) else {
            self.release_ordered(route);
            return;
        };
        match outcome {
            Outcome::Delivered => {
                self.routes[route].status.delivered += 1;
                self.record(Entry::Delivered {
                    k: key.text.clone(),
                    r: name,
                });
                self.finish_route(&key, route, Done::Delivered);
            }
            Outcome::Retry {
                after,
                status,
                error,
            } if (attempts as usize) <= self.routes[route].conf.retry.len() => {
                let delay = self
                    .jitter
                    .spread(self.routes[route].conf.retry[attempts as usize - 1]);
                let delay = after.map_or(delay, |a| delay.max(a.min(Duration::from_secs(86_400))));
                let due = now + delay.as_millis() as u64;
                let rt = &mut self.routes[route];
                rt.status.retried += 1;
                rt.status.retries_pending += 1;
                if sent {
                    log("warn", format!(
                        "route {name}: event {key} attempt {attempts} failed ({}{error}); next in {:.1} s",
                        status.map(|s| format!("{s}: ")).unwrap_or_default(),
                        delay.as_secs_f64()
                    ));
                }
                self.record(Entry::Retry {
                    k: key.text.clone(),
                    r: name,
                    a: attempts,
                    due,
                });
                self.finish_route(&key, route, Done::Retry { attempts, due });
                self.schedule(key, route, attempts, due);
            }
            Outcome::Retry { status, error, .. } | Outcome::Fail { status, error } => {
                let d = DeadLetter {
                    route: name.clone(),
                    attempts,
                    last_status: status,
                    last_error: error.clone(),
                    time: up42webhooks::format_rfc3339((now / 1000) as i64),
                    envelope: (*event).clone(),
                };
                if let Err(e) = append_dead_letter(&self.conf.dead_letter, &d) {
                    // Not dead-lettered: tried again later rather than lost.
                    log(
                        "error",
                        format!(
                            "cannot write the dead-letter file {}: {e}",
                            self.conf.dead_letter.display()
                        ),
                    );
                    let due = now + 60_000;
                    self.record(Entry::Retry {
                        k: key.text.clone(),
                        r: name,
                        a: attempts,
                        due,
                    });
                    self.schedule(key, route, attempts, due);
                    return;
                }
                self.routes[route].status.dead_lettered += 1;
                log("ERROR", format!(
                    "route {name}: gave event {key} up after {attempts} attempts ({}{error}): in the dead-letter file {}",
                    status.map(|s| format!("{s}: ")).unwrap_or_default(),
                    self.conf.dead_letter.display()
                ));
                self.record(Entry::Dead {
                    k: key.text.clone(),
                    r: name,
                });
                self.finish_route(&key, route, Done::Dead);
            }
        }
        self.release_ordered(route);
    }

    /// The key up to which everything read is done: what the receiver may be told.
    fn done_through(&self) -> Option<Key> {
        match self.tracked.iter().find(|(_, t)| !t.finished()) {
            None => self.read_through.clone(),
            Some((first_open, _)) => self
                .tracked
                .range(..first_open.clone())
                .next_back()
                .map(|(k, _)| k.clone()),
        }
    }

    /// After the receiver took the acknowledgement: forgets what is at or below it, and keeps the
    /// state log small.
    fn acknowledged(&mut self, upto: Key) {
        self.tracked = self.tracked.split_off(&Key {
            ms: upto.ms,
            seq: upto.seq + 1,
            text: String::new(),
        });
        self.record(Entry::Position {
            k: upto.text.clone(),
        });
        self.acked = Some(upto);
        self.compact_if_long();
    }

    /// Entries acknowledged by Redis (XACK): forgotten, as `acknowledged` forgets a position's.
    fn acknowledged_each(&mut self, keys: Vec<Key>) {
        for k in keys {
            self.tracked.remove(&k);
        }
        self.compact_if_long();
    }

    /// Rewrites the state log with what is still needed once it has grown by 20,000 lines.
    fn compact_if_long(&mut self) {
        if self.state.appended > 20_000 {
            let mut keep: Vec<Entry> = (0..self.routes.len())
                .map(|i| self.circuit_entry(i))
                .collect();
            if let Some(p) = &self.acked {
                keep.push(Entry::Position { k: p.text.clone() });
            }
            for (k, t) in &self.tracked {
                for &(i, d) in &t.routes {
                    let r = self.routes[i].conf.name.clone();
                    keep.push(match d {
                        Some(Done::Delivered) => Entry::Delivered {
                            k: k.text.clone(),
                            r,
                        },
                        Some(Done::Dead) => Entry::Dead {
                            k: k.text.clone(),
                            r,
                        },
                        Some(Done::Retry { attempts, due }) => Entry::Retry {
                            k: k.text.clone(),
                            r,
                            a: attempts,
                            due,
                        },
                        Some(Done::Sending { attempt }) => Entry::Sending {
                            k: k.text.clone(),
                            r,
                            a: attempt,
                        },
                        None => continue,
                    });
                }
            }
            if let Err(e) = self.state.compact(&keep) {
                log("error", format!("cannot compact the state log: {e}"));
            }
        }
    }

    fn publish(&self) {
        let mut s = self.status.lock().unwrap();
        s.position = self.acked.as_ref().map(|k| k.text.clone());
        let open: Vec<&Tracked> = self.tracked.values().filter(|t| !t.finished()).collect();
        s.lag_events = open.len() as u64;
        s.lag_seconds = open
            .iter()
            .filter_map(|t| t.event.received)
            .min()
            .map_or(0, |r| ((now_ms() / 1000) as i64 - r).max(0));
        for rt in &self.routes {
            let mut r = rt.status.clone();
            r.circuit = if rt.circuit.open_until == 0 {
                "closed"
            } else if rt.circuit.probing {
                "half-open"
            } else {
                "open"
            }
            .into();
            r.consecutive_failures = rt.circuit.failures;
            s.routes.insert(rt.conf.name.clone(), r);
        }
    }
}

/// Where the events come from: the receiver's admin listener, or the Redis store's group.
enum Reader {
    Admin(Source),
    Redis(Box<RedisReader>),
}

/// What an acknowledgement said: everything up to a key (the admin listener), or these entries
/// (Redis).
enum Acked {
    Through(Key),
    Each(Vec<Key>),
}

impl Reader {
    async fn page(&self, since: Option<Key>) -> Result<Page, Error> {
        match self {
            Reader::Admin(s) => s.page(since.as_ref(), WAIT).await,
            Reader::Redis(r) => r.page(WAIT).await,
        }
    }
}

static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();

fn client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))
}

/// Runs until SIGTERM or SIGINT: then reads and starts nothing more, lets the attempts in flight
/// finish (for up to stop_timeout, 10 s; those still running are handed back: due again at the
/// next start), tells the receiver where it got to and syncs the state log.
pub async fn forward(conf: Config) -> Result<(), Error> {
    let _ = CLIENT.set(client()?);
    let source = Arc::new(match &conf.redis {
        None => Reader::Admin(Source::new(conf.receiver.clone())?),
        Some(r) => Reader::Redis(Box::new(
            RedisReader::connect(
                r.clone(),
                conf.receiver.consumer.clone(),
                conf.receiver.page,
            )
            .await?,
        )),
    });
    let (state, loaded) = State::open(&conf.state_dir).map_err(|e| {
        Error::run(format!(
            "cannot open the state log in {}: {e}",
            conf.state_dir.display()
        ))
    })?;
    if loaded.torn > 0 {
        log(
            "warn",
            format!(
                "state log: {} lines cut short by a crash skipped",
                loaded.torn
            ),
        );
    }
    let status: Shared = Arc::new(Mutex::new(Status {
        consumer: conf.receiver.consumer.clone(),
        ..Status::default()
    }));
    if let Some(addr) = conf.metrics {
        metrics::serve(addr, status.clone()).await?;
    }
    let routes = conf
        .routes
        .iter()
        .map(|r| {
            let (failures, open_until) = loaded.circuits.get(&r.name).copied().unwrap_or((0, 0));
            RouteRt {
                conf: Arc::new(r.clone()),
                running: 0,
                ready: Default::default(),
                circuit: Circuit {
                    failures,
                    open_until,
                    probing: false,
                },
                waiting: BTreeMap::new(),
                busy: false,
                status: RouteStatus {
                    sink: r.sink.kind().into(),
                    circuit: "closed".into(),
                    ..RouteStatus::default()
                },
            }
        })
        .collect();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let resumed_count = loaded
        .routes
        .values()
        .filter(|d| matches!(d, Done::Retry { .. }))
        .count();
    let mut f = Forwarder {
        conf,
        routes,
        state,
        tracked: BTreeMap::new(),
        due: BinaryHeap::new(),
        tie: 0,
        jitter: Jitter(now_ms() | 1),
        resumed: loaded.routes,
        read_through: None,
        acked: loaded.position,
        status,
        done_tx,
        in_flight: 0,
        last_gap: None,
        finished_keys: matches!(*source, Reader::Redis(_)).then(Vec::new),
    };
    log(
        "info",
        format!(
            "forwarding from {} as consumer {} to {} routes; {} retries pending from the state log",
            match &f.conf.redis {
                // Not the URL: it may hold the password.
                Some(r) => format!(
                    "the Redis stream {} (this forwarder is {})",
                    r.stream, r.name
                ),
                None => f.conf.receiver.url.clone(),
            },
            f.conf.receiver.consumer,
            f.routes.len(),
            resumed_count
        ),
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::run(format!("cannot catch SIGTERM: {e}")))?;
    let (page_tx, mut page_rx) = mpsc::channel::<Result<Page, Error>>(1);
    let mut reading = false;
    let mut read_backoff = Duration::from_millis(500);
    let mut read_not_before = Instant::now();
    let mut first_page = true;
    // An acknowledgement's outcome; a failed XACK gives its keys back, to be sent again.
    let (ack_tx, mut ack_rx) = mpsc::channel::<Result<Acked, (Error, Vec<Key>)>>(1);
    let mut last_touch = Instant::now();
    let mut acking = false;
    // A failed acknowledgement is sent again after a pause that doubles (0.5 s to 30 s): a
    // receiver that is down is not asked in a tight loop.
    let mut ack_backoff = Duration::from_millis(500);
    let mut ack_not_before = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut stopping: Option<Instant> = None;
    loop {
        // Read on while the window has room and nothing stops it.
        if !reading
            && stopping.is_none()
            && f.tracked.len() < f.conf.receiver.in_flight
            && Instant::now() >= read_not_before
        {
            reading = true;
            let (source, tx) = (source.clone(), page_tx.clone());
            // The first page starts at the receiver's position for this consumer; then after
            // what was read.
            let since = if first_page {
                None
            } else {
                f.read_through.clone()
            };
            tokio::spawn(async move {
                let _ = tx.send(source.page(since).await).await;
            });
        }
        // A stop starts nothing new.
        let next_due = if stopping.is_none() {
            f.start_due()
        } else {
            None
        };
        let sleep = next_due.map_or(Duration::from_secs(3600), |d| {
            Duration::from_millis(d.saturating_sub(now_ms()))
        });
        tokio::select! {
            page = page_rx.recv() => {
                reading = false;
                match page {
                    Some(Ok(p)) => {
                        first_page = false;
                        read_backoff = Duration::from_millis(500);
                        f.take(p);
                    }
                    Some(Err(e)) => {
                        if e.exit_code() == 2 && first_page {
                            return Err(e);
                        }
                        log("warn", format!("{e}; reading again in {:.1} s", read_backoff.as_secs_f64()));
                        read_not_before = Instant::now() + read_backoff;
                        read_backoff = (read_backoff * 2).min(Duration::from_secs(30));
                    }
                    None => {}
                }
            }
            done = done_rx.recv() => {
                if let Some(d) = done {
                    f.finished(d);
                }
            }
            ack = ack_rx.recv() => {
                acking = false;
                if matches!(ack, Some(Ok(_))) {
                    ack_backoff = Duration::from_millis(500);
                }
                match ack {
                    Some(Ok(Acked::Through(k))) => f.acknowledged(k),
                    Some(Ok(Acked::Each(keys))) => f.acknowledged_each(keys),
                    Some(Err((e, keys))) => {
                        log("warn", format!("{e}; the acknowledgement is sent again in {:.1} s", ack_backoff.as_secs_f64()));
                        ack_not_before = Instant::now() + ack_backoff;
                        ack_backoff = (ack_backoff * 2).min(Duration::from_secs(30));
                        if let Some(f) = f.finished_keys.as_mut() {
                            f.extend(keys);
                        }
                    }
                    None => {}
                }
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = tick.tick() => {
                f.publish();
            }
            _ = term.recv(), if stopping.is_none() => {
                log("info", format!("SIGTERM: finishing the {} attempts in flight (at most {:?})", f.in_flight, f.conf.stop_timeout));
                stopping = Some(Instant::now());
            }
            _ = tokio::signal::ctrl_c(), if stopping.is_none() => {
                log("info", format!("SIGINT: finishing the {} attempts in flight (at most {:?})", f.in_flight, f.conf.stop_timeout));
                stopping = Some(Instant::now());
            }
        }
        // Tell the receiver (or Redis), one acknowledgement at a time.
        if !acking && Instant::now() >= ack_not_before {
            match &*source {
                Reader::Admin(_) => {
                    if let Some(k) = f.done_through() {
                        if f.acked.as_ref().is_none_or(|a| k > *a) {
                            acking = true;
                            let (source, tx) = (source.clone(), ack_tx.clone());
                            tokio::spawn(async move {
                                let Reader::Admin(s) = &*source else { return };
                                let r = s
                                    .ack(&k)
                                    .await
                                    .map(|_| Acked::Through(k))
                                    .map_err(|e| (e, Vec::new()));
                                let _ = tx.send(r).await;
                            });
                        }
                    }
                }
                Reader::Redis(r) => {
                    let pending = f.finished_keys.as_mut().expect("kept with Redis");
                    let done: Vec<Key> = pending.drain(..pending.len().min(1000)).collect();
                    if !done.is_empty() {
                        acking = true;
                        let (source, tx) = (source.clone(), ack_tx.clone());
                        tokio::spawn(async move {
                            let Reader::Redis(r) = &*source else { return };
                            let res = match r.ack(&done).await {
                                Ok(()) => Ok(Acked::Each(done)),
                                Err(e) => Err((e, done)),
                            };
                            let _ = tx.send(res).await;
                        });
                    } else if last_touch.elapsed() >= r.claim_idle() / 3 {
                        // What is still being worked on stays this forwarder's.
                        last_touch = Instant::now();
                        let open: Vec<Key> = f.tracked.keys().cloned().collect();
                        if !open.is_empty() {
                            let source = source.clone();
                            tokio::spawn(async move {
                                let Reader::Redis(r) = &*source else { return };
                                if let Err(e) = r.touch(&open).await {
                                    log("warn", e);
                                }
                            });
                        }
                    }
                }
            }
        }
        if let Some(since) = stopping {
            let handed_back = f.in_flight > 0 && since.elapsed() > f.conf.stop_timeout;
            if (f.in_flight == 0 || handed_back) && !acking {
                if handed_back {
                    log("warn", format!(
                        "{} attempts still running after {:?}: handed back, due again at the next start",
                        f.in_flight, f.conf.stop_timeout
                    ));
                }
                f.publish();
                let _ = f.state.sync();
                log("info", "stopped");
                return Ok(());
            }
        }
    }
}

/// `up42wh forward replay`: each dead letter (of `route`, or all) is sent once more to its route;
/// those delivered leave the file, the others go back into it.
pub async fn replay(conf: Config, file: &Path, route: Option<&str>) -> Result<(), Error> {
    let client = client()?;
    // Moved aside first: a running forwarder appends new letters to a fresh file meanwhile.
    let aside = file.with_extension("replaying");
    std::fs::rename(file, &aside)
        .map_err(|e| Error::run(format!("cannot take {}: {e}", file.display())))?;
    let text = std::fs::read_to_string(&aside)
        .map_err(|e| Error::run(format!("cannot read {}: {e}", aside.display())))?;
    let routes: HashMap<&str, &Route> = conf.routes.iter().map(|r| (r.name.as_str(), r)).collect();
    let (mut delivered, mut kept, mut keep) = (0, 0, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(d) = serde_json::from_str::<DeadLetter>(line) else {
            keep.push(line.to_string());
            kept += 1;
            continue;
        };
        let Some(r) = routes
            .get(d.route.as_str())
            .filter(|_| route.is_none_or(|want| want == d.route))
        else {
            keep.push(line.to_string());
            continue;
        };
        match sink::deliver(&client, r, &d.envelope).await {
            Outcome::Delivered => {
                delivered += 1;
                log(
                    "info",
                    format!("replayed event {} to route {}", d.envelope.key, d.route),
                );
            }
            Outcome::Retry { error, .. } | Outcome::Fail { error, .. } => {
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
                keep.push(line.to_string());
            }
        }
    }
    if !keep.is_empty() {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| Error::run(format!("cannot write {}: {e}", file.display())))?;
        f.write_all((keep.join("\n") + "\n").as_bytes())
            .map_err(|e| Error::run(format!("cannot write {}: {e}", file.display())))?;
    }
    let _ = std::fs::remove_file(&aside);
    println!(
        "{delivered} delivered, {kept} failed again and kept in {}",
        file.display()
    );
    if kept > 0 {
        return Err(Error::run(format!(
            "{kept} dead letters could not be delivered"
        )));
    }
    Ok(())
}
