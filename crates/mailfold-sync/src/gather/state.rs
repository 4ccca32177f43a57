//! The state view: the folder rows, message rows and pending marks the planner sees of the
//! state database, what the state knows of a folder for the incremental paths ([`Known`]),
//! the open journal intents, and the server copies a new file may be made from.

use std::collections::{BTreeSet, HashMap};

use mailfold_store::{
    FolderId, FolderRecord, IntentKind, MessageRecord, PendingKind, StateDb, StateRead,
};

use super::names::{path_of_wire, row_flags};
use super::Gathered;
use crate::account::AccountSpec;
use crate::plan::{
    Content, FolderPath, Intent, LocalId, ModSeq, PendingKey, ServerCopy, StateFolder,
    StateMessage, SyncInput, Uid, UidValidity, UnixTime,
};

/// The most candidates kept per new file: one usable source is enough, a few cover sources
/// the plan removes or cannot read.
const COPY_CANDIDATES: usize = 4;

/// [`SyncInput::server_copies`] for the unknown local files of `input`.
pub(super) fn server_copies(
    db: &StateDb,
    input: &SyncInput,
    id_to_path: &HashMap<FolderId, FolderPath>,
) -> Result<Vec<ServerCopy>, crate::SyncError> {
    let mut out = Vec::new();
    for lf in &input.local {
        let named: BTreeSet<&LocalId> = input
            .state
            .iter()
            .filter(|s| s.path == lf.path)
            .flat_map(|s| s.messages.iter().map(|m| &m.local))
            .collect();
        for m in &lf.messages {
            let Some(hash) = m.hash.filter(|_| !m.partial && !named.contains(&m.id)) else {
                continue;
            };
            let rows = db.messages_by_hash(&hash)?;
            let found = rows
                .iter()
                .filter(|(_, r)| !r.partial)
                .filter_map(|(f, r)| Some((id_to_path.get(f)?, r)))
                .filter(|(p, _)| **p != lf.path)
                .take(COPY_CANDIDATES);
            for (from, r) in found {
                out.push(ServerCopy {
                    folder: lf.path.clone(),
                    local: m.id.clone(),
                    from: from.clone(),
                    row: state_message(Some(r.uid), r),
                });
            }
        }
    }
    Ok(out)
}

/// The message rows read so far, by folder, for the scans and the server reads.
#[derive(Debug, Default)]
pub(super) struct StateRows {
    pub(super) rows: HashMap<FolderPath, (FolderId, UidValidity, Vec<MessageRecord>)>,
    pub(super) unbound: HashMap<FolderPath, Vec<MessageRecord>>,
    pub(super) read_only: BTreeSet<FolderPath>,
}

impl StateRows {
    /// Reads one folder's rows and pending marks into the planner's state view (a folder
    /// without UIDVALIDITY has none that mean anything).
    pub(super) fn load(
        &mut self,
        db: &StateDb,
        path: &FolderPath,
        f: &FolderRecord,
        g: &mut Gathered,
    ) -> Result<(), crate::SyncError> {
        let Some(uv) = f.uidvalidity else {
            return Ok(());
        };
        if f.read_only {
            self.read_only.insert(path.clone());
        }
        g.folders.entry(path.clone()).or_default().loaded = true;
        let rows = db.messages(f.id)?;
        // Rows unbound by a UIDVALIDITY change (V0003): the planner re-binds them by content.
        let unbound = db.unbound_messages(f.id)?;
        let mut pending = Vec::new();
        for p in db.pending(Some(f.id))? {
            let key = match (p.change.kind, p.change.uid, &p.change.base) {
                (PendingKind::Append, _, Some(b)) => PendingKey::Upload(LocalId::new(b.as_str())),
                (PendingKind::Flags, Some(u), _) => PendingKey::Flags(u),
                (PendingKind::Expunge, Some(u), _) => PendingKey::Expunge(u),
                _ => continue,
            };
            pending.push(key);
        }
        g.input.state.push(StateFolder {
            path: path.clone(),
            uidvalidity: uv,
            uidnext: f.uidnext.map(Uid),
            highestmodseq: f.highestmodseq.and_then(ModSeq::new),
            messages: rows
                .iter()
                .map(|r| state_message(Some(r.uid), r))
                .chain(unbound.iter().map(|r| state_message(None, r)))
                .collect(),
            pending,
            omitted: 0,
        });
        self.rows.insert(path.clone(), (f.id, uv, rows));
        self.unbound.insert(path.clone(), unbound);
        Ok(())
    }
}

/// A state row as the planner sees it; `uid` is `None` for an unbound row.
pub(super) fn state_message(uid: Option<Uid>, r: &MessageRecord) -> StateMessage {
    StateMessage {
        uid,
        local: LocalId::new(r.base.as_str()),
        flags: row_flags(r),
        size: r.size.unwrap_or(0),
        internaldate: UnixTime(r.internaldate.map_or(0, |d| d.unix)),
        message_id: r.message_id.clone(),
        hash: r.hash,
        partial: r.partial,
    }
}

