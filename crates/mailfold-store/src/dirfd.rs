//! Folder directories held open, so that a local process racing the sync cannot swap a
//! checked directory for a symbolic link.
//!
//! A check by path (`lstat` each level, then use the path) leaves a window: between the
//! check and the use, another process can rename the directory away and put a link to
//! anywhere in its place, and every later `open`, `link` or `rename` by path would follow
//! it. So a [`Folder`](crate::Folder) opens its directory once (at its first message file
//! operation, so that a long list of folders holds no descriptors), one level at a time from
//! the root's handle with `O_NOFOLLOW | O_DIRECTORY` (a link at any level is refused, not
//! followed), then its `cur/`, `new/` and `tmp/` the same way, and does every message file
//! operation relative to those handles (`openat`, `linkat`, `renameat`, `unlinkat`,
//! `fstatat` without following links). A directory swapped after that is simply not the
//! one the handles name: writes land in the directory that was checked, wherever it has
//! been moved to, and never behind a link.
//!
//! Folder operations ([`crate::Maildir`]'s create, rename, delete and listing) work the same
//! way: each level is opened (or created with `mkdirat`) relative to the level above it, from
//! the root's handle, and renamed or removed relative to its parent's handle, so a level
//! swapped for a link in the middle of one is refused, never followed.
//!
//! The root itself is resolved when the store is opened and held from then on.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::message::Subdir;

/// A message file found in a directory handle: its name and, when the directory entry
/// says, whether it is a regular file.
pub(crate) type DirEntryName = (String, Option<bool>);

/// An entry of a directory: its name (the raw bytes when not UTF-8) and whether it is a
/// directory (not a link to one).
pub(crate) type DirEntryKind = (Result<String, OsString>, bool);

/// What `fstatat` says of a regular file: its size and modification time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
}

/// The open `cur/`, `new/` and `tmp/` of one folder (module docs).
#[derive(Debug)]
pub(crate) struct FolderDirs {
    cur: OwnedFd,
    new: OwnedFd,
    tmp: OwnedFd,
}

impl FolderDirs {
    /// Opens the folder whose directory is `levels` below the root handle (a
    /// [`RelPath`](crate::name::RelPath)'s levels), refusing a symbolic link or a
    /// non-directory at any level. `root_path` is the root's path, for errors.
    pub(crate) fn open<'a>(
        root: BorrowedFd<'_>,
        root_path: &Path,
        levels: impl IntoIterator<Item = &'a str>,
    ) -> Result<FolderDirs> {
        let mut shown = root_path.to_path_buf();
        let dir = open_levels_shown(root, &mut shown, levels)?;
        FolderDirs::open_in(dir.as_fd(), &shown)
    }

    /// Opens the `cur/`, `new/` and `tmp/` of the held folder directory `dir` (at `shown`).
    pub(crate) fn open_in(dir: BorrowedFd<'_>, shown: &Path) -> Result<FolderDirs> {
        let sub = |name: &str| open_dir_at(dir, name, &shown.join(name));
        Ok(FolderDirs {
            cur: sub("cur")?,
            new: sub("new")?,
            tmp: sub("tmp")?,
        })
    }

    /// `cur/` or `new/`.
    pub(crate) fn sub(&self, s: Subdir) -> BorrowedFd<'_> {
        match s {
            Subdir::Cur => self.cur.as_fd(),
            Subdir::New => self.new.as_fd(),
        }
    }

    /// `tmp/`.
    pub(crate) fn tmp(&self) -> BorrowedFd<'_> {
        self.tmp.as_fd()
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// Opens the root of the store (resolved already) as a directory handle.
pub(crate) fn open_root(root: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open root", root, errno(e)))
}

/// Opens the directory `levels` below `root` (the root itself for no level), one level at a
/// time without following a link: a symbolic link or a non-directory at any level is refused
/// ([`Error::UnsafePath`]), a missing level is [`Error::NotFound`]; errors name the level.
/// `root_path` is the root's path, for errors. Only the handle of the level being opened
/// and its parent are open at any time, whatever the depth.
pub(crate) fn open_levels<'a>(
    root: BorrowedFd<'_>,
    root_path: &Path,
    levels: impl IntoIterator<Item = &'a str>,
) -> Result<OwnedFd> {
    open_levels_shown(root, &mut root_path.to_path_buf(), levels)
}

