//! The local mirror as commands see it: an account's Maildir tree and its state database,
//! folder names as users type them (`Archive/2024`), and message IDs.
//!
//! A message ID is the server UID recorded in the state database (stable across runs and
//! renames of the file by mutt or notmuch); a message not yet uploaded has no UID and is named
//! by its Maildir base name (the file name before `:2,`).
//!
//! Everything here reads the store through `mailfold-store`; the decisions about what a
//! change means for the next sync stay with the sync engine, which sees a command's local
//! change exactly like a change made by any mail reader.
//!
//! # Folder names under a root (seed V0022)
//!
//! Local folder names are server names with the account's root taken off: with
//! `root_folder = "INBOX."`, or a server whose personal namespace is `INBOX.` (Cyrus,
//! Courier), the server's `INBOX.Sent` is the local `Sent`, and INBOX is INBOX on both sides.
//! Every command maps names through [`Mirror::root`] with the sync's own rule
//! ([`mailfold_sync::account::folder_root`], [`FolderRoot`]), so they name exactly the folders
//! the sync made. The root comes from the configuration when set; otherwise from the state
//! database (each synced row records the server name and the local directory, so the prefix
//! is their difference). A command that changes mail names its folders by local name and
//! leaves the server names to the sync engine ([`mailfold_sync::changes`]), which asks the
//! server's NAMESPACE itself when nothing was synced yet.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use mailfold_store::{
    AliasRegistry, Folder, FolderName, FolderRecord, Maildir, MaildirOptions, MemoryAliases,
    MessageBase, MessageEntry, MessageRecord, RelPath, StateDb, StateRead, Uid,
};
use mailfold_sync::folder_root::FolderRoot;
use mailfold_sync::plan::FolderPath;

use crate::config::Account;
use crate::lock::AccountLock;

/// How much of a file is read for a header summary.
pub const HEADER_LIMIT: u64 = 64 * 1024;

/// An account's Maildir and (when it exists) state database.
#[derive(Debug)]
pub struct Mirror {
    /// The account's name.
    pub account: String,
    /// The Maildir tree.
    pub maildir: Maildir,
    /// The state database; `None` before the first sync.
    pub db: Option<StateDb>,
    /// The account lock, held while the mirror is open for a change ([`Mirror::open_write`]).
    pub lock: Option<AccountLock>,
    /// Where the mirrored folders live on the server (see the module docs).
    pub root: FolderRoot,
}

/// A folder a user named, resolved against the mirror.
#[derive(Debug, Clone)]
pub struct FolderRef {
    /// The name (components).
    pub name: FolderName,
    /// Its Maildir directory, when it exists locally.
    pub rel: Option<RelPath>,
    /// Its state row, when it was synced.
    pub state: Option<FolderRecord>,
}

impl FolderRef {
    /// The folder as the change API names it.
    pub fn path(&self) -> FolderPath {
        FolderPath(self.name.components().to_vec())
    }
}

/// A message a user named.
#[derive(Debug, Clone)]
pub struct MessageRef {
    /// The file.
    pub entry: MessageEntry,
    /// Its state row (UID, synced flags and keywords), when it was synced.
    pub record: Option<MessageRecord>,
}

/// The ID a user names a message by: its UID once synced (`record`), else the base name of
/// its file `entry`.
pub fn id_text(entry: &MessageEntry, record: Option<&MessageRecord>) -> String {
    record.map_or_else(
        || entry.base.as_str().to_string(),
        |r| r.uid.get().to_string(),
    )
}

/// Parses a folder name as users type it: levels separated by `/`.
pub fn parse_folder_name(s: &str) -> anyhow::Result<FolderName> {
    let comps: Vec<String> = s.split('/').map(str::to_owned).collect();
    FolderName::new(comps).map_err(|e| crate::exit::usage(format!("folder {s:?}: {e}")))
}

/// The server path of a state row's folder (before the root is taken off).
fn server_path(r: &FolderRecord) -> Option<FolderPath> {
    mailfold_sync::gather::path_of_wire(r.wire_name.as_bytes(), r.delimiter).ok()
}

