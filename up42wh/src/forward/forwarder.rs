//! The forwarder's state: the events read and not yet acknowledged, what each matched route did
//! with them, the attempts due and the circuits. The loop (run.rs) feeds it pages read and attempts
//! finished; it starts attempts as tasks of their own, at most `concurrency` at once per route (one
//! at a time, in key order, for `ordered`), and writes each step to the state log.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::circuit::{Circuit, Jitter};
use super::config::{Config, Route};
use super::dead_letter::{DeadLetter, Store};
use super::event::{Event, Key};
use super::log::log;
use super::metrics::{RouteStatus, Shared};
use super::sinks::Outcome;
use super::source::Page;
use super::state::{Done, Entry, State};
use crate::clock::now_ms;

pub struct RouteRt {
    pub conf: Arc<Route>,
    /// Attempts running now, at most `concurrency`.
    running: usize,
    /// Attempts due, waiting for one of the running ones to finish.
    ready: VecDeque<(Key, u32)>,
    pub circuit: Circuit,
    /// `ordered`: the keys waiting, with their attempts made and when the next is due; only the
    /// first may run, and only when none is running.
    waiting: BTreeMap<Key, (u32, u64)>,
    busy: bool,
    pub status: RouteStatus,
}

impl RouteRt {
    /// A route at start, its circuit as the state log left it.
    pub fn new(conf: &Route, circuit: (u32, u64)) -> RouteRt {
        RouteRt {
            conf: Arc::new(conf.clone()),
            running: 0,
            ready: VecDeque::new(),
            circuit: Circuit {
                failures: circuit.0,
                open_until: circuit.1,
                ..Circuit::default()
            },
            waiting: BTreeMap::new(),
            busy: false,
            status: RouteStatus {
                sink: conf.sink.kind().into(),
                circuit: "closed".into(),
                ..RouteStatus::default()
            },
        }
    }
}

/// An event read and not yet acknowledged at the receiver: what each matched route did with it.
pub struct Tracked {
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
pub struct Finished {
    key: Key,
    route: usize,
    attempts: u32,
    outcome: Outcome,
}

/// An attempt due: (due unix ms, a tie-breaker, key, route, attempts made), the earliest first.
type Due = (u64, u64, Key, usize, u32);

pub struct Forwarder {
    pub conf: Config,
    pub routes: Vec<RouteRt>,
    pub state: State,
    pub tracked: BTreeMap<Key, Tracked>,
    due: BinaryHeap<Reverse<Due>>,
    tie: u64,
    jitter: Jitter,
    dead_letters: Store,
    /// What the state log said at start, used up as the events come again.
    resumed: HashMap<(Key, String), Done>,
    /// Everything up to this key is done (read and finished); what the receiver was told.
    read_through: Option<Key>,
    pub acked: Option<Key>,
    status: Shared,
    done_tx: mpsc::UnboundedSender<Finished>,
    pub in_flight: usize,
    last_gap: Option<String>,
    /// With Redis (entries acknowledged one by one): the events finished since the last XACK, so
    /// that finding them does not scan every event still held.
    pub finished_keys: Option<Vec<Key>>,
    /// (UP42 transition, route) -> (the event that has it, when, unix ms): state.rs's Claim.
    claims: HashMap<(String, String), (String, u64)>,
}

/// How long a route remembers the transitions it has: past the receiver's replay horizon (3
/// days), UP42's retries and `up42 reconcile`'s first look back (7 days).
const CLAIMS_KEPT_MS: u64 = 8 * 86_400_000;

/// What a forwarder starts from: the state log's entries and where it sends what finished.
pub struct Start {
    pub routes: HashMap<(Key, String), Done>,
    pub position: Option<Key>,
    pub status: Shared,
    pub done_tx: mpsc::UnboundedSender<Finished>,
    /// Redis: entries are acknowledged one by one.
    pub each: bool,
    pub claims: HashMap<(String, String), (String, u64)>,
}

impl Forwarder {
    pub fn new(conf: Config, state: State, routes: Vec<RouteRt>, start: Start) -> Forwarder {
        Forwarder {
            dead_letters: Store::new(&conf.dead_letter),
            conf,
            routes,
            state,
            tracked: BTreeMap::new(),
            due: BinaryHeap::new(),
            tie: 0,
            jitter: Jitter(now_ms() | 1),
            resumed: start.routes,
            read_through: None,
            acked: start.position,
            status: start.status,
            done_tx: start.done_tx,
            in_flight: 0,
            last_gap: None,
            finished_keys: start.each.then(Vec::new),
            claims: start.claims,
        }
    }

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
    pub fn take(&mut self, page: Page) {
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
            if let Some(t) = e.transition() {
                for (i, done) in &mut routes {
                    if done.is_none() && self.same_transition(&key, *i, &t, now) {
                        *done = Some(Done::Delivered);
                    }
                }
            }
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

    /// Whether route `i` has UP42's transition `t` from another event: then this one is not sent
    /// (said, counted, recorded). Else this event claims it for the route.
    fn same_transition(&mut self, key: &Key, i: usize, t: &str, now: u64) -> bool {
        let name = self.routes[i].conf.name.clone();
        let id = (t.to_string(), name.clone());
        match self.claims.get(&id) {
            Some((of, _)) if *of != key.text => {
                let of = of.clone();
                self.routes[i].status.same_transition += 1;
                log("info", format!(
                    "route {name}: event {key} is {t}, which the route has as event {of}: not sent again"
                ));
                self.record(Entry::Same {
                    k: key.text.clone(),
                    r: name,
                    of,
                });
                true
            }
            Some(_) => false,
            None => {
                self.claims.insert(id, (key.text.clone(), now));
                self.record(Entry::Claim {
                    t: t.to_string(),
                    r: name,
                    k: key.text.clone(),
                    at: now,
                });
                false
            }
        }
    }

    /// Starts the attempts that are due, as far as each route's concurrency allows (the others
    /// wait their turn in the route's queue, or for the probe of an open circuit); returns when
    /// the next one is due.
    pub fn start_due(&mut self) -> Option<u64> {
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
            let rt = &mut self.routes[route];
            // The probe's time: what waited for it is due again (one of them probes).
            if rt.circuit.wakes_at().is_some_and(|t| t <= now) {
                for p in std::mem::take(&mut rt.circuit.parked).into_iter().rev() {
                    rt.ready.push_front(p);
                }
            }
            while let Some((key, attempts)) = self.routes[route].ready.pop_front() {
                if !self.start(key.clone(), route, attempts, now) {
                    self.routes[route].ready.push_front((key, attempts));
                    break;
                }
            }
            if let Some(t) = self.routes[route].circuit.wakes_at() {
                next = Some(next.map_or(t, |n: u64| n.min(t)));
            }
        }
        next
    }

