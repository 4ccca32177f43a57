//! What a folder's `cur/` and `new/` hold, followed from a known point on without listing
//! them again (Linux inotify).
//!
//! The end of a run proves a folder's directories match its state rows before recording
//! their stamp (the listing digest, see `mailfold-sync`'s `record_stamps`). For a folder the
//! run found unchanged locally, the listing at the start is known already: its stamp was the
//! recorded one, so its names are the ones the rows imply, whose digest and count the state
//! keeps. A [`ListingWatch`] added at that moment is told of every name added to or removed
//! from either directory afterwards, by this process (the run's own renames and deliveries)
//! or any other (a mail reader racing the sync); folding those names into the known digest
//! gives the digest of the listing as it is now, for the price of the changes instead of a
//! listing of the whole folder.
//!
//! Soundness rests on three facts. The watch is added to the very directories (the held
//! `O_NOFOLLOW` handles) whose stamp is then read and compared with the recorded one, so
//! every change after that comparison is reported. The kernel queues a directory's event
//! before the system call that changed it returns, so a change made before the events are
//! read is among them. And what cannot be followed exactly (a full event queue, a directory
//! moved or removed, a watch limit reached, a platform without inotify) makes the folder
//! unknown here: the caller then lists it as before. The names are folded with the rules of
//! [`Folder::scan`](crate::Folder::scan): hidden names, names without a valid base,
//! directories and names that are not UTF-8 do not count; anything else (a symbolic link
//! created in `cur/`, say) counts as a message, so the digest differs from the rows and the
//! folder is listed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::maildir::{DirStamp, Folder};
use crate::message::MessageBase;
use crate::state::{listing_key_of_file, FolderId};

/// A folder's listing as known at the watch's start, with every change reported since.
#[derive(Debug, Clone, Copy)]
struct Tally {
    /// XOR of the listing keys of the names present.
    digest: i64,
    /// How many names are present.
    count: i64,
    /// A change could not be followed: the listing is not known here.
    lost: bool,
    /// The stamp read when the watch began (for its device and inode numbers).
    stamp: DirStamp,
}

/// Folders whose listings are followed (module docs). Inert where the platform has no
/// inotify or it cannot be set up: every [`ListingWatch::add`] then returns `None`. Shared by
/// reference (the run's workers write while the main thread may read the queue).
#[derive(Debug, Default)]
pub struct ListingWatch(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    os: Option<imp::Inotify>,
    folders: HashMap<FolderId, Tally>,
}

impl ListingWatch {
    /// A watch following nothing yet; inert when inotify cannot be set up.
    pub fn new() -> ListingWatch {
        ListingWatch(Mutex::new(Inner {
            os: imp::Inotify::new(),
            folders: HashMap::new(),
        }))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the tallies are plain values.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts following `folder`'s `cur/` and `new/`, whose listing is taken to have
    /// `digest` and `count` ([`crate::StateRead::listing_digest`] of its rows) **if** the
    /// stamp returned is the one that proves it (the caller compares it with the recorded
    /// stamp, and calls [`ListingWatch::forget`] when it differs). The stamp is read through
    /// the watched directories after the watch began. `None` when the folder cannot be
    /// followed.
    pub fn add(&self, id: FolderId, folder: &Folder, digest: i64, count: u64) -> Option<DirStamp> {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let os = inner.os.as_mut()?;
        if inner.folders.contains_key(&id) {
            return None;
        }
        let dirs = folder.held_dirs().ok()?;
        if let Err(other) = os.add(id, &dirs) {
            // Directories already followed for another folder: the reports cannot be told
            // apart, so neither folder's listing is known.
            if let Some(t) = other.and_then(|o| inner.folders.get_mut(&o)) {
                t.lost = true;
            }
            return None;
        }
        // Read after the watch began: a change after this reading is reported.
        let stamp = folder.held_stamp().ok()?;
        inner.folders.insert(
            id,
            Tally {
                digest,
                count: i64::try_from(count).ok()?,
                lost: false,
                stamp,
            },
        );
        Some(stamp)
    }

    /// Whether inotify is set up (the watch can follow folders).
    pub fn is_active(&self) -> bool {
        self.inner().os.is_some()
    }

    /// Stops trusting what is known of `id` (its stamp did not prove the listing).
    pub fn forget(&self, id: FolderId) {
        if let Some(t) = self.inner().folders.get_mut(&id) {
            t.lost = true;
        }
    }

    /// Whether `id` is followed and nothing was lost so far.
    pub fn follows(&self, id: FolderId) -> bool {
        self.inner().folders.get(&id).is_some_and(|t| !t.lost)
    }

    /// Reads every change reported so far into the folders' tallies. Cheap when there is
    /// none; worth calling now and then during a long run, so that the kernel's queue (16,384
    /// events by default) does not overflow.
    pub fn drain(&self) {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let Some(os) = inner.os.as_mut() else {
            return;
        };
        let folders = &mut inner.folders;
        os.read(&mut |change| match change {
            Change::Name { id, name, added } => {
                let Some(t) = folders.get_mut(&id) else {
                    return;
                };
                if name.starts_with('.') {
                    return;
                }
                let Some((base, flags)) = MessageBase::parse_file_name(name) else {
                    return;
                };
                // XOR adds and removes alike; the count says which.
                t.digest ^= listing_key_of_file(&base, &flags);
                t.count += if added { 1 } else { -1 };
            }
            Change::Lost(Some(id)) => {
                if let Some(t) = folders.get_mut(&id) {
                    t.lost = true;
                }
            }
            Change::Lost(None) => {
                for t in folders.values_mut() {
                    t.lost = true;
                }
            }
        });
    }

    /// The digest and count of `id`'s listing now (as of the last [`ListingWatch::drain`]),
    /// when every change since the watch began was followed and `now` (a stamp of the
    /// folder read by path) names the watched directories. `None` otherwise.
    pub fn listing(&self, id: FolderId, now: &DirStamp) -> Option<(i64, u64)> {
        let inner = self.inner();
        let t = inner.folders.get(&id)?;
        if t.lost || !t.stamp.same_directories(now) {
            return None;
        }
        Some((t.digest, u64::try_from(t.count).ok()?))
    }
}

/// One thing the kernel reported.
enum Change<'a> {
    /// A name added to (created in, moved into) or removed from (deleted from, moved out of)
    /// a followed directory. Directories and names that are not UTF-8 are not reported.
    Name {
        id: FolderId,
        name: &'a str,
        added: bool,
    },
    /// What happened to this folder (or, for `None`, to every folder: the queue overflowed)
    /// cannot be followed.
    Lost(Option<FolderId>),
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

