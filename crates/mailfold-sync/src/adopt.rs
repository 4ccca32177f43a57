//! Adopting a Maildir that mbsync or OfflineIMAP made: the pre-pass of the first sync.
//!
//! With a *fresh* state database and a Maildir that already holds messages, the files are
//! very likely the server's messages as another tool downloaded them. Downloading them again
//! would double the tree (and a mail indexer's database); uploading them would double the
//! server. Content matching in the planner binds most of them, but only where the bytes are
//! the server's exactly: mbsync adds an `X-TUID` header to every message it stores, so none of
//! its files hash or size like the server's copy. Both tools, though, leave the server UID of
//! each file behind:
//!
//! * **mbsync** (`SyncState *`, its default): `.mbsyncstate` in each folder directory starts
//!   with `FarUidValidity N` (`MasterUidValidity` before 1.4) and, after a blank line, lists
//!   `FAR NEAR FLAGS` per message: the server UID and the Maildir UID, which mbsync writes
//!   into the file name as `,U=NEAR`.
//! * **OfflineIMAP**: file names carry `,U=SERVER_UID` and `,FMD5=` the MD5 of the local
//!   folder name (so a file a mail reader moved to another folder is recognised), and
//!   `METADATA/Repository-REMOTE/FolderValidity/FOLDER` holds the server folder's UIDVALIDITY
//!   (the account key `adopt_offlineimap` names that repository directory).
//!
//! This module reads those records and checks every claim against the server before it is
//! believed: the folder's UIDVALIDITY must equal the recorded one (otherwise the folder was
//! reset since the other tool ran and is left to content matching), the UID must exist, and
//! its RFC822.SIZE must equal the file's size with CRLF line ends (less mbsync's `X-TUID`
//! line). Each confirmed pair becomes a state row written before the normal gather runs, so the
//! planner sees an ordinary synced folder. The row's synced flags are the server's current
//! ones, which makes the file's flags the newer side: the three-way merge pushes them.
//! Nothing is renamed here; only flag changes ever rename another tool's files.
//!
//! What no record binds is left to the planner's content matching; what matches nothing is
//! kept local-only ([`crate::plan::PlanConfig::keep_new_local`]) rather than uploaded: in
//! such a tree it is most likely mail the server expunged since the other tool last ran.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use mailfold_store::crlf::canonical_digest_of;
use mailfold_store::{
    normalise_flags, AliasRegistry, Folder, FolderStatus, InternalDate, LocalFolder, Maildir,
    MessageBase, MessageEntry, MessageRecord, NewFolder, StateDb, StateRead, Uid, UidValidity,
};

use crate::account::AccountSpec;
use crate::folder_root::FolderRoot;
use crate::gather::path_of_wire;
use crate::plan::{Flag, FolderPath};
use crate::remote::{ListEntry, MessageDetails, Remote};
use crate::report::SyncReport;

/// The longest `.mbsyncstate` line read (a line is three numbers and a few flag letters).
const MAX_STATE_LINE: u64 = 4096;
/// The longest header block searched for mbsync's `X-TUID` line.
const HEADER_PEEK: u64 = 256 * 1024;

pub use crate::report::Adoption;

