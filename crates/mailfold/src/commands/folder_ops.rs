//! `mailfold create-folder`, `rename-folder`, `delete-folder`.
//!
//! Names are checked before anything changes: control characters are refused (seed V0018),
//! `%` and `*` are allowed (V0019: they are legal in a name, only special in LIST patterns),
//! and a level containing the server's hierarchy delimiter is refused, since the server would
//! split it into two levels (V0020). Levels are separated by `/` on the command line whatever
//! the server's delimiter is.
//!
//! Create and rename change the mirror first and then the server; a server NO undoes the
//! local change and is shown with the server's own text (V0019), so a name the server will
//! never accept does not linger as a change every sync retries. Delete asks the server first
//! when it is reachable, because deleted files cannot be put back if the server then refuses.
//! Offline, each command changes only the mirror, which the next sync carries over: a new
//! local folder is created on the server, a renamed one shows up as moves into the new folder
//! followed by the deletion of the emptied old one, and a deleted one as the deletion of its
//! messages (through the safety valve) and then of the folder.

use mailfold_net::Session;
use mailfold_proto::core::Mailbox;
use mailfold_store::{FolderName, NewFolder, RelPath, StateRead};
use serde_json::json;

use super::{print_json, say_queued, Ctx, Pushed};
use crate::config::Account;
use crate::exit::usage;
use crate::mirror::{parse_folder_name, Mirror};
use crate::online::{self, Connect};

/// Checks a new folder name typed by a user (seeds V0018, V0019, V0020).
pub fn validate_new(name: &str, delimiter: Option<char>) -> anyhow::Result<FolderName> {
    let fname = parse_folder_name(name)?;
    fname
        .validate_user()
        .map_err(|e| usage(format!("folder name {name:?}: {e}")))?;
    if let Some(d) = delimiter {
        if let Some(c) = fname.components().iter().find(|c| c.contains(d)) {
            return Err(usage(format!(
                "folder name {name:?}: the level {c:?} contains the server's hierarchy \
                 delimiter {d:?}, which would split it; separate levels with '/'"
            )));
        }
    }
    Ok(fname)
}

/// Opens a session unless offline; `Err(reason)` when the server is away.
async fn maybe_connect(
    offline: bool,
    name: &str,
    acct: &Account,
) -> anyhow::Result<Result<Session, String>> {
    if offline {
        return Ok(Err("--offline".into()));
    }
    match online::connect(name, acct).await {
        Ok(s) => Ok(Ok(s)),
        Err(Connect::Unreachable(why)) => Ok(Err(why)),
        Err(Connect::Failed(e)) => Err(e),
    }
}

/// The hierarchy delimiter: from the state, else from the server (`LIST "" ""`, RFC 3501
/// 6.3.8).
async fn delimiter(mirror: &Mirror, s: Option<&mut Session>) -> Option<char> {
    if let Some(d) = mirror.delimiter() {
        return Some(d);
    }
    let s = s?;
    let list = s.list("", "").await.ok()?;
    list.first().and_then(|m| m.delimiter)
}

fn wire_string(m: &Mailbox) -> String {
    // Modified UTF-7 is 7-bit, so this is lossless.
    String::from_utf8_lossy(m.as_wire()).into_owned()
}

async fn finish(s: Option<Session>, host: &str) {
    if let Some(s) = s {
        online::logout(s, host).await;
    }
}

