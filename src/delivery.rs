//! What the store needs of a verified delivery, read from its body (strictly: [`crate::json`]) and,
//! for GitHub and Standard Webhooks, from a header: the id it is deduplicated on, its event, status
//! and live mode. Written into fixed buffers, so that one call per delivery hands all of it to the
//! caller without allocating.

use crate::buf::Text;
use crate::code::Code;
use crate::headers::{Headers, JoinBuf};
use crate::json::{self, Fields, Name, Value};
use crate::limits::Limits;

/// The longest sender id (UP42's `messageId`, a nonce, a delivery header) kept, once decoded.
pub(crate) const ID_MAX: usize = 256;
/// The longest caller prefix of the id.
pub(crate) const PREFIX_MAX: usize = 62;
/// The longest event or status kept.
pub(crate) const TEXT_MAX: usize = 128;

pub use crate::schemes::IdSource;
use crate::schemes::{Place, Scheme};

/// What a verified delivery gives the store (the C ABI copies it into `up42wh_delivery`).
#[derive(Clone)]
pub struct Delivery {
    /// The configured secret or key that verified (0 is the first).
    pub key_index: u32,
    /// 1 for `true`, 0 for `false`, -1 when the body has no boolean live mode (UP42's `liveMode`,
    /// Stripe's `livemode`).
    pub live: i32,
    /// The signed time in unix seconds: for UP42 the body's `timestamp`, for the others the
    /// signature's (0 when it has none: GitHub).
    pub time: i64,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
    /// The body has tabs or line breaks between its tokens (the dump writes an event a line, so a
    /// caller replaces them with spaces; JSON has them nowhere else).
    pub line_breaks: bool,
    /// The id the delivery is deduplicated on: the caller's prefix, then `m:` and UP42's
    /// `messageId`, or `i:` and another sender's id, or `d:` and the hex SHA-256 of the body when
    /// the delivery has no id.
    pub id: Text<{ PREFIX_MAX + 2 + ID_MAX }>,
    /// Where the sender's own id (or the body digest) starts in `id`: after the prefix and kind.
    pub id_at: usize,
    /// Where that id came from.
    pub id_source: IdSource,
    /// The event type (tabs and line breaks written as spaces); empty when there is none.
    pub event: Text<TEXT_MAX>,
    /// The status (UP42: `body.status`; GitHub: `action`); empty when there is none.
    pub status: Text<TEXT_MAX>,
    /// UP42: what its `created`/`expires` (not signed) would have been refused for; `Ok` when
    /// they are within the window or were checked.
    pub unsigned_times: Code,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            key_index: 0,
            live: -1,
            time: 0,
            body_sha256: [0; 32],
            line_breaks: false,
            id: Text::default(),
            id_at: 0,
            id_source: IdSource::BodySha256,
            event: Text::default(),
            status: Text::default(),
            unsigned_times: Code::Ok,
        }
    }
}

impl core::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("Delivery")
            .field("id", &s(self.id()))
            .field("event", &s(self.event()))
            .field("status", &s(self.status()))
            .field("live", &self.live)
            .field("time", &self.time)
            .field("key_index", &self.key_index)
            .finish()
    }
}

impl Delivery {
    pub fn id(&self) -> &[u8] {
        self.id.as_bytes()
    }
    /// The sender's own id (or the body digest in hex), without the caller's prefix and the kind.
    pub fn own_id(&self) -> &[u8] {
        self.id.as_bytes().get(self.id_at..).unwrap_or_default()
    }
    pub fn event(&self) -> &[u8] {
        self.event.as_bytes()
    }
    pub fn status(&self) -> &[u8] {
        self.status.as_bytes()
    }

    /// The dedup id from `prefix`, a kind (`m:`, `i:`) and a sender's id; `InvalidField` when the
    /// id is longer than [`ID_MAX`] once decoded.
    fn set_id(&mut self, prefix: &[u8], kind: &[u8; 2], id: Value) -> Result<(), Code> {
        self.id_at = prefix.len() + 2;
        self.id.fill(|buf| {
            let head = prefix.len() + 2;
            buf[..prefix.len()].copy_from_slice(prefix);
            buf[prefix.len()..head].copy_from_slice(kind);
            Ok(head + text(id, &mut buf[head..head + ID_MAX], false)?)
        })
    }

