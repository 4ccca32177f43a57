//! Fresh folders: the folders of an account whose mirror and state hold nothing yet, each
//! read, planned and applied on its own ([`gather_fresh`]), a large one window by window
//! ([`FreshWindows`]).

use std::collections::BTreeSet;

use super::server::{mailbox_of, with_details};
use super::{FolderCtx, Gathered};
use crate::account::{AccountSpec, Direction};
use crate::plan::{
    FolderAttributes, FolderPath, RemoteFolder, RemoteMailbox, RemoteMessages, SyncInput,
};
use crate::remote::{ListEntry, Remote, RemoteError, Uid};
use crate::report::SyncReport;
use crate::step_error::StepError;

/// A server folder of an account whose mirror and state hold nothing yet: no message of it
/// can match anything already mirrored, so it is read, planned and applied on its own
/// ([`gather_fresh`]), and memory follows the largest folder instead of the account.
#[derive(Debug, Clone)]
pub struct FreshFolder {
    /// The local folder path.
    pub path: FolderPath,
    /// Its LIST entry.
    pub entry: crate::remote::ListEntry,
    /// MESSAGES from LIST-STATUS or STATUS, to size the work over several connections;
    /// `None` when not asked (one folder, or one connection: nothing to share out).
    pub messages: Option<u32>,
}

/// Leaves the folders of an account with an empty mirror and state out of the views
/// ([`Gathered::fresh`]), parents before children as the plan would create them. Their sizes
/// (MESSAGES) only matter when there is work to share out over several connections: a single
/// folder, or a single connection, costs no STATUS round (seed V0044: what LIST-STATUS
/// returned needs none either).
pub(super) fn defer(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    fresh: Vec<(FolderPath, ListEntry)>,
    g: &mut Gathered,
) -> Result<(), RemoteError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let share = fresh.len() > 1 && account.connections > 1;
    // The sizes only matter for sharing the folders out: without sharing, no STATUS round.
    let statuses = if share {
        super::triage::statuses_of(remote, fresh.iter().map(|(_, e)| e))?
    } else {
        fresh.iter().map(|(_, e)| e.status).collect()
    };
    for ((path, entry), st) in fresh.into_iter().zip(statuses) {
        let messages = st.and_then(|s| s.messages);
        g.fresh.push(FreshFolder {
            path,
            entry,
            messages,
        });
    }
    g.fresh.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// What [`gather_fresh`] read of a fresh folder.
#[derive(Debug)]
pub enum FreshRead {
    /// The whole folder in one view.
    Whole(SyncInput),
    /// A folder of more than [`AccountSpec::fresh_window`] messages: its UIDs, to be read, planned and
    /// applied window by window.
    Windows(FreshWindows),
}

/// Reads one folder of [`Gathered::fresh`] (SELECT or EXAMINE, UIDs, flags and content
/// details) into views of its own: the server's, with no local folder and no state; a folder
/// larger than the window only as far as its UIDs ([`FreshWindows`]). `None` when the folder
/// could not be opened (recorded in `report`); a fatal server error is an error.
pub fn gather_fresh(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    fresh: &FreshFolder,
    report: &mut SyncReport,
) -> Result<Option<(FreshRead, FolderCtx)>, crate::SyncError> {
    let e = &fresh.entry;
    let mut ctx = FolderCtx {
        wire: Some(e.wire.clone()),
        delimiter: e.delimiter,
        special_use: e.special_use.clone(),
        subscribed: e.subscribed,
        ..FolderCtx::default()
    };
    let read_only_account = account.direction == Direction::Pull;
    let window = account.fresh_window.max(1);
    let mut read = || -> Result<FreshRead, RemoteError> {
        let sel = remote.select(&e.wire, read_only_account)?;
        ctx.read_only = sel.read_only;
        ctx.uidvalidity = sel.uidvalidity;
        if usize::try_from(sel.exists).unwrap_or(usize::MAX) > window {
            let uids = remote.fetch_uids()?;
            return Ok(FreshRead::Windows(FreshWindows {
                path: fresh.path.clone(),
                delimiter: e.delimiter,
                selected: sel,
                uids,
                next: 0,
                window,
            }));
        }
        let flags = remote.fetch_flags()?;
        let messages = with_details(remote, flags, &BTreeSet::new())?;
        let mb = mailbox_of(&sel, RemoteMessages::Complete(messages));
        Ok(FreshRead::Whole(one_folder_input(
            &fresh.path,
            e.delimiter,
            mb,
        )))
    };
    let read = match read() {
        Ok(r) => r,
        Err(err) if err.is_fatal() => return Err(err.into()),
        Err(err) => {
            report
                .folder_mut(&fresh.path.to_string())
                .errors
                .push(StepError::server("cannot open folder", err));
            return Ok(None);
        }
    };
    if ctx.read_only {
        report.folder_mut(&fresh.path.to_string()).read_only = true;
    }
    Ok(Some((read, ctx)))
}

