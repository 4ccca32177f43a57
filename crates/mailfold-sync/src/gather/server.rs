//! The server view of a folder read whole or as a CONDSTORE/QRESYNC delta (see "Server view"
//! in the module docs of [`crate::gather`]), and the planner's forms of what SELECT gives.

use std::collections::{BTreeSet, HashMap};

use mailfold_store::{FolderId, MessageRecord};

use super::names::flagset;
use super::Known;
use crate::plan::{
    ModSeq, PermanentFlags, RemoteMailbox, RemoteMessage, RemoteMessages, Uid, UidRange,
    UidValidity, UnixTime,
};
use crate::remote::{Remote, RemoteError};

/// Server messages with their content details fetched for the UIDs the state does not know.
pub(super) fn with_details(
    remote: &mut dyn Remote,
    flags: Vec<crate::remote::MessageFlags>,
    known: &BTreeSet<u32>,
) -> Result<Vec<RemoteMessage>, RemoteError> {
    let unknown: Vec<u32> = flags
        .iter()
        .map(|m| m.uid)
        .filter(|u| !known.contains(u))
        .collect();
    let details: HashMap<u32, crate::remote::MessageDetails> = if unknown.is_empty() {
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
        .filter_map(|m| {
            let uid = Uid::new(m.uid)?;
            let d = details.get(&m.uid);
            Some(RemoteMessage {
                uid,
                flags: flagset(&m.flags),
                modseq: m.modseq.and_then(ModSeq::new),
                size: d.and_then(|d| d.size),
                internaldate: d.and_then(|d| d.internaldate).map(UnixTime),
                message_id: d.and_then(|d| d.message_id.clone()),
            })
        })
        .collect())
}

/// SELECT/EXAMINE a folder and read its messages (see the module docs). With `incremental`
/// (the state's UIDVALIDITY and HIGHESTMODSEQ, every row bound) and a server with
/// CONDSTORE/QRESYNC, only what changed since is read (RFC 7162); otherwise every UID and
/// its flags (seed V0002).
pub(super) fn examine_folder(
    remote: &mut dyn Remote,
    wire: &[u8],
    read_only: bool,
    state: Option<&(FolderId, u32, Vec<MessageRecord>)>,
    incremental: Option<&Known>,
) -> Result<(RemoteMailbox, Option<u32>), RemoteError> {
    let mut selected = None;
    if let Some(k) = incremental {
        let since = k.highestmodseq.unwrap_or(0);
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
            match (same_validity, vanished, ModSeq::new(since)) {
                (true, Some(vanished), Some(since)) => {
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
    let known: BTreeSet<u32> = match (state, sel.uidvalidity) {
        (Some((_, uv, rows)), Some(now)) if *uv == now => {
            rows.iter().map(|r| r.uid.get()).collect()
        }
        _ => BTreeSet::new(),
    };
    let messages = with_details(remote, flags, &known)?;
    let mb = mailbox_of(&sel, RemoteMessages::Complete(messages));
    Ok((mb, sel.uidvalidity))
}

/// The planner's view of a selected folder holding `messages`.
pub(super) fn mailbox_of(sel: &crate::remote::Selected, messages: RemoteMessages) -> RemoteMailbox {
    RemoteMailbox {
        uidvalidity: sel.uidvalidity.and_then(UidValidity::new),
        uidnext: sel.uidnext.and_then(Uid::new),
        highestmodseq: sel.highestmodseq.and_then(ModSeq::new),
        permanent_flags: permanent_flags_of(&sel.permanent_flags),
        read_only: sel.read_only,
        messages,
    }
}

/// A VANISHED answer's ranges as the planner takes them (UID 0 is not a UID).
pub(super) fn uid_ranges(ranges: Vec<(u32, u32)>) -> Vec<UidRange> {
    ranges
        .into_iter()
        .filter_map(|(a, b)| {
            Some(UidRange {
                first: Uid::new(a.max(1))?,
                last: Uid::new(b)?,
            })
        })
        .collect()
}

/// PERMANENTFLAGS as the planner takes them; missing means all (V0037).
pub(super) fn permanent_flags_of(list: &Option<Vec<String>>) -> PermanentFlags {
    match list {
        None => PermanentFlags::all(),
        Some(list) => PermanentFlags {
            flags: flagset(list),
            new_keywords: list.iter().any(|f| f == "\\*"),
        },
    }
}
