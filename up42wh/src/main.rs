//! `up42wh`: what runs beside the receiver. `up42wh forward` delivers the events it verified to HTTP
//! endpoints, Slack and local programs (src/forward/). Errors are one line naming what to fix.
//!
//! Exit codes: 0 done, 1 a failure while running (the line says what), 2 bad usage or
//! configuration.

mod forward;

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("up42wh: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
