//! An event as the receiver gives it with `?meta=true`: its key, when it arrived, what verified it
//! (the envelope), the fields the filters read, and the event itself, its bytes as stored.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What a route takes: every set filter must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub events: Option<Vec<String>>,
    pub statuses: Option<Vec<String>>,
    pub notifiable: Option<bool>,
    pub live: Option<bool>,
    pub senders: Option<Vec<String>>,
}

/// A position: a key of the shared-dict store (a number) or a Redis entry id (`ms-seq`), ordered
/// as the receiver orders them; written back as it came.
#[derive(Clone, Debug, Eq, PartialEq, Hash)]
pub struct Key {
    pub ms: u64,
    pub seq: u64,
    pub text: String,
}

impl Key {
    pub fn parse(text: &str) -> Option<Key> {
        let (ms, seq) = match text.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => (text.parse().ok()?, 0),
        };
        Some(Key {
            ms,
            seq,
            text: text.to_string(),
        })
    }

    fn of_json(v: &serde_json::Value) -> Option<Key> {
        match v {
            serde_json::Value::Number(n) => Key::parse(&n.to_string()),
            serde_json::Value::String(s) => Key::parse(s),
            _ => None,
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ms, self.seq).cmp(&(other.ms, other.seq))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One event with its envelope (fields an older receiver's journal lacks are `None`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "key_text")]
    pub key: Key,
    pub received: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id_from: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub live: Option<bool>,
    /// The event as the sender sent it (the receiver's line: tabs and line breaks between tokens
    /// as spaces).
    pub event: Box<RawValue>,
}

mod key_text {
    use super::Key;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &Key, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&k.text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Key::of_json(&v).ok_or_else(|| serde::de::Error::custom(format!("not a key: {v}")))
    }
}

impl Event {
    /// `order:<orderId>:<STATUS>` or `job:<jobId>:<STATUS>` for UP42's status events (delivered
    /// by UP42 or learnt from its API): the transition they tell, the same for both.
    pub fn transition(&self) -> Option<String> {
        if !matches!(self.sender.as_deref(), None | Some("up42" | "up42-api")) {
            return None;
        }
        let (noun, field) = match self.event_type.as_deref()? {
            "order.status" => ("order", "orderId"),
            "job.status" => ("job", "jobId"),
            _ => return None,
        };
        let v: serde_json::Value = serde_json::from_str(self.event.get()).ok()?;
        let body = &v["body"];
        let (id, status) = (body[field].as_str()?, body["status"].as_str()?);
        Some(format!("{noun}:{id}:{}", status.to_ascii_uppercase()))
    }
}

/// UP42's statuses worth telling a person about (design.md: its "notifiable" ones).
fn notifiable(event_type: Option<&str>, status: Option<&str>) -> bool {
    matches!(
        (event_type, status),
        (
            Some("job.status"),
            Some("ERROR" | "FAILED" | "CANCELLED" | "SUCCEEDED")
        ) | (
            Some("order.status"),
            Some("FULFILLED" | "FAILED_PERMANENTLY")
        )
    )
}

impl Event {
    /// A `?meta=true` line.
    pub fn parse(line: &str) -> Result<Event, String> {
        serde_json::from_str(line).map_err(|e| {
            format!(
                "not an event line ({e}): {}",
                line.chars().take(200).collect::<String>()
            )
        })
    }

    pub fn body(&self) -> &str {
        self.event.get()
    }

    pub fn notifiable(&self) -> bool {
        self.sender.as_deref().is_none_or(|s| s == "up42")
            && notifiable(self.event_type.as_deref(), self.status.as_deref())
    }

    /// A member of the event's `body` object (UP42's jobId, orderId).
    pub fn body_member(&self, name: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.body()).ok()?;
        match v.get("body")?.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub fn matches(&self, f: &Filter) -> bool {
        let within = |list: &Option<Vec<String>>, v: Option<&str>| {
            list.as_ref()
                .is_none_or(|l| v.is_some_and(|v| l.iter().any(|x| x == v)))
        };
        within(&f.events, self.event_type.as_deref())
            && within(&f.statuses, self.status.as_deref())
            && within(&f.senders, self.sender.as_deref())
            && f.notifiable.is_none_or(|n| n == self.notifiable())
            && f.live.is_none_or(|l| self.live == Some(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_receiver_orders_them() {
        let k = |s| Key::parse(s).unwrap();
        assert!(k("9") < k("10"));
        assert!(k("1700000000000-1") < k("1700000000000-2"));
        assert!(k("1700000000000-9") < k("1700000000001-0"));
        assert!(Key::parse("x").is_none() && Key::parse("1-x").is_none());
    }

    #[test]
    fn a_meta_line_and_the_filters() {
        let line = r#"{"key":12,"received":1796023274,"sender":"up42","scheme":"up42","key_index":0,"delivery_id":"m-1","delivery_id_from":"messageId","event_type":"job.status","status":"FAILED","live":false,"event":{"event":"job.status","body":{"jobId":"j-1","status":"FAILED"}}}"#;
        let e = Event::parse(line).unwrap();
        assert_eq!(
            (e.key.text.as_str(), e.delivery_id.as_deref()),
            ("12", Some("m-1"))
        );
        assert_eq!(
            e.body(),
            r#"{"event":"job.status","body":{"jobId":"j-1","status":"FAILED"}}"#
        );
        assert_eq!(e.body_member("jobId").as_deref(), Some("j-1"));
        assert!(e.notifiable());
        let f = |events: Option<&[&str]>, live: Option<bool>, notifiable: Option<bool>| Filter {
            events: events.map(|l| l.iter().map(|s| s.to_string()).collect()),
            live,
            notifiable,
            ..Filter::default()
        };
        assert!(e.matches(&f(Some(&["job.status"]), Some(false), Some(true))));
        assert!(!e.matches(&f(Some(&["order.status"]), None, None)));
        assert!(!e.matches(&f(None, Some(true), None)));
        assert!(!e.matches(&f(None, None, Some(false))));
        // An event of a journal from before the envelope: no sender, a string key from Redis.
        let old = Event::parse(r#"{"key":"1700-0","received":1,"event_type":"order.status","status":"FULFILLED","live":true,"event":{}}"#).unwrap();
        assert_eq!(old.key, Key::parse("1700-0").unwrap());
        assert!(old.notifiable() && old.sender.is_none());
    }
}
