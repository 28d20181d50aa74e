//! 20,000 events through a sink that misbehaves at random as real endpoints do (5xx, 429, a
//! redirect the route retries, connections closed with no answer, slow answers), while the
//! forwarder is killed with kill -9 and the receiver restarted: nothing lost, nothing
//! dead-lettered (no outage outlasts the schedule), and every event that arrived twice was one the
//! forwarder said it was sending when it was killed.

use std::collections::{HashMap, HashSet};

use super::*;

const EVENTS: usize = 20_000;

/// The ids the sink answered 200 for, with how often.
fn delivered(sink: &Sink) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in sink.requests().iter().filter(|r| r.status == 200) {
        *n.entry(r.header("webhook-id").unwrap_or("").to_string())
            .or_default() += 1;
    }
    n
}

#[test]
fn twenty_thousand_events_through_chaos_kill_9_and_a_receiver_restart_lose_nothing() {
    let mut server = receiver();
    let sink = Sink::start(Answer::Chaos {
        seed: 0x5eed_cafe,
        good: 60,
    });
    let dir = scratch("chaos");
    let schedule = [
        "100ms", "200ms", "300ms", "500ms", "1s", "1s", "2s", "2s", "3s", "3s", "5s", "5s",
    ];
    let config = one_route(
        &dir,
        server.admin_port,
        sink.port,
        "",
        &format!(
            "concurrency = 32\nretry_statuses = [301]\ncircuit_failures = 8\ncircuit_probe = \"300ms\"\nretry = {schedule:?}"
        ),
    );
    let env = [("FORWARD_WHSEC", FORWARD_SECRET)];
    let mut fwd = Forwarder::start(&config, &env);
    let storing = store_from_threads(server.port, EVENTS, "chaos");
    // kill -9 mid-stream, and a new forwarder from the state log.
    until(300, "4,000 delivered", || delivered(&sink).len() >= 4_000);
    fwd.kill9();
    let first_log = fwd.log();
    let fwd = Forwarder::start(&config, &env);
    for th in storing {
        th.join().unwrap();
    }
    // The receiver restarted under the forwarder's reads and acknowledgements.
    until(300, "14,000 delivered", || delivered(&sink).len() >= 14_000);
    server.stop();
    std::thread::sleep(Duration::from_secs(1));
    server.restart();
    until(600, "every event delivered", || {
        delivered(&sink).len() >= EVENTS
    });
    let got = delivered(&sink);
    let want: HashSet<String> = (0..4)
        .flat_map(|th| (0..EVENTS / 4).map(move |i| format!("chaos-{th}-{i}")))
        .collect();
    let ids: HashSet<String> = got.keys().cloned().collect();
    assert_eq!(ids, want, "each event delivered, none other");
    // Twice only what was in flight at the kill: the new forwarder named each as it sent it again.
    let log = fwd.log();
    let twice: Vec<&String> = got
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(id, _)| id)
        .collect();
    let resent = log
        .matches("when the forwarder stopped: sending it again")
        .count();
    eprintln!(
        "chaos: {} requests for {EVENTS} events, {} delivered twice (sent again after kill -9: {resent})",
        sink.requests().len(),
        twice.len()
    );
    assert!(
        twice.len() <= resent && resent <= 32,
        "{twice:?}, {resent} resent"
    );
    assert!(
        !log.contains("gave event") && !first_log.contains("gave event"),
        "{log}"
    );
    let letters = std::fs::read_to_string(dir.join("state/dead-letter.jsonl")).unwrap_or_default();
    assert_eq!(letters, "", "no dead letter");
    // Every kind of fault happened.
    let statuses: HashSet<u16> = sink.requests().iter().map(|r| r.status).collect();
    for s in [0, 200, 301, 429, 500, 502, 503] {
        assert!(statuses.contains(&s), "no {s} among {statuses:?}");
    }
}
