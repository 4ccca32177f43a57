//! The planning algorithm. The rules it implements are listed in the module docs of
//! [the crate docs](crate); this file is organised in the same order:
//!
//! 1. index the three sides per folder and decide each folder's `Mode`;
//! 2. match whole-folder renames, then messages across folders (moves), then within folders
//!    (re-binding by content). Messages no state row binds are indexed once by size and hash
//!    (`ContentIndex`), so matching one costs a bucket, not a walk over the account;
//! 3. emit operations for what is left, count deletions, apply the safety valve;
//! 4. order everything: folder creations, UIDVALIDITY records, moves, per-folder work, folder
//!    deletions, folder-state records.

use std::collections::{BTreeMap, BTreeSet};

use super::flags::plan_update;
use super::ops::{
    Body, FlagUpdate, Op, Plan, Refusal, RefusalReason, RowContent, Side, Summary, Warning,
};
use super::types::{
    Content, ContentHash, DownloadMode, FlagSet, FolderPath, Intent, LocalFolder, LocalId,
    LocalMessage, Location, ModSeq, PendingKey, PermanentFlags, PlanConfig, RemoteFolder,
    RemoteMailbox, RemoteMessage, RemoteMessages, ServerCopy, StateFolder, StateMessage, SyncInput,
    Uid, UidRange, UidValidity,
};

/// How a folder's UIDs relate to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The state's UIDs are valid (UIDVALIDITY unchanged, or the server folder is gone and the
    /// state's rows prove what was synced).
    Normal,
    /// No state for the folder: everything is matched by content.
    Fresh(UidValidity),
    /// UIDVALIDITY changed: rows lose their UIDs and are matched by content (V0003).
    Changed(UidValidity),
    /// The server sent no UIDVALIDITY: pull-only by content, no state written (V0037).
    NoUid,
    /// A local folder new to the server: created at the start of the plan.
    Created,
    /// Not synced this run (not examined, `\Noselect`, refused, name not representable).
    Inactive,
}

/// A server message, from the view or implied by the state (incremental view).
#[derive(Debug, Clone)]
struct RMsg {
    flags: FlagSet,
    modseq: Option<ModSeq>,
    content: Content,
}

#[derive(Debug)]
struct Row<'a> {
    msg: &'a StateMessage,
    /// The UID in force: `None` when the row was never or is no longer bound.
    uid: Option<Uid>,
    /// Consumed by a match (move or re-bind).
    done: bool,
}

#[derive(Debug)]
struct Folder<'a> {
    path: FolderPath,
    mode: Mode,
    remote_exists: bool,
    remote_noselect: bool,
    local_exists: bool,
    state: Option<&'a StateFolder>,
    mailbox: Option<&'a RemoteMailbox>,
    read_only: bool,
    perm: PermanentFlags,
    remote: BTreeMap<Uid, RMsg>,
    local: BTreeMap<LocalId, &'a LocalMessage>,
    rows: Vec<Row<'a>>,
    bound_uids: BTreeSet<Uid>,
    bound_locals: BTreeSet<LocalId>,
    remote_taken: BTreeSet<Uid>,
    local_taken: BTreeSet<LocalId>,
    /// Some server message / local file was unbound when the content indexes were built.
    /// Passes only ever take messages, so a folder without any skips the scans for them.
    any_unbound_remote: bool,
    any_unbound_local: bool,
    /// Operations on this folder alone that do not need the server folder to exist yet, or that
    /// must precede its re-creation.
    early: Vec<Op>,
    /// Uploads (after a re-creation of the server folder, if any).
    late: Vec<Op>,
    pending_now: BTreeSet<PendingKey>,
    needs_local_dir: bool,
    needs_remote_recreate: bool,
    local_leaving: usize,
    remote_leaving: usize,
    local_deletions: usize,
    remote_deletions: usize,
    not_permitted: FlagSet,
    refusal: Option<RefusalReason>,
    /// Its state rows or its server listing repeated a UID or a file (warned, first kept):
    /// an input no complete run leaves, so no folder rename (which carries every row over
    /// as it is) is inferred from it.
    duplicates: bool,
}

impl<'a> Folder<'a> {
    fn new(path: FolderPath) -> Self {
        Folder {
            path,
            mode: Mode::Inactive,
            remote_exists: false,
            remote_noselect: false,
            local_exists: false,
            state: None,
            mailbox: None,
            read_only: false,
            perm: PermanentFlags::all(),
            remote: BTreeMap::new(),
            local: BTreeMap::new(),
            rows: Vec::new(),
            bound_uids: BTreeSet::new(),
            bound_locals: BTreeSet::new(),
            remote_taken: BTreeSet::new(),
            local_taken: BTreeSet::new(),
            any_unbound_remote: true,
            any_unbound_local: true,
            early: Vec::new(),
            late: Vec::new(),
            pending_now: BTreeSet::new(),
            needs_local_dir: false,
            needs_remote_recreate: false,
            local_leaving: 0,
            remote_leaving: 0,
            local_deletions: 0,
            remote_deletions: 0,
            not_permitted: FlagSet::new(),
            refusal: None,
            duplicates: false,
        }
    }

    /// Server messages here can be bound to state rows.
    /// Messages a partial view left out as in sync on both sides ([`StateFolder::omitted`]).
    fn omitted(&self) -> usize {
        self.state.map_or(0, |s| s.omitted)
    }

    fn bindable(&self) -> bool {
        matches!(self.mode, Mode::Normal | Mode::Fresh(_) | Mode::Changed(_)) && self.remote_exists
    }

    /// The server folder can take writes in this plan.
    fn remote_writable(&self) -> bool {
        match self.mode {
            Mode::Created => true,
            Mode::Normal | Mode::Fresh(_) | Mode::Changed(_) => {
                self.remote_exists && !self.read_only
            }
            Mode::NoUid | Mode::Inactive => false,
        }
    }

    fn unbound_remote(&self) -> impl Iterator<Item = (&Uid, &RMsg)> {
        self.remote
            .iter()
            .filter(|(u, _)| !self.bound_uids.contains(u) && !self.remote_taken.contains(u))
    }

    fn unbound_local(&self) -> impl Iterator<Item = &'a LocalMessage> + '_ {
        self.local
            .values()
            .copied()
            .filter(|l| !self.bound_locals.contains(&l.id) && !self.local_taken.contains(&l.id))
    }

    fn unchanged_since(&self, uid: Uid) -> Option<ModSeq> {
        self.remote.get(&uid).and_then(|r| r.modseq)
    }
}

fn is_inbox(path: &FolderPath) -> bool {
    path.0.len() == 1 && path.0[0].eq_ignore_ascii_case("INBOX")
}

/// Whether every row's file is among `local` with the flags and the partial mark last synced.
fn holds_as_synced(local: &BTreeMap<LocalId, &LocalMessage>, rows: &[Row<'_>]) -> bool {
    rows.iter().all(|r| {
        local
            .get(&r.msg.local)
            .is_some_and(|l| l.flags == r.msg.flags && l.partial == r.msg.partial)
    })
}

fn row_content(msg: &StateMessage, local: Option<&LocalMessage>) -> RowContent {
    RowContent {
        size: msg.size,
        internaldate: msg.internaldate,
        message_id: msg.message_id.clone(),
        hash: msg.hash.or_else(|| local.and_then(|l| l.hash)),
        partial: local.map_or(msg.partial, |l| l.partial),
    }
}

/// Row content for a pair found by content: the server's size and date, the best of the rest.
fn pair_content(r: &RMsg, l: &LocalMessage) -> RowContent {
    RowContent {
        // Both are known for unbound server messages (checked when indexing).
        size: r.content.size.unwrap_or(l.size),
        internaldate: r.content.date.unwrap_or(l.mtime),
        message_id: r
            .content
            .message_id
            .clone()
            .or_else(|| l.message_id.clone()),
        hash: l.hash,
        partial: l.partial,
    }
}

fn location_for(flags: &FlagSet) -> Location {
    if flags.is_empty() {
        Location::New
    } else {
        Location::Cur
    }
}

fn body_for(mode: DownloadMode, size: u64) -> Body {
    match mode {
        DownloadMode::Full => Body::Full,
        DownloadMode::HeadersOnly => Body::Headers,
        DownloadMode::MaxSize(max) if size > max => Body::Headers,
        DownloadMode::MaxSize(_) => Body::Full,
    }
}

/// How well a local file matches a state row: by identity, by hash, by content.
fn local_score(row: &StateMessage, l: &LocalMessage) -> u8 {
    if l.id == row.local {
        3
    } else if matches!((row.hash, l.hash), (Some(a), Some(b)) if a == b) {
        2
    } else if row.content().matches(&l.content()) {
        1
    } else {
        0
    }
}

/// Where [`Planner::find_local`] may look besides the row's own folder.
#[derive(Debug, Clone, Copy)]
enum Scope {
    SameFolder,
    WritableOthers,
    AnyOthers,
}

/// The messages still unknown on one side, bucketed by what [`Content::matches`] needs, so
/// that finding a message's twin across folders costs one bucket, not a walk over every message
/// of every folder (docs/bench.md gap 1: 100 new messages on a 100k account cost 5 s of CPU).
///
/// `matches` is true only for equal hashes when both are known, and otherwise needs equal known
/// sizes. So every entry that can match a query `q` is in `by_size[q.size]` or, when `q` has a
/// hash, in `by_hash[q.hash]`: [`ContentIndex::candidates`] is a superset of the matches, and
/// callers still apply `matches` and their own eligibility, and choose among the candidates in
/// the order the linear scans used, so the index changes the cost and never the result.
/// Entries are never removed: whether an entry is still free (`remote_taken`, `local_taken`)
/// and its folder still eligible is checked at query time.
#[derive(Debug)]
struct ContentIndex<K> {
    by_size: BTreeMap<u64, Vec<K>>,
    by_hash: BTreeMap<ContentHash, Vec<K>>,
    len: usize,
}

impl<K> ContentIndex<K> {
    fn new() -> Self {
        ContentIndex {
            by_size: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            len: 0,
        }
    }

    fn insert(&mut self, c: &Content, key: K)
    where
        K: Clone,
    {
        if let Some(size) = c.size {
            self.by_size.entry(size).or_default().push(key.clone());
        }
        if let Some(h) = c.hash {
            self.by_hash.entry(h).or_default().push(key);
        }
        self.len += 1;
    }

    /// Every entry that may match `q` (some twice, some not matching after all).
    fn candidates<'s>(&'s self, q: &Content) -> impl Iterator<Item = &'s K> + 's {
        let sized = q.size.and_then(|s| self.by_size.get(&s));
        let hashed = q.hash.and_then(|h| self.by_hash.get(&h));
        sized.into_iter().chain(hashed).flatten()
    }
}

