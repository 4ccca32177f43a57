//! The end of a run: recording each complete folder's local stamp ([`record_stamps`]), which
//! is what lets the next run skip the folder or read it partially (see "Unchanged folders" in
//! the module docs of [`crate::gather`]).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use mailfold_store::{
    DirStamp, Folder, FolderId, FolderRecord, ListingWatch, Maildir, MessageEntry, MessageRecord,
    StateDb, StateRead,
};

use super::local::local_flags;
use super::names::{path_of_wire, row_flags};
use super::Gathered;
use crate::plan::FolderPath;
use crate::report::SyncReport;

/// Records the local stamp of every folder that ended this run complete, so that the next run
/// can skip it while neither its server status nor its directories change. Call it
/// once at the end of a run, after every local write and state transaction of the run
/// (`sync_with_remote` does), with the run's [`Gathered`] (its folder contexts carry the
/// stamps read before the scans) and report. Returns how many stamps were written; a run that
/// changed nothing writes none and commits nothing.
///
/// A folder is considered when it was not skipped this run, its state row (if the run began
/// with one) still names the same directory, the row has UIDVALIDITY and HIGHESTMODSEQ (without them STATUS cannot say
/// "unchanged" anyway), and the run ended complete: no refusal, no account error, no error in
/// the folder, no pending change for it and no open journal intent naming it. Its stamp is
/// then recorded in one of three ways:
///
/// * **Untouched during the run**: the stamp read before the scan is settled
///   ([`DirStamp::is_settled`]: more than two seconds older than its reading, fine-grained)
///   and the directories still show it. The scan saw what the stamp describes and the run
///   wrote nothing there. No listing is needed.
/// * **Written during the run** (this run's downloads, flag renames, deletions), or changed
///   by a mail reader shortly before it: the folder is checked again now. A probe
///   file in its `tmp/` gives the file system's current time T ([`Folder::fs_time`]); then the
///   stamp S1 is read, the names in `new/` and `cur/` are listed (no `stat` of files), and the
///   stamp S2 is read. S1 is recorded only if S1 == S2, every time in S1 is strictly before T
///   ([`DirStamp::is_before`]), and the listing is exactly what the state now says the folder
///   holds: every row's base once, carrying the flags the row records (letters in the name,
///   keywords without a letter in the row, as [`gather`] reads them), the size in the name
///   the row's size, and no file the state does not know. Then the next run, finding S1
///   again, would have scanned files that describe exactly the rows it would load: skipping
///   it loses nothing.
/// * **Written during the run, and followed** (a folder read partially, whose listing the
///   run followed from the moment its stamp proved it: [`ListingWatch`]): the same probe T and
///   stamp S1, then, instead of a listing and S2, the kernel's reports of every name added to
///   or removed from `cur/` and `new/` since the watch began, folded into the digest the rows
///   had then; S1 is recorded when that digest and count are the rows' now and S1 is before
///   T. A change before the reports were read is among them (the kernel queues a directory's
///   report before the call that changed it returns); one after moves the stamp past S1, as
///   below. Anything the watch could not follow sends the folder to the listing check.
///
/// Why a later change by a mail reader necessarily changes the stamp: every such change adds,
/// removes or renames an entry of `new/` or `cur/`, which sets that directory's mtime and
/// ctime to the file system's current time, which is T or later for anything done after the
/// probe (the file system's clock does not run backwards; ctime cannot be set from user
/// space; a replaced directory has another inode). Since S1's times are all before T, the
/// new times differ from S1's. Why a change racing with the listing is caught: one made
/// before S1 was read shows in the listing (which starts after it) and so breaks the
/// comparison with the state; one made after it moves S2 away from S1. A change in the same
/// clock tick as the run's last write (S1 not before T) is the one case the times cannot
/// tell apart: then the folder waits for the file system's clock to move past S1 (probing it
/// every millisecond, at most [`STAMP_RETRY_WAIT`], one wait for all such folders together)
/// and is checked once more, else left unstamped. On a file system with
/// whole-second times nothing is recorded this way ([`DirStamp::is_fine`]): they keep the two
/// second rule of the first way.
///
/// **What is read once and reused.** Each folder's directory is opened once here, its stamp
/// read through that handle ([`Maildir::folder_stamped`]). The probe time T is read once per
/// file system, not once per folder (`FsClock`): the argument above needs of T only that
/// the clock which will stamp a later change to `cur/` and `new/` gave it out before S1 was
/// read. A probe file's device names that clock, so a T probed in one folder serves every
/// folder whose `cur/` and `new/` are on the same device and whose S1 is read after that
/// probe; a folder elsewhere (another mount inside the tree, say) gets a probe of its own,
/// in its own `tmp/`, as every folder did before. And S1 is the stamp read when the folder
/// was opened, when that reading came after the T it is checked against: S1 only has to
/// precede the listing (or the reading of the kernel's reports) and follow T, and the
/// run's own last change to the folder precedes both (it precedes `record_stamps`). Where
/// T had to be probed after the folder was opened (the first folder on its file system),
/// S1 is read again after the probe. A stamp read before the run's writes is never recorded
/// for a folder the run wrote to: the untouched case compares the stamp read before the
/// scan with the one read now, and any write by the run in between moved it.
///
/// The state clears a folder's stamp whenever its rows or status change
/// ([`mailfold_store::Txn`]), so a recorded stamp always goes with the rows it was taken with.
pub fn record_stamps(
    db: &mut StateDb,
    maildir: &Maildir,
    g: &Gathered,
    report: &SyncReport,
) -> Result<usize, crate::SyncError> {
    record_stamps_with(db, maildir, g, report, &mut |_, _| {})
}

