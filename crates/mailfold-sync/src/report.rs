//! What a run did, per folder and for the account, for the CLI to print (human or `--json`).

use mailfold_plan::{FlagSet, FlagUpdate, Op};
use serde::Serialize;

use crate::plan::Plan;
use crate::step_error::StepError;

/// Counts and messages for one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FolderReport {
    /// The folder's name (UTF-8, levels joined with `/`).
    pub folder: String,
    /// Messages downloaded into the Maildir.
    pub downloaded: usize,
    /// Of those downloaded, partial copies (header and placeholder, V0010/V0070) replaced by
    /// the whole message.
    pub completed: usize,
    /// The folder's former name, when this run renamed it: on the server (it was renamed
    /// locally) or in the Maildir (it was renamed on the server).
    pub renamed_from: Option<String>,
    /// Messages uploaded with APPEND.
    pub uploaded: usize,
    /// New local files whose message the server copied from another folder (`UID COPY`)
    /// instead of receiving it again: a mail reader's saved copy.
    pub copied: usize,
    /// Messages paired without transfer (content matching, V0003).
    pub bound: usize,
    /// Local files whose flags changed.
    pub local_flag_changes: usize,
    /// Server messages whose flags changed.
    pub remote_flag_changes: usize,
    /// Local files deleted (the server expunged them).
    pub local_deletions: usize,
    /// Server messages expunged (their files were deleted).
    pub remote_deletions: usize,
    /// Local files moved into this folder to follow a server move.
    pub local_moves: usize,
    /// Server messages moved into this folder to follow a local move.
    pub remote_moves: usize,
    /// The folder was created locally.
    pub created_local: bool,
    /// The folder was created on the server.
    pub created_remote: bool,
    /// The folder was deleted (on either side).
    pub deleted: bool,
    /// Local changes waiting (read-only folder, V0039; pull-only account, V0040).
    pub pending: usize,
    /// The folder is read-only on the server.
    pub read_only: bool,
    /// Things to know; the folder synced.
    pub warnings: Vec<String>,
    /// Steps that failed, with the server's text where it gave one (V0019).
    pub errors: Vec<StepError>,
}

/// The outcome of one run for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The account's name.
    pub account: String,
    /// Per-folder results, by folder name.
    pub folders: Vec<FolderReport>,
    /// `[ALERT]` texts from the server, which must reach the user (seed V0063).
    pub alerts: Vec<String>,
    /// Account-level warnings.
    pub warnings: Vec<String>,
    /// Folders (or the account) the safety valve refused; `--force` applies them.
    pub refused: Vec<String>,
    /// Account-level errors.
    pub errors: Vec<StepError>,
    /// Nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// Operations applied.
    pub steps: u64,
    /// Folders a STATUS round showed unchanged on the server, so they were not selected
    /// (seed V0045).
    pub unchanged_folders: usize,
    /// What crossed the network, when the run used a `mailfold-net` session.
    pub traffic: Option<Traffic>,
    /// Whole-folder renames in the run's plan, with the side renamed. A run reports the ones
    /// it applied in [`FolderReport::renamed_from`]; this says which way each went.
    pub renames: Vec<FolderRename>,
    /// A dry run's operations, one line each, in the order they would be applied (what
    /// `sync --dry-run -v` prints). Empty after a real run.
    pub planned: Vec<PlannedOp>,
    /// A dry run's totals for the account, the planner's own summary of its plan. `None`
    /// after a real run.
    pub plan_totals: Option<PlanTotals>,
    /// The first sync into a Maildir another tool made: how its files were adopted.
    pub adoption: Option<Adoption>,
}

