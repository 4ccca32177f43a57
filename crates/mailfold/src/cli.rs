//! Argument definitions. Kept apart from `main.rs` so the man page and shell completions are
//! generated from the same definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mailfold: a two-way mirror of IMAP folders into local Maildir, and a mail command line.
#[derive(Debug, Parser)]
#[command(name = "mailfold", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/mailfold/config.toml]
    #[arg(long, global = true, value_name = "FILE", env = "MAILFOLD_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Machine-readable output: one JSON document (or one per line where documented).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tools for diagnosing servers.
    #[command(subcommand)]
    Debug(DebugCommand),
}

/// `mailfold debug …`
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Parse a raw server byte stream from stdin; print one JSON object per response.
    ///
    /// Exit status 0 only when every response parsed.
    Parse {
        /// The stream does not start with a greeting (captured mid-session).
        #[arg(long)]
        no_greeting: bool,
    },
}
