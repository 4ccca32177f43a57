//! `mailfold create-folder`, `rename-folder`, `delete-folder`.
//!
//! Names are checked before anything changes: control characters are refused (seed V0018),
//! `%` and `*` are allowed (V0019: they are legal in a name, only special in LIST patterns),
//! and a level containing the server's hierarchy delimiter is refused, since the server would
//! split it into two levels (V0020). Levels are separated by `/` on the command line whatever
//! the server's delimiter is.
//!
//! Each command changes the mirror first, then, when the server is reachable, the sync
//! engine's applier makes the same change on the server ([`mailfold_sync::changes`]) and
//! records it in the state. A server NO to a create or a rename takes the local change back
//! and is shown with the server's own text (V0019), so a name the server will never accept
//! does not linger as a change every sync retries. A deleted folder's messages are expunged
//! by UID and the folder deleted once empty, as a sync does for a folder deleted locally.
//! Offline, each command changes only the mirror, which the next sync carries over: a new
//! local folder is created on the server, a renamed one shows up as moves into the new folder
//! followed by the deletion of the emptied old one, and a deleted one as the deletion of its
//! messages (through the safety valve) and then of the folder.

use mailfold_store::FolderName;
use mailfold_sync::changes::Change;
use mailfold_sync::plan::FolderPath;
use serde_json::json;

use super::{print_json, Ctx, Pushed};
use crate::change;
use crate::exit::usage;
use crate::mirror::parse_folder_name;

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

fn path_of(name: &FolderName) -> FolderPath {
    FolderPath(name.components().to_vec())
}

/// `mailfold create-folder NAME`.
pub fn run_create(ctx: &Ctx, name_arg: &str) -> anyhow::Result<u8> {
    let mut t = change::Target::open(ctx, "create-folder")?;
    // The delimiter the last sync recorded; before any sync the server's is checked when the
    // name is sent.
    let fname = validate_new(name_arg, t.mirror.delimiter())?;
    if t.mirror.resolve_name(&fname)?.rel.is_some() {
        return Err(usage(format!("folder {fname} already exists")));
    }
    let done = t.run(
        ctx,
        // Seed V0022: created under the root, as the sync would create it.
        Change::CreateFolder {
            folder: path_of(&fname),
        },
        &format!("the server refused to create {fname}"),
    )?;
    report(ctx, &t.name, "created", &fname.to_string(), None, done)
}

/// Ends a folder command: the server half's failure if it failed, else the line (or JSON
/// object) saying `what` was done to `folder` (and `to`, for a rename).
fn report(
    ctx: &Ctx,
    account: &str,
    what: &str,
    folder: &str,
    to: Option<&str>,
    done: change::Done,
) -> anyhow::Result<u8> {
    if let Some(e) = done.failure {
        return Err(e);
    }
    let pushed = done.pushed;
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
        crate::outln!("{what} {target}{}", pushed.human_tail())?;
    }
    Ok(crate::exit::OK)
}

/// `mailfold rename-folder FROM TO`.
pub fn run_rename(ctx: &Ctx, from: &str, to: &str) -> anyhow::Result<u8> {
    let mut t = change::Target::open(ctx, "rename-folder")?;
    let old = t.mirror.resolve_folder(from)?;
    if old.name.components().first().is_some_and(|c| c == "INBOX") {
        // RFC 3501 6.3.5: renaming INBOX moves its messages and leaves INBOX in place, which
        // is not what a folder rename means.
        return Err(usage("INBOX (and folders under it) cannot be renamed"));
    }
    if old.rel.is_none() {
        return Err(usage(format!("no folder {} in the local mirror", old.name)));
    }
    let new_name = validate_new(to, t.mirror.delimiter())?;
    if new_name.components().first().is_some_and(|c| c == "INBOX")
        && new_name.components().len() == 1
    {
        return Err(usage("a folder cannot be renamed to INBOX"));
    }
    if t.mirror.resolve_name(&new_name)?.rel.is_some() {
        return Err(usage(format!("folder {new_name} already exists")));
    }
    let done = t.run(
        ctx,
        Change::RenameFolder {
            from: path_of(&old.name),
            to: path_of(&new_name),
        },
        &format!("the server refused to rename {}", old.name),
    )?;
    report(
        ctx,
        &t.name,
        "renamed",
        &old.name.to_string(),
        Some(&new_name.to_string()),
        done,
    )
}

/// `mailfold delete-folder NAME [--force]`.
pub fn run_delete(ctx: &Ctx, name_arg: &str, force: bool) -> anyhow::Result<u8> {
    let mut t = change::Target::open(ctx, "delete-folder")?;
    let f = t.mirror.resolve_folder(name_arg)?;
    if f.name.is_inbox() {
        return Err(usage("INBOX cannot be deleted"));
    }
    if f.rel.is_none() && f.state.is_none() {
        return Err(usage(format!("no folder {} in the local mirror", f.name)));
    }
    let held = match &f.rel {
        Some(_) => t.mirror.local_folder(&f)?.scan()?.len(),
        None => 0,
    };
    if held > 0 && !force {
        return Err(usage(format!(
            "folder {} holds {held} message(s); use --force to delete them with it",
            f.name
        )));
    }
    let done = t.run(
        ctx,
        Change::DeleteFolder {
            folder: path_of(&f.name),
        },
        &format!("the server refused to delete {}", f.name),
    )?;
    if done.pushed == Pushed::Queued && held > 20 && !ctx.json {
        eprintln!(
            "mailfold: the next sync deletes {held} messages on the server and will ask for --force"
        );
    }
    report(ctx, &t.name, "deleted", &f.name.to_string(), None, done)
}