/// The longest [`record_stamps`] waits, once per run, for the file system's clock to move on
/// past folders whose last change fell in the same clock tick as its probe. Linux's coarse
/// file-system clock advances every 1–10 ms (HZ of 1000 down to 100); five such ticks leave
/// room for a busy machine. The wait ends as soon as probes show the tick has passed.
pub const STAMP_RETRY_WAIT: Duration = Duration::from_millis(50);

/// How [`record_stamps`] checks a folder's directories against its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampCheck {
    /// The names in `cur/` and `new/` are listed and compared with the rows.
    Listing,
    /// The listing is known without reading it: the one the stamp proved at the start of the
    /// run, with every change since as the kernel reported it ([`ListingWatch`]).
    Followed,
}

/// [`record_stamps`] with a hook called for each folder it checks again, at the moment a
/// concurrent change is the hardest to notice (between the listing and the second stamp
/// reading; for a followed folder, between the stamp reading and the reading of the
/// kernel's reports): tests use it to make a change at exactly the moment a concurrent mail
/// reader could, and to see how each folder was checked.
pub fn record_stamps_with(
    db: &mut StateDb,
    maildir: &Maildir,
    g: &Gathered,
    report: &SyncReport,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<usize, crate::SyncError> {
    if report.dry_run || !report.refused.is_empty() || !report.errors.is_empty() {
        return Ok(0);
    }
    let mut clock = FsClock::default();
    let (mut todo, to_verify) = considered_folders(db, maildir, g, report, &mut clock)?;
    todo.extend(verify_all(db, to_verify, &g.watch, during_listing)?);
    write_stamps(db, todo)
}

/// A stamp to record: the folder, its stamp, and whether its listing keys are rebuilt with it
/// (its rows were compared one by one, so the digest becomes known).
type ToRecord = (FolderId, DirStamp, bool);

/// A folder whose directories are checked again at the end of the run ([`verify`]), with its
/// [`Reading`] when one could be taken.
type ToVerify = (FolderId, Folder, Option<Reading>);

/// What [`verify`] starts from: a time T the file system holding the folder's `cur/` and
/// `new/` gave out ([`Folder::fs_clock`]), and the folder's stamp S1 read after T.
type Reading = (SystemTime, DirStamp);

/// The file system's current time as probes gave it ([`Folder::fs_clock`]), by device: one
/// probe file per file system and round of checks instead of one per folder (see "What is
/// read once and reused" in [`record_stamps`]).
#[derive(Debug, Default)]
struct FsClock {
    probes: Vec<(u64, SystemTime)>,
}

impl FsClock {
    /// The [`Reading`] of `folder`, given `now`, a stamp of it read after every probe this
    /// clock holds: T from an earlier probe on the device of `now` with S1 = `now`, else T
    /// probed in the folder's own `tmp/` and S1 read after it. `None` when no probe can be
    /// made or the folder has no stamp.
    fn reading(&mut self, folder: &Folder, now: Option<DirStamp>) -> Option<Reading> {
        if let Some(now) = now {
            let earlier = now
                .device()
                .and_then(|d| self.probes.iter().find(|(pd, _)| *pd == d));
            if let Some(&(_, t)) = earlier {
                return Some((t, now));
            }
        }
        let (t, device) = folder.fs_clock().ok().flatten()?;
        if !self.probes.iter().any(|(d, _)| *d == device) {
            self.probes.push((device, t));
        }
        let s1 = folder.stamp().ok().flatten()?;
        Some((t, s1))
    }
}

/// The folders [`record_stamps`] considers, in two lists: those untouched during the run (the
/// stamp read before their scan is settled and still shown), ready to record; and those
/// whose directories are to be checked again ([`verify_all`]).
fn considered_folders(
    db: &StateDb,
    maildir: &Maildir,
    g: &Gathered,
    report: &SyncReport,
    clock: &mut FsClock,
) -> Result<(Vec<ToRecord>, Vec<ToVerify>), crate::SyncError> {
    let rows: HashMap<FolderId, FolderRecord> =
        db.folders()?.into_iter().map(|f| (f.id, f)).collect();
    let by_path: HashMap<FolderPath, FolderId> = rows
        .values()
        .filter_map(|f| {
            let p = path_of_wire(f.wire_name.as_bytes(), f.delimiter).ok()?;
            Some((g.root.local_of(&p)?, f.id))
        })
        .collect();
    let mut busy = db.folders_with_pending()?;
    for i in db.open_intents()? {
        busy.extend(i.intent.folder);
        busy.extend(i.intent.target_folder);
    }
    let mut todo = Vec::new();
    let mut to_verify = Vec::new();
    for (path, ctx) in &g.folders {
        // A skipped folder keeps the stamp it has. One without a state row at the start may
        // have one now (created and filled by this run): its id is looked up by name below.
        if ctx.skipped {
            continue;
        }
        let Some(id) = ctx.state_id.or_else(|| by_path.get(path).copied()) else {
            continue;
        };
        let name = path.to_string();
        if report
            .folders
            .iter()
            .any(|f| f.folder == name && (!f.errors.is_empty() || f.pending > 0))
            || busy.contains(&id)
        {
            continue;
        }
        let Some(row) = rows.get(&id) else { continue };
        let rel = &row.local_path;
        // Without HIGHESTMODSEQ (a server without CONDSTORE) a stamp never lets the folder be
        // skipped (STATUS cannot say "unchanged"), but it lets the next run read it partially.
        if row.uidvalidity.is_none() || ctx.rel.as_ref().is_some_and(|r| r != rel) {
            continue;
        }
        let Ok((folder, now)) = maildir.folder_stamped(rel) else {
            continue;
        };
        match ctx.stamp {
            Some((before, read_at))
                if ctx.scanned && now == Some(before) && before.is_settled(read_at) =>
            {
                // Scanned and loaded whole, unchanged since: the rows the scan matched are
                // the ones the keys are rebuilt from, when they are not known yet.
                todo.push((id, before, db.listing_digest(id)?.is_none()));
            }
            _ => {
                // `now` was read after every probe the clock holds so far.
                let reading = clock.reading(&folder, now);
                to_verify.push((id, folder, reading));
            }
        }
    }
    Ok((todo, to_verify))
}

/// Checks each folder of `to_verify` ([`verify`]); those whose stamp fell in the file system's
/// current clock tick are checked once more after one wait for all of them
/// ([`wait_for_next_tick`]). Returns the stamps that can be recorded.
fn verify_all(
    db: &StateDb,
    to_verify: Vec<ToVerify>,
    watch: &ListingWatch,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<Vec<ToRecord>, crate::SyncError> {
    let mut todo = Vec::new();
    let mut again = Vec::new();
    for (id, folder, reading) in to_verify {
        match verify(db, &folder, id, reading, watch, during_listing)? {
            Verified::Matches(stamp, rebuild) => todo.push((id, stamp, rebuild)),
            Verified::SameTick(s1) => again.push((id, folder, s1)),
            Verified::No => {}
        }
    }
    if !again.is_empty() {
        wait_for_next_tick(&again);
        // Probes taken after the wait, and each S1 after the probe it is checked against.
        let mut clock = FsClock::default();
        for (id, folder, _) in again {
            let now = folder.stamp().ok().flatten();
            let reading = clock.reading(&folder, now);
            if let Verified::Matches(stamp, rebuild) =
                verify(db, &folder, id, reading, watch, during_listing)?
            {
                todo.push((id, stamp, rebuild));
            }
        }
    }
    Ok(todo)
}

/// Writes the stamps of `todo` that the state does not hold already (same stamp, same row
/// count, no keys to rebuild), in one transaction; none at all commits nothing.
///
/// The commit waits for no fsync: a stamp only lets the next run skip a listing, a lost
/// one makes it list the folder, and the log keeps commits in order, so a stamp never
/// outlives the rows it vouches for.
fn write_stamps(db: &mut StateDb, todo: Vec<ToRecord>) -> Result<usize, crate::SyncError> {
    let recorded = db.local_stamps()?;
    let mut fresh = Vec::with_capacity(todo.len());
    for (id, stamp, rebuild) in todo {
        if let Some(r) = recorded.get(&id) {
            if !rebuild && r.stamp == stamp && r.messages == db.message_counts(id)?.0 {
                continue;
            }
        }
        fresh.push((id, stamp, rebuild));
    }
    if fresh.is_empty() {
        return Ok(0);
    }
    Ok(db.write_unsynced(|tx| {
        let mut n = 0;
        for (id, stamp, rebuild) in &fresh {
            if *rebuild {
                tx.rebuild_listing_keys(*id)?;
            }
            n += usize::from(tx.set_local_stamp(*id, stamp)?);
        }
        Ok(n)
    })?)
}

/// Waits until the file system's clock, as probes read it ([`Folder::fs_clock`]: one per file
/// system, in the first folder on it), has moved past every given stamp, and at most
/// [`STAMP_RETRY_WAIT`]: usually one tick of the coarse clock (a few milliseconds) rather
/// than the whole allowance. Only a wait: each folder is checked again afterwards from a
/// new probe and stamp.
fn wait_for_next_tick(folders: &[(FolderId, Folder, DirStamp)]) {
    const STEP: Duration = Duration::from_millis(1);
    let start = std::time::Instant::now();
    while start.elapsed() < STAMP_RETRY_WAIT {
        std::thread::sleep(STEP);
        let mut probes: Vec<(u64, SystemTime)> = Vec::new();
        let passed = folders.iter().all(|(_, folder, s1)| {
            let known = s1
                .device()
                .and_then(|d| probes.iter().find(|(pd, _)| *pd == d).map(|p| p.1));
            let now = known.or_else(|| {
                let (t, device) = folder.fs_clock().ok().flatten()?;
                if s1.device() == Some(device) {
                    probes.push((device, t));
                }
                Some(t)
            });
            now.is_some_and(|now| s1.is_before(now))
        });
        if passed {
            return;
        }
    }
}

/// What checking a folder's directories against the state found.
enum Verified {
    /// The listing is what the state describes, under this stamp, which can be recorded;
    /// `true` when it was compared row by row, so the listing keys are rebuilt with it.
    Matches(DirStamp, bool),
    /// Everything matched but this stamp's latest time is not before the probe time T: in
    /// the file system's clock tick of T, or (T being shared by the folders on one file
    /// system, [`FsClock`]) a change made after T. Worth one more try, from a new probe and
    /// stamp, once the clock has moved on (at most [`STAMP_RETRY_WAIT`]).
    SameTick(DirStamp),
    /// Not recordable now (a difference, a concurrent change, coarse times, an I/O error).
    No,
}

/// Checks one folder at the end of a run (see [`record_stamps`]): from probe time T and stamp
/// S1 (`reading`, S1 read after T; `None` when either could not be read), the listing,
/// stamp S2, then the listing against the state rows. A folder whose listing was followed
/// since the start of the run ([`ListingWatch`]) is checked without listing first
/// ([`verify_followed`]). Local I/O errors mean "no stamp", never a failed run; state
/// database errors are errors.
fn verify(
    db: &StateDb,
    folder: &Folder,
    id: FolderId,
    reading: Option<Reading>,
    watch: &ListingWatch,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<Verified, crate::SyncError> {
    // A folder with rows unbound by a UIDVALIDITY change is still being recovered: never
    // stamped (the state refuses it too).
    if db.message_counts(id)?.1 > 0 {
        return Ok(Verified::No);
    }
    let Some((fs_now, s1)) = reading else {
        return Ok(Verified::No);
    };
    if !s1.is_fine() {
        return Ok(Verified::No);
    }
    if watch.follows(id) {
        if let Some(v) = verify_followed(db, folder, id, (fs_now, s1), watch, during_listing)? {
            return Ok(v);
        }
    }
    // With a known listing digest (schema v4) the names alone are compared, through the
    // digest; otherwise the rows are read and compared one by one, and a match makes the
    // digest known for the next time.
    let digest = db.listing_digest(id)?;
    let rows = match digest {
        Some(_) => None,
        None => Some(db.messages(id)?),
    };
    // S1 precedes the listing, which starts here. Every file is "known": its name gives base, flags and (with `,S=`) size, and no file is
    // `stat`ed; the date is not compared.
    let Ok(files) = folder.scan_with(&|_| Some(SystemTime::UNIX_EPOCH)) else {
        return Ok(Verified::No);
    };
    during_listing(folder, StampCheck::Listing);
    let Ok(Some(s2)) = folder.stamp() else {
        return Ok(Verified::No);
    };
    let matches = match (&digest, &rows) {
        (Some(d), _) => listing_matches_digest(&files, *d),
        (None, Some(rows)) => listing_matches(&files, rows),
        (None, None) => false,
    };
    if s1 != s2 || !matches {
        return Ok(Verified::No);
    }
    let rebuild = digest.is_none();
    Ok(if s1.is_before(fs_now) {
        Verified::Matches(s1, rebuild)
    } else {
        Verified::SameTick(s1)
    })
}

/// [`verify`] for a folder whose listing was followed: from probe time T and stamp S1 (read
/// after T), every change the kernel reported up to now folded into the listing the stamp
/// proved at the start, compared with the rows' digest. A change before the reports were read is among
/// them; one after it is stamped at T or later, so it moves the stamp away from S1 (S1 is
/// recorded only when all its times are before T, as in [`verify`]). `None` when the
/// listing is not known after all (a report lost, the directories replaced) or disagrees
/// with the rows: the caller then lists the folder.
fn verify_followed(
    db: &StateDb,
    folder: &Folder,
    id: FolderId,
    (fs_now, s1): Reading,
    watch: &ListingWatch,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<Option<Verified>, crate::SyncError> {
    during_listing(folder, StampCheck::Followed);
    watch.drain();
    let Some(now) = watch.listing(id, &s1) else {
        return Ok(None);
    };
    if db.listing_digest(id)? != Some(now) {
        return Ok(None);
    }
    Ok(Some(if s1.is_before(fs_now) {
        Verified::Matches(s1, false)
    } else {
        Verified::SameTick(s1)
    }))
}

/// Whether a folder's files are exactly what its state rows describe, as the next run's scan
/// and planner would see them: one file per row base, no other file, the flags the planner
/// would read off each file ([`local_flags`]) equal to the row's, and a `,W=` size in a name
/// equal to the row's size (else the next scan would read the file: not "unchanged").
fn listing_matches(files: &[MessageEntry], rows: &[MessageRecord]) -> bool {
    if files.len() != rows.len() {
        return false;
    }
    let by_base: HashMap<&str, &MessageRecord> =
        rows.iter().map(|r| (r.base.as_str(), r)).collect();
    if by_base.len() != rows.len() {
        return false;
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    files.iter().all(|e| {
        let Some(r) = by_base.get(e.base.as_str()) else {
            return false;
        };
        let size_ok = e
            .base
            .crlf_size_field()
            .is_none_or(|size| r.size == Some(size));
        seen.insert(e.base.as_str()) && size_ok && local_flags(e, Some(r)) == row_flags(r)
    })
}

/// [`listing_matches`] through the folder's listing digest and row count (schema v4): the
/// files' keys ([`mailfold_store::listing_key_of_file`]) fold to the digest of the rows'
/// keys, there are as many files as rows, and no base appears twice. Distinct bases give
/// distinct keys (64-bit hashes), so equal digests mean equal sets of keys, and a file's key
/// equals its row's exactly when [`listing_matches`] would accept the pair.
fn listing_matches_digest(files: &[MessageEntry], (digest, count): (i64, u64)) -> bool {
    if files.len() as u64 != count {
        return false;
    }
    let mut bases: Vec<&str> = files.iter().map(|e| e.base.as_str()).collect();
    bases.sort_unstable();
    if bases.windows(2).any(|w| w[0] == w[1]) {
        return false;
    }
    let keys = files
        .iter()
        .map(|e| mailfold_store::listing_key_of_file(&e.base, &e.flags));
    mailfold_store::fold_listing_keys(keys) == digest
}
