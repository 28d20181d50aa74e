//! UP42's API as the webhook commands use it (docs/up42.md cites the source of each call): an
//! access token from the account's credentials (refreshed before it expires), the workspace, and
//! the webhooks. The token goes to the two configured hosts only (no redirect is followed) and is
//! never part of an error, a log line or the output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::Error;

/// UP42's regions: the API and the authentication server of each (up42-py's `host` module).
pub fn region(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "eu" => Some(("https://api.up42.com", "https://auth.up42.com")),
        "sa" => Some(("https://api.sa.up42.com", "https://auth.sa.up42.com")),
        _ => None,
    }
}

/// Where and how to reach UP42.
pub struct Settings {
    pub api: String,
    pub auth: String,
    pub ca_file: Option<PathBuf>,
    pub workspace: Option<String>,
}

/// The account's credentials (refreshable), or a token given as it is (one-shot).
enum Credentials {
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
fn credentials() -> Result<Credentials, Error> {
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

pub struct Api {
    http: reqwest::Client,
    settings: Settings,
    credentials: Credentials,
    token: Option<Token>,
    workspace: Option<String>,
}

/// Exit code of a refusal by UP42's API (the token, the workspace, the rate, its own errors).
pub const API_REFUSED: u8 = 7;

impl Api {
    pub fn new(settings: Settings) -> Result<Api, Error> {
        let credentials = credentials()?;
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            // The token never follows a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("up42wh/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::config(format!("--ca-file: cannot read {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::config(format!("--ca-file: {} is not PEM: {e}", path.display()))
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))?;
        let workspace = settings.workspace.clone();
        Ok(Api {
            http,
            settings,
            credentials,
            token: None,
            workspace,
        })
    }

    fn token_url(&self) -> String {
        format!(
            "{}/realms/public/protocol/openid-connect/token",
            self.settings.auth
        )
    }

