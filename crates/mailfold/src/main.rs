//! The mailfold command-line tool. This file parses arguments, sets up logging, runs the
//! command through the library, and maps the outcome to an exit status (README "Exit
//! status"; the policy is in `mailfold::exit`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use mailfold::cli::{Cli, Command, DebugCommand};
use mailfold::commands::{self, Ctx};
use mailfold::exit;
use mailfold::term;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is::<exit::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            // The message may carry a server's text: one safe line.
            eprintln!("mailfold: error: {}", term::line(&format!("{e:#}")));
            ExitCode::from(exit::status_of(&e))
        }
    }
}

/// `-v` info, `-vv` debug, `-vvv` trace, on stderr. Secrets cannot appear: they are held in
/// `Secret`, whose `Debug` redacts, and the protocol engine never logs command arguments of
/// LOGIN or AUTHENTICATE; every line is scrubbed of the process's secrets all the same
/// (`mailfold::redact`), because records also come from crates we do not control.
///
/// Those crates (rustls among them) log through the `log` crate: `try_init` installs the
/// bridge (tracing-subscriber's `tracing-log` feature), so their records obey the same level
/// (rustls's handshake details at `-vv`), the same format and the same scrubbing.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(mailfold::redact::ScrubbedStderr)
        .with_target(verbose >= 2)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let ctx = Ctx {
        config: cli.config.clone(),
        json: cli.json,
        account: cli.account.clone(),
        offline: cli.offline,
        wait: cli.wait,
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Sync {
            accounts,
            force,
            dry_run,
            upload_unmatched,
        } => commands::sync::run(
            &ctx,
            &accounts,
            mailfold_sync::SyncOptions {
                force,
                dry_run,
                upload_unmatched,
            },
        ),
        Command::Watch {
            accounts,
            idle,
            full_check_every,
            poll_every,
        } => commands::watch::run(
            &ctx,
            &commands::watch::WatchArgs {
                accounts,
                idle,
                full_check_minutes: full_check_every,
                poll_seconds: poll_every,
            },
        ),
        Command::Folders {
            account_name,
            server,
            local,
        } => commands::folders::run(&ctx, account_name.as_deref(), server, local),
        Command::List {
            folder,
            unseen,
            limit,
            sort,
            reverse,
        } => commands::list::run(&ctx, &folder, unseen, limit, sort, reverse),
        Command::Show {
            folder,
            id,
            raw,
            html,
        } => commands::show::run(&ctx, &folder, &id, raw, html),
        Command::Flag(a) => commands::flag::run(&ctx, &a),
        Command::Move { folder, ids, to } => commands::messages::run_move(&ctx, &folder, &ids, &to),
        Command::Delete { folder, ids } => commands::messages::run_delete(&ctx, &folder, &ids),
        Command::Append {
            file,
            folder,
            draft,
            seen,
        } => commands::append::run(&ctx, &file, folder.as_deref(), draft, seen),
        Command::CreateFolder { name } => commands::folder_ops::run_create(&ctx, &name),
        Command::RenameFolder { from, to } => commands::folder_ops::run_rename(&ctx, &from, &to),
        Command::DeleteFolder { name, force } => {
            commands::folder_ops::run_delete(&ctx, &name, force)
        }
        Command::Search { folder, query } => commands::search::run(&ctx, &folder, &query),
        Command::Probe(a) => commands::probe::run(&ctx, &a),
        Command::ImportConfig { file } => commands::import_config::run(&ctx, &file),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mailfold", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(exit::OK)
        }
        Command::Debug(DebugCommand::Parse { no_greeting }) => {
            let summary = commands::debug::parse_stream(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                !no_greeting,
            )?;
            if summary.all_parsed() {
                Ok(exit::OK)
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
                Ok(exit::FAILED)
            }
        }
    }
}
