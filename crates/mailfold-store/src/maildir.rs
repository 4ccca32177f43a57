//! The Maildir tree under an account's `local` root: folders, message
//! files, scanning and the file operations the sync engine applies.
//!
//! Layout: every folder is a Maildir (`cur/ new/ tmp/`), nested folders are
//! nested directories (see [`crate::name`] for the name mapping), `INBOX` is
//! `local/INBOX`. Message files are named `<base>:2,<flags>`; the *base* is
//! the file's identity and survives flag renames by mutt or notmuch and moves
//! between folders.
//!
//! Safety rules kept here:
//! * nothing is created, moved, removed or listed outside the root, and
//!   nothing goes through a symbolic link below the root: the root is
//!   resolved once when opened and held, every folder operation (create,
//!   rename, delete, list) opens each level from it without following a link
//!   and acts relative to those handles, and a [`Folder`]'s directories are
//!   opened once the same way for every message file operation
//!   ([`crate::dirfd`]), so a directory swapped for a link after the check is
//!   never followed;
//! * the store writes only message files, Maildir directories and, for a
//!   moment, a case probe directory that it removes at once: a mail indexer
//!   never sees anything else;
//! * a message becomes visible only once complete, by an atomic link of an
//!   unnamed file or an atomic rename from `tmp/` (see [`crate::writer`]),
//!   after its data is durable (and, with fsync on, before its row is), so a
//!   crash leaves at most an invisible file in `tmp/`.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::crlf::{canonical_digest_of, ContentHash, LfToCrlf};
use crate::dirfd::{self, FolderDirs};
use crate::error::{Error, NameError, Result};
use crate::flags::MaildirFlags;
use crate::layout::Layout;
use crate::message::{MessageBase, MessageEntry, NewMessage, Subdir};
use crate::name::{
    alias_name, decode_component_lenient, encode_component, is_alias, is_maildir_subdir,
    AliasRegistry, FolderName, RelPath, MAX_DIR_NAME,
};
use crate::writer::MessageWriter;

/// Name prefix of the short-lived directory used to probe case sensitivity.
pub(crate) const PROBE_PREFIX: &str = ".mailfold-case-probe.";

/// How to decide whether the file system under the root folds case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseMode {
    /// Probe once when the store is opened (the default).
    #[default]
    Probe,
    /// Assume names differing in case are different files.
    Sensitive,
    /// Assume names differing in case are the same file (also useful to test
    /// the disambiguation on a case-sensitive file system).
    Insensitive,
}

/// Options for [`Maildir::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaildirOptions {
    /// fsync message files and directories before a write counts as done.
    /// On by default; benchmarks may turn it off, at the cost of crash safety.
    pub fsync: bool,
    /// Case handling of the file system.
    pub case: CaseMode,
    /// How folder names map to directories (see [`crate::layout`]).
    pub layout: Layout,
}

impl Default for MaildirOptions {
    fn default() -> Self {
        MaildirOptions {
            fsync: true,
            case: CaseMode::Probe,
            layout: Layout::Nested,
        }
    }
}

/// The Maildir tree of one account.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    /// The root, held open from [`Maildir::open`] on ([`crate::dirfd`]).
    root_fd: Arc<OwnedFd>,
    fsync: bool,
    case_insensitive: bool,
    layout: Layout,
}

/// A local folder found by [`Maildir::list_folders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFolder {
    /// The directory relative to the root.
    pub rel: RelPath,
    /// The folder name its directories decode to.
    pub name: FolderName,
    /// True when the directory has `cur/` and `new/` (it can hold mail);
    /// false for a plain directory that only contains other folders.
    pub is_maildir: bool,
    /// False when some level is not the canonical encoding of its name
    /// (for example a user's `mkdir 100%`), so the name cannot be mapped
    /// back to this directory by the name mapping alone; callers should
    /// bind the folder to `rel` in the state database.
    pub canonical: bool,
    /// The stamp of `cur/` and `new/` as the listing found them: read through the folder
    /// directory's handle (links not followed) while the listing held it, so before
    /// [`Maildir::list_folders`] returned. What [`Folder::stamp`] would have read at that
    /// moment; `None` when the directory is no Maildir.
    pub stamp: Option<DirStamp>,
    /// `tmp/` was a plain directory too, so [`Maildir::listed_folder`] need not look again.
    pub(crate) has_tmp: bool,
}

/// The result of listing the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderListing {
    /// Folders and container directories, sorted by relative path.
    pub folders: Vec<LocalFolder>,
    /// Directories skipped because their names are not UTF-8 or not safe
    /// (the caller should warn about them).
    pub skipped: Vec<PathBuf>,
}

