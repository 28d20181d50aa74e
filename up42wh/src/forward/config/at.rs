//! Where a configuration error is: every error names the file, the line and the key path
//! (`receiver.page`, `route slack: timeout`), whether it came from the TOML parser, from serde (a wrong type, an
//! unknown key) or from a check of ours. The document's spans (toml's `DeTable`) find the key of
//! an error that only knows its position.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::Error;

pub struct At<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// Whether a secret must be there: `check` and `status` take one that is not set (or whose
    /// file cannot be read) as an empty value, and check those that are.
    pub secrets: bool,
}

impl At<'_> {
    /// The line (from 1) where `pos` is.
    pub fn line(&self, pos: usize) -> usize {
        self.text[..pos.min(self.text.len())].matches('\n').count() + 1
    }

    /// `FILE line N: KEY: what` (without a key when `key` is empty; without a line when the
    /// error has no place in the file).
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        msg: impl std::fmt::Display,
    ) -> Error {
        let place = match span {
            Some(s) => format!("{} line {}", self.path.display(), self.line(s.start)),
            None => self.path.display().to_string(),
        };
        let msg = msg.to_string().replace('\n', " ");
        if key.is_empty() {
            Error::config(format!("{place}: {msg}"))
        } else {
            Error::config(format!("{place}: {key}: {msg}"))
        }
    }

    pub fn err<T>(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        msg: impl std::fmt::Display,
    ) -> Result<T, Error> {
        Err(self.error(span, key, msg))
    }

    /// A toml or serde error in `doc` (the part of the file it was read from), under `prefix`
    /// (the key path of `doc`): its key found from its position when it does not say it.
    pub fn toml(&self, e: &toml::de::Error, doc: Option<&DeTable>, prefix: &str) -> Error {
        let key = match (e.span(), doc) {
            (Some(span), Some(doc)) => {
                let mut path = Vec::new();
                key_at(doc, span.start, &mut path);
                join(prefix, &path.join("."))
            }
            _ => prefix.to_string(),
        };
        self.error(e.span(), &key, e.message())
    }
}

/// A key under a prefix: a table's (`receiver` + `page`: `receiver.page`) or a route's
/// (`route NAME: ` + `url`).
pub fn join(prefix: &str, key: &str) -> String {
    if key.is_empty() {
        prefix.trim_end_matches([':', ' ']).to_string()
    } else if prefix.is_empty() || prefix.ends_with(' ') {
        format!("{prefix}{key}")
    } else {
        format!("{prefix}.{key}")
    }
}

fn contains(span: &Range<usize>, pos: usize) -> bool {
    span.start <= pos && pos < span.end.max(span.start + 1)
}

/// The key path of what is at `pos` in `table`, into `path`. Every table is searched: the span
/// of a `[table]` covers its header, not its keys.
fn key_at(table: &DeTable, pos: usize, path: &mut Vec<String>) -> bool {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        if contains(&k.span(), pos) || value_at(v, pos, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn value_at(v: &Spanned<DeValue>, pos: usize, path: &mut Vec<String>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => key_at(t, pos, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.last().map_or(0, String::len);
                if let Some(last) = path.last_mut() {
                    last.push_str(&format!("[{i}]"));
                }
                if value_at(item, pos, path) {
                    return true;
                }
                if let Some(last) = path.last_mut() {
                    last.truncate(len);
                }
            }
            contains(&v.span(), pos)
        }
        _ => contains(&v.span(), pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_finds_its_key() {
        let text = "a = 1\n[t]\nb = \"x\"\nc = [1, \"y\"]\n[[r]]\nd = 2\n";
        let doc = DeTable::parse(text).unwrap().into_inner();
        let find = |needle: &str| {
            let mut p = Vec::new();
            key_at(&doc, text.find(needle).unwrap(), &mut p);
            p.join(".")
        };
        assert_eq!(find("\"x\""), "t.b");
        assert_eq!(find("\"y\""), "t.c[1]");
        assert_eq!(find("d = 2"), "r[0].d");
        assert_eq!(find("a = 1"), "a");
    }
}
