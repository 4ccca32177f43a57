//! Streaming writer for a new message file.
//!
//! The body arrives from the server in chunks with CRLF line ends. Each
//! chunk is converted to LF and fed to the canonical digest in the same pass
//! ([`WireToFile`]; pairs split across chunks are handled), so the hash and
//! the CRLF size are known at the end without reading the bytes again. The
//! order of the commit is what makes it crash-safe: write the file, set mtime
//! to INTERNALDATE (seed V0006), fsync it, give it its name
//! `cur/X,S=…,W=…:2,<flags>` without replacing anything, fsync `cur/`.
//!
//! Where the kernel and the file system allow (Linux's `O_TMPFILE`: ext4, XFS,
//! Btrfs, tmpfs), the file is written without a name, opened in `tmp/`'s file
//! system, and its name in `cur/` is its first: one `linkat(2)`, which never
//! replaces. A crash before leaves nothing at all, and a message costs one
//! directory operation instead of three (the kernel's share of an initial sync
//! was mostly directory operations, and the cross-directory rename takes the
//! file system's rename lock, which parallel connections contended for).
//! Elsewhere the file is `tmp/X`, renamed into place without replacing
//! anything (`renameat2(RENAME_NOREPLACE)`; where the file system lacks it, a
//! link then the unlink of `tmp/X`). A crash before the rename leaves only a
//! file in `tmp/`, which no Maildir reader shows and
//! [`crate::Folder::clean_tmp`] removes later; with the link, a crash between
//! link and unlink leaves the same file under both names, and removing the
//! `tmp/` name later only drops a second name of a file kept in `cur/`.
//!
//! [`MessageWriter::commit_to_deferred`] leaves out the last step, the fsync
//! of the directory, and hands the directory back instead (its held handle,
//! [`UnsyncedDir`], so the fsync reaches the directory the file was linked
//! into whatever its path names by then): a caller that
//! writes many messages before it records any of them (the sync engine's
//! download batch) fsyncs each directory once with
//! [`MessageWriter::sync_directory`] before it records the batch, which
//! makes every entry of the batch durable at the same point a per-message
//! fsync would have, for one directory fsync per batch instead of one per
//! message. The file's own fsync stays per message and
//! before it is put in place, so a durable entry never names a file whose data is not.
//!
//! A server declares a message's size before sending it (RFC822.SIZE, the literal's
//! length), and a hostile one may then send far more. [`MessageWriter::limit`] caps the
//! wire bytes a writer accepts: the chunk that would pass the cap is refused before any of
//! it is written, so a 60 MiB body announced as 109 bytes never fills `tmp/`.
//!
//! Every step names the folder's held `tmp/`, `cur/` and `new/` handles
//! ([`crate::dirfd`]), never a path: a directory swapped for a link after
//! the folder was opened is not followed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use filetime::FileTime;

use crate::crlf::{ContentHash, WireToFile};
use crate::dirfd::{self, FolderDirs};
use crate::error::{Error, Result};
use crate::flags::MaildirFlags;
use crate::message::{MessageBase, MessageEntry, NewMessage, Subdir};

/// A message being written; see the module docs. Dropping it without
/// [`MessageWriter::commit`] removes the temporary file.
#[derive(Debug)]
pub struct MessageWriter {
    folder_dir: PathBuf,
    /// The folder's held directories; every file operation goes through them.
    dirs: Arc<FolderDirs>,
    prefix: String,
    tmp_path: PathBuf,
    file: Option<BufWriter<File>>,
    /// `None` once finished (the digest is taken out with it).
    conv: Option<WireToFile>,
    scratch: Vec<u8>,
    opts: NewMessage,
    fsync: bool,
    /// Where [`MessageWriter::commit_to`] puts the file.
    target: Subdir,
    /// Most wire bytes accepted ([`MessageWriter::limit`]).
    limit: Option<u64>,
    /// Wire bytes accepted so far.
    received: u64,
    /// The file has no name in `tmp/` (`O_TMPFILE`, see the module docs): nothing to remove
    /// when it is dropped, and it is put in place by a link instead of a rename.
    anonymous: bool,
}

/// A folder's `cur/` or `new/` that [`MessageWriter::commit_to_deferred`] linked a file
/// into and did not fsync, held open ([`crate::dirfd`]). Compared, ordered and hashed by its
/// path, so a caller can collect a batch's directories in a set.
#[derive(Debug, Clone)]
pub struct UnsyncedDir {
    path: PathBuf,
    dirs: Arc<FolderDirs>,
    sub: Subdir,
}

