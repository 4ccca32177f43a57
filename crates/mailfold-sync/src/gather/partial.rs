//! Partial folders: reading only what changed on the server of a folder whose directories did
//! not change (see "Partial folders" in the module docs of [`crate::gather`]).

use std::collections::BTreeSet;

use mailfold_store::{
    Folder, FolderId, FolderRecord, MessageEntry, MessageRecord, StateDb, StateRead,
};

use super::local::{describe_local, find_file, scan_local};
use super::names::flagset;
use super::server::{mailbox_of, uid_ranges, with_details};
use super::state::{known_of, state_message, Known, StateRows};
use super::{FolderCtx, Gathered, StampReading};
use crate::plan::{
    FolderAttributes, FolderPath, LocalFolder, ModSeq, PermanentFlags, RemoteFolder, RemoteMailbox,
    RemoteMessages, StateFolder, Uid, UidValidity,
};
use crate::remote::{Mailbox, Remote};
use crate::report::SyncReport;
use crate::step_error::StepError;

/// A folder to read partially, with everything the read needs of the gather.
#[derive(Debug)]
pub(super) struct Partial1 {
    pub(super) path: FolderPath,
    pub(super) entry: crate::remote::ListEntry,
    pub(super) id: FolderId,
    pub(super) known: Known,
    pub(super) state: FolderRecord,
    pub(super) folder: Folder,
    pub(super) stamp: Option<StampReading>,
    /// The folder's context so far (only for a folder read on its own).
    pub(super) ctx: FolderCtx,
}

/// What [`read_partial`] did.
pub(super) enum PartialRead {
    /// The folder's three views are in the gathered input.
    Done,
    /// It could not be opened: that is in the report, with empty views in the input.
    Unopened,
    /// The delta or the files could not be trusted: the folder's rows were loaded and its
    /// directories scanned; its server view is still to be read whole, with what the state
    /// now says of it.
    Whole(Known),
}

