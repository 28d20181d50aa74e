//! Where events come from with the Redis store: its stream's consumer group, read directly. Several
//! forwarders may share a group (each entry goes to one of them); after a restart a forwarder reads
//! its own pending entries first; entries a dead forwarder held longer than `claim_idle` are taken
//! over (XAUTOCLAIM), and a forwarder keeps the entries it still works on (retries due later) from
//! being taken by touching them (XCLAIM ... JUSTID). Each finished entry is acknowledged (XACK).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value;
use serde_json::value::RawValue;
use tokio::sync::Mutex;
use up42webhooks::entry::Entry;

use super::config::RedisSource;
use super::event::{Event, Key};
use super::source::Page;
use super::Error;

pub struct RedisReader {
    conf: RedisSource,
    group: String,
    page: u32,
    read: Mutex<MultiplexedConnection>,
    ctl: Mutex<MultiplexedConnection>,
    state: std::sync::Mutex<ReadState>,
}

struct ReadState {
    /// Still reading this consumer's own pending entries (after a restart), from this id.
    pending_from: Option<String>,
    last_claim: Instant,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// The entries of an XREADGROUP answer for one stream (none when it timed out).
fn entries_of(v: &Value) -> &[Value] {
    items(items(v).first().unwrap_or(&Value::Nil))
        .get(1)
        .map(items)
        .unwrap_or(&[])
}

/// A redis error without the URL (it may hold the password).
fn failed(what: &str, e: redis::RedisError) -> Error {
    Error::run(format!(
        "Redis {what}: {}",
        e.to_string().replace('\n', " ")
    ))
}

/// An entry (`[id, [field, value, ...]]`) as an event; `Err(id)` for an entry whose data is gone
/// (trimmed while it was pending).
fn event_of<'a>(entry: &'a Value) -> Option<Result<Event, String>> {
    let parts = items(entry);
    let id = text(parts.first()?)?;
    let key = Key::parse(&id)?;
    let fields = items(parts.get(1)?);
    if fields.is_empty() {
        return Some(Err(id));
    }
    let bytes = |v: &'a Value| match v {
        Value::BulkString(b) => Some(b.as_slice()),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    };
    let e = Entry::read(fields.chunks(2).filter_map(|pair| match pair {
        [k, v] => Some((bytes(k)?, bytes(v)?)),
        _ => None,
    }));
    let string = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let nonempty = |b: Option<&[u8]>| string(b.filter(|b| !b.is_empty()));
    let envelope: serde_json::Value = e
        .envelope()
        .and_then(|m| serde_json::from_slice(&[b"{", m.as_ref(), b"}"].concat()).ok())
        .unwrap_or_default();
    let s = |k: &str| envelope.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let event = RawValue::from_string(string(e.json).unwrap_or_else(|| "{}".into())).ok()?;
    Some(Ok(Event {
        key,
        received: e.time(),
        sender: s("sender").or_else(|| nonempty(e.sender)),
        scheme: s("scheme"),
        key_index: envelope
            .get("key_index")
            .and_then(|v| v.as_u64())
            .map(|n| n as u32),
        delivery_id: s("delivery_id"),
        delivery_id_from: s("delivery_id_from"),
        event_type: nonempty(e.event),
        status: nonempty(e.status),
        live: e.live(),
        event,
    }))
}

