//! `up42wh`: what runs beside the receiver. `up42wh forward` delivers the events it verified to HTTP
//! endpoints, Slack and local programs (src/forward/); `up42wh up42` registers the receiver with
//! UP42 and tests the whole path (src/up42/). Errors are one line naming what to fix.
//!
//! Exit codes: 0 done, 1 a failure while running (the line says what), 2 bad usage or
//! configuration; `up42wh up42` adds 3 to 7 (src/up42/mod.rs).

mod clock;
mod durable;
mod duration;
mod error;
mod forward;
mod lock;
mod retry_after;
mod up42;

/// The async runtime of a subcommand: two worker threads (the machines it runs on have few cores).
fn runtime() -> Result<tokio::runtime::Runtime, error::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| error::Error::run(format!("cannot start the runtime: {e}")))
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "up42wh", version, about = "The up42webhooks command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deliver verified events to the routes of a configuration file, at least once.
    Forward {
        /// The forwarder's configuration (TOML).
        #[arg(
            long,
            short,
            env = "UP42WH_FORWARD_CONFIG",
            default_value = "forward.toml"
        )]
        config: PathBuf,
        /// Where the state and the dead letters are kept, instead of the configuration's
        /// state_dir (the compose service keeps them in a volume, its configuration read-only).
        #[arg(long, env = "UP42WH_FORWARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The receiver's admin listener, instead of the configuration's receiver.url (make
        /// forward passes the one make serve started).
        #[arg(long)]
        receiver: Option<String>,
        #[command(subcommand)]
        action: Option<ForwardAction>,
    },
    /// UP42's webhook API: register the receiver, have UP42 test the whole path, watch it.
    /// Credentials from UP42_USERNAME and UP42_PASSWORD (or UP42_PASSWORD_FILE,
    /// UP42_CREDENTIALS_FILE), or UP42_TOKEN for one command; never from the command line.
    Up42 {
        /// UP42's region: eu (api.up42.com) or sa (api.sa.up42.com).
        #[arg(long, env = "UP42_REGION", default_value = "eu")]
        region: String,
        /// UP42's API, instead of the region's.
        #[arg(long, env = "UP42_API_URL")]
        api: Option<String>,
        /// UP42's authentication server, instead of the region's.
        #[arg(long, env = "UP42_AUTH_URL")]
        auth: Option<String>,
        /// Certificates (PEM) to trust for those two besides the system's.
        #[arg(long, env = "UP42_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// The workspace, instead of the one the account's user info names.
        #[arg(long, env = "UP42_WORKSPACE_ID")]
        workspace: Option<String>,
        #[command(subcommand)]
        action: Up42Action,
    },
}

#[derive(clap::Args)]
struct TestArgs {
    /// The webhook to test, by id (up42wh up42 list).
    #[arg(long)]
    id: Option<String>,
    /// The webhook to test, by its URL (else the workspace's only webhook).
    #[arg(long)]
    url: Option<String>,
    /// The event UP42 sends as a test.
    #[arg(long, default_value = "job.status")]
    event: String,
    /// The receiver's admin listener (make up42-test passes make serve's).
    #[arg(long, default_value = "http://127.0.0.1:9889")]
    receiver: String,
    /// How long to wait for the event to arrive.
    #[arg(long, default_value = "30s", value_parser = duration)]
    timeout: std::time::Duration,
}

