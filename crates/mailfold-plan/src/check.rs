//! Invariants every plan must satisfy, checked from the plan and its input alone, and a
//! fuzz-friendly entry point that builds a three-way state from arbitrary bytes.
//!
//! The static checks here are the safety half of the planner's promise: no deletion without a
//! state row proving the message was synced, no message paired twice, no server write to a
//! read-only folder, the safety valve respected, no partial copy uploaded, a server copy only
//! of a message the server holds and the plan keeps, a folder rename
//! alone in the plan for its folders and between folders it fits. Convergence and
//! idempotence need a model of applying a plan; the property tests (`tests/plan_props.rs`) have
//! one.
//!
//! A cargo-fuzz target is one line: `fuzz_target!(|data: &[u8]| { if let Err(v) =
//! mailfold_plan::check::fuzz_entry(data) { panic!("{v}") } });`

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::engine::plan;
use super::ops::{Body, Op, Plan};
use super::types::{
    Content, ContentHash, DownloadMode, Flag, FlagSet, FolderAttributes, FolderPath, Intent,
    IntentId, LocalFolder, LocalId, LocalMessage, Location, ModSeq, PermanentFlags, PlanConfig,
    RemoteFolder, RemoteMailbox, RemoteMessage, RemoteMessages, SafetyValve, StateFolder,
    StateMessage, SyncInput, Uid, UidRange, UidValidity, UnixTime,
};

/// A broken invariant, with the offending operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which rule.
    pub rule: &'static str,
    /// The details.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(rule: &'static str, op: &Op) -> Violation {
    Violation {
        rule,
        detail: format!("{op:?}"),
    }
}

struct View<'a> {
    remote: BTreeMap<&'a FolderPath, &'a RemoteFolder>,
    local: BTreeMap<&'a FolderPath, &'a LocalFolder>,
    state: BTreeMap<&'a FolderPath, &'a StateFolder>,
}

impl<'a> View<'a> {
    fn new(input: &'a SyncInput) -> Self {
        let mut v = View {
            remote: BTreeMap::new(),
            local: BTreeMap::new(),
            state: BTreeMap::new(),
        };
        // First entry wins, as in the planner.
        for r in &input.remote {
            v.remote.entry(&r.path).or_insert(r);
        }
        for l in &input.local {
            v.local.entry(&l.path).or_insert(l);
        }
        for s in &input.state {
            v.state.entry(&s.path).or_insert(s);
        }
        v
    }

    fn mailbox(&self, p: &FolderPath) -> Option<&'a RemoteMailbox> {
        self.remote
            .get(p)
            .filter(|r| !r.attributes.nonexistent)
            .and_then(|r| r.mailbox.as_ref())
    }

    fn remote_exists(&self, p: &FolderPath) -> bool {
        self.remote
            .get(p)
            .is_some_and(|r| !r.attributes.nonexistent)
    }

    /// Whether the server view proves `uid` absent from folder `p`.
    fn remote_proves_absent(&self, p: &FolderPath, uid: Uid) -> bool {
        if !self.remote_exists(p) {
            return true;
        }
        match self.mailbox(p).map(|m| &m.messages) {
            Some(RemoteMessages::Complete(ms)) => ms.iter().all(|m| m.uid != uid),
            Some(RemoteMessages::Changes { vanished, .. }) => {
                vanished.iter().any(|r| r.contains(uid))
            }
            None => false,
        }
    }

    /// How many messages a complete server view of `p` holds: distinct UIDs, since a UID
    /// names exactly one message in a mailbox (RFC 3501 2.3.1.1). A view listing one UID twice
    /// (a server or driver repeating a FETCH) still denotes one message, which the planner keeps
    /// once (first entry wins, with a warning); counting entries instead would call a folder
    /// the plan has emptied non-empty. `None` without a complete view.
    fn remote_count(&self, p: &FolderPath) -> Option<usize> {
        match self.mailbox(p).map(|m| &m.messages) {
            Some(RemoteMessages::Complete(ms)) => {
                Some(ms.iter().map(|m| m.uid).collect::<BTreeSet<_>>().len())
            }
            _ => None,
        }
    }

    fn local_file(&self, p: &FolderPath, id: &LocalId) -> Option<&'a LocalMessage> {
        self.local
            .get(p)
            .and_then(|l| l.messages.iter().find(|m| &m.id == id))
    }

    /// The state row proving `uid` ↔ `local` was synced under the server's current UIDVALIDITY
    /// (or in a server folder that no longer exists).
    fn proven_row(&self, p: &FolderPath, uid: Uid) -> Option<&'a StateMessage> {
        let s = self.state.get(p)?;
        if self.remote_exists(p) {
            let mb = self.mailbox(p)?;
            if mb.uidvalidity != Some(s.uidvalidity) {
                return None;
            }
        }
        s.messages.iter().find(|m| m.uid == Some(uid))
    }

    /// A state row that proves a server message `uid` was synced although it has no UID
    /// under the current UIDVALIDITY (V0003): remembered (no UID, or the folder's UIDVALIDITY
    /// changed), its file gone, its content that of the server message.
    fn remembered_row(&self, p: &FolderPath, uid: Uid) -> Option<&'a StateMessage> {
        let s = self.state.get(p)?;
        let mb = self.mailbox(p)?;
        let stale = mb.uidvalidity != Some(s.uidvalidity);
        let RemoteMessages::Complete(msgs) = &mb.messages else {
            return None;
        };
        let content = msgs.iter().find(|m| m.uid == uid)?.content();
        s.messages.iter().find(|m| {
            (m.uid.is_none() || stale)
                && self.local_file(p, &m.local).is_none()
                && m.content().matches(&content)
        })
    }

    fn read_only(&self, p: &FolderPath) -> bool {
        self.mailbox(p).is_some_and(|m| m.read_only)
    }
}