/// Reads one folder changed on the server only, partially ([`examine_partial`]), into `g`.
#[allow(clippy::too_many_arguments)]
pub(super) fn read_partial(
    remote: &mut dyn Remote,
    db: &StateDb,
    one: &Partial1,
    read_only_account: bool,
    rows: &mut StateRows,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<PartialRead, crate::SyncError> {
    let (path, k, folder) = (&one.path, &one.known, &one.folder);
    let shown = path.to_string();
    let attributes = FolderAttributes {
        noselect: false,
        nonexistent: false,
    };
    let examine = read_only_account || report.dry_run;
    match examine_partial(remote, &one.entry.wire, examine, k, db, one.id, folder) {
        Ok(Partial::View(view)) => {
            take_view(one, view, read_only_account, g, report);
            Ok(PartialRead::Done)
        }
        Ok(Partial::Complete) => {
            // The delta or the files could not be trusted: read the folder whole, like any
            // folder with a local change.
            rows.load(db, path, &one.state, g)?;
            let k = match g.input.state.iter().find(|s| &s.path == path) {
                Some(sf) => known_of(sf, &rows.read_only),
                None => k.clone(),
            };
            scan_local(path.clone(), folder, one.stamp, rows, g, report)?;
            Ok(PartialRead::Whole(k))
        }
        Err(crate::SyncError::Remote(err)) if !err.is_fatal() => {
            report
                .folder_mut(&shown)
                .errors
                .push(StepError::server("cannot open folder", err));
            g.input.local.push(LocalFolder {
                path: path.clone(),
                messages: Vec::new(),
            });
            g.input.remote.push(RemoteFolder {
                path: path.clone(),
                attributes,
                delimiter: one.entry.delimiter,
                mailbox: None,
            });
            Ok(PartialRead::Unopened)
        }
        Err(err) => Err(err),
    }
}

/// Puts a partial read's three views in `g`: the delta as the server view, the rows it names
/// as the state view (the rest counted as omitted), and those rows' files as the local view,
/// described from the rows; the folder's context records the read.
fn take_view(
    one: &Partial1,
    mut view: PartialView,
    read_only_account: bool,
    g: &mut Gathered,
    report: &mut SyncReport,
) {
    let (path, k, folder) = (&one.path, &one.known, &one.folder);
    let shown = path.to_string();
    if report.dry_run && !read_only_account {
        // As for a complete read in a dry run (EXAMINE): plan as after a
        // SELECT, from what the state knows.
        view.mailbox.read_only = k.read_only;
        view.mailbox.permanent_flags = PermanentFlags::all();
    }
    let ctx = g.folders.entry(path.clone()).or_default();
    ctx.read_only = view.mailbox.read_only;
    ctx.uidvalidity = view.uidvalidity;
    ctx.rel = Some(folder.rel().clone());
    ctx.stamp = one.stamp;
    ctx.partial = true;
    if view.mailbox.read_only {
        report.folder_mut(&shown).read_only = true;
    }
    let mut messages = Vec::with_capacity(view.files.len());
    for (entry, row) in view.files.into_iter().zip(&view.rows) {
        match describe_local(folder, &entry, Some(row)) {
            Ok(m) => messages.push(m),
            Err(err) => report.folder_mut(&shown).warnings.push(format!(
                "{}: cannot read ({err}); left alone",
                entry.path.display()
            )),
        }
        ctx.files.insert(entry.base.as_str().to_owned(), entry);
    }
    g.input.local.push(LocalFolder {
        path: path.clone(),
        messages,
    });
    let uv = one
        .state
        .uidvalidity
        .expect("a partial folder has UIDVALIDITY");
    g.input.state.push(StateFolder {
        path: path.clone(),
        uidvalidity: uv,
        uidnext: one.state.uidnext.map(Uid),
        highestmodseq: one.state.highestmodseq.and_then(ModSeq::new),
        omitted: k.count.saturating_sub(view.rows.len()),
        messages: view
            .rows
            .iter()
            .map(|r| state_message(Some(r.uid), r))
            .collect(),
        pending: Vec::new(),
    });
    g.input.remote.push(RemoteFolder {
        path: path.clone(),
        attributes: FolderAttributes {
            noselect: false,
            nonexistent: false,
        },
        delimiter: one.entry.delimiter,
        mailbox: Some(view.mailbox),
    });
}

/// What [`examine_partial`] found.
enum Partial {
    /// A delta the planner can use with the rows and files it names.
    View(PartialView),
    /// The folder must be read whole (a delta that does not account for every message, a
    /// server without CONDSTORE, a file not where its row says). It is selected already.
    Complete,
}

/// A folder changed on the server only, read partially.
struct PartialView {
    /// The delta since the state's HIGHESTMODSEQ.
    mailbox: RemoteMailbox,
    /// UIDVALIDITY as SELECT gave it.
    uidvalidity: Option<UidValidity>,
    /// The rows the delta names (changed or vanished UIDs), by UID.
    rows: Vec<MessageRecord>,
    /// Each row's file, in the same order.
    files: Vec<MessageEntry>,
}

/// Reads a folder whose directories did not change since its last complete run (its local
/// stamp) while the server reports a change: the CONDSTORE/QRESYNC delta, the rows of the
/// UIDs it names (indexed lookups, RFC 7162), and those rows' files, found where a
/// complete run left them (`cur/` or `new/`, the base and the flag letters the row
/// records: the listing digest checked that every row's file had exactly that base and
/// those letters when the stamp was recorded). Nothing else of the folder is read: the
/// planner takes the rest as in sync ([`StateFolder::omitted`]).
fn examine_partial(
    remote: &mut dyn Remote,
    wire: &Mailbox,
    read_only: bool,
    k: &Known,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
) -> Result<Partial, crate::SyncError> {
    let changes = match k.highestmodseq {
        Some(since) => remote.select_changes(wire, read_only, k.uidvalidity, since)?,
        None => None,
    };
    let Some(ch) = changes else {
        return merge_listing(remote, wire, read_only, k, db, id, folder);
    };
    let (Some(since), true) = (
        k.highestmodseq,
        ch.selected.uidvalidity == Some(k.uidvalidity),
    ) else {
        return Ok(Partial::Complete);
    };
    let changed_uids: Vec<Uid> = ch.changed.iter().map(|m| m.uid).collect();
    let mut rows = db.messages_by_uids(id, &changed_uids)?;
    let known: BTreeSet<Uid> = rows.iter().map(|r| r.uid).collect();
    let new = ch
        .changed
        .iter()
        .filter(|m| !known.contains(&m.uid))
        .count();
    let gone = match &ch.vanished {
        Some(v) => {
            // The state database takes ranges as numbers.
            let v: Vec<(u32, u32)> = v.iter().map(|(a, b)| (a.get(), b.get())).collect();
            db.messages_in_uid_ranges(id, &v)?
        }
        None => Vec::new(),
    };
    // The same rule as the complete path's incremental view: the delta is trusted only when
    // it accounts for every message the server holds.
    let exists = usize::try_from(ch.selected.exists).unwrap_or(usize::MAX);
    if exists != (k.count + new).saturating_sub(gone.len()) {
        return Ok(Partial::Complete);
    }
    rows.extend(gone);
    rows.sort_by_key(|r| r.uid);
    rows.dedup_by_key(|r| r.uid);
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        match find_file(folder, r) {
            Some(e) => files.push(e),
            None => return Ok(Partial::Complete),
        }
    }
    let sel = ch.selected;
    let changed = with_details(remote, ch.changed, &known)?;
    let vanished = uid_ranges(ch.vanished.unwrap_or_default());
    Ok(Partial::View(PartialView {
        mailbox: mailbox_of(
            &sel,
            RemoteMessages::Changes {
                since,
                changed,
                vanished,
            },
        ),
        uidvalidity: sel.uidvalidity,
        rows,
        files,
    }))
}