    /// The dedup id of a delivery without one: the hex SHA-256 of its body.
    fn set_digest_id(&mut self, prefix: &[u8]) -> Result<(), Code> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.body_sha256;
        self.id_at = prefix.len() + 2;
        self.id_source = IdSource::BodySha256;
        self.id.fill(|buf| {
            let mut n = prefix.len();
            buf[..n].copy_from_slice(prefix);
            buf[n..n + 2].copy_from_slice(b"d:");
            n += 2;
            for b in digest {
                buf[n] = HEX[usize::from(b >> 4)];
                buf[n + 1] = HEX[usize::from(b & 15)];
                n += 2;
            }
            Ok(n)
        })
    }

    fn set_event(&mut self, v: Value) -> Result<(), Code> {
        self.event.fill(|buf| text(v, buf, true))
    }

    fn set_status(&mut self, v: Value) -> Result<(), Code> {
        self.status.fill(|buf| text(v, buf, true))
    }
}

/// A member's value as text into `out`: a string decoded, a number or `true`/`false` as written,
/// nothing for `null`, an object or an array. With `one_line`, tabs and line breaks become spaces.
/// `InvalidField` when it does not fit.
fn text(v: Value, out: &mut [u8], one_line: bool) -> Result<usize, Code> {
    let n = match v {
        Value::Scalar(b"null") => 0,
        Value::Str {
            raw,
            escaped: false,
        }
        | Value::Scalar(raw) => {
            out.get_mut(..raw.len())
                .ok_or(Code::InvalidField)?
                .copy_from_slice(raw);
            raw.len()
        }
        Value::Str { raw, escaped: true } => {
            let n = json::unescape(raw, out).ok_or(Code::InvalidField)?;
            if one_line {
                for b in &mut out[..n] {
                    if matches!(*b, b'\t' | b'\r' | b'\n') {
                        *b = b' ';
                    }
                }
            }
            n
        }
        _ => 0,
    };
    Ok(n)
}

/// A non-empty string member, for an id.
fn nonempty(v: Value) -> Option<Value> {
    matches!(v, Value::Str { raw, .. } if !raw.is_empty()).then_some(v)
}

fn live(v: Value) -> i32 {
    match v {
        Value::Scalar(b"true") => 1,
        Value::Scalar(b"false") => 0,
        _ => -1,
    }
}

/// How to read a verified delivery: its scheme (what it reads where: `Scheme::reading`), the RFC 9421 signature's `nonce`, the id's
/// `prefix` (at most [`PREFIX_MAX`] bytes, e.g. the sender's name and a colon), and for UP42 the
/// window its body's signed `timestamp` must lie in.
pub struct Read<'a> {
    pub scheme: Scheme,
    pub nonce: &'a [u8],
    pub prefix: &'a [u8],
    pub now: i64,
    pub limits: &'a Limits,
}

