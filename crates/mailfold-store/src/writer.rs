//! Streaming writer for a new message file.
//!
//! The body arrives from the server in chunks with CRLF line ends. Each
//! chunk is converted to LF on the fly (pairs split across chunks are
//! handled) and fed to the canonical digest, so the hash and the CRLF size
//! are known at the end without a second pass. The order of the commit is
//! what makes it crash-safe: write `tmp/X`, set mtime to INTERNALDATE (seed
//! V0006), fsync the file, rename to `cur/X,S=…,W=…:2,<flags>`, fsync `cur/`.
//! A crash before the rename leaves only a file in `tmp/`, which no Maildir
//! reader shows and [`crate::Folder::clean_tmp`] removes later.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use filetime::FileTime;

use crate::crlf::{CanonicalDigest, ContentHash, CrlfToLf};
use crate::error::{Error, Result};
use crate::flags::MaildirFlags;
use crate::maildir::{sync_dir, MessageBase, MessageEntry, NewMessage, Subdir};

/// A message being written; see the module docs. Dropping it without
/// [`MessageWriter::commit`] removes the temporary file.
#[derive(Debug)]
pub struct MessageWriter {
    folder_dir: PathBuf,
    prefix: String,
    tmp_path: PathBuf,
    file: Option<BufWriter<File>>,
    conv: CrlfToLf,
    digest: CanonicalDigest,
    scratch: Vec<u8>,
    opts: NewMessage,
    fsync: bool,
    /// Where [`MessageWriter::commit_to`] puts the file.
    target: Subdir,
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
        prefix: String,
        opts: NewMessage,
        fsync: bool,
    ) -> Result<Self> {
        let tmp_path = folder_dir.join("tmp").join(&prefix);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| Error::io("create message", &tmp_path, e))?;
        Ok(MessageWriter {
            folder_dir,
            prefix,
            tmp_path,
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            conv: CrlfToLf::new(),
            digest: CanonicalDigest::new(),
            scratch: Vec::new(),
            opts,
            fsync,
            target: Subdir::Cur,
        })
    }

    /// The temporary file being written.
    pub fn tmp_path(&self) -> &std::path::Path {
        &self.tmp_path
    }

    /// Appends a chunk of the message in wire (CRLF) form.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        self.scratch.clear();
        self.conv.push(chunk, &mut self.scratch);
        self.emit()
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
        self.digest.update_lf(&self.scratch);
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
    pub fn commit_to(mut self, subdir: Subdir) -> Result<WrittenMessage> {
        self.target = subdir;
        self.scratch.clear();
        self.conv.finish(&mut self.scratch);
        self.emit()?;
        let Some(buffered) = self.file.take() else {
            return Err(Error::io(
                "commit message",
                &self.tmp_path,
                io::Error::other("writer already finished"),
            ));
        };
        let result = self.finish_file(buffered);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp_path);
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
        if !fs::symlink_metadata(&old.path).is_ok_and(|m| m.is_file()) {
            let _ = self.abort_inner();
            return Err(Error::NotFound {
                path: old.path.clone(),
            });
        }
        self.target = old.subdir;
        self.opts.flags = old.flags.clone();
        self.scratch.clear();
        self.conv.finish(&mut self.scratch);
        self.emit()?;
        let Some(buffered) = self.file.take() else {
            return Err(Error::io(
                "commit message",
                &self.tmp_path,
                io::Error::other("writer already finished"),
            ));
        };
        let result = self.finish_file_at(buffered, Some(&old.path));
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp_path);
        }
        result
    }

    fn abort_inner(&mut self) -> Result<()> {
        self.file = None;
        match fs::remove_file(&self.tmp_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove temporary message", &self.tmp_path, e)),
        }
    }

    fn finish_file(&mut self, buffered: BufWriter<File>) -> Result<WrittenMessage> {
        self.finish_file_at(buffered, None)
    }

    fn finish_file_at(
        &mut self,
        buffered: BufWriter<File>,
        replacing: Option<&std::path::Path>,
    ) -> Result<WrittenMessage> {
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
        if self.fsync {
            file.sync_all()
                .map_err(|e| Error::io("fsync message", &self.tmp_path, e))?;
        }
        drop(file);
        let (hash, crlf_size, lf_size) = std::mem::take(&mut self.digest).finish();
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
        let target = dir.join(name);
        // rename(2) would replace a file of the same name: never clobber (the base is unique
        // per process and time, so this only guards against a broken clock).
        if fs::symlink_metadata(&target).is_ok() {
            return Err(Error::AlreadyExists { path: target });
        }
        match replacing {
            None => {
                fs::rename(&self.tmp_path, &target)
                    .map_err(|e| Error::io("rename message into place", &self.tmp_path, e))?;
            }
            Some(old) => {
                // Onto the partial copy first (atomic replace), then to the new name.
                fs::rename(&self.tmp_path, old)
                    .map_err(|e| Error::io("replace partial message", &self.tmp_path, e))?;
                if let Some(old_dir) = old.parent() {
                    sync_dir(self.fsync, old_dir)?;
                }
                fs::rename(old, &target)
                    .map_err(|e| Error::io("rename message into place", old, e))?;
            }
        }
        sync_dir(self.fsync, &dir)?;
        Ok(WrittenMessage {
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
        })
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
            // Best effort: a leftover is invisible and cleaned by clean_tmp.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
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