/// `mailfold create-folder NAME`.
pub fn run_create(ctx: &Ctx, name_arg: &str) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "create-folder", ctx.wait)?;
    let (pushed, fname) = online::block_on(async {
        let mut session = maybe_connect(ctx.offline, &name, &acct).await?;
        let delim = delimiter(&mirror, session.as_mut().ok()).await;
        if let Ok(s) = session.as_mut() {
            mirror.learn_root(s, &acct, delim).await;
        }
        let fname = validate_new(name_arg, delim)?;
        let existing = mirror.resolve_name(&fname)?;
        if existing.rel.is_some() {
            return Err(usage(format!("folder {fname} already exists")));
        }
        // Seed V0022: created under the root, as the sync would create it.
        let mailbox = mirror.server_mailbox(&fname, delim)?;
        let folder = {
            let (maildir, db) = mirror.parts()?;
            maildir.ensure_folder(&fname, db)?
        };
        let rel = folder.rel().clone();
        let pushed = match &mut session {
            Ok(s) => {
                let r = s.create(&mailbox).await;
                online::show_notifications(s, &acct.host);
                if let Err(e) = r {
                    // Seed V0019: the server's text, and no local leftover to retry forever.
                    let _ = mirror.maildir.delete_folder(&rel, false);
                    let err = online::server_error(&acct.host, e)
                        .context(format!("the server refused to create {fname}"));
                    finish(session.ok(), &acct.host).await;
                    return Err(err);
                }
                if let Err(e) = s.subscribe(&mailbox).await {
                    tracing::info!("SUBSCRIBE {fname}: {e}");
                }
                let db = mirror.db_mut()?;
                if db.folder_by_wire_name(&wire_string(&mailbox))?.is_none() {
                    let nf = NewFolder {
                        wire_name: wire_string(&mailbox),
                        delimiter: delim,
                        local_path: rel,
                        special_use: None,
                        subscribed: true,
                    };
                    db.write(|tx| tx.add_folder(&nf).map(|_| ()))?;
                }
                Pushed::Server
            }
            Err(why) => {
                say_queued(ctx.json, why);
                Pushed::Queued
            }
        };
        finish(session.ok(), &acct.host).await;
        anyhow::Ok((pushed, fname))
    })??;
    report(ctx, &name, "created", &fname.to_string(), None, pushed)
}

fn report(
    ctx: &Ctx,
    account: &str,
    what: &str,
    folder: &str,
    to: Option<&str>,
    pushed: Pushed,
) -> anyhow::Result<u8> {
    if ctx.json {
        print_json(&json!({
            "account": account,
            "action": what,
            "folder": folder,
            "to": to,
            "pushed": pushed.as_str(),
        }))?;
    } else {
        let target = match to {
            Some(t) => format!("{folder} to {t}"),
            None => folder.to_string(),
        };
        let tail = match pushed {
            Pushed::Server => " (on the server too)",
            Pushed::Queued => " (queued for the next sync)",
            Pushed::LocalOnly => "",
        };
        crate::outln!("{what} {target}{tail}")?;
    }
    Ok(crate::exit::OK)
}

/// `mailfold rename-folder FROM TO`.
pub fn run_rename(ctx: &Ctx, from: &str, to: &str) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "rename-folder", ctx.wait)?;
    let old = mirror.resolve_folder(from)?;
    if old.name.components().first().is_some_and(|c| c == "INBOX") {
        // RFC 3501 6.3.5: renaming INBOX moves its messages and leaves INBOX in place, which
        // is not what a folder rename means.
        return Err(usage("INBOX (and folders under it) cannot be renamed"));
    }
    let Some(old_rel) = old.rel.clone() else {
        return Err(usage(format!("no folder {} in the local mirror", old.name)));
    };
    let (pushed, new_name) = online::block_on(async {
        let mut session = maybe_connect(ctx.offline, &name, &acct).await?;
        let delim = delimiter(&mirror, session.as_mut().ok()).await;
        if let Ok(s) = session.as_mut() {
            mirror.learn_root(s, &acct, delim).await;
        }
        let new_name = validate_new(to, delim)?;
        if new_name.components().first().is_some_and(|c| c == "INBOX")
            && new_name.components().len() == 1
        {
            return Err(usage("a folder cannot be renamed to INBOX"));
        }
        if mirror.resolve_name(&new_name)?.rel.is_some() {
            return Err(usage(format!("folder {new_name} already exists")));
        }
        let old_box = mirror.folder_mailbox(&old, delim)?;
        let new_box = mirror.server_mailbox(&new_name, delim)?;
        let new_rel = {
            let (maildir, db) = mirror.parts()?;
            maildir
                .rename_folder(&old_rel, &new_name, db)?
                .rel()
                .clone()
        };
        let pushed = match &mut session {
            Ok(s) => {
                let r = s.rename(&old_box, &new_box).await;
                online::show_notifications(s, &acct.host);
                if let Err(e) = r {
                    let (maildir, db) = mirror.parts()?;
                    if let Err(undo) = maildir.rename_folder(&new_rel, &old.name, db) {
                        tracing::warn!("could not undo the local rename: {undo}");
                    }
                    let err = online::server_error(&acct.host, e)
                        .context(format!("the server refused to rename {}", old.name));
                    finish(session.ok(), &acct.host).await;
                    return Err(err);
                }
                rename_rows(&mut mirror, &old.name, &new_name, &old_rel, &new_rel, delim)?;
                Pushed::Server
            }
            Err(why) => {
                say_queued(ctx.json, why);
                Pushed::Queued
            }
        };
        finish(session.ok(), &acct.host).await;
        anyhow::Ok((pushed, new_name))
    })??;
    report(
        ctx,
        &name,
        "renamed",
        &old.name.to_string(),
        Some(&new_name.to_string()),
        pushed,
    )
}

