//! A synthetic account at scale for the planner's scale test and its timing example
//! (`examples/plan_scale.rs`): `folders` folders of `per_folder` synced messages each, with
//! realistic spread sizes and unique Message-IDs, and the changes the re-sync shapes of
//! `bench/compare` make on top of it.

#![allow(dead_code)] // each user takes the shapes it needs

use mailfold_plan::{
    Flag, FlagSet, FolderAttributes, FolderPath, LocalFolder, LocalId, LocalMessage, Location,
    PermanentFlags, RemoteFolder, RemoteMailbox, RemoteMessage, RemoteMessages, StateFolder,
    StateMessage, SyncInput, Uid, UidValidity, UnixTime,
};

/// A folder's name in the synthetic account (`f0` is INBOX).
pub fn folder_name(f: usize) -> FolderPath {
    if f == 0 {
        FolderPath::parse("INBOX")
    } else {
        FolderPath::parse(&format!("Lists/l{f:03}"))
    }
}

/// A size between 2 and 20 KB, spread like a mail corpus (a cheap integer hash of `n`).
fn size_of(n: u64) -> u64 {
    2_000 + (n.wrapping_mul(2_654_435_761) >> 7) % 18_000
}

fn seen() -> FlagSet {
    [Flag::Seen].into_iter().collect()
}

fn uid(n: usize) -> Uid {
    Uid::new(u32::try_from(n).unwrap_or(u32::MAX).max(1)).unwrap_or_else(|| unreachable!())
}

/// The body numbered `n` as a server message with UID `u`.
pub fn remote_msg(n: u64, u: usize) -> RemoteMessage {
    RemoteMessage {
        uid: uid(u),
        flags: seen(),
        modseq: None,
        size: Some(size_of(n)),
        internaldate: Some(UnixTime(1_600_000_000 + n as i64)),
        message_id: Some(format!("<m{n}@example.org>")),
    }
}

/// The body numbered `n` as a local file.
pub fn local_msg(n: u64) -> LocalMessage {
    LocalMessage {
        id: LocalId::new(format!("1600000000.M{n}P1.host")),
        location: Location::Cur,
        flags: seen(),
        size: size_of(n),
        mtime: UnixTime(1_600_000_000 + n as i64),
        message_id: Some(format!("<m{n}@example.org>")),
        hash: None,
        partial: false,
    }
}

/// The state row of body `n` synced under UID `u`.
pub fn state_msg(n: u64, u: usize) -> StateMessage {
    let l = local_msg(n);
    StateMessage {
        uid: Some(uid(u)),
        local: l.id,
        flags: seen(),
        size: l.size,
        internaldate: l.mtime,
        message_id: l.message_id,
        hash: None,
        partial: false,
    }
}

/// A fully synced account: body `f * per_folder + i` is UID `i + 1` of folder `f`.
pub fn synced(folders: usize, per_folder: usize) -> SyncInput {
    let mut input = SyncInput::default();
    for f in 0..folders {
        let path = folder_name(f);
        let bodies = (0..per_folder).map(|i| ((f * per_folder + i) as u64, i + 1));
        input.remote.push(RemoteFolder {
            path: path.clone(),
            attributes: FolderAttributes::default(),
            delimiter: Some('/'),
            mailbox: Some(RemoteMailbox {
                uidvalidity: UidValidity::new(7),
                uidnext: Some(uid(per_folder + 1)),
                highestmodseq: None,
                permanent_flags: PermanentFlags::all(),
                read_only: false,
                messages: RemoteMessages::Complete(
                    bodies.clone().map(|(n, u)| remote_msg(n, u)).collect(),
                ),
            }),
        });
        input.local.push(LocalFolder {
            path: path.clone(),
            messages: bodies.clone().map(|(n, _)| local_msg(n)).collect(),
        });
        input.state.push(StateFolder {
            path,
            uidvalidity: UidValidity::new(7).unwrap_or_else(|| unreachable!()),
            uidnext: Some(uid(per_folder + 1)),
            highestmodseq: None,
            messages: bodies.map(|(n, u)| state_msg(n, u)).collect(),
            pending: Vec::new(),
            omitted: 0,
        });
    }
    input
}

fn remote_messages(input: &mut SyncInput, f: usize) -> Option<&mut Vec<RemoteMessage>> {
    match &mut input.remote.get_mut(f)?.mailbox.as_mut()?.messages {
        RemoteMessages::Complete(v) => Some(v),
        RemoteMessages::Changes { .. } => None,
    }
}

/// `count` new messages arrive on the server, spread over the folders (the `resync-new`
/// shape of `bench/compare`, which delivers them all to INBOX).
/// Returns the bodies' numbers.
pub fn new_on_server(input: &mut SyncInput, count: usize) -> Vec<u64> {
    let folders = input.remote.len().max(1);
    let base = 10_000_000u64;
    let mut added = Vec::new();
    for k in 0..count {
        let f = k % folders;
        let n = base + k as u64;
        if let Some(v) = remote_messages(input, f) {
            let next = v.len() + 1;
            v.push(remote_msg(n, next));
            added.push(n);
        }
        if let Some(mb) = input.remote[f].mailbox.as_mut() {
            mb.uidnext = Some(uid(mb.uidnext.map_or(1, |u| u.get() as usize) + 1));
        }
    }
    added
}

/// `count` files the user wrote locally into the last folder (drafts, a local archive).
pub fn new_locally(input: &mut SyncInput, count: usize) {
    let base = 20_000_000u64;
    if let Some(lf) = input.local.last_mut() {
        lf.messages
            .extend((0..count).map(|k| local_msg(base + k as u64)));
    }
}

/// The user moves the first `count` files of folder 1 into folder 2 (as mutt does).
pub fn moved_locally(input: &mut SyncInput, count: usize) {
    let taken: Vec<LocalMessage> = input.local[1].messages.drain(..count).collect();
    input.local[2].messages.extend(taken);
}

/// Folder 0's UIDVALIDITY changes: the same messages under new UIDs (V0003).
pub fn uidvalidity_reset(input: &mut SyncInput) {
    if let Some(mb) = input.remote[0].mailbox.as_mut() {
        mb.uidvalidity = UidValidity::new(8);
        if let RemoteMessages::Complete(v) = &mut mb.messages {
            for (i, m) in v.iter_mut().enumerate() {
                m.uid = uid(1_000 + i);
            }
        }
    }
}

/// The state of folder 1 is lost: its files are matched to the server's by content.
pub fn state_lost(input: &mut SyncInput) {
    input.state.remove(1);
}
