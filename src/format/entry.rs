//! The Redis store's stream entry for one event: its fields, named here only. The receiver
//! writes an entry with the names `up42wh_entry_field_name` gives it (store_redis.lua); up42wh
//! reads one with [`Entry::read`]. An entry of a receiver older than the envelope has none, and
//! its sender's name in `sender`: [`Entry::envelope`] stands that in its place.

use std::borrow::Cow;

/// A field of the Redis store's stream entry for one event (its name: `up42wh_entry_field_name`),
/// in the order the receiver writes them.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The event's JSON on one line (tabs and line breaks between tokens as spaces).
    Json = 1,
    /// The event's type, status and live mode (`true`, `false` or empty), as the store filters.
    Event = 2,
    Status = 3,
    Live = 4,
    /// The sender's name (also in the envelope; kept for readers older than it).
    Sender = 5,
    /// The dedup id.
    Id = 6,
    /// When the receiver stored it, unix seconds.
    Time = 7,
    /// The envelope's JSON members without braces (src/format/envelope.rs).
    Envelope = 8,
}

u32_enum!(Field {
    Json,
    Event,
    Status,
    Live,
    Sender,
    Id,
    Time,
    Envelope
});

impl Field {
    /// The field's name in the stream entry.
    pub fn name(self) -> &'static core::ffi::CStr {
        match self {
            Field::Json => c"json",
            Field::Event => c"event",
            Field::Status => c"status",
            Field::Live => c"live",
            Field::Sender => c"sender",
            Field::Id => c"id",
            Field::Time => c"time",
            Field::Envelope => c"envelope",
        }
    }

    fn named(name: &[u8]) -> Option<Field> {
        (1..=8)
            .filter_map(|n| Field::try_from(n).ok())
            .find(|f| f.name().to_bytes() == name)
    }
}

/// An entry's fields as read; a field the entry does not have is `None`, one it has twice keeps
/// the last, and fields of no name here are passed over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub json: Option<&'a [u8]>,
    pub event: Option<&'a [u8]>,
    pub status: Option<&'a [u8]>,
    pub live: Option<&'a [u8]>,
    pub sender: Option<&'a [u8]>,
    pub id: Option<&'a [u8]>,
    pub time: Option<&'a [u8]>,
    pub envelope: Option<&'a [u8]>,
}

impl<'a> Entry<'a> {
    /// Reads an entry from its (name, value) pairs, as XRANGE and XREADGROUP hand them.
    pub fn read<I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(pairs: I) -> Entry<'a> {
        let mut e = Entry::default();
        for (name, value) in pairs {
            let slot = match Field::named(name) {
                Some(Field::Json) => &mut e.json,
                Some(Field::Event) => &mut e.event,
                Some(Field::Status) => &mut e.status,
                Some(Field::Live) => &mut e.live,
                Some(Field::Sender) => &mut e.sender,
                Some(Field::Id) => &mut e.id,
                Some(Field::Time) => &mut e.time,
                Some(Field::Envelope) => &mut e.envelope,
                None => continue,
            };
            *slot = Some(value);
        }
        e
    }

    /// The envelope, or for an entry written before it, `"sender":<its name>` in its place.
    pub fn envelope(&self) -> Option<Cow<'a, [u8]>> {
        if let Some(e) = self.envelope {
            return Some(Cow::Borrowed(e));
        }
        let name = self.sender?;
        let mut out = vec![0; 11 + 6 * name.len()];
        let n = crate::envelope::sender_only(name, &mut out).ok()?;
        out.truncate(n);
        Some(Cow::Owned(out))
    }

    /// The live mode: `Some(true)`, `Some(false)`, or `None` when the event did not say.
    pub fn live(&self) -> Option<bool> {
        match self.live? {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// When it was stored, unix seconds.
    pub fn time(&self) -> Option<i64> {
        std::str::from_utf8(self.time?).ok()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_from_one_and_read_back() {
        for n in 1..=8 {
            let f = Field::try_from(n).unwrap();
            assert_eq!(Field::named(f.name().to_bytes()), Some(f));
        }
        assert!(Field::try_from(0).is_err() && Field::try_from(9).is_err());
    }

    #[test]
    fn reads_an_entry_and_an_older_one() {
        let e = Entry::read([
            (&b"json"[..], &b"{}"[..]),
            (b"live", b"true"),
            (b"time", b"1796000000"),
            (b"other", b"x"),
            (b"envelope", b"\"sender\":\"a\",\"scheme\":\"up42\""),
        ]);
        assert_eq!(e.json, Some(&b"{}"[..]));
        assert_eq!((e.live(), e.time()), (Some(true), Some(1796000000)));
        assert_eq!(
            e.envelope().unwrap().as_ref(),
            b"\"sender\":\"a\",\"scheme\":\"up42\""
        );
        let old = Entry::read([(&b"sender"[..], &b"up\"42"[..]), (b"live", b"")]);
        assert_eq!(old.envelope().unwrap().as_ref(), b"\"sender\":\"up\\\"42\"");
        assert_eq!((old.live(), old.time(), old.event), (None, None, None));
        assert_eq!(Entry::read([]).envelope(), None);
    }
}