/// [`open_levels`], leaving in `shown` the path of the directory opened.
fn open_levels_shown<'a>(
    root: BorrowedFd<'_>,
    shown: &mut PathBuf,
    levels: impl IntoIterator<Item = &'a str>,
) -> Result<OwnedFd> {
    let mut dir: Option<OwnedFd> = None;
    for d in levels {
        shown.push(d);
        let parent = dir.as_ref().map_or(root, AsFd::as_fd);
        dir = Some(open_dir_at(parent, d, shown)?);
    }
    match dir {
        Some(d) => Ok(d),
        // No level: the root itself (INBOX in the `maildir++` layout).
        None => open_dir_at(root, ".", shown),
    }
}

/// Opens the directory `name` in `parent`, first creating it (mode 0777 less the umask) when
/// nothing has that name; never follows a link, so an existing link or non-directory is
/// refused as in [`open_dir_at`]. Also says whether this call created it. `shown` is the
/// directory's path, for errors.
pub(crate) fn make_dir_at(
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
) -> Result<(OwnedFd, bool)> {
    let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
        Ok(()) => true,
        // There already (perhaps made by someone else meanwhile): checked by the open.
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(Error::io("create directory", shown, errno(e))),
    };
    Ok((open_dir_at(parent, name, shown)?, created))
}

/// Removes the empty directory `name` from `parent` (`rmdir(2)` relative to a handle: a
/// symbolic link of that name is not removed, the call fails with `ENOTDIR`).
pub(crate) fn remove_dir_at(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(errno)
}

/// What `name` in `dir` is, without following a link: `None` when nothing has that name,
/// else whether it is a directory.
pub(crate) fn is_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<bool>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(
            FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        )),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// Whether `name` in `dir` is a plain directory (not a link to one).
pub(crate) fn plain_dir_at(dir: BorrowedFd<'_>, name: &str) -> bool {
    matches!(is_dir_at(dir, name), Ok(Some(true)))
}

/// Calls `each` with every entry of the held directory `dir` but `.` and `..`, in directory
/// order, until it returns `Ok(false)`; an entry gone while the directory is read is left
/// out. The one `readdir` loop of the store.
fn each_entry(
    dir: BorrowedFd<'_>,
    each: impl FnMut(&rustix::fs::DirEntry) -> io::Result<bool>,
) -> io::Result<()> {
    // A second handle on the directory (`openat(".")`): the caller's handle may be shared,
    // and reading moves a handle's position.
    let mut d = rustix::fs::Dir::read_from(dir).map_err(errno)?;
    each_entry_of(&mut d, each)
}

/// [`each_entry`] through a directory stream already open.
fn each_entry_of(
    d: &mut rustix::fs::Dir,
    mut each: impl FnMut(&rustix::fs::DirEntry) -> io::Result<bool>,
) -> io::Result<()> {
    while let Some(entry) = d.read() {
        let entry = match entry {
            Ok(e) => e,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(errno(e)),
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if !each(&entry)? {
            break;
        }
    }
    Ok(())
}

/// Whether the held directory `dir` has no entry but `.` and `..`.
pub(crate) fn is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut empty = true;
    each_entry(dir, |_| {
        empty = false;
        Ok(false)
    })?;
    Ok(empty)
}

/// The entries of `dir` but `.` and `..`, each with its name (the raw bytes when not UTF-8)
/// and whether it is a directory (not a link to one). Where the directory entry does not
/// say, the entry is looked at without following a link; one gone meanwhile is left out.
pub(crate) fn dir_entries(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntryKind>> {
    let mut out = Vec::new();
    each_entry(dir, |entry| {
        let raw = entry.file_name().to_bytes();
        let name = match std::str::from_utf8(raw) {
            Ok(n) => Ok(n.to_owned()),
            Err(_) => Err(OsStr::from_bytes(raw).to_os_string()),
        };
        let is_dir = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    Err(rustix::io::Errno::NOENT) => return Ok(true),
                    Err(e) => return Err(errno(e)),
                }
            }
            t => t == FileType::Directory,
        };
        out.push((name, is_dir));
        Ok(true)
    })?;
    Ok(out)
}

/// A directory handle the listing read itself ([`dir_entries_owned`]), kept to open the
/// directory's entries.
#[derive(Debug)]
pub(crate) struct ReadDir(rustix::fs::Dir);

