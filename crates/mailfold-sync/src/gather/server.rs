//! The server view of a folder read whole or as a CONDSTORE/QRESYNC delta (see "Server view"
//! in the module docs of [`crate::gather`]), and the planner's forms of what SELECT gives.

use std::collections::{BTreeSet, HashMap};

use mailfold_store::{FolderId, MessageRecord};

use super::state::Known;
use super::FolderCtx;
use crate::plan::{
    FolderPath, ModSeq, PermanentFlags, RemoteMailbox, RemoteMessage, RemoteMessages, Uid,
    UidRange, UidValidity, UnixTime,
};
use crate::remote::{Mailbox, Remote, RemoteError};
use crate::report::SyncReport;
use crate::step_error::StepError;

/// A server folder to read whole or as a delta ([`read_server_view`]).
pub(super) struct WholeRead<'a> {
    pub(super) path: &'a FolderPath,
    pub(super) wire: &'a Mailbox,
    /// The account is pull-only: the folder is opened with EXAMINE (V0040).
    pub(super) read_only_account: bool,
    /// The folder's bound rows, when they were read: their UIDs need no content details.
    pub(super) rows: Option<&'a (FolderId, UidValidity, Vec<MessageRecord>)>,
    /// What the state says of the folder.
    pub(super) known: Option<&'a Known>,
    /// A delta may stand for the folder (false when only a complete view will do, as for a
    /// folder whose local directory is gone: [`super::local::Presence::read_whole`]).
    pub(super) incremental: bool,
}

/// Opens a folder ([`examine_folder`]: the delta when `read.known` allows it, else the
/// whole folder) and notes the outcome: the read-only state and UIDVALIDITY in `ctx`, a
/// read-only folder in the report. A folder that cannot be opened is an error of that folder
/// in the report and `None` (nothing is planned for its messages); a fatal server error is
/// an error. A dry run opens folders with EXAMINE: it changes nothing, \Recent included.
pub(super) fn read_server_view(
    remote: &mut dyn Remote,
    read: WholeRead<'_>,
    ctx: &mut FolderCtx,
    report: &mut SyncReport,
) -> Result<Option<RemoteMailbox>, crate::SyncError> {
    let incremental = read
        .known
        .filter(|k| k.all_bound && k.highestmodseq.is_some())
        .filter(|_| read.incremental);
    let examine = read.read_only_account || report.dry_run;
    match examine_folder(remote, read.wire, examine, read.rows, incremental) {
        Ok((mut mb, uv)) => {
            if report.dry_run && !read.read_only_account {
                // EXAMINE shows every folder read-only with no PERMANENTFLAGS (RFC 3501
                // 6.3.2): plan as after a SELECT, from what the state knows.
                mb.read_only = read.known.is_some_and(|k| k.read_only);
                mb.permanent_flags = PermanentFlags::all();
            }
            ctx.read_only = mb.read_only;
            ctx.uidvalidity = uv;
            if mb.read_only {
                report.folder_mut(&read.path.to_string()).read_only = true;
            }
            Ok(Some(mb))
        }
        Err(err) if err.is_fatal() => Err(err.into()),
        Err(err) => {
            report
                .folder_mut(&read.path.to_string())
                .errors
                .push(StepError::server("cannot open folder", err));
            Ok(None)
        }
    }
}

/// The server view of a folder STATUS showed unchanged (V0045), without a SELECT: "no
/// changes since the state's HIGHESTMODSEQ", which the planner completes from the state
/// (RFC 7162). Notes its read-only state and UIDVALIDITY in `ctx`.
pub(super) fn unchanged_view(
    k: &Known,
    since: ModSeq,
    read_only_account: bool,
    ctx: &mut FolderCtx,
) -> RemoteMailbox {
    let ro = read_only_account || k.read_only;
    ctx.read_only = ro;
    ctx.uidvalidity = Some(k.uidvalidity);
    RemoteMailbox {
        uidvalidity: Some(k.uidvalidity),
        uidnext: k.uidnext,
        highestmodseq: k.highestmodseq,
        // Not known without a SELECT; the default of V0037 (all), as for a server that sends
        // none. A keyword the server refuses fails only its own STORE.
        permanent_flags: PermanentFlags::all(),
        read_only: ro,
        messages: RemoteMessages::Changes {
            since,
            changed: Vec::new(),
            vanished: Vec::new(),
        },
    }
}

