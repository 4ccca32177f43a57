//! The sync state database: what was true at the last committed step.
//!
//! SQLite (bundled, so no system library is needed) in WAL mode with
//! `synchronous=FULL` and foreign keys on; every committed step is one
//! transaction. The schema and the meaning of each table are documented in
//! [`schema`](crate::schema).
//!
//! # Never silently empty
//!
//! A state database that is missing, truncated or corrupt must not look like
//! "no messages were ever synced", or the sync engine would conclude that
//! every local file is new and every server message deleted. So:
//!
//! * [`StateDb::open`] fails with [`Error::StateMissing`] when the file does
//!   not exist and [`Error::StateCorrupt`] when it is empty, not a mailfold
//!   database, shorter or longer than its header says, or fails SQLite's
//!   `quick_check` (see [`IntegrityCheck::Auto`] for when that runs);
//! * [`StateDb::create`] refuses to overwrite an existing file;
//! * a created database is *fresh* ([`StateDb::is_fresh`]) until the engine
//!   calls [`StateDb::mark_synced`] after its first complete sync; a fresh
//!   state never justifies a deletion.

mod listing;
pub mod schema;
mod types;

pub use listing::{fold_listing_keys, listing_key_of, listing_key_of_file, listing_key_of_row};
pub use types::*;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};

use crate::crlf::ContentHash;
use crate::error::{Error, Result};
use crate::maildir::DirStamp;
use crate::message::MessageBase;
use crate::name::{rebase_parent, AliasRegistry, RelPath};
use schema::{APPLICATION_ID, MIGRATIONS};

/// How thoroughly [`StateDb::open_with`] checks the file.
///
/// Every level first does the cheap checks: the file is not empty, its
/// header is a SQLite header with mailfold's application id, the schema
/// version is one this build knows, and the `meta` table is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// The default of [`StateDb::open`]. When the last session closed
    /// cleanly (no write-ahead log left beside the file: SQLite checkpoints
    /// and deletes it when the last connection closes), the file must hold
    /// exactly the pages its header counts (`page_count × page_size` equals
    /// the file size), which catches truncation, the damage a crash, a full
    /// disk or a careless copy actually does, in constant time. When a log
    /// is left (a crash, a kill, or another process holding the database
    /// open), `quick_check` runs as for [`IntegrityCheck::Quick`]. Reading
    /// the whole file on every open cost as much as the rest of a no-change
    /// run (37 MB at 100,000 messages).
    #[default]
    Auto,
    /// Only the checks every level does, whatever the log. For a second
    /// connection to a database this process has already opened with one of
    /// the other levels (a parallel worker's): the log is then the live one
    /// of the first connection, which would otherwise make every extra
    /// connection read the whole file.
    Cheap,
    /// `PRAGMA quick_check` always (O(size); catches truncation and most
    /// page damage).
    Quick,
    /// `PRAGMA integrity_check` (also verifies indexes against tables).
    Full,
}

/// The state database of one account.
#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
    /// Write transactions committed since open ([`StateDb::commits`]).
    commits: Cell<u64>,
    /// What [`StateDb::set_fsync`] chose last (`true` until then).
    fsync: Cell<bool>,
    /// The in-process writer lock of this file, shared by every connection of this process
    /// to it ([`writer_lock`]).
    writer: Arc<Mutex<()>>,
}

/// A write transaction. Dropping it without [`Txn::commit`] rolls back.
#[derive(Debug)]
pub struct Txn<'a> {
    tx: rusqlite::Transaction<'a>,
    commits: &'a Cell<u64>,
    /// Held until the transaction ends; declared after `tx` so that a rollback on drop
    /// happens before another thread may begin.
    _writer: MutexGuard<'a, ()>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A [`Error::StateCorrupt`] of the database at `path`.
fn corrupt(path: &Path, detail: String) -> Error {
    Error::StateCorrupt {
        path: path.to_path_buf(),
        detail,
    }
}

/// A SQLite error as the store reports it: one that says the file at
/// `path` is damaged is [`Error::StateCorrupt`].
fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    if is_corruption(&e) {
        corrupt(path, e.to_string())
    } else {
        Error::Db(e)
    }
}

/// Refuses to create a database where one exists.
fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(Error::StateExists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The database file's size and whether a log with frames in it is left
/// beside it; a missing or empty file is refused.
///
/// Looked at before opening: reading a WAL-mode database creates the log
/// file. A log with frames in it means the last session did not close
/// cleanly (or another one is open now): its pages are part of the
/// database, so the file size says nothing and the full check runs.
fn stat_for_open(path: &Path) -> Result<(u64, bool)> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::StateMissing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(Error::io("stat state database", path, e)),
    };
    // SQLite treats an empty file as a valid empty database; for us it
    // is a truncated one.
    if meta.len() == 0 {
        return Err(corrupt(path, "the file is empty (truncated)".into()));
    }
    let wal = sidecar(path, "-wal");
    let wal_left = match std::fs::metadata(&wal) {
        Ok(m) => m.len() > 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("stat state journal", &wal, e)),
    };
    Ok((meta.len(), wal_left))
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

impl StateDb {
    /// The store's handle over `conn`, the connection to the database file at `path`: no
    /// commit yet, fsync on (as SQLite is configured by [`StateDb::configure`]).
    fn over(conn: Connection, path: &Path) -> StateDb {
        StateDb {
            conn,
            writer: writer_lock(path),
            path: path.to_path_buf(),
            commits: Cell::new(0),
            fsync: Cell::new(true),
        }
    }