    use super::Change;
    use crate::dirfd::FolderDirs;
    use crate::message::Subdir;
    use crate::state::FolderId;

    /// An inotify instance and what each of its watches follows.
    #[derive(Debug)]
    pub(super) struct Inotify {
        fd: OwnedFd,
        watches: HashMap<i32, FolderId>,
    }

    impl Inotify {
        pub(super) fn new() -> Option<Inotify> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            Some(Inotify {
                fd,
                watches: HashMap::new(),
            })
        }

        /// Watches the directories the handles name. The watch is added through
        /// `/proc/self/fd`, which names the open directory itself, never whatever its path
        /// leads to now. An error when either watch cannot be added (no `/proc`, the
        /// per-user watch limit), with the other folder when a directory is watched already
        /// for one.
        pub(super) fn add(
            &mut self,
            id: FolderId,
            dirs: &FolderDirs,
        ) -> Result<(), Option<FolderId>> {
            let flags = WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF
                | WatchFlags::ONLYDIR;
            for sub in [Subdir::Cur, Subdir::New] {
                let path = format!("/proc/self/fd/{}", dirs.sub(sub).as_raw_fd());
                let Ok(wd) = inotify::add_watch(self.fd.as_fd(), path, flags) else {
                    return Err(None);
                };
                match self.watches.insert(wd, id) {
                    Some(other) if other != id => return Err(Some(other)),
                    _ => {}
                }
            }
            Ok(())
        }

        /// Reads every queued event, reporting each as a [`Change`].
        pub(super) fn read(&mut self, each: &mut dyn FnMut(Change<'_>)) {
            let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
            let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::AGAIN) => return,
                    Err(rustix::io::Errno::INTR) => continue,
                    // Anything else: nothing read can be trusted any more.
                    Err(_) => {
                        each(Change::Lost(None));
                        return;
                    }
                };
                let mask = event.events();
                if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                    each(Change::Lost(None));
                    continue;
                }
                let Some(&id) = self.watches.get(&event.wd()) else {
                    continue;
                };
                let gone = ReadFlags::IGNORED
                    | ReadFlags::DELETE_SELF
                    | ReadFlags::MOVE_SELF
                    | ReadFlags::UNMOUNT;
                if mask.intersects(gone) {
                    each(Change::Lost(Some(id)));
                    continue;
                }
                // Directories inside `cur/` or `new/` are not messages to a scan.
                if mask.contains(ReadFlags::ISDIR) {
                    continue;
                }
                let Some(name) = event.file_name().and_then(|n| n.to_str().ok()) else {
                    continue;
                };
                let added = mask.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO);
                let removed = mask.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM);
                if added == removed {
                    each(Change::Lost(Some(id)));
                    continue;
                }
                each(Change::Name { id, name, added });
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Change;
    use crate::dirfd::FolderDirs;
    use crate::state::FolderId;

    /// No inotify here: nothing is followed, every folder is listed.
    #[derive(Debug)]
    pub(super) struct Inotify;

    impl Inotify {
        pub(super) fn new() -> Option<Inotify> {
            None
        }

        pub(super) fn add(&mut self, _: FolderId, _: &FolderDirs) -> Result<(), Option<FolderId>> {
            Err(None)
        }

        pub(super) fn read(&mut self, _: &mut dyn FnMut(Change<'_>)) {}
    }
}
