//! `sink = "exec"`: a program, the event on its standard input and its envelope in `UP42WH_*`
//! variables. Its exit decides (0 delivered, else tried again); it runs in a process group of its
//! own, which a timeout kills whole; a child it leaves running after exit 0 (a download started in
//! the background) does not hold the delivery. Its environment is clean: `PATH`, `HOME`, `LANG`,
//! the `UP42WH_*` variables and the names the route lists in `env`, nothing of the forwarder's
//! secrets. What it prints is read up to a bound and logged.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use toml::Spanned;

use super::{Attempt, Call, Context, Outcome, Sink};
use crate::error::Error;
use crate::forward::event::Event;
use crate::forward::log::log;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    command: Spanned<Vec<String>>,
    /// Variables of the forwarder's environment the program also gets.
    env: Option<Spanned<Vec<String>>>,
}

pub struct ExecSink {
    argv: Vec<String>,
    env: Vec<String>,
}

/// What the program may print that is kept for the log (the rest is read and dropped).
const KEEP: usize = 4096;
/// How long output is still read once the program exited (a child may hold the pipes).
const AFTER_EXIT: Duration = Duration::from_millis(200);

impl Conf {
    pub fn build(self, cx: &impl Context) -> Result<ExecSink, Error> {
        let span = Some(self.command.span());
        let mut argv = self.command.into_inner();
        let Some(first) = argv.first() else {
            return cx.err(
                span,
                "command",
                "the program and its arguments, not an empty list",
            );
        };
        let Some(found) = cx.program(first) else {
            return cx.err(
                span,
                "command",
                format!("{first}: no such program (or not executable)"),
            );
        };
        argv[0] = found.to_string_lossy().into_owned();
        let env = match self.env {
            None => Vec::new(),
            Some(list) => {
                for n in list.get_ref() {
                    let ok = !n.is_empty()
                        && !n.starts_with(|c: char| c.is_ascii_digit())
                        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        return cx.err(
                            Some(list.span()),
                            "env",
                            format!("{n:?} is not a variable's name"),
                        );
                    }
                }
                list.into_inner()
            }
        };
        Ok(ExecSink { argv, env })
    }
}

impl ExecSink {
    /// The program's whole environment.
    fn environment(&self, call: &Call, e: &Event) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = Vec::new();
        let inherit = ["HOME", "LANG"]
            .into_iter()
            .chain(self.env.iter().map(String::as_str));
        for name in inherit {
            if let Ok(v) = std::env::var(name) {
                vars.push((name.to_string(), v));
            }
        }
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let live = e.live.map_or("", |l| if l { "true" } else { "false" });
        for (n, v) in [
            ("PATH", path.as_str()),
            ("UP42WH_EVENT", e.event_type.as_deref().unwrap_or("")),
            ("UP42WH_STATUS", e.status.as_deref().unwrap_or("")),
            ("UP42WH_ID", e.delivery_id.as_deref().unwrap_or("")),
            ("UP42WH_LIVE", live),
            ("UP42WH_SENDER", e.sender.as_deref().unwrap_or("")),
            ("UP42WH_KEY", &e.key.text),
            ("UP42WH_ROUTE", call.route),
        ] {
            vars.push((n.to_string(), v.to_string()));
        }
        vars
    }

    fn failed(&self, error: String) -> Outcome {
        Outcome::Retry {
            after: None,
            status: None,
            error: format!("{}: {error}", self.program()),
        }
    }

    fn program(&self) -> String {
        PathBuf::from(&self.argv[0])
            .file_name()
            .map_or(self.argv[0].clone(), |n| n.to_string_lossy().into_owned())
    }
}

/// What a program printed so far (up to `KEEP` bytes).
type Kept = Arc<Mutex<Vec<u8>>>;

/// Reads all of `r` into `kept`, keeping the first `KEEP` bytes: a program that prints much
/// never blocks on a full pipe, and what was read is there even when the reading is given up.
async fn drain(mut r: impl AsyncRead + Unpin, kept: Kept) {
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        let mut k = kept.lock().unwrap();
        let room = KEEP.saturating_sub(k.len());
        k.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// The output as one log-friendly line.
fn one_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A program's process group (its pid: `process_group(0)`), killed when dropped unless it ended.
struct Group(u32);

impl Group {
    fn kill(&mut self) {
        if self.0 > 1 {
            // SAFETY: kill(2) with a negative pid signals the group, which is the program's own
            // (process_group(0)), never the forwarder's.
            unsafe {
                libc::kill(-(self.0 as libc::pid_t), libc::SIGKILL);
            }
        }
        self.0 = 0;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Sink for ExecSink {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn deliver<'a>(&'a self, call: &'a Call<'a>, e: &'a Event) -> Attempt<'a> {
        Box::pin(async move {
            let mut cmd = tokio::process::Command::new(&self.argv[0]);
            cmd.args(&self.argv[1..])
                .env_clear()
                .envs(self.environment(call, e))
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(err) => return self.failed(format!("cannot run it: {err}")),
            };
            // The whole group is killed if this attempt is dropped before the program ends (the
            // forwarder stopping with it in flight), not only the program.
            let mut group = Group(child.id().unwrap_or(0));
            let mut body = e.body().as_bytes().to_vec();
            body.push(b'\n');
            let stdin = child.stdin.take();
            // A program that does not read its input is not a failure.
            let feed = tokio::spawn(async move {
                if let Some(mut s) = stdin {
                    let _ = s.write_all(&body).await;
                }
            });
            let kept = Kept::default();
            let out = child
                .stdout
                .take()
                .map(|s| tokio::spawn(drain(s, kept.clone())));
            let err = child
                .stderr
                .take()
                .map(|s| tokio::spawn(drain(s, kept.clone())));
            let status = tokio::time::timeout(call.timeout, child.wait()).await;
            feed.abort();
            let status = match status {
                Ok(Ok(s)) => {
                    // It ended: what it left running is its own business.
                    group.0 = 0;
                    s
                }
                Ok(Err(err)) => return self.failed(err.to_string()),
                Err(_) => {
                    group.kill();
                    let _ = child.wait().await;
                    return self.failed(format!(
                        "did not finish within {:?}: its process group was killed",
                        call.timeout
                    ));
                }
            };
            // Exited: what it printed, not what a child it left behind may print later.
            for h in [out, err].into_iter().flatten() {
                let abort = h.abort_handle();
                if tokio::time::timeout(AFTER_EXIT, h).await.is_err() {
                    abort.abort();
                }
            }
            let said = one_line(&kept.lock().unwrap());
            if status.success() {
                if !said.is_empty() {
                    log(
                        "info",
                        format!(
                            "route {} event {}: {} said: {said}",
                            call.route,
                            e.key,
                            self.program()
                        ),
                    );
                }
                return Outcome::Delivered;
            }
            let last = said.rsplit(" | ").next().unwrap_or("").to_string();
            Outcome::Retry {
                after: None,
                status: status.code().map(|c| c as u16),
                error: format!(
                    "{} exited with {status}{}",
                    self.program(),
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                ),
            }
        })
    }
}
