//! The forwarder's loop: one task owns the state (forwarder.rs) and hears of pages read, attempts
//! finished, acknowledgements, the clock and the signals. Reading and acknowledging each run as a
//! task of their own, one at a time; when the receiver (or Redis) does not answer, each is tried
//! again after pauses that double from 0.5 s up to `retry_max`, and an answer to either ends both
//! pauses.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::Config;
use super::event::Key;
use super::forwarder::{Forwarder, RouteRt, Start};
use super::log::log;
use super::metrics::{self, Shared, Status};
use super::reader::{Acked, Reader};
use super::redis_source::RedisReader;
use super::sinks::http;
use super::source::{Page, Source};
use super::state::{Done, State};
use super::Error;
use crate::clock::now_ms;

/// Pauses that double from 0.5 s up to a bound.
struct Backoff {
    pause: Duration,
    max: Duration,
    not_before: Instant,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            pause: Duration::from_millis(500),
            max,
            not_before: Instant::now(),
        }
    }
    fn failed(&mut self) -> Duration {
        let p = self.pause;
        self.not_before = Instant::now() + p;
        self.pause = (p * 2).min(self.max);
        p
    }
    fn reset(&mut self) {
        self.pause = Duration::from_millis(500).min(self.max);
        self.not_before = Instant::now();
    }
    fn ready(&self) -> bool {
        Instant::now() >= self.not_before
    }
}

/// An acknowledgement's outcome; a failed XACK gives its keys back, to be sent again.
type AckResult = Result<Acked, (Error, Vec<Key>)>;

/// The loop's own state beside the forwarder's.
struct Loop {
    source: Arc<Reader>,
    page_tx: mpsc::Sender<Result<Page, Error>>,
    ack_tx: mpsc::Sender<AckResult>,
    reading: bool,
    read: Backoff,
    first_page: bool,
    /// Whether the start's line was logged.
    told: bool,
    acking: bool,
    ack: Backoff,
    last_touch: Instant,
    stopping: Option<Instant>,
}

async fn open_source(conf: &Config) -> Result<Reader, Error> {
    Ok(match &conf.redis {
        None => Reader::Admin(Source::new(conf.receiver.clone())?),
        Some(r) => Reader::Redis(Box::new(
            RedisReader::connect(
                r.clone(),
                conf.receiver.consumer.clone(),
                conf.receiver.page,
            )
            .await?,
        )),
    })
}

/// The state log read, the status served, the routes as the log left their circuits.
async fn start_forwarder(
    conf: Config,
    each: bool,
    done_tx: mpsc::UnboundedSender<super::forwarder::Finished>,
) -> Result<(Forwarder, usize), Error> {
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
        let sinks = conf
            .routes
            .iter()
            .map(|r| (r.name.clone(), r.sink.clone()))
            .collect();
        metrics::serve(addr, status.clone(), sinks).await?;
    }
    let routes = conf
        .routes
        .iter()
        .map(|r| RouteRt::new(r, loaded.circuits.get(&r.name).copied().unwrap_or((0, 0))))
        .collect();
    let resumed = loaded
        .routes
        .values()
        .filter(|d| matches!(d, Done::Retry { .. }))
        .count();
    let start = Start {
        routes: loaded.routes,
        position: loaded.position,
        claims: loaded.claims,
        status,
        done_tx,
        each,
    };
    Ok((Forwarder::new(conf, state, routes, start), resumed))
}

fn started(f: &Forwarder, resumed: usize) {
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
            resumed
        ),
    );
}

impl Loop {
    /// Reads on while the window has room and nothing stops it.
    fn read_more(&mut self, f: &Forwarder) {
        if self.reading
            || self.stopping.is_some()
            || f.tracked.len() >= f.conf.receiver.in_flight
            || !self.read.ready()
        {
            return;
        }
        self.reading = true;
        let (source, tx) = (self.source.clone(), self.page_tx.clone());
        // The first page starts at the receiver's position for this consumer; then after what was
        // read.
        let first = self.first_page;
        let since = if first {
            None
        } else {
            f.read_through().cloned()
        };
        tokio::spawn(async move {
            let _ = tx.send(source.page(since, first).await).await;
        });
    }

    /// A page came: taken, or the reading paused. A configuration error at the first read (the
    /// consumer not declared, a token refused) ends the program.
    fn page(
        &mut self,
        f: &mut Forwarder,
        page: Result<Page, Error>,
        resumed: usize,
    ) -> Result<(), Error> {
        self.reading = false;
        match page {
            Ok(p) => {
                self.tell_start(f, resumed);
                self.first_page = false;
                self.read.reset();
                // The receiver answers: an acknowledgement waiting for it goes now.
                self.ack.reset();
                f.take(p);
            }
            Err(e) => {
                if e.exit_code() == 2 && self.first_page {
                    return Err(e);
                }
                self.tell_start(f, resumed);
                let pause = self.read.failed();
                log(
                    "warn",
                    format!("{e}; reading again in {:.1} s", pause.as_secs_f64()),
                );
            }
        }
        Ok(())
    }

    /// The start's log line, once: after the first read answered or failed (a configuration error
    /// there is the only line), or at once with Redis.
    fn tell_start(&mut self, f: &Forwarder, resumed: usize) {
        if !self.told {
            self.told = true;
            started(f, resumed);
        }
    }