impl UnsyncedDir {
    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl PartialEq for UnsyncedDir {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for UnsyncedDir {}

impl PartialOrd for UnsyncedDir {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UnsyncedDir {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.path.cmp(&other.path)
    }
}

impl std::hash::Hash for UnsyncedDir {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path.hash(state);
    }
}

/// A committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenMessage {
    /// The file as it now lies in `cur/`.
    pub entry: MessageEntry,
    /// SHA-256 of the canonical CRLF form.
    pub hash: ContentHash,
    /// Size of the canonical CRLF form (compare with RFC822.SIZE, seed V0007).
    pub crlf_size: u64,
}

impl MessageWriter {
    pub(crate) fn create(
        folder_dir: PathBuf,
        dirs: Arc<FolderDirs>,
        prefix: String,
        opts: NewMessage,
        fsync: bool,
    ) -> Result<Self> {
        Self::create_in(folder_dir, dirs, prefix, opts, fsync, true)
    }

    /// As [`MessageWriter::create`]; with `unnamed` false the file is always named in `tmp/`,
    /// as on a file system without unnamed files.
    fn create_in(
        folder_dir: PathBuf,
        dirs: Arc<FolderDirs>,
        prefix: String,
        opts: NewMessage,
        fsync: bool,
        unnamed: bool,
    ) -> Result<Self> {
        let tmp_dir = folder_dir.join("tmp");
        let anonymous_file = if unnamed {
            dirfd::create_anonymous_in(dirs.tmp())
                .map_err(|e| Error::io("create message", &tmp_dir, e))?
        } else {
            None
        };
        // An unnamed file has no path of its own until it is placed: messages name the
        // directory whose file system holds it.
        let (file, anonymous, tmp_path) = match anonymous_file {
            Some(file) => (file, true, tmp_dir),
            None => {
                let tmp_path = tmp_dir.join(&prefix);
                let file = dirfd::create_file_at(dirs.tmp(), &prefix)
                    .map_err(|e| Error::io("create message", &tmp_path, e))?;
                (file, false, tmp_path)
            }
        };
        Ok(MessageWriter {
            folder_dir,
            dirs,
            prefix,
            tmp_path,
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            conv: Some(WireToFile::new()),
            scratch: Vec::new(),
            opts,
            fsync,
            target: Subdir::Cur,
            limit: None,
            received: 0,
            anonymous,
        })
    }

    /// Removes the file's name in `tmp/`, if it has one (best effort: a leftover is invisible
    /// and [`crate::Folder::clean_tmp`] removes it later).
    fn remove_tmp(&self) {
        if !self.anonymous {
            let _ = dirfd::unlink_at(self.dirs.tmp(), &self.prefix);
        }
    }

    /// Where the file being written is, as error messages name it: its name in `tmp/`, or
    /// `tmp/` itself for an unnamed file.
    pub fn tmp_path(&self) -> &std::path::Path {
        &self.tmp_path
    }

    /// Accepts at most `max` wire bytes from now on: the size the server announced, plus
    /// whatever margin the caller allows. A chunk that would pass it is refused whole with
    /// [`Error::TooLarge`], and the writer should then be dropped or aborted.
    pub fn limit(&mut self, max: u64) {
        self.limit = Some(max);
    }

