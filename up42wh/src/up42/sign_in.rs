//! Signing in to UP42 as its server (Keycloak) expects it: the password grant with
//! `scope=openid` (Keycloak 20 and later refuse `userinfo` to a token without it; up42-py asks for it
//! since 2.1.1), the token renewed before it expires, the workspace from the access token's `sub`
//! when `userinfo` still refuses, and 429 or 5xx from the authentication server retried a few times
//! (Retry-After honoured), then reported as UP42's rate limit or outage: never as wrong credentials.

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// Exit code of a refusal by UP42's API (the token, the workspace, the rate, its own errors).
pub const API_REFUSED: u8 = 7;

/// The account's credentials (refreshable), or a token given as it is (one-shot).
pub enum Credentials {
    Account { username: String, password: String },
    Token(String),
}

#[derive(Deserialize)]
struct AccountFile {
    username: String,
    password: String,
}

/// From the environment or a file, never the command line: UP42_USERNAME and UP42_PASSWORD (or
/// UP42_PASSWORD_FILE), UP42_CREDENTIALS_FILE (JSON `{"username","password"}`, as up42-py's
/// cfg_file), else UP42_TOKEN.
pub fn credentials() -> Result<Credentials, Error> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let read = |var: &str, path: String| {
        std::fs::read_to_string(&path)
            .map_err(|e| Error::config(format!("{var}: cannot read {path}: {e}")))
    };
    if let Some(path) = env("UP42_CREDENTIALS_FILE") {
        let text = read("UP42_CREDENTIALS_FILE", path.clone())?;
        let f: AccountFile = serde_json::from_str(&text).map_err(|_| {
            Error::config(format!(
                "UP42_CREDENTIALS_FILE: {path} is not JSON with \"username\" and \"password\""
            ))
        })?;
        return Ok(Credentials::Account {
            username: f.username,
            password: f.password,
        });
    }
    if let Some(username) = env("UP42_USERNAME") {
        let password = match (env("UP42_PASSWORD"), env("UP42_PASSWORD_FILE")) {
            (Some(p), _) => p,
            (None, Some(path)) => read("UP42_PASSWORD_FILE", path)?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            (None, None) => return Err(Error::config(
                "UP42_USERNAME is set: give the password in UP42_PASSWORD or UP42_PASSWORD_FILE",
            )),
        };
        return Ok(Credentials::Account { username, password });
    }
    if let Some(token) = env("UP42_TOKEN") {
        return Ok(Credentials::Token(token.trim().to_string()));
    }
    Err(Error::config(
        "no UP42 credentials: set UP42_USERNAME and UP42_PASSWORD (or UP42_PASSWORD_FILE, or \
         UP42_CREDENTIALS_FILE), or UP42_TOKEN for one command",
    ))
}

/// A token and when to fetch the next one.
struct Token {
    value: String,
    renew_at: Option<Instant>,
}

/// The sign-in: credentials, the current token, the authentication server.
pub struct SignIn {
    pub credentials: Credentials,
    auth: String,
    token: Option<Token>,
}

/// Tries of a request the authentication server answers 429 or 5xx (the first and three more).
pub const TRIES: u32 = 4;
/// The longest wait between two of them, whatever Retry-After asks.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// What came back, after the retries: status, Retry-After, Content-Type, the body and the body as
/// JSON (Null when it is none).
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    pub json: Value,
    pub text: String,
}

/// 429 or 5xx from the authentication server after every try: UP42's rate limit or outage, in
/// one line (`what`: the token, the user info); None for any other status.
pub fn busy(status: u16, retry_after: Option<&str>, what: &str) -> Option<Error> {
    let after = retry_after
        .map(|s| format!(", retry after {s} s"))
        .unwrap_or_default();
    let msg = match status {
        429 => format!("UP42's authentication asks to slow down ({what}: 429{after}, {TRIES} tries): try again later"),
        s if s >= 500 => format!("UP42's authentication is unavailable ({what}: {s}{after}, {TRIES} tries): an outage at UP42; try again later"),
        _ => return None,
    };
    Some(Error::code(API_REFUSED, msg))
}

/// Sends what `request` builds until the answer is neither 429 nor 5xx, at most `tries` times,
/// waiting Retry-After (its seconds; else 1, 2, 4 s) between two. `what` and `url` name the server
/// in the error when it cannot be reached.
pub async fn retrying(
    request: impl Fn() -> reqwest::RequestBuilder,
    what: &str,
    url: &str,
    tries: u32,
) -> Result<Reply, Error> {
    let mut tried = 0;
    loop {
        tried += 1;
        let resp = request()
            .send()
            .await
            .map_err(|e| unreachable(what, url, &e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        let (retry_after, content_type) = (header("retry-after"), header("content-type"));
        let text = resp.text().await.unwrap_or_default();
        let busy = status == 429 || status >= 500;
        if !busy || tried >= tries {
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Reply {
                status,
                retry_after,
                content_type,
                json,
                text,
            });
        }
        tokio::time::sleep(wait(retry_after.as_deref(), tried)).await;
    }
}

/// Retry-After (seconds or a date), else a backoff; bounded.
fn wait(retry_after: Option<&str>, tried: u32) -> Duration {
    retry_after
        .and_then(crate::retry_after::retry_after)
        .unwrap_or(Duration::from_secs(1 << (tried - 1).min(5)))
        .min(LONGEST_WAIT)
}

/// UP42's `what` (API, authentication) did not answer at `url`.
pub fn unreachable(what: &str, url: &str, e: &reqwest::Error) -> Error {
    Error::code(
        API_REFUSED,
        format!("cannot reach UP42's {what} at {url}: {}", reason(e)),
    )
}

/// A transport error in words, without the URL's query or any header.
pub fn reason(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    s
}

/// An answer that is not the JSON expected, named by its status, type and first characters.
pub fn not_json(status: u16, content_type: Option<&str>, text: &str) -> String {
    let start: String = text
        .chars()
        .take(80)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "{status} with {} \"{}{}\"",
        content_type.unwrap_or("no Content-Type"),
        start.trim(),
        if text.chars().count() > 80 { "..." } else { "" }
    )
}

