//! Progress of a run as it happens, for a front end to draw (the CLI's per-folder bars).
//!
//! The applier calls a [`Progress`] observer from the thread doing the work (with
//! `connections > 1`, from several threads at once: implementations must be `Sync`). Events
//! are cheap hints: they never change what the run does, and the final [`crate::SyncReport`]
//! remains the authority on what happened. An observer must not block; it is called once per
//! body chunk during downloads.

use crate::plan::FolderPath;

/// One thing that happened during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// The plan is made: how much work the run has in total.
    Planned {
        /// Folders with at least one operation.
        folders: usize,
        /// Messages to download (whole or headers-only).
        downloads: usize,
        /// Messages to upload.
        uploads: usize,
        /// Every operation of the plan.
        ops: usize,
    },
    /// Work on a folder begins (it may begin more than once, e.g. moves then downloads).
    FolderStarted {
        /// The folder.
        folder: &'a FolderPath,
        /// Messages this batch will download into it.
        downloads: usize,
        /// The server's declared total size of those messages, when known.
        bytes: Option<u64>,
    },
    /// Bytes of a message body arrived (wire form).
    Bytes {
        /// The folder.
        folder: &'a FolderPath,
        /// How many bytes arrived since the last event.
        bytes: u64,
    },
    /// A message was downloaded, uploaded, or had its flags or place changed.
    Message {
        /// The folder.
        folder: &'a FolderPath,
    },
    /// Work on a folder (this batch of it) is done.
    FolderDone {
        /// The folder.
        folder: &'a FolderPath,
    },
}

/// Receives [`ProgressEvent`]s.
pub trait Progress: Sync {
    /// Called for every event, from the thread doing the work.
    fn event(&self, event: ProgressEvent<'_>);
}

/// The observer that ignores everything (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: ProgressEvent<'_>) {}
}

impl<F: Fn(ProgressEvent<'_>) + Sync> Progress for F {
    fn event(&self, event: ProgressEvent<'_>) {
        self(event)
    }
}
