//! Several receivers, one event log: two nginx receivers (their own prefixes and ports) on one
//! Redis (Debian's redis-server, started here on a free loopback port with its own directory and
//! the append-only file on), and Redis stopped and killed under load.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nginx::{free_port, http, json, now, Delivery, Server, Setup, SECRET};

/// redis-server in the foreground on 127.0.0.1:`port`, its data in `dir` (AOF, fsync always).
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start(name: &str) -> Redis {
        let dir = std::env::temp_dir().join(format!("up42wh-redis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port: free_port(),
            dir,
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        use std::os::unix::process::CommandExt;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--maxmemory-policy", "noeviction"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    /// kill -9, as a crash; the AOF stays.
    fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// redis-cli's raw output of one command.
    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The stream's entries: entry id -> the delivery id they were stored under.
    fn entries(&self) -> HashMap<String, String> {
        let out = self.cli(&["XRANGE", "up42webhooks", "-", "+"]);
        let lines: Vec<&str> = out.lines().collect();
        let mut map = HashMap::new();
        let mut i = 0;
        while i < lines.len() {
            let id = lines[i].to_string();
            assert!(id.contains('-'), "an entry id: {id}");
            i += 1;
            let mut delivery = None;
            while i + 1 < lines.len() && !is_entry_id(lines[i]) {
                if lines[i] == "id" {
                    delivery = Some(lines[i + 1].to_string());
                }
                i += 2;
            }
            assert!(map.insert(id, delivery.expect("an id field")).is_none());
        }
        map
    }
}

fn is_entry_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    }) && s.len() > 13
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A delivery answered 200: its id, its entry id, itself, and which receiver stored it.
type Answered = (String, String, Delivery, usize);

fn receiver(redis: &Redis) -> Server {
    Setup::default()
        .env("UP42_WEBHOOK_STORE", &redis.url())
        .start()
}

fn event(id: &str, status: &str) -> Vec<u8> {
    format!(
        r#"{{"event":"job.status","liveMode":false,"messageId":"{id}","timestamp":"{}","body":{{"jobId":"j-{id}","status":"{status}"}}}}"#,
        up42webhooks::format_rfc3339(now())
    )
    .into_bytes()
}

fn delivery(id: &str) -> Delivery {
    Delivery::signed(&event(id, "FAILED"), SECRET, now())
}

fn post(port: u16, d: &Delivery) -> Option<common::nginx::Response> {
    http(port, "POST", "/receive-webhooks", &d.header_refs(), &d.body)
}

#[test]
fn two_receivers_share_one_stream_and_one_dedup_memory() {
    let redis = Redis::start("two");
    let a = receiver(&redis);
    let b = receiver(&redis);
    let ports = [a.port, b.port];
    let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                for i in 0..125 {
                    let id = format!("two-{t}-{i}");
                    let d = delivery(&id);
                    let which = (t + i) % 2;
                    let r = post(ports[which], &d).expect("an answer");
                    assert_eq!(r.status, 200, "{}", r.text());
                    let key = json(&r)["key"].as_str().expect("an entry id").to_string();
                    answered.lock().unwrap().push((id, key, d, which));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 1000);
    let entries = redis.entries();
    assert_eq!(entries.len(), 1000, "every 200 is one entry");
    for (id, key, _, _) in &answered {
        assert_eq!(entries.get(key), Some(&format!("m:{id}")), "{key}");
    }
    // Either receiver's dump lists all of them.
    for srv in [&a, &b] {
        let (lines, n) = srv.dump("");
        assert_eq!((lines.len(), n), (1000, 1000));
    }
    // The same deliveries sent to the other receiver are duplicates; another body under a known
    // id is a conflict.
    for (_, _, d, which) in answered.iter().take(50) {
        let r = post(ports[1 - which], d).unwrap();
        assert!(r.text().contains("duplicate"), "{}", r.text());
    }
    let other = Delivery::signed(&event(&answered[0].0, "SUCCEEDED"), SECRET, now());
    let r = post(b.port, &other).unwrap();
    assert_eq!(
        (r.status, json(&r)["error"].as_str()),
        (409, Some("id_conflict"))
    );
    assert_eq!(redis.entries().len(), 1000, "nothing more stored");
    // Paging and acknowledgement go by entry ids, the same from either receiver.
    let (page, last) = a.dump_lines("?limit=10");
    let next = last["next"].as_str().expect("an entry id").to_string();
    assert_eq!(
        (page.len(), &next),
        (10, &answered_keys_sorted(&answered)[9])
    );
    let r = b.admin("POST", &format!("/ack-webhooks?upto={next}"), &[]);
    assert_eq!(json(&r)["acked"], 10, "{}", r.text());
    assert_eq!(a.dump("").1, 990);
    a.assert_clean_logs();
    b.assert_clean_logs();
}

/// The entry ids answered, in stream order.
fn answered_keys_sorted(answered: &[Answered]) -> Vec<String> {
    let mut keys: Vec<(u64, u64, String)> = answered
        .iter()
        .map(|(_, k, _, _)| {
            let (ms, seq) = k.split_once('-').unwrap();
            (ms.parse().unwrap(), seq.parse().unwrap(), k.clone())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, _, k)| k).collect()
}