/// Server messages with their content details fetched for the UIDs the state does not know.
pub(super) fn with_details(
    remote: &mut dyn Remote,
    flags: Vec<crate::remote::MessageFlags>,
    known: &BTreeSet<Uid>,
) -> Result<Vec<RemoteMessage>, RemoteError> {
    let unknown: Vec<Uid> = flags
        .iter()
        .map(|m| m.uid)
        .filter(|u| !known.contains(u))
        .collect();
    let details: HashMap<Uid, crate::remote::MessageDetails> = if unknown.is_empty() {
        HashMap::new()
    } else {
        remote
            .fetch_details(&unknown)?
            .into_iter()
            .map(|d| (d.uid, d))
            .collect()
    };
    Ok(flags
        .into_iter()
        .map(|m| {
            let d = details.get(&m.uid);
            RemoteMessage {
                uid: m.uid,
                flags: m.flags,
                modseq: m.modseq,
                size: d.and_then(|d| d.size),
                internaldate: d.and_then(|d| d.internaldate).map(UnixTime),
                message_id: d.and_then(|d| d.message_id.clone()),
            }
        })
        .collect())
}

/// SELECT/EXAMINE a folder and read its messages (see the module docs). With `incremental`
/// (the state's UIDVALIDITY and HIGHESTMODSEQ, every row bound) and a server with
/// CONDSTORE/QRESYNC, only what changed since is read (RFC 7162); otherwise every UID and
/// its flags (seed V0002).
pub(super) fn examine_folder(
    remote: &mut dyn Remote,
    wire: &Mailbox,
    read_only: bool,
    state: Option<&(FolderId, UidValidity, Vec<MessageRecord>)>,
    incremental: Option<&Known>,
) -> Result<(RemoteMailbox, Option<UidValidity>), RemoteError> {
    let mut selected = None;
    // Without a HIGHESTMODSEQ there is no delta to ask for; the whole folder is read below.
    if let Some((k, since)) = incremental.and_then(|k| Some((k, k.highestmodseq?))) {
        if let Some(ch) = remote.select_changes(wire, read_only, k.uidvalidity, since)? {
            let same_validity = ch.selected.uidvalidity == Some(k.uidvalidity);
            let new = ch
                .changed
                .iter()
                .filter(|m| !k.bound.contains(&m.uid))
                .count();
            let exists = usize::try_from(ch.selected.exists).unwrap_or(usize::MAX);
            let vanished = match ch.vanished {
                // The changes view is trusted only when it accounts for every message the
                // server holds: the known ones, less those vanished, plus the new ones. A
                // message the state never recorded although it is older than the state's
                // HIGHESTMODSEQ (a download that failed under an older version that still
                // recorded the folder as synced) would otherwise stay hidden forever; then the
                // complete view below finds it.
                Some(v) => {
                    // `v` is ascending and disjoint (the set's own form): binary search.
                    let gone = k
                        .bound
                        .iter()
                        .filter(|&&u| {
                            let i = v.partition_point(|&(_, last)| last < u);
                            v.get(i).is_some_and(|&(first, _)| first <= u)
                        })
                        .count();
                    (exists == k.bound.len() - gone + new).then_some(v)
                }
                // CONDSTORE without QRESYNC: no expunge happened exactly when EXISTS equals
                // the known messages plus the new ones (UIDs only grow, RFC 3501 2.3.1.1).
                None => (exists == k.bound.len() + new).then(Vec::new),
            };
            match (same_validity, vanished) {
                (true, Some(vanished)) => {
                    let sel = ch.selected;
                    let changed = with_details(remote, ch.changed, &k.bound)?;
                    let vanished = uid_ranges(vanished);
                    let mb = mailbox_of(
                        &sel,
                        RemoteMessages::Changes {
                            since,
                            changed,
                            vanished,
                        },
                    );
                    return Ok((mb, sel.uidvalidity));
                }
                // Selected already; read everything below.
                _ => selected = Some(ch.selected),
            }
        }
    }
    let sel = match selected {
        Some(s) => s,
        None => remote.select(wire, read_only)?,
    };
    let flags = remote.fetch_flags()?;
    let known: BTreeSet<Uid> = match (state, sel.uidvalidity) {
        (Some((_, uv, rows)), Some(now)) if *uv == now => rows.iter().map(|r| r.uid).collect(),
        _ => BTreeSet::new(),
    };
    let messages = with_details(remote, flags, &known)?;
    let mb = mailbox_of(&sel, RemoteMessages::Complete(messages));
    Ok((mb, sel.uidvalidity))
}

/// The planner's view of a selected folder holding `messages`.
pub(super) fn mailbox_of(sel: &crate::remote::Selected, messages: RemoteMessages) -> RemoteMailbox {
    RemoteMailbox {
        uidvalidity: sel.uidvalidity,
        uidnext: sel.uidnext,
        highestmodseq: sel.highestmodseq,
        permanent_flags: sel.permanent_flags.clone().unwrap_or_default(),
        read_only: sel.read_only,
        messages,
    }
}

/// A VANISHED answer's ranges as the planner takes them.
pub(super) fn uid_ranges(ranges: Vec<(Uid, Uid)>) -> Vec<UidRange> {
    ranges
        .into_iter()
        .map(|(first, last)| UidRange { first, last })
        .collect()
}
