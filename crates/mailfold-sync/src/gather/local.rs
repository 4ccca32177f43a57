//! The local view: each Maildir folder's files as the planner sees them (see "Local view" in
//! the module docs of [`crate::gather`]), described from their state rows where the rows
//! describe them completely, read once otherwise.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::time::{Duration, SystemTime};

use mailfold_store::{
    crlf::canonical_digest_of, AliasRegistry, Folder, FolderId, FolderRecord, ListingWatch,
    Maildir, MessageBase, MessageEntry, MessageRecord, StateDb, StateRead, Subdir,
};

use super::names::flagset;
use super::state::StateRows;
use super::{Gathered, StampReading};
use crate::account::AccountSpec;
use crate::plan::{FlagSet, FolderPath, LocalFolder, LocalId, LocalMessage, Location, UnixTime};
use crate::remote::header_message_id;
use crate::report::SyncReport;

/// How much of an unknown file is read to find its Message-ID.
const HEADER_PEEK: u64 = 64 * 1024;

fn unix_of(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A local Maildir folder of the mirror: its path, the folder, and its stamp as read before
/// anything was scanned (`None` when it has none).
pub(super) type LocalListed = (FolderPath, Folder, Option<StampReading>);

/// The local folders of the mirror (Maildirs matching the patterns) and each folder's stamp,
/// read before anything is scanned, so that a change made during the run moves the stamp
/// past the one recorded. Directories whose names cannot be used are reported and skipped.
///
/// One pass over the tree: the stamps are the ones the listing read through each folder's
/// directory handle ([`mailfold_store::LocalFolder::stamp`]), and each folder is taken as the
/// listing found it ([`Maildir::listed_folder`]), not opened again. The time a stamp goes
/// with ([`DirStamp::is_settled`](mailfold_store::DirStamp::is_settled)) is taken before the
/// listing starts, so it is no later than the moment any stamp was read: a stamp settled at
/// that time is settled at its reading too, so the rule only gets stricter.
pub(super) fn local_folders(
    maildir: &Maildir,
    db: &StateDb,
    account: &AccountSpec,
    report: &mut SyncReport,
) -> Result<Vec<LocalListed>, crate::SyncError> {
    let read_at = SystemTime::now();
    let listing = maildir.list_folders(db as &dyn AliasRegistry)?;
    for p in listing.skipped {
        report.warnings.push(format!(
            "directory skipped (name not usable): {}",
            p.display()
        ));
    }
    let mut local_folders = Vec::new();
    for lf in listing.folders {
        if !lf.is_maildir {
            continue;
        }
        let path = FolderPath(lf.name.components().to_vec());
        if !account.folders.matches(&path.to_string()) {
            continue;
        }
        let folder = maildir.listed_folder(&lf)?;
        let stamp = lf.stamp.map(|s| (s, read_at));
        local_folders.push((path, folder, stamp));
    }
    Ok(local_folders)
}

/// Which folders have a local directory, for telling a local deletion from a rename.
///
/// A folder the state records whose directory is gone was renamed or deleted locally. A
/// rename shows as a new local folder (one no state row records) holding its files, which
/// the planner recognises from the cheap views (one RENAME, nothing read). With no new
/// local folder it can only be a deletion, which the planner makes only from a complete
/// server view (a delta cannot show that the folder holds nothing else): such a folder is
/// then read whole. (A deletion made together with a new folder waits for the next run.)
pub(super) struct Presence {
    present: BTreeSet<FolderPath>,
    new_local: bool,
}

impl Presence {
    /// From the local listing and the state's folder rows.
    pub(super) fn of(local: &[LocalListed], state: &[(FolderPath, FolderRecord)]) -> Self {
        let present: BTreeSet<FolderPath> = local.iter().map(|(p, ..)| p.clone()).collect();
        let new_local = present.iter().any(|p| !state.iter().any(|(s, _)| s == p));
        Presence { present, new_local }
    }

    /// Whether the folder's server view must be complete (a possible local deletion).
    pub(super) fn read_whole(&self, path: &FolderPath) -> bool {
        !self.new_local && !self.present.contains(path)
    }
}

/// Scans one local folder whose rows (if any) are in `rows`, into the planner's local view
/// and the folder's context.
pub(super) fn scan_local(
    path: FolderPath,
    folder: &Folder,
    stamp: Option<StampReading>,
    rows: &StateRows,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<(), crate::SyncError> {
    let state = rows
        .rows
        .get(&path)
        .map(|(_, _, r)| r.as_slice())
        .unwrap_or(&[]);
    let unbound = rows.unbound.get(&path).map_or(&[][..], Vec::as_slice);
    let by_base: HashMap<&str, &MessageRecord> = state
        .iter()
        .chain(unbound)
        .map(|r| (r.base.as_str(), r))
        .collect();
    // A file the state describes completely needs no lstat: its name gives the size,
    // the row the date (see `describe_local`).
    let files = folder.scan_with(&|b: &MessageBase| {
        let r = by_base.get(b.as_str())?;
        let complete = r.hash.is_some() && r.size.is_some() && r.size == b.crlf_size_field();
        let date = r.internaldate?;
        complete.then(|| system_time_of(date.unix))
    })?;
    let mut messages = Vec::with_capacity(files.len());
    let ctx = g.folders.entry(path.clone()).or_default();
    ctx.scanned = true;
    ctx.rel = Some(folder.rel().clone());
    ctx.stamp = stamp;
    for e in files {
        match describe_local(folder, &e, by_base.get(e.base.as_str()).copied()) {
            Ok(m) => messages.push(m),
            Err(err) => report.folder_mut(&path.to_string()).warnings.push(format!(
                "{}: cannot read ({err}); left alone",
                e.path.display()
            )),
        }
        ctx.files.insert(e.base.as_str().to_owned(), e);
    }
    g.input.local.push(LocalFolder { path, messages });
    Ok(())
}

/// Starts following a partial folder's listing ([`ListingWatch`]) from its rows' digest,
/// which is what its directories hold while their stamp is still the one read at the start
/// of the run (`earlier`, equal to the recorded stamp; its equality with the stamp read
/// after the watch began closes the gap between the two readings).
pub(super) fn follow(
    watch: &mut ListingWatch,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
    earlier: Option<&StampReading>,
) -> Result<(), crate::SyncError> {
    let (Some((earlier, _)), Some((digest, count))) = (earlier, db.listing_digest(id)?) else {
        return Ok(());
    };
    if !watch.is_active() {
        *watch = ListingWatch::new();
    }
    if let Some(now) = watch.add(id, folder, digest, count) {
        if now != *earlier {
            watch.forget(id);
        }
    }
    Ok(())
}

/// The file of a row in a folder whose listing digest matched its rows: `cur/` with the
/// row's letters (where mailfold and mail readers keep read mail), else `new/` without or
/// with them. `None` when none is there as a regular file (for example a name with
/// non-standard letters, which the digest leaves aside): the caller then lists the folder.
pub(super) fn find_file(folder: &Folder, r: &MessageRecord) -> Option<MessageEntry> {
    let flags = mailfold_store::MaildirFlags::from_imap(
        r.flags.iter().chain(&r.keywords).map(String::as_str),
        &mailfold_store::MaildirFlags::empty(),
    );
    let base = r.base.as_str();
    let candidates = [
        (Subdir::Cur, format!("{base}:2,{flags}")),
        (Subdir::New, base.to_owned()),
        (Subdir::New, format!("{base}:2,{flags}")),
    ];
    for (subdir, name) in candidates {
        // An error (a directory that went away) is as good as no file: the caller lists.
        if let Ok(Some(entry)) = folder.entry_named(subdir, &name) {
            return Some(entry);
        }
    }
    None
}

/// A Unix time as a `SystemTime` (dates before 1970 included).
fn system_time_of(unix: i64) -> SystemTime {
    let d = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(d)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(d)
    }
    .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The flags the planner sees on a local file: its name's letters, plus the keywords of its
/// state row that no letter carries (seed V0005).
pub(super) fn local_flags(e: &MessageEntry, row: Option<&MessageRecord>) -> FlagSet {
    let mut flags = flagset(&e.flags.to_imap());
    if let Some(r) = row {
        // Keywords with a letter (`$Forwarded` ↔ `P`) are the file name's business: the row's
        // copy would hide a local removal.
        for k in &r.keywords {
            if !mailfold_store::MaildirFlags::has_letter_for(k) {
                flags = flags.union(&flagset(&[k]));
            }
        }
    }
    flags
}

/// Describes a local file for the planner. A file with a state row is described from the row
/// (its keywords live there, seed V0005) without being opened, unless its size disagrees with
/// the row; any other file is read once for its Message-ID, size and hash.
pub(super) fn describe_local(
    folder: &Folder,
    e: &MessageEntry,
    row: Option<&MessageRecord>,
) -> Result<LocalMessage, std::io::Error> {
    let flags = local_flags(e, row);
    let location = match e.subdir {
        Subdir::New => Location::New,
        Subdir::Cur => Location::Cur,
    };
    let mtime = UnixTime(unix_of(e.mtime));
    let lf_matches = !matches!(e.base.size_field(), Some(s) if s != e.size);
    if let (Some(r), Some(size)) = (row, e.base.crlf_size_field()) {
        if lf_matches && r.size == Some(size) {
            return Ok(LocalMessage {
                id: LocalId::new(e.base.as_str()),
                location,
                flags,
                size,
                mtime,
                message_id: r.message_id.clone(),
                hash: r.hash,
                partial: r.partial,
            });
        }
    }
    // Read through the folder's held handle: a file swapped for a link since the scan is
    // refused (left alone with a warning), never read through.
    let open = || folder.open_message(e).map_err(std::io::Error::other);
    let (hash, size) = canonical_digest_of(open()?)?;
    let mut head = Vec::new();
    open()?.take(HEADER_PEEK).read_to_end(&mut head)?;
    Ok(LocalMessage {
        id: LocalId::new(e.base.as_str()),
        location,
        flags,
        size,
        mtime,
        message_id: header_message_id(&head),
        hash: Some(hash),
        partial: row.is_some_and(|r| r.partial),
    })
}