    /// Appends a chunk of the message in wire (CRLF) form.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let total = self.received.saturating_add(chunk.len() as u64);
        if let Some(limit) = self.limit.filter(|&l| total > l) {
            return Err(Error::TooLarge {
                path: self.tmp_path.clone(),
                limit,
            });
        }
        self.received = total;
        self.scratch.clear();
        let Some(conv) = self.conv.as_mut() else {
            return Err(self.finished("write message"));
        };
        conv.push(chunk, &mut self.scratch);
        self.emit()
    }

    fn finished(&self, what: &'static str) -> Error {
        Error::io(
            what,
            &self.tmp_path,
            io::Error::other("writer already finished"),
        )
    }

    /// Converts what the converter still holds (a final `CR`) and returns
    /// the hash, canonical CRLF size and file size.
    fn finish_conv(&mut self) -> Result<(ContentHash, u64, u64)> {
        let Some(conv) = self.conv.take() else {
            return Err(self.finished("commit message"));
        };
        self.scratch.clear();
        let digest = conv.finish(&mut self.scratch);
        self.emit()?;
        Ok(digest)
    }

    fn emit(&mut self) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(Error::io(
                "write message",
                &self.tmp_path,
                io::Error::other("writer already finished"),
            ));
        };
        file.write_all(&self.scratch)
            .map_err(|e| Error::io("write message", &self.tmp_path, e))?;
        Ok(())
    }

    /// Finishes the file and makes it visible in `cur/` (see the module
    /// docs for the order of steps).
    pub fn commit(self) -> Result<WrittenMessage> {
        self.commit_to(Subdir::Cur)
    }

    /// Finishes the file and makes it visible in `subdir`: `cur/` with the
    /// `:2,<flags>` suffix, or `new/` with no suffix at all (the Maildir
    /// specification: a message in `new/` has not been seen by a mail reader
    /// and carries no info; the sync engine delivers there a message with no
    /// flags, as a local delivery agent would). The flags given at creation
    /// are ignored for `new/`.
    pub fn commit_to(self, subdir: Subdir) -> Result<WrittenMessage> {
        self.commit_inner(subdir, false).map(|(m, _)| m)
    }

    /// As [`MessageWriter::commit_to`], but without the final fsync of the
    /// directory the file was linked into: returns that directory when fsync
    /// is enabled for this Maildir (`None` when it is not, since there is then
    /// nothing to do). The entry is visible at once but not yet durable; the
    /// caller must pass the directory to [`MessageWriter::sync_directory`]
    /// before it records the message anywhere durable (module docs). The
    /// file's data is fsynced before it is put in place, as in every commit.
    pub fn commit_to_deferred(
        self,
        subdir: Subdir,
    ) -> Result<(WrittenMessage, Option<UnsyncedDir>)> {
        self.commit_inner(subdir, true)
    }

    /// Fsyncs a directory returned by [`MessageWriter::commit_to_deferred`]
    /// through its held handle, making the entries committed into it durable.
    /// One call covers every entry added to the directory before it.
    pub fn sync_directory(dir: &UnsyncedDir) -> Result<()> {
        dirfd::sync_dir_fd(true, dir.dirs.sub(dir.sub), &dir.path)
    }

    fn commit_inner(
        mut self,
        subdir: Subdir,
        defer_dir_sync: bool,
    ) -> Result<(WrittenMessage, Option<UnsyncedDir>)> {
        self.target = subdir;
        let digest = self.finish_conv()?;
        let Some(buffered) = self.file.take() else {
            return Err(self.finished("commit message"));
        };
        let result = self.finish_file_at(buffered, digest, None, defer_dir_sync);
        if result.is_err() {
            self.remove_tmp();
        }
        result
    }

    /// Finishes the file and puts it in place of `old`, a partial copy of the same message
    /// (seeds V0010, V0070): a partial copy never coexists with the full one, and a full one is
    /// never replaced by a partial one (the caller only replaces partial copies).
    ///
    /// Two renames, each atomic: `tmp/X` onto `old`'s own path (so at every instant exactly
    /// one file holds the message, under `old`'s name), then that file to a fresh base whose
    /// `S=`/`W=` fields describe the full body, keeping `old`'s subdirectory and flags. A crash
    /// between the two leaves the full body under the old name, which the next sync takes for
    /// the copy it is (its row is matched by content); `old` missing is an error, since the
    /// message was deleted locally meanwhile and must not come back.
    pub fn commit_replacing(mut self, old: &MessageEntry) -> Result<WrittenMessage> {
        let present = old_name(old)
            .is_some_and(|n| matches!(dirfd::file_at(self.dirs.sub(old.subdir), n), Ok(Some(_))));
        if !present {
            let _ = self.abort_inner();
            return Err(Error::NotFound {
                path: old.path.clone(),
            });
        }
        self.target = old.subdir;
        self.opts.flags = old.flags.clone();
        let digest = self.finish_conv()?;
        let Some(buffered) = self.file.take() else {
            return Err(self.finished("commit message"));
        };
        let result = self.finish_file_at(buffered, digest, Some(old), false);
        if result.is_err() {
            self.remove_tmp();
        }
        result.map(|(m, _)| m)
    }

    fn abort_inner(&mut self) -> Result<()> {
        self.file = None;
        if self.anonymous {
            return Ok(());
        }
        match dirfd::unlink_at(self.dirs.tmp(), &self.prefix) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove temporary message", &self.tmp_path, e)),
        }
    }

    fn finish_file_at(
        &mut self,
        buffered: BufWriter<File>,
        digest: (ContentHash, u64, u64),
        replacing: Option<&MessageEntry>,
        defer_dir_sync: bool,
    ) -> Result<(WrittenMessage, Option<UnsyncedDir>)> {
        let (file, mtime) = self.close_file(buffered)?;
        self.place_file(file, mtime, digest, replacing, defer_dir_sync, false)
    }

    /// Flushes the buffered writer and sets the file's mtime to INTERNALDATE (seed V0006).
    fn close_file(&self, buffered: BufWriter<File>) -> Result<(File, SystemTime)> {
        let file = buffered
            .into_inner()
            .map_err(|e| Error::io("write message", &self.tmp_path, e.into_error()))?;
        let mtime = match self.opts.internaldate {
            Some(secs) => {
                let ft = FileTime::from_unix_time(secs, 0);
                filetime::set_file_handle_times(&file, None, Some(ft))
                    .map_err(|e| Error::io("set mtime", &self.tmp_path, e))?;
                system_time(secs)
            }
            None => SystemTime::now(),
        };
        Ok((file, mtime))
    }

    /// Fsyncs the file (when enabled), then puts it in place: see the module docs.
    fn place_file(
        &mut self,
        file: File,
        mtime: SystemTime,
        (hash, crlf_size, lf_size): (ContentHash, u64, u64),
        replacing: Option<&MessageEntry>,
        defer_dir_sync: bool,
        file_synced: bool,
    ) -> Result<(WrittenMessage, Option<UnsyncedDir>)> {
        if self.fsync && !file_synced {
            file.sync_all()
                .map_err(|e| Error::io("fsync message", &self.tmp_path, e))?;
        }
        let base = MessageBase::new(&format!("{},S={lf_size},W={crlf_size}", self.prefix))?;
        let (dir, name, flags) = match self.target {
            Subdir::New => (
                self.folder_dir.join("new"),
                base.as_str().to_owned(),
                MaildirFlags::empty(),
            ),
            Subdir::Cur => (
                self.folder_dir.join("cur"),
                base.file_name(&self.opts.flags),
                self.opts.flags.clone(),
            ),
        };
        let target = dir.join(&name);
        let target_fd = self.dirs.sub(self.target);
        match replacing {
            None => self.link_into_place(&file, &name, &target)?,
            Some(old) => {
                if self.anonymous {
                    // The partial copy is replaced by a rename, which needs a name.
                    dirfd::link_anonymous_at(&file, self.dirs.tmp(), &self.prefix)
                        .map_err(|e| Error::io("name message", &self.tmp_path, e))?;
                    self.anonymous = false;
                }
                let old_fd = self.dirs.sub(old.subdir);
                let Some(old_file) = old_name(old) else {
                    return Err(Error::NotFound {
                        path: old.path.clone(),
                    });
                };
                // rename(2) would replace a file of the same name: never clobber. (The rare
                // replacing path keeps the check; the second rename cannot be a link, since
                // the partial copy's name must not outlive it.)
                if dirfd::exists_at(target_fd, &name) {
                    return Err(Error::AlreadyExists { path: target });
                }
                // Onto the partial copy first (atomic replace), then to the new name.
                dirfd::rename_at(self.dirs.tmp(), &self.prefix, old_fd, old_file)
                    .map_err(|e| Error::io("replace partial message", &self.tmp_path, e))?;
                let old_dir = self.folder_dir.join(old.subdir.as_str());
                dirfd::sync_dir_fd(self.fsync, old_fd, &old_dir)?;
                dirfd::rename_at(old_fd, old_file, target_fd, &name)
                    .map_err(|e| Error::io("rename message into place", &old.path, e))?;
            }
        }
        drop(file);
        let unsynced = if !self.fsync {
            None
        } else if defer_dir_sync {
            Some(UnsyncedDir {
                path: dir,
                dirs: Arc::clone(&self.dirs),
                sub: self.target,
            })
        } else {
            dirfd::sync_dir_fd(true, target_fd, &dir)?;
            None
        };
        let written = WrittenMessage {
            entry: MessageEntry {
                base,
                flags,
                subdir: self.target,
                path: target,
                size: lf_size,
                mtime,
            },
            hash,
            crlf_size,
        };
        Ok((written, unsynced))
    }

    /// Puts the file at `target`, never replacing a file already there. An unnamed file
    /// (`O_TMPFILE`) is linked there: one `linkat(2)`, which fails with `EEXIST` instead of
    /// replacing. A named one, `tmp/X`, is moved:
    ///
    /// One `renameat2(RENAME_NOREPLACE)` where the file system has it: atomic, no clobber,
    /// and one call where a link and an unlink took two (and two link-count updates of the
    /// inode: bench/compare's syscall count of an initial sync had them for every message).
    /// Elsewhere `link(2)`, which fails with `EEXIST` instead of clobbering, then the unlink
    /// of the `tmp/` name; a file system without hard links either (FAT, some network and
    /// FUSE mounts) gets a check, then the rename. The base is unique anyway (time, pid,
    /// counter, a per-process random value and the host), so a clash means a broken clock
    /// or a foreign writer imitating our names.
    fn link_into_place(&self, file: &File, name: &str, target: &std::path::Path) -> Result<()> {
        let (tmp, dest) = (self.dirs.tmp(), self.dirs.sub(self.target));
        let exists = || Error::AlreadyExists {
            path: target.to_path_buf(),
        };
        if self.anonymous {
            return match dirfd::link_anonymous_at(file, dest, name) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
                Err(e) => Err(Error::io("link message into place", target, e)),
            };
        }
        match dirfd::atomic_rename_noreplace_at(tmp, &self.prefix, dest, name) {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
            Some(Err(e)) => return Err(Error::io("rename message into place", &self.tmp_path, e)),
            None => {}
        }
        match dirfd::link_at(tmp, &self.prefix, dest, name) {
            Ok(()) => {
                // The message is in place; a leftover `tmp/` name would only be a second
                // name of the same file, which `clean_tmp` drops.
                dirfd::unlink_at(tmp, &self.prefix)
                    .map_err(|e| Error::io("remove temporary message", &self.tmp_path, e))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
            Err(_) => {
                if dirfd::exists_at(dest, name) {
                    return Err(exists());
                }
                dirfd::rename_at(tmp, &self.prefix, dest, name)
                    .map_err(|e| Error::io("rename message into place", &self.tmp_path, e))
            }
        }
    }

    /// Finishes the file in `tmp/` (converted, flushed, its time set) without its fsync or its
    /// move into `subdir`: [`UnplacedMessage::place_deferred`] does both. A caller writing
    /// many messages finishes them all before placing any, so that each fsync finds the
    /// others' data already written: on a journaled file system (ext4's default
    /// `data=ordered`, say) the first fsync's commit carries the data of every file written
    /// before it, and the next fsyncs have little left to do, instead of one commit per
    /// message when each file is synced as soon as it is written.
    pub fn finish(mut self, subdir: Subdir) -> Result<UnplacedMessage> {
        self.target = subdir;
        let digest = self.finish_conv()?;
        let Some(buffered) = self.file.take() else {
            return Err(self.finished("finish message"));
        };
        // Waiting to be placed, the message keeps its open file and nothing else.
        self.scratch = Vec::new();
        match self.close_file(buffered) {
            Ok((file, mtime)) => Ok(UnplacedMessage {
                writer: self,
                file: Some(file),
                mtime,
                digest,
                synced: false,
            }),
            Err(e) => {
                self.remove_tmp();
                Err(e)
            }
        }
    }

    /// Abandons the message and removes the temporary file.
    pub fn abort(mut self) -> Result<()> {
        self.abort_inner()
    }

    /// The unique part of the base (the final base adds `,S=` and `,W=`).
    pub fn base_prefix(&self) -> &str {
        &self.prefix
    }
}