/// A fresh folder of more than [`AccountSpec::fresh_window`] messages, read window by window in UID
/// order ([`FreshWindows::next`]) on the connection that selected it. Each window is a
/// complete view of its messages alone: nothing in a fresh folder can match anything else,
/// so each window's plan is the part of the whole folder's plan that concerns its messages
/// ([`trim_window`] keeps the folder's own steps where they belong).
#[derive(Debug)]
pub struct FreshWindows {
    path: FolderPath,
    delimiter: Option<char>,
    selected: crate::remote::Selected,
    uids: Vec<Uid>,
    next: usize,
    window: usize,
}

/// One window of a [`FreshWindows`].
#[derive(Debug)]
pub struct FreshWindow {
    /// The views of this window's messages.
    pub input: SyncInput,
    /// The first window of the folder.
    pub first: bool,
    /// The last window of the folder.
    pub last: bool,
}

impl FreshWindows {
    /// The local folder path.
    pub fn path(&self) -> &FolderPath {
        &self.path
    }

    /// How many messages the folder held when its UIDs were read.
    pub fn messages(&self) -> usize {
        self.uids.len()
    }

    /// UIDVALIDITY as the SELECT that listed the UIDs gave it.
    pub fn uidvalidity(&self) -> Option<crate::remote::UidValidity> {
        self.selected.uidvalidity
    }

    /// The windows not read yet, each a reader of its own, for other connections to read and
    /// apply at once; this reader has none left. Each gives its one window through
    /// [`FreshWindows::next`] on a connection that has selected the folder itself; the
    /// views are built from this reader's SELECT, so that every window's plan claims the
    /// same UIDNEXT and HIGHESTMODSEQ (the folder's state, which only the end of the last
    /// window may record).
    pub fn share_rest(&mut self) -> Vec<FreshWindows> {
        let rest = self.uids.split_off(self.next.min(self.uids.len()));
        rest.chunks(self.window)
            .map(|uids| FreshWindows {
                path: self.path.clone(),
                delimiter: self.delimiter,
                selected: self.selected.clone(),
                uids: uids.to_vec(),
                next: 0,
                window: self.window,
            })
            .collect()
    }

    /// Reads the next window (flags and content details of its UIDs) on `remote`, where
    /// the folder must still be selected (the window before it was applied on the same
    /// connection). `None` after the last.
    pub fn next(&mut self, remote: &mut dyn Remote) -> Result<Option<FreshWindow>, RemoteError> {
        if self.next > 0 && self.next >= self.uids.len() {
            return Ok(None);
        }
        let first = self.next == 0;
        let end = self.next.saturating_add(self.window).min(self.uids.len());
        let uids = &self.uids[self.next..end];
        self.next = end.max(1);
        let flags = if uids.is_empty() {
            Vec::new()
        } else {
            remote.fetch_flags_of(uids)?
        };
        let messages = with_details(remote, flags, &BTreeSet::new())?;
        let mb = mailbox_of(&self.selected, RemoteMessages::Complete(messages));
        Ok(Some(FreshWindow {
            input: one_folder_input(&self.path, self.delimiter, mb),
            first,
            last: self.next >= self.uids.len(),
        }))
    }
}

/// Keeps of a window's plan what belongs to its place in the folder: the folder's own steps
/// (creating it, recording its UIDVALIDITY) in the first window only, its UIDNEXT and
/// HIGHESTMODSEQ in the last only (recorded earlier, they would tell the next run that the
/// later windows' messages are mirrored: V0045), the downloads in every window.
pub fn trim_window(plan: &mut crate::plan::Plan, first: bool, last: bool) {
    plan.ops.retain(|op| match op {
        crate::plan::Op::Download { .. } => true,
        crate::plan::Op::SetFolderState { .. } => last,
        _ => first,
    });
}

/// The planner's input for one server folder alone.
fn one_folder_input(path: &FolderPath, delimiter: Option<char>, mb: RemoteMailbox) -> SyncInput {
    SyncInput {
        remote: vec![RemoteFolder {
            path: path.clone(),
            attributes: FolderAttributes {
                noselect: false,
                nonexistent: false,
            },
            delimiter,
            mailbox: Some(mb),
        }],
        ..SyncInput::default()
    }
}