    /// The current token, fetched (again) when there is none or it is about to expire.
    async fn token(&mut self) -> Result<String, Error> {
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
        let resp = self
            .http
            .post(&url)
            .form(&[
                ("grant_type", "password"),
                ("client_id", "up42-api"),
                ("username", username.as_str()),
                ("password", password.as_str()),
            ])
            .send()
            .await
            .map_err(|e| unreachable("authentication", &url, &e))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            let why = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no reason given");
            return Err(Error::code(
                API_REFUSED,
                format!("UP42 refused the account's credentials ({status}: {why}): check UP42_USERNAME and its password"),
            ));
        }
        let value = body["access_token"]
            .as_str()
            .ok_or_else(|| {
                Error::code(
                    API_REFUSED,
                    "UP42's authentication answered without an access_token",
                )
            })?
            .to_string();
        // Tokens live minutes (expires_in); the next is fetched with a margin of a fifth.
        let life = body["expires_in"].as_u64().unwrap_or(300).max(1);
        let renew_at = Instant::now() + Duration::from_millis(life * 800);
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Some(renew_at),
        });
        Ok(value)
    }

    /// One request to `url` with the token (`what`: UP42's API or its authentication server, for
    /// the error when it does not answer). A 401 with refreshable credentials fetches a new token
    /// and asks once more; the last answer is returned whatever its status.
    async fn authorized(
        &mut self,
        method: &reqwest::Method,
        url: &str,
        what: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Error> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut r = self.http.request(method.clone(), url).bearer_auth(&token);
            if let Some(b) = body {
                r = r.json(b);
            }
            let resp = r.send().await.map_err(|e| unreachable(what, url, &e))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == 401
                && attempt == 0
                && matches!(self.credentials, Credentials::Account { .. })
            {
                self.token = None;
                continue;
            }
            return Ok(Answer {
                status,
                retry_after,
                json,
                text,
            });
        }
        unreachable!("the loop returns")
    }

    /// A request to UP42's API: `data` of its answer; every refusal is one line saying what to do.
    async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let url = format!("{}{path}", self.settings.api);
        let a = self.authorized(&method, &url, "API", body.as_ref()).await?;
        if (200..300).contains(&a.status) {
            return Ok(a.json.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(a.refusal(&method, path, &self.credentials))
    }

    /// The workspace: --workspace, or the `sub` of the token's user info (as up42-py finds it).
    pub async fn workspace(&mut self) -> Result<String, Error> {
        if let Some(w) = &self.workspace {
            return Ok(w.clone());
        }
        let url = format!(
            "{}/realms/public/protocol/openid-connect/userinfo",
            self.settings.auth
        );
        let get = reqwest::Method::GET;
        let a = self.authorized(&get, &url, "authentication", None).await?;
        if a.status == 401 || a.status == 403 {
            return Err(a.refusal(&get, "(the user info)", &self.credentials));
        }
        let sub = a.json["sub"]
            .as_str()
            .filter(|_| a.status == 200)
            .ok_or_else(|| {
                Error::code(
                    API_REFUSED,
                    format!("UP42 did not say which workspace the token is for ({} from its user info): give it with --workspace", a.status),
                )
            })?;
        self.workspace = Some(sub.to_string());
        Ok(sub.to_string())
    }

    /// The event names UP42 offers (GET /webhooks/events).
    pub async fn events(&mut self) -> Result<Vec<String>, Error> {
        let data = self
            .call(reqwest::Method::GET, "/webhooks/events", None)
            .await?;
        Ok(data
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn list(&mut self) -> Result<Vec<Value>, Error> {
        let w = self.workspace().await?;
        let data = self
            .call(
                reqwest::Method::GET,
                &format!("/workspaces/{w}/webhooks"),
                None,
            )
            .await?;
        Ok(data.as_array().cloned().unwrap_or_default())
    }

    /// Creates the webhook, or replaces the one `id` names.
    pub async fn save(
        &mut self,
        id: Option<&str>,
        name: &str,
        url: &str,
        events: &[&str],
        secret: &str,
    ) -> Result<Value, Error> {
        let w = self.workspace().await?;
        let body =
            json!({"name": name, "url": url, "events": events, "secret": secret, "active": true});
        match id {
            None => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/workspaces/{w}/webhooks"),
                    Some(body),
                )
                .await
            }
            Some(id) => {
                self.call(
                    reqwest::Method::PUT,
                    &format!("/workspaces/{w}/webhooks/{id}"),
                    Some(body),
                )
                .await
            }
        }
    }

    pub async fn delete(&mut self, id: &str) -> Result<(), Error> {
        let w = self.workspace().await?;
        self.call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{w}/webhooks/{id}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Runs UP42's test of the webhook for `event`: what UP42 reports.
    pub async fn test(&mut self, id: &str, event: &str) -> Result<Value, Error> {
        let w = self.workspace().await?;
        self.call(
            reqwest::Method::POST,
            &format!("/workspaces/{w}/webhooks/{id}/tests"),
            Some(json!({"eventNames": [event]})),
        )
        .await
    }
}

/// UP42's `what` (API, authentication) did not answer at `url`.
fn unreachable(what: &str, url: &str, e: &reqwest::Error) -> Error {
    Error::code(
        API_REFUSED,
        format!("cannot reach UP42's {what} at {url}: {}", reason(e)),
    )
}

/// A transport error in words, without the URL's query or any header.
fn reason(e: &reqwest::Error) -> String {
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

/// An answer of UP42's: its status, Retry-After, body and the body as JSON (Null when it is none).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    json: Value,
    text: String,
}

impl Answer {
    /// An answer that is not 2xx, as one line a user can act on.
    fn refusal(&self, method: &reqwest::Method, path: &str, credentials: &Credentials) -> Error {
        let said = self.json["error"]["message"]
            .as_str()
            .or(self.json["error"].as_str())
            .or(self.json["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.text.chars().take(200).collect::<String>());
        let what = format!("{method} {path}");
        let msg = match self.status {
            401 => match credentials {
                Credentials::Token(_) => format!("UP42 refused the token for {what} (401: expired or not valid): UP42_TOKEN lives minutes; set UP42_USERNAME and UP42_PASSWORD instead"),
                Credentials::Account { .. } => format!("UP42 refused a fresh token for {what} (401): {said}"),
            },
            403 => format!("UP42 forbids {what} to this account (403): {said}"),
            404 => format!("UP42 does not know {what} (404: no such workspace or webhook): {said}"),
            429 => format!(
                "UP42 asks to slow down (429){}: try again later",
                self.retry_after.as_ref().map(|s| format!(", retry after {s} s")).unwrap_or_default()
            ),
            s if s >= 500 => format!("UP42's API failed on {what} ({s}): try again later; {said}"),
            s => format!("UP42 refused {what} ({s}): {said}"),
        };
        Error::code(API_REFUSED, msg)
    }
}