static UNIQUE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Maildir {
    /// Opens (creating if needed) the root directory and probes case
    /// sensitivity according to `opts.case`.
    pub fn open(root: &Path, opts: MaildirOptions) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io("create root", root, e))?;
        let root = fs::canonicalize(root).map_err(|e| Error::io("resolve root", root, e))?;
        let root_fd = Arc::new(dirfd::open_root(&root)?);
        let case_insensitive = match opts.case {
            CaseMode::Sensitive => false,
            CaseMode::Insensitive => true,
            CaseMode::Probe => probe_case_insensitive(root_fd.as_fd(), &root)?,
        };
        Ok(Maildir {
            root,
            root_fd,
            fsync: opts.fsync,
            case_insensitive,
            layout: opts.layout,
        })
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether writes are fsynced.
    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }

    /// The tree layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether names that differ only in case are treated as clashing.
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The absolute path of a folder directory, after checking that no
    /// existing level is a symbolic link or a non-directory. (A check by
    /// path; the store's own folder operations open each level instead,
    /// [`crate::dirfd`].)
    pub fn checked_path(&self, rel: &RelPath) -> Result<PathBuf> {
        let mut p = self.root.clone();
        for d in self.layout.dirs_of(rel) {
            p.push(d);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::UnsafePath {
                        path: p,
                        reason: "folder directory is a symbolic link",
                    })
                }
                Ok(m) if !m.is_dir() => {
                    return Err(Error::UnsafePath {
                        path: p,
                        reason: "folder path is not a directory",
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(self.path_of(rel)),
                Err(e) => return Err(Error::io("stat", p, e)),
            }
        }
        Ok(p)
    }

    /// The root's handle.
    pub(crate) fn root_handle(&self) -> BorrowedFd<'_> {
        self.root_fd.as_fd()
    }

    /// Opens the directory `levels` below the root, one level at a time without following
    /// a link ([`dirfd::open_levels`]).
    pub(crate) fn open_levels(&self, levels: &[String]) -> Result<OwnedFd> {
        dirfd::open_levels(
            self.root_handle(),
            &self.root,
            levels.iter().map(String::as_str),
        )
    }

    /// Opens an existing folder (a Maildir at `rel`): every level from the
    /// root is opened without following a link, and `cur/`, `new/` and `tmp/`
    /// must be plain directories in the directory so opened.
    pub fn folder(&self, rel: &RelPath) -> Result<Folder> {
        let levels = self.layout.dirs_of(rel);
        let fd = self.open_levels(&levels)?;
        let dir = self.path_of(rel);
        for sub in ["cur", "new", "tmp"] {
            let p = dir.join(sub);
            match dirfd::is_dir_at(fd.as_fd(), sub) {
                Ok(Some(true)) => {}
                Ok(Some(false)) => {
                    return Err(Error::UnsafePath {
                        path: p,
                        reason: "Maildir sub-directory is not a plain directory",
                    })
                }
                Ok(None) => return Err(Error::NotFound { path: p }),
                Err(e) => return Err(Error::io("stat", p, e)),
            }
        }
        Ok(self.folder_checked(rel, levels))
    }

    /// [`Maildir::folder`] and the folder's stamp read through the directory handle that
    /// check opened (`lstat` of `cur/` and `new/` relative to it, which the check does
    /// anyway): what [`Folder::stamp`] would read just after, without a second look at each
    /// directory by its path.
    pub fn folder_stamped(&self, rel: &RelPath) -> Result<(Folder, Option<DirStamp>)> {
        let levels = self.layout.dirs_of(rel);
        let fd = self.open_levels(&levels)?;
        let looked = look_at(fd.as_fd());
        if looked.stamp_parts.is_none() || !looked.tmp {
            // Not complete: the plain check says which part and how.
            return self.folder(rel).map(|f| (f, None));
        }
        Ok((self.folder_checked(rel, levels), looked.stamp()))
    }

    /// The folder a listing found ([`Maildir::list_folders`]), without opening it again. The
    /// listing saw its `cur/`, `new/` and `tmp/` as plain directories through a handle opened
    /// level by level from the root without following a link, which is all
    /// [`Maildir::folder`] checks; a [`Folder`] holds nothing of that check (its message
    /// operations open the directories afresh, the same way, at their first use), so a
    /// directory changed since fares exactly as it would after [`Maildir::folder`]. A folder
    /// the listing did not see complete goes through [`Maildir::folder`] (and its error).
    pub fn listed_folder(&self, lf: &LocalFolder) -> Result<Folder> {
        if !(lf.is_maildir && lf.has_tmp) {
            return self.folder(&lf.rel);
        }
        Ok(self.folder_checked(&lf.rel, self.layout.dirs_of(&lf.rel)))
    }

    /// The folder at `rel` (at `levels` below the root), its directories checked already.
    fn folder_checked(&self, rel: &RelPath, levels: Vec<String>) -> Folder {
        Folder {
            rel: rel.clone(),
            levels,
            dir: self.path_of(rel),
            fsync: self.fsync,
            root_fd: Arc::clone(&self.root_fd),
            held: Arc::new(OnceLock::new()),
        }
    }

    /// Maps `name` to its directory if that directory exists, without
    /// creating anything.
    pub fn locate_folder(
        &self,
        name: &FolderName,
        aliases: &dyn AliasRegistry,
    ) -> Result<Option<RelPath>> {
        if let Some(rel) = self.layout.rel_of(name) {
            let rel = rel?;
            return match self.open_levels(&self.layout.dirs_of(&rel)) {
                Ok(_) => Ok(Some(rel)),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let mut rel: Option<RelPath> = None;
        let mut parent: Option<OwnedFd> = None;
        let mut parent_path = self.root.clone();
        for comp in name.components() {
            let parent_key = rel.as_ref().map_or("", RelPath::as_str).to_owned();
            let pfd = parent.as_ref().map_or(self.root_handle(), AsFd::as_fd);
            let dir = match aliases.alias_of(&parent_key, comp)? {
                Some(a) => a,
                None => {
                    let enc = encode_component(comp);
                    if enc.len() > MAX_DIR_NAME {
                        return Ok(None);
                    }
                    enc
                }
            };
            if !self.entry_exists_exactly(pfd, &parent_path, &dir)? {
                return Ok(None);
            }
            let path = parent_path.join(&dir);
            parent = match dirfd::open_dir_at(pfd, &dir, &path) {
                Ok(fd) => Some(fd),
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            rel = Some(join_rel(rel.as_ref(), &dir)?);
            parent_path = path;
        }
        match rel {
            Some(r) => Ok(Some(r)),
            None => Err(NameError::Empty.into()),
        }
    }

    /// Maps `name` to a directory, creating the folder (and plain parent
    /// directories) as needed, and returns it. New aliases (over-long or
    /// case-clashing components) are recorded in `aliases` before their
    /// directory is created. Each level is created or opened relative to the
    /// level above it, never following a link ([`crate::dirfd`]); the folder is
    /// then opened again from the root, so a level swapped for a link meanwhile
    /// is refused rather than handed out.
    pub fn ensure_folder(
        &self,
        name: &FolderName,
        aliases: &mut dyn AliasRegistry,
    ) -> Result<Folder> {
        if let Some(rel) = self.layout.rel_of(name) {
            return self.create_one_level(&rel?);
        }
        let (rel, dir) = self.ensure_dirs(name.components(), aliases)?;
        self.make_maildir(&rel, dir.as_fd())
    }

    /// Creates the directories for `components` and returns their path, with
    /// the last one held open.
    fn ensure_dirs(
        &self,
        components: &[String],
        aliases: &mut dyn AliasRegistry,
    ) -> Result<(RelPath, OwnedFd)> {
        let mut rel: Option<RelPath> = None;
        let mut parent: Option<OwnedFd> = None;
        let mut parent_path = self.root.clone();
        for comp in components {
            let parent_key = rel.as_ref().map_or("", RelPath::as_str).to_owned();
            let pfd = parent.as_ref().map_or(self.root_handle(), AsFd::as_fd);
            let dir = self.choose_dir(&parent_key, pfd, &parent_path, comp, aliases)?;
            let next = join_rel(rel.as_ref(), &dir)?;
            let path = parent_path.join(&dir);
            let fd = self.make_dir(pfd, &dir, &path, &parent_path)?;
            rel = Some(next);
            parent = Some(fd);
            parent_path = path;
        }
        match (rel, parent) {
            (Some(r), Some(fd)) => Ok((r, fd)),
            _ => Err(NameError::Empty.into()),
        }
    }

    /// Picks the directory name for `comp` inside the held directory `parent`
    /// (at `parent_path`).
    fn choose_dir(
        &self,
        parent_key: &str,
        parent: BorrowedFd<'_>,
        parent_path: &Path,
        comp: &str,
        aliases: &mut dyn AliasRegistry,
    ) -> Result<String> {
        if let Some(a) = aliases.alias_of(parent_key, comp)? {
            return Ok(a);
        }
        let enc = encode_component(comp);
        let mut need_alias = enc.len() > MAX_DIR_NAME;
        if !need_alias && self.case_insensitive {
            // Seed V0016: another folder already owns a directory equal to
            // this one but for case; the plain name would alias it.
            let folded = enc.to_lowercase();
            let mut exact = false;
            let mut clash = false;
            for entry in names_of(parent, parent_path)? {
                if entry == enc {
                    exact = true;
                } else if entry.to_lowercase() == folded {
                    clash = true;
                }
            }
            need_alias = clash && !exact;
        }
        if !need_alias {
            return Ok(enc);
        }
        let alias = alias_name(comp, &enc);
        if let Some(other) = aliases.component_of(parent_key, &alias)? {
            if other != comp {
                return Err(Error::UnsafePath {
                    path: parent_path.join(&alias),
                    reason: "alias hash collision between two folder names",
                });
            }
        }
        aliases.record_alias(parent_key, &alias, comp)?;
        Ok(alias)
    }

    /// Creates (or opens) the directory `name` in the held directory `parent`, refusing a
    /// link or a non-directory, and fsyncs the parent when it was created.
    fn make_dir(
        &self,
        parent: BorrowedFd<'_>,
        name: &str,
        path: &Path,
        parent_path: &Path,
    ) -> Result<OwnedFd> {
        let (fd, created) = dirfd::make_dir_at(parent, name, path)?;
        if created {
            dirfd::sync_dir_fd(self.fsync, parent, parent_path)?;
        }
        Ok(fd)
    }

    /// Adds `cur/ new/ tmp/` to the held directory of `rel`, then opens the folder from
    /// the root ([`Maildir::folder`]).
    fn make_maildir(&self, rel: &RelPath, dir: BorrowedFd<'_>) -> Result<Folder> {
        let path = self.path_of(rel);
        for sub in ["tmp", "new", "cur"] {
            self.make_dir(dir, sub, &path.join(sub), &path)?;
        }
        self.folder(rel)
    }

    /// Creates a Maildir at a relative path the caller already holds (for
    /// example from the state database); parents become plain directories.
    pub fn create_folder_at(&self, rel: &RelPath) -> Result<Folder> {
        let mut parent: Option<OwnedFd> = None;
        let mut parent_path = self.root.clone();
        for d in self.layout.dirs_of(rel) {
            let pfd = parent.as_ref().map_or(self.root_handle(), AsFd::as_fd);
            let path = parent_path.join(&d);
            parent = Some(self.make_dir(pfd, &d, &path, &parent_path)?);
            parent_path = path;
        }
        let dir = match parent {
            Some(fd) => fd,
            None => self.open_levels(&[])?,
        };
        self.make_maildir(rel, dir.as_fd())
    }

    /// Opens the folder directory `rel` to move or remove it, with its parent. Refuses a link or non-directory at any level; a missing
    /// folder is [`Error::NotFound`]. The Maildir++ root (no level) has no parent: `None`.
    fn open_to_move(&self, rel: &RelPath) -> Result<Option<HeldEntry>> {
        let levels = self.layout.dirs_of(rel);
        let Some((name, parents)) = levels.split_last() else {
            return Ok(None);
        };
        let parent = self.open_levels(parents)?;
        let path = self.path_of(rel);
        let dir = dirfd::open_dir_at(parent.as_fd(), name, &path)?;
        Ok(Some(HeldEntry {
            dir,
            parent,
            parent_levels: parents.to_vec(),
            name: name.clone(),
            parent_path: path.parent().map_or(self.root.clone(), Path::to_path_buf),
            path,
        }))
    }

    /// Renames a folder (with its sub-folders) to a new name, choosing the
    /// new directory by the name mapping. The target must not exist. Both
    /// ends are reached through handles opened level by level from the root
    /// ([`crate::dirfd`]): a level swapped for a link is never followed.
    pub fn rename_folder(
        &self,
        from: &RelPath,
        to: &FolderName,
        aliases: &mut dyn AliasRegistry,
    ) -> Result<Folder> {
        let Some(src) = self.open_to_move(from)? else {
            return Err(Error::UnsafePath {
                path: self.root.clone(),
                reason: "the Maildir++ root (INBOX) cannot be renamed",
            });
        };
        if let Some(to_rel) = self.layout.rel_of(to) {
            return self.rename_one_level(&src, &to_rel?);
        }
        let (last, parents) = match to.components().split_last() {
            Some(x) => x,
            None => return Err(NameError::Empty.into()),
        };
        let (parent_rel, parent) = if parents.is_empty() {
            (None, self.open_levels(&[])?)
        } else {
            let (r, fd) = self.ensure_dirs(parents, aliases)?;
            (Some(r), fd)
        };
        let parent_path = parent_rel
            .as_ref()
            .map_or(self.root.clone(), |r| self.path_of(r));
        let parent_key = parent_rel.as_ref().map_or("", RelPath::as_str).to_owned();
        let dir = self.choose_dir(&parent_key, parent.as_fd(), &parent_path, last, aliases)?;
        let to_rel = join_rel(parent_rel.as_ref(), &dir)?;
        if to_rel.as_str().starts_with(&format!("{}/", from.as_str())) || &to_rel == from {
            return Err(Error::UnsafePath {
                path: to_rel.to_path(&self.root),
                reason: "cannot move a folder into itself",
            });
        }
        let dst = parent_path.join(&dir);
        if self.entry_exists_exactly(parent.as_fd(), &parent_path, &dir)? {
            return Err(Error::AlreadyExists { path: dst });
        }
        self.move_dir(&src, parent.as_fd(), &dir, &parent_path)?;
        aliases.rename_alias_prefix(from.as_str(), to_rel.as_str())?;
        self.prune_empty_parents(&src.parent_levels)?;
        let moved = dirfd::open_dir_at(parent.as_fd(), &dir, &dst)?;
        if dirfd::plain_dir_at(moved.as_fd(), "cur") {
            self.folder(&to_rel)
        } else {
            self.make_maildir(&to_rel, moved.as_fd())
        }
    }

    /// `rename(2)` of the held entry `src` to `to_name` in the held directory `to`, then
    /// the fsync of both parents. Never replaces an existing entry where the platform can
    /// say so atomically; on a case-insensitive file system a plain rename, so that a
    /// folder can change only the case of its name.
    pub(crate) fn move_dir(
        &self,
        src: &HeldEntry,
        to: BorrowedFd<'_>,
        to_name: &str,
        to_path: &Path,
    ) -> Result<()> {
        let from = src.parent.as_fd();
        let moved = if self.case_insensitive {
            dirfd::rename_at(from, &src.name, to, to_name)
        } else {
            dirfd::rename_noreplace_at(from, &src.name, to, to_name)
        };
        moved.map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                path: to_path.join(to_name),
            },
            _ => Error::io("rename folder", &src.path, e),
        })?;
        dirfd::sync_dir_fd(self.fsync, from, &src.parent_path)?;
        dirfd::sync_dir_fd(self.fsync, to, to_path)
    }

    /// Deletes a folder. Without `force` its `cur/`, `new/` and `tmp/` must be
    /// empty. Sub-folders are never deleted: if there are any, the directory
    /// stays as a plain container and only the Maildir part goes. Every file
    /// and directory is removed relative to handles opened level by level from
    /// the root ([`crate::dirfd`]), so nothing outside the folder checked is
    /// removed, whatever a racing process swaps for a link.
    pub fn delete_folder(&self, rel: &RelPath, force: bool) -> Result<()> {
        let Some(held) = self.open_to_move(rel)? else {
            // Maildir++: the root is INBOX and holds every other folder.
            return Err(Error::UnsafePath {
                path: self.root.clone(),
                reason: "the Maildir++ root (INBOX) is never deleted",
            });
        };
        let dir = held.dir.as_fd();
        let subs =
            ["cur", "new", "tmp"].map(|s| (s, dirfd::open_dir_at(dir, s, &held.path.join(s))));
        let mut open = Vec::new();
        for (sub, opened) in subs {
            match opened {
                Ok(fd) => open.push((sub, fd)),
                Err(Error::NotFound { .. }) => {}
                // A link or a file named `cur`: never followed; left to the entries below.
                Err(Error::UnsafePath { .. }) if force => {}
                Err(Error::UnsafePath { .. }) => return Err(Error::NotEmpty { path: held.path }),
                Err(e) => return Err(e),
            }
        }
        if !force {
            for (sub, fd) in &open {
                let empty = dirfd::is_empty(fd.as_fd())
                    .map_err(|e| Error::io("read directory", held.path.join(sub), e))?;
                if !empty {
                    return Err(Error::NotEmpty { path: held.path });
                }
            }
        }
        for (sub, fd) in &open {
            let p = held.path.join(sub);
            for f in names_of(fd.as_fd(), &p)? {
                unlink_tolerant(fd.as_fd(), &f, &p.join(&f))?;
            }
            dirfd::remove_dir_at(dir, sub).map_err(|e| Error::io("remove directory", &p, e))?;
        }
        let has_children = self.remove_leftovers(dir, &held.path, force)?;
        if !has_children {
            dirfd::remove_dir_at(held.parent.as_fd(), &held.name)
                .map_err(|e| Error::io("remove directory", &held.path, e))?;
        }
        dirfd::sync_dir_fd(self.fsync, held.parent.as_fd(), &held.parent_path)?;
        if !has_children {
            self.prune_empty_parents(&held.parent_levels)?;
        }
        Ok(())
    }

    /// What stays in a folder directory once its Maildir part is gone: other files some
    /// tools leave (dovecot-uidlist, …) go with a forced delete; child folders always stay.
    /// Says whether anything stays.
    fn remove_leftovers(&self, dir: BorrowedFd<'_>, path: &Path, force: bool) -> Result<bool> {
        let mut has_children = false;
        for name in names_of(dir, path)? {
            let p = path.join(&name);
            match dirfd::is_dir_at(dir, &name) {
                Ok(None) => continue,
                Ok(Some(is_dir)) if is_dir || !force => has_children = true,
                Ok(Some(_)) => unlink_tolerant(dir, &name, &p)?,
                Err(e) => return Err(Error::io("stat", p, e)),
            }
        }
        Ok(has_children)
    }

    /// Removes the directory at `levels` and then each parent above it, up to the root,
    /// while it is an empty plain container (no `cur/`, `new/` or `tmp/`, nothing inside):
    /// what a folder rename or delete leaves behind when it took a container's last child.
    /// Left in place, such a directory lists as a folder of its own and confuses later
    /// renames and deletes. Each level is reached from the root without following a link;
    /// one that is gone or no plain directory stops the walk.
    fn prune_empty_parents(&self, levels: &[String]) -> Result<()> {
        let mut n = levels.len();
        while let Some((name, parents)) = levels[..n].split_last() {
            let parent = match self.open_levels(parents) {
                Ok(fd) => fd,
                Err(Error::NotFound { .. } | Error::UnsafePath { .. }) => break,
                Err(e) => return Err(e),
            };
            let parent_path = parents.iter().fold(self.root.clone(), |p, l| p.join(l));
            let path = parent_path.join(name);
            let empty = match dirfd::open_dir_at(parent.as_fd(), name, &path) {
                Ok(d) => {
                    dirfd::is_empty(d.as_fd()).map_err(|e| Error::io("read directory", &path, e))?
                }
                Err(Error::NotFound { .. } | Error::UnsafePath { .. }) => false,
                Err(e) => return Err(e),
            };
            // Something arrived meanwhile (or it went already): it stays as it is.
            if !empty || dirfd::remove_dir_at(parent.as_fd(), name).is_err() {
                break;
            }
            dirfd::sync_dir_fd(self.fsync, parent.as_fd(), &parent_path)?;
            n -= 1;
        }
        Ok(())
    }

    /// Lists every folder and container directory under the root, decoding
    /// names (aliases through `aliases`). Hidden entries, `cur`/`new`/`tmp`
    /// and symbolic links are skipped. Iterative, so deep trees cannot
    /// overflow the stack. Each directory is read through a handle opened from
    /// its parent's without following a link ([`crate::dirfd`]); one swapped
    /// for a link after its parent was read is skipped (in
    /// [`FolderListing::skipped`]), never read.
    ///
    /// One pass, each directory opened once: through its handle the listing looks at its
    /// `cur/`, `new/` and `tmp/` (which gives [`LocalFolder::stamp`] and what
    /// [`Maildir::listed_folder`] needs) and reads its entries for sub-folders, then closes
    /// it unless some sub-folder of it is still to be read. Depth first, so the handles
    /// open at any time are those of one path from the root, whatever the width of the tree.
    pub fn list_folders(&self, aliases: &dyn AliasRegistry) -> Result<FolderListing> {
        if !self.layout.is_nested() {
            return self.list_one_level();
        }
        let mut out = FolderListing::default();
        let root = dirfd::dir_entries(self.root_handle())
            .map_err(|e| Error::io("read directory", &self.root, e))?;
        let root_path = self.root.clone();
        let root_todo = pending_children(root, (None, &[], true), &root_path, aliases, &mut out)?;
        let mut stack = vec![ListFrame {
            dir: None,
            path: root_path,
            todo: root_todo,
        }];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.todo.pop() else {
                // Every sub-folder read: the directory's handle closes.
                stack.pop();
                continue;
            };
            let parent = match &top.dir {
                None => self.root_handle(),
                Some(d) => d
                    .fd()
                    .map_err(|e| Error::io("read directory", &top.path, e))?,
            };
            let child_path = top.path.join(&child.name);
            let fd = match dirfd::open_dir_at(parent, &child.name, &child_path) {
                Ok(fd) => fd,
                Err(Error::NotFound { .. }) => continue,
                Err(Error::UnsafePath { .. }) => {
                    out.skipped.push(child_path);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let looked = look_at(fd.as_fd());
            let (entries, dir) = dirfd::dir_entries_owned(fd)
                .map_err(|e| Error::io("read directory", &child_path, e))?;
            let here = (Some(&child.rel), child.comps.as_slice(), child.canonical);
            let todo = pending_children(entries, here, &child_path, aliases, &mut out)?;
            // The components list is non-empty here, so `new` succeeds.
            if let Ok(folder_name) = FolderName::new(child.comps) {
                out.folders.push(LocalFolder {
                    rel: child.rel,
                    name: folder_name,
                    is_maildir: looked.stamp_parts.is_some(),
                    canonical: child.canonical,
                    stamp: looked.stamp(),
                    has_tmp: looked.tmp,
                });
            }
            if !todo.is_empty() {
                stack.push(ListFrame {
                    dir: Some(dir),
                    path: child_path,
                    todo,
                });
            }
        }
        out.folders.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// Decodes the folder name of a relative path.
    pub fn name_of(&self, rel: &RelPath, aliases: &dyn AliasRegistry) -> Result<FolderName> {
        if let Some((name, _)) = self.layout.name_of(rel) {
            return Ok(name);
        }
        let mut comps = Vec::new();
        let mut parent = String::new();
        for d in rel.dirs() {
            let c = if is_alias(d) {
                aliases
                    .component_of(&parent, d)?
                    .ok_or_else(|| NameError::UnknownAlias { dir: d.to_owned() })?
            } else {
                crate::name::decode_component(d)?
            };
            comps.push(c);
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(d);
        }
        Ok(FolderName::new(comps)?)
    }

    /// Whether `name` is an entry of the held directory `parent` (at `parent_path`), spelt
    /// exactly so (a case-insensitive file system would find another spelling too).
    pub(crate) fn entry_exists_exactly(
        &self,
        parent: BorrowedFd<'_>,
        parent_path: &Path,
        name: &str,
    ) -> Result<bool> {
        if self.case_insensitive {
            Ok(names_of(parent, parent_path)?.iter().any(|n| n == name))
        } else {
            dirfd::is_dir_at(parent, name)
                .map(|found| found.is_some())
                .map_err(|e| Error::io("stat", parent_path.join(name), e))
        }
    }
}

/// A folder directory opened to be moved or removed ([`Maildir::open_to_move`]).
#[derive(Debug)]
pub(crate) struct HeldEntry {
    /// The directory itself.
    dir: OwnedFd,
    /// Its parent.
    pub(crate) parent: OwnedFd,
    /// The parent's levels below the root.
    parent_levels: Vec<String>,
    /// Its name in the parent.
    name: String,
    /// Its path and its parent's, for errors.
    pub(crate) path: PathBuf,
    parent_path: PathBuf,
}

/// A directory whose sub-folders [`Maildir::list_folders`] is reading: its handle (none: the
/// root), its path, and the sub-folders still to be opened.
struct ListFrame {
    dir: Option<dirfd::ReadDir>,
    path: PathBuf,
    todo: Vec<ListChild>,
}

/// A sub-folder [`Maildir::list_folders`] is still to open: its name in its parent, relative
/// path, decoded components and whether every level is canonical.
struct ListChild {
    name: String,
    rel: RelPath,
    comps: Vec<String>,
    canonical: bool,
}

/// The name of an entry of the directory at `path` that may be a folder: `None` for files
/// and symbolic links, which are never folders, and for a name that is not UTF-8, which goes
/// to `skipped` (as `path` joined with its raw bytes).
fn subdir_name(
    (name, is_dir): dirfd::DirEntryKind,
    path: &Path,
    skipped: &mut Vec<PathBuf>,
) -> Option<String> {
    match name {
        _ if !is_dir => None,
        Ok(n) => Some(n),
        Err(raw) => {
            skipped.push(path.join(raw));
            None
        }
    }
}

/// The sub-folders among the `entries` of the directory at `path` (`here` is its relative
/// path, decoded components and whether it is canonical), their names decoded (aliases
/// through `aliases`) as the directory is read, to be opened in directory order: directories
/// (not links), not hidden, not `cur`/`new`/`tmp`. Names that are not UTF-8 or not usable go
/// to `out.skipped`.
fn pending_children(
    entries: Vec<dirfd::DirEntryKind>,
    (rel, comps, canonical): (Option<&RelPath>, &[String], bool),
    path: &Path,
    aliases: &dyn AliasRegistry,
    out: &mut FolderListing,
) -> Result<Vec<ListChild>> {
    let mut todo = Vec::new();
    for entry in entries {
        let Some(name) = subdir_name(entry, path, &mut out.skipped) else {
            continue;
        };
        if name.starts_with('.') || is_maildir_subdir(&name) {
            continue;
        }
        let Ok(child_rel) = join_rel(rel, &name) else {
            out.skipped.push(path.join(&name));
            continue;
        };
        let parent_key = rel.map_or("", RelPath::as_str);
        let (comp, ok) = if is_alias(&name) {
            match aliases.component_of(parent_key, &name)? {
                Some(c) => (c, true),
                None => (name.clone(), false),
            }
        } else {
            decode_component_lenient(&name)
        };
        let mut child_comps = comps.to_vec();
        child_comps.push(comp);
        todo.push(ListChild {
            name,
            rel: child_rel,
            comps: child_comps,
            canonical: canonical && ok,
        });
    }
    // Opened in directory order: the frame takes them from the end.
    todo.reverse();
    Ok(todo)
}

/// What a listing sees of a folder directory through its handle: `cur/` and `new/` (`lstat`,
/// relative to the handle), and `tmp/` when those two are plain directories.
struct Looked {
    /// Both `cur/` and `new/` are plain directories: their times, when they convert.
    stamp_parts: Option<Option<DirStamp>>,
    tmp: bool,
}

impl Looked {
    fn stamp(&self) -> Option<DirStamp> {
        self.stamp_parts.flatten()
    }
}

/// Looks at the `cur/`, `new/` and `tmp/` of the held folder directory `dir` ([`Looked`]).
fn look_at(dir: BorrowedFd<'_>) -> Looked {
    let (Some(cur), Some(new)) = (
        dirfd::plain_dir_stat_at(dir, "cur"),
        dirfd::plain_dir_stat_at(dir, "new"),
    ) else {
        return Looked {
            stamp_parts: None,
            tmp: false,
        };
    };
    let stamp = match (DirTimes::of_stat(&cur), DirTimes::of_stat(&new)) {
        (Ok(cur), Ok(new)) => Some(DirStamp { cur, new }),
        _ => None,
    };
    Looked {
        stamp_parts: Some(stamp),
        tmp: dirfd::plain_dir_at(dir, "tmp"),
    }
}

fn join_rel(parent: Option<&RelPath>, dir: &str) -> Result<RelPath, NameError> {
    match parent {
        Some(p) => p.join(dir),
        None => RelPath::parse(dir),
    }
}

/// Names in the held directory `dir` (at `path`; UTF-8 ones: others cannot clash with ours).
pub(crate) fn names_of(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<String>> {
    let names = dirfd::names_in(dir).map_err(|e| Error::io("read directory", path, e))?;
    Ok(names.into_iter().map(|(n, _)| n).collect())
}

/// fsync of a directory opened by its path: for the state database's directory, which
/// lies outside the Maildir (every Maildir directory is fsynced through a held handle).
pub(crate) fn sync_dir(enabled: bool, dir: &Path) -> Result<()> {
    if !enabled {
        return Ok(());
    }
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Creates a uniquely named directory in the root (held as `root`, at `root_path`) and checks
/// whether its upper-case spelling finds it. The directory is removed at once; stale probes
/// left by a crash are removed first.
fn probe_case_insensitive(root: BorrowedFd<'_>, root_path: &Path) -> Result<bool> {
    for name in names_of(root, root_path)? {
        if name.starts_with(PROBE_PREFIX) {
            let _ = dirfd::remove_dir_at(root, &name);
        }
    }
    let lower = format!(
        "{PROBE_PREFIX}{}.{}",
        std::process::id(),
        UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let probe = root_path.join(&lower);
    rustix::fs::mkdirat(root, lower.as_str(), rustix::fs::Mode::from_raw_mode(0o777))
        .map_err(|e| Error::io("create case probe", &probe, io::Error::from(e)))?;
    let insensitive = dirfd::exists_at(root, &lower.to_uppercase());
    dirfd::remove_dir_at(root, &lower).map_err(|e| Error::io("remove case probe", &probe, e))?;
    Ok(insensitive)
}

/// One folder's Maildir.
#[derive(Debug, Clone)]
pub struct Folder {
    rel: RelPath,
    /// The directories from the root to the folder, as the layout places it (none: the
    /// folder is the root itself, as INBOX is in `maildir++`).
    levels: Vec<String>,
    dir: PathBuf,
    fsync: bool,
    /// The store's root, held open.
    root_fd: Arc<OwnedFd>,
    /// `cur/`, `new/` and `tmp/` held open from the first message file
    /// operation on ([`Folder::dirs`]): every such operation goes through
    /// them, never through `dir` ([`crate::dirfd`]). Shared by the clones of one
    /// `Folder`: a caller that caches a folder and hands out clones (the sync's applier) opens
    /// the directories once, not once per message.
    held: Arc<OnceLock<Arc<FolderDirs>>>,
}

/// What a folder's `cur/` and `new/` directories looked like: device, inode,
/// modification and change times with nanoseconds.
///
/// Every way a mail reader changes a Maildir (delivering into `new/`, moving
/// to `cur/`, renaming to change flags, deleting, moving to another folder)
/// adds, removes or renames a directory entry, which sets the directory's
/// mtime and ctime; the ctime cannot be set back by `touch` or `rsync -t`,
/// and a replaced directory has another inode. So an equal stamp means the
/// same set of file names, provided the times are fine-grained and not so
/// recent that a change in the same clock tick could still follow
/// ([`DirStamp::is_settled`], [`DirStamp::is_before`]).
///
/// Why a change made after a stamp is read necessarily moves it: the kernel
/// gives a changed directory the file system's current time, which never
/// runs backwards (short of an administrator stepping the wall clock back)
/// but advances in ticks (the coarse clock: at most ~10 ms on Linux; whole
/// seconds on coarse file systems, two on FAT). A change in the same tick
/// as the last change the stamp shows gets the *same* time and would hide.
/// So a stamp counts only when its latest time lies strictly before a time
/// the file system itself gave out before the stamp was read (a probe file's
/// change time, [`Folder::fs_time`]) or two seconds before the wall-clock
/// reading ([`DirStamp::SETTLE`], which also covers a file server's clock
/// disagreeing with ours): every change after the reading then carries a
/// time at or after that probe, later than every time in the stamp.
///
/// Why a change racing with a listing is caught: read the stamp, list the
/// names, read the stamp again. A change before the first reading shows in
/// the listing (the listing starts after it); one after it moves the second
/// reading away from the first (by the argument above), so equal readings
/// mean the listing saw the directories exactly as the stamp describes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    cur: DirTimes,
    new: DirTimes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DirTimes {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

impl DirTimes {
    #[cfg(unix)]
    fn of(m: &fs::Metadata) -> Option<DirTimes> {
        use std::os::unix::fs::MetadataExt;
        Some(DirTimes {
            dev: m.dev(),
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        })
    }

    /// Without inode numbers and change times a stamp proves too little:
    /// such folders are always scanned.
    #[cfg(not(unix))]
    fn of(_: &fs::Metadata) -> Option<DirTimes> {
        None
    }

    /// The times of the directory an open handle names (`fstat`).
    #[cfg(unix)]
    fn of_handle(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<DirTimes> {
        DirTimes::of_stat(&rustix::fs::fstat(fd).map_err(io::Error::from)?)
    }

    /// The times of a directory as `stat` gave them.
    #[cfg(unix)]
    fn of_stat(st: &rustix::fs::Stat) -> io::Result<DirTimes> {
        // The field types differ between platforms; every value fits an i64/u64.
        let int = |v: i128| i64::try_from(v).map_err(|_| io::Error::other("time out of range"));
        #[allow(clippy::useless_conversion)]
        Ok(DirTimes {
            dev: u64::try_from(st.st_dev).map_err(|_| io::Error::other("device number"))?,
            ino: u64::try_from(st.st_ino).map_err(|_| io::Error::other("inode number"))?,
            mtime: int(i128::from(st.st_mtime))?,
            mtime_ns: int(i128::from(st.st_mtime_nsec))?,
            ctime: int(i128::from(st.st_ctime))?,
            ctime_ns: int(i128::from(st.st_ctime_nsec))?,
        })
    }

    /// Nanoseconds since the epoch of the later of the two times.
    fn latest_ns(&self) -> i128 {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        ns(self.mtime, self.mtime_ns).max(ns(self.ctime, self.ctime_ns))
    }
}

/// Nanoseconds since the epoch; `None` before it.
fn unix_ns(t: SystemTime) -> Option<i128> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

impl DirStamp {
    /// How old the directories' times must be when read for the stamp to
    /// be trusted. A directory changed in the same tick of the file
    /// system's clock as an earlier change keeps its time; two seconds
    /// cover the kernel's coarse clock (a few milliseconds), FAT's two
    /// seconds, and modest clock differences with a network file server.
    pub const SETTLE: Duration = Duration::from_secs(2);

    /// Whether this stamp, read at `read_at`, can stand for the directories'
    /// contents: its times are at least [`DirStamp::SETTLE`] older than the
    /// reading (so a later change necessarily moves them) and have
    /// sub-second precision (all four nanosecond parts zero means a file
    /// system with coarse times, where two changes a second apart look the
    /// same).
    pub fn is_settled(&self, read_at: SystemTime) -> bool {
        let Some(read_ns) = unix_ns(read_at) else {
            return false;
        };
        let settle = i128::try_from(Self::SETTLE.as_nanos()).unwrap_or(i128::MAX);
        self.is_fine() && self.latest_ns() <= read_ns - settle
    }

    /// Whether the directories' times have sub-second precision. All four
    /// nanosecond parts zero means a file system with coarse times (or a
    /// one-in-a-billion coincidence, which merely costs a scan).
    pub fn is_fine(&self) -> bool {
        [self.cur, self.new]
            .iter()
            .any(|t| t.mtime_ns != 0 || t.ctime_ns != 0)
    }

    /// Whether this stamp can stand for the directories' contents given
    /// `fs_now`, a time the same file system gave out before the stamp was
    /// read ([`Folder::fs_time`]): the times are fine-grained and all
    /// strictly earlier than `fs_now`, so any change after the reading
    /// (stamped at `fs_now` or later: the file system's clock does not run
    /// backwards) moves them. No wall-clock margin is involved, so neither
    /// the coarse clock's tick nor a file server's clock skew matters.
    pub fn is_before(&self, fs_now: SystemTime) -> bool {
        match unix_ns(fs_now) {
            Some(now) => self.is_fine() && self.latest_ns() < now,
            None => false,
        }
    }

    /// Nanoseconds since the epoch of the latest of the four times.
    fn latest_ns(&self) -> i128 {
        self.cur.latest_ns().max(self.new.latest_ns())
    }

    /// The device `cur/` and `new/` are on, when it is the same one (one file system, so one
    /// clock stamps both: [`Folder::fs_clock`]).
    pub fn device(&self) -> Option<u64> {
        (self.cur.dev == self.new.dev).then_some(self.cur.dev)
    }

    /// Whether both stamps describe the same two directories (device and inode of `cur/` and
    /// `new/`), whatever their times.
    pub fn same_directories(&self, other: &DirStamp) -> bool {
        (self.cur.dev, self.cur.ino, self.new.dev, self.new.ino)
            == (other.cur.dev, other.cur.ino, other.new.dev, other.new.ino)
    }

    /// The text form kept in the state database.
    pub(crate) fn encode(&self) -> String {
        let t = |d: &DirTimes| {
            format!(
                "{} {} {} {} {} {}",
                d.dev, d.ino, d.mtime, d.mtime_ns, d.ctime, d.ctime_ns
            )
        };
        format!("v1 {} {}", t(&self.cur), t(&self.new))
    }

    /// Parses [`DirStamp::encode`]'s form; `None` for anything else (a stamp
    /// that cannot be read is no stamp: the folder is scanned).
    pub(crate) fn decode(s: &str) -> Option<DirStamp> {
        let mut it = s.split(' ');
        if it.next()? != "v1" {
            return None;
        }
        let mut times = || -> Option<DirTimes> {
            Some(DirTimes {
                dev: it.next()?.parse().ok()?,
                ino: it.next()?.parse().ok()?,
                mtime: it.next()?.parse().ok()?,
                mtime_ns: it.next()?.parse().ok()?,
                ctime: it.next()?.parse().ok()?,
                ctime_ns: it.next()?.parse().ok()?,
            })
        };
        let cur = times()?;
        let new = times()?;
        it.next().is_none().then_some(DirStamp { cur, new })
    }
}

/// A file's change time (inode change, not modification: it cannot be set
/// from user space).
#[cfg(unix)]
fn change_time(m: &fs::Metadata) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The device a file is on.
#[cfg(unix)]
fn device_of(m: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.dev()
}

#[cfg(not(unix))]
fn device_of(_: &fs::Metadata) -> u64 {
    0
}

/// Without change times there is no probe ([`Folder::fs_time`]).
#[cfg(not(unix))]
fn change_time(_: &fs::Metadata) -> Option<SystemTime> {
    None
}

/// What an upload needs: the CRLF form of a file, its exact length known
/// before the first byte is sent.
#[derive(Debug)]
pub struct UploadReader {
    reader: LfToCrlf<File>,
    /// Length of the CRLF form (the APPEND literal size).
    pub crlf_len: u64,
    /// Hash of the CRLF form at the time of measuring.
    pub hash: ContentHash,
    /// The file held a NUL byte when measured: binary data, which IMAP carries only in a
    /// BINARY literal8 (RFC 3516, seed V0014).
    pub has_nul: bool,
}

/// Notes whether a NUL byte passed through.
struct NulScan<R> {
    inner: R,
    nul: bool,
}

impl<R: io::Read> io::Read for NulScan<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.nul |= buf[..n].contains(&0);
        Ok(n)
    }
}

impl io::Read for UploadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Folder {
    /// The folder's directory relative to the root.
    pub fn rel(&self) -> &RelPath {
        &self.rel
    }

    /// The folder's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Lists the messages in `new/` and `cur/`: one `readdir` per directory
    /// and one `lstat` per file, no file is opened. `tmp/`, hidden files,
    /// non-regular files and names without a valid base are ignored; a file
    /// that disappears during the scan is skipped.
    pub fn scan(&self) -> Result<Vec<MessageEntry>> {
        self.scan_with(&|_| None)
    }

    /// [`Folder::scan`] without the `lstat` of files the caller already
    /// knows. `known` gives, for a base, the modification time to report
    /// (the caller's record of it, for example the INTERNALDATE mailfold set
    /// it to, seed V0006) or `None` to look at the file. A known file whose
    /// name carries its size (`,S=`, Maildir++) is then described from its
    /// name alone: the directory entry's type (free from `readdir` on Linux
    /// and most file systems) says it is a regular file. That takes a scan
    /// of 100,000 messages from 100,000 `statx` calls to the two `readdir`
    /// calls. The price: a file rewritten in place under the same name
    /// would keep the size its name claims; Maildir files are never
    /// rewritten in place (mail readers write a new file and rename it).
    pub fn scan_with(
        &self,
        known: &dyn Fn(&MessageBase) -> Option<SystemTime>,
    ) -> Result<Vec<MessageEntry>> {
        let mut out = Vec::new();
        for sub in [Subdir::New, Subdir::Cur] {
            let d = self.dir.join(sub.as_str());
            let fd = self.dirs()?.sub(sub);
            let names = dirfd::names_in(fd).map_err(|e| Error::io("read directory", &d, e))?;
            for (name, regular) in names {
                if name.starts_with('.') {
                    continue;
                }
                let Some((base, flags)) = MessageBase::parse_file_name(&name) else {
                    continue;
                };
                let path = d.join(&name);
                if let (Some(size), Some(mtime), Some(regular)) =
                    (base.size_field(), known(&base), regular)
                {
                    // Not a regular file (a symbolic link, a directory): skipped.
                    if regular {
                        out.push(MessageEntry {
                            base,
                            flags,
                            subdir: sub,
                            path,
                            size,
                            mtime,
                        });
                    }
                    continue;
                }
                let info = match dirfd::file_at(fd, &name) {
                    Ok(Some(i)) => i,
                    Ok(None) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("stat", path, e)),
                };
                out.push(MessageEntry {
                    base,
                    flags,
                    subdir: sub,
                    path,
                    size: info.size,
                    mtime: info.mtime,
                });
            }
        }
        Ok(out)
    }

    /// The stamp of the folder's `cur/` and `new/` directories now; `None`
    /// when either is missing (not a complete Maildir, so never "unchanged").
    pub fn stamp(&self) -> Result<Option<DirStamp>> {
        let mut times = [DirTimes::default(); 2];
        for (slot, sub) in times.iter_mut().zip([Subdir::Cur, Subdir::New]) {
            let d = self.dir.join(sub.as_str());
            match fs::symlink_metadata(&d) {
                Ok(m) if m.is_dir() => match DirTimes::of(&m) {
                    Some(t) => *slot = t,
                    None => return Ok(None),
                },
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("stat", d, e)),
            }
        }
        let [cur, new] = times;
        Ok(Some(DirStamp { cur, new }))
    }

    /// The folder's held `cur/`, `new/` and `tmp/` handles (opened if need be).
    pub(crate) fn held_dirs(&self) -> Result<Arc<FolderDirs>> {
        self.dirs().map(Arc::clone)
    }

    /// The stamp of `cur/` and `new/` read through the folder's held handles: what
    /// [`crate::ListingWatch`] follows through [`Folder::held_dirs`] is exactly what this
    /// stamp describes.
    #[cfg(unix)]
    pub(crate) fn held_stamp(&self) -> Result<DirStamp> {
        let dirs = self.dirs()?;
        let times = |sub: Subdir| {
            DirTimes::of_handle(dirs.sub(sub))
                .map_err(|e| Error::io("stat", self.dir.join(sub.as_str()), e))
        };
        Ok(DirStamp {
            cur: times(Subdir::Cur)?,
            new: times(Subdir::New)?,
        })
    }

    /// The file system's own current time, as it would stamp a change made
    /// now: a probe file is created in the folder's `tmp/` (never in `cur/`
    /// or `new/`, whose stamps must not move), its change time read, and the
    /// file removed. Any change made after this call gets this time or a
    /// later one ([`DirStamp::is_before`]). `None` where there is no `tmp/`,
    /// it cannot be written, or the platform has no change times.
    pub fn fs_time(&self) -> Result<Option<SystemTime>> {
        Ok(self.fs_clock()?.map(|(t, _)| t))
    }

    /// [`Folder::fs_time`] with the device of the probe file: the file system whose clock
    /// gave the time. Any change made after this call to a directory on that same device
    /// ([`DirStamp::device`]) gets this time or a later one, whichever folder it belongs to.
    ///
    /// Why a file at all, rather than the wall clock: the times in a stamp are the file
    /// system's, which advance in coarse ticks (and on a network file system come from the
    /// server's clock), so only a time the same file system gave out can be compared with
    /// them. Why in a folder's own `tmp/`: that is where a file can be made without moving
    /// a stamp, on a file system that holds Maildir folders. One probe serves every folder
    /// on its device; a folder whose `cur/` and `new/` are elsewhere (a mount inside the
    /// tree) needs one of its own.
    pub fn fs_clock(&self) -> Result<Option<(SystemTime, u64)>> {
        let n = UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(".mailfold-clock.{}.{n}", std::process::id());
        let probe = self.dir.join("tmp").join(&name);
        let tmp = match self.dirs() {
            Ok(d) => d.tmp(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        // A leftover from a crashed run would keep its old times: the probe
        // must be a new file.
        unlink_tolerant(tmp, &name, &probe)?;
        let made = dirfd::create_file_at(tmp, &name);
        let time = match made {
            Ok(f) => {
                let meta = f.metadata();
                drop(f);
                unlink_tolerant(tmp, &name, &probe)?;
                meta.map_err(|e| Error::io("stat", &probe, e))
                    .map(|m| change_time(&m).map(|t| (t, device_of(&m))))?
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                None
            }
            Err(e) => return Err(Error::io("create file", probe, e)),
        };
        Ok(time)
    }

    /// The regular file named `name` in `subdir`, looked up through the folder's held
    /// directory (no path resolution from the root); `None` when there is none, or the name
    /// is not a message file name.
    pub fn entry_named(&self, subdir: Subdir, name: &str) -> Result<Option<MessageEntry>> {
        let Some((base, flags)) = MessageBase::parse_file_name(name) else {
            return Ok(None);
        };
        let path = self.dir.join(subdir.as_str()).join(name);
        let info = match dirfd::file_at(self.dirs()?.sub(subdir), name) {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat message", &path, e)),
        };
        Ok(Some(MessageEntry {
            base,
            flags,
            subdir,
            path,
            size: info.size,
            mtime: info.mtime,
        }))
    }

    /// Finds the file with this base (after mutt or notmuch renamed it).
    pub fn find(&self, base: &MessageBase) -> Result<Option<MessageEntry>> {
        Ok(self.scan()?.into_iter().find(|e| &e.base == base))
    }

    /// Starts writing a new message. Chunks go to a file in `tmp/`;
    /// [`MessageWriter::commit`] makes it visible in `cur/`.
    pub fn create_message(&self, opts: NewMessage) -> Result<MessageWriter> {
        MessageWriter::create(
            self.dir.clone(),
            Arc::clone(self.dirs()?),
            unique_base_prefix(),
            opts,
            self.fsync,
        )
    }

    /// Sets the flags of a message: renames it within `cur/`, moving it from
    /// `new/` to `cur/` as the Maildir specification asks of a reader that
    /// has seen it. If the file was renamed meanwhile, it is found again by
    /// its base.
    pub fn set_flags(&self, entry: &MessageEntry, flags: &MaildirFlags) -> Result<MessageEntry> {
        let (moved, touched) = self.set_flags_unsynced(entry, flags)?;
        self.sync_subdirs(&touched)?;
        Ok(moved)
    }

    /// [`Folder::set_flags`] without the fsync of the directories the rename touched, which
    /// it returns (none when nothing was renamed): a caller renaming many files fsyncs each
    /// directory once with [`Folder::sync_subdirs`], before it records any of the renames
    /// anywhere durable.
    pub fn set_flags_unsynced(
        &self,
        entry: &MessageEntry,
        flags: &MaildirFlags,
    ) -> Result<(MessageEntry, Vec<Subdir>)> {
        let new_name = entry.base.file_name(flags);
        let target = self.dir.join("cur").join(&new_name);
        let dirs = Arc::clone(self.dirs()?);
        let cur = dirs.sub(Subdir::Cur);
        let rename = |from: &MessageEntry| -> Result<()> {
            // rename(2) would replace a file of the same name: never clobber.
            dirfd::rename_noreplace_at(
                dirs.sub(from.subdir),
                file_name(&from.path)?,
                cur,
                &new_name,
            )
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    path: target.clone(),
                },
                _ => Error::io("rename message", &from.path, e),
            })
        };
        // The file is renamed where the caller saw it, in one system call; only when it is
        // no longer there (a mail reader renamed it since) is it looked for by its base.
        let renamed = if target == entry.path {
            None
        } else {
            match rename(entry) {
                Ok(()) => Some(entry.clone()),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            }
        };
        let current = match renamed {
            Some(c) => c,
            None => {
                let found = self.refresh(entry)?;
                if found.path != target {
                    rename(&found)?;
                }
                found
            }
        };
        let mut touched = Vec::new();
        if target != current.path {
            touched.push(Subdir::Cur);
            if current.subdir == Subdir::New {
                touched.push(Subdir::New);
            }
        }
        Ok((
            MessageEntry {
                flags: flags.clone(),
                subdir: Subdir::Cur,
                path: target,
                ..current
            },
            touched,
        ))
    }

    /// Fsyncs each of the folder's subdirectories given (when fsync is on), making the
    /// renames made in them durable.
    pub fn sync_subdirs(&self, subs: &[Subdir]) -> Result<()> {
        for sub in subs {
            self.sync_sub(*sub)?;
        }
        Ok(())
    }

    /// Deletes a message file. Returns false if it was already gone.
    pub fn delete(&self, entry: &MessageEntry) -> Result<bool> {
        let current = match self.refresh(entry) {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        match dirfd::unlink_at(self.dirs()?.sub(current.subdir), file_name(&current.path)?) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("remove message", &current.path, e)),
        }
        self.sync_sub(current.subdir)?;
        Ok(true)
    }

    /// Moves a message file to another folder, keeping its base and flags.
    /// Refuses to overwrite an existing file of the same name.
    pub fn move_to(&self, entry: &MessageEntry, dest: &Folder) -> Result<MessageEntry> {
        let current = self.refresh(entry)?;
        let name = current.base.file_name(&current.flags);
        let target = dest.dir.join(current.subdir.as_str()).join(&name);
        let dest_dirs = dest.dirs()?;
        let (from, to) = (
            self.dirs()?.sub(current.subdir),
            dest_dirs.sub(current.subdir),
        );
        let from_name = file_name(&current.path)?;
        if dirfd::exists_at(to, &name) {
            return Err(Error::AlreadyExists { path: target });
        }
        match dirfd::rename_at(from, from_name, to, &name) {
            Ok(()) => {}
            Err(e) if is_cross_device(&e) => {
                // Different file systems: copy through the target's tmp/ so
                // the message appears atomically, then remove the source.
                let tmp = dest.dir.join("tmp").join(&name);
                let copy = || -> io::Result<()> {
                    let mut src = dirfd::open_file_at(from, from_name)?;
                    let mut out = dirfd::create_file_at(dest_dirs.tmp(), &name)?;
                    io::copy(&mut src, &mut out)?;
                    if self.fsync {
                        out.sync_all()?;
                    }
                    Ok(())
                };
                copy().map_err(|e| Error::io("copy message", &tmp, e))?;
                dirfd::rename_at(dest_dirs.tmp(), &name, to, &name)
                    .map_err(|e| Error::io("rename message", &tmp, e))?;
                dest.sync_sub(current.subdir)?;
                dirfd::unlink_at(from, from_name)
                    .map_err(|e| Error::io("remove message", &current.path, e))?;
            }
            Err(e) => return Err(Error::io("move message", &current.path, e)),
        }
        dest.sync_sub(current.subdir)?;
        self.sync_sub(current.subdir)?;
        Ok(MessageEntry {
            path: target,
            ..current
        })
    }

    /// Opens a message file for reading where a scan found it, through the folder's held
    /// directory handle and without following a link: a file swapped for a link since the
    /// scan is refused, never read through.
    pub fn open_message(&self, entry: &MessageEntry) -> Result<File> {
        let dir = self.dirs()?.sub(entry.subdir);
        dirfd::open_file_at(dir, file_name(&entry.path)?)
            .map_err(|e| Error::io("open message", &entry.path, e))
    }

    /// Opens a message for upload: measures the CRLF length and hash with one
    /// streaming pass, then rewinds, so APPEND can declare the literal size
    /// before sending. Memory use is bounded whatever the file size. If the
    /// file is rewritten in place between the two passes the caller sees a
    /// different hash from [`ContentHash`] of what it sent; mail readers
    /// replace files rather than rewrite them, so this is not expected.
    pub fn open_upload(&self, entry: &MessageEntry) -> Result<UploadReader> {
        let current = self.refresh(entry)?;
        let (dir, name) = (self.dirs()?.sub(current.subdir), file_name(&current.path)?);
        let open = || {
            dirfd::open_file_at(dir, name).map_err(|e| Error::io("open message", &current.path, e))
        };
        let mut scan = NulScan {
            inner: open()?,
            nul: false,
        };
        let (hash, crlf_len) = canonical_digest_of(&mut scan)
            .map_err(|e| Error::io("read message", &current.path, e))?;
        Ok(UploadReader {
            reader: LfToCrlf::new(open()?),
            crlf_len,
            hash,
            has_nul: scan.nul,
        })
    }

    /// Removes files in `tmp/` older than `max_age` (the Maildir
    /// specification suggests 36 hours): leftovers of interrupted writes.
    pub fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        let tmp = self.dir.join("tmp");
        let fd = self.dirs()?.tmp();
        let now = SystemTime::now();
        let mut removed = 0;
        let names = dirfd::names_in(fd).map_err(|e| Error::io("read directory", &tmp, e))?;
        for (name, _) in names {
            let Ok(Some(info)) = dirfd::file_at(fd, &name) else {
                continue;
            };
            let old = now
                .duration_since(info.mtime)
                .is_ok_and(|age| age >= max_age);
            if old {
                unlink_tolerant(fd, &name, &tmp.join(&name))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The entry as it is now: the same path if it still exists, else the
    /// file with the same base.
    fn refresh(&self, entry: &MessageEntry) -> Result<MessageEntry> {
        let dir = self.dirs()?.sub(entry.subdir);
        let here =
            file_name(&entry.path).is_ok_and(|n| matches!(dirfd::file_at(dir, n), Ok(Some(_))));
        if here {
            return Ok(entry.clone());
        }
        self.find(&entry.base)?.ok_or_else(|| Error::NotFound {
            path: entry.path.clone(),
        })
    }
}

impl Folder {
    /// The folder's `cur/`, `new/` and `tmp/`, opened at the first call without
    /// following a link at any level from the root, and held from then on (so a
    /// folder the caller only stamps, or keeps in a list, holds no descriptors).
    fn dirs(&self) -> Result<&Arc<FolderDirs>> {
        if let Some(d) = self.held.get() {
            return Ok(d);
        }
        let levels = self.levels.iter().map(String::as_str);
        let root_path = self
            .dir
            .ancestors()
            .nth(self.levels.len())
            .unwrap_or(&self.dir);
        let opened = FolderDirs::open(self.root_fd.as_fd(), root_path, levels)?;
        Ok(self.held.get_or_init(|| Arc::new(opened)))
    }

    /// fsync of `cur/` or `new/` through its handle.
    fn sync_sub(&self, sub: Subdir) -> Result<()> {
        dirfd::sync_dir_fd(
            self.fsync,
            self.dirs()?.sub(sub),
            &self.dir.join(sub.as_str()),
        )
    }
}

/// The file name of a message path (every entry's path ends in one).
fn file_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::NotFound {
            path: path.to_path_buf(),
        })
}

