//! `up42wh up42 download` against the stand-in's orders, assets and storage host (standin.py):
//! every asset of the order, verified, under its name; a manifest last; cuts resumed with Range
//! (the wire carries the file about once), a corrupted byte and a short answer fetched again, an
//! expired URL and a 503 retried with a fresh URL; never an Authorization header at the storage
//! host; a second run transfers nothing; an order not fulfilled waits or says so; kill -9 in the
//! middle, then a rerun that resumes; a full disk is one line and nothing under a final name.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use md5::Digest;
use serde_json::{json, Value};

use super::World;
use crate::common::Scratch;

/// Bytes that do not repeat (xorshift), `n` of them.
pub(crate) fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An asset of the stand-in: its file written, its x-goog-hash computed.
pub(crate) fn asset(dir: &Path, id: &str, name: &str, content: &[u8]) -> Value {
    let path = dir.join(format!("object-{id}"));
    std::fs::write(&path, content).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let crc = crc32c::crc32c(content).to_be_bytes();
    let md5 = md5::Md5::digest(content);
    json!({
        "id": id,
        "name": name,
        "size": content.len(),
        "path": path,
        "hash": format!("crc32c={},md5={}", b64.encode(crc), b64.encode(md5)),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn uuid(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-00000000{n:04x}")
}

fn set_orders(w: &World, orders: &Value) {
    std::fs::write(&w.standin.orders, orders.to_string()).unwrap();
}

fn storage_faults(w: &World, lines: &str) {
    std::fs::write(w.standin.log.with_extension("jsonl.storage"), lines).unwrap();
}

fn storage_log(w: &World) -> Vec<Value> {
    w.standin
        .log()
        .into_iter()
        .filter(|e| e["storage"].is_string())
        .collect()
}

/// A signed URL of `asset`, asked for with `bearer` (an Authorization header line).
fn signed_url(w: &World, bearer: &str, asset: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", "--cacert"])
        .arg(&w.ca)
        .args([
            "-H",
            bearer,
            "-H",
            "Content-Type: application/json",
            "-d",
            "{}",
        ])
        .arg(format!(
            "https://127.0.0.1:{}/v2/assets/{asset}/download-url",
            w.standin.port
        ))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["url"].as_str().unwrap().to_string()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A test's world (tokens living `token_life` s) with two folders of its own: the stand-in's
/// objects and where the program downloads.
fn world(name: &str, token_life: u32) -> (World, Scratch, Scratch) {
    let w = World::new(name, token_life);
    let data = scratch_dir(&format!("{name}-objects"));
    let to = scratch_dir(&format!("{name}-to"));
    (w, data, to)
}

fn scratch_dir(name: &str) -> crate::common::Scratch {
    super::scratch(name)
}

#[test]
fn an_order_arrives_verified_whole_and_once_through_cuts_corruption_and_expiry() {
    let (mut w, data, to) = world("download", 300);
    let order = uuid(1);
    let contents = [
        bytes(1, 3 * 1024 * 1024),
        bytes(2, 1024 * 1024 + 7),
        bytes(3, 100 * 1024),
    ];
    let names = ["scene-a.zip", "scene-b.zip", "metadata.zip"];
    let assets: Vec<Value> = (0..3)
        .map(|i| asset(&data, &uuid(10 + i as u8), names[i], &contents[i]))
        .collect();
    // Another order's asset whose name holds this order's id: search finds it, the filter drops it.
    let decoy = asset(&data, &uuid(20), &format!("{order}-copy.zip"), b"decoy");
    set_orders(
        &w,
        &json!({
            order.clone(): {"status": "FULFILLED", "assets": assets},
            uuid(2): {"status": "FULFILLED", "assets": [decoy]},
        }),
    );
    // In this order: an expired URL, a 503, two cuts, a URL that expired meanwhile, a flipped
    // byte, a short answer.
    storage_faults(
        &w,
        "expired 1\nstatus 503 1 1\ncut 700000 2\nexpired 1\ncorrupt 1\nshort 1\n",
    );
    let to_s = to.to_str().unwrap();
    let (code, out) = w.run(
        &[
            "download",
            "--order",
            &order,
            "--to",
            to_s,
            "--parallel",
            "2",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("order {order} complete: 3 assets")),
        "{out}"
    );
    assert!(out.contains("does not verify"), "{out}");
    let folder = to.join(&order);
    for (i, name) in names.iter().enumerate() {
        assert!(
            std::fs::read(folder.join(name)).unwrap() == contents[i],
            "{name}: not the asset's bytes"
        );
    }
    assert_eq!(
        files_under(&folder),
        [
            ".lock",
            "manifest.json",
            "metadata.zip",
            "scene-a.zip",
            "scene-b.zip"
        ]
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["order"], order.as_str());
    let listed = manifest["assets"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (i, name) in names.iter().enumerate() {
        let m = listed.iter().find(|a| a["name"] == *name).unwrap();
        assert_eq!(m["id"], uuid(10 + i as u8).as_str());
        assert_eq!(m["size"], contents[i].len());
        assert_eq!(m["md5"], hex(&md5::Md5::digest(&contents[i])).as_str());
        assert_eq!(
            m["crc32c"],
            hex(&crc32c::crc32c(&contents[i]).to_be_bytes()).as_str()
        );
    }
    let requests = storage_log(&w);
    assert!(requests.iter().all(|r| r["authorization"] == false));
    assert!(requests
        .iter()
        .any(|r| r["range"].as_str().is_some_and(|r| r.starts_with("bytes="))));
    assert!(requests
        .iter()
        .all(|r| !r["storage"].as_str().unwrap().contains(&uuid(20))));
    // A fresh URL for every request of the storage host.
    let urls = w
        .standin
        .log()
        .iter()
        .filter(|e| e["download_url"].is_string())
        .count();
    assert_eq!(urls, requests.len());
    // No fault left unused: each was met, and recovered from.
    assert_eq!(
        std::fs::read_to_string(w.standin.log.with_extension("jsonl.storage")).unwrap(),
        ""
    );
    // An Authorization header on a signed URL: the storage host refuses it, as GCS does.
    let token = w.token(&[]);
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    let url = signed_url(&w, &bearer, &uuid(10));
    let refused = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&w.ca)
        .args(["-H", &bearer])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "400");

    // Again: nothing transferred, the same manifest's files.
    let before = storage_log(&w).len();
    let (code, out) = w.run(&["download", "--order", &order, "--to", to_s], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("(complete before)").count(), 3, "{out}");
    assert!(out.contains("(0 received now)"), "{out}");
    assert_eq!(storage_log(&w).len(), before);

    // A big asset cut every 512 KiB: resumed each time from where it stopped, so the wire
    // carries it about once (at most 1.15 times its size).
    let big = uuid(3);
    let content = bytes(4, 5 * 1024 * 1024);
    let mut orders: Value =
        serde_json::from_slice(&std::fs::read(&w.standin.orders).unwrap()).unwrap();
    orders[&big] =
        json!({"status": "FULFILLED", "assets": [asset(&data, &uuid(30), "big.zip", &content)]});
    set_orders(&w, &orders);
    storage_faults(&w, "cut 524288 9\n");
    let before = storage_log(&w).len();
    let (code, out) = w.run(&["download", "--order", &big, "--to", to_s], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("resumed 9 times"), "{out}");
    assert_eq!(
        std::fs::read(to.join(&big).join("big.zip")).unwrap(),
        content
    );
    let sent: u64 = storage_log(&w)[before..]
        .iter()
        .map(|r| r["sent"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        sent as f64 <= 1.15 * content.len() as f64,
        "{sent} bytes on the wire for {}",
        content.len()
    );

    // Ids from the command line go into URL paths and a folder: only UUID-like ones.
    let (code, out) = w.run(&["download", "--order", "../etc", "--to", to_s], &[]);
    assert_eq!(code, 2, "{out}");
    // An order UP42 does not know: its 404, one line.
    let (code, out) = w.run(&["download", "--order", &uuid(99), "--to", to_s], &[]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("no such order or asset"), "{out}");
    w.assert_nothing_secret_printed(&[]);
}

#[test]
fn an_order_is_waited_for_a_killed_download_resumes_and_a_full_disk_is_one_line() {
    let (mut w, data, to) = world("download-wait", 300);
    let to_s = to.to_str().unwrap().to_string();
    let order = uuid(4);
    let content = bytes(5, 4 * 1024 * 1024);
    let a = asset(&data, &uuid(40), "scene.zip", &content);
    set_orders(
        &w,
        &json!({order.clone(): {"status": "BEING_FULFILLED", "assets": [a]}}),
    );

    // Not fulfilled: exit 8 and its status, at once.
    let (code, out) = w.run(&["download", "--order", &order, "--to", &to_s], &[]);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("is BEING_FULFILLED, not FULFILLED"), "{out}");
    assert!(!to.join(&order).exists());

    // With --wait: it asks until FULFILLED. The order turns so once the program has asked.
    let asked = |w: &World| {
        w.standin
            .log()
            .iter()
            .filter(|e| e["path"].as_str() == Some(&format!("/v2/orders/{order}")))
            .count()
    };
    let before = asked(&w);
    // Slow, so that the download can be killed in the middle (1 MB/s).
    storage_faults(&w, "slow 1000000\n");
    let mut child = w
        .command(
            &[
                "download", "--order", &order, "--to", &to_s, "--wait", "60s", "--poll", "1s",
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while asked(&w) <= before + 1 {
        assert!(Instant::now() < deadline, "the program asks again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut orders: Value =
        serde_json::from_slice(&std::fs::read(&w.standin.orders).unwrap()).unwrap();
    orders[&order]["status"] = json!("FULFILLED");
    set_orders(&w, &orders);

    // kill -9 once a part of a MB is there: nothing under the final name.
    let part = to.join(&order).join("scene.zip.part");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 1_000_000 {
        assert!(Instant::now() < deadline, "the part grows");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(!to.join(&order).join("scene.zip").exists());
    assert!(!to.join(&order).join("manifest.json").exists());
    let kept = std::fs::metadata(&part).unwrap().len();

    // The rerun continues from the part.
    storage_faults(&w, "");
    let (code, out) = w.run(&["download", "--order", &order, "--to", &to_s], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("resumed once"), "{out}");
    assert!(std::fs::read(to.join(&order).join("scene.zip")).unwrap() == content);
    // (The killed try's entry may come after it: the stand-in logs an answer when it ends.)
    let ranges: Vec<Value> = storage_log(&w).iter().map(|r| r["range"].clone()).collect();
    assert!(
        ranges.contains(&json!(format!("bytes={kept}-"))),
        "{kept}: {ranges:?}"
    );

    // A disk that fills up: exit 9 naming the path; nothing under a final name.
    let Some(small) = crate::common::SmallDisk::mount("download-full", "2m") else {
        eprintln!("no tmpfs (not root): the full disk is not tried here");
        return;
    };
    let small_s = small.path().to_str().unwrap().to_string();
    let (code, out) = w.run(&["download", "--order", &order, "--to", &small_s], &[]);
    assert_eq!(code, 9, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            "the disk is full at {}",
            small.path().join(&order).display()
        )),
        "{out}"
    );
    assert!(!small.path().join(&order).join("scene.zip").exists());
    assert!(!small.path().join(&order).join("manifest.json").exists());
}

/// End to end: UP42 (the stand-in) notifies `order.status` FULFILLED over HTTPS to the receiver,
/// signed with the secret `up42 connect` gave it; `up42wh forward`'s up42-download route reads it
/// and fetches the order; the files match; a second notification of the same order (UP42 may
/// send one again) is the same transition: not sent to the route again, nothing fetched.
#[test]
fn a_fulfilled_order_notified_by_up42_is_downloaded_by_the_forwarder() {
    let mut w = World::with_receiver_env(
        "download-e2e",
        300,
        &[("UP42_WEBHOOK_CONSUMERS", "forward")],
    );
    let url = w.url();
    let (code, out) = w.run(
        &["connect", "--url", &url],
        &[("UP42_WEBHOOK_SECRET", crate::common::nginx::SECRET)],
    );
    assert_eq!(code, 0, "{out}");
    let data = scratch_dir("download-e2e-objects");
    let order = uuid(5);
    let contents = [bytes(6, 2 * 1024 * 1024 + 3), bytes(7, 50_000)];
    let assets: Vec<Value> = (0..2)
        .map(|i| {
            asset(
                &data,
                &uuid(50 + i as u8),
                &format!("part-{i}.zip"),
                &contents[i],
            )
        })
        .collect();
    set_orders(
        &w,
        &json!({order.clone(): {"status": "FULFILLED", "assets": assets}}),
    );

    let dir = scratch_dir("download-e2e-forward");
    let config = dir.join("forward.toml");
    let metrics = crate::common::nginx::free_port();
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\nmetrics = \"127.0.0.1:{metrics}\"\n[receiver]\nurl = \"{}\"\nconsumer = \"forward\"\n\n[[route]]\nname = \"download\"\nsink = \"up42-download\"\nto = \"orders\"\nretry = [\"1s\"]\n",
            w.receiver()
        ),
    )
    .unwrap();
    let api = format!("https://127.0.0.1:{}", w.standin.port);
    let err = dir.join("forward.err");
    let mut cmd = w.up42wh(&["forward", "--config", config.to_str().unwrap()]);
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _fwd = Kill(cmd.spawn().unwrap());
    let notify = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "--cacert"])
            .arg(&w.ca)
            .arg(format!("{api}/_standin/notify/{order}"))
            .output()
            .unwrap();
        let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            sent["sent"][0]["response"],
            format!("HttpResponse[{url}, 200 OK]").as_str(),
            "{sent}"
        );
    };
    notify();
    let manifest = dir.join("orders").join(&order).join("manifest.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !manifest.exists() {
        assert!(
            Instant::now() < deadline,
            "the order arrives: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, c) in contents.iter().enumerate() {
        let got = std::fs::read(
            dir.join("orders")
                .join(&order)
                .join(format!("part-{i}.zip")),
        );
        assert!(got.unwrap() == *c, "part-{i}.zip");
    }
    let before = storage_log(&w).len();
    notify();
    let log = || std::fs::read_to_string(&err).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The same transition again: the forwarder does not send it to the route a second time.
    while !log().contains(&format!(
        "is order:{order}:FULFILLED, which the route has as event"
    )) {
        assert!(Instant::now() < deadline, "the second event: {}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(storage_log(&w).len(), before, "nothing fetched again");

    // forward status and /metrics count the downloads: the two assets once, their bytes.
    let total: usize = contents.iter().map(Vec::len).sum();
    let status = std::process::Command::new(crate::common::up42wh())
        .args(["forward", "--config"])
        .arg(&config)
        .arg("status")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains(&format!(
            "  downloads: 0 in flight, {total} bytes received, 2 completed, 0 failed"
        )),
        "{status}"
    );
    let scraped = crate::common::nginx::http(metrics, "GET", "/metrics", &[], b"").unwrap();
    assert!(
        scraped
            .text()
            .contains("up42wh_forward_download_bytes_total{route=\"download\"} ")
            && scraped.text().contains(&format!(
                "up42wh_forward_download_bytes_total{{route=\"download\"}} {total}\n"
            )),
        "{}",
        scraped.text()
    );
}

/// The figures of README "Get the imagery", not run by `cargo test`: `make bench-download` runs it
/// against the release build. A 1 GiB asset from the stand-in's storage host (Python's HTTPS server
/// on 127.0.0.1, the same for both): `up42wh up42 download` (hashes and fsync included) against
/// `curl -o` on a signed URL of the same object, and the program's peak RSS. It prints what it
/// measures; it asserts only that the file arrived whole.
#[test]
#[ignore]
fn bench_download_1gib_against_curl() {
    let (mut w, data, to) = world("bench-download", 3600);
    let mib: usize = std::env::var("MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    // A MiB of bytes that do not repeat, written `mib` times, each copy with its index in front.
    let block = bytes(9, 1024 * 1024);
    let path = data.join("object-big");
    let (mut crc, mut md5) = (0u32, md5::Md5::new());
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..mib {
            let mut b = block.clone();
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            crc = crc32c::crc32c_append(crc, &b);
            md5.update(&b);
            f.write_all(&b).unwrap();
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let size = mib * 1024 * 1024;
    let order = uuid(6);
    set_orders(
        &w,
        &json!({order.clone(): {"status": "FULFILLED", "assets": [{
            "id": uuid(60), "name": "big.zip", "size": size, "path": path,
            "hash": format!("crc32c={},md5={}", b64.encode(crc.to_be_bytes()), b64.encode(md5.finalize())),
        }]}}),
    );
    // The source's own writeback must not land on the first run's disk time.
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    let to_s = to.to_str().unwrap().to_string();
    let token = w.token(&["scope=openid"]);
    let bearer = format!(
        "Authorization: Bearer {}",
        token["access_token"].as_str().unwrap()
    );
    let copy = data.join("curl-copy");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut ours, mut curl, mut curl_synced, mut rss_mib) = (vec![], vec![], vec![], 0.0);
    for round in 0..rounds {
        // Each run starts with nothing of the other's left to write back.
        // SAFETY: sync takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let t = Instant::now();
        let (code, out) = w.run(&["download", "--order", &order, "--to", &to_s], &[]);
        ours.push(t.elapsed());
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            std::fs::metadata(to.join(&order).join("big.zip"))
                .unwrap()
                .len(),
            size as u64
        );
        if round == 0 {
            // The peak RSS of the children waited for so far: the program is the only one.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage fills the struct it is given.
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
            rss_mib = usage.ru_maxrss as f64 / 1024.0;
        }
        std::fs::remove_dir_all(to.join(&order)).unwrap();
        unsafe { libc::sync() };
        // curl on a signed URL of the same object (asked for with a token, as the program does).
        let url = signed_url(&w, &bearer, &uuid(60));
        let t = Instant::now();
        let status = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&w.ca)
            .arg("-o")
            .arg(&copy)
            .arg(&url)
            .status()
            .unwrap();
        curl.push(t.elapsed());
        assert!(status.success());
        // What curl's copy takes to be on disk, as the program's is when it ends.
        std::fs::File::open(&copy).unwrap().sync_all().unwrap();
        curl_synced.push(t.elapsed());
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), size as u64);
        std::fs::remove_file(&copy).unwrap();
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (ours, curl, curl_synced) = (
        median(&mut ours),
        median(&mut curl),
        median(&mut curl_synced),
    );
    let rate = |d: Duration| size as f64 / 1048576.0 / d.as_secs_f64();
    eprintln!(
        "{mib} MiB, median of {rounds}: up42wh up42 download {:.2} s ({:.0} MiB/s, peak RSS {rss_mib:.1} MiB); curl -o {:.2} s ({:.0} MiB/s): {:.2} times curl's rate; curl -o then fsync {:.2} s ({:.0} MiB/s): {:.2} times",
        ours.as_secs_f64(),
        rate(ours),
        curl.as_secs_f64(),
        rate(curl),
        curl.as_secs_f64() / ours.as_secs_f64(),
        curl_synced.as_secs_f64(),
        rate(curl_synced),
        curl_synced.as_secs_f64() / ours.as_secs_f64(),
    );
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&to);
}

