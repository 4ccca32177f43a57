//! `mailfold move` and `mailfold delete`.
//!
//! Both change the mirror first (move or remove the Maildir file), which is exactly the local
//! change the next sync would push: a file that left one folder for another is a move (the
//! sync engine recognises the base name), a file gone is a deletion. When the server is
//! reachable the change is pushed at once and the state database updated, so the next sync
//! has nothing to redo:
//!
//! * move: with UIDPLUS, `UID COPY` (whose tagged OK carries COPYUID) then `\Deleted` and
//!   `UID EXPUNGE` of exactly those UIDs, so the state row follows the message to its new UID
//!   without a download (seed V0057); without UIDPLUS, `UID MOVE` (RFC 6851) where offered,
//!   and the row is dropped so that the next sync pairs the file with the server copy by
//!   content;
//! * delete: `UID STORE +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of exactly those UIDs
//!   (RFC 4315), never a bare EXPUNGE that would also remove other clients' `\Deleted`
//!   messages, unless the account sets `allow_plain_expunge`.

use mailfold_net::Session;
use mailfold_proto::command::{Command, StoreFlags, StoreMode};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::response::Code;
use mailfold_proto::seqset::UidSet;
use mailfold_store::{StateRead, Uid};
use serde_json::json;

use super::{print_json, say_queued, Ctx, Pushed};
use crate::exit::usage;
use crate::mirror::{MessageRef, Mirror};
use crate::online::{self, Reached};

fn uid_set(uids: &[u32]) -> Result<UidSet, mailfold_net::Error> {
    UidSet::from_numbers(uids.iter().copied())
        .map_err(|e| mailfold_net::Error::Config(e.to_string()))
}

fn id_of(m: &MessageRef) -> String {
    m.record.as_ref().map_or_else(
        || m.entry.base.as_str().to_string(),
        |r| r.uid.get().to_string(),
    )
}

/// `mailfold move FOLDER ID… --to DEST`.
pub fn run_move(ctx: &Ctx, folder: &str, ids: &[String], to: &str) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "move", ctx.wait)?;
    let src = mirror.resolve_folder(folder)?;
    let dst = mirror.resolve_folder(to)?;
    if src.name == dst.name {
        return Err(usage("source and destination are the same folder"));
    }
    let src_dir = mirror.local_folder(&src)?;
    let dst_dir = mirror.local_folder(&dst)?;
    let msgs = ids
        .iter()
        .map(|id| mirror.resolve_message(&src, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for m in &msgs {
        src_dir.move_to(&m.entry, &dst_dir)?;
    }
    let uids: Vec<u32> = msgs
        .iter()
        .filter_map(|m| m.record.as_ref().map(|r| r.uid.get()))
        .collect();
    let mut pushed = Pushed::LocalOnly;
    let mut failure = None;
    let mut mapped = Vec::new();
    if !uids.is_empty() {
        let delim = mirror.delimiter();
        let from = mirror.folder_mailbox(&src, delim)?;
        let dest = mirror.folder_mailbox(&dst, delim)?;
        let expunge_plain = acct.allow_plain_expunge;
        match online::with_session(ctx.offline, &name, &acct, async |s| {
            move_on_server(s, &from, &dest, &uids, expunge_plain).await
        }) {
            Ok(Reached::Done(copyuid)) => {
                pushed = Pushed::Server;
                let db = mirror.db_mut()?;
                let dst_state = dst.state.as_ref().and_then(|d| {
                    db.folder(d.id).ok().flatten()
                });
                if let Some(st) = &src.state {
                    db.write(|tx| {
                        for &uid in &uids {
                            let Some(u) = Uid::new(uid) else { continue };
                            let new_uid = copyuid.as_ref().and_then(|(uv, pairs)| {
                                let d = dst_state.as_ref()?;
                                if d.uidvalidity.map(|v| v.get()) != Some(*uv) {
                                    return None;
                                }
                                pairs.iter().find(|(a, _)| *a == uid).map(|&(_, b)| (d.id, b))
                            });
                            match new_uid.and_then(|(d, b)| Uid::new(b).map(|b| (d, b))) {
                                Some((d, b)) => {
                                    tx.move_message(st.id, u, d, b)?;
                                    mapped.push((uid, b.get()));
                                }
                                None => tx.delete_messages(st.id, &[u])?,
                            }
                        }
                        Ok(())
                    })?;
                }
            }
            Ok(Reached::Offline(why)) => {
                pushed = Pushed::Queued;
                say_queued(ctx.json, &why);
            }
            Err(e) => {
                failure = Some(e.context(
                    "the messages were moved in the local mirror; the next sync moves them on the server",
                ))
            }
        }
    }
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": src.name.to_string(),
            "to": dst.name.to_string(),
            "pushed": pushed.as_str(),
            "error": failure.as_ref().map(|e| format!("{e:#}")),
            "messages": msgs.iter().map(|m| {
                let uid = m.record.as_ref().map(|r| r.uid.get());
                json!({
                    "id": id_of(m),
                    "new_uid": uid.and_then(|u| mapped.iter().find(|(a, _)| *a == u).map(|&(_, b)| b)),
                })
            }).collect::<Vec<_>>(),
        }))?;
    } else {
        crate::outln!(
            "moved {} message(s) from {} to {}{}",
            msgs.len(),
            src.name,
            dst.name,
            match pushed {
                Pushed::Server => " (on the server too)",
                Pushed::Queued => " (queued for the next sync)",
                Pushed::LocalOnly => "",
            }
        )?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(crate::exit::OK),
    }
}

