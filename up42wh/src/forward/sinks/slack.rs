//! `sink = "slack"`: a message to a Slack incoming webhook (its URL is the secret). Everything
//! taken from the event is escaped as Slack's formatting rules ask (`&`, `<`, `>`), and the blocks'
//! text is `verbatim`, so an event cannot mention `@channel`, make a link or a channel name.

use serde::Deserialize;
use toml::Spanned;

use super::http::post;
use super::{Attempt, Call, Context, Sink};
use crate::error::Error;
use crate::forward::event::Event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
}

pub struct SlackSink {
    url: String,
}

impl Conf {
    pub fn build(self, cx: &impl Context) -> Result<SlackSink, Error> {
        let Some(url) = cx.secret(
            "url",
            self.url.as_ref(),
            self.url_env.as_ref(),
            self.url_file.as_ref(),
        )?
        else {
            return cx
                .err_route("a slack sink needs its incoming-webhook URL: url_env or url_file");
        };
        let unread = url.is_empty() && !cx.reads_secrets();
        if !unread
            && !matches!(reqwest::Url::parse(&url), Ok(u) if matches!(u.scheme(), "http" | "https"))
        {
            return cx.err_route("url: the Slack URL is not an http(s) URL");
        }
        Ok(SlackSink { url })
    }
}

impl Sink for SlackSink {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn deliver<'a>(&'a self, call: &'a Call<'a>, e: &'a Event) -> Attempt<'a> {
        Box::pin(async move { post(call, &self.url, Vec::new(), message(e).to_string()).await })
    }
}

/// Text from an event, safe in Slack's text: `&`, `<` and `>` escaped (Slack's control
/// sequences, mentions and links all start with `<`), a backtick (which would end the code span
/// it stands in) replaced, at most 200 characters.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().take(200) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\''),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The Slack message: who, what, live or test, when; in text (notifications) and blocks.
pub fn message(e: &Event) -> serde_json::Value {
    let member = |k: &str| escape(&e.body_member(k).unwrap_or_else(|| "?".into()));
    let what = match e.event_type.as_deref() {
        Some("job.status") => format!("job {}", member("jobId")),
        Some("order.status") => format!("order {}", member("orderId")),
        Some(t) => escape(t),
        None => "event".to_string(),
    };
    let status = escape(e.status.as_deref().unwrap_or("(no status)"));
    let mode = match e.live {
        Some(true) => "live",
        Some(false) => "test",
        None => "",
    };
    let when = e
        .received
        .map(up42webhooks::format_rfc3339)
        .unwrap_or_default();
    let sender = escape(e.sender.as_deref().unwrap_or("up42"));
    let who = if sender == "up42" {
        "UP42".to_string()
    } else {
        sender.clone()
    };
    let mut text = format!("{who} {what}: {status}");
    if !mode.is_empty() {
        text.push_str(&format!(" ({mode})"));
    }
    if !when.is_empty() {
        text.push_str(&format!(" at {when}"));
    }
    let context = format!(
        "{sender} · {} · {mode} · {when} · key {}",
        escape(e.event_type.as_deref().unwrap_or("-")),
        escape(&e.key.text)
    );
    serde_json::json!({
        "text": text,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "verbatim": true, "text": format!("*{what}*: `{status}`") } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "verbatim": true, "text": context } ] }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_from_an_event_becomes_a_mention_or_a_link() {
        let line = r#"{"key":7,"received":1,"sender":"up42","event_type":"order.status","status":"<!channel> & <https://evil.example|click>","live":true,"event":{"body":{"orderId":"o-1 <@U123> `x`"}}}"#;
        let e = Event::parse(line).unwrap();
        let m = message(&e);
        let all = m.to_string();
        for bad in ["<!channel>", "<@U123>", "<https://evil", "& "] {
            assert!(!all.contains(bad), "{bad} in {all}");
        }
        let section = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            section,
            "*order o-1 &lt;@U123&gt; 'x'*: `&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;`"
        );
        assert_eq!(m["blocks"][0]["text"]["verbatim"], true);
        assert!(m["text"]
            .as_str()
            .unwrap()
            .starts_with("UP42 order o-1 &lt;@U123&gt;"));
    }
}