/// The local name of a server path under `root`; `None` outside it.
pub fn local_name(root: &FolderRoot, server: &FolderPath) -> Option<FolderName> {
    FolderName::new(root.local_of(server)?.0).ok()
}

/// The server's hierarchy delimiter as recorded in state rows (INBOX's, else any).
fn delimiter_of(rows: &[FolderRecord]) -> Option<char> {
    rows.iter()
        .find(|r| r.wire_name.eq_ignore_ascii_case("INBOX"))
        .or_else(|| rows.first())
        .and_then(|r| r.delimiter)
}

/// The root of a mirror: configured, else learnt from the state rows, else assumed empty.
fn root_of(acct: &Account, maildir: &Maildir, db: Option<&StateDb>) -> FolderRoot {
    let rows = db.and_then(|db| db.folders().ok()).unwrap_or_default();
    if let Some(name) = &acct.root_folder {
        let root = mailfold_sync::account::folder_root(Some(name), None, delimiter_of(&rows));
        return root;
    }
    let Some(db) = db else {
        return FolderRoot::default();
    };
    let aliases = DbAliases(db);
    for r in &rows {
        let Some(server) = server_path(r) else {
            continue;
        };
        if server.0.len() == 1 && server.0[0].eq_ignore_ascii_case("INBOX") {
            // INBOX is INBOX under every root: it says nothing about the prefix.
            continue;
        }
        let Ok(local) = maildir.name_of(&r.local_path, &aliases) else {
            continue;
        };
        let local = local.components();
        // The sync files a server folder under its path with the root's levels taken off,
        // so the root is what the server path has in front of the local one.
        if server.0.len() >= local.len() && server.0[server.0.len() - local.len()..] == *local {
            let root = FolderRoot {
                prefix: server.0[..server.0.len() - local.len()].to_vec(),
                foreign: Vec::new(),
            };
            return root;
        }
    }
    FolderRoot::default()
}

impl Mirror {
    /// Opens the mirror for reading: the Maildir must exist; the state database is used when
    /// present (a corrupt one is an error, never taken for empty).
    pub fn open_read(name: &str, acct: &Account) -> anyhow::Result<Mirror> {
        if !acct.local.is_dir() {
            bail!(
                "no local mirror at {} for account {name}: run `mailfold sync` first",
                acct.local.display()
            );
        }
        let maildir = open_maildir(acct)?;
        let path = crate::account::state_path(name, acct)?;
        let db = if path.exists() {
            Some(
                StateDb::open(&path)
                    .with_context(|| format!("state database {}", path.display()))?,
            )
        } else {
            None
        };
        let root = root_of(acct, &maildir, db.as_ref());
        Ok(Mirror {
            account: name.to_string(),
            maildir,
            db,
            lock: None,
            root,
        })
    }

