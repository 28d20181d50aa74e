//! What changed at UP42 since a time: its orders (paged back by `updatedAt`, newest first) and its
//! processing jobs (paged by `rel: next` links, newest created first: UP42 sorts them by creation,
//! not by update). docs/up42.md cites each call.

use std::collections::HashSet;

use serde_json::Value;

use super::{Found, Kind};
use crate::error::Error;
use crate::up42::api::{Api, API_REFUSED};

/// Bounds on pages read in one run: 1,000 pages of 50 are more changes than a workspace makes
/// between two runs.
const PAGES: u64 = 1000;
const SIZE: u64 = 50;
/// How long a processing job may run: one created this long before `from` and still changing
/// after it is not looked for (UP42's jobs run minutes to hours).
const JOB_SPAN: i64 = 2 * 86400;

fn time_of(v: &Value) -> Option<i64> {
    up42webhooks::parse_rfc3339(v.as_str()?.as_bytes()).ok()
}

/// A name UP42 gives an id or a status, as the receiver takes it (learnt.lua's check).
fn plain(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_. ".contains(&b))
}

/// An order or job as listed (its id under `id_key`), unless its id or status is not a name the
/// receiver takes or it was seen already in this run; a job's status upper-cased as the webhooks
/// spell it (the API's is lower-case).
fn take(
    kind: Kind,
    item: &Value,
    id_key: &str,
    updated: Option<i64>,
    seen: &mut HashSet<String>,
) -> Option<Found> {
    let (id, status) = (item[id_key].as_str()?, item["status"].as_str()?);
    if !plain(id) || !plain(status) || !seen.insert(id.to_string()) {
        return None;
    }
    let status = match kind {
        Kind::Order => status.to_string(),
        Kind::Job => status.to_ascii_uppercase(),
    };
    Some(Found {
        kind,
        id: id.to_string(),
        status,
        updated,
        detail: item.clone(),
    })
}

/// The orders updated at or after `from`, each once (its newest state: pages shift while they are
/// read, and an order seen twice is the same order).
pub async fn orders(api: &mut Api, workspace: &str, from: i64) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for page in 0..PAGES {
        let a = api.orders_page(workspace, page, SIZE).await?;
        let content = a["content"].as_array().ok_or_else(|| {
            Error::code(
                API_REFUSED,
                "UP42's API answered GET /v2/orders without its content[]",
            )
        })?;
        let mut older = false;
        for o in content {
            let updated = time_of(&o["updatedAt"]);
            if updated.is_some_and(|t| t < from) {
                older = true;
                continue;
            }
            found.extend(take(Kind::Order, o, "id", updated, &mut seen));
        }
        let pages = a["totalPages"].as_u64().unwrap_or(1);
        if older || content.is_empty() || page + 1 >= pages {
            break;
        }
    }
    Ok(found)
}

/// The processing jobs updated at or after `from`, each once.
pub async fn jobs(api: &mut Api, workspace: &str, from: i64) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut next: Option<String> = None;
    for _ in 0..PAGES {
        let a = api.jobs_page(workspace, next.as_deref()).await?;
        let jobs = a["jobs"].as_array().ok_or_else(|| {
            Error::code(
                API_REFUSED,
                "UP42's API answered GET /v2/processing/jobs without its jobs[]",
            )
        })?;
        let mut older = false;
        for j in jobs {
            if time_of(&j["created"]).is_some_and(|t| t < from - JOB_SPAN) {
                older = true;
            }
            let updated = time_of(&j["updated"]);
            if updated.is_some_and(|t| t < from) {
                continue;
            }
            found.extend(take(Kind::Job, j, "jobID", updated, &mut seen));
        }
        next = a["links"].as_array().and_then(|links| {
            links
                .iter()
                .find(|l| l["rel"] == "next")
                .and_then(|l| l["href"].as_str())
                .map(str::to_string)
        });
        if older || jobs.is_empty() || next.is_none() {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_receiver_takes() {
        assert!(plain("86296865-9e91-4a16-9a3c-d4eaa584c03e"));
        assert!(plain("FAILED_PERMANENTLY"));
        assert!(!plain(""));
        assert!(!plain("a:b"));
        assert!(!plain("../x/y"));
        assert!(!plain(&"a".repeat(101)));
        assert_eq!(
            time_of(&Value::from("2022-07-25T16:32:28.994158Z")),
            Some(1658766748)
        );
        assert_eq!(time_of(&Value::Null), None);
    }
}