/// A local file in the [`ContentIndex`]: its folder and the file.
#[derive(Debug, Clone, Copy)]
struct LocalEntry<'a> {
    folder: usize,
    msg: &'a LocalMessage,
}

struct Planner<'a> {
    config: &'a PlanConfig,
    folders: Vec<Folder<'a>>,
    index: BTreeMap<FolderPath, usize>,
    intents: Vec<&'a Intent>,
    warnings: Vec<Warning>,
    /// Folder creations and UIDVALIDITY records that go first.
    create_remote: Vec<Op>,
    set_uidvalidity: Vec<Op>,
    moves: Vec<Op>,
    /// Folders tied together by one cross-folder decision beyond the folders its move names
    /// (the row's own folder, whose row a `ForgetMessage` drops after a move elsewhere). With the
    /// folders of every op in `moves`, this is what a refusal spreads along (see `finish`).
    links: Vec<(usize, usize)>,
    delimiter: Option<char>,
    /// Server messages no state row binds, keyed (folder, UID): see [`ContentIndex`].
    remote_index: ContentIndex<(usize, Uid)>,
    /// Local files no state row binds.
    local_index: ContentIndex<LocalEntry<'a>>,
}

/// Computes the plan for one account. Pure: no I/O, no clock; the same input always gives the
/// same plan. See the rules in [the crate docs](crate).
pub fn plan(input: &SyncInput, config: &PlanConfig) -> Plan {
    let mut p = Planner {
        config,
        folders: Vec::new(),
        index: BTreeMap::new(),
        intents: input.intents.iter().collect(),
        warnings: Vec::new(),
        create_remote: Vec::new(),
        set_uidvalidity: Vec::new(),
        moves: Vec::new(),
        links: Vec::new(),
        delimiter: input.remote.iter().find_map(|f| f.delimiter),
        remote_index: ContentIndex::new(),
        local_index: ContentIndex::new(),
    };
    if let Some(refusal) = p.account_check(input) {
        return Plan {
            refused: vec![refusal],
            ..Plan::default()
        };
    }
    p.index_folders(input);
    for i in 0..p.folders.len() {
        p.decide_mode(i);
    }
    p.index_unbound();
    p.match_folder_renames();
    p.match_server_renames();
    p.match_remote_moves();
    p.match_local_moves();
    p.match_both_moved();
    // Each pass runs over every folder before the next starts: a later pass must not take a
    // message an earlier pass would have matched in another folder.
    for i in 0..p.folders.len() {
        p.match_remembered(i);
    }
    for i in 0..p.folders.len() {
        p.match_intents(i);
        p.match_pairs(i);
    }
    p.match_across();
    for i in 0..p.folders.len() {
        p.emit_folder(i);
    }
    p.copy_instead_of_upload(&input.server_copies);
    p.finish()
}

impl<'a> Planner<'a> {
    /// Every folder the state knows missing on one side looks like a fault (an unmounted
    /// Maildir, a LIST gone wrong), not a request to delete all mail (the way OfflineIMAP has
    /// purged whole remote folders).
    fn account_check(&self, input: &SyncInput) -> Option<Refusal> {
        if self.config.force || input.state.iter().all(|s| s.messages.is_empty()) {
            return None;
        }
        let local: BTreeSet<&FolderPath> = input.local.iter().map(|l| &l.path).collect();
        let remote: BTreeSet<&FolderPath> = input
            .remote
            .iter()
            .filter(|r| !r.attributes.nonexistent)
            .map(|r| &r.path)
            .collect();
        for (side, present) in [(Side::Local, &local), (Side::Remote, &remote)] {
            if input.state.iter().all(|s| !present.contains(&s.path)) {
                return Some(Refusal {
                    folder: None,
                    reason: RefusalReason::SideLooksEmpty { side },
                });
            }
        }
        None
    }

    fn folder_mut(&mut self, path: &FolderPath) -> usize {
        if let Some(&i) = self.index.get(path) {
            return i;
        }
        let i = self.folders.len();
        self.folders.push(Folder::new(path.clone()));
        self.index.insert(path.clone(), i);
        i
    }

    fn index_folders(&mut self, input: &'a SyncInput) {
        let mut paths: BTreeSet<&FolderPath> = BTreeSet::new();
        paths.extend(input.remote.iter().map(|f| &f.path));
        paths.extend(input.local.iter().map(|f| &f.path));
        paths.extend(input.state.iter().map(|f| &f.path));
        for p in paths {
            self.folder_mut(p);
        }
        for rf in self.first_of_each(&input.remote, |f| &f.path, "server folder") {
            self.index_remote(rf);
        }
        for lf in self.first_of_each(&input.local, |f| &f.path, "local folder") {
            self.index_local(lf);
        }
        for sf in self.first_of_each(&input.state, |f| &f.path, "state folder") {
            let i = self.folder_mut(&sf.path);
            self.folders[i].state = Some(sf);
        }
    }