impl RedisReader {
    pub async fn connect(
        conf: RedisSource,
        group: String,
        page: u32,
    ) -> Result<RedisReader, Error> {
        let client = redis::Client::open(conf.url.as_str()).map_err(|_| {
            Error::config("redis.url: not a Redis URL (redis://[user:password@]host:port/db)")
        })?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(60));
        let connect = || async {
            client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(|e| failed("connect", e))
        };
        let (read, mut ctl) = (connect().await?, connect().await?);
        // The receiver makes the group for each declared consumer; made here too (at 0: all held).
        let made: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&conf.stream)
            .arg(&group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut ctl)
            .await;
        if let Err(e) = made {
            if e.code() != Some("BUSYGROUP") {
                return Err(failed("XGROUP CREATE", e));
            }
        }
        Ok(RedisReader {
            conf,
            group,
            page,
            read: Mutex::new(read),
            ctl: Mutex::new(ctl),
            state: std::sync::Mutex::new(ReadState {
                pending_from: Some("0".into()),
                last_claim: Instant::now(),
            }),
        })
    }

    fn events(&self, entries: &[Value], page: &mut Page, gone: &mut Vec<Key>) {
        for e in entries {
            match event_of(e) {
                Some(Ok(ev)) => page.events.push(ev),
                Some(Err(id)) => gone.extend(Key::parse(&id)),
                None => {}
            }
        }
    }

    /// The next entries for this consumer: its own pending ones first (after a restart), then
    /// those a dead consumer of the group held (every claim_idle / 2), then new ones, waiting up
    /// to `wait` seconds. Entries whose data retention removed while they were pending are
    /// acknowledged and counted as a gap.
    pub async fn page(&self, wait: u64) -> Result<Page, Error> {
        let mut page = Page {
            events: Vec::new(),
            next: None,
            gap: None,
        };
        let mut gone = Vec::new();
        let (pending_from, claim) = {
            let s = self.state.lock().unwrap();
            (
                s.pending_from.clone(),
                s.last_claim.elapsed() >= self.conf.claim_idle / 2,
            )
        };
        if let Some(from) = pending_from {
            let v = self.read_group(&self.ctl, &from, None).await?;
            let entries = entries_of(&v);
            let mut s = self.state.lock().unwrap();
            s.pending_from = entries.last().and_then(|e| items(e).first()).and_then(text);
            drop(s);
            self.events(entries, &mut page, &mut gone);
        } else if claim {
            self.state.lock().unwrap().last_claim = Instant::now();
            let mut conn = self.ctl.lock().await;
            let v: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.conf.stream)
                .arg(&self.group)
                .arg(&self.conf.name)
                .arg(self.conf.claim_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.page)
                .query_async(&mut *conn)
                .await
                .map_err(|e| failed("XAUTOCLAIM", e))?;
            let parts = items(&v);
            if let Some(entries) = parts.get(1) {
                self.events(items(entries), &mut page, &mut gone);
            }
            // Redis 7 lists the ids it dropped from the pending list because their data is gone.
            if let Some(deleted) = parts.get(2) {
                gone.extend(
                    items(deleted)
                        .iter()
                        .filter_map(text)
                        .filter_map(|id| Key::parse(&id)),
                );
            }
            if !page.events.is_empty() {
                super::log::log(
                    "warn",
                    format!(
                        "took over {} entries another forwarder of group {} held for over {:?}",
                        page.events.len(),
                        self.group,
                        self.conf.claim_idle
                    ),
                );
            }
        }
        if page.events.is_empty() && gone.is_empty() {
            // Not longer than the next look for a dead forwarder's entries.
            let block = (wait * 1000).min((self.conf.claim_idle.as_millis() as u64 / 2).max(1));
            let v = self.read_group(&self.read, ">", Some(block)).await?;
            self.events(entries_of(&v), &mut page, &mut gone);
        }
        if !gone.is_empty() {
            let first = gone.iter().min().unwrap().text.clone();
            let last = gone.iter().max().unwrap().text.clone();
            self.ack(&gone).await?;
            page.gap = Some((first, last));
        }
        Ok(page)
    }

    /// XREADGROUP for this consumer on `conn`: its own pending entries after `from`, or new ones
    /// (`>`), waiting up to `block` ms for them.
    async fn read_group(
        &self,
        conn: &Mutex<MultiplexedConnection>,
        from: &str,
        block: Option<u64>,
    ) -> Result<Value, Error> {
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP")
            .arg(&self.group)
            .arg(&self.conf.name)
            .arg("COUNT")
            .arg(self.page);
        if let Some(ms) = block {
            c.arg("BLOCK").arg(ms);
        }
        c.arg("STREAMS").arg(&self.conf.stream).arg(from);
        c.query_async(&mut *conn.lock().await)
            .await
            .map_err(|e| failed("XREADGROUP", e))
    }

    /// Runs `cmd` for the keys, a thousand at a time, on the control connection.
    async fn in_chunks(
        &self,
        what: &str,
        keys: &[Key],
        cmd: impl Fn(&[Key]) -> redis::Cmd,
    ) -> Result<(), Error> {
        let mut conn = self.ctl.lock().await;
        for chunk in keys.chunks(1000) {
            let _: Value = cmd(chunk)
                .query_async(&mut *conn)
                .await
                .map_err(|e| failed(what, e))?;
        }
        Ok(())
    }

    /// XACK: these entries are done.
    pub async fn ack(&self, keys: &[Key]) -> Result<(), Error> {
        self.in_chunks("XACK", keys, |chunk| {
            let mut c = redis::cmd("XACK");
            c.arg(&self.conf.stream).arg(&self.group);
            for k in chunk {
                c.arg(&k.text);
            }
            c
        })
        .await
    }

    /// Keeps entries this forwarder still works on (a retry due later) from being taken over:
    /// XCLAIM to itself resets their idle time.
    pub async fn touch(&self, keys: &[Key]) -> Result<(), Error> {
        self.in_chunks("XCLAIM", keys, |chunk| {
            let mut c = redis::cmd("XCLAIM");
            c.arg(&self.conf.stream)
                .arg(&self.group)
                .arg(&self.conf.name)
                .arg(0);
            for k in chunk {
                c.arg(&k.text);
            }
            c.arg("JUSTID");
            c
        })
        .await
    }

    pub fn claim_idle(&self) -> Duration {
        self.conf.claim_idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let list = fields
            .iter()
            .flat_map(|(k, v)| [k, v])
            .map(|s| Value::BulkString(s.as_bytes().to_vec()))
            .collect();
        Value::Array(vec![
            Value::BulkString(id.as_bytes().to_vec()),
            Value::Array(list),
        ])
    }

    #[test]
    fn reads_an_entry_an_older_one_and_one_whose_data_is_gone() {
        let e = event_of(&entry(
            "1796000000000-3",
            &[
                ("json", r#"{"event":"job.status"}"#),
                ("event", "job.status"),
                ("status", "RUNNING"),
                ("live", "false"),
                ("sender", "up42"),
                ("id", "m:1"),
                ("time", "1796000000"),
                ("envelope", r#""sender":"up42","scheme":"up42","key_index":1,"delivery_id":"1","delivery_id_from":"messageId""#),
            ],
        ))
        .unwrap()
        .unwrap();
        assert_eq!((e.key.ms, e.key.seq), (1796000000000, 3));
        assert_eq!(e.received, Some(1796000000));
        assert_eq!(e.sender.as_deref(), Some("up42"));
        assert_eq!(e.scheme.as_deref(), Some("up42"));
        assert_eq!(e.key_index, Some(1));
        assert_eq!(e.delivery_id_from.as_deref(), Some("messageId"));
        assert_eq!(
            (e.event_type.as_deref(), e.status.as_deref(), e.live),
            (Some("job.status"), Some("RUNNING"), Some(false))
        );
        assert_eq!(e.event.get(), r#"{"event":"job.status"}"#);
        // Before the envelope: the sender's name alone; an empty status is none.
        let old = event_of(&entry(
            "5-0",
            &[("json", "{}"), ("sender", "github"), ("status", "")],
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (old.sender.as_deref(), old.scheme, old.status),
            (Some("github"), None, None)
        );
        // A damaged envelope: the sender field still names it.
        let bad = event_of(&entry(
            "6-0",
            &[("json", "{}"), ("sender", "up42"), ("envelope", "\"sender")],
        ))
        .unwrap()
        .unwrap();
        assert_eq!(bad.sender.as_deref(), Some("up42"));
        assert!(matches!(event_of(&entry("7-0", &[])), Some(Err(id)) if id == "7-0"));
    }
}
