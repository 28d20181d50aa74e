//! The values a configuration holds and how each is checked: durations, names, URLs, programs and
//! secrets (read from the environment or a file; in the file's text only when it allows that).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::at::At;
use crate::forward::Error;

pub use crate::duration::{duration, DURATION};

pub fn span_duration(at: &At, s: &Spanned<String>, key: &str) -> Result<Duration, Error> {
    duration(s.get_ref()).map_or_else(
        || {
            at.err(
                Some(s.span()),
                key,
                format!("{DURATION}, not {:?}", s.get_ref()),
            )
        },
        Ok,
    )
}

/// A secret from `KEY` (the value), `KEY_env` (an environment variable) or `KEY_file` (its
/// first line): at most one of them; the plain value only when the file allows it.
pub struct Secret<'a> {
    pub key: &'a str,
    pub plain: Option<&'a Spanned<String>>,
    pub env: Option<&'a Spanned<String>>,
    pub file: Option<&'a Spanned<String>>,
    pub allow_plain: bool,
    /// The table holding them, for an error about the set.
    pub whole: Range<usize>,
}

impl Secret<'_> {
    pub fn read(&self, at: &At) -> Result<Option<String>, Error> {
        let key = self.key;
        let given = [
            self.plain.is_some(),
            self.env.is_some(),
            self.file.is_some(),
        ];
        if given.iter().filter(|&&b| b).count() > 1 {
            let msg = format!("give one of {key}, {key}_env and {key}_file");
            return at.err(Some(self.whole.clone()), key, msg);
        }
        if let Some(p) = self.plain {
            if !self.allow_plain {
                return at.err(Some(p.span()), key, format!(
                    "a secret in the file's text; use {key}_env (an environment variable) or {key}_file, \
                     or set allow_plain_secrets = true"
                ));
            }
            return Ok(Some(p.get_ref().clone()));
        }
        if let Some(e) = self.env {
            return match std::env::var(e.get_ref()) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
                // check and status: not set here is no mistake (it may be where the forwarder
                // runs); an empty value stands for it.
                _ if !at.secrets => Ok(Some(String::new())),
                _ => at.err(
                    Some(e.span()),
                    &format!("{key}_env"),
                    format!("the environment variable {} is not set", e.get_ref()),
                ),
            };
        }
        if let Some(f) = self.file {
            let key = format!("{key}_file");
            return match std::fs::read_to_string(f.get_ref()) {
                Ok(text) => match text.lines().map(str::trim).find(|l| !l.is_empty()) {
                    Some(first) => Ok(Some(first.to_string())),
                    None => at.err(Some(f.span()), &key, format!("{} is empty", f.get_ref())),
                },
                Err(e) => at.err(
                    Some(f.span()),
                    &key,
                    format!("cannot read {}: {e}", f.get_ref()),
                ),
            };
        }
        Ok(None)
    }
}

/// An http(s) URL with a host, without its trailing slash.
pub fn url_ok(u: &str) -> Option<String> {
    let u = u.trim();
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(u.trim_end_matches('/').to_string())
        }
        _ => None,
    }
}

pub fn http_url(at: &At, s: &Spanned<String>, key: &str) -> Result<String, Error> {
    url_ok(s.get_ref()).map_or_else(
        || {
            at.err(
                Some(s.span()),
                key,
                format!("not an http:// or https:// URL: {:?}", s.get_ref().trim()),
            )
        },
        Ok,
    )
}

/// `--receiver URL`, checked as receiver.url is.
pub fn receiver_url(url: &str) -> Result<String, Error> {
    url_ok(url).ok_or_else(|| {
        Error::config(format!(
            "--receiver: not an http:// or https:// URL: {url:?}"
        ))
    })
}

/// A program for `exec`: a path (relative to the configuration's directory), or a name found on
/// PATH; executable.
pub fn program(name: &str, base: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = base.join(name);
        return runnable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
}

/// UP42 writes its statuses in capitals, words joined by `_`.
pub fn up42_status(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_uppercase() || *c == b'_')
}

pub const NAME: &str = "1 to 64 letters, digits, '_', '.' or '-'";

pub fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A count within 1..=max, or `default` when not given.
pub fn positive(
    at: &At,
    v: &Option<Spanned<u32>>,
    key: &str,
    default: u32,
    max: u32,
) -> Result<u32, Error> {
    match v {
        None => Ok(default),
        Some(s) if (1..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
        Some(s) => at.err(Some(s.span()), key, format!("1 to {max}")),
    }
}