    /// The first of `items` for each folder path, in input order; each later one with the
    /// same path is dropped with a [`Warning::DuplicateInput`] naming it as `what`.
    fn first_of_each<T>(
        &mut self,
        items: &'a [T],
        path: impl Fn(&T) -> &FolderPath,
        what: &str,
    ) -> Vec<&'a T> {
        let mut seen = BTreeSet::new();
        let mut firsts = Vec::with_capacity(items.len());
        for item in items {
            if seen.insert(path(item)) {
                firsts.push(item);
            } else {
                self.warn_dup(path(item), what);
            }
        }
        firsts
    }

    fn warn_dup(&mut self, folder: &FolderPath, what: &str) {
        self.warnings.push(Warning::DuplicateInput {
            folder: folder.clone(),
            what: what.to_owned(),
        });
    }

    fn index_remote(&mut self, rf: &'a RemoteFolder) {
        let i = self.folder_mut(&rf.path);
        if rf.attributes.nonexistent {
            return;
        }
        let f = &mut self.folders[i];
        f.remote_exists = true;
        if rf.attributes.noselect {
            f.remote_noselect = true;
            return;
        }
        f.mailbox = rf.mailbox.as_ref();
    }

    fn index_local(&mut self, lf: &'a LocalFolder) {
        let i = self.folder_mut(&lf.path);
        let mut dups = false;
        let f = &mut self.folders[i];
        f.local_exists = true;
        for m in &lf.messages {
            if f.local.insert(m.id.clone(), m).is_some() {
                dups = true;
            }
        }
        if dups {
            // Keep the first, as documented: re-insert in order.
            f.local.clear();
            for m in lf.messages.iter().rev() {
                f.local.insert(m.id.clone(), m);
            }
            f.duplicates = true;
            let path = f.path.clone();
            self.warn_dup(&path, "local file");
        }
    }

    /// Decides the folder's mode, fills its server view and its rows.
    fn decide_mode(&mut self, i: usize) {
        let delimiter = self.delimiter;
        let mut warnings = Vec::new();
        let f = &mut self.folders[i];
        choose_mode(f, self.config, delimiter, &mut warnings);
        fill_rows(f, &mut warnings);
        if let Some(mb) = f.mailbox {
            if f.mode != Mode::Inactive {
                fill_remote(f, mb, &mut warnings);
            }
        }
        refuse_missing_metadata(f);
        if matches!(f.mode, Mode::Fresh(_) | Mode::Changed(_) | Mode::NoUid) {
            // A folder new on the server (or not provably deleted locally) exists locally too.
            f.needs_local_dir = true;
        }
        match f.mode {
            Mode::Fresh(v) | Mode::Changed(v) => self.set_uidvalidity.push(Op::SetUidValidity {
                folder: f.path.clone(),
                uidvalidity: v,
            }),
            Mode::Created => self.create_remote.push(Op::CreateRemoteFolder {
                folder: f.path.clone(),
            }),
            _ => {}
        }
        self.warnings.extend(warnings);
    }

    /// Fills the content indexes with every message no state row binds, in (folder, UID) and
    /// (folder, file name) order: the order the per-folder scans visit them in.
    fn index_unbound(&mut self) {
        for (i, f) in self.folders.iter_mut().enumerate() {
            let mut remote = false;
            for (u, r) in f.unbound_remote() {
                self.remote_index.insert(&r.content, (i, *u));
                remote = true;
            }
            let mut local = false;
            for l in f.unbound_local() {
                self.local_index
                    .insert(&l.content(), LocalEntry { folder: i, msg: l });
                local = true;
            }
            f.any_unbound_remote = remote;
            f.any_unbound_local = local;
        }
    }

    /// Pass 0: a local folder renamed as a whole. A synced, writable folder `a` gone locally
    /// whose every row's file (same base names) now makes up exactly a folder `b` new to both
    /// the server and the state, with every row's message still on the server, is renamed on
    /// the server ([`Op::RenameRemoteFolder`]) and nothing else is planned for either folder
    /// this run. Only a clean cut qualifies — the same files with the flags last synced, the
    /// server folder unchanged since the last run (same messages, flags, UIDNEXT and
    /// HIGHESTMODSEQ), no children, not INBOX — so the plan after it is empty. Anything else
    /// is left to the per-message passes below, which move message by message.
    fn match_folder_renames(&mut self) {
        let n = self.folders.len();
        for a in 0..n {
            let fa = &self.folders[a];
            let gone_here = fa.mode == Mode::Normal
                && fa.omitted() == 0
                && !fa.duplicates
                && fa.remote_exists
                && fa.mailbox.is_some()
                && !fa.local_exists
                && !fa.read_only
                && !fa.rows.is_empty()
                && !is_inbox(&fa.path)
                && fa.remote.len() == fa.rows.len()
                && fa.rows.iter().all(|r| {
                    r.uid
                        .and_then(|u| fa.remote.get(&u))
                        .is_some_and(|m| m.flags == r.msg.flags)
                })
                // Nothing else changed on the server since the last run either.
                && folder_state_op(fa, false).is_none();
            if !gone_here {
                continue;
            }
            let files: BTreeSet<&LocalId> = fa.rows.iter().map(|r| &r.msg.local).collect();
            let target = (0..n).find(|&b| {
                let fb = &self.folders[b];
                b != a
                    && fb.mode == Mode::Created
                    && !fb.duplicates
                    && fb.state.is_none()
                    && fb.local.len() == files.len()
                    && fb.local.keys().all(|k| files.contains(k))
                    // Same flags as synced: the renamed folder needs nothing but the rename.
                    && holds_as_synced(&fb.local, &self.folders[a].rows)
            });
            let Some(b) = target else { continue };
            let (pa, pb) = (self.folders[a].path.clone(), self.folders[b].path.clone());
            if !self.clean_cut(&pa, &pb) {
                continue;
            }
            self.create_remote
                .retain(|o| !matches!(o, Op::CreateRemoteFolder { folder } if *folder == pb));
            self.retire_renamed(a, b);
            self.moves.push(Op::RenameRemoteFolder { from: pa, to: pb });
        }
    }

    /// Pass 0b: a server folder renamed as a whole (by another client, or on the server). A
    /// synced folder `a` whose server folder is gone, while its Maildir still holds exactly the
    /// files of its rows with the flags last synced, and a folder `b` new to both the state and
    /// the Maildir whose server messages are exactly `a`'s rows with the flags last synced: the
    /// Maildir directory is renamed ([`Op::RenameLocalFolder`]) and nothing else is planned for
    /// either folder this run.
    ///
    /// The evidence that `b` is `a`: the server view of a folder new to the state carries each
    /// message's RFC822.SIZE, INTERNALDATE and Message-ID, so every row must match one message
    /// of `b` by content ([`Content::matches`]) and no message of `b` may be left over. When
    /// `b`'s UIDVALIDITY is the state's (Dovecot keeps UIDVALIDITY and UIDs on RENAME), each
    /// row must also find its message under its own UID, and UIDNEXT and HIGHESTMODSEQ must be
    /// those the state recorded (the server folder unchanged since). When it differs, the
    /// rename keeps the old UIDVALIDITY in the state and the next plan re-binds the rows by
    /// content without a download (V0003). Only a clean cut qualifies — no children on either name (a server
    /// RENAME moves them too, RFC 3501 6.3.5), not INBOX, no pending marks or journaled
    /// APPENDs — so everything else falls back to the per-message moves below.
    fn match_server_renames(&mut self) {
        let n = self.folders.len();
        for a in 0..n {
            let fa = &self.folders[a];
            let Some(sa) = fa.state else { continue };
            let gone_there = fa.mode == Mode::Normal
                && fa.omitted() == 0
                && !fa.duplicates
                && !fa.remote_exists
                && fa.local_exists
                && !fa.rows.is_empty()
                && !is_inbox(&fa.path)
                && sa.pending.is_empty()
                && fa.local.len() == fa.rows.len()
                // The same files with the flags last synced: the rename is all the Maildir needs.
                && holds_as_synced(&fa.local, &fa.rows);
            if !gone_there || self.has_intents(&fa.path) {
                continue;
            }
            let target = (0..n).find(|&b| b != a && self.renamed_to(a, b, sa));
            let Some(b) = target else { continue };
            let (pa, pb) = (self.folders[a].path.clone(), self.folders[b].path.clone());
            if !self.clean_cut(&pa, &pb) {
                continue;
            }
            self.set_uidvalidity
                .retain(|o| !matches!(o, Op::SetUidValidity { folder, .. } if *folder == pb));
            self.retire_renamed(a, b);
            for i in [a, b] {
                self.folders[i].needs_local_dir = false;
            }
            self.moves.push(Op::RenameLocalFolder { from: pa, to: pb });
        }
    }

    /// Whether renaming folder `pa` to `pb` is a clean cut: no folder nests in either name,
    /// since a server RENAME would take the children along (RFC 3501 6.3.5).
    fn clean_cut(&self, pa: &FolderPath, pb: &FolderPath) -> bool {
        let nests =
            |x: &FolderPath, y: &FolderPath| x.0.len() < y.0.len() && y.0[..x.0.len()] == x.0[..];
        !nests(pa, pb)
            && !nests(pb, pa)
            && self
                .folders
                .iter()
                .all(|f| !nests(pa, &f.path) && !nests(pb, &f.path))
    }

    /// Folders `a` and `b` of a whole-folder rename: the rename is all they need this run,
    /// so nothing else is planned for them and no other pass takes their messages.
    fn retire_renamed(&mut self, a: usize, b: usize) {
        for i in [a, b] {
            let f = &mut self.folders[i];
            f.mode = Mode::Inactive;
            f.rows.clear();
            let uids: Vec<Uid> = f.remote.keys().copied().collect();
            f.remote_taken.extend(uids);
            let ids: Vec<LocalId> = f.local.keys().cloned().collect();
            f.local_taken.extend(ids);
        }
    }

    /// Whether folder `b` is new on the server only and holds exactly folder `a`'s rows (see
    /// [`Planner::match_server_renames`]); `sa` is `a`'s state.
    fn renamed_to(&self, a: usize, b: usize, sa: &StateFolder) -> bool {
        let (fa, fb) = (&self.folders[a], &self.folders[b]);
        let (Mode::Fresh(v), Some(mb), false) = (fb.mode, fb.mailbox, fb.duplicates) else {
            return false;
        };
        let uidvalidity = sa.uidvalidity;
        let complete = matches!(mb.messages, RemoteMessages::Complete(_));
        // With the UIDs kept, the folder must also be unchanged since the last run (UIDNEXT,
        // HIGHESTMODSEQ, as pass 0 asks of its server folder): the state carried over by the
        // rename then needs no new record, and the plan after it is empty. A new UIDVALIDITY
        // is recorded by the re-binding plan anyway.
        let derived = fb
            .remote
            .keys()
            .next_back()
            .and_then(|u| Uid::new(u.get().saturating_add(1)));
        let unchanged = v != uidvalidity
            || (sa.uidnext == mb.uidnext.or(derived) && sa.highestmodseq == mb.highestmodseq);
        if !complete
            || !unchanged
            || fb.local_exists
            || fb.state.is_some()
            || is_inbox(&fb.path)
            || fb.remote.len() != fa.rows.len()
            || self.has_intents(&fb.path)
        {
            return false;
        }
        let mut used: BTreeSet<Uid> = BTreeSet::new();
        for r in &fa.rows {
            let content = r.msg.content();
            let same = |u: &Uid, m: &RMsg| {
                !used.contains(u) && m.flags == r.msg.flags && content.matches(&m.content)
            };
            let found = if v == uidvalidity {
                // UIDs are kept: the row's UID must name its message.
                r.uid
                    .filter(|u| fb.remote.get(u).is_some_and(|m| same(u, m)))
            } else {
                self.remote_index
                    .candidates(&content)
                    .filter(|(c, u)| *c == b && fb.remote.get(u).is_some_and(|m| same(u, m)))
                    .map(|(_, u)| *u)
                    .min()
            };
            match found {
                Some(u) => {
                    used.insert(u);
                }
                None => return false,
            }
        }
        true
    }

    fn has_intents(&self, path: &FolderPath) -> bool {
        self.intents
            .iter()
            .any(|it| matches!(it, Intent::Append { folder, .. } if folder == path))
    }

    /// Row `ri` of folder `a` when it is bound to a UID: that UID and the state's message.
    /// What the move passes below walk (an unbound row has no server message to follow).
    fn bound_row(&self, a: usize, ri: usize) -> Option<(Uid, &'a StateMessage)> {
        let row = &self.folders[a].rows[ri];
        Some((row.uid?, row.msg))
    }

    /// Pass 1: a synced message gone from its server folder whose local file is still there, and
    /// an unknown server message with the same content (in any folder): the server moved it.
    fn match_remote_moves(&mut self) {
        for a in 0..self.folders.len() {
            for ri in 0..self.folders[a].rows.len() {
                let Some((uid, msg)) = self.bound_row(a, ri) else {
                    continue;
                };
                let local_id = msg.local.clone();
                let fa = &self.folders[a];
                if fa.remote.contains_key(&uid) || !fa.local.contains_key(&local_id) {
                    continue;
                }
                let Some((b, v)) = self.find_remote(a, &msg.content()) else {
                    continue;
                };
                if self.claimed_by_intent(b, v) {
                    // Our own APPEND or COPY of a file there, cut before its commit: pass 5
                    // binds it to that file, not to this row's file.
                    continue;
                }
                let Some(&l) = self.folders[a].local.get(&local_id) else {
                    continue;
                };
                self.folders[a].rows[ri].done = true;
                if a != b {
                    self.folders[a].local_leaving += 1;
                }
                self.folders[b].remote_taken.insert(v);
                let op = self.pair_op(b, v, l, &msg.flags, row_content(msg, Some(l)), Some(a));
                if a == b {
                    self.folders[a].early.push(op);
                } else {
                    self.folders[b].needs_local_dir = true;
                    self.moves.push(op);
                }
            }
        }
    }

    /// Whether server message `v` of folder `b` is claimed by a file of `b` that an unfinished
    /// journal entry or a row without UID names (what passes 4 and 5 bind).
    fn claimed_by_intent(&self, b: usize, v: Uid) -> bool {
        let fb = &self.folders[b];
        let Some(r) = fb.remote.get(&v) else {
            return false;
        };
        // A row without UID whose file is here: an upload or copy made without UIDPLUS (or
        // a message remembered over a UIDVALIDITY change), which pass 4 binds by content.
        let remembered = fb.rows.iter().any(|row| {
            row.uid.is_none()
                && !row.done
                && fb.local.contains_key(&row.msg.local)
                && row.msg.content().matches(&r.content)
        });
        remembered
            || self.intents.iter().any(|it| {
                let Intent::Append {
                    folder,
                    local,
                    content,
                    ..
                } = it;
                *folder == fb.path
                    && fb.local.get(local).is_some_and(|l| {
                        !fb.bound_locals.contains(&l.id)
                            && (content.matches(&r.content) || l.content().matches(&r.content))
                    })
            })
    }

    /// Pass 2: a synced message whose local file is gone while the server still has it, and an
    /// unknown local file that is the same message (same base name, hash or content): the user
    /// moved or renamed it.
    fn match_local_moves(&mut self) {
        for a in 0..self.folders.len() {
            for ri in 0..self.folders[a].rows.len() {
                let Some((uid, msg)) = self.bound_row(a, ri) else {
                    continue;
                };
                let fa = &self.folders[a];
                if !fa.remote.contains_key(&uid) || fa.local.contains_key(&msg.local) {
                    continue;
                }
                let scope = if fa.read_only {
                    Scope::SameFolder
                } else {
                    Scope::WritableOthers
                };
                let Some((c, y)) = self.find_local(a, msg, scope) else {
                    continue;
                };
                let Some(l) = self.folders[c].local.get(&y).copied() else {
                    continue;
                };
                self.folders[a].rows[ri].done = true;
                self.folders[c].local_taken.insert(y);
                if a == c {
                    let op = self.pair_op(a, uid, l, &msg.flags, row_content(msg, Some(l)), None);
                    self.folders[a].early.push(op);
                } else {
                    self.move_on_server(a, uid, c, l, msg);
                }
            }
        }
    }

    /// The server follows a file moved locally: the message `uid` of folder `a` moves to
    /// folder `c`, where the file `l` is, its flags merged against the row `msg`'s.
    fn move_on_server(
        &mut self,
        a: usize,
        uid: Uid,
        c: usize,
        l: &LocalMessage,
        msg: &StateMessage,
    ) {
        self.folders[a].remote_leaving += 1;
        let (rflags, _) = self.remote_flags(a, uid);
        let fc = &self.folders[c];
        let merged = plan_update(&l.flags, &msg.flags, &rflags, &fc.perm, false, None);
        let np = merged.not_permitted.clone();
        self.folders[c].not_permitted = self.folders[c].not_permitted.union(&np);
        self.moves.push(Op::MoveRemote {
            from: self.folders[a].path.clone(),
            uid,
            to: self.folders[c].path.clone(),
            local: l.id.clone(),
            content: row_content(msg, Some(l)),
            update: merged.update,
        });
    }

    /// Pass 3: a synced message gone from both sides of its folder that reappears on both sides
    /// elsewhere. The same destination: bind there. Different destinations: the server's move
    /// wins and the local file follows it (no duplicate).
    fn match_both_moved(&mut self) {
        for a in 0..self.folders.len() {
            for ri in 0..self.folders[a].rows.len() {
                let Some((uid, msg)) = self.bound_row(a, ri) else {
                    continue;
                };
                let fa = &self.folders[a];
                if fa.remote.contains_key(&uid) || fa.local.contains_key(&msg.local) {
                    continue;
                }
                let Some((b, v)) = self.find_remote(a, &msg.content()) else {
                    continue;
                };
                if self.claimed_by_intent(b, v) {
                    continue; // as in pass 1
                }
                let Some((c, y)) = self.find_local(a, msg, Scope::AnyOthers) else {
                    continue;
                };
                let Some(l) = self.folders[c].local.get(&y).copied() else {
                    continue;
                };
                self.folders[a].rows[ri].done = true;
                self.folders[b].remote_taken.insert(v);
                self.folders[c].local_taken.insert(y);
                let op = self.pair_op(b, v, l, &msg.flags, row_content(msg, Some(l)), Some(c));
                self.moves.push(op);
                if b != c {
                    self.folders[b].needs_local_dir = true;
                    self.folders[c].local_leaving += 1;
                }
                self.links.extend([(a, b), (a, c)]);
                self.moves.push(Op::ForgetMessage {
                    folder: self.folders[a].path.clone(),
                    uid: Some(uid),
                    local: msg.local.clone(),
                });
            }
        }
    }

    /// Pass 4: rows without a UID (after a UIDVALIDITY change). The server copy is found by
    /// content and bound, keeping the row's flags as the merge base, so local changes made before
    /// the change survive (V0003). Moves made meanwhile are followed as in passes 1–3: a file
    /// still here whose server copy is now in another folder follows it; a file moved locally
    /// whose server copy is still here is moved on the server; both moved: the server wins.
    fn match_remembered(&mut self, a: usize) {
        if matches!(self.folders[a].mode, Mode::Inactive | Mode::NoUid) {
            return;
        }
        for ri in 0..self.folders[a].rows.len() {
            let fa = &self.folders[a];
            let row = &fa.rows[ri];
            if row.uid.is_some() || row.done {
                continue;
            }
            let msg = row.msg;
            if let Some(&l) = fa.local.get(&msg.local) {
                self.remembered_file_here(a, ri, msg, l);
                continue;
            }
            let Some((b, v)) = self.find_remote(a, &msg.content()) else {
                continue;
            };
            let Some((c, y)) = self.find_local(a, msg, Scope::AnyOthers) else {
                if b == a {
                    self.remembered_local_deletion(a, ri, v);
                }
                continue;
            };
            let Some(l) = self.folders[c].local.get(&y).copied() else {
                continue;
            };
            let server_move = b == a && c != a;
            if server_move
                && !(self.folders[a].remote_writable() && self.folders[c].remote_writable())
            {
                self.remembered_file_back(a, ri, v, (c, y), l);
                continue;
            }
            self.remembered_moved(a, ri, (b, v), (c, y), l);
        }
    }

    /// A remembered row whose file `l` is still here: its server copy is bound where it is
    /// found, here or (moved on the server) in folder `b`, where the file follows it.
    fn remembered_file_here(
        &mut self,
        a: usize,
        ri: usize,
        msg: &'a StateMessage,
        l: &'a LocalMessage,
    ) {
        let found = self
            .find_remote(a, &msg.content())
            .or_else(|| self.find_remote(a, &l.content()));
        let Some((b, v)) = found else { return };
        self.folders[a].rows[ri].done = true;
        self.folders[b].remote_taken.insert(v);
        let op = self.pair_op(b, v, l, &msg.flags, row_content(msg, Some(l)), Some(a));
        if a == b {
            self.folders[a].early.push(op);
        } else {
            self.folders[a].local_leaving += 1;
            self.folders[b].needs_local_dir = true;
            self.moves.push(op);
        }
    }

    /// A remembered row whose server copy `v` is still here while its file `l` (named `y`)
    /// was moved locally to folder `c`, and the server cannot take the move (a read-only
    /// side): the file goes back to where the server holds the message, merging against the
    /// row's flags. Leaving it to the cross-folder pass would merge against the intersection
    /// of both sides instead, and a run cut after the file's rename (which then finds the
    /// file beside its row) would merge differently: the same input must end the same way
    /// however often the run is cut. The move's commit replaces the unbound row of the same
    /// name; a row under another name is forgotten after.
    fn remembered_file_back(
        &mut self,
        a: usize,
        ri: usize,
        v: Uid,
        (c, y): (usize, LocalId),
        l: &'a LocalMessage,
    ) {
        let msg = self.folders[a].rows[ri].msg;
        self.folders[a].rows[ri].done = true;
        self.folders[a].remote_taken.insert(v);
        self.folders[a].needs_local_dir = true;
        self.folders[c].local_taken.insert(y);
        self.folders[c].local_leaving += 1;
        let op = self.pair_op(a, v, l, &msg.flags, row_content(msg, Some(l)), Some(c));
        self.moves.push(op);
        if l.id != msg.local {
            // Renamed as well as moved: the row under its old name goes too.
            self.moves.push(Op::ForgetMessage {
                folder: self.folders[a].path.clone(),
                uid: None,
                local: msg.local.clone(),
            });
        }
    }

    /// A remembered row whose server copy `v` is in folder `b` and whose file `l` (named `y`)
    /// is in folder `c`, at least one of them moved away: a file moved locally with its server
    /// copy still here is moved on the server; otherwise the file follows the server copy
    /// (both moved: the server wins). The row itself is forgotten after the move or bind.
    fn remembered_moved(
        &mut self,
        a: usize,
        ri: usize,
        (b, v): (usize, Uid),
        (c, y): (usize, LocalId),
        l: &'a LocalMessage,
    ) {
        let msg = self.folders[a].rows[ri].msg;
        let server_move = b == a && c != a;
        self.folders[a].rows[ri].done = true;
        self.folders[b].remote_taken.insert(v);
        self.folders[c].local_taken.insert(y);
        if server_move {
            self.move_on_server(a, v, c, l, msg);
        } else {
            let op = self.pair_op(b, v, l, &msg.flags, row_content(msg, Some(l)), Some(c));
            if b != c {
                self.folders[b].needs_local_dir = true;
                self.folders[c].local_leaving += 1;
            }
            self.moves.push(op);
        }
        // After the move or bind: a crash in between finds the row and the copies again.
        self.links.extend([(a, b), (a, c)]);
        self.moves.push(Op::ForgetMessage {
            folder: self.folders[a].path.clone(),
            uid: None,
            local: msg.local.clone(),
        });
    }

    /// A remembered row (no UID after a UIDVALIDITY change) whose file was deleted locally,
    /// while its server copy is still in the same folder under a new UID `v`: the row proves
    /// the message was synced, so the local deletion goes to the server exactly as for a bound
    /// row (V0003: a file deleted just before the reset must not come back). Read-only: kept
    /// on the server and marked pending; it is not downloaded again either way.
    fn remembered_local_deletion(&mut self, a: usize, ri: usize, v: Uid) {
        let fa = &mut self.folders[a];
        let local = fa.rows[ri].msg.local.clone();
        fa.rows[ri].done = true;
        fa.remote_taken.insert(v);
        if fa.read_only {
            fa.pending_now.insert(PendingKey::Expunge(v));
        } else {
            fa.remote_deletions += 1;
            fa.remote_leaving += 1;
            let unchanged_since = fa.unchanged_since(v);
            fa.early.push(Op::ExpungeRemote {
                folder: fa.path.clone(),
                uid: v,
                unchanged_since,
            });
        }
        fa.early.push(Op::ForgetMessage {
            folder: fa.path.clone(),
            uid: None,
            local,
        });
    }

    /// Pass 5: journaled APPENDs (and `UID COPY`s of a reader's copy, journaled alike). The
    /// copy found on the server is bound, the file's flags winning; otherwise the file is
    /// uploaded (or copied) again by passes 7 and 8; either way the journal entry is settled.
    fn match_intents(&mut self, i: usize) {
        let path = self.folders[i].path.clone();
        let intents: Vec<&Intent> = self
            .intents
            .iter()
            .copied()
            .filter(|it| matches!(it, Intent::Append { folder, .. } if *folder == path))
            .collect();
        if self.folders[i].mode == Mode::Inactive {
            return;
        }
        for it in intents {
            let Intent::Append {
                id, local, content, ..
            } = it;
            let f = &self.folders[i];
            let unbound = f
                .local
                .get(local)
                .copied()
                .filter(|l| !f.bound_locals.contains(&l.id) && !f.local_taken.contains(&l.id));
            if let Some(l) = unbound {
                if f.bindable() {
                    let found = f
                        .unbound_remote()
                        .find(|(_, r)| {
                            content.matches(&r.content) || l.content().matches(&r.content)
                        })
                        .map(|(u, _)| *u);
                    if let Some(v) = found {
                        // The copy is ours, whatever flags it carries: APPEND sent the file's,
                        // a UID COPY cut before its STORE brought the source's. The file's
                        // flags are the change to make, as the op would have made them.
                        self.bind_ours(i, v, l);
                    }
                }
            }
            // Settled after whatever pass 7 does for the file.
            self.folders[i].late.push(Op::DropIntent { id: *id });
        }
    }

    /// Pass 6: unknown local files and unknown server messages in the same folder that hold the
    /// same message (a lost state database, a crash after a transfer): bind, never transfer
    /// again. Full copies are paired before partial ones (V0070).
    fn match_pairs(&mut self, i: usize) {
        let f = &self.folders[i];
        if !(f.bindable() || f.mode == Mode::NoUid) {
            return;
        }
        if !(f.any_unbound_local && f.any_unbound_remote) {
            return;
        }
        let mut locals: Vec<&LocalMessage> = f.unbound_local().collect();
        locals.sort_by_key(|l| (l.partial, l.id.clone()));
        for l in locals {
            let f = &self.folders[i];
            let q = l.content();
            // The lowest free UID of this folder that matches: what a scan in UID order finds.
            let found = self
                .remote_index
                .candidates(&q)
                .filter(|(c, u)| {
                    *c == i
                        && !f.remote_taken.contains(u)
                        && f.remote.get(u).is_some_and(|r| q.matches(&r.content))
                })
                .map(|(_, u)| *u)
                .min();
            let Some(v) = found else { continue };
            if f.mode == Mode::NoUid {
                // Pull-only: the file already holds the message; nothing is recorded.
                self.folders[i].remote_taken.insert(v);
                self.folders[i].local_taken.insert(l.id.clone());
            } else {
                self.bind_fresh(i, v, l);
            }
        }
    }

    /// Pass 6b: what is still unknown on both sides but matches across folders (a move made
    /// while the state was lost or unbound): the server's folder wins and the file follows it,
    /// rather than a download and an upload that would leave the message twice on each side.
    fn match_across(&mut self) {
        if self.local_index.len == 0 {
            // The normal re-sync: every local file is bound, so nothing can match.
            return;
        }
        for b in 0..self.folders.len() {
            if !self.folders[b].bindable() {
                continue;
            }
            let remote: Vec<(Uid, Content)> = self.folders[b]
                .unbound_remote()
                .map(|(u, r)| (*u, r.content.clone()))
                .collect();
            for (v, content) in remote {
                // The first free full copy in (folder, file name) order, as a scan finds it.
                let found = self
                    .local_index
                    .candidates(&content)
                    .filter(|e| {
                        let fc = &self.folders[e.folder];
                        e.folder != b
                            && !matches!(fc.mode, Mode::NoUid | Mode::Inactive)
                            && !fc.local_taken.contains(&e.msg.id)
                            && !e.msg.partial
                            && e.msg.content().matches(&content)
                    })
                    .min_by(|x, y| (x.folder, &x.msg.id).cmp(&(y.folder, &y.msg.id)))
                    .map(|e| (e.folder, e.msg));
                let Some((c, l)) = found else { continue };
                let Some(r) = self.folders[b].remote.get(&v) else {
                    continue;
                };
                let base = l.flags.intersection(&r.flags);
                let row = pair_content(r, l);
                self.folders[b].remote_taken.insert(v);
                self.folders[b].needs_local_dir = true;
                self.folders[c].local_taken.insert(l.id.clone());
                self.folders[c].local_leaving += 1;
                let op = self.pair_op(b, v, l, &base, row, Some(c));
                self.moves.push(op);
            }
        }
    }

    /// [`Self::bind_fresh`] for a server copy this program made (a journaled APPEND or COPY):
    /// the server's flags are the merge base, so the file's flags win.
    fn bind_ours(&mut self, i: usize, v: Uid, l: &'a LocalMessage) {
        let Some(r) = self.folders[i].remote.get(&v) else {
            return;
        };
        let base = r.flags.clone();
        let content = pair_content(r, l);
        self.folders[i].remote_taken.insert(v);
        self.folders[i].local_taken.insert(l.id.clone());
        let op = self.pair_op(i, v, l, &base, content, None);
        self.folders[i].early.push(op);
    }

    fn bind_fresh(&mut self, i: usize, v: Uid, l: &'a LocalMessage) {
        let Some(r) = self.folders[i].remote.get(&v) else {
            return;
        };
        let base = l.flags.intersection(&r.flags);
        let content = pair_content(r, l);
        self.folders[i].remote_taken.insert(v);
        self.folders[i].local_taken.insert(l.id.clone());
        let op = self.pair_op(i, v, l, &base, content, None);
        self.folders[i].early.push(op);
    }

    /// A pairing operation of server message `v` in folder `b` with local file `l`, merging
    /// flags against `base`. `from`: the folder the file is in when it is not `b`.
    fn pair_op(
        &mut self,
        b: usize,
        v: Uid,
        l: &LocalMessage,
        base: &FlagSet,
        content: RowContent,
        from: Option<usize>,
    ) -> Op {
        let (rflags, modseq) = self.remote_flags(b, v);
        let fb = &self.folders[b];
        let merged = plan_update(&l.flags, base, &rflags, &fb.perm, fb.read_only, modseq);
        let fb = &mut self.folders[b];
        fb.not_permitted = fb.not_permitted.union(&merged.not_permitted);
        if merged.blocked_by_read_only {
            fb.pending_now.insert(PendingKey::Flags(v));
        }
        match from {
            Some(a) if a != b => Op::MoveLocal {
                from: self.folders[a].path.clone(),
                local: l.id.clone(),
                to: self.folders[b].path.clone(),
                uid: v,
                content,
                update: merged.update,
            },
            _ => Op::Bind {
                folder: self.folders[b].path.clone(),
                uid: v,
                local: l.id.clone(),
                content,
                update: merged.update,
            },
        }
    }

    fn remote_flags(&self, i: usize, uid: Uid) -> (FlagSet, Option<ModSeq>) {
        self.folders[i]
            .remote
            .get(&uid)
            .map(|r| (r.flags.clone(), r.modseq))
            .unwrap_or_default()
    }

    /// An unknown server message matching `content`: the row's own folder first, then the
    /// others in path order.
    fn find_remote(&self, a: usize, content: &Content) -> Option<(usize, Uid)> {
        self.remote_index
            .candidates(content)
            .filter(|(b, u)| {
                let fb = &self.folders[*b];
                fb.bindable()
                    && !fb.remote_taken.contains(u)
                    && fb
                        .remote
                        .get(u)
                        .is_some_and(|r| content.matches(&r.content))
            })
            .min_by_key(|(b, u)| (*b != a, *b, *u))
            .copied()
    }

    /// The best unknown local file for a row: highest score, then the row's folder, then path
    /// order, among the folders `scope` allows.
    fn find_local(&self, a: usize, row: &StateMessage, scope: Scope) -> Option<(usize, LocalId)> {
        let eligible = |c: usize| {
            let fc = &self.folders[c];
            match scope {
                // The file will follow a server move: only the local side changes, so the
                // row's own folder qualifies even when its server folder is gone. A file
                // renamed in a folder the server renamed is found here, and merged against the
                // row's flags; left to pass 6b it was merged against the intersection of both
                // sides, which undid a flag change made on one side (plan_regressions
                // `server_folder_rename_keeps_a_local_seen`).
                Scope::AnyOthers => !matches!(fc.mode, Mode::NoUid | Mode::Inactive),
                // The file is bound where the server copy is.
                _ if c == a => fc.bindable(),
                Scope::SameFolder => false,
                // The server copy will be moved into `c`.
                Scope::WritableOthers => fc.remote_writable(),
            }
        };
        let free = |c: usize, l: &LocalMessage| {
            let fc = &self.folders[c];
            !fc.bound_locals.contains(&l.id) && !fc.local_taken.contains(&l.id)
        };
        // Score 3 is the row's own file name, in any folder; 2 and 1 need an equal hash or an
        // equal size, which the index buckets hold. The best score wins, then the row's folder,
        // then path order, then file name: the order of the scan this replaces.
        let by_name = (0..self.folders.len())
            .filter_map(|c| self.folders[c].local.get(&row.local).map(|&l| (c, l)));
        let by_content = self
            .local_index
            .candidates(&row.content())
            .map(|e| (e.folder, e.msg));
        by_name
            .chain(by_content)
            .filter(|&(c, l)| eligible(c) && free(c, l))
            .map(|(c, l)| (local_score(row, l), c, l))
            .filter(|&(s, _, _)| s > 0)
            .min_by(|&(sx, cx, lx), &(sy, cy, ly)| {
                (std::cmp::Reverse(sx), cx != a, cx, &lx.id).cmp(&(
                    std::cmp::Reverse(sy),
                    cy != a,
                    cy,
                    &ly.id,
                ))
            })
            .map(|(_, c, l)| (c, l.id.clone()))
    }

    /// Pass 7: what is left in a folder.
    fn emit_folder(&mut self, i: usize) {
        let config = self.config;
        let mut warnings = Vec::new();
        let f = &mut self.folders[i];
        if f.mode == Mode::Inactive {
            return;
        }
        emit_rows(f, config, &mut warnings);
        emit_downloads(f, config.download);
        // Unknown local files: upload.
        let uploads: Vec<&LocalMessage> = if f.any_unbound_local {
            f.unbound_local().collect()
        } else {
            Vec::new()
        };
        for l in uploads {
            emit_new_local(f, l, config.keep_new_local, &mut warnings);
        }
        emit_pending(f, &mut warnings);
        self.warnings.extend(warnings);
    }

    /// Pass 8: a new local file the plan would upload, whose content the server holds in
    /// another folder ([`SyncInput::server_copies`]: a mail reader saved a copy of a message
    /// there), is copied on the server instead ([`Op::CopyRemote`]), so its bytes are never
    /// sent back. Runs after pass 7, when every folder's expunges and moves are known: the
    /// source message must stay where it is in this plan. When the source file went away in
    /// the same run, pass 2 has already made the pair a [`Op::MoveRemote`] and the file is no
    /// longer new. An upload into a server folder this plan re-creates stays an upload.
    fn copy_instead_of_upload(&mut self, copies: &[ServerCopy]) {
        if copies.is_empty() {
            return;
        }
        let mut by_file: BTreeMap<(&FolderPath, &LocalId), Vec<&ServerCopy>> = BTreeMap::new();
        for c in copies {
            by_file.entry((&c.folder, &c.local)).or_default().push(c);
        }
        // Server messages this plan takes away (expunged, moved), and folders a rename takes
        // whole (a rename is the only operation on its folders).
        let mut leaving: BTreeSet<(FolderPath, Uid)> = BTreeSet::new();
        let mut renamed: BTreeSet<FolderPath> = BTreeSet::new();
        let all_ops = self
            .moves
            .iter()
            .chain(self.folders.iter().flat_map(|f| f.early.iter()));
        for op in all_ops {
            match op {
                Op::ExpungeRemote { folder, uid, .. } => {
                    leaving.insert((folder.clone(), *uid));
                }
                Op::MoveRemote { from, uid, .. } => {
                    leaving.insert((from.clone(), *uid));
                }
                Op::RenameRemoteFolder { from, to } | Op::RenameLocalFolder { from, to } => {
                    renamed.insert(from.clone());
                    renamed.insert(to.clone());
                }
                _ => {}
            }
        }
        for i in 0..self.folders.len() {
            let f = &self.folders[i];
            if !f.late.iter().any(|o| matches!(o, Op::Upload { .. }))
                || (f.mode == Mode::Normal && !f.remote_exists)
            {
                continue;
            }
            let late = std::mem::take(&mut self.folders[i].late);
            let mut out = Vec::with_capacity(late.len());
            for op in late {
                let Op::Upload {
                    folder,
                    local,
                    flags,
                    ..
                } = &op
                else {
                    out.push(op);
                    continue;
                };
                let found = by_file.get(&(folder, local)).and_then(|cands| {
                    cands
                        .iter()
                        .find_map(|c| self.copy_source(c, &leaving, &renamed).map(|uid| (*c, uid)))
                });
                let Some((c, uid)) = found else {
                    out.push(op);
                    continue;
                };
                out.push(Op::CopyRemote {
                    from: c.from.clone(),
                    uid,
                    to: folder.clone(),
                    local: local.clone(),
                    content: RowContent {
                        size: c.row.size,
                        internaldate: c.row.internaldate,
                        message_id: c.row.message_id.clone(),
                        hash: c.row.hash,
                        partial: false,
                    },
                    flags: flags.clone(),
                });
            }
            self.folders[i].late = out;
        }
    }

    /// The UID to copy from for candidate `c`, when the source message is there and stays
    /// there in this plan. A source folder the view holds
    /// must show the message; one left out unexamined with no rows in the view (the gather
    /// skipped it as unchanged on both sides, its UIDVALIDITY checked by STATUS) is trusted
    /// as the state records it.
    fn copy_source(
        &self,
        c: &ServerCopy,
        leaving: &BTreeSet<(FolderPath, Uid)>,
        renamed: &BTreeSet<FolderPath>,
    ) -> Option<Uid> {
        let uid = c.row.uid?;
        if c.from == c.folder || c.row.partial || renamed.contains(&c.from) {
            return None;
        }
        if leaving.contains(&(c.from.clone(), uid)) {
            return None;
        }
        let fb = &self.folders[*self.index.get(&c.from)?];
        if !fb.remote_exists || fb.remote_noselect || fb.refusal.is_some() {
            return None;
        }
        let state = fb.state?;
        match (fb.mode, fb.mailbox) {
            (Mode::Normal, Some(mb)) => {
                if fb.bound_uids.contains(&uid) {
                    // The row in the view must be this one, and its message still there.
                    let row = fb.rows.iter().find(|r| r.uid == Some(uid))?;
                    let same = row.msg.content().matches(&c.row.content());
                    return (same
                        && fb.remote.contains_key(&uid)
                        && !fb.remote_taken.contains(&uid))
                    .then_some(uid);
                }
                // A partial view leaves out rows in sync on both sides: the message is there
                // unless the delta says it vanished (or names it as unknown).
                match &mb.messages {
                    RemoteMessages::Changes { vanished, .. }
                        if state.omitted > 0
                            && !fb.remote.contains_key(&uid)
                            && !vanished.iter().any(|v| v.contains(uid)) =>
                    {
                        Some(uid)
                    }
                    _ => None,
                }
            }
            (Mode::Inactive, None) if state.messages.is_empty() => Some(uid),
            _ => None,
        }
    }

    /// Puts the plan together: the refusals (the safety valve, spread along cross-folder
    /// links), then the operations in their order (folder creations, UIDVALIDITY records,
    /// moves, each folder's work, folder deletions, folder-state records), without any that
    /// touches a refused folder.
    fn finish(mut self) -> Plan {
        let mut refused = valve_refusals(&mut self.folders, self.config);
        self.spread_refusals(&mut refused);
        let refused_paths: BTreeSet<FolderPath> =
            refused.iter().filter_map(|r| r.folder.clone()).collect();

        let mut ops = Vec::new();
        // 1. Folder creations, parents first (paths sort parents first).
        let mut create_local: Vec<FolderPath> = self
            .folders
            .iter()
            .filter(|f| f.needs_local_dir && !f.local_exists)
            .map(|f| f.path.clone())
            .collect();
        create_local.sort();
        ops.extend(
            create_local
                .into_iter()
                .map(|folder| Op::CreateLocalFolder { folder }),
        );
        ops.append(&mut self.create_remote);
        // 2. UIDVALIDITY records, before anything binds into those folders.
        ops.append(&mut self.set_uidvalidity);
        // 3. Moves across folders.
        let moved: BTreeSet<FolderPath> = self
            .moves
            .iter()
            .flat_map(|o| o.folders().into_iter().cloned())
            .collect();
        ops.append(&mut self.moves);
        // 4. Per-folder work.
        let mut deletions = Vec::new();
        let mut tail = Vec::new();
        for f in &mut self.folders {
            if f.mode == Mode::Inactive && f.state.is_none() {
                continue;
            }
            let touched = !f.early.is_empty() || !f.late.is_empty() || moved.contains(&f.path);
            emit_folder_work(f, &mut ops);
            if f.mode != Mode::Inactive {
                folder_end(f, touched, &mut deletions, &mut tail);
            }
        }
        // 5. Folder deletions, children first.
        deletions.sort_by_key(|d| std::cmp::Reverse(d.0));
        ops.extend(deletions.into_iter().map(|(_, op)| op));
        // 6. Folder-state records last.
        ops.extend(tail);

        self.settle_intents(&mut ops, &refused_paths);
        let summary = summarise(&ops, &self.folders, &refused_paths);
        Plan {
            ops,
            warnings: self.warnings,
            refused,
            summary,
        }
    }

    /// Drops every operation that touches a refused folder (and the journal drops of intents
    /// in them), and settles a journal entry whose folder is unknown to the plan.
    fn settle_intents(&self, ops: &mut Vec<Op>, refused_paths: &BTreeSet<FolderPath>) {
        let intent_folder: BTreeMap<_, _> = self
            .intents
            .iter()
            .map(|it| match it {
                Intent::Append { id, folder, .. } => (*id, folder.clone()),
            })
            .collect();
        ops.retain(|op| match op {
            Op::DropIntent { id } => intent_folder
                .get(id)
                .is_none_or(|p| !refused_paths.contains(p)),
            _ => op.folders().iter().all(|p| !refused_paths.contains(*p)),
        });
        let mut dropped: BTreeSet<_> = ops
            .iter()
            .filter_map(|o| match o {
                Op::DropIntent { id } => Some(*id),
                _ => None,
            })
            .collect();
        for it in &self.intents {
            let Intent::Append { id, folder, .. } = it;
            if !self.index.contains_key(folder) && dropped.insert(*id) {
                ops.push(Op::DropIntent { id: *id });
            }
        }
    }
}

