//! The subcommands. Each module does its work through the library crates and prints the
//! result, human-readable or as the `--json` document docs/cli.md specifies; `main.rs` turns
//! the returned status or error into the exit status.

pub mod append;
pub mod debug;
pub mod flag;
pub mod folder_ops;
pub mod folders;
pub mod import_config;
pub mod list;
pub mod messages;
pub mod probe;
pub mod search;
pub mod show;
pub mod sync;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::account::{self, Loaded};
use crate::config::Account;

/// What every command gets from the global options.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--account`.
    pub account: Option<String>,
    /// `--offline`.
    pub offline: bool,
    /// `--wait`: wait for a busy account's lock instead of failing.
    pub wait: bool,
    /// `-v` count (0: warnings only).
    pub verbose: u8,
    /// `-q`: no progress bars.
    pub quiet: bool,
}

impl Ctx {
    /// Loads the configuration.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        account::load(self.config.as_deref())
    }

    /// Loads the configuration and picks the one account the command works on (`explicit`
    /// from a positional argument, else `--account`, else the only one).
    pub fn one_account(&self, explicit: Option<&str>) -> anyhow::Result<(String, Account)> {
        self.load()?.one(explicit.or(self.account.as_deref()))
    }
}

/// The accounts a command that needs the server works on: `names`, else `--account`, else
/// all; a usage error when the configuration defines none or `--offline` is given (`verb`
/// names the command in that message).
pub fn online_accounts<'a>(
    ctx: &Ctx,
    loaded: &'a Loaded,
    names: &[String],
    verb: &str,
) -> anyhow::Result<Vec<(&'a str, &'a Account)>> {
    let mut names = names.to_vec();
    if names.is_empty() {
        if let Some(a) = &ctx.account {
            names.push(a.clone());
        }
    }
    let selected = loaded.config.select(&names).map_err(crate::exit::usage)?;
    if selected.is_empty() {
        return Err(crate::exit::usage(format!(
            "{} defines no account ([accounts.NAME])",
            loaded.path.display()
        )));
    }
    if ctx.offline {
        return Err(crate::exit::usage(format!(
            "{verb} needs the server; drop --offline"
        )));
    }
    Ok(selected)
}

/// Warns on stderr about each configuration key of `acct` that the sync does not apply.
pub fn warn_unsupported_sync_keys(name: &str, acct: &Account) {
    for key in account::unsupported_sync_keys(acct) {
        eprintln!(
            "mailfold: warning: account {name}: `{key}` is not applied by this version of sync"
        );
    }
}

/// Whether a command printed its JSON document: an error it returns afterwards is already
/// in that document, so `main` prints no second one.
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether [`print_json`] has written a document in this process.
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::Relaxed)
}

/// Writes one JSON document and a newline to stdout, its strings scrubbed of the process's
/// secrets ([`crate::redact::scrub_json`]).
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    JSON_PRINTED.store(true, Ordering::Relaxed);
    let v = crate::redact::scrub_json(v.clone());
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(crate::exit::stdout_error)
}

/// The `--json` form of an error that ended a command: one object on stdout, so a script
/// reading stdout always gets JSON (schema in docs/cli.md).
pub fn error_json(e: &anyhow::Error, status: u8) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "message": format!("{e:#}"),
            "kind": crate::exit::kind_of(status),
            "status": status,
        }
    })
}

/// How a change ended, for the human and JSON output of the changing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Applied locally and on the server; the state database records it as synced.
    Server,
    /// Applied locally; the server was not reachable (or `--offline`): the next sync pushes
    /// it.
    Queued,
    /// Applied locally only, by nature (a message never uploaded): the next sync uploads it.
    LocalOnly,
}

impl Pushed {
    /// The JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Pushed::Server => "server",
            Pushed::Queued => "queued",
            Pushed::LocalOnly => "local",
        }
    }
}

impl Pushed {
    /// What the human output adds about the server after a change.
    pub fn human_tail(self) -> &'static str {
        match self {
            Pushed::Server => " (on the server too)",
            Pushed::Queued => " (queued for the next sync)",
            Pushed::LocalOnly => "",
        }
    }
}

/// Prints the line that says a change was queued, with why.
pub fn say_queued(json: bool, why: &str) {
    if !json {
        eprintln!("mailfold: server not reachable ({why}); queued for the next `mailfold sync`");
    }
}
