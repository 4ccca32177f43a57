//! Deciding, before any folder is scanned or selected, how each folder is read (see
//! "Unchanged folders" and "Partial folders" in the module docs of [`crate::gather`]):
//! skipped, read partially, left for later as changed by flag changes alone, or read whole.

use std::collections::{BTreeSet, HashMap};

use mailfold_store::{DirStamp, FolderId, FolderRecord, RelPath, StateDb, StateRead};

use super::local::LocalListed;
use super::state::Known;
use crate::plan::FolderPath;
use crate::remote::{ListEntry, Mailbox, ModSeq, Remote, Status, Uid};

/// How the gather reads the folders of the state that might need no full read.
#[derive(Debug, Default)]
pub(super) struct Triage {
    /// Unchanged locally since their last complete run (the stamp recorded then), with no
    /// pending change and no open intent: what the state says of each (their rows unread).
    pub(super) candidates: HashMap<FolderPath, Known>,
    /// Unchanged on the server by STATUS (V0045): no message arrived or left and
    /// HIGHESTMODSEQ did not move.
    pub(super) unchanged: BTreeSet<FolderPath>,
    /// Changed on the server by flag changes alone, to be read on their own
    /// ([`super::FlagsOnlyFolder`]); only with `defer_flags_only`.
    pub(super) flags_only: BTreeSet<FolderPath>,
    /// Candidates unchanged on both sides: skipped (not scanned, not loaded, not selected).
    pub(super) skipped: BTreeSet<FolderPath>,
    /// Candidates changed on the server only whose files the state can describe without a
    /// listing (a listing digest): read partially. Their state row ids.
    pub(super) partial: HashMap<FolderPath, FolderId>,
}

impl Triage {
    /// Asks the server which of the folders `known` describes changed ([`status_round`]), and
    /// sorts the candidates accordingly. The rest of the candidates are read in full like
    /// any other folder.
    pub(super) fn decide(
        remote: &mut dyn Remote,
        db: &StateDb,
        candidates: HashMap<FolderPath, Known>,
        known: &HashMap<FolderPath, Known>,
        remote_paths: &[(FolderPath, ListEntry)],
        state_folders: &[(FolderPath, FolderRecord)],
        defer_flags_only: bool,
    ) -> Result<Self, crate::SyncError> {
        let (unchanged, flags_only) = status_round(remote, remote_paths, known, defer_flags_only)?;
        // Unchanged on both sides: skipped. The planner sees each as present everywhere and
        // not examined ([`super::push_unexamined`]).
        let skipped: BTreeSet<FolderPath> = candidates
            .keys()
            .filter(|p| unchanged.contains(*p))
            .cloned()
            .collect();
        // Changed on the server only: read partially (see "Partial folders" in the module
        // docs) when the state can describe the folder's files without a listing.
        let mut partial: HashMap<FolderPath, FolderId> = HashMap::new();
        for (path, f) in state_folders {
            let selectable = remote_paths.iter().any(|(p, e)| p == path && !e.noselect);
            if candidates.contains_key(path)
                && !skipped.contains(path)
                && selectable
                && db.listing_digest(f.id)?.is_some()
            {
                partial.insert(path.clone(), f.id);
            }
        }
        Ok(Triage {
            candidates,
            unchanged,
            flags_only,
            skipped,
            partial,
        })
    }

    /// A candidate to be read whole after all (changed on the server, no partial read).
    pub(super) fn read_whole(&self, path: &FolderPath) -> bool {
        self.candidates.contains_key(path)
            && !self.partial.contains_key(path)
            && !self.skipped.contains(path)
    }
}

/// The folders that may need no look at all: the local stamp recorded at the end of the last
/// complete run is the one read now, in the same directory, with no pending change and no
/// open intent naming the folder. What the state says of each, from its folder row alone.
pub(super) fn candidates(
    db: &StateDb,
    intents: &[mailfold_store::Intent],
    state_folders: &[(FolderPath, FolderRecord)],
    local_folders: &[LocalListed],
) -> Result<HashMap<FolderPath, Known>, crate::SyncError> {
    let stamps = db.local_stamps()?;
    let mut busy = db.folders_with_pending()?;
    for i in intents {
        busy.extend(i.intent.folder);
        busy.extend(i.intent.target_folder);
    }
    let local_stamps: HashMap<&FolderPath, (&RelPath, &DirStamp)> = local_folders
        .iter()
        .filter_map(|(p, f, s)| s.as_ref().map(|(s, _)| (p, (f.rel(), s))))
        .collect();
    Ok(state_folders
        .iter()
        .filter_map(|(path, f)| {
            let (uv, hms) = (f.uidvalidity?, f.highestmodseq);
            let recorded = stamps.get(&f.id)?;
            let (rel, now) = local_stamps.get(path)?;
            let same = !busy.contains(&f.id) && *rel == &f.local_path && **now == recorded.stamp;
            same.then(|| {
                let k = Known {
                    uidvalidity: uv,
                    uidnext: f.uidnext.map(Uid),
                    highestmodseq: hms.and_then(ModSeq::new),
                    bound: BTreeSet::new(),
                    count: usize::try_from(recorded.messages).unwrap_or(usize::MAX),
                    all_bound: true,
                    read_only: f.read_only,
                };
                (path.clone(), k)
            })
        })
        .collect())
}

