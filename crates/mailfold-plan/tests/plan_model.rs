//! A small in-memory model of the three sides (server, Maildir, state database) and of applying
//! each planner operation as the applier must: effect first, commit last, each split into the
//! micro-steps a crash can fall between. Shared by `plan_props.rs` and `plan_examples.rs`
//! (included with `#[path]`); as its own test target it holds no test.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use mailfold_plan::{
    Body, FlagSet, FlagStore, FlagUpdate, FolderAttributes, FolderPath, Intent, IntentId,
    LocalFolder, LocalId, LocalMessage, Location, ModSeq, Op, PendingKey, PermanentFlags, Plan,
    RemoteFolder, RemoteMailbox, RemoteMessage, RemoteMessages, RowContent, ServerCopy,
    StateFolder, StateMessage, SyncInput, Uid, UidValidity, UnixTime,
};

/// Message content is identified by a body number; size, date and Message-ID derive from it, so
/// distinct bodies never look alike.
pub(crate) type BodyId = u32;

pub(crate) fn size_of(b: BodyId) -> u64 {
    1000 + u64::from(b)
}

pub(crate) fn date_of(b: BodyId) -> UnixTime {
    UnixTime(1_500_000_000 + i64::from(b) * 7)
}

pub(crate) fn mid_of(b: BodyId) -> Option<String> {
    (!b.is_multiple_of(4)).then(|| format!("<m{b}@example.org>"))
}