/// Whether this run adopts a Maildir another tool made: the state is fresh and the tree shows
/// that tool's marks — mbsync's `.mbsyncstate` or `.uidvalidity` in a folder, a `,U=` UID in a
/// file name (mbsync, OfflineIMAP), or any message at all when `adopt_offlineimap` is set. The
/// planner then keeps unmatched local files local-only. A tree mailfold made itself, whose
/// state database was lost, is not adopted: its unmatched files are new mail and go up.
pub fn is_adopting(
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
) -> Result<bool, crate::SyncError> {
    if !db.is_fresh()? {
        return Ok(false);
    }
    let listing = maildir.list_folders(db as &dyn AliasRegistry)?;
    for lf in listing.folders.iter().filter(|f| f.is_maildir) {
        let folder = maildir.folder(&lf.rel)?;
        if [".mbsyncstate", ".uidvalidity"]
            .iter()
            .any(|f| folder.path().join(f).is_file())
        {
            return Ok(true);
        }
        let files = folder.scan()?;
        if files.is_empty() {
            continue;
        }
        if account.adopt_offlineimap.is_some() || files.iter().any(|e| u_field(&e.base).is_some()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The start of a run's adoption, before the gather: with `--upload-unmatched` the list of
/// local-only files is emptied (their uploads follow) and nothing is kept; otherwise, when
/// [`is_adopting`], the pre-pass binds what the other tool's records prove (not in a dry run,
/// which writes nothing). Returns whether the run adopts, which is the planner's
/// [`crate::plan::PlanConfig::keep_new_local`].
pub fn begin(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    opts: &crate::SyncOptions,
    maildir: &Maildir,
    db: &mut StateDb,
    report: &mut SyncReport,
) -> Result<bool, crate::SyncError> {
    if opts.upload_unmatched {
        if !opts.dry_run {
            db.clear_local_only()?;
        }
        return Ok(false);
    }
    if !is_adopting(account, maildir, db)? {
        return Ok(false);
    }
    report.adoption = Some(if opts.dry_run {
        Adoption::default()
    } else {
        prepare(remote, account, maildir, db, report)?
    });
    Ok(true)
}

/// Drops the files kept local-only by an earlier adoption from the planner's view, so that no
/// later run uploads them (or takes their absence on the server for anything).
pub fn hide_local_only(
    input: &mut crate::plan::SyncInput,
    db: &StateDb,
) -> Result<(), crate::SyncError> {
    let hidden = db.local_only()?;
    if hidden.is_empty() {
        return Ok(());
    }
    for f in &mut input.local {
        f.messages.retain(|m| !hidden.contains(&m.id.0));
    }
    Ok(())
}

/// After planning an adopting run: records the files the planner kept local-only (so later runs
/// keep them too) and completes the counts.
pub fn finish(
    plan: &crate::plan::Plan,
    opts: &crate::SyncOptions,
    db: &mut StateDb,
    report: &mut SyncReport,
) -> Result<(), crate::SyncError> {
    let kept: Vec<String> = plan
        .warnings
        .iter()
        .filter_map(|w| match w {
            crate::plan::Warning::KeptLocal { local, .. } => Some(local.0.clone()),
            _ => None,
        })
        .collect();
    if !opts.dry_run && !kept.is_empty() {
        db.add_local_only(&kept)?;
    }
    let a = report.adoption.get_or_insert_with(Adoption::default);
    a.local_only = kept.len() as u64;
    a.by_content = plan.summary.binds as u64;
    Ok(())
}

/// The pre-pass proper (see the module docs); call it only when [`is_adopting`]. Folders that
/// already have a state row (an interrupted first run) are left as they are.
fn prepare(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &mut StateDb,
    report: &mut SyncReport,
) -> Result<Adoption, crate::SyncError> {
    let mut out = Adoption::default();
    let known: Vec<String> = db.folders()?.into_iter().map(|f| f.wire_name).collect();
    let local = local_folders(maildir, db)?;
    let entries = remote.list_all()?;
    let delimiter = entries
        .iter()
        .find(|e| e.wire.is_inbox())
        .or_else(|| entries.first())
        .and_then(|e| e.delimiter);
    let ns = remote.namespace()?;
    let root = crate::account::folder_root(account.root_folder.as_deref(), ns.as_ref(), delimiter);
    let mut selected_any = false;
    for e in entries {
        let Some((wire, path, lf)) = candidate(&e, &known, &root, account, &local) else {
            continue;
        };
        let folder = maildir.folder(&lf.rel)?;
        let files = folder.scan()?;
        let claims = match claims_of(folder.path(), maildir.root(), &wire, account, &files) {
            Some(c) => c,
            None => continue,
        };
        let shown = path.to_string();
        match claims.tool {
            Tool::Mbsync => out.mbsync_folders.push(shown.clone()),
            Tool::OfflineImap => out.offlineimap_folders.push(shown.clone()),
        }
        let selected = match remote.select(&e.wire, true) {
            Ok(s) => {
                selected_any = true;
                s
            }
            Err(err) if err.is_fatal() => return Err(err.into()),
            Err(err) => {
                report
                    .warnings
                    .push(format!("{shown}: not adopted by UID: {err}"));
                continue;
            }
        };
        let Some(uv) = selected.uidvalidity else {
            continue;
        };
        if uv.0.get() != claims.uidvalidity {
            out.validity_changed.push(shown);
            continue;
        }
        let records = confirmed_records(remote, &folder, &claims)?;
        out.uid_rejected += (claims.pairs.len() - records.len()) as u64;
        out.by_uid += records.len() as u64;
        let new = NewFolder {
            wire_name: wire,
            delimiter: e.delimiter,
            local_path: lf.rel.clone(),
            special_use: e.special_use.clone(),
            subscribed: e.subscribed,
        };
        write_adopted(db, &new, uv, &records)?;
    }
    if selected_any {
        remote.unselect()?;
    }
    Ok(out)
}

/// The Maildir's folders by the name the planner gives them.
fn local_folders(
    maildir: &Maildir,
    db: &StateDb,
) -> Result<HashMap<FolderPath, LocalFolder>, crate::SyncError> {
    let listing = maildir.list_folders(db as &dyn AliasRegistry)?;
    Ok(listing
        .folders
        .into_iter()
        .filter(|f| f.is_maildir)
        .map(|f| (FolderPath(f.name.components().to_vec()), f))
        .collect())
}

/// A server folder the pre-pass may adopt, with its wire name as text, its local name and its
/// local folder: selectable, not yet in the state, under the root, wanted by the account's
/// folder patterns, and present in the Maildir.
fn candidate<'a>(
    e: &ListEntry,
    known: &[String],
    root: &FolderRoot,
    account: &AccountSpec,
    local: &'a HashMap<FolderPath, LocalFolder>,
) -> Option<(String, FolderPath, &'a LocalFolder)> {
    if e.noselect || e.nonexistent {
        return None;
    }
    let wire = String::from_utf8(e.wire.as_wire().to_vec()).ok()?;
    if known.contains(&wire) {
        return None;
    }
    let path = path_of_wire(e.wire.as_wire(), e.delimiter)
        .ok()
        .and_then(|p| root.local_of(&p))?;
    if !account.folders.matches(&path.to_string()) {
        return None;
    }
    let lf = local.get(&path)?;
    Some((wire, path, lf))
}

/// The state rows of the claims the selected server folder confirms: the UID exists and its
/// size is the file's (see the module docs); the synced flags are the server's.
fn confirmed_records(
    remote: &mut dyn Remote,
    folder: &Folder,
    claims: &Claims,
) -> Result<Vec<MessageRecord>, crate::SyncError> {
    let server: BTreeMap<u32, Vec<String>> = remote
        .fetch_flags()?
        .into_iter()
        .map(|m| (m.uid.get(), m.flags.iter().map(Flag::to_imap).collect()))
        .collect();
    let wanted: Vec<Uid> = claims
        .pairs
        .keys()
        .copied()
        .filter(|u| server.contains_key(u))
        .filter_map(Uid::new)
        .collect();
    let details = if wanted.is_empty() {
        Vec::new()
    } else {
        remote.fetch_details(&wanted)?
    };
    Ok(details
        .iter()
        .filter_map(|d| {
            let (Some(entry), Some(flags)) =
                (claims.pairs.get(&d.uid.get()), server.get(&d.uid.get()))
            else {
                return None;
            };
            confirmed_record(folder, claims.tool, entry, flags, d)
        })
        .collect())
}

/// The state row binding `entry` to the server message `d`, when the file can be read and its
/// size fits the server's.
fn confirmed_record(
    folder: &Folder,
    tool: Tool,
    entry: &MessageEntry,
    flags: &[String],
    d: &MessageDetails,
) -> Option<MessageRecord> {
    let (Some(size), uid) = (d.size, d.uid) else {
        return None;
    };
    // A file that cannot be read now (a mail reader moved it) is left to the gather.
    // Through the folder's held handle: a file swapped for a link is not read.
    let (hash, local_size) = folder
        .open_message(entry)
        .map_err(std::io::Error::other)
        .and_then(canonical_digest_of)
        .ok()?;
    let fits = local_size == size
        || (tool == Tool::Mbsync
            && tuid_line_len(&entry.path).is_some_and(|n| local_size == size + n));
    if !fits {
        return None;
    }
    let (system, keywords): (Vec<String>, Vec<String>) = flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .cloned()
        .partition(|f| f.starts_with('\\'));
    let (Ok(system), Ok(keywords)) = (normalise_flags(&system), normalise_flags(&keywords)) else {
        return None;
    };
    Some(MessageRecord {
        uid,
        base: entry.base.clone(),
        flags: system,
        keywords,
        size: Some(size),
        internaldate: d.internaldate.map(|unix| InternalDate {
            unix,
            offset_minutes: 0,
        }),
        hash: Some(hash),
        message_id: d.message_id.clone(),
        partial: false,
    })
}

/// Writes an adopted folder's state row and its confirmed messages in one transaction.
fn write_adopted(
    db: &mut StateDb,
    new: &NewFolder,
    uv: UidValidity,
    records: &[MessageRecord],
) -> Result<(), crate::SyncError> {
    db.write(|tx| {
        let id = tx.add_folder(new)?;
        // UIDNEXT and HIGHESTMODSEQ stay unknown, so the gather reads the whole folder.
        tx.set_folder_status(
            id,
            &FolderStatus {
                uidvalidity: Some(uv),
                uidnext: None,
                highestmodseq: None,
            },
        )?;
        tx.upsert_messages(id, records)
    })?;
    Ok(())
}

/// Which tool's records a folder's claims came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Mbsync,
    OfflineImap,
}

/// A folder's claims: server UID → local file, under a recorded UIDVALIDITY.
struct Claims {
    tool: Tool,
    uidvalidity: u32,
    pairs: BTreeMap<u32, MessageEntry>,
}

/// The `,U=N` number in a file's base.
fn u_field(base: &MessageBase) -> Option<u32> {
    field(base.as_str(), ",U=").and_then(|v| v.parse().ok())
}

fn field<'a>(base: &'a str, key: &str) -> Option<&'a str> {
    let start = base.find(key)? + key.len();
    let rest = &base[start..];
    Some(&rest[..rest.find(',').unwrap_or(rest.len())])
}

