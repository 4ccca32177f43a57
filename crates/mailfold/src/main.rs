//! The mailfold command-line tool. This file parses arguments, runs the command through the
//! library, and maps the outcome to an exit status (see README "Exit status").
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mailfold::cli::{Cli, Command, DebugCommand};
use mailfold::commands;

/// Exit statuses (documented in the README).
mod exit {
    /// Some work failed (a folder did not sync, a response did not parse).
    pub const FAILED: u8 = 1;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailfold: error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Debug(DebugCommand::Parse { no_greeting }) => {
            let summary = commands::debug::parse_stream(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                !no_greeting,
            )?;
            if summary.all_parsed() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "mailfold: {} responses parsed, {} malformed{}",
                    summary.responses,
                    summary.errors,
                    if summary.trailing > 0 {
                        ", stream ended mid-response"
                    } else {
                        ""
                    }
                );
                Ok(ExitCode::from(exit::FAILED))
            }
        }
    }
}
