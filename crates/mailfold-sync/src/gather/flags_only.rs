//! Folders changed on the server by flag changes alone, left out of the gather and read,
//! planned and applied on their own ([`FlagsOnlyFolder`], [`gather_flags_only`]).

use mailfold_store::StateDb;

use super::partial::{read_partial, Partial1, PartialRead};
use super::server::{read_server_view, WholeRead};
use super::state::StateRows;
use super::{push_unexamined, FolderCtx, Gathered};
use crate::account::{AccountSpec, Direction};
use crate::plan::{FolderAttributes, FolderPath, RemoteFolder, SyncInput};
use crate::remote::Remote;
use crate::report::SyncReport;

/// A folder changed on the server by flag changes alone: its STATUS shows the UIDVALIDITY,
/// UIDNEXT and MESSAGES the state records and only HIGHESTMODSEQ moved, so no message
/// arrived or left (RFC 7162 3.1.2: every change moves HIGHESTMODSEQ, a new message moves
/// UIDNEXT, an expunge lowers MESSAGES), and its local directories did not change (its
/// stamp). Nothing in it can match anything in another folder, so it is read partially,
/// planned and applied on its own ([`gather_flags_only`]), by whichever connection takes it
/// ([`crate::parallel`]): on an account with many such folders (a phone marking mail read
/// everywhere) their SELECT rounds and their local work spread over the connections instead
/// of adding up on one. Its listing is followed from the gather on ([`Gathered::watch`]).
#[derive(Debug)]
pub struct FlagsOnlyFolder(pub(super) Partial1);

impl FlagsOnlyFolder {
    /// The local folder path.
    pub fn path(&self) -> &FolderPath {
        &self.0.path
    }
}

/// Reads one folder of [`Gathered::flags_only`] (on `remote`, which may be another
/// connection than the gather's) into views of its own, as the gather would have read it:
/// the delta and the rows and files it names, or, when the delta cannot be trusted (a
/// message arrived after the STATUS, say), the whole folder. `None` when the folder could
/// not be opened (recorded in `report`); a fatal server error is an error.
pub fn gather_flags_only(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    db: &StateDb,
    f: &FlagsOnlyFolder,
    report: &mut SyncReport,
) -> Result<Option<(SyncInput, FolderCtx)>, crate::SyncError> {
    let one = &f.0;
    let read_only_account = account.direction == Direction::Pull;
    let mut g = Gathered::default();
    g.folders.insert(one.path.clone(), one.ctx.clone());
    let mut rows = StateRows::default();
    let read = read_partial(
        remote,
        db,
        one,
        read_only_account,
        &mut rows,
        &mut g,
        report,
    )?;
    if let PartialRead::Unopened = read {
        return Ok(None);
    }
    if let PartialRead::Whole(k) = read {
        // Read as the gather reads a folder whole. No dry run defers a folder (the gather
        // reads them all), so this opens with SELECT unless the account is pull-only.
        let whole = WholeRead {
            path: &one.path,
            wire: &one.entry.wire,
            read_only_account,
            rows: rows.rows.get(&one.path),
            known: Some(&k),
            incremental: true,
        };
        let ctx = g.folders.entry(one.path.clone()).or_default();
        let Some(mailbox) = read_server_view(remote, whole, ctx, report)? else {
            return Ok(None);
        };
        g.input.remote.push(RemoteFolder {
            path: one.path.clone(),
            attributes: FolderAttributes {
                noselect: false,
                nonexistent: false,
            },
            delimiter: one.entry.delimiter,
            mailbox: Some(mailbox),
        });
    }
    let ctx = g.folders.remove(&one.path).unwrap_or_default();
    Ok(Some((g.input, ctx)))
}

/// Leaves a folder changed by flag changes alone for later ([`Gathered::flags_only`]): its
/// context moves out of `g` into the [`FlagsOnlyFolder`], and until it is read the planner
/// sees it as a skipped folder ([`push_unexamined`]).
pub(super) fn defer(mut one: Partial1, g: &mut Gathered) {
    one.ctx = g.folders.remove(&one.path).unwrap_or_default();
    push_unexamined(&mut g.input, &one.path, &one.state, &one.entry);
    g.flags_only.push(FlagsOnlyFolder(one));
}