impl ReadDir {
    /// The directory's handle.
    pub(crate) fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.0.fd().map_err(errno)
    }
}

/// [`dir_entries`] of a directory whose handle the caller hands over: read through that very
/// handle (no second one opened on it, as a shared handle needs), which comes back for
/// opening the entries.
pub(crate) fn dir_entries_owned(dir: OwnedFd) -> io::Result<(Vec<DirEntryKind>, ReadDir)> {
    let mut d = rustix::fs::Dir::new(dir).map_err(errno)?;
    let mut raw: Vec<(Vec<u8>, FileType)> = Vec::new();
    each_entry_of(&mut d, |entry| {
        raw.push((entry.file_name().to_bytes().to_vec(), entry.file_type()));
        Ok(true)
    })?;
    let d = ReadDir(d);
    let fd = d.fd()?;
    let mut out = Vec::with_capacity(raw.len());
    for (raw, kind) in raw {
        let name = match String::from_utf8(raw) {
            Ok(n) => Ok(n),
            Err(e) => Err(OsStr::from_bytes(e.as_bytes()).to_os_string()),
        };
        let is_dir = match kind {
            FileType::Unknown => {
                let shown = match &name {
                    Ok(n) => OsStr::new(n),
                    Err(n) => n.as_os_str(),
                };
                match rustix::fs::statat(fd, shown, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(errno(e)),
                }
            }
            t => t == FileType::Directory,
        };
        out.push((name, is_dir));
    }
    Ok((out, d))
}

/// What `lstat` says of the directory `name` in `dir`: `None` when nothing of that name is
/// there or it is no plain directory (a link to one included), or it cannot be looked at.
pub(crate) fn plain_dir_stat_at(dir: BorrowedFd<'_>, name: &str) -> Option<rustix::fs::Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Opens the directory `name` in `parent` without following a link.
pub(crate) fn open_dir_at(parent: BorrowedFd<'_>, name: &str, shown: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // O_NOFOLLOW on a link: ELOOP, or ENOTDIR where O_DIRECTORY is checked first (Linux
        // does so); O_DIRECTORY on anything else: ENOTDIR. A look at the entry itself tells
        // which, for the error.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            let link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            Err(Error::UnsafePath {
                path: shown.to_path_buf(),
                reason: if link {
                    "folder directory is a symbolic link"
                } else {
                    "folder path is not a plain directory"
                },
            })
        }
        Err(rustix::io::Errno::NOENT) => Err(Error::NotFound {
            path: shown.to_path_buf(),
        }),
        Err(e) => Err(Error::io("open directory", shown, errno(e))),
    }
}

/// Creates a new file `name` in `dir` for writing; never follows or replaces anything.
pub(crate) fn create_file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o666))
        .map(File::from)
        .map_err(errno)
}

/// Opens the file `name` in `dir` for reading, refusing a link.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(errno)
}

/// Size and mtime of `name` in `dir` when it is a regular file (a link is not followed);
/// `Ok(None)` for anything else.
// The `stat` fields' integer types differ between targets (rustix mirrors the kernel's
// struct), so the conversions are needed elsewhere even where they are identities here.
#[allow(clippy::useless_conversion)]
pub(crate) fn file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<FileInfo>> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let secs = i64::try_from(st.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    let mtime = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Ok(Some(FileInfo {
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime,
    }))
}

/// Whether anything (a file, a link, a directory) is named `name` in `dir`.
pub(crate) fn exists_at(dir: BorrowedFd<'_>, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// The names in `dir` that are UTF-8 and not `.`/`..`, each with whether the directory
/// entry says it is a regular file (`None`: the file system does not say).
pub(crate) fn names_in(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntryName>> {
    let mut out = Vec::new();
    each_entry(dir, |entry| {
        if let Ok(name) = entry.file_name().to_str() {
            let kind = match entry.file_type() {
                FileType::Unknown => None,
                t => Some(t == FileType::RegularFile),
            };
            out.push((name.to_owned(), kind));
        }
        Ok(true)
    })?;
    Ok(out)
}

/// Opens an unnamed regular file on `dir`'s file system (`O_TMPFILE`), to be named by
/// [`link_anonymous_at`] once complete: no directory entry exists before, so a crash or a
/// kill while it is written leaves nothing behind, and naming it is one directory operation
/// where a named temporary file costs three (its entry's creation, then the rename's removal
/// and addition, with the file system's rename lock held). `Ok(None)` where unnamed files
/// cannot be made or named: a kernel or file system without them (`EOPNOTSUPP`, or `EISDIR`
/// from kernels before 3.11), or no `/proc` to name them through.
pub(crate) fn create_anonymous_in(dir: BorrowedFd<'_>) -> io::Result<Option<File>> {
    static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if UNNAMED_REFUSED.load(std::sync::atomic::Ordering::Relaxed)
        || !*PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir())
    {
        return Ok(None);
    }
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o666)) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e)
            if e == rustix::io::Errno::OPNOTSUPP
                || e == rustix::io::Errno::ISDIR
                || e == rustix::io::Errno::INVAL =>
        {
            Ok(None)
        }
        Err(e) => Err(errno(e)),
    }
}