/// Checks the safety invariants of `plan` against the input it was made from.
///
/// The checks run in a fixed order, and the first broken rule is the one reported: each
/// operation on its own (its server writes, then its messages), then the rules about the plan
/// as a whole (copy sources, folder renames, folder deletions, the safety valve).
pub fn check_plan(input: &SyncInput, config: &PlanConfig, plan: &Plan) -> Result<(), Violation> {
    let view = View::new(input);
    let mut tally = Tally::default();
    for op in &plan.ops {
        tally.note_removal(op);
        check_server_write(&view, config, op)?;
        tally.take_messages(&view, op)?;
    }
    tally.check_copy_sources()?;
    check_folder_renames(&view, plan)?;
    tally.check_folder_deletions(&view, plan)?;
    if !config.force {
        tally.check_valve(&view, config)?;
    }
    Ok(())
}

/// What the operations of a plan take and remove, gathered one operation at a time, for the
/// rules about the plan as a whole.
#[derive(Default)]
struct Tally<'p> {
    /// Server messages an operation has used.
    remote_taken: BTreeSet<(&'p FolderPath, Uid)>,
    /// Local files an operation has used.
    local_taken: BTreeSet<(&'p FolderPath, &'p LocalId)>,
    /// Local deletions per folder, for the safety valve.
    local_del: BTreeMap<&'p FolderPath, usize>,
    /// Server deletions per folder, for the safety valve.
    remote_del: BTreeMap<&'p FolderPath, usize>,
    /// Local files leaving each folder (deleted or moved away).
    leaving_local: BTreeMap<&'p FolderPath, usize>,
    /// Server messages leaving each folder (expunged or moved away).
    leaving_remote: BTreeMap<&'p FolderPath, usize>,
    /// The source of every server copy, with the copying operation.
    copied_from: Vec<(&'p FolderPath, Uid, &'p Op)>,
    /// Server messages the plan removes from their folder.
    removed: BTreeSet<(&'p FolderPath, Uid)>,
}

/// Pull only (V0040): no server write at all; and no server write to a read-only folder
/// (V0039).
fn check_server_write(view: &View<'_>, config: &PlanConfig, op: &Op) -> Result<(), Violation> {
    if !op.writes_remote() {
        return Ok(());
    }
    if config.pull {
        return Err(violation("server write in a pull-only plan", op));
    }
    let target = match op {
        // A copy reads its source, which may be read-only (RFC 3501 6.4.7).
        Op::MoveLocal { to, .. } | Op::CopyRemote { to, .. } => vec![to],
        _ => op.folders(),
    };
    if target.iter().any(|p| view.read_only(p)) {
        return Err(violation("server write to a read-only folder", op));
    }
    Ok(())
}

impl<'p> Tally<'p> {
    /// Records a server message the operation removes from its folder.
    fn note_removal(&mut self, op: &'p Op) {
        match op {
            Op::ExpungeRemote { folder, uid, .. } => {
                self.removed.insert((folder, *uid));
            }
            Op::MoveRemote { from, uid, .. } => {
                self.removed.insert((from, *uid));
            }
            _ => {}
        }
    }

    /// Checks the messages one operation uses and records them: each server message and each
    /// local file is used at most once, a deletion is proven by a state row, and a transfer
    /// reads a complete copy.
    ///
    /// One match over the operation kinds, one rule set per arm; it is longer than most
    /// functions here because splitting the arms apart would only scatter the rules of one
    /// table.
    fn take_messages(&mut self, view: &View<'_>, op: &'p Op) -> Result<(), Violation> {
        match op {
            Op::DeleteLocal { folder, uid, local } => {
                let row = view
                    .proven_row(folder, *uid)
                    .ok_or_else(|| violation("local deletion without a proving state row", op))?;
                if &row.local != local || !view.remote_proves_absent(folder, *uid) {
                    return Err(violation(
                        "local deletion of a message the server still has",
                        op,
                    ));
                }
                if view.local_file(folder, local).is_none() {
                    return Err(violation(
                        "local deletion of a file that does not exist",
                        op,
                    ));
                }
                *self.local_del.entry(folder).or_default() += 1;
                *self.leaving_local.entry(folder).or_default() += 1;
                if !self.local_taken.insert((folder, local)) {
                    return Err(violation("local file used twice", op));
                }
            }
            Op::ExpungeRemote { folder, uid, .. } => {
                let row = view
                    .proven_row(folder, *uid)
                    .or_else(|| view.remembered_row(folder, *uid))
                    .ok_or_else(|| violation("server deletion without a proving state row", op))?;
                if view.local_file(folder, &row.local).is_some() {
                    return Err(violation("server deletion of a message held locally", op));
                }
                *self.remote_del.entry(folder).or_default() += 1;
                *self.leaving_remote.entry(folder).or_default() += 1;
                if !self.remote_taken.insert((folder, *uid)) {
                    return Err(violation("server message used twice", op));
                }
            }
            Op::Bind {
                folder, uid, local, ..
            } => {
                let fresh_remote = self.remote_taken.insert((folder, *uid));
                let fresh_local = self.local_taken.insert((folder, local));
                if !(fresh_remote && fresh_local) {
                    return Err(violation("message paired twice", op));
                }
            }
            Op::Download {
                folder,
                uid,
                body,
                replace,
                ..
            } => {
                if !self.remote_taken.insert((folder, *uid)) {
                    return Err(violation("server message used twice", op));
                }
                if let Some(r) = replace {
                    let partial = view.local_file(folder, r).is_some_and(|l| l.partial);
                    if *body != Body::Full || !partial {
                        return Err(violation("download replaces a full copy (V0070)", op));
                    }
                }
            }
            Op::Upload { folder, local, .. } => {
                if view.local_file(folder, local).is_none_or(|l| l.partial) {
                    return Err(violation("upload of a missing or partial file (V0070)", op));
                }
                if !self.local_taken.insert((folder, local)) {
                    return Err(violation("local file used twice", op));
                }
            }
            Op::CopyRemote {
                from,
                uid,
                to,
                local,
                ..
            } => {
                if view.local_file(to, local).is_none_or(|l| l.partial) {
                    return Err(violation("copy for a missing or partial file (V0070)", op));
                }
                if from == to || view.remote_proves_absent(from, *uid) {
                    return Err(violation("copy of a message the server does not hold", op));
                }
                if !self.local_taken.insert((to, local)) {
                    return Err(violation("local file used twice", op));
                }
                self.copied_from.push((from, *uid, op));
            }
            Op::MoveLocal {
                from,
                local,
                to,
                uid,
                ..
            } => {
                if !self.local_taken.insert((from, local)) || !self.remote_taken.insert((to, *uid))
                {
                    return Err(violation("message paired twice", op));
                }
                *self.leaving_local.entry(from).or_default() += 1;
            }
            Op::MoveRemote {
                from,
                uid,
                to,
                local,
                ..
            } => {
                if !self.remote_taken.insert((from, *uid)) || !self.local_taken.insert((to, local))
                {
                    return Err(violation("message paired twice", op));
                }
                *self.leaving_remote.entry(from).or_default() += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// A copy's source stays on the server for the whole plan.
    fn check_copy_sources(&self) -> Result<(), Violation> {
        if let Some((_, _, op)) = self
            .copied_from
            .iter()
            .find(|(from, uid, _)| self.removed.contains(&(*from, *uid)))
        {
            return Err(violation("copy of a message the plan removes", op));
        }
        Ok(())
    }

    /// Folder deletions only of folders the plan empties.
    fn check_folder_deletions(&self, view: &View<'_>, plan: &Plan) -> Result<(), Violation> {
        for op in &plan.ops {
            match op {
                Op::DeleteLocalFolder { folder } => {
                    let n = view.local.get(folder).map_or(0, |l| l.messages.len());
                    if self.leaving_local.get(folder).copied().unwrap_or(0) != n {
                        return Err(violation("local folder deleted with messages in it", op));
                    }
                }
                Op::DeleteRemoteFolder { folder } => {
                    let Some(n) = view.remote_count(folder) else {
                        return Err(violation(
                            "server folder deleted without a complete view",
                            op,
                        ));
                    };
                    if self.leaving_remote.get(folder).copied().unwrap_or(0) != n {
                        return Err(violation("server folder deleted with messages in it", op));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The safety valve, on each side's deletions per folder.
    fn check_valve(&self, view: &View<'_>, config: &PlanConfig) -> Result<(), Violation> {
        for (folder, n) in &self.local_del {
            let total = view.local.get(folder).map_or(0, |l| l.messages.len());
            if config.valve.trips(*n, total) {
                return Err(Violation {
                    rule: "safety valve (local)",
                    detail: format!("{folder}: {n} of {total}"),
                });
            }
        }
        for (folder, n) in &self.remote_del {
            let Some(total) = view.remote_count(folder) else {
                continue;
            };
            if config.valve.trips(*n, total) {
                return Err(Violation {
                    rule: "safety valve (server)",
                    detail: format!("{folder}: {n} of {total}"),
                });
            }
        }
        Ok(())
    }
}

/// Folder renames move a whole folder on one side and carry its state over, so they are only
/// safe alone and between the right folders.
fn check_folder_renames(view: &View<'_>, plan: &Plan) -> Result<(), Violation> {
    for (i, op) in plan.ops.iter().enumerate() {
        let (from, to, server_side) = match op {
            Op::RenameLocalFolder { from, to } => (from, to, true),
            Op::RenameRemoteFolder { from, to } => (from, to, false),
            _ => continue,
        };
        let shared = plan
            .ops
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.folders().iter().any(|p| *p == from || *p == to));
        if shared {
            return Err(violation(
                "folder rename with other operations on its folders",
                op,
            ));
        }
        let Some(rows) = view.state.get(from).map(|s| s.messages.len()) else {
            return Err(violation("folder rename without a state to carry over", op));
        };
        let files = view.local.get(from).map(|l| l.messages.len());
        let ok = !view.state.contains_key(to)
            && if server_side {
                // The server renamed `from`: the Maildir follows, with every file accounted for
                // by a row and every row by a message of the new server folder.
                !view.remote_exists(from)
                    && !view.local.contains_key(to)
                    && files == Some(rows)
                    && view.remote_count(to) == Some(rows)
            } else {
                // The Maildir renamed `from`: the server follows.
                view.remote_exists(from)
                    && !view.remote_exists(to)
                    && !view.local.contains_key(from)
                    && view.local.contains_key(to)
            };
        if !ok {
            return Err(violation(
                "folder rename between folders it does not fit",
                op,
            ));
        }
    }
    Ok(())
}

/// Reads small numbers from fuzzer bytes; past the end it yields zeros, so every input decodes.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn below(&mut self, n: u8) -> u8 {
        if n == 0 {
            0
        } else {
            self.byte() % n
        }
    }

    fn bit(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

const FOLDERS: [&str; 4] = ["INBOX", "Archive", "Archive/2020", "Sent"];
const KEYWORDS: [&str; 2] = ["$Junk", "work"];

/// The content of fuzz message number `body`: distinct bodies have distinct sizes and dates.
fn body_content(body: u8) -> (u64, UnixTime, Option<String>, ContentHash) {
    let mut hash = [0u8; 32];
    hash[0] = body;
    (
        1000 + u64::from(body),
        UnixTime(1_600_000_000 + i64::from(body)),
        (!body.is_multiple_of(3)).then(|| format!("<{body}@fuzz>")),
        ContentHash(hash),
    )
}

fn flags_from(bits: u8) -> FlagSet {
    let mut f = FlagSet::new();
    let all = [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Keyword(KEYWORDS[0].into()),
        Flag::Keyword(KEYWORDS[1].into()),
    ];
    for (i, fl) in all.into_iter().enumerate() {
        if bits & (1 << i) != 0 {
            f.insert(fl);
        }
    }
    f
}

/// Builds a small three-way state from arbitrary bytes. Every byte string decodes to some
/// state, so a fuzzer explores states, not parse errors.
///
/// The bytes are read in a fixed order that the fuzz corpus depends on: the configuration,
/// the number of folders, each folder in turn ([`folder_from_bytes`]), then the fields added
/// later (pull-only, a folder rename), so that older corpus files keep decoding to the same
/// states.
pub fn input_from_bytes(data: &[u8]) -> (SyncInput, PlanConfig) {
    let mut b = Bytes { data, pos: 0 };
    let mut input = SyncInput::default();
    let mut config = config_from_bytes(&mut b);
    let nfolders = 1 + usize::from(b.below(FOLDERS.len() as u8));
    for name in FOLDERS.iter().take(nfolders) {
        folder_from_bytes(&mut b, FolderPath::parse(name), &mut input);
    }
    // Last, so that older corpus files keep decoding to the same states.
    config.pull = b.below(6) == 0;
    rename_from_bytes(&mut b, &mut input);
    (input, config)
}

/// The planner's configuration, from the first bytes (pull-only is read last).
fn config_from_bytes(b: &mut Bytes<'_>) -> PlanConfig {
    PlanConfig {
        valve: SafetyValve {
            min_messages: usize::from(b.below(4)),
            max_percent: 50,
        },
        force: b.below(8) == 0,
        download: match b.below(4) {
            0 => DownloadMode::HeadersOnly,
            1 => DownloadMode::MaxSize(1004),
            _ => DownloadMode::Full,
        },
        pull: false,
        keep_new_local: false,
    }
}

/// The messages of one folder on each of the three sides.
#[derive(Default)]
struct FuzzMessages {
    remote: Vec<RemoteMessage>,
    local: Vec<LocalMessage>,
    state: Vec<StateMessage>,
}

/// One folder on each side it is present on: its presence bits and UIDVALIDITYs, its
/// messages, then its server mailbox.
fn folder_from_bytes(b: &mut Bytes<'_>, path: FolderPath, input: &mut SyncInput) {
    let presence = b.byte();
    let uidvalidity = UidValidity::new(1 + u32::from(b.below(2)));
    let state_uv = UidValidity::new(1 + u32::from(b.below(2)));
    let nmsgs = usize::from(b.below(8));
    let mut msgs = FuzzMessages::default();
    for i in 0..nmsgs {
        message_from_bytes(b, i, &path, &mut msgs, &mut input.intents);
    }
    if presence & 1 != 0 {
        let mailbox = mailbox_from_bytes(b, presence, uidvalidity, msgs.remote);
        input.remote.push(RemoteFolder {
            path: path.clone(),
            attributes: FolderAttributes {
                noselect: presence & 64 != 0,
                nonexistent: false,
            },
            delimiter: Some('/'),
            mailbox,
        });
    }
    if presence & 2 != 0 {
        input.local.push(LocalFolder {
            path: path.clone(),
            messages: msgs.local,
        });
    }
    if presence & 4 != 0 {
        if let Some(uidvalidity) = state_uv {
            input.state.push(StateFolder {
                path,
                uidvalidity,
                uidnext: None,
                highestmodseq: ModSeq::new(7),
                messages: msgs.state,
                pending: vec![],
                omitted: 0,
            });
        }
    }
}

/// Message number `i` of a folder, on the sides its bits name, and an open append intent
/// for it if they ask for one.
fn message_from_bytes(
    b: &mut Bytes<'_>,
    i: usize,
    path: &FolderPath,
    msgs: &mut FuzzMessages,
    intents: &mut Vec<Intent>,
) {
    let body = b.below(12);
    let (size, date, mid, hash) = body_content(body);
    let where_ = b.byte();
    let uid = Uid::new(1 + u32::from(b.below(12)));
    let id = LocalId::new(format!("m{}-{i}", b.below(12)));
    let f_remote = flags_from(b.byte());
    let f_local = flags_from(b.byte());
    let f_state = flags_from(b.byte());
    if where_ & 1 != 0 {
        if let Some(uid) = uid {
            msgs.remote.push(RemoteMessage {
                uid,
                flags: f_remote,
                modseq: ModSeq::new(u64::from(b.below(5))),
                size: Some(size),
                internaldate: Some(date),
                message_id: mid.clone(),
            });
        }
    }
    if where_ & 2 != 0 {
        msgs.local.push(LocalMessage {
            id: id.clone(),
            location: Location::Cur,
            flags: f_local,
            size,
            mtime: date,
            message_id: mid.clone(),
            hash: b.bit().then_some(hash),
            partial: where_ & 16 != 0,
        });
    }
    if where_ & 4 != 0 {
        msgs.state.push(StateMessage {
            uid: if where_ & 8 != 0 { None } else { uid },
            local: id.clone(),
            flags: f_state,
            size,
            internaldate: date,
            message_id: mid,
            hash: Some(hash),
            partial: where_ & 32 != 0,
        });
    }
    if where_ & 64 != 0 {
        intents.push(Intent::Append {
            id: IntentId(i as u64),
            folder: path.clone(),
            local: id,
            content: Content {
                size: Some(size),
                date: Some(date),
                message_id: None,
                hash: Some(hash),
            },
        });
    }
}

/// A folder's server mailbox (none when its presence bits say it cannot be selected), with
/// its messages as a complete view or a delta.
fn mailbox_from_bytes(
    b: &mut Bytes<'_>,
    presence: u8,
    uidvalidity: Option<UidValidity>,
    remote_msgs: Vec<RemoteMessage>,
) -> Option<RemoteMailbox> {
    let messages = if presence & 8 != 0 {
        RemoteMessages::Changes {
            since: ModSeq::new(7).unwrap_or(ModSeq(std::num::NonZeroU64::MIN)),
            changed: remote_msgs,
            vanished: match (Uid::new(1), Uid::new(u32::from(b.below(12)) + 1)) {
                (Some(first), Some(last)) if b.bit() => vec![UidRange { first, last }],
                _ => vec![],
            },
        }
    } else {
        RemoteMessages::Complete(remote_msgs)
    };
    (presence & 128 == 0).then(|| RemoteMailbox {
        uidvalidity: if presence & 16 != 0 {
            None
        } else {
            uidvalidity
        },
        uidnext: None,
        highestmodseq: ModSeq::new(7),
        permanent_flags: if presence & 32 != 0 {
            PermanentFlags {
                flags: flags_from(0b1111),
                new_keywords: false,
            }
        } else {
            PermanentFlags::all()
        },
        read_only: b.below(4) == 0,
        messages,
    })
}

/// A folder renamed as a whole on one side. Zero, what an older corpus file reads past its
/// end, renames nothing.
fn rename_from_bytes(b: &mut Bytes<'_>, input: &mut SyncInput) {
    let side = b.below(4);
    let which = usize::from(b.below(FOLDERS.len() as u8));
    let renamed = FolderPath::parse("Renamed");
    match side {
        1 => {
            if let Some(r) = input.remote.get_mut(which) {
                r.path = renamed;
            }
        }
        2 => {
            if let Some(l) = input.local.get_mut(which) {
                l.path = renamed;
            }
        }
        _ => {}
    }
}

/// The fuzz entry point: bytes → three-way state → plan → invariants. Never panics on any
/// input; returns the first broken invariant.
pub fn fuzz_entry(data: &[u8]) -> Result<(), Violation> {
    let (input, config) = input_from_bytes(data);
    let p = plan(&input, &config);
    check_plan(&input, &config, &p)?;
    // Determinism: the same input gives the same plan.
    if plan(&input, &config) != p {
        return Err(Violation {
            rule: "determinism",
            detail: "two plans of one input differ".into(),
        });
    }
    Ok(())
}
