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
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.verbose);
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is::<exit::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            if json && !commands::json_printed() {
                // Best effort: a closed stdout still gets the stderr line below.
                let _ = commands::print_json(&commands::error_json(&e, exit::status_of(&e)));
            }
            // The message may carry a server's text: one safe line.
            eprintln!("mailfold: error: {}", term::line(&format!("{e:#}")));
            ExitCode::from(exit::status_of(&e))
        }
    }
}

/// The net under every `println!`: one that finds stdout closed panics (`failed printing to
/// stdout: Broken pipe`). The commands' own output goes through `outln!` or maps the write
/// error to [`exit::StdoutClosed`]; for any line that does not (watch's per-run lines, from
/// its watcher threads), the reader is gone all the same, so the process ends quietly with
/// status 0, as a closed pipe ends `cat`. Every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(i32::from(exit::OK));
        }
        default(info);
    }));
}

/// A command line clap refused: its message and status 2, or with `--json` (before any
/// `--`) the same as a JSON error object on stdout. Help and version requests print as
/// clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || shown {
        e.exit();
    }
    let message = e.render().to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    let doc = serde_json::json!({
        "error": {
            "message": first,
            "kind": exit::kind_of(exit::USAGE),
            "status": exit::USAGE,
        }
    });
    let _ = commands::print_json(&doc);
    eprint!("{message}");
    ExitCode::from(exit::USAGE)
}

/// `-v` info, `-vv` debug, `-vvv` trace, on stderr, coloured only on a terminal. Secrets cannot appear: they are held in
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
    // Colour codes only for a person at a terminal: in a file or a pipe (`2>watch.log`,
    // journald) they are noise; `NO_COLOR` (no-color.org) turns them off everywhere.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(mailfold::redact::ScrubbedStderr)
        .with_target(verbose >= 2)
        .with_ansi(ansi)
        .try_init();
}

/// Runs the command line's command; returns the exit status. One match with an arm per
/// command, each only moving the parsed arguments into the command's own `run`: split, it
/// would only scatter the table of commands.
fn run(cli: Cli) -> anyhow::Result<u8> {
    let ctx = ctx_of(&cli);
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
            force,
        } => commands::append::run(&ctx, &file, folder.as_deref(), draft, seen, force),
        Command::CreateFolder { name } => commands::folder_ops::run_create(&ctx, &name),
        Command::RenameFolder { from, to } => commands::folder_ops::run_rename(&ctx, &from, &to),
        Command::DeleteFolder { name, force } => {
            commands::folder_ops::run_delete(&ctx, &name, force)
        }
        Command::Search { folder, query } => commands::search::run(&ctx, &folder, &query),
        Command::Probe(a) => commands::probe::run(&ctx, &a),
        Command::Fleet(f) => mailfold::fleet::command(f, ctx.quiet),
        Command::ImportConfig { file } => commands::import_config::run(&ctx, &file),
        Command::Completions { shell } => completions(shell),
        Command::Man => {
            exit::write_bytes(&mailfold::man::render()?)?;
            Ok(exit::OK)
        }
        Command::Debug(DebugCommand::Parse { no_greeting }) => debug_parse(no_greeting),
    }
}

/// What every command gets from the global options.
fn ctx_of(cli: &Cli) -> Ctx {
    Ctx {
        config: cli.config.clone(),
        json: cli.json,
        account: cli.account.clone(),
        offline: cli.offline,
        wait: cli.wait,
        verbose: cli.verbose,
        quiet: cli.quiet,
    }
}

/// `mailfold completions SHELL`: the shell's completion script on stdout. Rendered into
/// memory first: clap_complete panics on a write error, and a closed pipe
/// (`completions zsh | head`) must end quietly.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mailfold", &mut text);
    exit::write_bytes(&text)?;
    Ok(exit::OK)
}

/// `mailfold debug parse`: parses a server stream from stdin, one JSON line per response
/// on stdout; status 1 when a response was malformed or the stream ended mid-response.
fn debug_parse(no_greeting: bool) -> anyhow::Result<u8> {
    let mut out = exit::WatchedStdout::new();
    let summary =
        match commands::debug::parse_stream(&mut std::io::stdin().lock(), &mut out, !no_greeting) {
            Ok(s) => s,
            Err(_) if out.closed => return Err(anyhow::Error::new(exit::StdoutClosed)),
            Err(e) => return Err(e.into()),
        };
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