    /// Opens the mirror for a change by `command`: takes the account lock first (waiting for
    /// it with `wait`, else failing with [`crate::lock::BusyError`] while a sync or another
    /// change runs), then creates the Maildir root and the state database when missing (a new
    /// database is *fresh*: the sync engine never deletes on its account).
    pub fn open_write(
        name: &str,
        acct: &Account,
        command: &str,
        wait: bool,
    ) -> anyhow::Result<Mirror> {
        let path = crate::account::state_path(name, acct)?;
        // Before anything is read: a plan made from state another process is changing would
        // be stale.
        let lock = AccountLock::acquire(name, &path, command, wait)?;
        let maildir = open_maildir(acct)?;
        let db = match StateDb::open(&path) {
            Ok(db) => db,
            Err(mailfold_store::Error::StateMissing { .. }) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                StateDb::create(&path)
                    .with_context(|| format!("state database {}", path.display()))?
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("state database {}", path.display()))
                )
            }
        };
        let root = root_of(acct, &maildir, Some(&db));
        Ok(Mirror {
            account: name.to_string(),
            maildir,
            db: Some(db),
            lock: Some(lock),
            root,
        })
    }

    /// The state database, which a change needs.
    pub fn db_mut(&mut self) -> anyhow::Result<&mut StateDb> {
        self.db
            .as_mut()
            .context("the state database is not open for writing")
    }

    /// The Maildir and the state database together, for changes that record aliases.
    pub fn parts(&mut self) -> anyhow::Result<(&Maildir, &mut StateDb)> {
        let db = self
            .db
            .as_mut()
            .context("the state database is not open for writing")?;
        Ok((&self.maildir, db))
    }

    /// The server's hierarchy delimiter as recorded by the last sync (INBOX's, else any).
    pub fn delimiter(&self) -> Option<char> {
        delimiter_of(&self.db.as_ref()?.folders().ok()?)
    }

    /// The local name of a state row's folder; `None` for a row outside the root.
    pub fn record_name(&self, r: &FolderRecord) -> Option<FolderName> {
        local_name(&self.root, &server_path(r)?)
    }

    /// Every state folder row under the root, with its local name.
    pub fn state_folders(&self) -> anyhow::Result<Vec<(FolderName, FolderRecord)>> {
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        Ok(db
            .folders()?
            .into_iter()
            .filter_map(|r| self.record_name(&r).map(|n| (n, r)))
            .collect())
    }

    /// The server's name (modified UTF-7, server delimiter) of a local folder name: the
    /// root's levels in front (V0022); a level holding the delimiter is refused (V0020).
    pub fn server_mailbox(
        &self,
        name: &FolderName,
        delimiter: Option<char>,
    ) -> anyhow::Result<Vec<u8>> {
        let path = self.root.server_of(&FolderPath(name.components().to_vec()));
        let full = FolderName::new(path.0).map_err(|e| crate::exit::usage(e.to_string()))?;
        wire_name(&full, delimiter)
    }

    /// The wire name of a resolved folder: the recorded one when synced, else its name under
    /// the root.
    pub fn folder_mailbox(
        &self,
        f: &FolderRef,
        delimiter: Option<char>,
    ) -> anyhow::Result<Vec<u8>> {
        match &f.state {
            Some(r) => Ok(r.wire_name.as_bytes().to_vec()),
            None => self.server_mailbox(&f.name, delimiter),
        }
    }

    /// The alias registry (the state database, or an empty one before the first sync).
    pub fn aliases(&self) -> Box<dyn AliasRegistry + '_> {
        match &self.db {
            Some(db) => Box::new(DbAliases(db)),
            None => Box::new(MemoryAliases::new()),
        }
    }

    /// Resolves a folder name typed by the user.
    pub fn resolve_folder(&self, user: &str) -> anyhow::Result<FolderRef> {
        let name = parse_folder_name(user)?;
        self.resolve_name(&name)
    }

    /// Resolves a folder name against the state and the Maildir.
    pub fn resolve_name(&self, name: &FolderName) -> anyhow::Result<FolderRef> {
        let state = self
            .state_folders()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r);
        let rel = match &state {
            Some(r) if self.maildir.folder(&r.local_path).is_ok() => Some(r.local_path.clone()),
            _ => self
                .maildir
                .locate_folder(name, self.aliases().as_ref())?
                .filter(|rel| self.maildir.folder(rel).is_ok()),
        };
        Ok(FolderRef {
            name: name.clone(),
            rel,
            state,
        })
    }

    /// The Maildir of a folder that must exist locally.
    pub fn local_folder(&self, f: &FolderRef) -> anyhow::Result<Folder> {
        match &f.rel {
            Some(rel) => Ok(self.maildir.folder(rel)?),
            None => Err(crate::exit::usage(format!(
                "no folder {} in the local mirror of account {} (see `mailfold folders`)",
                f.name, self.account
            ))),
        }
    }

    /// The state rows of a folder by base name.
    pub fn records_by_base(&self, f: &FolderRef) -> anyhow::Result<HashMap<String, MessageRecord>> {
        let (Some(db), Some(st)) = (&self.db, &f.state) else {
            return Ok(HashMap::new());
        };
        Ok(db
            .messages(st.id)?
            .into_iter()
            .map(|r| (r.base.as_str().to_owned(), r))
            .collect())
    }

    /// Resolves the message IDs `ids` in folder `f` ([`Mirror::resolve_message`]), in order.
    pub fn resolve_messages(
        &self,
        f: &FolderRef,
        ids: &[String],
    ) -> anyhow::Result<Vec<MessageRef>> {
        ids.iter().map(|id| self.resolve_message(f, id)).collect()
    }

    /// Resolves a message ID: a UID from the state, or a Maildir base (a whole file name is
    /// accepted too).
    pub fn resolve_message(&self, f: &FolderRef, id: &str) -> anyhow::Result<MessageRef> {
        let folder = self.local_folder(f)?;
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            let uid = id
                .parse::<u32>()
                .ok()
                .and_then(Uid::new)
                .ok_or_else(|| crate::exit::usage(format!("{id:?} is not a valid UID")))?;
            let (Some(db), Some(st)) = (&self.db, &f.state) else {
                bail!(
                    "no message with UID {id} in {}: the folder was never synced",
                    f.name
                );
            };
            let Some(record) = db.message(st.id, uid)? else {
                bail!(
                    "no message with UID {id} in {} (see `mailfold list`)",
                    f.name
                );
            };
            let Some(entry) = folder.find(&record.base)? else {
                bail!(
                    "message UID {id} of {} has no local file (deleted locally; the next sync deletes it on the server)",
                    f.name
                );
            };
            return Ok(MessageRef {
                entry,
                record: Some(record),
            });
        }
        let base = match MessageBase::parse_file_name(id) {
            Some((b, _)) => b,
            None => MessageBase::new(id)
                .map_err(|e| crate::exit::usage(format!("{id:?} is not a message ID: {e}")))?,
        };
        let Some(entry) = folder.find(&base)? else {
            bail!("no message {id} in {} (see `mailfold list`)", f.name);
        };
        let record = match (&self.db, &f.state) {
            (Some(db), Some(st)) => db.message_by_base(st.id, &base)?,
            _ => None,
        };
        Ok(MessageRef { entry, record })
    }
}