/// Moves the state rows of a renamed folder and its sub-folders to the new names.
fn rename_rows(
    mirror: &mut Mirror,
    old: &FolderName,
    new: &FolderName,
    old_rel: &RelPath,
    new_rel: &RelPath,
    delim: Option<char>,
) -> anyhow::Result<()> {
    let n = old.components().len();
    let mut changes = Vec::new();
    for (rn, r) in mirror.state_folders()? {
        if rn.components().len() < n || rn.components()[..n] != old.components()[..] {
            continue;
        }
        let mut comps = new.components().to_vec();
        comps.extend_from_slice(&rn.components()[n..]);
        let renamed = FolderName::new(comps)?;
        let wire = wire_string(&mirror.server_mailbox(&renamed, delim)?);
        let suffix = r
            .local_path
            .as_str()
            .strip_prefix(old_rel.as_str())
            .unwrap_or("");
        let local = RelPath::parse(&format!("{}{suffix}", new_rel.as_str()))?;
        changes.push((r.id, wire, local));
    }
    let db = mirror.db_mut()?;
    db.write(|tx| {
        for (id, wire, local) in &changes {
            tx.rename_folder(*id, wire, delim, local)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `mailfold delete-folder NAME [--force]`.
pub fn run_delete(ctx: &Ctx, name_arg: &str, force: bool) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "delete-folder", ctx.wait)?;
    let f = mirror.resolve_folder(name_arg)?;
    if f.name.is_inbox() {
        return Err(usage("INBOX cannot be deleted"));
    }
    if f.rel.is_none() && f.state.is_none() {
        return Err(usage(format!("no folder {} in the local mirror", f.name)));
    }
    let held = match &f.rel {
        Some(_) => mirror.local_folder(&f)?.scan()?.len(),
        None => 0,
    };
    if held > 0 && !force {
        return Err(usage(format!(
            "folder {} holds {held} message(s); use --force to delete them with it",
            f.name
        )));
    }
    let pushed = online::block_on(async {
        let mut session = maybe_connect(ctx.offline, &name, &acct).await?;
        let delim = delimiter(&mirror, session.as_mut().ok()).await;
        if let Ok(s) = session.as_mut() {
            mirror.learn_root(s, &acct, delim).await;
        }
        let mailbox = mirror.folder_mailbox(&f, delim)?;
        let pushed = match &mut session {
            Ok(s) => {
                let r = s.delete(&mailbox).await;
                online::show_notifications(s, &acct.host);
                if let Err(e) = r {
                    let err = online::server_error(&acct.host, e)
                        .context(format!("the server refused to delete {}", f.name));
                    finish(session.ok(), &acct.host).await;
                    return Err(err);
                }
                Pushed::Server
            }
            Err(why) => {
                say_queued(ctx.json, why);
                if held > 20 && !ctx.json {
                    eprintln!(
                        "mailfold: the next sync deletes {held} messages on the server and will ask for --force"
                    );
                }
                Pushed::Queued
            }
        };
        finish(session.ok(), &acct.host).await;
        anyhow::Ok(pushed)
    })??;
    if let Some(rel) = &f.rel {
        mirror.maildir.delete_folder(rel, true)?;
    }
    if pushed == Pushed::Server {
        if let Some(st) = &f.state {
            let db = mirror.db_mut()?;
            if let Err(e) = db.write(|tx| tx.delete_folder(st.id)) {
                tracing::warn!("state row of {} kept: {e}", f.name);
            }
        }
    }
    report(ctx, &name, "deleted", &f.name.to_string(), None, pushed)
}
