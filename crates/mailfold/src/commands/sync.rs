//! `mailfold sync [ACCOUNT…] [--force] [--dry-run]`: runs the sync engine for each account and
//! prints its report. Exit status 0 only when every folder of every account synced.
//! On a terminal, per-folder progress bars ([`crate::progress`]) show while it runs.

use std::io::Write;
use std::path::Path;

use mailfold_sync::report::PlanTotals;
use mailfold_sync::{FolderReport, NoProgress, Progress, SyncError, SyncOptions, SyncReport};
use serde_json::{json, Value};

use super::{print_json, Ctx};
use crate::account;
use crate::config::{Account, TlsMode};
use crate::exit;
use crate::lock::AccountLock;
use crate::progress::Bars;
use crate::term;

/// Runs the command; returns the exit status.
pub fn run(ctx: &Ctx, names: &[String], opts: SyncOptions) -> anyhow::Result<u8> {
    let loaded = ctx.load()?;
    let selected = super::online_accounts(ctx, &loaded, names, "sync")?;
    let mut status = exit::OK;
    let mut docs = Vec::new();
    for (name, acct) in selected {
        super::warn_unsupported_sync_keys(name, acct);
        let result = account::state_path(name, acct)
            .and_then(|state| sync_one(ctx, name, acct, &state, &opts));
        let s = match result {
            Ok(report) => report_success(ctx, name, acct, &report, opts.dry_run, &mut docs)?,
            Err(e) => report_failure(ctx, name, acct, &e, &mut docs),
        };
        status = exit::worst(status, s);
    }
    if ctx.json {
        print_json(&json!({ "accounts": docs }))?;
    }
    Ok(status)
}

/// Syncs (or, with `--dry-run`, plans) one account under its lock, with progress bars on a
/// terminal.
fn sync_one(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    state: &Path,
    opts: &SyncOptions,
) -> anyhow::Result<SyncReport> {
    let dry_run = opts.dry_run;
    // A dry run writes nothing, so it needs no lock unless there is a state to
    // read consistently (and it must not create the state's directory).
    let lock = if dry_run && !state.exists() {
        None
    } else {
        Some(AccountLock::acquire(name, state, "sync", ctx.wait)?)
    };
    let spec = account::sync_spec(name, acct)?;
    // Per-folder bars on a terminal only; cleared before the report.
    let bars = Bars::wanted(ctx.json, ctx.quiet).then(|| Bars::new(name));
    let observer: &dyn Progress = match &bars {
        Some(b) => b,
        None => &NoProgress,
    };
    let r = if dry_run {
        // A failed password command is the run's error, as in a sync.
        mailfold_sync::secret_first(&spec, dry_run_account(&spec, opts, observer))
    } else {
        mailfold_sync::sync_account_with_progress(&spec, opts, observer)
    };
    if let Some(b) = &bars {
        b.finish();
    }
    drop(lock);
    r.map_err(sync_error)
}

/// Reports an account that ran: the server's alerts, the report (human, or a JSON object
/// pushed on `docs`), then the `post_sync_command` after a real run (not `dry_run`).
/// Returns the account's exit status.
fn report_success(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    report: &SyncReport,
    dry_run: bool,
    docs: &mut Vec<Value>,
) -> anyhow::Result<u8> {
    // Seed V0063: ALERT text always reaches the user, marked as the server's.
    for a in &report.alerts {
        eprintln!(
            "mailfold: ALERT from server {}: {}",
            acct.host,
            term::line(a)
        );
    }
    let status = if report.is_complete() {
        exit::OK
    } else {
        exit::FAILED
    };
    if ctx.json {
        docs.push(report_json(report, None));
    } else {
        print_human(report, ctx.verbose).map_err(exit::stdout_error)?;
    }
    if !dry_run {
        let hook = acct.post_sync_command.as_ref();
        if let Some(w) = crate::post_sync::after_run(hook, name, &acct.local, report) {
            eprintln!("mailfold: warning: {}", term::line(&w));
        }
    }
    Ok(status)
}

/// Reports an account that could not run: the error and a connection hint on stderr, and
/// with `--json` an object pushed on `docs`. Returns the account's exit status.
fn report_failure(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    e: &anyhow::Error,
    docs: &mut Vec<Value>,
) -> u8 {
    let msg = exit::with_subject(&format!("account {name}"), &format!("{e:#}"));
    eprintln!("mailfold: {}", term::line(&msg));
    if let Some(h) = connection_hint(&format!("{e:#}"), name, Some(acct.tls)) {
        eprintln!("mailfold: hint: {h}");
    }
    if ctx.json {
        docs.push(json!({
            "account": name,
            "complete": false,
            "error": format!("{e:#}"),
        }));
    }
    exit::status_of(e)
}