fn open_maildir(acct: &Account) -> anyhow::Result<Maildir> {
    Maildir::open(
        &acct.local,
        MaildirOptions {
            fsync: acct.fsync.unwrap_or(true),
            // The config checked the layout keys when it was read.
            layout: acct.store_layout().unwrap_or_default(),
            ..MaildirOptions::default()
        },
    )
    .with_context(|| format!("Maildir {}", acct.local.display()))
}

/// Read-only alias lookups through a shared state database (aliases are only *recorded* by
/// changes, which hold the database mutably).
struct DbAliases<'a>(&'a StateDb);

impl AliasRegistry for DbAliases<'_> {
    fn alias_of(&self, parent: &str, component: &str) -> mailfold_store::Result<Option<String>> {
        self.0.alias_of(parent, component)
    }
    fn component_of(&self, parent: &str, alias: &str) -> mailfold_store::Result<Option<String>> {
        self.0.component_of(parent, alias)
    }
    fn record_alias(
        &mut self,
        _parent: &str,
        _alias: &str,
        _component: &str,
    ) -> mailfold_store::Result<()> {
        Err(mailfold_store::Error::UnsafePath {
            path: std::path::PathBuf::new(),
            reason: "the state database is open read-only",
        })
    }
    fn rename_alias_prefix(&mut self, _from: &str, _to: &str) -> mailfold_store::Result<()> {
        Err(mailfold_store::Error::UnsafePath {
            path: std::path::PathBuf::new(),
            reason: "the state database is open read-only",
        })
    }
}

/// The wire name of a full server folder name (modified UTF-7, server delimiter); a
/// component holding the delimiter is refused (seed V0020). Local names go through
/// [`Mirror::server_mailbox`], which puts the root in front.
pub fn wire_name(name: &FolderName, delimiter: Option<char>) -> anyhow::Result<Vec<u8>> {
    let joined = name
        .join(delimiter)
        .map_err(|e| crate::exit::usage(e.to_string()))?;
    Ok(mailfold_sync::inspect::wire_name(&joined))
}

/// Reads the head of a message file (up to the blank line, at most [`HEADER_LIMIT`]).
pub fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(HEADER_LIMIT).read_to_end(&mut buf)?;
    if let Some(end) = find_header_end(&buf) {
        buf.truncate(end);
    }
    Ok(buf)
}

fn find_header_end(b: &[u8]) -> Option<usize> {
    // LF files (the mirror) and CRLF files (what a user may append) both occur.
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}