impl Write for MessageWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.remove_tmp();
        }
    }
}

/// A message complete in `tmp/`, not yet in place ([`MessageWriter::finish`]). Dropped
/// without being placed, its temporary file is removed.
#[derive(Debug)]
pub struct UnplacedMessage {
    writer: MessageWriter,
    /// `None` once placed.
    file: Option<File>,
    mtime: SystemTime,
    digest: (ContentHash, u64, u64),
    /// The file was fsynced already ([`sync_unplaced`]).
    synced: bool,
}

/// Threads that fsync one batch's files at once ([`sync_unplaced`]).
const SYNC_THREADS: usize = 8;

/// Fsyncs the files of finished messages (with fsync on; nothing otherwise) on a few threads
/// at once, before they are placed: each file's own fsync would otherwise wait for a journal
/// commit of its own (its blocks are allocated when it is written back, which is the fsync),
/// while fsyncs issued together join one commit. Returns each message's result in order; a
/// message whose fsync failed must not be placed (dropped, its temporary file goes).
/// [`UnplacedMessage::place_deferred`] then skips the fsync it would otherwise do, so the
/// order stays file durable, then renamed into place, then the directory synced.
pub fn sync_unplaced(messages: &mut [&mut UnplacedMessage]) -> Vec<Result<()>> {
    let wanted = messages.iter().any(|m| m.needs_sync());
    if !wanted {
        return messages.iter().map(|_| Ok(())).collect();
    }
    if messages.len() == 1 {
        return vec![messages[0].sync_file()];
    }
    let per_thread = messages.len().div_ceil(SYNC_THREADS);
    // For a worker that panics (it cannot: `sync_file` returns its errors), each of its
    // messages fails rather than being placed unsynced.
    let paths: Vec<PathBuf> = messages.iter().map(|m| m.writer.tmp_path.clone()).collect();
    let sync_all = |chunk: &mut [&mut UnplacedMessage]| -> Vec<Result<()>> {
        chunk.iter_mut().map(|m| m.sync_file()).collect()
    };
    /// Where a chunk's fsyncs ran.
    enum Worker<'s> {
        Thread(std::thread::ScopedJoinHandle<'s, Vec<Result<()>>>),
        Here(Vec<Result<()>>),
    }
    let results: Vec<Option<Vec<Result<()>>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = messages
            .chunks_mut(per_thread)
            .map(|chunk| {
                // The chunk goes to its thread by a channel, so that it stays here when no
                // thread can be started (a process limit): it is then fsynced on this one.
                let (tx, rx) = std::sync::mpsc::channel::<&mut [&mut UnplacedMessage]>();
                let started = std::thread::Builder::new()
                    .spawn_scoped(scope, move || rx.recv().map(sync_all).unwrap_or_default());
                match started {
                    Ok(handle) => match tx.send(chunk) {
                        Ok(()) => Worker::Thread(handle),
                        Err(back) => Worker::Here(sync_all(back.0)),
                    },
                    Err(_) => Worker::Here(sync_all(chunk)),
                }
            })
            .collect();
        workers
            .into_iter()
            .map(|w| match w {
                Worker::Here(done) => Some(done),
                Worker::Thread(handle) => handle.join().ok(),
            })
            .collect()
    });
    results
        .into_iter()
        .zip(paths.chunks(per_thread))
        .flat_map(|(done, chunk)| match done {
            Some(r) => r,
            None => chunk
                .iter()
                .map(|p| {
                    Err(Error::io(
                        "fsync message",
                        p,
                        io::Error::other("the syncing thread stopped unexpectedly"),
                    ))
                })
                .collect(),
        })
        .collect()
}