/// A ZIP archive (Python's zipfile makes them) of this content: (name, bytes).
fn zip_of(path: &Path, entries: &[(&str, &str)]) -> Vec<u8> {
    let script = "import sys, zipfile, json\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nfor n, d in json.loads(sys.argv[2]):\n    z.writestr(zipfile.ZipInfo(n), d)\nz.close()\n";
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(serde_json::to_string(entries).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// --extract: a verified archive unpacked beside it (the manifest names the folder); one whose
/// entry would leave the folder refused whole (exit 11), the archive itself kept, verified.
#[test]
fn archives_are_unpacked_beside_them_or_refused_whole() {
    let (mut w, data, to) = world("download-extract", 300);
    let to_s = to.to_str().unwrap().to_string();
    let good = zip_of(
        &data.join("good.zip"),
        &[("scene/band1.tif", "one"), ("metadata.json", "{}")],
    );
    let evil = zip_of(&data.join("evil.zip"), &[("../../escaped", "x")]);
    let (fine, bad) = (uuid(7), uuid(8));
    set_orders(
        &w,
        &json!({
            fine.clone(): {"status": "FULFILLED", "assets": [asset(&data, &uuid(70), "scene.zip", &good)]},
            bad.clone(): {"status": "FULFILLED", "assets": [asset(&data, &uuid(80), "evil.zip", &evil)]},
        }),
    );
    let (code, out) = w.run(
        &["download", "--order", &fine, "--to", &to_s, "--extract"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let folder = to.join(&fine);
    assert_eq!(
        std::fs::read_to_string(folder.join("scene/scene/band1.tif")).unwrap(),
        "one"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("scene/metadata.json")).unwrap(),
        "{}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["assets"][0]["unpacked_to"], "scene");

    let (code, out) = w.run(
        &["download", "--order", &bad, "--to", &to_s, "--extract"],
        &[],
    );
    assert_eq!(code, 11, "{out}");
    assert!(out.contains("would leave its folder"), "{out}");
    assert!(std::fs::read(to.join(&bad).join("evil.zip")).unwrap() == evil);
    assert_eq!(files_under(&to.join(&bad)), [".lock", "evil.zip"]);
    assert!(!to.join("escaped").exists() && !data.join("escaped").exists());
}

/// On a terminal (a pseudo-terminal from `script`) a bar shows the order's bytes as they arrive;
/// elsewhere (every other test here) only each asset's line.
#[test]
fn on_a_terminal_a_progress_bar_shows_the_bytes() {
    let (w, data, to) = world("download-bar", 300);
    let order = uuid(9);
    let content = bytes(10, 2 * 1024 * 1024);
    set_orders(
        &w,
        &json!({order.clone(): {"status": "FULFILLED", "assets": [asset(&data, &uuid(90), "bar.zip", &content)]}}),
    );
    // About two seconds of transfer: the bar is drawn several times.
    storage_faults(&w, "slow 1000000\n");
    let inner = w.command(
        &["download", "--order", &order, "--to", to.to_str().unwrap()],
        &[],
    );
    let line = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = std::process::Command::new("script");
    c.args(["-qefc", &line, "/dev/null"]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 in flight, 0 done"), "{text}");
    assert!(text.contains("/2.00 MiB"), "{text}");
    assert!(text.contains("bar.zip: 2097152 bytes, verified"), "{text}");
    assert!(std::fs::read(to.join(&order).join("bar.zip")).unwrap() == content);
}
