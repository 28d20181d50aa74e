//! POST /learnt-webhooks on the admin listener: a status UP42 never delivered, learnt from its API
//! (`up42wh up42 reconcile`), stored as a delivery under its own sender and scheme, once per
//! transition, kept across a restart; refused on the public listener, from another site, and in
//! any other shape.

use serde_json::{json as j, Value};

use crate::common::nginx::{fresh, http, json, Server};
use up42webhooks::format_rfc3339;

fn learnt(order: &str, status: &str, at: i64) -> Vec<u8> {
    j!({
        "event": "order.status", "liveMode": true, "messageId": format!("order:{order}:{status}"),
        "timestamp": format_rfc3339(at),
        "body": {"orderId": order, "orderType": "ARCHIVE", "status": status, "statusIsFinal": true},
    })
    .to_string()
    .into_bytes()
}

fn post(srv: &Server, port: u16, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let r = http(port, "POST", "/learnt-webhooks", headers, body).expect("an answer");
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status < 500,
        "{} {}\n{}",
        r.status,
        r.text(),
        srv.error_log()
    );
    (r.status, v)
}

#[test]
fn statuses_learnt_from_the_api_are_stored_once_under_their_own_sender() {
    let mut srv = Server::start();
    let order = "86296865-9e91-4a16-9a3c-d4eaa584c03e";
    let now = crate::common::nginx::now();
    let body = learnt(order, "FULFILLED", now);
    let (status, v) = post(&srv, srv.admin_port, &body, &[]);
    assert_eq!(status, 200, "{v}");
    let key = v["key"].clone();
    assert!(key.is_number(), "{v}");

    // The same transition again, byte for byte (a second reconciler) or with its own timestamp:
    // stored once.
    let (status, v) = post(&srv, srv.admin_port, &body, &[]);
    assert_eq!(
        (status, v["msg"].as_str()),
        (200, Some("duplicate: already stored"))
    );
    let (status, v) = post(
        &srv,
        srv.admin_port,
        &learnt(order, "FULFILLED", now + 5),
        &[],
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("id_conflict")),
        "{v}"
    );
    // Another status of the same order is another transition.
    let (status, _) = post(
        &srv,
        srv.admin_port,
        &learnt(order, "FAILED_PERMANENTLY", now),
        &[],
    );
    assert_eq!(status, 200);

    // The dump shows it as UP42's event, its envelope saying where it comes from.
    let (lines, n) = srv.dump("?event=order.status&status=FULFILLED&meta=true");
    assert_eq!((lines.len(), n), (1, 1), "{lines:?}");
    let e: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(e["key"], key);
    assert_eq!(e["sender"], "up42-api");
    assert_eq!(e["scheme"], "learnt from UP42's API, not signed by UP42");
    assert_eq!(e["delivery_id"], format!("order:{order}:FULFILLED"), "{e}");
    assert_eq!(e["event"]["body"]["orderId"], order);

    // Counted under its own sender (the counters are this start's).
    let stats = json(&srv.admin_get("/stats"));
    assert_eq!(stats["counters"]["stored_from_up42-api"], 2, "{stats}");

    // Kept across a restart (the journal), and still known as stored.
    let master = srv.master_pid();
    srv.restart();
    assert_ne!(srv.master_pid(), master, "a new nginx");
    let (lines, _) = srv.dump("?event=order.status&status=FULFILLED");
    assert_eq!(lines.len(), 1);
    let (status, v) = post(&srv, srv.admin_port, &body, &[]);
    assert_eq!(
        (status, v["msg"].as_str()),
        (200, Some("duplicate: already stored"))
    );

    // A real delivery still goes its own way beside it.
    assert_eq!(srv.post(&fresh("a-real-one")).status, 200);

    // What is refused, and why.
    let wrong_id = String::from_utf8(body.clone())
        .unwrap()
        .replace(&format!("order:{order}:FULFILLED"), "any-id");
    for (bad, why) in [
        (wrong_id.into_bytes(), "invalid_learnt_event"),
        (b"[1]".to_vec(), "invalid_learnt_event"),
        (b"{".to_vec(), "invalid_learnt_event"),
        (
            j!({"event": "job.status", "messageId": "job:x:FAILED", "body": {"status": "FAILED"}})
                .to_string()
                .into_bytes(),
            "invalid_learnt_event",
        ),
        (
            learnt("../../etc", "FULFILLED", now),
            "invalid_learnt_event",
        ),
        // Too old for the replay horizon, as a delivery would be (400: the admin's request is
        // at fault, no signature of UP42's is involved).
        (learnt(order, "CANCELED", now - 30 * 86400), "stale"),
    ] {
        let (status, v) = post(&srv, srv.admin_port, &bad, &[]);
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(why)),
            "{}: {v}",
            String::from_utf8_lossy(&bad)
        );
    }
    let r = srv.admin("GET", "/learnt-webhooks", &[]);
    assert_eq!(r.status, 405);
    // From another site's page: refused before anything is read.
    let (status, _) = post(
        &srv,
        srv.admin_port,
        &learnt(order, "RUNNING", now),
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(status, 403);
    // Not on the public listener.
    let (status, v) = post(&srv, srv.port, &learnt(order, "RUNNING", now), &[]);
    assert_eq!((status, v["error"].as_str()), (404, Some("admin_only")));
    let (_, n) = srv.dump("");
    assert_eq!(n, 3, "two learnt, one delivered");
    srv.assert_clean_logs();
}

/// With Redis as the store: stored in the stream, once, under its own sender; two receivers on
/// one stream (two places) store a transition once.
#[test]
fn learnt_statuses_on_redis_are_stored_once_across_receivers() {
    let redis = crate::common::redis::Redis::start("learnt");
    let start = || {
        crate::common::nginx::Setup::default()
            .env("UP42_WEBHOOK_STORE", &redis.url())
            .start()
    };
    let (a, b) = (start(), start());
    let order = "0a1b2c3d-0000-4000-8000-00000000000a";
    let body = learnt(order, "FULFILLED", crate::common::nginx::now());
    let (status, v) = post(&a, a.admin_port, &body, &[]);
    assert_eq!(status, 200, "{v}");
    assert!(v["key"].is_string(), "a stream entry id: {v}");
    let (status, v) = post(&b, b.admin_port, &body, &[]);
    assert_eq!(
        (status, v["msg"].as_str()),
        (200, Some("duplicate: already stored"))
    );
    let (lines, n) = b.dump("?meta=true");
    assert_eq!(n, 1, "{lines:?}");
    let e: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(e["sender"], "up42-api");
    a.assert_clean_logs();
    b.assert_clean_logs();
}