impl UnplacedMessage {
    /// Whether [`sync_unplaced`] has work to do for this message (fsync on, not synced yet).
    pub fn needs_sync(&self) -> bool {
        self.writer.fsync && !self.synced && self.file.is_some()
    }

    /// Fsyncs the file now (with fsync on), so that placing it does not.
    fn sync_file(&mut self) -> Result<()> {
        if !self.writer.fsync || self.synced {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Err(self.writer.finished("fsync message"));
        };
        file.sync_all()
            .map_err(|e| Error::io("fsync message", &self.writer.tmp_path, e))?;
        self.synced = true;
        Ok(())
    }

    /// Fsyncs the file (when enabled) and puts it in place, as
    /// [`MessageWriter::commit_to_deferred`] does: the directory's fsync is left to
    /// [`MessageWriter::sync_directory`], with the directory returned.
    pub fn place_deferred(mut self) -> Result<(WrittenMessage, Option<UnsyncedDir>)> {
        let Some(file) = self.file.take() else {
            return Err(self.writer.finished("place message"));
        };
        let result = self
            .writer
            .place_file(file, self.mtime, self.digest, None, true, self.synced);
        if result.is_err() {
            self.writer.remove_tmp();
        }
        result
    }

    /// Where the file is, as error messages name it ([`MessageWriter::tmp_path`]).
    pub fn tmp_path(&self) -> &Path {
        &self.writer.tmp_path
    }
}