    /// Starts one attempt, or parks it while the circuit is open (no attempt is spent); false
    /// when the route runs as many as it may.
    fn start(&mut self, key: Key, route: usize, attempts: u32, now: u64) -> bool {
        let Some(t) = self.tracked.get(&key) else {
            return true;
        };
        let event = t.event.clone();
        let rt = &mut self.routes[route];
        // An open circuit sends nothing but one probe per interval.
        if rt.circuit.holds(now) {
            rt.circuit.parked.push((key, attempts));
            return true;
        }
        if rt.running >= rt.conf.concurrency {
            return false;
        }
        if rt.circuit.is_open() {
            rt.circuit.probing = Some(key.clone());
            log(
                "warn",
                format!(
                    "route {}: circuit half-open: probing with event {key}",
                    rt.conf.name
                ),
            );
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
        tokio::spawn(async move {
            let started = Instant::now();
            let call = conf.call();
            let outcome = conf.sink.deliver(&call, &event).await;
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

    /// The circuit hears of every attempt's outcome: a delivery closes it (what waited for the
    /// probe is due at once), failures in a row open it, a failed probe keeps it open.
    fn circuit_hears(&mut self, route: usize, key: &Key, delivered: bool, now: u64) {
        let rt = &mut self.routes[route];
        let name = rt.conf.name.clone();
        let was_open = rt.circuit.is_open();
        if delivered {
            let parked = std::mem::take(&mut rt.circuit.parked);
            rt.circuit = Circuit::default();
            if was_open {
                log(
                    "warn",
                    format!("route {name}: circuit closed: the sink answers again ({} attempts that waited for it are due now)", parked.len()),
                );
                for p in parked.into_iter().rev() {
                    rt.ready.push_front(p);
                }
                let e = self.circuit_entry(route);
                self.record(e);
            }
            return;
        }
        // A failure that is not the probe's was sent before the circuit opened: it says nothing
        // new of the sink.
        if was_open && rt.circuit.probing.as_ref() != Some(key) {
            return;
        }
        rt.circuit.failures += 1;
        rt.circuit.probing = None;
        if was_open || rt.circuit.failures >= rt.conf.circuit_failures {
            rt.circuit.open_until = now + rt.conf.circuit_probe.as_millis() as u64;
            if !was_open {
                log("ERROR", format!(
                    "route {name}: circuit open after {} failures in a row: sending nothing but one probe every {:?}; attempts due meanwhile wait for it",
                    rt.circuit.failures, rt.conf.circuit_probe
                ));
            }
            let e = self.circuit_entry(route);
            self.record(e);
        }
    }

    /// An attempt finished: the event delivered, due again, or dead-lettered.
    pub fn finished(&mut self, f: Finished) {
        let Finished {
            key,
            route,
            attempts,
            outcome,
        } = f;
        let now = now_ms();
        let rt = &mut self.routes[route];
        rt.running = rt.running.saturating_sub(1);
        rt.status.in_flight = rt.status.in_flight.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        if rt.conf.ordered {
            rt.busy = false;
        }
        self.circuit_hears(route, &key, outcome == Outcome::Delivered, now);
        let name = self.routes[route].conf.name.clone();
        if !self.tracked.contains_key(&key) {
            self.release_ordered(route);
            return;
        }
        let schedule = self.routes[route].conf.retry.len();
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
            } if (attempts as usize) <= schedule => {
                let delay = self
                    .jitter
                    .spread(self.routes[route].conf.retry[attempts as usize - 1]);
                let delay = after.map_or(delay, |a| delay.max(a.min(Duration::from_secs(86_400))));
                let due = now + delay.as_millis() as u64;
                let rt = &mut self.routes[route];
                rt.status.retried += 1;
                rt.status.retries_pending += 1;
                log("warn", format!(
                    "route {name}: event {key} attempt {attempts} failed ({}{error}); next in {:.1} s",
                    status.map(|s| format!("{s}: ")).unwrap_or_default(),
                    delay.as_secs_f64()
                ));
                self.record(Entry::Retry {
                    k: key.text.clone(),
                    r: name,
                    a: attempts,
                    due,
                });
                self.finish_route(&key, route, Done::Retry { attempts, due });
                self.schedule(key, route, attempts, due);
            }
            Outcome::Retry { status, error, .. } => {
                self.dead_letter(key, route, attempts, status, error, "exhausted")
            }
            Outcome::Fail { status, error } => {
                self.dead_letter(key, route, attempts, status, error, "refused")
            }
            Outcome::Redirect { status, location } => {
                self.routes[route].status.redirects += 1;
                let error = format!(
                    "redirect to {location} (answered {status}): not followed; fix the route's url"
                );
                self.dead_letter(key, route, attempts, Some(status), error, "redirect")
            }
        }
        self.release_ordered(route);
    }

    /// Gives the event up on this route: into the dead-letter file (or, when that cannot be
    /// written, due again in a minute rather than lost).
    fn dead_letter(
        &mut self,
        key: Key,
        route: usize,
        attempts: u32,
        status: Option<u16>,
        error: String,
        reason: &str,
    ) {
        let Some(event) = self.tracked.get(&key).map(|t| t.event.clone()) else {
            return;
        };
        let now = now_ms();
        let name = self.routes[route].conf.name.clone();
        let d = DeadLetter {
            route: name.clone(),
            attempts,
            reason: Some(reason.into()),
            last_status: status,
            last_error: error.clone(),
            time: up42webhooks::format_rfc3339((now / 1000) as i64),
            envelope: (*event).clone(),
        };
        let file = self.dead_letters.path().display().to_string();
        if let Err(e) = self.dead_letters.append(&d) {
            log(
                "error",
                format!("cannot write the dead-letter file {file}: {e}"),
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
        // Given up: another event of its transition may still go to the route.
        if let Some(t) = event.transition() {
            let id = (t, name.clone());
            if self.claims.get(&id).is_some_and(|(k, _)| *k == key.text) {
                self.claims.remove(&id);
                self.record(Entry::Unclaim { t: id.0, r: id.1 });
            }
        }
        self.routes[route].status.dead_lettered += 1;
        log("ERROR", format!(
            "route {name}: gave event {key} up after {attempts} attempts ({reason}: {}{error}): in the dead-letter file {file}",
            status.map(|s| format!("{s}: ")).unwrap_or_default(),
        ));
        self.record(Entry::Dead {
            k: key.text.clone(),
            r: name,
        });
        self.finish_route(&key, route, Done::Dead);
    }

    /// The key up to which everything read is done: what the receiver may be told.
    pub fn done_through(&self) -> Option<Key> {
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
    pub fn acknowledged(&mut self, upto: Key) {
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
    pub fn acknowledged_each(&mut self, keys: Vec<Key>) {
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
            let since = now_ms().saturating_sub(CLAIMS_KEPT_MS);
            self.claims.retain(|_, (_, at)| *at >= since);
            for ((t, r), (k, at)) in &self.claims {
                keep.push(Entry::Claim {
                    t: t.clone(),
                    r: r.clone(),
                    k: k.clone(),
                    at: *at,
                });
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

    /// Where the reading goes on: after the last key read.
    pub fn read_through(&self) -> Option<&Key> {
        self.read_through.as_ref()
    }

    pub fn publish(&self) {
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
            r.circuit = rt.circuit.describe().into();
            r.waiting_for_probe = rt.circuit.parked.len() as u64;
            r.consecutive_failures = rt.circuit.failures;
            s.routes.insert(rt.conf.name.clone(), r);
        }
    }
}
