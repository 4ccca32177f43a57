//! `mailfold sync [ACCOUNT…] [--force] [--dry-run]`: runs the sync engine for each account and
//! prints its report. Exit status 0 only when every folder of every account synced (issue 4).
//! On a terminal, per-folder progress bars ([`crate::progress`]) show while it runs.

use std::io::Write;

use mailfold_sync::{NoProgress, Progress, SyncError, SyncOptions, SyncReport};
use serde_json::{json, Value};

use super::{print_json, Ctx};
use crate::account;
use crate::exit;
use crate::lock::AccountLock;
use crate::progress::Bars;
use crate::term;

/// Runs the command; returns the exit status.
pub fn run(ctx: &Ctx, names: &[String], opts: SyncOptions) -> anyhow::Result<u8> {
    let loaded = ctx.load()?;
    let mut names = names.to_vec();
    if names.is_empty() {
        if let Some(a) = &ctx.account {
            names.push(a.clone());
        }
    }
    let selected = loaded.config.select(&names).map_err(exit::usage)?;
    if selected.is_empty() {
        return Err(exit::usage(format!(
            "{} defines no account ([accounts.NAME])",
            loaded.path.display()
        )));
    }
    if ctx.offline {
        return Err(exit::usage("sync needs the server; drop --offline"));
    }
    let mut status = exit::OK;
    let mut docs = Vec::new();
    for (name, acct) in selected {
        for key in account::unsupported_sync_keys(acct) {
            eprintln!(
                "mailfold: warning: account {name}: `{key}` is not applied by this version of sync"
            );
        }
        let result = account::state_path(name, acct)
            .and_then(|state| AccountLock::acquire(name, &state, "sync", ctx.wait))
            .and_then(|lock| {
                let spec = account::sync_spec(name, acct)?;
                // Per-folder bars on a terminal only (issue 6); cleared before the report.
                let bars = Bars::wanted(ctx.json, ctx.quiet).then(|| Bars::new(name));
                let observer: &dyn Progress = match &bars {
                    Some(b) => b,
                    None => &NoProgress,
                };
                let r = mailfold_sync::sync_account_with_progress(&spec, &opts, observer);
                if let Some(b) = &bars {
                    b.finish();
                }
                drop(lock);
                r.map_err(sync_error)
            });
        match result {
            Ok(report) => {
                // Seed V0063: ALERT text always reaches the user, marked as the server's.
                for a in &report.alerts {
                    eprintln!(
                        "mailfold: ALERT from server {}: {}",
                        acct.host,
                        term::line(a)
                    );
                }
                if !report.is_complete() {
                    status = exit::worst(status, exit::FAILED);
                }
                if ctx.json {
                    docs.push(report_json(&report, None));
                } else {
                    print_human(&report).map_err(exit::stdout_error)?;
                }
            }
            Err(e) => {
                status = exit::worst(status, exit::status_of(&e));
                eprintln!(
                    "mailfold: account {name}: {}",
                    term::line(&format!("{e:#}"))
                );
                if ctx.json {
                    docs.push(json!({
                        "account": name,
                        "complete": false,
                        "error": format!("{e:#}"),
                    }));
                }
            }
        }
    }
    if ctx.json {
        print_json(&json!({ "accounts": docs }))?;
    }
    Ok(status)
}

/// Maps a sync error to the exit-status classes; the caller prefixes the account name.
fn sync_error(e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Remote(r) => anyhow::Error::new(exit::ServerError(format!("server: {r}"))),
        SyncError::Config(s) => exit::usage(s),
        other => anyhow::Error::new(other),
    }
}

/// The JSON object of one account (schema in docs/cli.md).
pub fn report_json(r: &SyncReport, error: Option<&str>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.insert("complete".into(), json!(r.is_complete() && error.is_none()));
        m.insert("error".into(), json!(error));
    }
    v
}

fn print_human(r: &SyncReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let verdict = if r.dry_run {
        "planned (dry run, nothing changed)"
    } else if r.is_complete() {
        "synced"
    } else {
        "incomplete"
    };
    writeln!(out, "account {}: {verdict}", r.account)?;
    if let Some(a) = &r.adoption {
        writeln!(
            out,
            "  adopted the existing Maildir: {} by UID (mbsync/OfflineIMAP records), {} by content, {} kept local-only, {} recorded UID(s) not confirmed by the server",
            a.by_uid, a.by_content, a.local_only, a.uid_rejected
        )?;
        for f in &a.validity_changed {
            writeln!(
                out,
                "  {}: UIDVALIDITY changed since the other tool ran; matched by content",
                term::line(f)
            )?;
        }
    }
    for w in &r.warnings {
        writeln!(out, "  warning: {}", term::line(w))?;
    }
    for x in &r.refused {
        writeln!(
            out,
            "  refused: {} (run `mailfold sync --force` to apply)",
            term::line(&x.to_string())
        )?;
    }
    for e in &r.errors {
        writeln!(out, "  error: {}", term::line(e))?;
    }
    let mut quiet = 0usize;
    for f in &r.folders {
        let mut parts = Vec::new();
        let mut add = |n: usize, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        add(f.downloaded, "downloaded");
        add(f.uploaded, "uploaded");
        add(f.bound, "matched");
        add(f.local_flag_changes, "flag changes here");
        add(f.remote_flag_changes, "flag changes on server");
        add(f.local_deletions, "deleted here");
        add(f.remote_deletions, "deleted on server");
        add(f.local_moves, "moved here");
        add(f.remote_moves, "moved on server");
        add(f.pending, "pending");
        if f.created_local {
            parts.push("created here".into());
        }
        if f.created_remote {
            parts.push("created on server".into());
        }
        if f.deleted {
            parts.push("folder deleted".into());
        }
        if f.read_only {
            parts.push("read-only".into());
        }
        if parts.is_empty() && f.warnings.is_empty() && f.errors.is_empty() {
            quiet += 1;
            continue;
        }
        if parts.is_empty() {
            parts.push("no changes".into());
        }
        writeln!(out, "  {}: {}", term::line(&f.folder), parts.join(", "))?;
        for w in &f.warnings {
            writeln!(out, "    warning: {}", term::line(w))?;
        }
        for e in &f.errors {
            writeln!(out, "    error: {}", term::line(e))?;
        }
    }
    if quiet > 0 {
        writeln!(out, "  {quiet} folder(s) unchanged")?;
    }
    Ok(())
}