impl Read<'_> {
    /// Fills what a verified delivery gives the store, for every sender: the body must be one
    /// JSON object (and a UP42 body's `timestamp`, signed through the digest, within the window).
    /// `out.body_sha256`, `out.key_index` and `out.time` are the verifier's (UP42's time is the
    /// body's).
    pub fn fill(&self, headers: &Headers, body: &[u8], out: &mut Delivery) -> Result<(), Code> {
        let prefix = self.prefix;
        if prefix.len() > PREFIX_MAX {
            return Err(Code::InvalidArgument);
        }
        let reading = self.scheme.reading();
        let f: Fields = json::read_object(body)?;
        if reading.signed_timestamp {
            out.time = self.signed_timestamp(&f)?;
        }
        // The headers that carry an id or an event (GitHub's, Standard Webhooks'), in one scan.
        let header = |p: Option<Place>| match p {
            Some(Place::Header(name)) => name,
            _ => b"",
        };
        let other = match header(reading.event) {
            b"" => header(reading.status),
            event => event,
        };
        let names: [&[u8]; 2] = [header(reading.id.map(|i| i.1)), other];
        let mut bufs = [JoinBuf::default(), JoinBuf::default()];
        let found = if names.iter().any(|n| !n.is_empty()) {
            headers.fields(names, &mut bufs)?
        } else {
            [None, None]
        };
        let value = |p: Option<Place>, at: usize| -> Value {
            match p {
                None => Value::Absent,
                Some(Place::Member(n)) => f.get(n),
                Some(Place::MemberOr(a, b)) => match f.get(a) {
                    Value::Absent | Value::Scalar(b"null") => f.get(b),
                    v => v,
                },
                Some(Place::Header(_)) => match found[at] {
                    Some(v) if !v.is_empty() => Value::Scalar(v),
                    _ => Value::Absent,
                },
                Some(Place::Nonce) if !self.nonce.is_empty() => Value::Scalar(self.nonce),
                Some(Place::Nonce) => Value::Absent,
            }
        };
        let id = match reading.id {
            // A member's id counts when it is a string with something in it.
            Some((kind, place @ (Place::Member(_) | Place::MemberOr(..)), source)) => {
                nonempty(value(Some(place), 0)).map(|v| (kind, v, source))
            }
            Some((kind, place, source)) => match value(Some(place), 0) {
                Value::Absent => None,
                v => Some((kind, v, source)),
            },
            None => None,
        };
        match id {
            None => out.set_digest_id(prefix)?,
            Some((kind, v, source)) => {
                out.set_id(prefix, kind, v)?;
                out.id_source = source;
            }
        }
        out.set_event(value(reading.event, 1))?;
        out.set_status(value(reading.status, 1))?;
        out.live = reading.live.map_or(-1, |n| live(f.get(n)));
        out.line_breaks = f.line_breaks;
        Ok(())
    }

    /// UP42's signed `timestamp` (the `created` parameter is not covered by its HMAC), within
    /// the window: unix seconds.
    fn signed_timestamp(&self, f: &Fields) -> Result<i64, Code> {
        let mut ts = [0u8; 64];
        let n = match f.get(Name::Timestamp) {
            v @ Value::Str { .. } => {
                text(v, &mut ts, false).map_err(|_| Code::MalformedTimestamp)?
            }
            _ => return Err(Code::MalformedTimestamp),
        };
        self.limits.timestamp(&ts[..n], self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up42(body: &[u8], now: i64, opts: &Limits, out: &mut Delivery) -> Result<(), Code> {
        let read = Read {
            scheme: Scheme::Up42,
            nonce: b"",
            prefix: b"",
            now,
            limits: opts,
        };
        read.fill(&Headers::Raw(b""), body, out)
    }

    fn message(
        scheme: Scheme,
        headers: &Headers,
        body: &[u8],
        nonce: &[u8],
        prefix: &[u8],
        out: &mut Delivery,
    ) -> Result<(), Code> {
        let limits = Limits::default();
        let read = Read {
            scheme,
            nonce,
            prefix,
            now: 0,
            limits: &limits,
        };
        read.fill(headers, body, out)
    }

    fn got(d: &Delivery) -> (String, String, String, i32) {
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (s(d.id()), s(d.event()), s(d.status()), d.live)
    }

    #[test]
    fn up42_ids_events_and_the_signed_timestamp() {
        let opts = Limits::default();
        let now = 1_645_197_138; // 2022-02-18T15:12:18Z
        let mut d = Delivery::default();
        let raw_tab = b"{\"timestamp\":\"2022-02-18T15:12:18Z\",\"event\":\"a\tb\"}";
        assert_eq!(
            up42(raw_tab, now, &opts, &mut d),
            Err(Code::NotJsonObject),
            "a raw tab"
        );
        // An escaped tab in a member the dump shows becomes a space.
        let body = br#"{"event":"job.status","liveMode":false,"messageId":"377669ea",
            "timestamp":"2022-02-18T15:12:18.672945Z","body":{"jobId":"F","status":"PEN\tDING"}}"#;
        up42(body, now, &opts, &mut d).unwrap();
        assert_eq!(
            got(&d),
            (
                "m:377669ea".into(),
                "job.status".into(),
                "PEN DING".into(),
                0
            )
        );
        assert_eq!(d.time, now);
        assert!(d.line_breaks);
        assert_eq!(
            (d.own_id(), d.id_source),
            (&b"377669ea"[..], IdSource::MessageId)
        );
        // No messageId: the body's digest; a string "null" is a string.
        let mut d = Delivery {
            body_sha256: [0xab; 32],
            ..Delivery::default()
        };
        let body = br#"{"event":"null","liveMode":true,"timestamp":"2022-02-18T15:12:18Z"}"#;
        up42(body, now, &opts, &mut d).unwrap();
        assert_eq!(got(&d).0, format!("d:{}", "ab".repeat(32)));
        assert_eq!((got(&d).1, d.live), ("null".into(), 1));
        for (body, code) in [
            (&br#"{"event":"job.status"}"#[..], Code::MalformedTimestamp),
            (br#"{"timestamp":5}"#, Code::MalformedTimestamp),
            (br#"{"timestamp":"2022-02-18T15:00:00Z"}"#, Code::Stale),
        ] {
            assert_eq!(up42(body, now, &opts, &mut Delivery::default()), Err(code));
        }
    }

    #[test]
    fn each_sender_profile_reads_its_own_members_and_headers() {
        let raw = b"POST /hook HTTP/1.1\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: 72d3\r\n\
            webhook-id: msg_1\r\n\r\n";
        let headers = Headers::Raw(raw);
        let body = br#"{"id":"evt_1","type":"invoice.paid","livemode":true,"action":"opened",
            "event":"e","status":"s"}"#;
        let run = |p: Scheme, nonce: &[u8]| {
            let mut d = Delivery::default();
            message(p, &headers, body, nonce, b"name:", &mut d).unwrap();
            got(&d)
        };
        let t =
            |a: &str, b: &str, c: &str, l: i32| (a.to_string(), b.to_string(), c.to_string(), l);
        assert_eq!(
            run(Scheme::Github, b""),
            t("name:i:72d3", "push", "opened", -1)
        );
        assert_eq!(
            run(Scheme::StandardWebhooks, b""),
            t("name:i:msg_1", "invoice.paid", "", -1)
        );
        assert_eq!(
            run(Scheme::Stripe, b""),
            t("name:i:evt_1", "invoice.paid", "", 1)
        );
        assert_eq!(
            run(Scheme::Rfc9421, b"n0nce"),
            t("name:i:n0nce", "e", "s", -1)
        );
        let digest_id = run(Scheme::Rfc9421, b"").0;
        assert!(digest_id.starts_with("name:d:") && digest_id.len() == 7 + 64);
        // The sender's own id and where it came from, for the envelope.
        for (p, nonce, own, source) in [
            (
                Scheme::Github,
                &b""[..],
                &b"72d3"[..],
                IdSource::GithubDelivery,
            ),
            (Scheme::StandardWebhooks, b"", b"msg_1", IdSource::WebhookId),
            (Scheme::Stripe, b"", b"evt_1", IdSource::EventId),
            (Scheme::Rfc9421, b"n0nce", b"n0nce", IdSource::Nonce),
        ] {
            let mut d = Delivery::default();
            message(p, &headers, body, nonce, b"name:", &mut d).unwrap();
            assert_eq!((d.own_id(), d.id_source), (own, source), "{p:?}");
            assert_eq!(IdSource::try_from(source as u32), Ok(source));
        }
        let mut d = Delivery::default();
        message(Scheme::Rfc9421, &headers, body, b"", b"name:", &mut d).unwrap();
        assert_eq!((d.own_id().len(), d.id_source), (64, IdSource::BodySha256));
        assert_eq!(IdSource::try_from(6), Err(Code::InvalidArgument));
        let long = [b'p'; PREFIX_MAX + 1];
        assert_eq!(
            message(
                Scheme::Github,
                &headers,
                body,
                b"",
                &long,
                &mut Delivery::default()
            ),
            Err(Code::InvalidArgument)
        );
    }
}