fn claims_of(
    dir: &Path,
    root: &Path,
    wire: &str,
    account: &AccountSpec,
    files: &[MessageEntry],
) -> Option<Claims> {
    if let Some(c) = mbsync_claims(dir, files) {
        return Some(c);
    }
    let repo = account.adopt_offlineimap.as_deref()?;
    offlineimap_claims(dir, root, repo, wire, files)
}

/// mbsync's `.mbsyncstate` in the folder directory.
fn mbsync_claims(dir: &Path, files: &[MessageEntry]) -> Option<Claims> {
    let f = File::open(dir.join(".mbsyncstate")).ok()?;
    let mut r = BufReader::new(f);
    let mut uidvalidity = None;
    let mut far_of_near: HashMap<u32, u32> = HashMap::new();
    let mut in_header = true;
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut r).take(MAX_STATE_LINE).read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_STATE_LINE => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
        let l = line.trim_end();
        if in_header {
            if l.is_empty() {
                in_header = false;
                continue;
            }
            let mut w = l.split_whitespace();
            if let (Some("FarUidValidity" | "MasterUidValidity"), Some(v)) = (w.next(), w.next()) {
                uidvalidity = v.parse::<u32>().ok();
            }
            continue;
        }
        let mut w = l.split_whitespace();
        let (Some(far), Some(near)) = (
            w.next().and_then(|v| v.parse::<i64>().ok()),
            w.next().and_then(|v| v.parse::<i64>().ok()),
        ) else {
            continue;
        };
        // Non-positive numbers mark pairs mbsync has not completed (or has given up on).
        if let (Ok(far), Ok(near)) = (u32::try_from(far), u32::try_from(near)) {
            if far > 0 && near > 0 {
                far_of_near.insert(near, far);
            }
        }
    }
    let uidvalidity = uidvalidity?;
    let mut pairs = BTreeMap::new();
    for e in files {
        if let Some(far) = u_field(&e.base).and_then(|n| far_of_near.get(&n)) {
            pairs.insert(*far, e.clone());
        }
    }
    Some(Claims {
        tool: Tool::Mbsync,
        uidvalidity,
        pairs,
    })
}