/// The planner's counts of a whole plan ([`mailfold_plan::Summary`]), for `--json`. A copy
/// rather than the planner's own type: the planner depends on nothing but the sans-IO protocol
/// crate (not on serde, so it builds and fuzzes alone), and the field names of the JSON document stay the
/// report's to keep stable whatever the planner counts internally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanTotals {
    /// Messages to download.
    pub downloads: usize,
    /// Messages to upload.
    pub uploads: usize,
    /// New local files to copy on the server from another folder instead of uploading.
    pub remote_copies: usize,
    /// Pairs to bind without transfer.
    pub binds: usize,
    /// Flag changes to make on local files.
    pub local_flag_changes: usize,
    /// Flag changes to store on the server.
    pub remote_flag_changes: usize,
    /// Local files to move.
    pub local_moves: usize,
    /// Server messages to move.
    pub remote_moves: usize,
    /// Local files to delete.
    pub local_deletions: usize,
    /// Server messages to expunge.
    pub remote_deletions: usize,
    /// Folders to create (either side).
    pub folders_created: usize,
    /// Folders to delete (either side).
    pub folders_deleted: usize,
    /// Local changes left pending on read-only folders.
    pub pending: usize,
}

impl From<&mailfold_plan::Summary> for PlanTotals {
    fn from(s: &mailfold_plan::Summary) -> Self {
        PlanTotals {
            downloads: s.downloads,
            uploads: s.uploads,
            remote_copies: s.remote_copies,
            binds: s.binds,
            local_flag_changes: s.local_flag_changes,
            remote_flag_changes: s.remote_flag_changes,
            local_moves: s.local_moves,
            remote_moves: s.remote_moves,
            local_deletions: s.local_deletions,
            remote_deletions: s.remote_deletions,
            folders_created: s.folders_created,
            folders_deleted: s.folders_deleted,
            pending: s.pending,
        }
    }
}

/// A folder renamed as a whole, in the plan of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderRename {
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
    /// Where the rename is made: `"server"` (the folder was renamed in the Maildir) or
    /// `"local"` (it was renamed on the server).
    pub side: &'static str,
}

/// One operation of a dry run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOp {
    /// The folder it is about (for a move or a rename, the destination).
    pub folder: String,
    /// What it would do, in words.
    pub op: String,
}

/// Commands and bytes of a run (from `mailfold-net`'s counters): what "no needless work"
/// tests count, and what `--json` can show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Commands sent, by name (`SELECT`, `UID FETCH`, …).
    pub commands: std::collections::BTreeMap<String, u64>,
    /// Bytes written to the server.
    pub bytes_sent: u64,
    /// Bytes read from the server.
    pub bytes_received: u64,
}

impl Traffic {
    /// The counters of a session as they are now.
    pub fn of(stats: &mailfold_net::Stats) -> Traffic {
        Traffic {
            commands: stats.all_commands(),
            bytes_sent: stats.bytes_sent(),
            bytes_received: stats.bytes_received(),
        }
    }

    /// How many commands named `name` were sent (case-insensitive).
    pub fn count(&self, name: &str) -> u64 {
        self.commands
            .get(&name.to_ascii_uppercase())
            .copied()
            .unwrap_or(0)
    }

    /// Sessions that authenticated (LOGIN or AUTHENTICATE): the connections the run used.
    pub fn logins(&self) -> u64 {
        self.count("LOGIN") + self.count("AUTHENTICATE")
    }
}