#[derive(Subcommand)]
enum Up42Action {
    /// Register the receiver's URL with UP42 (or update the webhook it already has), with the
    /// receiver's secret, for job.status and order.status, active.
    Connect {
        /// The receiver's public URL: https://.../receive-webhooks.
        #[arg(long)]
        url: String,
        /// The webhook's name at UP42.
        #[arg(long, default_value = "up42webhooks")]
        name: String,
        /// The receiver's secret file, when neither UP42_WEBHOOK_SECRET nor
        /// UP42_WEBHOOK_SECRET_FILE is set (its first line is given to UP42).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Have UP42 send its test event and wait for it in the receiver: one line, passed with the
    /// round trip or what failed. Exit 0 passed, 3 the receiver refused it, 4 UP42 could not
    /// reach the URL, 5 reached but nothing stored, 6 nothing in time, 7 UP42's API refused.
    Test(TestArgs),
    /// The same test every --every; the first failure ends it with that test's exit code.
    Watch {
        #[arg(long, default_value = "1h", value_parser = duration)]
        every: std::time::Duration,
        /// After each test that passed, a reconciliation (up42wh up42 reconcile) with its
        /// watermark in this file.
        #[arg(long)]
        reconcile_state: Option<PathBuf>,
        #[command(flatten)]
        test: TestArgs,
    },
    /// A fulfilled order's assets into DIR/ORDER_ID/, each verified (length, CRC32C, MD5) before
    /// it takes its name, resumed after a cut, then DIR/ORDER_ID/manifest.json. Exit 0 complete, 7
    /// UP42's API or its storage refused, 8 the order is not fulfilled, 9 the disk is full, 10 an
    /// asset did not verify, 11 an archive was not unpacked (--extract).
    Download {
        /// The order (a UUID, as order.status events name it in body.orderId).
        #[arg(long)]
        order: String,
        /// The folder the order's folder goes into.
        #[arg(long)]
        to: PathBuf,
        /// Assets fetched at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Wait this long for an order that is not fulfilled yet (else exit 8 at once).
        #[arg(long, value_parser = duration)]
        wait: Option<std::time::Duration>,
        /// How often to ask for the order's status while waiting.
        #[arg(long, default_value = "30s", value_parser = duration)]
        poll: std::time::Duration,
        /// Unpack each ZIP archive beside it, into a folder of its name (entries that would leave
        /// it and links refused, the size bounded; exit 11 when refused).
        #[arg(long)]
        extract: bool,
    },
    /// What UP42 sent while the receiver was down: the orders and processing jobs changed since
    /// the last run (UP42's API), each status the receiver never received stored through its
    /// admin listener (POST /learnt-webhooks), marked as learnt from the API. A line per status
    /// stored and one for the run. Exit 0 done, 7 UP42's API refused, 12 the receiver's admin
    /// listener could not be read or written.
    Reconcile {
        /// The receiver's admin listener.
        #[arg(long, env = "UP42WH_RECEIVER", default_value = "http://127.0.0.1:9889")]
        receiver: String,
        /// From this far back (7d, 36h) or this time (RFC 3339) instead of the last run's
        /// watermark (the first run looks back 7 days).
        #[arg(long, value_parser = since)]
        since: Option<i64>,
        /// The watermark's file (default: $STATE_DIRECTORY, else ~/.local/state/up42wh, then
        /// reconcile.json).
        #[arg(long, env = "UP42WH_RECONCILE_STATE")]
        state: Option<PathBuf>,
        /// Run again every this long (15m) until stopped; a failed run is said and tried again.
        #[arg(long, value_parser = duration)]
        every: Option<std::time::Duration>,
    },
    /// The workspace's webhooks, one a line: id, active, URL, events, name.
    List,
    /// Delete a webhook.
    Delete {
        #[arg(long)]
        id: String,
    },
}

fn up42_main(
    region: String,
    api: Option<String>,
    auth: Option<String>,
    ca_file: Option<PathBuf>,
    workspace: Option<String>,
    action: Up42Action,
) -> Result<(), error::Error> {
    let settings =
        up42::Settings::new(&region, api, auth, ca_file, workspace).ok_or_else(|| {
            error::Error::config(format!("--region {region}: UP42's regions are eu and sa"))
        })?;
    let action = match action {
        Up42Action::Connect {
            url,
            name,
            secret_file,
        } => up42::Action::Connect {
            url,
            name,
            secret_file,
        },
        Up42Action::Test(t) => up42::Action::Test(test_of(t)),
        Up42Action::Watch {
            every,
            reconcile_state,
            test,
        } => up42::Action::Watch {
            reconcile: reconcile_state.map(|state| up42::reconcile::Options {
                receiver: test.receiver.clone(),
                admin_token: admin_token(),
                since: None,
                state,
            }),
            test: test_of(test),
            every,
        },
        Up42Action::Download {
            order,
            to,
            parallel,
            wait,
            poll,
            extract,
        } => up42::Action::Download(up42::download::Options {
            order,
            to,
            parallel,
            wait,
            poll,
            extract,
            say: |line| println!("{line}"),
        }),
        Up42Action::Reconcile {
            receiver,
            since,
            state,
            every,
        } => up42::Action::Reconcile(
            up42::reconcile::Options {
                receiver,
                admin_token: admin_token(),
                since,
                state: state.unwrap_or_else(up42::reconcile::default_state),
            },
            every,
        ),
        Up42Action::List => up42::Action::List,
        Up42Action::Delete { id } => up42::Action::Delete { id },
    };
    up42::main(settings, action)
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    duration::duration(s).ok_or_else(|| format!("{s:?}: a duration such as 30s, 5m or 1h"))
}

fn since(s: &str) -> Result<i64, String> {
    up42::reconcile::since(s)
        .ok_or_else(|| format!("{s:?}: a duration back from now (7d, 36h) or a time (RFC 3339)"))
}

/// The receiver's admin token, where the receiver reads it.
fn admin_token() -> Option<String> {
    std::env::var("UP42_WEBHOOK_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

fn test_of(a: TestArgs) -> up42::Test {
    up42::Test {
        id: a.id,
        url: a.url,
        event: a.event,
        receiver: a.receiver.trim_end_matches('/').to_string(),
        admin_token: admin_token(),
        timeout: a.timeout,
    }
}

#[derive(Subcommand)]
enum ForwardAction {
    /// Send the events of a dead-letter file again; the ones delivered leave the file.
    Replay {
        /// The dead-letter file (JSON lines), by default the one the configuration names.
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Only this route's events.
        #[arg(long)]
        route: Option<String>,
    },
    /// What a running forwarder reports: per route delivered, retried, dead-lettered, pending,
    /// circuit; its lag and gaps.
    Status,
    /// Check the configuration and exit.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Forward {
            config,
            state_dir,
            receiver,
            action,
        } => forward::main(
            &config,
            state_dir,
            receiver,
            action.map(|a| match a {
                ForwardAction::Replay { dead_letter, route } => {
                    forward::Action::Replay { dead_letter, route }
                }
                ForwardAction::Status => forward::Action::Status,
                ForwardAction::Check => forward::Action::Check,
            }),
        ),
        Command::Up42 {
            region,
            api,
            auth,
            ca_file,
            workspace,
            action,
        } => up42_main(region, api, auth, ca_file, workspace, action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("up42wh: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