/// Removes `name` from the held directory `dir`; already gone is fine.
fn unlink_tolerant(dir: std::os::fd::BorrowedFd<'_>, name: &str, shown: &Path) -> Result<()> {
    match dirfd::unlink_at(dir, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove file", shown, e)),
    }
}

fn is_cross_device(e: &io::Error) -> bool {
    // EXDEV is 18 on Linux and the BSDs; std has no stable kind for it yet.
    e.raw_os_error() == Some(18)
}

/// The unique part of a new message's base, before the size fields:
/// `<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<host>` as the
/// Maildir convention describes (Dovecot and mutt write the same shape).
fn unique_base_prefix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let counter = UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process: enough to separate two
    // processes that reuse a pid within the same microsecond.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(counter);
    h.write_u128(now.as_nanos());
    format!(
        "{}.M{}P{}Q{}R{:016x}.{}",
        now.as_secs(),
        now.subsec_micros(),
        process_id(),
        counter,
        h.finish(),
        host_name()
    )
}

/// This process's id, read once: `getpid` is a system call on current C libraries, and it
/// was one per message written (bench/compare's syscall count of an initial sync). The
/// process never forks without an exec, so the value cannot go stale.
fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// The host name with `/` and `:` escaped as the Maildir convention says
/// (`\057`, `\072`); also `,` so size fields parse unambiguously.
fn host_name() -> String {
    // Read once per process: it was a file read for every message written (bench/compare's
    // syscall count of an initial sync).
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(read_host_name).clone()
}