impl Planner<'_> {
    /// A refused folder takes every folder it shares a cross-folder decision with down with it,
    /// transitively. A refusal drops every operation naming the folder, so a move into or out of
    /// it would be dropped while the other folder still counted the message as gone (it would
    /// delete its folder with the file in it: fuzz regression `local_sent_deleted`) or as
    /// handled (it would record a UIDNEXT past a message it never took in).
    fn spread_refusals(&mut self, refused: &mut Vec<Refusal>) {
        let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
        for op in &self.moves {
            let ix: Vec<usize> = op
                .folders()
                .into_iter()
                .filter_map(|p| self.index.get(p).copied())
                .collect();
            for &x in &ix {
                for &y in &ix {
                    edges.insert((x, y));
                }
            }
        }
        for &(x, y) in &self.links {
            edges.insert((x, y));
            edges.insert((y, x));
        }
        let mut queue: Vec<usize> = refused
            .iter()
            .filter_map(|r| r.folder.as_ref())
            .filter_map(|p| self.index.get(p).copied())
            .collect();
        let mut done: BTreeSet<usize> = queue.iter().copied().collect();
        while let Some(x) = queue.pop() {
            for &(_, y) in edges.range((x, 0)..=(x, usize::MAX)) {
                if done.insert(y) {
                    queue.push(y);
                    self.folders[y].mode = Mode::Inactive;
                    refused.push(Refusal {
                        folder: Some(self.folders[y].path.clone()),
                        reason: RefusalReason::LinkedToRefused {
                            folder: self.folders[x].path.clone(),
                        },
                    });
                }
            }
        }
    }
}