impl SyncReport {
    /// Takes what the report needs from the run's plan: the renames and their sides, and for
    /// a dry run (nothing applied, so no applier counts) the per-folder counts the run would
    /// report, each operation in words ([`SyncReport::planned`]) and the folders it would
    /// create, delete or rename.
    pub fn note_plan(&mut self, plan: &Plan) {
        for op in &plan.ops {
            let (from, to, side) = match op {
                Op::RenameRemoteFolder { from, to } => (from, to, "server"),
                Op::RenameLocalFolder { from, to } => (from, to, "local"),
                _ => continue,
            };
            self.renames.push(FolderRename {
                from: from.to_string(),
                to: to.to_string(),
                side,
            });
        }
        if !self.dry_run {
            return;
        }
        self.plan_totals = Some(PlanTotals::from(&plan.summary));
        for op in &plan.ops {
            let Some((folder, words)) = describe(op) else {
                continue;
            };
            let f = self.folder_mut(&folder);
            let flags = |f: &mut FolderReport, u: &FlagUpdate| {
                f.local_flag_changes += usize::from(u.local.is_some());
                f.remote_flag_changes += usize::from(u.remote.is_some());
            };
            match op {
                Op::Download { .. } => f.downloaded += 1,
                Op::Upload { .. } => f.uploaded += 1,
                Op::CopyRemote { .. } => f.copied += 1,
                Op::Bind { update, .. } => {
                    f.bound += 1;
                    flags(f, update);
                }
                Op::SyncFlags { update, .. } => flags(f, update),
                Op::MoveLocal { update, .. } => {
                    f.local_moves += 1;
                    flags(f, update);
                }
                Op::MoveRemote { update, .. } => {
                    f.remote_moves += 1;
                    flags(f, update);
                }
                Op::DeleteLocal { .. } => f.local_deletions += 1,
                Op::ExpungeRemote { .. } => f.remote_deletions += 1,
                Op::CreateLocalFolder { .. } => f.created_local = true,
                Op::CreateRemoteFolder { .. } => f.created_remote = true,
                Op::DeleteLocalFolder { .. } | Op::DeleteRemoteFolder { .. } => f.deleted = true,
                Op::RenameRemoteFolder { from, .. } | Op::RenameLocalFolder { from, .. } => {
                    f.renamed_from = Some(from.to_string());
                }
                _ => {}
            }
            self.planned.push(PlannedOp { folder, op: words });
        }
    }

    /// The side a folder's rename was made on (`"server"` or `"local"`), when the plan
    /// renamed `from` to `to`.
    pub fn rename_side(&self, from: &str, to: &str) -> Option<&'static str> {
        self.renames
            .iter()
            .find(|r| r.from == from && r.to == to)
            .map(|r| r.side)
    }

    /// Whether every folder synced completely: no refusal and no error anywhere. The CLI exits
    /// 0 only then.
    pub fn is_complete(&self) -> bool {
        self.refused.is_empty()
            && self.errors.is_empty()
            && self.folders.iter().all(|f| f.errors.is_empty())
    }

    /// Whether the run changed anything on either side.
    pub fn changed_anything(&self) -> bool {
        self.folders.iter().any(|f| {
            f.downloaded
                + f.uploaded
                + f.copied
                + f.local_flag_changes
                + f.remote_flag_changes
                + f.local_deletions
                + f.remote_deletions
                + f.local_moves
                + f.remote_moves
                > 0
                || f.created_local
                || f.created_remote
                || f.deleted
                || f.renamed_from.is_some()
        })
    }

    /// The report of `folder`, created on first use.
    pub fn folder_mut(&mut self, folder: &str) -> &mut FolderReport {
        let i = match self.folders.iter().position(|f| f.folder == folder) {
            Some(i) => i,
            None => {
                self.folders.push(FolderReport {
                    folder: folder.to_owned(),
                    ..FolderReport::default()
                });
                self.folders.len() - 1
            }
        };
        &mut self.folders[i]
    }
}

/// Flags as IMAP writes them, space-separated.
fn flag_words(f: &FlagSet) -> String {
    f.iter().map(|f| f.to_imap()).collect::<Vec<_>>().join(" ")
}

/// A flag change in words: `here: \Seen \Flagged; on the server: +\Seen -\Flagged`.
fn update_words(u: &FlagUpdate) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &u.local {
        parts.push(format!("flags here become ({})", flag_words(l)));
    }
    if let Some(r) = &u.remote {
        let mut w = Vec::new();
        if !r.add.is_empty() {
            w.push(format!("+({})", flag_words(&r.add)));
        }
        if !r.remove.is_empty() {
            w.push(format!("-({})", flag_words(&r.remove)));
        }
        parts.push(format!("flags on the server {}", w.join(" ")));
    }
    parts.join(", ")
}