/// The COPYUID of a tagged OK: destination UIDVALIDITY and (source, destination) pairs.
type CopyPairs = Option<(u32, Vec<(u32, u32)>)>;

async fn move_on_server(
    s: &mut Session,
    from: &Mailbox,
    dest: &Mailbox,
    uids: &[u32],
    expunge_plain: bool,
) -> Result<CopyPairs, mailfold_net::Error> {
    s.select(from, mailfold_net::SelectOptions::default())
        .await?;
    let set = uid_set(uids)?;
    let caps = s.capabilities().cloned().unwrap_or_default();
    // With UIDPLUS, COPY's tagged OK carries COPYUID (seed V0057); MOVE sends it in an
    // untagged OK that the session does not route to the command, so MOVE is used only
    // where no mapping would come anyway.
    let code = if caps.has("MOVE") && !caps.has("UIDPLUS") {
        s.uid_move(&set, dest).await?
    } else {
        let code = s.uid_copy(&set, dest).await?;
        delete_uids(s, &set, caps.has("UIDPLUS"), expunge_plain).await?;
        code
    };
    Ok(match code {
        Some(Code::CopyUid(c)) => Some((c.uid_validity.get(), c.pairs().collect())),
        _ => None,
    })
}

/// `\Deleted` and UID EXPUNGE (or a plain EXPUNGE only when allowed). Returns whether the
/// messages were expunged.
async fn delete_uids(
    s: &mut Session,
    set: &UidSet,
    uidplus: bool,
    expunge_plain: bool,
) -> Result<bool, mailfold_net::Error> {
    s.uid_store(
        set,
        StoreFlags {
            mode: StoreMode::Add,
            silent: true,
            flags: vec![Flag::Deleted],
        },
        None,
    )
    .await?;
    if uidplus {
        s.uid_expunge(set).await?;
        Ok(true)
    } else if expunge_plain {
        let h = s.submit(Command::Expunge);
        let c = s.wait(h).await?;
        match super::folders::command_error(&c.outcome) {
            Some(e) => Err(e),
            None => Ok(true),
        }
    } else {
        Ok(false)
    }
}

/// `mailfold delete FOLDER ID…`.
pub fn run_delete(ctx: &Ctx, folder: &str, ids: &[String]) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "delete", ctx.wait)?;
    let f = mirror.resolve_folder(folder)?;
    let dir = mirror.local_folder(&f)?;
    let msgs = ids
        .iter()
        .map(|id| mirror.resolve_message(&f, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for m in &msgs {
        dir.delete(&m.entry)?;
    }
    let uids: Vec<u32> = msgs
        .iter()
        .filter_map(|m| m.record.as_ref().map(|r| r.uid.get()))
        .collect();
    let mut pushed = Pushed::LocalOnly;
    let mut failure = None;
    let mut note = None;
    if !uids.is_empty() {
        let mailbox = mirror.folder_mailbox(&f, mirror.delimiter())?;
        let plain = acct.allow_plain_expunge;
        match online::with_session(ctx.offline, &name, &acct, async |s| {
            s.select(&mailbox, mailfold_net::SelectOptions::default()).await?;
            let uidplus = s.capabilities().is_some_and(|c| c.has("UIDPLUS"));
            delete_uids(s, &uid_set(&uids)?, uidplus, plain).await
        }) {
            Ok(Reached::Done(expunged)) => {
                pushed = Pushed::Server;
                if expunged {
                    if let Some(st) = &f.state {
                        let us: Vec<Uid> = uids.iter().filter_map(|&u| Uid::new(u)).collect();
                        mirror.db_mut()?.write(|tx| tx.delete_messages(st.id, &us))?;
                    }
                } else {
                    note = Some(
                        "flagged \\Deleted on the server but not expunged: it lacks UIDPLUS \
                         (set allow_plain_expunge to allow a plain EXPUNGE)"
                            .to_string(),
                    );
                }
            }
            Ok(Reached::Offline(why)) => {
                pushed = Pushed::Queued;
                say_queued(ctx.json, &why);
            }
            Err(e) => {
                failure = Some(e.context(
                    "the messages were deleted from the local mirror; the next sync deletes them on the server",
                ))
            }
        }
    }
    if let (Some(n), false) = (&note, ctx.json) {
        eprintln!("mailfold: {n}");
    }
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "pushed": pushed.as_str(),
            "error": failure.as_ref().map(|e| format!("{e:#}")),
            "note": note,
            "deleted": msgs.iter().map(id_of).collect::<Vec<_>>(),
        }))?;
    } else {
        crate::outln!(
            "deleted {} message(s) from {}{}",
            msgs.len(),
            f.name,
            match pushed {
                Pushed::Server => " (on the server too)",
                Pushed::Queued => " (queued for the next sync)",
                Pushed::LocalOnly => "",
            }
        )?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(crate::exit::OK),
    }
}