/// The folders refused already, and those whose deletions trip the safety valve on either
/// side (unless forced); a folder the valve refuses becomes inactive.
fn valve_refusals(folders: &mut [Folder<'_>], config: &PlanConfig) -> Vec<Refusal> {
    let mut refused = Vec::new();
    for f in folders {
        if let Some(reason) = f.refusal.take() {
            refused.push(Refusal {
                folder: Some(f.path.clone()),
                reason,
            });
            continue;
        }
        if config.force {
            continue;
        }
        // A partial view holds only what changed; the folder's size includes the rest.
        let checks = [
            (Side::Local, f.local_deletions, f.local.len() + f.omitted()),
            (
                Side::Remote,
                f.remote_deletions,
                f.remote.len() + f.omitted(),
            ),
        ];
        for (side, deletions, total) in checks {
            if config.valve.trips(deletions, total) {
                refused.push(Refusal {
                    folder: Some(f.path.clone()),
                    reason: RefusalReason::SafetyValve {
                        side,
                        deletions,
                        total,
                    },
                });
                f.mode = Mode::Inactive;
                break;
            }
        }
    }
    refused
}

/// A folder's own operations: the early ones, a re-creation of its server folder when it was
/// deleted there while local files were added, then the uploads.
fn emit_folder_work(f: &mut Folder<'_>, ops: &mut Vec<Op>) {
    ops.append(&mut f.early);
    let recreate = f.mode == Mode::Normal
        && !f.remote_exists
        && f.late.iter().any(|o| matches!(o, Op::Upload { .. }));
    if recreate {
        f.needs_remote_recreate = true;
        ops.push(Op::CreateRemoteFolder {
            folder: f.path.clone(),
        });
    }
    ops.append(&mut f.late);
}

/// What becomes of an active folder at the end of the plan: forgotten when gone on both
/// sides; deleted on the side that still has it when the other side deleted it and the plan
/// empties it (with the deletion at its depth, so that children go first); otherwise its
/// state record.
fn folder_end(f: &Folder<'_>, touched: bool, deletions: &mut Vec<(usize, Op)>, tail: &mut Vec<Op>) {
    let depth = f.path.depth();
    let folder = || f.path.clone();
    let forget = || Op::ForgetFolder { folder: folder() };
    let remote_gone_folder = !f.remote_exists && f.state.is_some() && f.mode == Mode::Normal;
    let local_gone_folder = !f.local_exists && f.state.is_some() && f.remote_exists;
    if !f.remote_exists && !f.local_exists && f.state.is_some() {
        deletions.push((depth, forget()));
        return;
    }
    if remote_gone_folder && !f.needs_remote_recreate {
        if f.local_leaving == f.local.len() && f.omitted() == 0 && f.pending_now.is_empty() {
            if f.local_exists {
                deletions.push((depth, Op::DeleteLocalFolder { folder: folder() }));
            }
            deletions.push((depth, forget()));
        }
        return;
    }
    let complete = f
        .mailbox
        .is_some_and(|m| matches!(m.messages, RemoteMessages::Complete(_)));
    if local_gone_folder
        && complete
        && !f.needs_local_dir
        && f.mode == Mode::Normal
        && !f.read_only
        && !is_inbox(&f.path)
        && f.remote_leaving == f.remote.len()
        && f.omitted() == 0
        && f.pending_now.is_empty()
    {
        deletions.push((depth, Op::DeleteRemoteFolder { folder: folder() }));
        deletions.push((depth, forget()));
        return;
    }
    if let Some(op) = folder_state_op(f, touched) {
        tail.push(op);
    }
}

/// The folder's [`Mode`] from which sides it exists on and the server's UIDVALIDITY against the
/// state's, with its write permissions when the server examined it.
fn choose_mode(
    f: &mut Folder<'_>,
    config: &PlanConfig,
    delimiter: Option<char>,
    warnings: &mut Vec<Warning>,
) {
    let state = f.state;
    match (f.remote_exists, f.mailbox) {
        (true, None) => {
            // Not examined or \Noselect: nothing to do with its messages.
            if f.remote_noselect && f.local.values().next().is_some() {
                warnings.push(Warning::LocalMessagesInNoselect {
                    folder: f.path.clone(),
                });
            }
            f.mode = Mode::Inactive;
        }
        (true, Some(mb)) => {
            f.read_only = mb.read_only || config.pull;
            f.perm = mb.permanent_flags.clone();
            f.mode = match (mb.uidvalidity, state) {
                (None, _) => {
                    warnings.push(Warning::NoUidValidity {
                        folder: f.path.clone(),
                    });
                    Mode::NoUid
                }
                (Some(v), None) => Mode::Fresh(v),
                (Some(v), Some(s)) if s.uidvalidity == v => Mode::Normal,
                (Some(v), Some(s)) => {
                    warnings.push(Warning::UidValidityChanged {
                        folder: f.path.clone(),
                        old: s.uidvalidity,
                        new: v,
                    });
                    Mode::Changed(v)
                }
            };
        }
        (false, _) => {
            if state.is_some() {
                // The server folder is gone; the rows still prove what was synced.
                f.mode = Mode::Normal;
                // Pull only (V0040): it is not re-created for files added locally.
                f.read_only = config.pull;
            } else if f.local_exists && config.pull {
                // Pull only (V0040): a folder that exists only locally is not created.
                warnings.push(Warning::LocalOnlyFolderNotPushed {
                    folder: f.path.clone(),
                });
                f.mode = Mode::Inactive;
            } else if f.local_exists {
                let bad = f
                    .path
                    .0
                    .iter()
                    .any(|c| c.is_empty() || delimiter.is_some_and(|d| c.contains(d)));
                if bad {
                    warnings.push(Warning::FolderNameNotRepresentable {
                        folder: f.path.clone(),
                        delimiter: delimiter.unwrap_or('/'),
                    });
                    f.mode = Mode::Inactive;
                } else {
                    f.mode = Mode::Created;
                }
            }
        }
    }
}

/// The folder's rows from its state, deduplicated by UID and by local id (first wins), bound
/// to their UIDs only where the mode keeps them valid; and the sets of what they bind.
fn fill_rows<'a>(f: &mut Folder<'a>, warnings: &mut Vec<Warning>) {
    if let Some(s) = f.state {
        let mut uids = BTreeSet::new();
        let mut locals = BTreeSet::new();
        let mut dup = false;
        for m in &s.messages {
            if !locals.insert(m.local.clone()) || m.uid.is_some_and(|u| !uids.insert(u)) {
                dup = true;
                continue;
            }
            let uid = match f.mode {
                Mode::Normal => m.uid,
                _ => None,
            };
            f.rows.push(Row {
                msg: m,
                uid,
                done: false,
            });
        }
        if dup {
            f.duplicates = true;
            warnings.push(Warning::DuplicateInput {
                folder: f.path.clone(),
                what: "state row".into(),
            });
        }
    }
    if f.mode == Mode::NoUid {
        // Rows are left untouched: nothing about them can be proven (V0037).
        f.rows.clear();
    }
    for r in &f.rows {
        if let Some(u) = r.uid {
            f.bound_uids.insert(u);
        }
        f.bound_locals.insert(r.msg.local.clone());
    }
}

