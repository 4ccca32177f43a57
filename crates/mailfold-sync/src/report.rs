//! What a run did, per folder and for the account, for the CLI to print (human or `--json`).

use serde::Serialize;

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
    pub errors: Vec<String>,
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
    pub errors: Vec<String>,
    /// Nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// Operations applied.
    pub steps: u64,
    /// Folders a STATUS round showed unchanged on the server, so they were not selected
    /// (seed V0045).
    pub unchanged_folders: usize,
    /// What crossed the network, when the run used a `mailfold-net` session.
    pub traffic: Option<Traffic>,
    /// The first sync into a Maildir another tool made: how its files were adopted.
    pub adoption: Option<crate::adopt::Adoption>,
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
}

impl SyncReport {
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