pub(crate) fn body_of_size(size: u64) -> BodyId {
    u32::try_from(size.saturating_sub(1000)).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RMsg {
    pub(crate) body: BodyId,
    pub(crate) flags: FlagSet,
    pub(crate) modseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RFolder {
    pub(crate) uidvalidity: Option<u32>,
    pub(crate) uidnext: u32,
    pub(crate) hms: u64,
    pub(crate) read_only: bool,
    pub(crate) perm: PermanentFlags,
    pub(crate) msgs: BTreeMap<u32, RMsg>,
}

impl RFolder {
    pub(crate) fn new(uidvalidity: u32) -> Self {
        RFolder {
            uidvalidity: Some(uidvalidity),
            uidnext: 1,
            hms: 1,
            read_only: false,
            perm: PermanentFlags::all(),
            msgs: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, body: BodyId, flags: FlagSet) -> u32 {
        let uid = self.uidnext;
        self.uidnext += 1;
        self.hms += 1;
        self.msgs.insert(
            uid,
            RMsg {
                body,
                flags,
                modseq: self.hms,
            },
        );
        uid
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LMsg {
    pub(crate) body: BodyId,
    pub(crate) flags: FlagSet,
    pub(crate) partial: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct World {
    pub(crate) remote: BTreeMap<FolderPath, RFolder>,
    pub(crate) local: BTreeMap<FolderPath, BTreeMap<LocalId, LMsg>>,
    pub(crate) state: BTreeMap<FolderPath, StateFolder>,
    pub(crate) intents: BTreeMap<IntentId, Intent>,
    pub(crate) next_id: u64,
    pub(crate) next_uidvalidity: u32,
    /// Whether the server answers APPEND and COPY/MOVE with APPENDUID/COPYUID.
    pub(crate) no_uidplus: bool,
}

pub(crate) fn fp(s: &str) -> FolderPath {
    FolderPath::parse(s)
}

pub(crate) fn uid(n: u32) -> Uid {
    Uid::new(n).expect("test UIDs are non-zero")
}

pub(crate) fn uv(n: u32) -> UidValidity {
    UidValidity::new(n).expect("test UIDVALIDITY is non-zero")
}

pub(crate) fn flags(names: &[&str]) -> FlagSet {
    FlagSet::from_imap(names.iter().copied())
}

impl World {
    pub(crate) fn new() -> Self {
        World {
            next_uidvalidity: 100,
            ..World::default()
        }
    }

    pub(crate) fn fresh_id(&mut self, prefix: &str) -> LocalId {
        self.next_id += 1;
        LocalId::new(format!("{prefix}{}", self.next_id))
    }

    /// The planner's input: complete views of everything.
    pub(crate) fn input(&self) -> SyncInput {
        SyncInput {
            remote: self
                .remote
                .iter()
                .map(|(p, f)| RemoteFolder {
                    path: p.clone(),
                    attributes: FolderAttributes::default(),
                    delimiter: Some('/'),
                    mailbox: Some(RemoteMailbox {
                        uidvalidity: f.uidvalidity.and_then(UidValidity::new),
                        uidnext: Uid::new(f.uidnext),
                        highestmodseq: ModSeq::new(f.hms),
                        permanent_flags: f.perm.clone(),
                        read_only: f.read_only,
                        messages: RemoteMessages::Complete(
                            f.msgs
                                .iter()
                                .map(|(u, m)| RemoteMessage {
                                    uid: uid(*u),
                                    flags: m.flags.clone(),
                                    modseq: ModSeq::new(m.modseq),
                                    size: Some(size_of(m.body)),
                                    internaldate: Some(date_of(m.body)),
                                    message_id: mid_of(m.body),
                                })
                                .collect(),
                        ),
                    }),
                })
                .collect(),
            local: self
                .local
                .iter()
                .map(|(p, msgs)| LocalFolder {
                    path: p.clone(),
                    messages: msgs
                        .iter()
                        .map(|(id, m)| LocalMessage {
                            id: id.clone(),
                            location: if m.flags.is_empty() {
                                Location::New
                            } else {
                                Location::Cur
                            },
                            flags: m.flags.clone(),
                            size: size_of(m.body),
                            mtime: date_of(m.body),
                            message_id: mid_of(m.body),
                            hash: None,
                            partial: m.partial,
                        })
                        .collect(),
                })
                .collect(),
            state: self.state.values().cloned().collect(),
            intents: self.intents.values().cloned().collect(),
            server_copies: self.server_copies(),
        }
    }

    /// What the gather finds in the state's hash index for each local file no row of its
    /// folder names: the bound rows of the other folders with the same content (here: body).
    pub(crate) fn server_copies(&self) -> Vec<ServerCopy> {
        let mut out = Vec::new();
        for (folder, files) in &self.local {
            let named: BTreeSet<&LocalId> = self
                .state
                .get(folder)
                .map(|s| s.messages.iter().map(|m| &m.local).collect())
                .unwrap_or_default();
            for (id, m) in files {
                if named.contains(id) || m.partial {
                    continue;
                }
                for (from, s) in &self.state {
                    if from == folder {
                        continue;
                    }
                    for row in &s.messages {
                        if row.uid.is_some() && !row.partial && body_of_size(row.size) == m.body {
                            out.push(ServerCopy {
                                folder: folder.clone(),
                                local: id.clone(),
                                from: from.clone(),
                                row: row.clone(),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Builds a synced world: every message on both sides, state rows agreeing.
    pub(crate) fn synced(folders: &[(&str, Vec<(BodyId, FlagSet)>)]) -> World {
        let mut w = World::new();
        for (name, msgs) in folders {
            let path = fp(name);
            let v = w.next_uidvalidity;
            w.next_uidvalidity += 1;
            let mut rf = RFolder::new(v);
            let mut lf = BTreeMap::new();
            let mut rows = Vec::new();
            for (body, fl) in msgs {
                let u = rf.add(*body, fl.clone());
                let id = LocalId::new(format!("b{body}"));
                lf.insert(
                    id.clone(),
                    LMsg {
                        body: *body,
                        flags: fl.clone(),
                        partial: false,
                    },
                );
                rows.push(StateMessage {
                    uid: Some(uid(u)),
                    local: id,
                    flags: fl.clone(),
                    size: size_of(*body),
                    internaldate: date_of(*body),
                    message_id: mid_of(*body),
                    hash: None,
                    partial: false,
                });
            }
            w.state.insert(
                path.clone(),
                StateFolder {
                    path: path.clone(),
                    uidvalidity: uv(v),
                    uidnext: Uid::new(rf.uidnext),
                    highestmodseq: ModSeq::new(rf.hms),
                    messages: rows,
                    pending: vec![],
                    omitted: 0,
                },
            );
            w.remote.insert(path.clone(), rf);
            w.local.insert(path, lf);
        }
        w
    }

    /// Applies `plan`, stopping after `budget` micro-steps (a crash) when given. Returns the
    /// number of micro-steps performed.
    pub(crate) fn apply(&mut self, plan: &Plan, budget: Option<usize>) -> usize {
        let mut left = budget.unwrap_or(usize::MAX);
        let mut done = 0;
        for op in &plan.ops {
            let steps = self.steps(op);
            for s in 0..steps {
                if left == 0 {
                    return done;
                }
                left -= 1;
                done += 1;
                self.step(op, s);
            }
        }
        done
    }

    /// How many micro-steps an operation has.
    pub(crate) fn steps(&self, op: &Op) -> usize {
        match op {
            Op::Bind { .. } | Op::SyncFlags { .. } => 3,
            Op::MoveLocal { .. } | Op::MoveRemote { .. } => 4,
            Op::Upload { .. } => 3,
            Op::CopyRemote { .. } => 4,
            Op::CreateRemoteFolder { .. } | Op::Download { .. } => 2,
            Op::RenameRemoteFolder { .. } | Op::RenameLocalFolder { .. } => 2,
            Op::DeleteLocal { .. } | Op::ExpungeRemote { .. } => 2,
            _ => 1,
        }
    }

    fn remote_store(&mut self, folder: &FolderPath, u: Uid, store: &FlagStore) {
        let Some(rf) = self.remote.get_mut(folder) else {
            return;
        };
        let Some(m) = rf.msgs.get_mut(&u.get()) else {
            return;
        };
        if let Some(since) = store.unchanged_since {
            if m.modseq > since.0.get() {
                return; // MODIFIED: the applier skips the store
            }
        }
        m.flags = m.flags.union(&store.add).difference(&store.remove);
        rf.hms += 1;
        m.modseq = rf.hms;
    }

    fn local_flags(&mut self, folder: &FolderPath, id: &LocalId, fl: &Option<FlagSet>) {
        if let (Some(fl), Some(m)) = (fl, self.local.get_mut(folder).and_then(|f| f.get_mut(id))) {
            m.flags = fl.clone();
        }
    }

    fn upsert_row(
        &mut self,
        folder: &FolderPath,
        u: Option<Uid>,
        local: &LocalId,
        fl: &FlagSet,
        c: &RowContent,
    ) {
        let Some(s) = self.state.get_mut(folder) else {
            return;
        };
        s.messages
            .retain(|m| &m.local != local && (u.is_none() || m.uid != u));
        s.messages.push(StateMessage {
            uid: u,
            local: local.clone(),
            flags: fl.clone(),
            size: c.size,
            internaldate: c.internaldate,
            message_id: c.message_id.clone(),
            hash: c.hash,
            partial: c.partial,
        });
    }

    /// The UID of the copy a `UID COPY` of `u` from `from` made in `to`: the newest message
    /// there, when it holds the source's body (what COPYUID reports).
    fn copy_uid(&self, from: &FolderPath, u: Uid, to: &FolderPath) -> Option<u32> {
        let t = self.remote.get(to)?;
        let n = t.uidnext.checked_sub(1)?;
        let body = t.msgs.get(&n)?.body;
        let src = self.remote.get(from)?.msgs.get(&u.get())?.body;
        (body == src).then_some(n)
    }

    fn step(&mut self, op: &Op, s: usize) {
        match op {
            Op::CreateLocalFolder { folder } => {
                self.local.entry(folder.clone()).or_default();
            }
            Op::CreateRemoteFolder { folder } => {
                if s == 0 {
                    if !self.remote.contains_key(folder) {
                        let v = self.next_uidvalidity;
                        self.next_uidvalidity += 1;
                        self.remote.insert(folder.clone(), RFolder::new(v));
                    }
                } else if let Some(v) = self.remote.get(folder).and_then(|r| r.uidvalidity) {
                    self.set_uidvalidity(folder, uv(v));
                }
            }
            Op::SetUidValidity {
                folder,
                uidvalidity,
            } => self.set_uidvalidity(folder, *uidvalidity),
            Op::Bind {
                folder,
                uid: u,
                local,
                content,
                update,
            } => self.flag_steps(folder, *u, folder, local, update, s, content),
            Op::SyncFlags {
                folder,
                uid: u,
                local,
                update,
            } => match s {
                0 => self.local_flags(folder, local, &update.local),
                1 => {
                    if let Some(st) = &update.remote {
                        self.remote_store(folder, *u, st);
                    }
                }
                _ => {
                    if let Some(row) = self
                        .state
                        .get_mut(folder)
                        .and_then(|f| f.messages.iter_mut().find(|m| m.uid == Some(*u)))
                    {
                        row.flags = update.record.clone();
                    }
                }
            },
            Op::Download {
                folder,
                uid: u,
                flags: fl,
                body,
                size,
                internaldate,
                message_id,
                replace,
                record,
                ..
            } => {
                let partial = *body == Body::Headers;
                if s == 0 {
                    let b = body_of_size(*size);
                    let id = match replace {
                        Some(r) => r.clone(),
                        None => LocalId::new(format!("d{}-{}", folder, u)),
                    };
                    let keep = replace
                        .as_ref()
                        .and_then(|r| self.local.get(folder).and_then(|f| f.get(r)))
                        .map(|m| m.flags.clone());
                    self.local.entry(folder.clone()).or_default().insert(
                        id,
                        LMsg {
                            body: b,
                            flags: keep.unwrap_or_else(|| fl.clone()),
                            partial,
                        },
                    );
                } else if *record {
                    let id = match replace {
                        Some(r) => r.clone(),
                        None => LocalId::new(format!("d{}-{}", folder, u)),
                    };
                    let c = RowContent {
                        size: *size,
                        internaldate: *internaldate,
                        message_id: message_id.clone(),
                        hash: None,
                        partial,
                    };
                    self.upsert_row(folder, Some(*u), &id, fl, &c);
                }
            }
            Op::Upload {
                folder,
                local,
                flags: fl,
                size,
                internaldate,
                message_id,
                hash,
            } => {
                let intent = IntentId(1_000_000 + self.next_id);
                match s {
                    0 => {
                        self.next_id += 1;
                        let id = IntentId(1_000_000 + self.next_id);
                        self.intents.insert(
                            id,
                            Intent::Append {
                                id,
                                folder: folder.clone(),
                                local: local.clone(),
                                content: mailfold_plan::Content {
                                    size: Some(*size),
                                    date: Some(*internaldate),
                                    message_id: message_id.clone(),
                                    hash: *hash,
                                },
                            },
                        );
                    }
                    1 => {
                        let b = body_of_size(*size);
                        if let Some(rf) = self.remote.get_mut(folder) {
                            rf.add(b, fl.clone());
                        }
                    }
                    _ => {
                        let appended = self
                            .remote
                            .get(folder)
                            .map(|r| (r.uidnext - 1, r.uidvalidity));
                        let state_uv = self.state.get(folder).map(|s| s.uidvalidity.0.get());
                        let c = RowContent {
                            size: *size,
                            internaldate: *internaldate,
                            message_id: message_id.clone(),
                            hash: *hash,
                            partial: false,
                        };
                        if let Some((u, v)) = appended {
                            if v == state_uv {
                                let u = (!self.no_uidplus).then(|| uid(u));
                                self.upsert_row(folder, u, local, fl, &c);
                            }
                        }
                        self.intents.remove(&intent);
                    }
                }
            }
            Op::CopyRemote {
                from,
                uid: u,
                to,
                local,
                content,
                flags: fl,
            } => {
                let intent = IntentId(1_000_000 + self.next_id);
                match s {
                    0 => {
                        self.next_id += 1;
                        let id = IntentId(1_000_000 + self.next_id);
                        self.intents.insert(
                            id,
                            Intent::Append {
                                id,
                                folder: to.clone(),
                                local: local.clone(),
                                content: mailfold_plan::Content {
                                    size: Some(content.size),
                                    date: Some(content.internaldate),
                                    message_id: content.message_id.clone(),
                                    hash: content.hash,
                                },
                            },
                        );
                    }
                    1 => {
                        // UID COPY: a UID no longer there copies nothing (RFC 4315 4.3).
                        let m = self.remote.get(from).and_then(|f| f.msgs.get(&u.get()));
                        if let Some(m) = m.cloned() {
                            if let Some(t) = self.remote.get_mut(to) {
                                t.add(m.body, m.flags);
                            }
                        }
                    }
                    2 => {
                        // UID STORE FLAGS.SILENT on the copy COPYUID names.
                        if self.no_uidplus {
                            return;
                        }
                        let copy = self.copy_uid(from, *u, to);
                        if let (Some(n), Some(t)) = (copy, self.remote.get_mut(to)) {
                            if let Some(m) = t.msgs.get_mut(&n) {
                                m.flags = fl.clone();
                                t.hms += 1;
                                m.modseq = t.hms;
                            }
                        }
                    }
                    _ => {
                        // Without COPYUID nothing is recorded and the journal entry stays.
                        if self.no_uidplus {
                            return;
                        }
                        let copy = self.copy_uid(from, *u, to);
                        let state_uv = self.state.get(to).map(|s| s.uidvalidity.0.get());
                        let to_uv = self.remote.get(to).and_then(|t| t.uidvalidity);
                        if let (Some(n), true) = (copy, to_uv == state_uv) {
                            self.upsert_row(to, Some(uid(n)), local, fl, content);
                        }
                        self.intents.remove(&intent);
                    }
                }
            }
            Op::MoveLocal {
                from,
                local,
                to,
                uid: u,
                content,
                update,
            } => {
                if s == 0 {
                    let m = self.local.get_mut(from).and_then(|f| f.remove(local));
                    if let Some(m) = m {
                        self.local
                            .entry(to.clone())
                            .or_default()
                            .insert(local.clone(), m);
                    }
                } else {
                    if s == 3 {
                        if let Some(f) = self.state.get_mut(from) {
                            f.messages.retain(|m| &m.local != local);
                        }
                    }
                    self.flag_steps(to, *u, to, local, update, s - 1, content);
                }
            }
            Op::MoveRemote {
                from,
                uid: u,
                to,
                local,
                content,
                update,
            } => match s {
                0 => self.local_flags(to, local, &update.local),
                1 => {
                    let m = self.remote.get_mut(from).and_then(|f| {
                        f.hms += 1;
                        f.msgs.remove(&u.get())
                    });
                    if let (Some(m), Some(t)) = (m, self.remote.get_mut(to)) {
                        t.add(m.body, m.flags);
                    }
                }
                2 => {
                    if let (Some(st), Some(t)) = (&update.remote, self.remote.get(to)) {
                        let new = uid(t.uidnext - 1);
                        let st = FlagStore {
                            unchanged_since: None,
                            ..st.clone()
                        };
                        self.remote_store(to, new, &st);
                    }
                }
                _ => {
                    if let Some(f) = self.state.get_mut(from) {
                        f.messages.retain(|m| m.uid != Some(*u));
                    }
                    let new = self.remote.get(to).map(|t| (t.uidnext - 1, t.uidvalidity));
                    let state_uv = self.state.get(to).map(|s| s.uidvalidity.0.get());
                    if let Some((n, v)) = new {
                        if v == state_uv {
                            let n = (!self.no_uidplus).then(|| uid(n));
                            self.upsert_row(to, n, local, &update.record, content);
                        }
                    }
                }
            },
            Op::DeleteLocal {
                folder,
                uid: u,
                local,
            } => {
                if s == 0 {
                    if let Some(f) = self.local.get_mut(folder) {
                        f.remove(local);
                    }
                } else {
                    self.forget(folder, Some(*u), local);
                }
            }
            Op::ExpungeRemote { folder, uid: u, .. } => {
                if s == 0 {
                    if let Some(f) = self.remote.get_mut(folder) {
                        f.msgs.remove(&u.get());
                        f.hms += 1;
                    }
                } else if let Some(f) = self.state.get_mut(folder) {
                    f.messages.retain(|m| m.uid != Some(*u));
                }
            }
            Op::ForgetMessage {
                folder,
                uid: u,
                local,
            } => self.forget(folder, *u, local),
            Op::MarkPending { folder, key } => {
                if let Some(f) = self.state.get_mut(folder) {
                    if !f.pending.contains(key) {
                        f.pending.push(key.clone());
                    }
                }
            }
            Op::ClearPending { folder, key } => {
                if let Some(f) = self.state.get_mut(folder) {
                    f.pending.retain(|k| k != key);
                }
            }
            Op::DropIntent { id } => {
                self.intents.remove(id);
            }
            Op::DeleteLocalFolder { folder } => {
                if self.local.get(folder).is_some_and(|f| f.is_empty()) {
                    self.local.remove(folder);
                }
            }
            Op::DeleteRemoteFolder { folder } => {
                if self.remote.get(folder).is_some_and(|f| f.msgs.is_empty()) {
                    self.remote.remove(folder);
                }
            }
            Op::ForgetFolder { folder } => {
                self.state.remove(folder);
            }
            Op::RenameRemoteFolder { from, to } => {
                if s == 0 {
                    // RENAME keeps UIDs and UIDVALIDITY (as Dovecot does).
                    if !self.remote.contains_key(to) {
                        if let Some(rf) = self.remote.remove(from) {
                            self.remote.insert(to.clone(), rf);
                        }
                    }
                } else if let Some(mut sf) = self.state.remove(from) {
                    sf.path = to.clone();
                    self.state.insert(to.clone(), sf);
                }
            }
            Op::RenameLocalFolder { from, to } => {
                if s == 0 {
                    if !self.local.contains_key(to) {
                        if let Some(lf) = self.local.remove(from) {
                            self.local.insert(to.clone(), lf);
                        }
                    }
                } else if let Some(mut sf) = self.state.remove(from) {
                    sf.path = to.clone();
                    self.state.insert(to.clone(), sf);
                }
            }
            Op::SetFolderState { folder, .. } => {
                // The model has no concurrent client, so the applier's proof rule holds and it
                // records the server's values after its own writes.
                let now = self.remote.get(folder).map(|r| (r.uidnext, r.hms));
                if let (Some(f), Some((n, h))) = (self.state.get_mut(folder), now) {
                    f.uidnext = Uid::new(n);
                    f.highestmodseq = ModSeq::new(h);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn flag_steps(
        &mut self,
        rfolder: &FolderPath,
        u: Uid,
        lfolder: &FolderPath,
        local: &LocalId,
        update: &FlagUpdate,
        s: usize,
        content: &RowContent,
    ) {
        match s {
            0 => self.local_flags(lfolder, local, &update.local),
            1 => {
                if let Some(st) = &update.remote {
                    self.remote_store(rfolder, u, st);
                }
            }
            _ => self.upsert_row(rfolder, Some(u), local, &update.record, content),
        }
    }

    fn forget(&mut self, folder: &FolderPath, u: Option<Uid>, local: &LocalId) {
        if let Some(f) = self.state.get_mut(folder) {
            f.messages.retain(|m| !(m.uid == u && &m.local == local));
        }
    }

    fn set_uidvalidity(&mut self, folder: &FolderPath, v: UidValidity) {
        match self.state.get_mut(folder) {
            Some(f) if f.uidvalidity == v => {}
            Some(f) => {
                f.uidvalidity = v;
                f.uidnext = None;
                f.highestmodseq = None;
                for m in &mut f.messages {
                    m.uid = None;
                }
            }
            None => {
                self.state.insert(
                    folder.clone(),
                    StateFolder {
                        path: folder.clone(),
                        uidvalidity: v,
                        uidnext: None,
                        highestmodseq: None,
                        messages: vec![],
                        pending: vec![],
                        omitted: 0,
                    },
                );
            }
        }
    }

    /// What a user sees: per folder and side, the multiset of (body, flags as the folder's
    /// server can hold them, partial).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for (p, f) in &self.remote {
            let mut v: Vec<(BodyId, FlagSet)> = f
                .msgs
                .values()
                .map(|m| (m.body, permitted(&m.flags, &f.perm)))
                .collect();
            v.sort();
            snap.remote.insert(p.clone(), v);
        }
        for (p, f) in &self.local {
            let perm = self
                .remote
                .get(p)
                .map(|r| r.perm.clone())
                .unwrap_or_default();
            let mut v: Vec<(BodyId, FlagSet)> = f
                .values()
                .map(|m| (m.body, permitted(&m.flags, &perm)))
                .collect();
            v.sort();
            snap.local.insert(p.clone(), v);
        }
        snap
    }

    /// Every body on either side, anywhere.
    pub(crate) fn bodies(&self) -> BTreeSet<BodyId> {
        let mut b: BTreeSet<BodyId> = self
            .remote
            .values()
            .flat_map(|f| f.msgs.values().map(|m| m.body))
            .collect();
        b.extend(self.local.values().flat_map(|f| f.values().map(|m| m.body)));
        b
    }

    pub(crate) fn remote_count(&self, body: BodyId) -> usize {
        self.remote
            .values()
            .map(|f| f.msgs.values().filter(|m| m.body == body).count())
            .sum()
    }

    pub(crate) fn local_count(&self, body: BodyId) -> usize {
        self.local
            .values()
            .map(|f| f.values().filter(|m| m.body == body).count())
            .sum()
    }

    pub(crate) fn pending_keys(&self, folder: &FolderPath) -> Vec<PendingKey> {
        self.state
            .get(folder)
            .map(|f| f.pending.clone())
            .unwrap_or_default()
    }
}

pub(crate) fn permitted(fl: &FlagSet, perm: &PermanentFlags) -> FlagSet {
    fl.iter().filter(|f| perm.allows(f)).cloned().collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) remote: BTreeMap<FolderPath, Vec<(BodyId, FlagSet)>>,
    pub(crate) local: BTreeMap<FolderPath, Vec<(BodyId, FlagSet)>>,
}
