//! UP42's API as the webhook commands use it (docs/up42.md cites the source of each call): an
//! access token from the account's credentials (refreshed before it expires), the workspace, and
//! the webhooks. The token goes to the two configured hosts only (no redirect is followed) and is
//! never part of an error, a log line or the output.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Error;

use super::sign_in::{busy, credentials, not_json, retrying, Reply, SignIn, TRIES};

/// UP42's regions: the API and the authentication server of each (up42-py's `host` module).
fn region(name: &str) -> Option<(&'static str, &'static str)> {
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

impl Settings {
    /// The region's two servers unless `api` or `auth` name others (without a trailing `/`);
    /// None for a region UP42 does not have.
    pub fn new(
        region_name: &str,
        api: Option<String>,
        auth: Option<String>,
        ca_file: Option<PathBuf>,
        workspace: Option<String>,
    ) -> Option<Settings> {
        let (api_default, auth_default) = region(region_name)?;
        let trim = |s: String| s.trim_end_matches('/').to_string();
        Some(Settings {
            api: api.map(trim).unwrap_or_else(|| api_default.into()),
            auth: auth.map(trim).unwrap_or_else(|| auth_default.into()),
            ca_file,
            workspace,
        })
    }

    /// From the variables `up42wh up42` also reads (UP42_REGION, UP42_API_URL, UP42_AUTH_URL,
    /// UP42_CA_FILE, UP42_WORKSPACE_ID): for the forwarder's routes that call UP42.
    pub fn from_env() -> Result<Settings, Error> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let name = env("UP42_REGION").unwrap_or_else(|| "eu".into());
        Settings::new(
            &name,
            env("UP42_API_URL"),
            env("UP42_AUTH_URL"),
            env("UP42_CA_FILE").map(PathBuf::from),
            env("UP42_WORKSPACE_ID"),
        )
        .ok_or_else(|| Error::config(format!("UP42_REGION={name}: UP42's regions are eu and sa")))
    }
}

pub struct Api {
    http: reqwest::Client,
    /// For the storage host's signed URLs: no token, no redirect, no overall timeout (an asset
    /// takes as long as it takes), a read timeout instead.
    storage: reqwest::Client,
    settings: Settings,
    sign_in: SignIn,
    workspace: Option<String>,
}

pub use super::sign_in::API_REFUSED;