    fn acked(&mut self, f: &mut Forwarder, ack: AckResult) {
        self.acking = false;
        match ack {
            Ok(a) => {
                self.ack.reset();
                self.read.reset();
                match a {
                    Acked::Through(k) => f.acknowledged(k),
                    Acked::Each(keys) => f.acknowledged_each(keys),
                }
            }
            Err((e, keys)) => {
                let pause = self.ack.failed();
                log(
                    "warn",
                    format!(
                        "{e}; the acknowledgement is sent again in {:.1} s",
                        pause.as_secs_f64()
                    ),
                );
                if let Some(f) = f.finished_keys.as_mut() {
                    f.extend(keys);
                }
            }
        }
    }

    /// Tells the receiver (or Redis) what is done, one acknowledgement at a time.
    fn acknowledge(&mut self, f: &mut Forwarder) {
        if self.acking || !self.ack.ready() {
            return;
        }
        let (source, tx) = (self.source.clone(), self.ack_tx.clone());
        match &*self.source {
            Reader::Admin(_) => {
                let Some(k) = f.done_through() else { return };
                if f.acked.as_ref().is_some_and(|a| k <= *a) {
                    return;
                }
                self.acking = true;
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
            Reader::Redis(r) => {
                let pending = f.finished_keys.as_mut().expect("kept with Redis");
                let done: Vec<Key> = pending.drain(..pending.len().min(1000)).collect();
                if !done.is_empty() {
                    self.acking = true;
                    tokio::spawn(async move {
                        let Reader::Redis(r) = &*source else { return };
                        let res = match r.ack(&done).await {
                            Ok(()) => Ok(Acked::Each(done)),
                            Err(e) => Err((e, done)),
                        };
                        let _ = tx.send(res).await;
                    });
                } else if self.last_touch.elapsed() >= r.claim_idle() / 3 {
                    // What is still being worked on stays this forwarder's.
                    self.last_touch = Instant::now();
                    let open: Vec<Key> = f.tracked.keys().cloned().collect();
                    if !open.is_empty() {
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

    /// Whether a stop is complete: nothing in flight (or handed back after stop_timeout) and no
    /// acknowledgement on its way.
    fn stopped(&self, f: &mut Forwarder) -> bool {
        let Some(since) = self.stopping else {
            return false;
        };
        let handed_back = f.in_flight > 0 && since.elapsed() > f.conf.stop_timeout;
        if !((f.in_flight == 0 || handed_back) && !self.acking) {
            return false;
        }
        if handed_back {
            log(
                "warn",
                format!(
                "{} attempts still running after {:?}: handed back, due again at the next start",
                f.in_flight, f.conf.stop_timeout
            ),
            );
        }
        f.publish();
        let _ = f.state.sync();
        log("info", "stopped");
        true
    }
}

/// Runs until SIGTERM or SIGINT: then reads and starts nothing more, lets the attempts in flight
/// finish (for up to stop_timeout, 10 s; those still running are handed back: due again at the
/// next start), tells the receiver where it got to and syncs the state log.
pub async fn forward(conf: Config) -> Result<(), Error> {
    http::client()?;
    let source = Arc::new(open_source(&conf).await?);
    let retry_max = conf.receiver.retry_max;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let each = matches!(*source, Reader::Redis(_));
    let (mut f, resumed) = start_forwarder(conf, each, done_tx).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::run(format!("cannot catch SIGTERM: {e}")))?;
    let (page_tx, mut page_rx) = mpsc::channel(1);
    let (ack_tx, mut ack_rx) = mpsc::channel(1);
    let mut l = Loop {
        source,
        page_tx,
        ack_tx,
        reading: false,
        read: Backoff::new(retry_max),
        first_page: true,
        told: false,
        acking: false,
        ack: Backoff::new(retry_max),
        last_touch: Instant::now(),
        stopping: None,
    };
    if each {
        // Redis: nothing to refuse at the first read, which may wait for an entry.
        l.tell_start(&f, resumed);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        l.read_more(&f);
        // A stop starts nothing new.
        let next_due = if l.stopping.is_none() {
            f.start_due()
        } else {
            None
        };
        let sleep = next_due.map_or(Duration::from_secs(3600), |d| {
            Duration::from_millis(d.saturating_sub(now_ms()))
        });
        tokio::select! {
            Some(page) = page_rx.recv() => l.page(&mut f, page, resumed)?,
            Some(done) = done_rx.recv() => f.finished(done),
            Some(ack) = ack_rx.recv() => l.acked(&mut f, ack),
            _ = tokio::time::sleep(sleep) => {}
            _ = tick.tick() => f.publish(),
            _ = term.recv(), if l.stopping.is_none() => {
                log("info", format!("SIGTERM: finishing the {} attempts in flight (at most {:?})", f.in_flight, f.conf.stop_timeout));
                l.stopping = Some(Instant::now());
            }
            _ = tokio::signal::ctrl_c(), if l.stopping.is_none() => {
                log("info", format!("SIGINT: finishing the {} attempts in flight (at most {:?})", f.in_flight, f.conf.stop_timeout));
                l.stopping = Some(Instant::now());
            }
        }
        l.acknowledge(&mut f);
        if l.stopped(&mut f) {
            return Ok(());
        }
    }
}