impl SignIn {
    pub fn new(credentials: Credentials, auth: &str) -> SignIn {
        SignIn {
            credentials,
            auth: auth.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    pub fn userinfo_url(&self) -> String {
        format!(
            "{}/realms/public/protocol/openid-connect/userinfo",
            self.auth
        )
    }

    fn token_url(&self) -> String {
        format!("{}/realms/public/protocol/openid-connect/token", self.auth)
    }

    /// Whether a new token can be fetched (the account's credentials, not a token given as is).
    pub fn renewable(&self) -> bool {
        matches!(self.credentials, Credentials::Account { .. })
    }

    /// Forgets the token: the next call fetches a new one.
    pub fn forget(&mut self) {
        self.token = None;
    }

    /// The current token, fetched (again) when there is none or it is about to expire.
    pub async fn token(&mut self, http: &reqwest::Client) -> Result<String, Error> {
        if let Some(t) = &self.token {
            if t.renew_at.is_none_or(|at| Instant::now() < at) {
                return Ok(t.value.clone());
            }
        }
        let (username, password) = match &self.credentials {
            Credentials::Token(t) => {
                self.token = Some(Token {
                    value: t.clone(),
                    renew_at: None,
                });
                return Ok(t.clone());
            }
            Credentials::Account { username, password } => (username.clone(), password.clone()),
        };
        let url = self.token_url();
        let form = [
            ("grant_type", "password"),
            ("client_id", "up42-api"),
            ("scope", "openid"),
            ("username", username.as_str()),
            ("password", password.as_str()),
        ];
        let r = retrying(
            || http.post(&url).form(&form),
            "authentication",
            &url,
            TRIES,
        )
        .await?;
        if let Some(e) = busy(r.status, r.retry_after.as_deref(), "the token") {
            return Err(e);
        }
        if r.status != 200 {
            let why = r.json["error_description"]
                .as_str()
                .or(r.json["error"].as_str())
                .unwrap_or("no reason given");
            return Err(Error::code(
                API_REFUSED,
                format!("UP42 refused the account's credentials ({}: {why}): check UP42_USERNAME and its password", r.status),
            ));
        }
        let value = r.json["access_token"]
            .as_str()
            .ok_or_else(|| {
                // Its body is not repeated: a token endpoint's answer may hold secrets.
                Error::code(
                    API_REFUSED,
                    "UP42's authentication answered 200 without an access_token (not the JSON expected)",
                )
            })?
            .to_string();
        // Tokens live minutes (expires_in); the next is fetched with a margin of a fifth.
        let life = r.json["expires_in"].as_u64().unwrap_or(300).max(1);
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Some(Instant::now() + Duration::from_millis(life * 800)),
        });
        Ok(value)
    }

    /// The `sub` claim of the current token when it is a JWT (Keycloak's access tokens are): at
    /// UP42 the user's id, which is the workspace's. Read, not verified: it only names where to
    /// ask, and UP42's API checks the token itself.
    pub fn token_subject(&self) -> Option<String> {
        let token = &self.token.as_ref()?.value;
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(token: &str) -> SignIn {
        let mut s = SignIn::new(Credentials::Token(token.into()), "https://auth.example");
        s.token = Some(Token {
            value: token.into(),
            renew_at: None,
        });
        s
    }

    #[test]
    fn the_subject_of_a_jwt_and_nothing_of_anything_else() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"sub":"ws-1","scope":"openid"}"#)
        );
        assert_eq!(signed_in(&jwt).token_subject().as_deref(), Some("ws-1"));
        for t in [
            "opaque".to_string(),
            "a.b.c".to_string(),
            format!("{}.{}.x", b64("{}"), b64(r#"{"sub":""}"#)),
            format!("{}.{}.x", b64("{}"), b64(r#"{"sub":7}"#)),
        ] {
            assert_eq!(signed_in(&t).token_subject(), None, "{t}");
        }
    }

    #[test]
    fn waits_follow_retry_after_within_bounds() {
        assert_eq!(wait(Some("3"), 1), Duration::from_secs(3));
        assert_eq!(wait(Some("3600"), 1), LONGEST_WAIT);
        // A date: how long until then (a date past asks for no wait), bounded the same way.
        assert_eq!(
            wait(Some("Wed, 21 Oct 2015 07:28:00 GMT"), 2),
            Duration::ZERO
        );
        assert_eq!(wait(Some("Fri, 01 Jan 2100 00:00:00 GMT"), 2), LONGEST_WAIT);
        assert_eq!(wait(Some("later"), 2), Duration::from_secs(2));
        assert_eq!(wait(None, 1), Duration::from_secs(1));
        assert_eq!(wait(None, 3), Duration::from_secs(4));
    }

    #[test]
    fn an_answer_that_is_not_json_is_named_briefly() {
        let page = format!("<html>\n<title>Bad gateway</title>{}", "x".repeat(200));
        let s = not_json(200, Some("text/html"), &page);
        assert!(
            s.starts_with("200 with text/html \"<html> <title>Bad gateway</title>"),
            "{s}"
        );
        assert!(s.ends_with("...\"") && s.len() < 130, "{s}");
    }
}