/// What the state view of a folder says, for the incremental paths.
pub(super) fn known_of(f: &StateFolder, read_only: &BTreeSet<FolderPath>) -> Known {
    let bound: BTreeSet<Uid> = f.messages.iter().filter_map(|m| m.uid).collect();
    Known {
        uidvalidity: f.uidvalidity,
        uidnext: f.uidnext,
        highestmodseq: f.highestmodseq,
        all_bound: bound.len() == f.messages.len(),
        count: bound.len(),
        bound,
        read_only: read_only.contains(&f.path),
    }
}

/// What the state knows of a folder, for the incremental paths (seeds V0002, V0045).
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) uidvalidity: UidValidity,
    pub(super) uidnext: Option<Uid>,
    pub(super) highestmodseq: Option<ModSeq>,
    /// UIDs of the bound rows (empty for a folder whose rows were not read).
    pub(super) bound: BTreeSet<Uid>,
    /// How many rows are bound (from `bound`, or from the local stamp's record).
    pub(super) count: usize,
    /// No row is unbound (no UIDVALIDITY change is being recovered from).
    pub(super) all_bound: bool,
    /// The server opened it READ-ONLY last time (V0039).
    pub(super) read_only: bool,
}

/// The journal detail of an APPEND intent: what was sent, so the copy can be recognised.
pub fn encode_intent_detail(size: u64, date: i64, message_id: Option<&str>) -> String {
    format!("size={size};date={date};mid={}", message_id.unwrap_or(""))
}

pub(super) fn decode_intent_detail(s: &str) -> Content {
    let mut c = Content::default();
    for part in s.splitn(3, ';') {
        if let Some(v) = part.strip_prefix("size=") {
            c.size = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("date=") {
            c.date = v.parse().ok().map(UnixTime);
        } else if let Some(v) = part.strip_prefix("mid=") {
            c.message_id = Some(v.to_owned()).filter(|v| !v.is_empty());
        }
    }
    c
}

/// The state's folder rows of the mirror (under the root, matching the patterns), by local
/// path, with their ids, UIDVALIDITY, delimiter and directory noted in `g`. Their message
/// rows are read later, and only for the folders that are looked at ([`load_rows`]).
pub(super) fn state_folders(
    db: &StateDb,
    account: &AccountSpec,
    g: &mut Gathered,
) -> Result<Vec<(FolderPath, FolderRecord)>, crate::SyncError> {
    let mut state_folders = Vec::new();
    for f in db.folders()? {
        let Some(path) = path_of_wire(f.wire_name.as_bytes(), f.delimiter)
            .ok()
            .and_then(|p| g.root.local_of(&p))
        else {
            continue;
        };
        if !account.folders.matches(&path.to_string()) {
            continue;
        }
        let ctx = g.folders.entry(path.clone()).or_default();
        ctx.state_id = Some(f.id);
        ctx.state_uidvalidity = f.uidvalidity;
        ctx.delimiter = f.delimiter;
        ctx.rel = Some(f.local_path.clone());
        state_folders.push((path, f));
    }
    Ok(state_folders)
}

/// Reads the rows of the folders of `state_folders` that `wanted` selects
/// ([`StateRows::load`]) and notes in `known` what the state says of each, for the
/// incremental paths.
pub(super) fn load_rows(
    db: &StateDb,
    state_folders: &[(FolderPath, FolderRecord)],
    wanted: impl Fn(&FolderPath) -> bool,
    rows: &mut StateRows,
    known: &mut HashMap<FolderPath, Known>,
    g: &mut Gathered,
) -> Result<(), crate::SyncError> {
    for (path, f) in state_folders {
        if !wanted(path) {
            continue;
        }
        rows.load(db, path, f, g)?;
        // `load` ends with the folder's state view, when it has one (UIDVALIDITY).
        if let Some(sf) = g.input.state.last().filter(|s| &s.path == path) {
            known.insert(path.clone(), known_of(sf, &rows.read_only));
        }
    }
    Ok(())
}

/// The journal's open APPEND intents as the planner takes them: an upload that may have
/// reached the server before a crash, recognised by what was sent
/// ([`encode_intent_detail`]) and the content hash.
pub(super) fn append_intents(
    intents: Vec<mailfold_store::Intent>,
    id_to_path: &HashMap<FolderId, FolderPath>,
) -> Vec<Intent> {
    let mut out = Vec::new();
    for i in intents {
        if i.intent.kind != IntentKind::Append {
            continue;
        }
        let (Some(folder), Some(base)) = (
            i.intent.folder.and_then(|f| id_to_path.get(&f)),
            &i.intent.base,
        ) else {
            continue;
        };
        let mut content = decode_intent_detail(&i.intent.detail);
        content.hash = i.intent.hash;
        out.push(Intent::Append {
            id: i.id,
            folder: folder.clone(),
            local: LocalId::new(base.as_str()),
            content,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_detail_round_trips() {
        let c = decode_intent_detail(&encode_intent_detail(42, 1_700_000_000, Some("<a;b@x>")));
        assert_eq!(c.size, Some(42));
        assert_eq!(c.date, Some(UnixTime(1_700_000_000)));
        assert_eq!(c.message_id.as_deref(), Some("<a;b@x>"));
        let c = decode_intent_detail(&encode_intent_detail(1, 2, None));
        assert_eq!(c.message_id, None);
    }
}