    /// Creates a new, *fresh* state database. Fails if the file (or a
    /// leftover WAL of a deleted one) exists; never overwrites. Parent
    /// directories are created.
    pub fn create(path: &Path) -> Result<Self> {
        refuse_existing(path)?;
        let wal = sidecar(path, "-wal");
        if wal.exists() {
            return Err(Error::StateCorrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "the database file is missing but its journal {} exists",
                    wal.display()
                ),
            });
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf);
        if let Some(parent) = &parent {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create state directory", parent, e))?;
        }
        // Built complete under a side name and renamed into place: a process killed while
        // creating (the first run of an account) leaves at most the side file, which the next
        // create replaces, never a half-made database at `path` that every later run would
        // refuse as corrupt.
        let side = sidecar(path, ".new");
        Self::build_side(&side)?;
        refuse_existing(path)?;
        std::fs::rename(&side, path)
            .map_err(|e| Error::io("put state database in place", path, e))?;
        if let Some(parent) = &parent {
            crate::maildir::sync_dir(true, parent)?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut db = StateDb::over(conn, path);
        db.configure()?;
        Ok(db)
    }

    /// Builds a complete fresh database at the side name `side`, replacing whatever a killed
    /// earlier create left there, and syncs it.
    fn build_side(side: &Path) -> Result<()> {
        for f in [
            side.to_path_buf(),
            sidecar(side, "-journal"),
            sidecar(side, "-wal"),
            sidecar(side, "-shm"),
        ] {
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove a leftover new state database", &f, e)),
            }
        }
        {
            let conn = Connection::open_with_flags(
                side,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let mut db = StateDb::over(conn, side);
            // No journal and no syncs while building: the side file is nobody's database
            // until the rename in `create`, and one left by a crash is removed above, so a
            // torn build costs nothing. The migrations' per-transaction journal files and
            // syncs were most of an account's first-run CPU (a journal created, synced twice
            // and deleted per migration). The finished file is synced once, below.
            db.conn.pragma_update(None, "journal_mode", "OFF")?;
            db.conn.pragma_update(None, "synchronous", "OFF")?;
            db.conn
                .pragma_update(None, "application_id", APPLICATION_ID)?;
            db.migrate(0)?;
            let now = now_unix().to_string();
            db.conn.execute(
                "INSERT INTO meta(key, value) VALUES ('created_at', ?1), ('fresh', '1')",
                params![now],
            )?;
            // WAL mode is recorded in the file's header, so the file goes into place already in
            // it: switched on the first open instead, the header change is a transaction in
            // the rollback journal (a journal file created, synced twice with the directory
            // and the database, and deleted) on every account's first run, fsync off included.
            db.enter_wal()?;
            // Closed here: everything is in the one file (closing the last connection
            // checkpoints and removes the write-ahead log).
        }
        std::fs::File::open(side)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync new state database", side, e))
    }

    /// Opens an existing state database with the [`IntegrityCheck::Auto`]
    /// checks.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, IntegrityCheck::Auto)
    }

    /// Opens an existing state database, checking that it is a mailfold
    /// database, intact, and of a schema this build can migrate.
    ///
    /// The checks run in order from the cheapest: the file and its log as
    /// they are on disk, the header's application id (before anything is
    /// written to the file), the integrity pragma `check` asks for, the
    /// file's size against its header, then the schema version.
    pub fn open_with(path: &Path, check: IntegrityCheck) -> Result<Self> {
        let (len, wal_left) = stat_for_open(path)?;
        let wrap = |e| db_error(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(wrap)?;
        let mut db = StateDb::over(conn, path);
        // Identify the file before changing anything in it (WAL mode is
        // written to the header), so another program's database is left alone.
        let app: i32 = db
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(wrap)?;
        if app != APPLICATION_ID {
            return Err(corrupt(
                path,
                format!("not a mailfold state database (application_id {app:#x})"),
            ));
        }
        let pragma = match check {
            IntegrityCheck::Cheap => None,
            IntegrityCheck::Auto if !wal_left => None,
            IntegrityCheck::Auto | IntegrityCheck::Quick => Some("PRAGMA quick_check(20)"),
            IntegrityCheck::Full => Some("PRAGMA integrity_check(20)"),
        };
        if let Some(pragma) = pragma {
            db.check_integrity(pragma)?;
        }
        if !wal_left {
            db.check_size(len)?;
        }
        db.configure().map_err(|e| match e {
            Error::Db(e) => wrap(e),
            other => other,
        })?;
        db.check_schema()?;
        Ok(db)
    }

    /// Runs an integrity `pragma`; the database is corrupt if it reports
    /// anything but "ok".
    fn check_integrity(&self, pragma: &str) -> Result<()> {
        let wrap = |e| db_error(&self.path, e);
        let problems: Vec<String> = {
            let mut stmt = self.conn.prepare(pragma).map_err(wrap)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(wrap)?;
            rows.collect::<rusqlite::Result<_>>().map_err(wrap)?
        };
        if problems != ["ok"] {
            return Err(corrupt(&self.path, problems.join("; ")));
        }
        Ok(())
    }

    /// Checks the file's size, `len`, when no log is left beside it: then
    /// the file is the whole database. SQLite keeps the page count in the
    /// header (offset 28, valid while the change counter matches) and
    /// truncates the file to it at the final checkpoint, so any other size
    /// is damage.
    fn check_size(&self, len: u64) -> Result<()> {
        let wrap = |e| db_error(&self.path, e);
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(wrap)?;
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(wrap)?;
        let expected = pages.saturating_mul(page_size);
        if u64::try_from(expected).ok() != Some(len) {
            return Err(corrupt(
                &self.path,
                format!(
                    "the file has {len} bytes but its header counts {pages} pages of \
                     {page_size} bytes (truncated or damaged)"
                ),
            ));
        }
        Ok(())
    }

    /// The schema version is one this build knows (migrated to the newest)
    /// and the database was initialised.
    fn check_schema(&mut self) -> Result<()> {
        let path = self.path.clone();
        let wrap = |e| db_error(&path, e);
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(wrap)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(Error::SchemaTooNew {
                path: path.clone(),
                found: version,
                supported,
            });
        }
        if version < 1 {
            return Err(corrupt(
                &path,
                "schema version 0: the database was never initialised".into(),
            ));
        }
        self.migrate(version)?;
        let has_meta: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'created_at'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(wrap)?;
        if has_meta.is_none() {
            return Err(corrupt(
                &path,
                "the meta table has no created_at row".into(),
            ));
        }
        Ok(())
    }

    /// Puts the database in WAL mode (recorded in the file's header; a no-op when it is in
    /// it already), or fails when SQLite refuses.
    fn enter_wal(&self) -> Result<()> {
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::BadStoredValue {
                column: "journal_mode",
                detail: format!("SQLite refused WAL mode (got {mode})"),
            });
        }
        Ok(())
    }

    fn configure(&mut self) -> Result<()> {
        self.conn.busy_timeout(Duration::from_secs(10))?;
        self.enter_wal()?;
        // Every per-message and per-folder statement goes through
        // `prepare_cached`; the default capacity (16) is smaller than the
        // number of distinct statements one sync runs, which would evict
        // and re-prepare them in turn.
        self.conn.set_prepared_statement_cache_capacity(64);
        // Statement journals in memory: every INSERT or UPDATE that may fail a constraint
        // inside a larger transaction keeps the pages it changes in a statement journal, which
        // SQLite spills past 64 KiB into a temporary file (`/var/tmp`). A commit group of
        // thousands of messages then wrote each page twice more through the file system (14
        // writes a message in an initial sync). In memory, a statement journal holds one
        // statement's pages and is emptied when the statement ends; the few sorts the queries
        // need (`messages_by_hash`'s candidates, the pending folders) are small.
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        // A page cache of 1 MiB (negative: KiB) instead of SQLite's 2 MiB, per connection: a
        // sync opens one per server connection, and in a large mirror each fills its cache
        // whatever its size, since the hash index is written at random places. Its leaf
        // pages are not read twice within a run anyway; the interior pages that are fit many
        // times over.
        self.conn.pragma_update(None, "cache_size", -1024)?;
        // FULL: a committed step survives power loss, not only a crash.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        Ok(())
    }

    fn migrate(&mut self, from: i64) -> Result<()> {
        let start = usize::try_from(from).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The default location of an account's state database:
    /// `$XDG_STATE_HOME/mailfold/<account>.sqlite`, falling back to
    /// `$HOME/.local/state` as the XDG Base Directory specification says.
    /// The account name is escaped like a folder name component, so it
    /// cannot leave that directory. `None` when neither variable is set.
    pub fn default_path(account: &str) -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".local/state"))
            })?;
        let file = format!("{}.sqlite", crate::name::encode_component(account));
        Some(base.join("mailfold").join(file))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// True until [`StateDb::mark_synced`]: nothing is known yet, so no
    /// absence on either side means a deletion.
    pub fn is_fresh(&self) -> Result<bool> {
        let v: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'fresh'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(v.as_deref() == Some("1"))
    }

    /// The bases of local files kept local-only: files found when mailfold adopted a Maildir
    /// another tool made that matched no server message. The sync never uploads them (until
    /// `sync --upload-unmatched` clears the list). Kept in `meta` as `local_only:BASE` keys.
    pub fn local_only(&self) -> Result<std::collections::BTreeSet<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM meta WHERE key >= 'local_only:' AND key < 'local_only;'",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = std::collections::BTreeSet::new();
        for k in rows {
            if let Some(base) = k?.strip_prefix("local_only:") {
                out.insert(base.to_owned());
            }
        }
        Ok(out)
    }

    /// Adds bases to [`StateDb::local_only`], in one transaction.
    pub fn add_local_only(&mut self, bases: &[String]) -> Result<()> {
        self.write(|tx| {
            for b in bases {
                tx.exec(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, '1')",
                    params![format!("local_only:{b}")],
                )?;
            }
            Ok(())
        })
    }

    /// Empties [`StateDb::local_only`] (`sync --upload-unmatched`).
    pub fn clear_local_only(&mut self) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM meta WHERE key >= 'local_only:' AND key < 'local_only;'",
                params![],
            )?;
            Ok(())
        })
    }

    /// Records that a first complete sync has been committed.
    pub fn mark_synced(&mut self) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta(key, value) VALUES ('fresh', '0')
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([])?;
        self.count_commit();
        Ok(())
    }

    /// The number of write transactions committed through this handle since
    /// it was opened (explicit transactions and single-statement writes
    /// alike; the schema migrations run by `open` are not counted). For tests
    /// and diagnostics: a sync that changed nothing should commit nothing.
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    fn count_commit(&self) {
        self.commits.set(self.commits.get().saturating_add(1));
    }

    /// Chooses whether each commit is fsynced.
    ///
    /// `true` (the default of [`StateDb::create`] and [`StateDb::open`]):
    /// `PRAGMA synchronous=FULL`, every committed transaction survives a
    /// power cut. `false`: `synchronous=NORMAL`; in WAL mode the database
    /// is still consistent after a crash or a kill at any instant (SQLite
    /// fsyncs the WAL only at checkpoints, so a power cut may lose the last
    /// few commits but never corrupts the file or tears a transaction).
    ///
    /// That keeps the mirror's guarantee: the engine writes a file before
    /// committing the row that records it, and a lost commit only makes the
    /// state older than the disk and the server. The next plan then redoes
    /// the lost steps, and every step recognises work that is already done
    /// by content (the hash of a file already present, an APPEND found by
    /// hash or Message-ID through its journal intent), so nothing is
    /// duplicated or deleted. The caller is expected to turn off the
    /// Maildir's fsync together with this one (`MaildirOptions`), since
    /// durability of one without the other buys nothing.
    pub fn set_fsync(&self, fsync: bool) -> Result<()> {
        let level = if fsync { "FULL" } else { "NORMAL" };
        self.conn.pragma_update(None, "synchronous", level)?;
        self.fsync.set(fsync);
        Ok(())
    }

    /// Whether a commit waits for the disk now (`PRAGMA synchronous` is FULL or EXTRA).
    pub fn syncs_commits(&self) -> Result<bool> {
        let level: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok(level >= 2)
    }

    /// [`StateDb::write`] without waiting for the disk at its commit, whatever
    /// [`StateDb::set_fsync`] chose: for changes whose loss the next run recognises from
    /// their effects alone (the sync engine's deferred commit groups, a folder's directory
    /// stamp), so that they cost no fsync of their own.
    ///
    /// In WAL mode commits reach the log in order, and the log is fsynced as a whole: the
    /// next synced commit, or the checkpoint when the database is closed, makes this one
    /// durable with it. A power cut before then loses this commit and any later unsynced
    /// one, never an earlier commit and never a part of one; a crash or a kill loses nothing
    /// (the log is written at the commit, only not flushed to the disk).
    pub fn write_unsynced<T>(&mut self, f: impl FnOnce(&Txn<'_>) -> Result<T>) -> Result<T> {
        if !self.fsync.get() {
            return self.write(f);
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = self.write(f);
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        let v = written?;
        restored?;
        Ok(v)
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`, so it cannot fail
    /// half-way for lack of a write lock).
    ///
    /// Connections of this process to the same file (the parallel workers') first take the
    /// file's in-process writer lock, so that a writer waiting for another is woken when that
    /// one ends. SQLite's busy handler, which would otherwise wait, sleeps in growing steps
    /// (1, 2, 5, 10 ms and on) and oversleeps the other's commit; it remains for another
    /// process holding the database.
    pub fn begin(&mut self) -> Result<Txn<'_>> {
        let commits = &self.commits;
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Txn {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            commits,
            _writer: writer,
        })
    }

    /// Runs `f` in one transaction and commits it if `f` succeeds.
    pub fn write<T>(&mut self, f: impl FnOnce(&Txn<'_>) -> Result<T>) -> Result<T> {
        let tx = self.begin()?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Writes a journal intent and commits it at once: it must be durable
    /// before the network step it announces.
    pub fn begin_intent(&mut self, intent: &NewIntent) -> Result<IntentId> {
        self.write(|tx| tx.insert_intent(intent))
    }
}

/// The writer lock of the database file at `path`, one per file in this process (keyed by
/// its canonical path, so that two spellings of one file share it). The map holds weak
/// references: a lock lives as long as a connection that uses it.
fn writer_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> = OnceLock::new();
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(Mutex::new(()));
    locks.insert(key, Arc::downgrade(&lock));
    lock
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Inserts a whole message row: the parameters [`write_row`] binds.
const INSERT_ROW: &str = "INSERT INTO messages(folder_id, uid, base, flags, keywords, size, \
     internaldate, internaldate_tz, hash, message_id, partial, listing_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Runs `stmt`, an [`INSERT_ROW`] (or one with its parameters), for `r` in `folder` under
/// `uid` (`None`: unbound), its flags and keywords normalised; returns the row's listing key.
fn write_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    folder: FolderId,
    uid: Option<Uid>,
    r: &MessageRecord,
) -> Result<i64> {
    let flags = normalise_flags(&r.flags)?;
    let keywords = normalise_flags(&r.keywords)?;
    let key = listing_key_of(&r.base, &flags, &keywords, r.size);
    stmt.execute(params![
        folder.0,
        uid.map(Uid::get),
        r.base.as_str(),
        flags.join(" "),
        keywords.join(" "),
        r.size.map(to_i64).transpose()?,
        r.internaldate.map(|d| d.unix),
        r.internaldate.map(|d| d.offset_minutes),
        r.hash.map(|h| h.0.to_vec()),
        r.message_id,
        r.partial,
        key
    ])?;
    Ok(key)
}

/// A change to a folder's listing digest and count (schema v5): the XOR of the listing keys
/// removed and added (removing a key is XORing it again), the change in the number of rows,
/// and whether a key among them was unknown (NULL), which makes the digest unknown.
#[derive(Debug, Default)]
struct ListingDelta {
    xor: i64,
    count: i64,
    unknown: bool,
}

impl ListingDelta {
    fn add(&mut self, key: Option<i64>) {
        match key {
            Some(k) => self.xor ^= k,
            None => self.unknown = true,
        }
    }

    fn remove(&mut self, key: Option<i64>) {
        self.add(key);
    }

    /// A row of key `key` added to the folder.
    fn add_row(&mut self, key: Option<i64>) {
        self.add(key);
        self.count += 1;
    }

    /// A row of key `key` gone from the folder.
    fn drop_row(&mut self, key: Option<i64>) {
        self.remove(key);
        self.count -= 1;
    }

    fn is_empty(&self) -> bool {
        self.xor == 0 && self.count == 0 && !self.unknown
    }
}

impl Txn<'_> {
    /// Commits.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        self.commits.set(self.commits.get().saturating_add(1));
        Ok(())
    }

    /// Runs one statement through the connection's statement cache: most
    /// writes here run once per message or per folder, and re-preparing
    /// costs more than executing.
    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        Ok(self.tx.prepare_cached(sql)?.execute(p)?)
    }

    /// Rolls back explicitly (dropping does the same).
    pub fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback()?)
    }

    // ----- folders -----

    /// Forgets the folder's local stamp: its rows or status change, so the
    /// stamp no longer describes a state the rows agree with (schema v3).
    fn unstamp(&self, folder: FolderId) -> Result<()> {
        self.exec(
            "UPDATE folders SET local_stamp = NULL, stamp_messages = NULL \
             WHERE id = ?1 AND local_stamp IS NOT NULL",
            params![folder.0],
        )?;
        Ok(())
    }

    /// The listing key of the row of `uid`: `None` when there is no such row, `Some(None)`
    /// when the row has no key (schema v4).
    fn row_key(&self, folder: FolderId, uid: Uid) -> Result<Option<Option<i64>>> {
        Ok(self
            .tx
            .prepare_cached("SELECT listing_key FROM messages WHERE folder_id = ?1 AND uid = ?2")?
            .query_row(params![folder.0, uid.get()], |r| r.get(0))
            .optional()?)
    }

    /// The listing keys of the rows of `base` in the folder (bound, or only the unbound one).
    fn base_keys(
        &self,
        folder: FolderId,
        base: &MessageBase,
        unbound: bool,
    ) -> Result<Vec<Option<i64>>> {
        let sql = if unbound {
            "SELECT listing_key FROM messages WHERE folder_id = ?1 AND base = ?2 AND uid IS NULL"
        } else {
            "SELECT listing_key FROM messages WHERE folder_id = ?1 AND base = ?2"
        };
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt.query_map(params![folder.0, base.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Applies a [`ListingDelta`] to the folder's listing digest and count (schema v5: the
    /// row writers keep them, see `schema.rs`). NULL stays NULL, and a NULL key among those
    /// removed or added makes the digest NULL, as the triggers of version 4 did.
    fn shift_listing(&self, folder: FolderId, d: &ListingDelta) -> Result<()> {
        if d.is_empty() {
            return Ok(());
        }
        self.exec(
            "UPDATE folders SET
               listing_digest = CASE WHEN ?4 THEN NULL
                                     ELSE (listing_digest | ?2) - (listing_digest & ?2) END,
               listing_count = listing_count + ?3
             WHERE id = ?1",
            params![folder.0, d.xor, d.count, d.unknown],
        )?;
        Ok(())
    }

    /// Records the folder's local stamp with its current number of message
    /// rows. Records nothing (and returns false) while the folder has
    /// unbound rows: it is still being recovered from a UIDVALIDITY change
    /// and must be looked at. The caller checks that the stamp is settled
    /// ([`DirStamp::is_settled`]) and was read before the scan that the
    /// rows reflect.
    pub fn set_local_stamp(&self, folder: FolderId, stamp: &DirStamp) -> Result<bool> {
        let (bound, unbound) = self.message_counts(folder)?;
        if unbound > 0 {
            self.unstamp(folder)?;
            return Ok(false);
        }
        let n = self.exec(
            "UPDATE folders SET local_stamp = ?2, stamp_messages = ?3 WHERE id = ?1",
            params![folder.0, stamp.encode(), to_i64(bound)?],
        )?;
        Ok(n == 1)
    }

    /// Clears the folder's local stamp (the next run scans it).
    pub fn clear_local_stamp(&self, folder: FolderId) -> Result<()> {
        self.unstamp(folder)
    }

    /// Adds a folder.
    pub fn add_folder(&self, f: &NewFolder) -> Result<FolderId> {
        self.exec(
            // A new folder has no rows: its listing digest is known (empty), schema v4.
            "INSERT INTO folders(wire_name, delimiter, local_path, special_use, subscribed,
                                 listing_digest, listing_count)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
            params![
                f.wire_name,
                f.delimiter.map(String::from),
                f.local_path.as_str(),
                f.special_use,
                f.subscribed
            ],
        )?;
        Ok(FolderId(self.tx.last_insert_rowid()))
    }

    /// Records UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ.
    pub fn set_folder_status(&self, id: FolderId, s: &FolderStatus) -> Result<()> {
        self.unstamp(id)?;
        let modseq = s.highestmodseq.map(to_i64).transpose()?;
        self.exec(
            "UPDATE folders SET uidvalidity = ?2, uidnext = ?3, highestmodseq = ?4 WHERE id = ?1",
            params![
                id.0,
                s.uidvalidity.map(UidValidity::get),
                s.uidnext.map(NonZeroU32::get),
                modseq
            ],
        )?;
        Ok(())
    }

    /// Records READ-ONLY / READ-WRITE (seeds V0038, V0039), subscription
    /// and special use.
    pub fn set_folder_attributes(
        &self,
        id: FolderId,
        read_only: bool,
        subscribed: bool,
        special_use: Option<&str>,
    ) -> Result<()> {
        self.exec(
            "UPDATE folders SET read_only = ?2, subscribed = ?3, special_use = ?4 WHERE id = ?1",
            params![id.0, read_only, subscribed, special_use],
        )?;
        Ok(())
    }

    /// Records the end of a completed sync of the folder.
    pub fn set_last_sync(&self, id: FolderId, unix: i64) -> Result<()> {
        self.exec(
            "UPDATE folders SET last_sync = ?2 WHERE id = ?1",
            params![id.0, unix],
        )?;
        Ok(())
    }

    /// Records a folder rename (new wire name, delimiter and directory).
    pub fn rename_folder(
        &self,
        id: FolderId,
        wire_name: &str,
        delimiter: Option<char>,
        local_path: &RelPath,
    ) -> Result<()> {
        self.unstamp(id)?;
        self.exec(
            "UPDATE folders SET wire_name = ?2, delimiter = ?3, local_path = ?4 WHERE id = ?1",
            params![
                id.0,
                wire_name,
                delimiter.map(String::from),
                local_path.as_str()
            ],
        )?;
        Ok(())
    }

    /// Deletes a folder and its message rows. Fails while changes are
    /// pending for it.
    pub fn delete_folder(&self, id: FolderId) -> Result<()> {
        self.exec("DELETE FROM folders WHERE id = ?1", params![id.0])?;
        Ok(())
    }

    // ----- messages -----

    /// Inserts or replaces message rows, in one statement per row on a
    /// cached prepared statement. A partial (header-only) record never
    /// replaces a full one's base, hash and partial flag (seed V0070); its
    /// flags and other fields are still updated.
    pub fn upsert_messages(&self, folder: FolderId, records: &[MessageRecord]) -> Result<()> {
        if !records.is_empty() {
            self.unstamp(folder)?;
        }
        let mut stmt = self.tx.prepare_cached(&format!(
            "{INSERT_ROW}
             ON CONFLICT(folder_id, uid) DO UPDATE SET
               flags = excluded.flags,
               keywords = excluded.keywords,
               size = excluded.size,
               internaldate = excluded.internaldate,
               internaldate_tz = excluded.internaldate_tz,
               message_id = excluded.message_id,
               base = CASE WHEN excluded.partial AND NOT partial THEN base ELSE excluded.base END,
               hash = CASE WHEN excluded.partial AND NOT partial THEN hash ELSE excluded.hash END,
               partial = CASE WHEN excluded.partial AND NOT partial THEN partial ELSE excluded.partial END,
               listing_key = CASE WHEN excluded.partial AND NOT partial THEN NULL
                                  ELSE excluded.listing_key END"
        ))?;
        let mut old = self.tx.prepare_cached(
            "SELECT listing_key, partial FROM messages WHERE folder_id = ?1 AND uid = ?2",
        )?;
        let mut delta = ListingDelta::default();
        for r in records {
            let before: Option<(Option<i64>, bool)> = old
                .query_row(params![folder.0, r.uid.get()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            // The statement's own rule: a partial record over a full row keeps the row's
            // file and leaves its key unknown.
            let kept_full = before.is_some_and(|(_, partial)| r.partial && !partial);
            match before {
                Some((k, _)) => delta.remove(k),
                None => delta.count += 1,
            }
            let key = write_row(&mut stmt, folder, Some(r.uid), r)?;
            delta.add((!kept_full).then_some(key));
        }
        self.shift_listing(folder, &delta)
    }

    /// Stores each record as the folder's only row of its base and of its UID: any row of the
    /// same base (bound, or unbound by a UIDVALIDITY change, V0003) or of the same UID is
    /// replaced, not merged. What a download, a move or an upload records. Each record costs
    /// two indexed lookups and its insert; the folder's stamp and listing digest are written
    /// once for the whole slice.
    pub fn replace_messages(&self, folder: FolderId, records: &[MessageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.unstamp(folder)?;
        // INDEXED BY: see `message_by_base`.
        let mut by_base = self.tx.prepare_cached(
            "SELECT rowid, listing_key FROM messages INDEXED BY messages_by_base \
             WHERE folder_id = ?1 AND base = ?2",
        )?;
        let mut by_uid = self.tx.prepare_cached(
            "SELECT rowid, listing_key FROM messages WHERE folder_id = ?1 AND uid = ?2",
        )?;
        let mut delete = self
            .tx
            .prepare_cached("DELETE FROM messages WHERE rowid = ?1")?;
        let mut insert = self.tx.prepare_cached(INSERT_ROW)?;
        let mut delta = ListingDelta::default();
        for r in records {
            let row =
                |x: &rusqlite::Row<'_>| Ok((x.get::<_, i64>(0)?, x.get::<_, Option<i64>>(1)?));
            let mut old: Vec<(i64, Option<i64>)> = by_base
                .query_map(params![folder.0, r.base.as_str()], row)?
                .collect::<rusqlite::Result<_>>()?;
            if let Some(o) = by_uid
                .query_row(params![folder.0, r.uid.get()], row)
                .optional()?
            {
                if !old.iter().any(|(id, _)| *id == o.0) {
                    old.push(o);
                }
            }
            for (rowid, key) in old {
                delete.execute(params![rowid])?;
                delta.drop_row(key);
            }
            let key = write_row(&mut insert, folder, Some(r.uid), r)?;
            delta.add_row(Some(key));
        }
        self.shift_listing(folder, &delta)
    }

    /// Updates the last synced flags and keywords of many messages.
    pub fn update_flags(&self, folder: FolderId, updates: &[FlagUpdate]) -> Result<()> {
        if !updates.is_empty() {
            self.unstamp(folder)?;
        }
        let mut get = self.tx.prepare_cached(
            "SELECT base, size, listing_key FROM messages WHERE folder_id = ?1 AND uid = ?2",
        )?;
        let mut stmt = self.tx.prepare_cached(
            "UPDATE messages SET flags = ?3, keywords = ?4, listing_key = ?5 \
             WHERE folder_id = ?1 AND uid = ?2",
        )?;
        let mut delta = ListingDelta::default();
        for u in updates {
            let found: Option<(String, Option<i64>, Option<i64>)> = get
                .query_row(params![folder.0, u.uid.get()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((base, size, old_key)) = found else {
                continue;
            };
            let base = MessageBase::new(&base).map_err(|e| bad("messages.base", e.to_string()))?;
            let size = size.and_then(|s| u64::try_from(s).ok());
            let flags = normalise_flags(&u.flags)?;
            let keywords = normalise_flags(&u.keywords)?;
            let key = listing_key_of(&base, &flags, &keywords, size);
            stmt.execute(params![
                folder.0,
                u.uid.get(),
                flags.join(" "),
                keywords.join(" "),
                key
            ])?;
            delta.remove(old_key);
            delta.add(Some(key));
        }
        self.shift_listing(folder, &delta)
    }

    /// Records that a message's file now has another base (a local rename
    /// that changed more than the flags).
    pub fn set_message_base(&self, folder: FolderId, uid: Uid, base: &MessageBase) -> Result<()> {
        self.unstamp(folder)?;
        let Some(row) = self.message(folder, uid)? else {
            return Ok(());
        };
        let old_key = self.row_key(folder, uid)?.flatten();
        let key = listing_key_of(base, &row.flags, &row.keywords, row.size);
        self.exec(
            "UPDATE messages SET base = ?3, listing_key = ?4 WHERE folder_id = ?1 AND uid = ?2",
            params![folder.0, uid.get(), base.as_str(), key],
        )?;
        let mut delta = ListingDelta::default();
        delta.remove(old_key);
        delta.add(Some(key));
        self.shift_listing(folder, &delta)
    }

    /// Deletes message rows.
    pub fn delete_messages(&self, folder: FolderId, uids: &[Uid]) -> Result<()> {
        if !uids.is_empty() {
            self.unstamp(folder)?;
        }
        let mut stmt = self
            .tx
            .prepare_cached("DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2")?;
        let mut delta = ListingDelta::default();
        for u in uids {
            if let Some(key) = self.row_key(folder, *u)? {
                stmt.execute(params![folder.0, u.get()])?;
                delta.drop_row(key);
            }
        }
        self.shift_listing(folder, &delta)
    }

    /// Deletes every message row of a folder (after a UIDVALIDITY change,
    /// once the engine has read the old rows to re-match by content).
    pub fn clear_messages(&self, folder: FolderId) -> Result<usize> {
        self.unstamp(folder)?;
        let n = self.exec(
            "DELETE FROM messages WHERE folder_id = ?1",
            params![folder.0],
        )?;
        // No rows: the digest of none is known.
        self.exec(
            "UPDATE folders SET listing_digest = 0, listing_count = 0 WHERE id = ?1",
            params![folder.0],
        )?;
        Ok(n)
    }

    /// Unbinds every message row of a folder (its UIDVALIDITY changed, seed
    /// V0003): the UIDs are forgotten, everything else is kept until the
    /// engine re-binds each row by content ([`Txn::delete_unbound`] and a
    /// bound row for the same base, in one transaction) or
    /// forgets it. Returns how many rows were unbound.
    pub fn unbind_messages(&self, folder: FolderId) -> Result<usize> {
        self.unstamp(folder)?;
        self.exec(
            "UPDATE messages SET uid = NULL WHERE folder_id = ?1 AND uid IS NOT NULL",
            params![folder.0],
        )
    }

    /// Stores a message row without a UID (a copy whose new UID is not known
    /// yet, or a row unbound by a UIDVALIDITY change), replacing any row of
    /// the same base. `record.uid` is ignored.
    pub fn insert_unbound(&self, folder: FolderId, record: &MessageRecord) -> Result<()> {
        self.unstamp(folder)?;
        let mut delta = ListingDelta::default();
        for k in self.base_keys(folder, &record.base, false)? {
            delta.drop_row(k);
        }
        self.exec(
            "DELETE FROM messages WHERE folder_id = ?1 AND base = ?2",
            params![folder.0, record.base.as_str()],
        )?;
        let key = write_row(
            &mut self.tx.prepare_cached(INSERT_ROW)?,
            folder,
            None,
            record,
        )?;
        delta.add_row(Some(key));
        self.shift_listing(folder, &delta)
    }

    /// Recomputes the listing key of every row of a folder and its listing digest (schema
    /// v4), after the engine compared the folder's files with its rows one by one: from then
    /// on the digest alone says whether a listing matches. Does not touch the local stamp.
    pub fn rebuild_listing_keys(&self, folder: FolderId) -> Result<()> {
        let mut rows: Vec<(i64, i64)> = Vec::new();
        {
            let mut stmt = self.tx.prepare_cached(
                "SELECT rowid, base, flags, keywords, size FROM messages WHERE folder_id = ?1",
            )?;
            let mut it = stmt.query(params![folder.0])?;
            while let Some(r) = it.next()? {
                let base: String = r.get(1)?;
                let base =
                    MessageBase::new(&base).map_err(|e| bad("messages.base", e.to_string()))?;
                let flags: String = r.get(2)?;
                let keywords: String = r.get(3)?;
                let size: Option<i64> = r.get(4)?;
                let key = listing_key_of(
                    &base,
                    &split_list(&flags),
                    &split_list(&keywords),
                    size.and_then(|s| u64::try_from(s).ok()),
                );
                rows.push((r.get(0)?, key));
            }
        }
        let mut set = self
            .tx
            .prepare_cached("UPDATE messages SET listing_key = ?2 WHERE rowid = ?1")?;
        for (rowid, key) in &rows {
            set.execute(params![rowid, key])?;
        }
        let digest = fold_listing_keys(rows.iter().map(|(_, k)| *k));
        self.exec(
            "UPDATE folders SET listing_digest = ?2, listing_count = ?3 WHERE id = ?1",
            params![folder.0, digest, to_i64(rows.len() as u64)?],
        )?;
        Ok(())
    }

    /// Deletes the unbound row of a local file (the message is gone on both
    /// sides). Returns whether there was one.
    pub fn delete_unbound(&self, folder: FolderId, base: &MessageBase) -> Result<bool> {
        self.unstamp(folder)?;
        let mut delta = ListingDelta::default();
        for k in self.base_keys(folder, base, true)? {
            delta.drop_row(k);
        }
        let n = self.exec(
            "DELETE FROM messages WHERE folder_id = ?1 AND base = ?2 AND uid IS NULL",
            params![folder.0, base.as_str()],
        )?;
        self.shift_listing(folder, &delta)?;
        Ok(n > 0)
    }

    /// Moves a message row to another folder and UID (a move mapped with
    /// COPYUID, seed V0057), keeping everything else.
    pub fn move_message(
        &self,
        from: FolderId,
        uid: Uid,
        to: FolderId,
        new_uid: Uid,
    ) -> Result<bool> {
        self.unstamp(from)?;
        self.unstamp(to)?;
        let key = self.row_key(from, uid)?;
        let n = self.exec(
            "UPDATE messages SET folder_id = ?3, uid = ?4 WHERE folder_id = ?1 AND uid = ?2",
            params![from.0, uid.get(), to.0, new_uid.get()],
        )?;
        if let (Some(key), 1) = (key, n) {
            let mut out = ListingDelta::default();
            out.drop_row(key);
            self.shift_listing(from, &out)?;
            let mut into = ListingDelta::default();
            into.add_row(key);
            self.shift_listing(to, &into)?;
        }
        Ok(n == 1)
    }

    // ----- journal -----

    /// Writes an intent inside this transaction (see also
    /// [`StateDb::begin_intent`], which commits at once).
    pub fn insert_intent(&self, i: &NewIntent) -> Result<IntentId> {
        self.exec(
            "INSERT INTO intents(kind, folder_id, target_folder_id, uid, base, hash, detail, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i.kind.as_str(),
                i.folder.map(|f| f.0),
                i.target_folder.map(|f| f.0),
                i.uid.map(Uid::get),
                i.base.as_ref().map(MessageBase::as_str),
                i.hash.map(|h| h.0.to_vec()),
                i.detail,
                now_unix()
            ],
        )?;
        intent_id_of_row(self.tx.last_insert_rowid())
    }

    /// Removes an intent: its outcome is recorded in this same transaction.
    pub fn resolve_intent(&self, id: IntentId) -> Result<()> {
        self.exec(
            "DELETE FROM intents WHERE id = ?1",
            params![intent_row_id(id)?],
        )?;
        Ok(())
    }

    // ----- pending changes -----

    /// Queues a change. A change of the same kind to the same message
    /// replaces the earlier one's detail and reason, keeping its age and
    /// attempt count.
    pub fn queue_pending(&self, p: &NewPending) -> Result<PendingId> {
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO pending(folder_id, kind, target, uid, base, detail, reason, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(folder_id, kind, target) DO UPDATE SET
               detail = excluded.detail, reason = excluded.reason,
               uid = excluded.uid, base = excluded.base
             RETURNING id",
            )?
            .query_row(
                params![
                    p.folder.0,
                    p.kind.as_str(),
                    p.target(),
                    p.uid.map(Uid::get),
                    p.base.as_ref().map(MessageBase::as_str),
                    p.detail,
                    p.reason,
                    now_unix()
                ],
                |r| r.get(0),
            )?;
        Ok(PendingId(id))
    }

    /// Records a failed attempt to apply a pending change.
    pub fn note_pending_attempt(&self, id: PendingId, reason: &str) -> Result<()> {
        self.exec(
            "UPDATE pending SET attempts = attempts + 1, last_attempt = ?2, reason = ?3 WHERE id = ?1",
            params![id.0, now_unix(), reason],
        )?;
        Ok(())
    }

    /// Removes a pending change (applied, or dropped by the user).
    pub fn remove_pending(&self, id: PendingId) -> Result<()> {
        self.exec("DELETE FROM pending WHERE id = ?1", params![id.0])?;
        Ok(())
    }
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::BadStoredValue {
        column: "integer",
        detail: format!("{v} does not fit a signed 64-bit column"),
    })
}

mod private {
    /// Seals [`super::StateRead`]: only this crate's types implement it.
    pub trait Sealed {
        fn conn(&self) -> &rusqlite::Connection;
    }
}

impl private::Sealed for StateDb {
    fn conn(&self) -> &Connection {
        &self.conn
    }
}

impl private::Sealed for Txn<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }
}

const FOLDER_COLS: &str = "id, wire_name, delimiter, local_path, uidvalidity, uidnext, highestmodseq, special_use, subscribed, read_only, last_sync";
const MESSAGE_COLS: &str =
    "uid, base, flags, keywords, size, internaldate, internaldate_tz, hash, message_id, partial";

fn bad(column: &'static str, detail: impl Into<String>) -> Error {
    Error::BadStoredValue {
        column,
        detail: detail.into(),
    }
}

fn folder_from_row(r: &Row<'_>) -> Result<FolderRecord> {
    let delim: Option<String> = r.get(2)?;
    let path: String = r.get(3)?;
    let nz = |v: Option<u32>, col| match v {
        None => Ok(None),
        Some(v) => NonZeroU32::new(v).map(Some).ok_or_else(|| bad(col, "zero")),
    };
    let modseq: Option<i64> = r.get(6)?;
    Ok(FolderRecord {
        id: FolderId(r.get(0)?),
        wire_name: r.get(1)?,
        delimiter: delim.and_then(|d| d.chars().next()),
        local_path: RelPath::parse(&path).map_err(|e| bad("folders.local_path", e.to_string()))?,
        uidvalidity: nz(r.get(4)?, "folders.uidvalidity")?.map(UidValidity),
        uidnext: nz(r.get(5)?, "folders.uidnext")?,
        highestmodseq: modseq
            .map(|m| u64::try_from(m).map_err(|_| bad("folders.highestmodseq", "negative")))
            .transpose()?,
        special_use: r.get(7)?,
        subscribed: r.get(8)?,
        read_only: r.get(9)?,
        last_sync: r.get(10)?,
    })
}

fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

fn message_from_row(r: &Row<'_>) -> Result<MessageRecord> {
    message_at(r, 0)
}

/// Reads the message columns ([`MESSAGE_COLS`]) starting at column `o`.
fn message_at(r: &Row<'_>, o: usize) -> Result<MessageRecord> {
    let uid: u32 = r.get(o)?;
    let base: String = r.get(o + 1)?;
    let flags: String = r.get(o + 2)?;
    let keywords: String = r.get(o + 3)?;
    let size: Option<i64> = r.get(o + 4)?;
    let date: Option<i64> = r.get(o + 5)?;
    let tz: Option<i16> = r.get(o + 6)?;
    let hash: Option<Vec<u8>> = r.get(o + 7)?;
    Ok(MessageRecord {
        uid: Uid::new(uid).ok_or_else(|| bad("messages.uid", "zero"))?,
        base: MessageBase::new(&base).map_err(|e| bad("messages.base", e.to_string()))?,
        flags: split_list(&flags),
        keywords: split_list(&keywords),
        size: size
            .map(|s| u64::try_from(s).map_err(|_| bad("messages.size", "negative")))
            .transpose()?,
        internaldate: date.map(|unix| InternalDate {
            unix,
            offset_minutes: tz.unwrap_or(0),
        }),
        hash: hash
            .map(|h| {
                <[u8; 32]>::try_from(h.as_slice())
                    .map(ContentHash)
                    .map_err(|_| bad("messages.hash", "not 32 bytes"))
            })
            .transpose()?,
        message_id: r.get(o + 8)?,
        partial: r.get(o + 9)?,
    })
}

/// The intent id of an `intents.id` column value. SQLite assigns an `INTEGER PRIMARY KEY`
/// only positive values, so a negative one is a damaged database, reported rather than wrapped.
fn intent_id_of_row(id: i64) -> Result<IntentId> {
    u64::try_from(id)
        .map(IntentId)
        .map_err(|_| bad("intents.id", format!("negative row id {id}")))
}

/// The `intents.id` column value of an intent id; an id beyond `i64` names no row.
fn intent_row_id(id: IntentId) -> Result<i64> {
    i64::try_from(id.0).map_err(|_| Error::IntentOutOfRange { id: id.0 })
}

fn intent_from_row(r: &Row<'_>) -> Result<Intent> {
    let kind: String = r.get(1)?;
    let uid: Option<u32> = r.get(4)?;
    let base: Option<String> = r.get(5)?;
    let hash: Option<Vec<u8>> = r.get(6)?;
    Ok(Intent {
        id: intent_id_of_row(r.get(0)?)?,
        intent: NewIntent {
            kind: IntentKind::parse(&kind).ok_or_else(|| bad("intents.kind", kind.clone()))?,
            folder: r.get::<_, Option<i64>>(2)?.map(FolderId),
            target_folder: r.get::<_, Option<i64>>(3)?.map(FolderId),
            uid: uid.and_then(Uid::new),
            base: base
                .map(|b| MessageBase::new(&b).map_err(|e| bad("intents.base", e.to_string())))
                .transpose()?,
            hash: hash.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok().map(ContentHash)),
            detail: r.get(7)?,
        },
        created: r.get(8)?,
    })
}

fn pending_from_row(r: &Row<'_>) -> Result<PendingChange> {
    let kind: String = r.get(2)?;
    let uid: Option<u32> = r.get(3)?;
    let base: Option<String> = r.get(4)?;
    Ok(PendingChange {
        id: PendingId(r.get(0)?),
        change: NewPending {
            folder: FolderId(r.get(1)?),
            kind: PendingKind::parse(&kind).ok_or_else(|| bad("pending.kind", kind.clone()))?,
            uid: uid.and_then(Uid::new),
            base: base
                .map(|b| MessageBase::new(&b).map_err(|e| bad("pending.base", e.to_string())))
                .transpose()?,
            detail: r.get(5)?,
            reason: r.get(6)?,
        },
        attempts: r.get(7)?,
        created: r.get(8)?,
        last_attempt: r.get(9)?,
    })
}

fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// Queries shared by [`StateDb`] and [`Txn`] (sealed).
pub trait StateRead: private::Sealed {
    /// Every folder.
    fn folders(&self) -> Result<Vec<FolderRecord>> {
        collect(
            self.conn(),
            &format!("SELECT {FOLDER_COLS} FROM folders ORDER BY id"),
            [],
            folder_from_row,
        )
    }

    /// One folder by id.
    fn folder(&self, id: FolderId) -> Result<Option<FolderRecord>> {
        Ok(collect(
            self.conn(),
            &format!("SELECT {FOLDER_COLS} FROM folders WHERE id = ?1"),
            params![id.0],
            folder_from_row,
        )?
        .pop())
    }

    /// One folder by its wire name.
    fn folder_by_wire_name(&self, wire_name: &str) -> Result<Option<FolderRecord>> {
        Ok(collect(
            self.conn(),
            &format!("SELECT {FOLDER_COLS} FROM folders WHERE wire_name = ?1"),
            params![wire_name],
            folder_from_row,
        )?
        .pop())
    }

    /// One folder by its directory.
    fn folder_by_path(&self, path: &RelPath) -> Result<Option<FolderRecord>> {
        Ok(collect(
            self.conn(),
            &format!("SELECT {FOLDER_COLS} FROM folders WHERE local_path = ?1"),
            params![path.as_str()],
            folder_from_row,
        )?
        .pop())
    }

    /// All message rows of a folder, by UID (one query).
    fn messages(&self, folder: FolderId) -> Result<Vec<MessageRecord>> {
        collect(
            self.conn(),
            &format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE folder_id = ?1 AND uid IS NOT NULL \
                 ORDER BY uid"
            ),
            params![folder.0],
            message_from_row,
        )
    }

    /// The folder's unbound rows (uid NULL: after a UIDVALIDITY change, seed
    /// V0003), by base. Their `uid` field is a placeholder and means nothing.
    fn unbound_messages(&self, folder: FolderId) -> Result<Vec<MessageRecord>> {
        collect(
            self.conn(),
            "SELECT 1, base, flags, keywords, size, internaldate, internaldate_tz, hash, \
             message_id, partial FROM messages WHERE folder_id = ?1 AND uid IS NULL \
             ORDER BY base",
            params![folder.0],
            message_from_row,
        )
    }

    /// One message row.
    fn message(&self, folder: FolderId, uid: Uid) -> Result<Option<MessageRecord>> {
        Ok(collect(
            self.conn(),
            &format!("SELECT {MESSAGE_COLS} FROM messages WHERE folder_id = ?1 AND uid = ?2"),
            params![folder.0, uid.get()],
            message_from_row,
        )?
        .pop())
    }

    /// The message row bound to a local file.
    fn message_by_base(
        &self,
        folder: FolderId,
        base: &MessageBase,
    ) -> Result<Option<MessageRecord>> {
        Ok(collect(
            self.conn(),
            &format!(
                // INDEXED BY: without it SQLite takes the (folder_id, uid) unique index for
                // the `uid IS NOT NULL` range and scans the whole folder per lookup, which
                // made an initial sync quadratic in the folder size (4 ms per lookup at
                // 50,000 messages, against 7.5 µs through this index).
                "SELECT {MESSAGE_COLS} FROM messages INDEXED BY messages_by_base \
                 WHERE folder_id = ?1 AND base = ?2 AND uid IS NOT NULL"
            ),
            params![folder.0, base.as_str()],
            message_from_row,
        )?
        .pop())
    }

    /// Every message with this content hash, in any folder (move detection,
    /// UIDVALIDITY re-matching, APPEND recovery).
    fn messages_by_hash(&self, hash: &ContentHash) -> Result<Vec<(FolderId, MessageRecord)>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            // INDEXED BY: fails loudly rather than scanning if the expression ever stops
            // matching the index's (schema v6).
            "SELECT folder_id, {MESSAGE_COLS} FROM messages INDEXED BY messages_by_hash_prefix \
             WHERE substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1 AND uid IS NOT NULL \
             ORDER BY folder_id, uid"
        ))?;
        let mut rows = stmt.query(params![hash.0.to_vec()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let folder = FolderId(r.get(0)?);
            out.push((folder, message_at(r, 1)?));
        }
        Ok(out)
    }

    /// The recorded local stamps (schema v3), by folder: one query over the
    /// folder rows. A stamp that does not parse is left out (its folder is
    /// scanned).
    fn local_stamps(&self) -> Result<HashMap<FolderId, LocalStamp>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, local_stamp, stamp_messages FROM folders \
             WHERE local_stamp IS NOT NULL AND stamp_messages IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = HashMap::new();
        while let Some(r) = rows.next()? {
            let text: String = r.get(1)?;
            let n: i64 = r.get(2)?;
            if let (Some(stamp), Ok(messages)) = (DirStamp::decode(&text), u64::try_from(n)) {
                out.insert(FolderId(r.get(0)?), LocalStamp { stamp, messages });
            }
        }
        Ok(out)
    }

    /// The folder's listing digest and row count (schema v4): the XOR of its rows' listing
    /// keys, `None` while unknown (an upgraded database, a row written without a key).
    fn listing_digest(&self, folder: FolderId) -> Result<Option<(i64, u64)>> {
        let found: Option<(Option<i64>, Option<i64>)> = self
            .conn()
            .prepare_cached("SELECT listing_digest, listing_count FROM folders WHERE id = ?1")?
            .query_row(params![folder.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match found {
            Some((Some(d), Some(n))) => u64::try_from(n).ok().map(|n| (d, n)),
            _ => None,
        })
    }

    /// The bound rows of these UIDs, by UID: one indexed lookup per UID, so a delta costs
    /// what it names, not what the folder holds. UIDs without a row are left out.
    fn messages_by_uids(&self, folder: FolderId, uids: &[Uid]) -> Result<Vec<MessageRecord>> {
        // Up to CHUNK UIDs per statement: each statement outside a transaction takes and
        // releases the database's read lock (system calls), so one per UID would cost more
        // than the lookups themselves. Full chunks share one cached statement.
        const CHUNK: usize = 128;
        let mut out = Vec::new();
        let mut sorted: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        for chunk in sorted.chunks(CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut stmt = self.conn().prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE folder_id = ? AND uid IN ({marks}) \
                 ORDER BY uid"
            ))?;
            let values = std::iter::once(folder.0).chain(chunk.iter().map(|&u| i64::from(u)));
            let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
            while let Some(r) = rows.next()? {
                out.push(message_from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Calls `f` with the UID, synced flags and keywords (as stored: space-separated) of
    /// every bound row of the folder in UID order, one row at a time, so a complete server
    /// listing can be merged against the state without holding the folder's rows.
    fn for_each_message_flags(
        &self,
        folder: FolderId,
        f: &mut dyn FnMut(Uid, &str, &str),
    ) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT uid, flags, keywords FROM messages WHERE folder_id = ?1 AND uid IS NOT NULL \
             ORDER BY uid",
        )?;
        let mut rows = stmt.query(params![folder.0])?;
        while let Some(r) = rows.next()? {
            let uid: u32 = r.get(0)?;
            let uid = Uid::new(uid).ok_or_else(|| bad("messages.uid", "zero"))?;
            let flags: String = r.get(1)?;
            let keywords: String = r.get(2)?;
            f(uid, &flags, &keywords);
        }
        Ok(())
    }

    /// The bound rows whose UID lies in one of the inclusive ranges (a VANISHED answer),
    /// by UID, through the `(folder_id, uid)` index.
    fn messages_in_uid_ranges(
        &self,
        folder: FolderId,
        ranges: &[(u32, u32)],
    ) -> Result<Vec<MessageRecord>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE folder_id = ?1 AND uid BETWEEN ?2 AND ?3 \
             ORDER BY uid"
        ))?;
        let mut out = Vec::new();
        for &(a, b) in ranges {
            let (a, b) = (a.min(b), a.max(b));
            let mut rows = stmt.query(params![folder.0, a, b])?;
            while let Some(r) = rows.next()? {
                out.push(message_from_row(r)?);
            }
        }
        out.sort_by_key(|r| r.uid);
        out.dedup_by_key(|r| r.uid);
        Ok(out)
    }

    /// How many message rows the folder has: (bound to a UID, unbound).
    fn message_counts(&self, folder: FolderId) -> Result<(u64, u64)> {
        let (bound, all): (i64, i64) = self
            .conn()
            .prepare_cached("SELECT count(uid), count(*) FROM messages WHERE folder_id = ?1")?
            .query_row(params![folder.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let bound = u64::try_from(bound).unwrap_or(0);
        let all = u64::try_from(all).unwrap_or(0);
        Ok((bound, all.saturating_sub(bound)))
    }

    /// The folders that have pending changes (one query).
    fn folders_with_pending(&self) -> Result<HashSet<FolderId>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT DISTINCT folder_id FROM pending")?;
        let mut rows = stmt.query([])?;
        let mut out = HashSet::new();
        while let Some(r) = rows.next()? {
            out.insert(FolderId(r.get(0)?));
        }
        Ok(out)
    }

    /// Open journal intents, oldest first: operations whose outcome must be
    /// checked before anything else after a crash.
    fn open_intents(&self) -> Result<Vec<Intent>> {
        collect(
            self.conn(),
            "SELECT id, kind, folder_id, target_folder_id, uid, base, hash, detail, created
             FROM intents ORDER BY id",
            [],
            intent_from_row,
        )
    }

    /// Pending changes, of one folder or of all.
    fn pending(&self, folder: Option<FolderId>) -> Result<Vec<PendingChange>> {
        collect(
            self.conn(),
            "SELECT id, folder_id, kind, uid, base, detail, reason, attempts, created, last_attempt
             FROM pending WHERE ?1 IS NULL OR folder_id = ?1 ORDER BY id",
            params![folder.map(|f| f.0)],
            pending_from_row,
        )
    }
}

impl StateRead for StateDb {}
impl StateRead for Txn<'_> {}

impl AliasRegistry for StateDb {
    fn component_of(&self, parent: &str, dir: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT component FROM aliases WHERE parent = ?1 AND dir = ?2")?
            .query_row(params![parent, dir], |r| r.get(0))
            .optional()?)
    }

    fn alias_of(&self, parent: &str, component: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT dir FROM aliases WHERE parent = ?1 AND component = ?2")?
            .query_row(params![parent, component], |r| r.get(0))
            .optional()?)
    }

    fn record_alias(&mut self, parent: &str, dir: &str, component: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO aliases(parent, dir, component) VALUES (?1, ?2, ?3)
                 ON CONFLICT(parent, dir) DO UPDATE SET component = excluded.component",
            )?
            .execute(params![parent, dir, component])?;
        self.count_commit();
        Ok(())
    }

    fn rename_alias_prefix(&mut self, from: &str, to: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT parent, dir FROM aliases")?;
            let it = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            it.collect::<rusqlite::Result<_>>()?
        };
        for (parent, dir) in rows {
            if let Some(new_parent) = rebase_parent(&parent, from, to) {
                // `to` did not exist before the rename, so entries already
                // under it are stale leftovers of an earlier folder.
                tx.prepare_cached("DELETE FROM aliases WHERE parent = ?1 AND dir = ?2")?
                    .execute(params![new_parent, dir])?;
                tx.prepare_cached("UPDATE aliases SET parent = ?3 WHERE parent = ?1 AND dir = ?2")?
                    .execute(params![parent, dir, new_parent])?;
            }
        }
        tx.commit()?;
        self.count_commit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection, created or opened, in either fsync mode, keeps the 1 MiB page cache
    /// `configure` sets (SQLite's own default is 2 MiB): one connection per server
    /// connection each filled its cache in a large mirror.
    #[test]
    fn every_connection_keeps_a_one_mebibyte_page_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sqlite");
        let cache = |db: &StateDb| -> i64 {
            db.conn
                .pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        let db = StateDb::create(&path).unwrap();
        assert_eq!(cache(&db), -1024);
        db.set_fsync(false).unwrap();
        assert_eq!(cache(&db), -1024);
        let second = StateDb::open_with(&path, IntegrityCheck::Cheap).unwrap();
        assert_eq!(cache(&second), -1024);
    }

    #[test]
    fn intent_ids_cross_the_row_id_checked() {
        assert_eq!(intent_id_of_row(1).unwrap(), IntentId(1));
        assert_eq!(
            intent_id_of_row(i64::MAX).unwrap(),
            IntentId(i64::MAX.unsigned_abs())
        );
        assert!(matches!(
            intent_id_of_row(-1),
            Err(Error::BadStoredValue {
                column: "intents.id",
                ..
            })
        ));
        assert_eq!(intent_row_id(IntentId(7)).unwrap(), 7);
        assert!(matches!(
            intent_row_id(IntentId(u64::MAX)),
            Err(Error::IntentOutOfRange { id: u64::MAX })
        ));
    }
}
