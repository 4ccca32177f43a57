//! How the commands that change mail run their change: through the sync engine's one write
//! path ([`mailfold_sync::changes`]). The local half is made first (what a mail reader would
//! do); then, when the server answers, the sync's journaled applier pushes it and records it
//! as synced, so the next sync has nothing to redo. When the server is away the change stays
//! a local change, which the next sync pushes.

use mailfold_sync::changes::{self, Change, ChangeError, Outcome, Pushed as SyncPushed};
use mailfold_sync::SyncError;

use crate::commands::{say_queued, Ctx, Pushed};
use crate::config::Account;
use crate::exit::{usage, ServerError};
use crate::mirror::Mirror;
use crate::online;

/// The account a changing command works on, with its mirror open for writing under the
/// account's lock.
#[derive(Debug)]
pub struct Target {
    /// The account's name.
    pub name: String,
    /// Its configuration.
    pub acct: Account,
    /// Its mirror.
    pub mirror: Mirror,
}

impl Target {
    /// Picks the account ([`Ctx::one_account`]) and opens its mirror for the change `verb`
    /// makes ([`Mirror::open_write`]: under the account's lock).
    pub fn open(ctx: &Ctx, verb: &str) -> anyhow::Result<Target> {
        let (name, acct) = ctx.one_account(None)?;
        let mirror = Mirror::open_write(&name, &acct, verb, ctx.wait)?;
        Ok(Target { name, acct, mirror })
    }

    /// Runs `change` on this account ([`run`]).
    pub fn run(&mut self, ctx: &Ctx, change: Change, context: &str) -> anyhow::Result<Done> {
        run(
            ctx,
            &self.name,
            &self.acct,
            &mut self.mirror,
            change,
            context,
        )
    }
}

/// How one change ended.
#[derive(Debug)]
pub struct Done {
    /// How far it got, as the commands print it.
    pub pushed: Pushed,
    /// What the engine reports.
    pub outcome: Outcome,
    /// Why the server half failed, with `context` attached; the local half stays made.
    pub failure: Option<anyhow::Error>,
}

/// Runs `change` for the account: its local half, then its server half unless `--offline` or
/// the server is not reachable (then [`say_queued`]). `context` says what the user still has
/// when the server half fails (the local change, pushed by the next sync).
pub fn run(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    mirror: &mut Mirror,
    change: Change,
    context: &str,
) -> anyhow::Result<Done> {
    let staged = {
        let (maildir, db) = mirror.parts()?;
        changes::stage(maildir, db, std::slice::from_ref(&change)).map_err(change_error)?
    };
    let outcomes = if !staged.needs_server() {
        staged.queued("")
    } else {
        // Should the server half end before it reports anything, the local half still
        // stands: these are the outcomes to report then.
        let fallback = staged.outcomes_if_queued("");
        match online::open_remote(ctx.offline, name, acct) {
            Ok(Ok(mut remote)) => {
                let spec = crate::account::change_spec(name, acct)?;
                let pushed = {
                    let (maildir, db) = mirror.parts()?;
                    staged.push(&mut remote, &spec, maildir, db)
                };
                online::close_remote(remote, &acct.host);
                match pushed {
                    Ok(o) => o,
                    Err(e) => return failed(fallback, sync_error(&acct.host, e), context),
                }
            }
            Ok(Err(why)) => {
                say_queued(ctx.json, &why);
                staged.queued(&why)
            }
            // Not a server that is away (TLS, authentication, configuration): an error, and
            // the local change stays for the next sync.
            Err(e) => return failed(fallback, e, context),
        }
    };
    let outcome = outcomes
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the change produced no outcome"))?;
    for w in &outcome.warnings {
        eprintln!("mailfold: {}", crate::term::line(w));
    }
    let (pushed, failure) = match &outcome.pushed {
        SyncPushed::Server => (Pushed::Server, None),
        SyncPushed::Queued(_) => (Pushed::Queued, None),
        SyncPushed::LocalOnly => (Pushed::LocalOnly, None),
        SyncPushed::Failed => (
            Pushed::LocalOnly,
            Some(
                anyhow::anyhow!(crate::exit::with_subject(
                    &acct.host,
                    &outcome.errors.join("; ")
                ))
                .context(context.to_owned()),
            ),
        ),
    };
    Ok(Done {
        pushed,
        outcome,
        failure,
    })
}

impl Done {
    /// The command's exit status: OK, or the server half's failure (the local half stands).
    pub fn status(failure: Option<anyhow::Error>) -> anyhow::Result<u8> {
        match failure {
            Some(e) => Err(e),
            None => Ok(crate::exit::OK),
        }
    }
}

/// The end of a change whose server half failed before it reported anything (the login, the
/// connection): the local half stands, as `fallback` describes it.
fn failed(fallback: Vec<Outcome>, e: anyhow::Error, context: &str) -> anyhow::Result<Done> {
    let mut outcome = fallback
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the change produced no outcome"))?;
    outcome.pushed = SyncPushed::Failed;
    outcome.errors.push(format!("{e:#}"));
    Ok(Done {
        pushed: Pushed::LocalOnly,
        outcome,
        failure: Some(e.context(context.to_owned())),
    })
}

/// A local half that could not be made: a name the user gave that does not exist is a usage
/// error, anything else a failure.
fn change_error(e: ChangeError) -> anyhow::Error {
    match e {
        ChangeError::NoFolder(_) | ChangeError::NoMessage { .. } => usage(e.to_string()),
        other => anyhow::Error::new(other),
    }
}

/// A run that could not go on: a broken session is a server error (exit status 3) with the
/// server's text (seed V0064); a failing store is an ordinary failure.
fn sync_error(host: &str, e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Remote(r) => {
            anyhow::Error::new(ServerError(crate::exit::with_subject(host, &r.to_string())))
        }
        other => anyhow::Error::new(other),
    }
}
