//! `lambent`: the command line, and the only place that picks concrete backends
//! and wires the platform together.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod client;
mod commands;
mod credentials;
mod datadir;
mod serve;
mod stack;

/// The default API port: unclaimed by common developer tools.
pub const DEFAULT_PORT: u16 = 9765;

#[derive(Parser)]
#[command(
    name = "lambent",
    version,
    about = "A self-hosted, AWS-Lambda-compatible serverless platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: the Lambda API, the invoke path and the stores.
    Serve(serve::ServeArgs),
    /// Invoke a function on a running server and print its response.
    Invoke(commands::InvokeArgs),
    /// Print a function's log lines (and follow new ones with --follow).
    Logs(commands::LogsArgs),
    /// Show asynchronous events waiting per function (depth, oldest age).
    Queue(commands::QueueArgs),
    /// Event source mappings: each one's state, lag and counts.
    Mappings(commands::QueueArgs),
    /// Deploy a SAM template: build, upload and update only what changed.
    Deploy(stack::DeployArgs),
    /// Remove a stack's functions.
    Delete(stack::DeleteArgs),
    /// List functions in a table (or --output json).
    Functions(stack::FunctionsArgs),
    /// Print a shell completion script: `lambent completions bash > ~/.local/share/bash-completion/completions/lambent`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `$LAMBENT_DATA_DIR`, else `$XDG_DATA_HOME/lambent`, else `~/.local/share/lambent`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LAMBENT_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("lambent");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/lambent")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => serve::run(args).map_err(Into::into),
        Command::Invoke(args) => commands::invoke(args).map_err(Into::into),
        Command::Logs(args) => commands::logs(args).map_err(Into::into),
        Command::Queue(args) => commands::queue(args).map_err(Into::into),
        Command::Mappings(args) => commands::mappings(args).map_err(Into::into),
        Command::Deploy(args) => stack::deploy(args).map_err(Into::into),
        Command::Delete(args) => stack::delete(args).map_err(Into::into),
        Command::Functions(args) => stack::functions(args).map_err(Into::into),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "lambent",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambent: {e}");
            ExitCode::FAILURE
        }
    }
}