fn read_host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let raw = raw.trim();
    let mut out = String::new();
    for ch in raw.chars() {
        match ch {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_ascii_graphic() => out.push(c),
            _ => {}
        }
    }
    if out.is_empty() || out.len() > 64 {
        "localhost".to_owned()
    } else {
        out
    }
}

/// The parts of the Maildir tree that differ in the one-level layouts.
impl Maildir {
    /// The absolute path of a stored folder path (no checks).
    pub(crate) fn path_of(&self, rel: &RelPath) -> PathBuf {
        let mut p = self.root().to_path_buf();
        p.extend(self.layout().dirs_of(rel));
        p
    }

    /// Renames one folder's directory in a one-level layout. Its sub-folders
    /// are separate directories there and keep their names; the sync renames
    /// each folder the server renamed. Relative to the root's handle: both
    /// names are entries of the root itself.
    pub(crate) fn rename_one_level(&self, src: &HeldEntry, to: &RelPath) -> Result<Folder> {
        let dst = self.path_of(to);
        let root = self.root_handle();
        let Some(to_name) = self.layout().dirs_of(to).pop() else {
            // Maildir++'s INBOX is the root.
            return Err(Error::AlreadyExists { path: dst });
        };
        if dirfd::exists_at(root, &to_name) {
            return Err(Error::AlreadyExists { path: dst });
        }
        self.move_dir(src, root, &to_name, self.root())?;
        self.create_folder_at(to)
    }