/// Every server message the state does not know must carry size and date; a folder with one
/// that does not (or refused already) is left inactive this run.
fn refuse_missing_metadata(f: &mut Folder<'_>) {
    if f.refusal.is_none()
        && matches!(
            f.mode,
            Mode::Normal | Mode::Fresh(_) | Mode::Changed(_) | Mode::NoUid
        )
    {
        let missing = f
            .unbound_remote()
            .find(|(_, r)| r.content.size.is_none() || r.content.date.is_none())
            .map(|(u, _)| *u);
        if let Some(uid) = missing {
            f.refusal = Some(RefusalReason::MissingMetadata { uid });
        }
    }
    if f.refusal.is_some() {
        f.mode = Mode::Inactive;
        f.rows.clear();
        f.bound_uids.clear();
        f.bound_locals.clear();
    }
}

/// Fills a folder's server view; a [`RemoteMessages::Changes`] view is completed from the state.
fn fill_remote(f: &mut Folder<'_>, mb: &RemoteMailbox, warnings: &mut Vec<Warning>) {
    let dup = match &mb.messages {
        RemoteMessages::Complete(msgs) => fill_complete(f, msgs),
        RemoteMessages::Changes {
            since,
            changed,
            vanished,
        } => match fill_changes(f, *since, changed, vanished) {
            Some(dup) => dup,
            None => return,
        },
    };
    if dup {
        f.duplicates = true;
        warnings.push(Warning::DuplicateInput {
            folder: f.path.clone(),
            what: "server UID".into(),
        });
    }
}