/// The folder an operation is reported under and what it does, in words; `None` for the
/// bookkeeping operations that change neither side (state rows, journal, pending marks).
///
/// Longer than most functions on purpose: it is one exhaustive match with an arm per plan
/// operation, so that a new [`Op`] fails to compile here until it has its words, and the
/// sentences of a dry run can be read side by side.
fn describe(op: &Op) -> Option<(String, String)> {
    let with = |s: String, u: &FlagUpdate| {
        if u.is_noop() {
            s
        } else {
            format!("{s}; {}", update_words(u))
        }
    };
    Some(match op {
        Op::CreateLocalFolder { folder } => (folder.to_string(), "create the folder here".into()),
        Op::CreateRemoteFolder { folder } => {
            (folder.to_string(), "create the folder on the server".into())
        }
        Op::Download {
            folder, uid, size, ..
        } => (
            folder.to_string(),
            format!("download UID {uid} ({size} bytes)"),
        ),
        Op::Upload {
            folder,
            local,
            size,
            ..
        } => (folder.to_string(), format!("upload {local} ({size} bytes)")),
        Op::CopyRemote {
            from,
            uid,
            local,
            to,
            ..
        } => (
            to.to_string(),
            format!("copy UID {uid} on the server here from {from} for {local} (same content)"),
        ),
        Op::Bind {
            folder,
            uid,
            local,
            update,
            ..
        } => (
            folder.to_string(),
            with(
                format!("pair UID {uid} with {local} (same content)"),
                update,
            ),
        ),
        Op::SyncFlags {
            folder,
            uid,
            update,
            ..
        } => (
            folder.to_string(),
            format!("UID {uid}: {}", update_words(update)),
        ),
        Op::MoveLocal {
            from,
            local,
            to,
            uid,
            update,
            ..
        } => (
            to.to_string(),
            with(
                format!("move {local} here from {from} (UID {uid} on the server)"),
                update,
            ),
        ),
        Op::MoveRemote {
            from,
            uid,
            to,
            update,
            ..
        } => (
            to.to_string(),
            with(
                format!("move UID {uid} on the server here from {from}"),
                update,
            ),
        ),
        Op::DeleteLocal { folder, uid, local } => (
            folder.to_string(),
            format!("delete {local} here (UID {uid} is gone from the server)"),
        ),
        Op::ExpungeRemote { folder, uid, .. } => (
            folder.to_string(),
            format!("expunge UID {uid} on the server (its file was deleted here)"),
        ),
        Op::DeleteLocalFolder { folder } => (folder.to_string(), "delete the folder here".into()),
        Op::DeleteRemoteFolder { folder } => {
            (folder.to_string(), "delete the folder on the server".into())
        }
        Op::RenameRemoteFolder { from, to } => (
            to.to_string(),
            format!("rename {from} to {to} on the server"),
        ),
        Op::RenameLocalFolder { from, to } => {
            (to.to_string(), format!("rename {from} to {to} here"))
        }
        Op::SetUidValidity { .. }
        | Op::ForgetMessage { .. }
        | Op::MarkPending { .. }
        | Op::ClearPending { .. }
        | Op::DropIntent { .. }
        | Op::ForgetFolder { .. }
        | Op::SetFolderState { .. } => return None,
    })
}

/// What the adoption pre-pass ([`crate::adopt`]) did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Adoption {
    /// Local files bound to server messages by the UIDs mbsync or OfflineIMAP recorded.
    pub by_uid: u64,
    /// Recorded UIDs the server did not confirm (gone, or another size): left to content
    /// matching.
    pub uid_rejected: u64,
    /// Local files bound by content by the planner in the same run.
    pub by_content: u64,
    /// Local files that matched nothing, kept local-only and not uploaded.
    pub local_only: u64,
    /// Folders whose server UIDVALIDITY changed since the other tool ran: matched by content.
    pub validity_changed: Vec<String>,
    /// Folders whose UIDs came from mbsync's `.mbsyncstate`.
    pub mbsync_folders: Vec<String>,
    /// Folders whose UIDs came from OfflineIMAP's file names.
    pub offlineimap_folders: Vec<String>,
}