impl Drop for UnplacedMessage {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.writer.remove_tmp();
        }
    }
}

/// The file name of a scanned message's path.
fn old_name(old: &MessageEntry) -> Option<&str> {
    old.path.file_name().and_then(|n| n.to_str())
}

fn system_time(secs: i64) -> SystemTime {
    let d = std::time::Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The held directories of a folder whose `cur/ new/ tmp/` are directly in `dir`.
    fn held(dir: &Path) -> Arc<FolderDirs> {
        let parent = dir.parent().unwrap();
        let root = dirfd::open_root(parent).unwrap();
        let level = dir.file_name().unwrap().to_str().unwrap();
        Arc::new(FolderDirs::open(std::os::fd::AsFd::as_fd(&root), parent, [level]).unwrap())
    }

    fn writer(dir: &std::path::Path) -> MessageWriter {
        let opts = NewMessage {
            flags: MaildirFlags::empty(),
            internaldate: Some(1_700_000_000),
        };
        // The same unique part twice: what a broken clock could produce.
        MessageWriter::create(
            dir.to_path_buf(),
            held(dir),
            "1700000000.M1P1Q1.host".into(),
            opts,
            false,
        )
        .unwrap()
    }

    fn folder_dirs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "cur", "new"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir
    }

    fn writer_with(dir: &std::path::Path, prefix: &str, fsync: bool) -> MessageWriter {
        writer_in(dir, prefix, fsync, true)
    }

    /// A writer whose file is unnamed (`O_TMPFILE`) when `unnamed` and the file system allows,
    /// else named in `tmp/`.
    fn writer_in(dir: &std::path::Path, prefix: &str, fsync: bool, unnamed: bool) -> MessageWriter {
        let opts = NewMessage {
            flags: MaildirFlags::empty(),
            internaldate: Some(1_700_000_000),
        };
        MessageWriter::create_in(
            dir.to_path_buf(),
            held(dir),
            prefix.into(),
            opts,
            fsync,
            unnamed,
        )
        .unwrap()
    }

    /// The contents of an unplaced message's file, named or not.
    fn unplaced_contents(u: &UnplacedMessage) -> Vec<u8> {
        use std::io::{Read, Seek};
        let mut f = fs::File::open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(u.file.as_ref().unwrap())
        ))
        .unwrap();
        f.seek(io::SeekFrom::Start(0)).unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn an_error_names_a_path_that_exists_named_file_or_not() {
        for unnamed in [true, false] {
            let dir = folder_dirs();
            let mut wr = writer_in(dir.path(), "1700000000.M5P1Q1.host", false, unnamed);
            wr.limit(4);
            let err = wr.write_chunk(b"too long").unwrap_err();
            let Error::TooLarge { path, .. } = &err else {
                panic!("{err:?}")
            };
            // The unnamed file has no name: the error names tmp/, where it is.
            let want = if unnamed {
                dir.path().join("tmp")
            } else {
                dir.path().join("tmp/1700000000.M5P1Q1.host")
            };
            assert_eq!(*path, want);
            assert!(path.exists(), "{err}");
        }
    }

    #[test]
    fn a_finished_message_stays_out_of_sight_until_placed_and_goes_if_dropped() {
        for unnamed in [true, false] {
            let dir = folder_dirs();
            let count = |sub: &str| fs::read_dir(dir.path().join(sub)).unwrap().count();
            let mut wr = writer_in(dir.path(), "1700000000.M3P1Q1.host", true, unnamed);
            // Unnamed where the file system allows (this one does): no name in tmp/ at all.
            let in_tmp = usize::from(!wr.anonymous);
            assert_eq!(wr.anonymous, unnamed);
            wr.write_chunk(b"Subject: x\r\n\r\nbody\r\n").unwrap();
            let u = wr.finish(Subdir::New).unwrap();
            // Complete, nowhere a reader looks.
            assert_eq!(unplaced_contents(&u), b"Subject: x\n\nbody\n");
            assert_eq!((count("tmp"), count("new"), count("cur")), (in_tmp, 0, 0));
            let (m, unsynced) = u.place_deferred().unwrap();
            assert_eq!(fs::read(&m.entry.path).unwrap(), b"Subject: x\n\nbody\n");
            assert_eq!((count("tmp"), count("new")), (0, 1));
            assert_eq!(unsynced.unwrap().path(), dir.path().join("new"));

            let mut wr = writer_in(dir.path(), "1700000000.M4P1Q1.host", true, unnamed);
            wr.write_chunk(b"Subject: y\r\n\r\nbody\r\n").unwrap();
            let u = wr.finish(Subdir::Cur).unwrap();
            assert_eq!(count("tmp"), in_tmp);
            drop(u);
            assert_eq!((count("tmp"), count("cur"), count("new")), (0, 0, 1));
        }
    }

    #[test]
    fn a_batch_synced_together_is_placed_in_order_each_file_whole() {
        for unnamed in [true, false] {
            batch_case(unnamed);
        }
    }

    fn batch_case(unnamed: bool) {
        let dir = folder_dirs();
        let mut batch: Vec<UnplacedMessage> = (0..20)
            .map(|i| {
                let prefix = format!("1700000000.M{i}P9Q1.host");
                let mut wr = writer_in(dir.path(), &prefix, true, unnamed);
                wr.write_chunk(format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes())
                    .unwrap();
                wr.finish(Subdir::Cur).unwrap()
            })
            .collect();
        let results = sync_unplaced(&mut batch.iter_mut().collect::<Vec<_>>());
        assert_eq!(results.len(), 20);
        assert!(results.iter().all(Result::is_ok));
        assert!(batch.iter().all(|u| u.synced));
        // Out of sight until placed (named in tmp/ only without unnamed files); placed,
        // each is its own message.
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            if unnamed { 0 } else { 20 }
        );
        assert_eq!(fs::read_dir(dir.path().join("cur")).unwrap().count(), 0);
        for (i, u) in batch.into_iter().enumerate() {
            let (m, _) = u.place_deferred().unwrap();
            assert_eq!(
                fs::read(&m.entry.path).unwrap(),
                format!("Subject: {i}\n\nbody\n").as_bytes()
            );
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // Without fsync nothing is synced, and nothing fails.
        let mut wr = writer_with(dir.path(), "1700000001.M1P9Q1.host", false);
        wr.write_chunk(b"x\r\n").unwrap();
        let mut u = wr.finish(Subdir::Cur).unwrap();
        assert!(sync_unplaced(&mut [&mut u])[0].is_ok());
        assert!(!u.synced);
    }

    #[test]
    fn a_placed_message_never_replaces_a_file_of_the_same_name() {
        let dir = folder_dirs();
        let mut first = writer(dir.path());
        first.write_chunk(b"one\r\n").unwrap();
        let (m, _) = first.commit_to_deferred(Subdir::New).unwrap();
        let mut second = writer(dir.path());
        second.write_chunk(b"one\r\n").unwrap();
        let u = second.finish(Subdir::New).unwrap();
        assert!(u.place_deferred().is_err());
        assert_eq!(fs::read(&m.entry.path).unwrap(), b"one\n");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn deferred_commit_is_visible_and_reports_its_directory() {
        let dir = folder_dirs();
        let mut wr = writer_with(dir.path(), "1700000000.M2P1Q1.host", true);
        wr.write_chunk(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let (m, unsynced) = wr.commit_to_deferred(Subdir::Cur).unwrap();
        // Visible under its final name before any directory fsync, and gone from tmp/.
        assert_eq!(fs::read(&m.entry.path).unwrap(), b"Subject: x\n\nbody\n");
        assert_eq!(
            m.entry.path.parent(),
            Some(dir.path().join("cur").as_path())
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let unsynced = unsynced.unwrap();
        assert_eq!(unsynced.path(), dir.path().join("cur"));
        MessageWriter::sync_directory(&unsynced).unwrap();

        // `new/` is reported as such.
        let mut wr = writer_with(dir.path(), "1700000000.M3P1Q1.host", true);
        wr.write_chunk(b"Subject: y\r\n\r\n").unwrap();
        let (m, unsynced) = wr.commit_to_deferred(Subdir::New).unwrap();
        assert!(m.entry.path.is_file());
        assert_eq!(
            unsynced.as_ref().map(UnsyncedDir::path),
            Some(dir.path().join("new").as_path())
        );
    }

    #[test]
    fn deferred_commit_without_fsync_has_nothing_to_sync() {
        let dir = folder_dirs();
        let mut wr = writer_with(dir.path(), "1700000000.M4P1Q1.host", false);
        wr.write_chunk(b"Subject: z\r\n\r\n").unwrap();
        let (m, unsynced) = wr.commit_to_deferred(Subdir::Cur).unwrap();
        assert!(m.entry.path.is_file());
        assert!(unsynced.is_none());
        assert_eq!(m.crlf_size, 14);
    }

    #[test]
    fn sync_directory_reaches_the_held_directory_whatever_its_path_names_now() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("f");
        for sub in ["tmp", "cur", "new"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut wr = writer_with(&dir, "1700000000.M5P1Q1.host", true);
        wr.write_chunk(b"Subject: w\r\n\r\n").unwrap();
        let (_, unsynced) = wr.commit_to_deferred(Subdir::Cur).unwrap();
        // The folder moves away and a link to a directory elsewhere takes its name: the
        // fsync goes to the directory the file was linked into, not through the link
        // (by path it would have synced `elsewhere/cur`).
        fs::rename(&dir, base.path().join("moved")).unwrap();
        let elsewhere = base.path().join("elsewhere");
        fs::create_dir_all(elsewhere.join("cur")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        MessageWriter::sync_directory(&unsynced.unwrap()).unwrap();
        // Gone altogether: still the held directory, no error.
        fs::remove_file(&dir).unwrap();
        let mut wr = writer_with(&base.path().join("moved"), "1700000000.M6P1Q1.host", true);
        wr.write_chunk(b"Subject: v\r\n\r\n").unwrap();
        let (_, unsynced) = wr.commit_to_deferred(Subdir::New).unwrap();
        fs::rename(base.path().join("moved"), base.path().join("again")).unwrap();
        MessageWriter::sync_directory(&unsynced.unwrap()).unwrap();
    }

    #[test]
    fn commit_never_replaces_a_file_of_the_same_name() {
        let dir = folder_dirs();
        let mut first = writer(dir.path());
        first.write_chunk(b"Subject: one\r\n\r\nbody\r\n").unwrap();
        let kept = first.commit().unwrap();
        assert!(!kept.entry.path.starts_with(dir.path().join("tmp")));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let mut second = writer(dir.path());
        second.write_chunk(b"Subject: two\r\n\r\nbody\r\n").unwrap();
        match second.commit() {
            Err(Error::AlreadyExists { path }) => assert_eq!(path, kept.entry.path),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fs::read(&kept.entry.path).unwrap(),
            b"Subject: one\n\nbody\n"
        );
        // The refused copy left nothing behind.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(kept.crlf_size, 22);
        assert_eq!(
            kept.hash,
            crate::crlf::hash_of_wire(b"Subject: one\r\n\r\nbody\r\n")
        );
    }

    #[test]
    fn a_limited_writer_refuses_the_chunk_that_passes_the_limit_unwritten() {
        let dir = folder_dirs();
        let mut w = writer(dir.path());
        w.limit(10);
        w.write_chunk(b"0123456789").unwrap();
        match w.write_chunk(&[b'z'; 1 << 20]) {
            Err(Error::TooLarge { limit: 10, .. }) => {}
            other => panic!("{other:?}"),
        }
        w.file.as_mut().unwrap().flush().unwrap();
        let file = w.file.as_ref().unwrap().get_ref();
        assert_eq!(file.metadata().unwrap().len(), 10);
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // Exactly at the limit is accepted.
        let mut w = writer(dir.path());
        w.limit(4);
        w.write_chunk(b"ab").unwrap();
        w.write_chunk(b"cd").unwrap();
        assert!(w.write_chunk(b"e").is_err());
    }
}