/// OfflineIMAP's `,U=` server UIDs, checked against `,FMD5=` of the folder's name as
/// OfflineIMAP knows it (its directory relative to the root), with the validity file of the
/// server folder.
fn offlineimap_claims(
    dir: &Path,
    root: &Path,
    repo: &Path,
    wire: &str,
    files: &[MessageEntry],
) -> Option<Claims> {
    // The server's name becomes a path below the repository: refuse anything that could walk
    // out of it.
    if wire
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let mut p: PathBuf = repo.join("FolderValidity");
    p.extend(wire.split('/'));
    let mut text = String::new();
    File::open(&p)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    let uidvalidity: u32 = text.trim().parse().ok()?;
    let rel = dir.strip_prefix(root).ok()?.to_str()?;
    let md5: String = Md5::digest(rel.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut pairs = BTreeMap::new();
    for e in files {
        let here = field(e.base.as_str(), ",FMD5=").is_none_or(|h| h == md5);
        if let (true, Some(u)) = (here, u_field(&e.base)) {
            pairs.insert(u, e.clone());
        }
    }
    Some(Claims {
        tool: Tool::OfflineImap,
        uidvalidity,
        pairs,
    })
}

/// The CRLF length of the `X-TUID:` header line mbsync adds to the messages it stores, if
/// the file's header has one.
fn tuid_line_len(path: &Path) -> Option<u64> {
    let mut head = Vec::new();
    File::open(path)
        .ok()?
        .take(HEADER_PEEK)
        .read_to_end(&mut head)
        .ok()?;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of the header
        }
        if line.len() > 8 && line[..8].eq_ignore_ascii_case(b"X-TUID: ") {
            return Some(line.len() as u64 + 2);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_foreign_file_names() {
        let b = MessageBase::new("1796622711_14.32242.vm,U=12,FMD5=1a93").unwrap();
        assert_eq!(u_field(&b), Some(12));
        assert_eq!(field(b.as_str(), ",FMD5="), Some("1a93"));
        let m = MessageBase::new("1796622698.30429_1.vm,U=7").unwrap();
        assert_eq!(u_field(&m), Some(7));
        assert_eq!(u_field(&MessageBase::new("plain").unwrap()), None);
    }

    #[test]
    fn mbsync_state_pairs_and_validity() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".mbsyncstate"),
            "FarUidValidity 1796622674\nNearUidValidity 5\nMaxPulledUid 3\n\n1 1 S\n2 -1 \n3 7 F\n",
        )
        .unwrap();
        let entry = |base: &str| MessageEntry {
            base: MessageBase::new(base).unwrap(),
            flags: mailfold_store::MaildirFlags::empty(),
            subdir: mailfold_store::Subdir::Cur,
            path: dir.path().join(base),
            size: 1,
            mtime: std::time::SystemTime::UNIX_EPOCH,
        };
        let files = [entry("a,U=1"), entry("b,U=7"), entry("c,U=2")];
        let c = mbsync_claims(dir.path(), &files).unwrap();
        assert_eq!(c.uidvalidity, 1_796_622_674);
        let got: Vec<(u32, &str)> = c.pairs.iter().map(|(u, e)| (*u, e.base.as_str())).collect();
        assert_eq!(got, [(1, "a,U=1"), (3, "b,U=7")]);
    }
}