    /// Creates a folder of a one-level layout. These layouts have no alias directories, so on
    /// a case-insensitive file system (seed V0016) a directory that differs from the new one
    /// only in case is refused rather than shared.
    pub(crate) fn create_one_level(&self, rel: &RelPath) -> Result<Folder> {
        if self.case_insensitive() {
            if let Some(dir) = self.layout().dirs_of(rel).pop() {
                let folded = dir.to_lowercase();
                for name in names_of(self.root_handle(), self.root())? {
                    if name != dir && name.to_lowercase() == folded {
                        return Err(Error::UnsafePath {
                            path: self.root().join(name),
                            reason: "another folder's directory differs only in case, and this layout has no alias directories",
                        });
                    }
                }
            }
        }
        self.create_folder_at(rel)
    }

    /// Lists the folders of a one-level layout: the directories directly in
    /// the root that the layout names (and, for Maildir++, the root itself
    /// as INBOX when it is a Maildir). Read through the root's handle; each
    /// folder is opened from it without following a link, and one that is a
    /// link by then is skipped (in [`FolderListing::skipped`]).
    pub(crate) fn list_one_level(&self) -> Result<FolderListing> {
        let layout = self.layout();
        let (root, root_path) = (self.root_handle(), self.root());
        let mut out = FolderListing::default();
        if layout == Layout::MaildirPlusPlus {
            let looked = look_at(root);
            if looked.stamp_parts.is_some() {
                out.folders.push(LocalFolder {
                    rel: RelPath::parse("INBOX")?,
                    name: FolderName::inbox(),
                    is_maildir: true,
                    canonical: true,
                    stamp: looked.stamp(),
                    has_tmp: looked.tmp,
                });
            }
        }
        let entries =
            dirfd::dir_entries(root).map_err(|e| Error::io("read directory", root_path, e))?;
        for entry in entries {
            let Some(dir) = subdir_name(entry, root_path, &mut out.skipped) else {
                continue;
            };
            let path = root_path.join(&dir);
            if dir.starts_with(PROBE_PREFIX) || crate::name::is_maildir_subdir(&dir) {
                continue;
            }
            let Some(rel) = layout.rel_of_dir(&dir) else {
                // Hidden entries are not folders in the flat layout; in Maildir++
                // a plain name is not a folder and `.INBOX…` is ambiguous.
                if layout == Layout::MaildirPlusPlus && dir.starts_with('.') {
                    out.skipped.push(path);
                }
                continue;
            };
            let Some((name, canonical)) = layout.name_of(&rel) else {
                out.skipped.push(path);
                continue;
            };
            let looked = match dirfd::open_dir_at(root, &dir, &path) {
                Ok(fd) => look_at(fd.as_fd()),
                Err(Error::NotFound { .. }) => continue,
                Err(Error::UnsafePath { .. }) => {
                    out.skipped.push(path);
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.folders.push(LocalFolder {
                rel,
                name,
                is_maildir: looked.stamp_parts.is_some(),
                canonical,
                stamp: looked.stamp(),
                has_tmp: looked.tmp,
            });
        }
        out.folders.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }
}