/// The server view from a complete listing (first of a repeated UID kept); whether a UID was
/// repeated.
fn fill_complete(f: &mut Folder<'_>, msgs: &[RemoteMessage]) -> bool {
    let mut dup = false;
    for m in msgs {
        if f.remote.contains_key(&m.uid) {
            dup = true;
            continue;
        }
        f.remote.insert(
            m.uid,
            RMsg {
                flags: m.flags.clone(),
                modseq: m.modseq,
                content: m.content(),
            },
        );
    }
    dup
}

/// The server view from a delta since `since` (RFC 7162): every bound row not vanished is
/// implied unchanged, then the changed messages replace theirs, keeping the row's metadata
/// where the delta leaves it out. `None` (and the folder refused) when the delta does not
/// start where the state ends; else whether a UID was repeated.
fn fill_changes(
    f: &mut Folder<'_>,
    since: ModSeq,
    changed: &[RemoteMessage],
    vanished: &[UidRange],
) -> Option<bool> {
    let fits = f.mode == Mode::Normal
        && f.state.is_some_and(|s| s.highestmodseq == Some(since))
        && f.rows.iter().all(|r| r.uid.is_some());
    if !fits {
        f.refusal = Some(RefusalReason::NeedsCompleteView);
        return None;
    }
    let vanished = Vanished::new(vanished);
    for r in &f.rows {
        let Some(uid) = r.uid else { continue };
        if vanished.contains(uid) {
            continue;
        }
        let mut content = r.msg.content();
        content.hash = None;
        f.remote.insert(
            uid,
            RMsg {
                flags: r.msg.flags.clone(),
                modseq: Some(since),
                content,
            },
        );
    }
    let mut dup = false;
    let mut seen = BTreeSet::new();
    for m in changed {
        if !seen.insert(m.uid) {
            dup = true;
            continue;
        }
        if vanished.contains(m.uid) {
            continue;
        }
        let implied = f.remote.get(&m.uid).map(|r| r.content.clone());
        let mut content = m.content();
        if let Some(old) = implied {
            content.size = content.size.or(old.size);
            content.date = content.date.or(old.date);
            content.message_id = content.message_id.or(old.message_id);
        }
        f.remote.insert(
            m.uid,
            RMsg {
                flags: m.flags.clone(),
                modseq: m.modseq,
                content,
            },
        );
    }
    Some(dup)
}

/// A VANISHED list as sorted, merged ranges, so that looking a UID up costs a binary search
/// instead of a walk over every range: a server may send thousands of ranges (every other
/// message expunged) for a folder of tens of thousands of rows.
struct Vanished(Vec<(Uid, Uid)>);