/// Set once naming an unnamed file failed for another reason than an existing target (a
/// `/proc` that hides descriptors, a security module refusing the link): the files created
/// after it are named in `tmp/`, so one refusal costs one message's download (retried by the
/// next run), not every message's.
static UNNAMED_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gives a file from [`create_anonymous_in`] the name `to_name` in `to`; fails if the
/// target exists (`linkat(2)` never replaces). Through `/proc/self/fd`, since linking the
/// descriptor itself (`AT_EMPTY_PATH`) needs a capability an ordinary user lacks.
pub(crate) fn link_anonymous_at(file: &File, to: BorrowedFd<'_>, to_name: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let linked = rustix::fs::linkat(
        rustix::fs::CWD,
        path.as_str(),
        to,
        to_name,
        AtFlags::SYMLINK_FOLLOW,
    );
    if let Err(e) = linked {
        if e != rustix::io::Errno::EXIST {
            UNNAMED_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    linked.map_err(errno)
}

/// `link(2)` from `name` in `from` to `to_name` in `to`; fails if the target exists.
pub(crate) fn link_at(
    from: BorrowedFd<'_>,
    name: &str,
    to: BorrowedFd<'_>,
    to_name: &str,
) -> io::Result<()> {
    rustix::fs::linkat(from, name, to, to_name, AtFlags::empty()).map_err(errno)
}

/// `rename(2)` between two directory handles.
pub(crate) fn rename_at(
    from: BorrowedFd<'_>,
    name: &str,
    to: BorrowedFd<'_>,
    to_name: &str,
) -> io::Result<()> {
    rustix::fs::renameat(from, name, to, to_name).map_err(errno)
}

/// `rename(2)` between two directory handles that never replaces an existing `to_name`
/// (fails with `AlreadyExists`). One atomic `renameat2(RENAME_NOREPLACE)` where the
/// platform and file system have it; elsewhere a look first, then the rename (a name
/// appearing between the two is replaced: the window the atomic call closes).
pub(crate) fn rename_noreplace_at(
    from: BorrowedFd<'_>,
    name: &str,
    to: BorrowedFd<'_>,
    to_name: &str,
) -> io::Result<()> {
    if let Some(done) = atomic_rename_noreplace_at(from, name, to, to_name) {
        return done;
    }
    if exists_at(to, to_name) {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    rename_at(from, name, to, to_name)
}

/// `renameat2(RENAME_NOREPLACE)`: `None` when the platform or the file system does not
/// have it (the caller then needs another way not to clobber `to_name`).
pub(crate) fn atomic_rename_noreplace_at(
    from: BorrowedFd<'_>,
    name: &str,
    to: BorrowedFd<'_>,
    to_name: &str,
) -> Option<io::Result<()>> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::RenameFlags;
        match rustix::fs::renameat_with(from, name, to, to_name, RenameFlags::NOREPLACE) {
            Ok(()) => Some(Ok(())),
            // A file system without the flag (EINVAL) or a kernel without the call.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => None,
            Err(e) => Some(Err(errno(e))),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (from, name, to, to_name);
        None
    }
}

/// Removes the file `name` from `dir`.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno)
}

/// fsync of a held directory, when enabled; `shown` is its path, for errors.
pub(crate) fn sync_dir_fd(enabled: bool, dir: BorrowedFd<'_>, shown: &Path) -> Result<()> {
    if !enabled {
        return Ok(());
    }
    rustix::fs::fsync(dir).map_err(|e| Error::io("fsync directory", shown, errno(e)))
}