/// Seed V0045: one pipelined round of STATUS (or the LIST-STATUS answer, V0044) tells which
/// folders changed; an unchanged one costs no SELECT. Returns the folders unchanged, and
/// those changed by flag changes alone (only with `defer_flags_only`). Only with CONDSTORE:
/// without HIGHESTMODSEQ a flag change made by another client shows in no STATUS item, so
/// no folder is "unchanged"; the candidates are then read partially instead (a merge of the
/// server's complete listing against the state).
fn status_round(
    remote: &mut dyn Remote,
    remote_paths: &[(FolderPath, ListEntry)],
    known: &HashMap<FolderPath, Known>,
    defer_flags_only: bool,
) -> Result<(BTreeSet<FolderPath>, BTreeSet<FolderPath>), crate::SyncError> {
    let mut unchanged: BTreeSet<FolderPath> = BTreeSet::new();
    let mut flags_only: BTreeSet<FolderPath> = BTreeSet::new();
    let condstore = remote.has_capability("CONDSTORE") || remote.has_capability("QRESYNC");
    if !condstore {
        return Ok((unchanged, flags_only));
    }
    let asked: Vec<(&FolderPath, &ListEntry)> = remote_paths
        .iter()
        .filter(|(p, e)| {
            !e.noselect
                && known
                    .get(p)
                    .is_some_and(|k| k.highestmodseq.is_some() && k.all_bound)
        })
        .map(|(p, e)| (p, e))
        .collect();
    for ((path, _), st) in asked.iter().zip(statuses(remote, &asked)?) {
        let (Some(st), Some(k)) = (st, known.get(*path)) else {
            continue;
        };
        // No message arrived or left (UIDVALIDITY, UIDNEXT and MESSAGES as recorded); then
        // either nothing changed, or only flags did (HIGHESTMODSEQ moved).
        let same_messages = st.uidvalidity == Some(k.uidvalidity)
            && st.uidnext.is_some()
            && st.uidnext == k.uidnext
            && st.messages == u32::try_from(k.count).ok();
        let both_modseqs = st.highestmodseq.is_some() && k.highestmodseq.is_some();
        if same_messages && both_modseqs && st.highestmodseq == k.highestmodseq {
            unchanged.insert((*path).clone());
        } else if same_messages && both_modseqs && defer_flags_only {
            flags_only.insert((*path).clone());
        }
    }
    Ok((unchanged, flags_only))
}

/// The STATUS of each of `asked`, in order. Seed V0044: what LIST-STATUS already returned
/// needs no STATUS command; the rest go in one pipelined round.
fn statuses(
    remote: &mut dyn Remote,
    asked: &[(&FolderPath, &ListEntry)],
) -> Result<Vec<Option<Status>>, crate::SyncError> {
    Ok(statuses_of(remote, asked.iter().map(|(_, e)| *e))?)
}

/// Each entry's STATUS: the one LIST-STATUS returned with it, else from one pipelined
/// `status_all` round for all the entries without one.
pub(super) fn statuses_of<'e>(
    remote: &mut dyn Remote,
    entries: impl Iterator<Item = &'e ListEntry> + Clone,
) -> Result<Vec<Option<Status>>, crate::remote::RemoteError> {
    let names: Vec<Mailbox> = entries
        .clone()
        .filter(|e| e.status.is_none())
        .map(|e| e.wire.clone())
        .collect();
    let mut fetched = if names.is_empty() {
        Vec::new()
    } else {
        remote.status_all(&names)?
    }
    .into_iter();
    Ok(entries
        .map(|e| match e.status {
            Some(st) => Some(st),
            None => fetched.next().flatten(),
        })
        .collect())
}