impl Api {
    pub fn new(settings: Settings) -> Result<Api, Error> {
        let sign_in = SignIn::new(credentials()?, &settings.auth);
        let certs = match &settings.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::config(format!("--ca-file: cannot read {}: {e}", path.display()))
                })?;
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::config(format!("--ca-file: {} is not PEM: {e}", path.display()))
                })?
            }
        };
        let client = |api: bool| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                // The token never follows a redirect to another host; a signed URL that
                // redirects is not what UP42 gave.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("up42wh/", env!("CARGO_PKG_VERSION")));
            b = if api {
                b.timeout(Duration::from_secs(60))
            } else {
                b.read_timeout(Duration::from_secs(60))
            };
            for c in &certs {
                b = b.add_root_certificate(c.clone());
            }
            b.build()
                .map_err(|e| Error::run(format!("cannot make an HTTP client: {e}")))
        };
        let (http, storage) = (client(true)?, client(false)?);
        let workspace = settings.workspace.clone();
        Ok(Api {
            http,
            storage,
            settings,
            sign_in,
            workspace,
        })
    }

    /// The client for signed storage URLs (a handle: clones share it).
    pub fn storage(&self) -> reqwest::Client {
        self.storage.clone()
    }

    /// One request to `url` with the token (`what`: UP42's API or its authentication server, for
    /// the error when it does not answer), tried `tries` times while it answers 429 or 5xx
    /// (sign_in::retrying). A 401 with refreshable credentials fetches a new token and asks once
    /// more; the last answer is returned whatever its status.
    async fn authorized(
        &mut self,
        method: &reqwest::Method,
        url: &str,
        what: &str,
        body: Option<&Value>,
        tries: u32,
    ) -> Result<Answer, Error> {
        for attempt in 0..2 {
            let token = self.sign_in.token(&self.http).await?;
            let request = || {
                let r = self.http.request(method.clone(), url).bearer_auth(&token);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            };
            let a = retrying(request, what, url, tries).await?;
            if a.status == 401 && attempt == 0 && self.sign_in.renewable() {
                self.sign_in.forget();
                continue;
            }
            return Ok(a);
        }
        unreachable!("the loop returns")
    }

    /// A request to UP42's API, tried `tries` times while it answers 429 or 5xx: its 2xx answer;
    /// any other is one line saying what to do.
    async fn request(
        &mut self,
        method: &reqwest::Method,
        path: &str,
        body: Option<Value>,
        tries: u32,
    ) -> Result<Answer, Error> {
        let url = format!("{}{path}", self.settings.api);
        let a = self
            .authorized(method, &url, "API", body.as_ref(), tries)
            .await?;
        if !(200..300).contains(&a.status) {
            return Err(a.refusal(method, path, self.sign_in.renewable()));
        }
        Ok(a)
    }

    /// A request to UP42's webhook API: `data` of its answer (Null for 204). Its 429 and 5xx are
    /// reported at once (watch has its own schedule); a 2xx that is not UP42's JSON (a proxy's
    /// page) is an error naming what came back.
    async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let a = self.request(&method, path, body, 1).await?;
        if a.status == 204 || a.text.trim().is_empty() {
            return Ok(Value::Null);
        }
        match a.json.get("data") {
            Some(data) if a.json.is_object() => Ok(data.clone()),
            _ => Err(a.not_json(&method, path)),
        }
    }

    /// A call of UP42's v2 API (orders, assets): its answer's JSON object as it is (v2 has no
    /// `data` envelope); 429 and 5xx tried TRIES times.
    async fn call_v2(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let a = self.request(&method, path, body, TRIES).await?;
        if !a.json.is_object() {
            return Err(a.not_json(&method, path));
        }
        Ok(a.json)
    }

    /// GET /v2/orders/{id}: the order (its `status`).
    pub async fn order(&mut self, id: &str) -> Result<Value, Error> {
        self.call_v2(reqwest::Method::GET, &format!("/v2/orders/{id}"), None)
            .await
    }

    /// The order's assets: GET /v2/assets?search={order}, every page, keeping those whose
    /// `orderId` is the order (search also matches names and titles).
    pub async fn assets(&mut self, order: &str) -> Result<Vec<Value>, Error> {
        let mut all = Vec::new();
        // Bounded: 1,000 pages of 50 are more assets than any order has.
        for page in 0..1000 {
            let path = format!("/v2/assets?search={order}&page={page}&size=50");
            let a = self.call_v2(reqwest::Method::GET, &path, None).await?;
            let content = a["content"].as_array().ok_or_else(|| {
                Error::code(
                    API_REFUSED,
                    format!("UP42's API answered GET {path} without its content[]"),
                )
            })?;
            all.extend(
                content
                    .iter()
                    .filter(|x| x["orderId"].as_str() == Some(order))
                    .cloned(),
            );
            let pages = a["totalPages"].as_u64().unwrap_or(1);
            if content.is_empty() || page + 1 >= pages {
                break;
            }
        }
        Ok(all)
    }

    /// GET /v2/orders: a page of the workspace's orders, the most recently updated first.
    pub async fn orders_page(
        &mut self,
        workspace: &str,
        page: u64,
        size: u64,
    ) -> Result<Value, Error> {
        let path = format!(
            "/v2/orders?workspaceId={workspace}&sort=updatedAt,desc&page={page}&size={size}"
        );
        self.call_v2(reqwest::Method::GET, &path, None).await
    }

    /// GET /v2/processing/jobs: the first page of the workspace's processing jobs, the newest
    /// first, or (`next`) the page a `rel: next` link names. A link is followed only on UP42's
    /// API (a path, or a URL under it): the token goes nowhere else.
    pub async fn jobs_page(&mut self, workspace: &str, next: Option<&str>) -> Result<Value, Error> {
        let path = match next {
            None => format!("/v2/processing/jobs?workspaceId={workspace}&sort=created,desc&limit=50"),
            Some(href) => match href.strip_prefix(self.settings.api.as_str()) {
                Some(p) if p.starts_with('/') => p.to_string(),
                _ if href.starts_with('/') && !href.starts_with("//") => href.to_string(),
                _ => {
                    return Err(Error::code(
                        API_REFUSED,
                        format!("UP42's API gave a next page elsewhere ({href}): not followed with its token"),
                    ))
                }
            },
        };
        self.call_v2(reqwest::Method::GET, &path, None).await
    }

    /// POST /v2/assets/{id}/download-url: a signed storage URL, valid seconds to minutes.
    pub async fn download_url(&mut self, asset: &str) -> Result<String, Error> {
        let path = format!("/v2/assets/{asset}/download-url");
        let a = self
            .call_v2(reqwest::Method::POST, &path, Some(json!({})))
            .await?;
        a["url"]
            .as_str()
            .filter(|u| u.starts_with("https://"))
            .map(str::to_string)
            .ok_or_else(|| {
                Error::code(
                    API_REFUSED,
                    format!("UP42's API answered POST {path} without a URL"),
                )
            })
    }

    /// The workspace: --workspace (UP42_WORKSPACE_ID), else the `sub` of the token's user info (as
    /// up42-py finds it), else when the user info is refused or unavailable the `sub` of the access
    /// token itself (the same user id, docs/up42.md).
    pub async fn workspace(&mut self) -> Result<String, Error> {
        if let Some(w) = &self.workspace {
            return Ok(w.clone());
        }
        let url = self.sign_in.userinfo_url();
        let get = reqwest::Method::GET;
        let a = self
            .authorized(&get, &url, "authentication", None, TRIES)
            .await?;
        if a.status == 401 {
            // The token itself (a fresh one too, with the account's credentials) is refused.
            return Err(a.refusal(&get, "(the user info)", self.sign_in.renewable()));
        }
        let sub = a.json["sub"]
            .as_str()
            .filter(|s| a.status == 200 && !s.is_empty())
            .map(str::to_string)
            .or_else(|| self.sign_in.token_subject());
        let Some(sub) = sub else {
            if let Some(e) = busy(a.status, a.retry_after.as_deref(), "the user info") {
                return Err(e);
            }
            let said = a.said();
            return Err(Error::code(
                API_REFUSED,
                format!("UP42 did not say which workspace the token is for (its user info: {}: {said}; the token names none): give it with UP42_WORKSPACE_ID or --workspace", a.status),
            ));
        };
        self.workspace = Some(sub.clone());
        Ok(sub)
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

/// An answer of UP42's.
type Answer = Reply;

impl Reply {
    /// A 2xx that is not the JSON expected, named by what came back.
    fn not_json(&self, method: &reqwest::Method, path: &str) -> Error {
        Error::code(
            API_REFUSED,
            format!(
                "UP42's API answered {method} {path} with what is not its JSON: {}",
                not_json(self.status, self.content_type.as_deref(), &self.text)
            ),
        )
    }

    /// What UP42 said: its error's message, else the start of the body.
    fn said(&self) -> String {
        self.json["error"]["message"]
            .as_str()
            .or(self.json["error_description"].as_str())
            .or(self.json["error"].as_str())
            .or(self.json["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.text.chars().take(200).collect::<String>())
    }

    /// An answer that is not 2xx, as one line a user can act on.
    fn refusal(&self, method: &reqwest::Method, path: &str, renewable: bool) -> Error {
        let said = self.said();
        let what = format!("{method} {path}");
        let msg = match self.status {
            401 if !renewable => format!("UP42 refused the token for {what} (401: expired or not valid): UP42_TOKEN lives minutes; set UP42_USERNAME and UP42_PASSWORD instead"),
            401 => format!("UP42 refused a fresh token for {what} (401): {said}"),
            403 => format!("UP42 forbids {what} to this account (403): {said}"),
            404 if path.starts_with("/v2/") => format!("UP42 does not know {what} (404: no such order or asset in this account): {said}"),
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