/// A dry run: the same gathering and planning as a sync, applying nothing, and read-only on
/// both sides: folders are opened with EXAMINE (in gather), and a Maildir or state database
/// that does not exist yet is not created: an empty stand-in in a scratch directory, removed
/// afterwards, plans exactly what a first run would.
fn dry_run_account(
    spec: &mailfold_sync::AccountSpec,
    opts: &SyncOptions,
    observer: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let scratch = tempfile::Builder::new()
        .prefix("mailfold-dry-run")
        .tempdir()
        .map_err(|e| SyncError::Config(format!("creating a scratch directory: {e}")))?;
    let maildir_root = if spec.maildir.exists() {
        spec.maildir.clone()
    } else {
        scratch.path().join("mail")
    };
    let maildir = mailfold_store::Maildir::open(
        &maildir_root,
        mailfold_store::MaildirOptions {
            fsync: false,
            ..mailfold_store::MaildirOptions::default()
        },
    )?;
    let mut db = if spec.state_db.exists() {
        mailfold_store::StateDb::open(&spec.state_db)?
    } else {
        mailfold_store::StateDb::create(&scratch.path().join("state.sqlite"))?
    };
    let mut remote = mailfold_sync::NetRemote::connect(spec)?;
    let r = mailfold_sync::sync_with_remote_progress(
        &mut remote,
        spec,
        opts,
        &maildir,
        &mut db,
        observer,
    );
    mailfold_sync::Remote::logout(&mut remote);
    r.map(|mut r| {
        r.traffic = Some(mailfold_sync::Traffic::of(&remote.stats()));
        r
    })
}

/// What to do about a failure to reach, secure or log in to the server, in the words of
/// `mailfold probe` (which finds the same causes with more detail), from the error's text:
/// the sync engine passes connection failures on as text. `tls` is the account's mode when
/// known. `None` when the error is not about the connection.
pub fn connection_hint(text: &str, account: &str, tls: Option<TlsMode>) -> Option<String> {
    // A configuration problem (an unreadable CA file, a bad host name) says what to fix.
    if text.contains("configuration:") {
        return None;
    }
    let probe = format!("`mailfold probe {account}` shows more");
    if text.contains("waiting for the greeting") {
        return Some(match tls {
            Some(TlsMode::Implicit) => {
                format!("no greeting arrived: is this an IMAP port? {probe}")
            }
            _ => format!(
                "no greeting arrived: a server that expects TLS from the first byte says \
                 nothing in clear; try `tls = \"implicit\"` (port 993). {probe}"
            ),
        });
    }
    if text.contains("did not answer with TLS") {
        return Some(format!(
            "the server does not speak TLS on this port: it may expect STARTTLS \
             (`tls = \"starttls\"`, port 143) or be a plaintext port. {probe}"
        ));
    }
    if text.contains("certificate refused") {
        return Some(format!(
            "`mailfold probe {account}` shows the certificate chain the server presented"
        ));
    }
    if text.contains("authentication failed") {
        return Some(format!(
            "`mailfold probe {account}` shows the mechanisms the server offered and the ones tried"
        ));
    }
    let connection = [
        "connecting to",
        "timed out",
        "TLS:",
        "connection",
        "resolving",
    ];
    connection
        .iter()
        .any(|w| text.contains(w))
        .then(|| format!("run `mailfold probe {account}` for a diagnosis"))
}

/// Maps a sync error to the exit-status classes; the caller prefixes the account name.
fn sync_error(e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Remote(r) => anyhow::Error::new(exit::ServerError(format!("server: {r}"))),
        SyncError::Config(s) => exit::usage(s),
        // The password command's own line and status, as when it ran before the sync.
        SyncError::Secret(e) => anyhow::Error::new(exit::ServerError(e.0)),
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

/// The human report of one account. A dry run says what the run would do, with each
/// operation under its folder at `-v`.
fn print_human(r: &SyncReport, verbose: u8) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let dry = r.dry_run;
    print_account_head(&mut out, r)?;
    let mut quiet = 0usize;
    let mut shown = 0usize;
    for f in &r.folders {
        let (title, mut parts) = folder_summary(r, f);
        if parts.is_empty() && f.warnings.is_empty() && f.errors.is_empty() {
            quiet += 1;
            continue;
        }
        if parts.is_empty() {
            parts.push("no changes".into());
        }
        shown += 1;
        writeln!(out, "  {title}: {}", parts.join(", "))?;
        for w in &f.warnings {
            writeln!(out, "    warning: {}", term::line(w))?;
        }
        for e in &f.errors {
            writeln!(out, "    error: {}", term::line(&e.to_string()))?;
        }
        if dry && verbose > 0 {
            for p in r.planned.iter().filter(|p| p.folder == f.folder) {
                writeln!(out, "    {}", term::line(&p.op))?;
            }
        }
    }
    // A dry run always says what it found, even when that is nothing.
    if dry && shown == 0 && r.refused.is_empty() && r.errors.is_empty() {
        writeln!(out, "  nothing to do")?;
    }
    if quiet > 0 {
        if dry {
            writeln!(out, "  {quiet} folder(s) with nothing to do")?;
        } else {
            writeln!(out, "  {quiet} folder(s) unchanged")?;
        }
    }
    Ok(())
}

