//! `mailfold move` and `mailfold delete`.
//!
//! Both change the mirror first (move or remove the Maildir file), which is exactly the local
//! change the next sync would push: a file that left one folder for another is a move (the
//! sync engine recognises the base name), a file gone is a deletion. When the server is
//! reachable the change is pushed at once by the sync engine's applier
//! ([`mailfold_sync::changes`]), with the same operations a sync plans for that local change,
//! and the state database updated, so the next sync has nothing to redo:
//!
//! * move: `UID MOVE` (RFC 6851) where offered, else `UID COPY`, `\Deleted` and
//!   `UID EXPUNGE` of exactly those UIDs; the state row follows the message to its new UID
//!   from COPYUID without a download (seed V0057), and without COPYUID the next sync pairs the
//!   file with the server copy by content;
//! * delete: `UID STORE +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of exactly those UIDs
//!   (RFC 4315), never a bare EXPUNGE that would also remove other clients' `\Deleted`
//!   messages, unless the account sets `allow_plain_expunge`; a server without UIDPLUS is
//!   then sent nothing and the deletion waits, reported, as in a sync.

use mailfold_sync::changes::Change;
use serde_json::json;

use super::flag::{change_message, id_of};
use super::{print_json, Ctx};
use crate::change;
use crate::exit::usage;

/// `mailfold move FOLDER ID… --to DEST`.
pub fn run_move(ctx: &Ctx, folder: &str, ids: &[String], to: &str) -> anyhow::Result<u8> {
    let mut t = change::Target::open(ctx, "move")?;
    let src = t.mirror.resolve_folder(folder)?;
    let dst = t.mirror.resolve_folder(to)?;
    if src.name == dst.name {
        return Err(usage("source and destination are the same folder"));
    }
    // Both must exist locally.
    t.mirror.local_folder(&src)?;
    t.mirror.local_folder(&dst)?;
    let msgs = t.mirror.resolve_messages(&src, ids)?;
    let change = Change::Move {
        from: src.path(),
        messages: msgs.iter().map(change_message).collect(),
        to: dst.path(),
    };
    let done = t.run(
        ctx,
        change,
        "the messages were moved in the local mirror; the next sync moves them on the server",
    )?;
    if ctx.json {
        print_json(&json!({
            "account": t.name,
            "folder": src.name.to_string(),
            "to": dst.name.to_string(),
            "pushed": done.pushed.as_str(),
            "error": done.failure.as_ref().map(|e| format!("{e:#}")),
            "messages": msgs.iter().zip(&done.outcome.messages).map(|(m, o)| json!({
                "id": id_of(m),
                "new_uid": o.now.map(|u| u.get()),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        crate::outln!(
            "moved {} message(s) from {} to {}{}",
            msgs.len(),
            src.name,
            dst.name,
            done.pushed.human_tail()
        )?;
    }
    change::Done::status(done.failure)
}

/// `mailfold delete FOLDER ID…`.
pub fn run_delete(ctx: &Ctx, folder: &str, ids: &[String]) -> anyhow::Result<u8> {
    let mut t = change::Target::open(ctx, "delete")?;
    let f = t.mirror.resolve_folder(folder)?;
    let msgs = t.mirror.resolve_messages(&f, ids)?;
    let change = Change::Delete {
        folder: f.path(),
        messages: msgs.iter().map(change_message).collect(),
    };
    let done = t.run(
        ctx,
        change,
        "the messages were deleted from the local mirror; the next sync deletes them on the server",
    )?;
    if ctx.json {
        print_json(&json!({
            "account": t.name,
            "folder": f.name.to_string(),
            "pushed": done.pushed.as_str(),
            "error": done.failure.as_ref().map(|e| format!("{e:#}")),
            "note": serde_json::Value::Null,
            "deleted": msgs.iter().map(id_of).collect::<Vec<_>>(),
        }))?;
    } else {
        crate::outln!(
            "deleted {} message(s) from {}{}",
            msgs.len(),
            f.name,
            done.pushed.human_tail()
        )?;
    }
    change::Done::status(done.failure)
}
