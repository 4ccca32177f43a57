//! What a message file is to the store: its identity (the base of its name), where it lies
//! (`new/` or `cur/`), what a scan finds of it, and what a new one is written with. Shared by
//! the folder operations (`maildir.rs`) and the writer of new files (`writer.rs`), neither of
//! which the other's internals need.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::{NameError, Result};
use crate::flags::MaildirFlags;

/// Whether a message file lies in `new/` or `cur/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subdir {
    /// `new/`: delivered, not yet seen by a mail reader.
    New,
    /// `cur/`: seen by a mail reader or placed by mailfold.
    Cur,
}

impl Subdir {
    /// The directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Subdir::New => "new",
            Subdir::Cur => "cur",
        }
    }
}

/// The unique base of a message file name: everything before `:2,`.
/// Valid bases are non-empty, at most 200 bytes, contain no `/`, `:` or NUL
/// and do not start with a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageBase(String);

impl MessageBase {
    /// Checks and wraps a base.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let bad = |reason| NameError::BadBase {
            base: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 200 {
            return Err(bad("longer than 200 bytes"));
        }
        if s.starts_with('.') {
            return Err(bad("starts with a dot"));
        }
        if s.contains(['/', ':', '\0']) {
            return Err(bad("contains '/', ':' or NUL"));
        }
        Ok(MessageBase(s.to_owned()))
    }

    /// The base as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `,S=` (file size) field of a Maildir++ base, if present.
    pub fn size_field(&self) -> Option<u64> {
        self.field('S')
    }

    /// The `,W=` (size with CRLF line ends, Dovecot's convention) field.
    pub fn crlf_size_field(&self) -> Option<u64> {
        self.field('W')
    }

    fn field(&self, key: char) -> Option<u64> {
        self.0.split(',').skip(1).find_map(|f| {
            f.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .and_then(|v| v.parse().ok())
        })
    }

    /// Splits a file name into base and flags. Files without `:2,` (as in
    /// `new/`) have no flags; an info part other than `2,…` is ignored.
    pub fn parse_file_name(name: &str) -> Option<(MessageBase, MaildirFlags)> {
        let (base, flags) = match name.split_once(':') {
            Some((b, info)) => (b, info.strip_prefix("2,").unwrap_or("")),
            None => (name, ""),
        };
        let base = MessageBase::new(base).ok()?;
        Some((base, MaildirFlags::parse(flags)))
    }

    /// The file name for this base with these flags.
    pub fn file_name(&self, flags: &MaildirFlags) -> String {
        format!("{}:2,{}", self.0, flags)
    }
}

impl std::fmt::Display for MessageBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    /// The file's identity.
    pub base: MessageBase,
    /// The flags from the file name.
    pub flags: MaildirFlags,
    /// `new/` or `cur/`.
    pub subdir: Subdir,
    /// The full path.
    pub path: PathBuf,
    /// File size in bytes (LF form).
    pub size: u64,
    /// Modification time (mailfold sets it to INTERNALDATE, seed V0006).
    pub mtime: SystemTime,
}

/// Options for a new message file.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Flags for the file name.
    pub flags: MaildirFlags,
    /// INTERNALDATE as seconds since the Unix epoch; becomes the file's
    /// mtime (seed V0006).
    pub internaldate: Option<i64>,
}