impl Vanished {
    fn new(ranges: &[UidRange]) -> Self {
        let mut v: Vec<(Uid, Uid)> = ranges
            .iter()
            .map(|r| (r.first.min(r.last), r.first.max(r.last)))
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(Uid, Uid)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match merged.last_mut() {
                Some((_, last)) if lo <= *last => *last = (*last).max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Vanished(merged)
    }

    fn contains(&self, uid: Uid) -> bool {
        // The last range starting at or before `uid` is the only one that can hold it.
        let i = self.0.partition_point(|(lo, _)| *lo <= uid);
        i > 0 && self.0.get(i - 1).is_some_and(|(_, hi)| uid <= *hi)
    }
}

/// Pass 7, the rows no earlier pass consumed: each by what is left of it on either side.
fn emit_rows<'a>(f: &mut Folder<'a>, config: &PlanConfig, warnings: &mut Vec<Warning>) {
    for ri in 0..f.rows.len() {
        if f.rows[ri].done {
            continue;
        }
        let msg = f.rows[ri].msg;
        let local = f.local.get(&msg.local).copied();
        match (f.rows[ri].uid, local) {
            (Some(uid), Some(l)) if f.remote.contains_key(&uid) => {
                emit_pair(f, uid, msg, l, config.download);
            }
            (Some(uid), None) if f.remote.contains_key(&uid) => {
                // Deleted locally, proven synced by the row.
                if f.read_only {
                    f.pending_now.insert(PendingKey::Expunge(uid));
                } else {
                    f.remote_deletions += 1;
                    f.remote_leaving += 1;
                    let unchanged_since = f.unchanged_since(uid);
                    f.early.push(Op::ExpungeRemote {
                        folder: f.path.clone(),
                        uid,
                        unchanged_since,
                    });
                }
            }
            (Some(uid), Some(_)) => {
                // Expunged on the server, proven synced by the row.
                f.local_deletions += 1;
                f.local_leaving += 1;
                f.early.push(Op::DeleteLocal {
                    folder: f.path.clone(),
                    uid,
                    local: msg.local.clone(),
                });
            }
            (uid, None) => f.early.push(Op::ForgetMessage {
                folder: f.path.clone(),
                uid,
                local: msg.local.clone(),
            }),
            (None, Some(l)) => {
                // Remembered after a UIDVALIDITY change and not found on the server: the
                // message is never lost, so it goes back up (V0003).
                emit_new_local(f, l, config.keep_new_local, warnings);
            }
        }
    }
}

/// Pass 7, the server messages no row or earlier pass took: downloaded.
fn emit_downloads(f: &mut Folder<'_>, download: DownloadMode) {
    let downloads: Vec<(Uid, RMsg)> = if f.any_unbound_remote {
        f.unbound_remote().map(|(u, r)| (*u, r.clone())).collect()
    } else {
        Vec::new()
    };
    for (uid, r) in downloads {
        let (Some(size), Some(date)) = (r.content.size, r.content.date) else {
            continue; // refused earlier; unreachable in an active folder
        };
        f.needs_local_dir = true;
        f.early.push(Op::Download {
            folder: f.path.clone(),
            uid,
            location: location_for(&r.flags),
            flags: r.flags.clone(),
            body: body_for(download, size),
            size,
            internaldate: date,
            message_id: r.content.message_id.clone(),
            replace: None,
            record: f.mode != Mode::NoUid,
        });
    }
}

/// Pending marks (V0039): once, and cleared when settled; and the folder's warnings about
/// what the server would not take.
fn emit_pending(f: &mut Folder<'_>, warnings: &mut Vec<Warning>) {
    if f.mode != Mode::NoUid {
        let old: BTreeSet<PendingKey> = f
            .state
            .map(|s| s.pending.iter().cloned().collect())
            .unwrap_or_default();
        for k in f.pending_now.difference(&old) {
            f.late.push(Op::MarkPending {
                folder: f.path.clone(),
                key: k.clone(),
            });
        }
        for k in old.difference(&f.pending_now) {
            f.late.push(Op::ClearPending {
                folder: f.path.clone(),
                key: k.clone(),
            });
        }
    }
    if !f.pending_now.is_empty() {
        warnings.push(Warning::ReadOnlyPending {
            folder: f.path.clone(),
            count: f.pending_now.len(),
        });
    }
    if !f.not_permitted.is_empty() {
        warnings.push(Warning::KeywordsNotPermitted {
            folder: f.path.clone(),
            flags: f.not_permitted.clone(),
        });
    }
}

/// A bound pair present on both sides: flags, and a partial copy made full (V0070).
fn emit_pair(
    f: &mut Folder<'_>,
    uid: Uid,
    msg: &StateMessage,
    l: &LocalMessage,
    mode: DownloadMode,
) {
    let Some(r) = f.remote.get(&uid) else { return };
    let wants_full = l.partial && body_for(mode, msg.size) == Body::Full;
    if l.flags == msg.flags && r.flags == msg.flags && l.partial == msg.partial && !wants_full {
        // Unchanged on both sides since the last sync, the common case of a re-sync: the
        // merge of three equal sets changes nothing, stores nothing and records the same
        // flags, so it is not computed (it allocates several sets per message).
        return;
    }
    let merged = plan_update(
        &l.flags,
        &msg.flags,
        &r.flags,
        &f.perm,
        f.read_only,
        r.modseq,
    );
    f.not_permitted = f.not_permitted.union(&merged.not_permitted);
    if merged.blocked_by_read_only {
        f.pending_now.insert(PendingKey::Flags(uid));
    }
    if msg.partial != l.partial && !wants_full {
        // The file changed from partial to full under the same name (a download that replaced
        // it and crashed before its commit): record it.
        f.early.push(Op::Bind {
            folder: f.path.clone(),
            uid,
            local: l.id.clone(),
            content: row_content(msg, Some(l)),
            update: merged.update,
        });
        return;
    }
    let record = merged.update.record.clone();
    if !merged.update.is_noop() || merged.update.record != msg.flags {
        f.early.push(Op::SyncFlags {
            folder: f.path.clone(),
            uid,
            local: l.id.clone(),
            update: merged.update,
        });
    }
    if wants_full {
        f.early.push(Op::Download {
            folder: f.path.clone(),
            uid,
            flags: record,
            location: l.location,
            body: Body::Full,
            size: msg.size,
            internaldate: msg.internaldate,
            message_id: msg.message_id.clone(),
            replace: Some(l.id.clone()),
            record: true,
        });
    }
}

/// A local file the server does not have: upload it, keep it pending (read-only), or keep it
/// local (partial copies, pull-only folders).
fn emit_new_local(
    f: &mut Folder<'_>,
    l: &LocalMessage,
    keep_local: bool,
    warnings: &mut Vec<Warning>,
) {
    if l.partial {
        warnings.push(Warning::UnpairedPartial {
            folder: f.path.clone(),
            local: l.id.clone(),
        });
        return;
    }
    if keep_local && !matches!(f.mode, Mode::NoUid | Mode::Inactive) {
        warnings.push(Warning::KeptLocal {
            folder: f.path.clone(),
            local: l.id.clone(),
        });
        return;
    }
    let can_upload = match f.mode {
        Mode::Created => true,
        // The folder is recreated first (unless pull only, V0040).
        Mode::Normal if !f.remote_exists => !f.read_only,
        Mode::Normal | Mode::Fresh(_) | Mode::Changed(_) => !f.read_only,
        Mode::NoUid | Mode::Inactive => false,
    };
    if !can_upload {
        if f.read_only && f.mode != Mode::NoUid {
            f.pending_now.insert(PendingKey::Upload(l.id.clone()));
        }
        return;
    }
    let flags: FlagSet = l
        .flags
        .iter()
        .filter(|fl| f.perm.allows(fl))
        .cloned()
        .collect();
    let np = l.flags.difference(&flags);
    f.not_permitted = f.not_permitted.union(&np);
    f.late.push(Op::Upload {
        folder: f.path.clone(),
        local: l.id.clone(),
        flags,
        internaldate: l.mtime,
        size: l.size,
        message_id: l.message_id.clone(),
        hash: l.hash,
    });
}

/// The folder-state record, when the view's values differ from the state's or when the plan
/// writes to the folder (its own writes move UIDNEXT and HIGHESTMODSEQ on).
fn folder_state_op(f: &Folder<'_>, touched: bool) -> Option<Op> {
    let created = matches!(f.mode, Mode::Created) || f.needs_remote_recreate;
    if created {
        return Some(Op::SetFolderState {
            folder: f.path.clone(),
            uidnext: None,
            highestmodseq: None,
        });
    }
    if !f.bindable() {
        return None;
    }
    let mb = f.mailbox?;
    let derived = f
        .remote
        .keys()
        .next_back()
        .and_then(|u| Uid::new(u.get().saturating_add(1)));
    let uidnext = mb.uidnext.or(derived);
    let hms = mb.highestmodseq;
    let same = f.mode == Mode::Normal
        && !touched
        && f.state
            .is_some_and(|s| s.uidnext == uidnext && s.highestmodseq == hms);
    if same {
        None
    } else {
        Some(Op::SetFolderState {
            folder: f.path.clone(),
            uidnext,
            highestmodseq: hms,
        })
    }
}

fn summarise(ops: &[Op], folders: &[Folder<'_>], refused: &BTreeSet<FolderPath>) -> Summary {
    let mut s = Summary::default();
    let count_update = |s: &mut Summary, u: &FlagUpdate| {
        if u.local.is_some() {
            s.local_flag_changes += 1;
        }
        if u.remote.is_some() {
            s.remote_flag_changes += 1;
        }
    };
    for op in ops {
        match op {
            Op::CreateLocalFolder { .. } | Op::CreateRemoteFolder { .. } => s.folders_created += 1,
            Op::DeleteLocalFolder { .. } | Op::DeleteRemoteFolder { .. } => s.folders_deleted += 1,
            Op::Bind { update, .. } => {
                s.binds += 1;
                count_update(&mut s, update);
            }
            Op::Download { .. } => s.downloads += 1,
            Op::Upload { .. } => s.uploads += 1,
            Op::CopyRemote { .. } => s.remote_copies += 1,
            Op::SyncFlags { update, .. } => count_update(&mut s, update),
            Op::MoveLocal { update, .. } => {
                s.local_moves += 1;
                count_update(&mut s, update);
            }
            Op::MoveRemote { update, .. } => {
                s.remote_moves += 1;
                count_update(&mut s, update);
            }
            Op::DeleteLocal { .. } => s.local_deletions += 1,
            Op::ExpungeRemote { .. } => s.remote_deletions += 1,
            _ => {}
        }
    }
    s.pending = folders
        .iter()
        .filter(|f| !refused.contains(&f.path))
        .map(|f| f.pending_now.len())
        .sum();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merged, binary-searched VANISHED list answers as a walk over the raw ranges does,
    /// for overlapping, nested, adjacent and reversed ranges.
    #[test]
    fn vanished_lookup_agrees_with_a_walk_over_the_ranges() {
        let mut x: u32 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200 {
            let ranges: Vec<UidRange> = (0..next() % 12)
                .filter_map(|_| {
                    let (a, b) = (1 + next() % 60, 1 + next() % 60);
                    Some(UidRange {
                        first: Uid::new(a)?,
                        last: Uid::new(b)?,
                    })
                })
                .collect();
            let v = Vanished::new(&ranges);
            for n in 1..70 {
                let Some(u) = Uid::new(n) else { continue };
                assert_eq!(
                    v.contains(u),
                    ranges.iter().any(|r| r.contains(u)),
                    "{ranges:?} {n}"
                );
            }
        }
    }
}