/// [`examine_partial`] for a server without CONDSTORE (or a folder without
/// HIGHESTMODSEQ): SELECT, the complete `UID FETCH 1:* (UID FLAGS)` listing, merged against
/// the state's rows in UID order one row at a time (never holding the folder's rows), into
/// the messages whose flags differ, the new ones and the vanished ones. The planner then
/// gets a complete view of just those (absent named rows are gone) with the rest omitted.
fn merge_listing(
    remote: &mut dyn Remote,
    wire: &Mailbox,
    read_only: bool,
    k: &Known,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
) -> Result<Partial, crate::SyncError> {
    let sel = remote.select(wire, read_only)?;
    if sel.uidvalidity != Some(k.uidvalidity) {
        return Ok(Partial::Complete);
    }
    let mut listing = remote.fetch_flags()?;
    listing.sort_by_key(|m| m.uid);
    listing.dedup_by_key(|m| m.uid);
    let uidnext = sel.uidnext.or_else(|| {
        listing
            .last()
            .and_then(|m| Uid::new(m.uid.get().checked_add(1)?))
    });
    let mut differs: Vec<Uid> = Vec::new();
    let mut gone: Vec<Uid> = Vec::new();
    let mut seen_rows = 0usize;
    let mut i = 0;
    db.for_each_message_flags(id, &mut |uid, flags, keywords| {
        seen_rows += 1;
        while listing.get(i).is_some_and(|m| m.uid < uid) {
            differs.push(listing[i].uid);
            i += 1;
        }
        match listing.get(i) {
            Some(m) if m.uid == uid => {
                let row = flagset(&split_words(flags)).union(&flagset(&split_words(keywords)));
                if m.flags != row {
                    differs.push(uid);
                }
                i += 1;
            }
            _ => gone.push(uid),
        }
    })?;
    differs.extend(listing[i..].iter().map(|m| m.uid));
    if seen_rows != k.count {
        return Ok(Partial::Complete);
    }
    let named: Vec<Uid> = differs.iter().chain(gone.iter()).copied().collect();
    let rows = db.messages_by_uids(id, &named)?;
    let known: BTreeSet<Uid> = rows.iter().map(|r| r.uid).collect();
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        match find_file(folder, r) {
            Some(e) => files.push(e),
            None => return Ok(Partial::Complete),
        }
    }
    let wanted: BTreeSet<Uid> = differs.iter().copied().collect();
    listing.retain(|m| wanted.contains(&m.uid));
    let messages = with_details(remote, listing, &known)?;
    Ok(Partial::View(PartialView {
        mailbox: RemoteMailbox {
            // The listing's last UID stands in for a UIDNEXT the server did not send (V0037).
            uidnext,
            ..mailbox_of(&sel, RemoteMessages::Complete(messages))
        },
        uidvalidity: sel.uidvalidity,
        rows,
        files,
    }))
}

/// The words of a stored flag list.
fn split_words(s: &str) -> Vec<&str> {
    s.split(' ').filter(|w| !w.is_empty()).collect()
}