/// The account's lines before its folders: the verdict, an adoption of an existing Maildir,
/// the planner's totals, and the account-wide warnings, refusals and errors.
fn print_account_head(out: &mut impl Write, r: &SyncReport) -> std::io::Result<()> {
    let dry = r.dry_run;
    let verdict = if dry {
        "plan (dry run, nothing changed)"
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
    if let Some(t) = r.plan_totals.filter(|t| *t != PlanTotals::default()) {
        // The planner's own totals for the account, before the folders.
        writeln!(
            out,
            "  in all: {} to download, {} to upload, {} flag changes, {} to move, {} to delete",
            t.downloads,
            t.uploads,
            t.local_flag_changes + t.remote_flag_changes,
            t.local_moves + t.remote_moves,
            t.local_deletions + t.remote_deletions,
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "  warning: {}", term::line(w))?;
    }
    // The planner's text says "use --force" exactly for the refusals `--force` lifts (the
    // safety valve, a side that looks empty); a hint here would also promise it for those it
    // does not lift, such as a message the server gave no RFC822.SIZE for.
    for x in &r.refused {
        if dry {
            writeln!(out, "  would be refused: {}", term::line(x))?;
        } else {
            writeln!(out, "  refused: {}", term::line(x))?;
        }
    }
    for e in &r.errors {
        writeln!(out, "  error: {}", term::line(&e.to_string()))?;
    }
    Ok(())
}

/// A folder's title (its name, or old → new name when renamed as a whole) and the parts of
/// its line: counts done (or, in a dry run, planned) and folder-level events. No parts when
/// nothing happened.
fn folder_summary(r: &SyncReport, f: &FolderReport) -> (String, Vec<String>) {
    let dry = r.dry_run;
    let mut parts = Vec::new();
    let counts = [
        (f.downloaded, "downloaded", "to download"),
        (f.uploaded, "uploaded", "to upload"),
        (f.copied, "copied on server", "to copy on server"),
        (f.bound, "matched", "to match"),
        (
            f.local_flag_changes,
            "flag changes here",
            "flag changes to make here",
        ),
        (
            f.remote_flag_changes,
            "flag changes on server",
            "flag changes to make on server",
        ),
        (f.local_deletions, "deleted here", "to delete here"),
        (
            f.remote_deletions,
            "deleted on server",
            "to delete on server",
        ),
        (f.local_moves, "moved here", "to move here"),
        (f.remote_moves, "moved on server", "to move on server"),
        (f.pending, "pending", "pending"),
    ];
    for (n, done, planned) in counts {
        if n > 0 {
            parts.push(format!("{n} {}", if dry { planned } else { done }));
        }
    }
    let would = |s: &str| {
        if dry {
            format!("would be {s}")
        } else {
            s.to_string()
        }
    };
    if f.created_local {
        parts.push(would("created here"));
    }
    if f.created_remote {
        parts.push(would("created on server"));
    }
    if f.deleted {
        parts.push(if dry {
            "folder would be deleted".into()
        } else {
            "folder deleted".into()
        });
    }
    if f.read_only {
        parts.push("read-only".into());
    }
    // A folder renamed as a whole is named with its old name and the side renamed.
    let title = match &f.renamed_from {
        Some(from) => {
            let side = match r.rename_side(from, &f.folder) {
                Some("server") => "renamed on the server",
                Some(_) => "renamed here",
                None => "renamed",
            };
            parts.insert(0, would(side));
            format!("{} → {}", term::line(from), term::line(&f.folder))
        }
        None => term::line(&f.folder).into_owned(),
    };
    (title, parts)
}
