//! How folder names become directories: the three tree layouts.
//!
//! * [`Layout::Nested`] (the default): one directory level per name component,
//!   `Work/Projects/`, INBOX at `INBOX/` (mbsync's `SubFolders Verbatim`).
//! * [`Layout::Flat`]: one directory per folder directly under the root, the
//!   components joined by a separator, `Work.Projects/`, INBOX at `INBOX/`
//!   (OfflineIMAP's default Maildir layout with its `sep`, and mbsync's
//!   `Flatten`).
//! * [`Layout::MaildirPlusPlus`]: the root itself is INBOX and every other
//!   folder is a hidden directory beside INBOX's `cur/ new/ tmp/`,
//!   `.Work.Projects/` (Courier and Dovecot's Maildir++, mbsync's
//!   `SubFolders Maildir++`). A folder below INBOX keeps an empty first part,
//!   `INBOX/Sub` → `..Sub`, as mbsync writes it.
//!
//! In the two one-level layouts a component is first written in modified UTF-7 (RFC 3501
//! 5.1.3), as Dovecot, mbsync and OfflineIMAP name these directories (`Été` is `&AMk-t&AOk-`),
//! then escaped exactly as in the nested layout ([`crate::name`]) with, in addition, the
//! separator written as `%XX` wherever it occurs, so splitting a directory name at the
//! separator gives back the components: the mapping stays a bijection (checked by property
//! tests for every layout). Modified UTF-7 is decoded strictly, so a directory name has at
//! most one reading.
//!
//! The state database keeps each folder's [`RelPath`]. In the one-level
//! layouts that is the joined encoding (`Work.Projects`, `INBOX`,
//! `INBOX.Sub`), a safe single level; [`Layout::dirs_of`] turns it into the
//! directory levels actually used under the root (none for Maildir++'s INBOX,
//! `.Work.Projects` for its other folders).

use crate::error::NameError;
use crate::name::{decode_component_in, encode_component_in, FolderName, RelPath, MAX_DIR_NAME};
use mailfold_proto::utf7;

/// The separator of Maildir++ directory names (fixed by the format).
const MAILDIRPP_SEP: char = '.';

/// A tree layout (the account key `layout`, with `layout_separator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Nested directories, INBOX at `INBOX/`.
    #[default]
    Nested,
    /// One level, components joined by `separator`, INBOX at `INBOX/`.
    Flat {
        /// The separator between components (default `.`).
        separator: char,
    },
    /// The root is INBOX; other folders are `.A.B` directories in it.
    MaildirPlusPlus,
}

impl Layout {
    /// A flat layout with `separator`, refused unless the separator is one
    /// printable ASCII punctuation character other than `/` and `%` (`/` would
    /// nest, `%` is the escape character).
    pub fn flat(separator: char) -> std::result::Result<Layout, NameError> {
        if separator.is_ascii_punctuation() && separator != '/' && separator != '%' {
            Ok(Layout::Flat { separator })
        } else {
            Err(NameError::BadRelPath {
                path: separator.to_string(),
                reason: "a layout separator must be one ASCII punctuation character other than '/' and '%'",
            })
        }
    }

    /// True for the nested layout, whose mapping lives in the Maildir code itself.
    pub fn is_nested(self) -> bool {
        self == Layout::Nested
    }

    /// The separator of a one-level layout.
    fn separator(self) -> Option<char> {
        match self {
            Layout::Nested => None,
            Layout::Flat { separator } => Some(separator),
            Layout::MaildirPlusPlus => Some(MAILDIRPP_SEP),
        }
    }

    /// The stored relative path of `name` in a one-level layout (`None` for
    /// the nested one, which maps level by level with aliases). A name whose
    /// directory would exceed the file-name limit is refused with a clear
    /// error: one-level layouts have no alias directories.
    pub fn rel_of(self, name: &FolderName) -> Option<std::result::Result<RelPath, NameError>> {
        let sep = self.separator()?;
        let mut buf = [0u8; 4];
        let joined = name
            .components()
            .iter()
            .map(|c| encode_part(c, sep))
            .collect::<Vec<_>>()
            .join(&*sep.encode_utf8(&mut buf));
        // Maildir++ adds a leading dot to the stored form.
        let limit = match self {
            Layout::MaildirPlusPlus => MAX_DIR_NAME - 1,
            _ => MAX_DIR_NAME,
        };
        if joined.len() > limit {
            return Some(Err(NameError::BadRelPath {
                path: joined,
                reason: "folder name too long for a one-level layout (flat or maildir++)",
            }));
        }
        Some(RelPath::parse(&joined))
    }

    /// The folder name a one-level stored path decodes to, and whether the
    /// path is the canonical encoding of that name (a directory another tool
    /// made may not be; the caller then binds the folder to the path).
    pub fn name_of(self, rel: &RelPath) -> Option<(FolderName, bool)> {
        let sep = self.separator()?;
        let mut canonical = true;
        let comps = rel
            .as_str()
            .split(sep)
            .map(|d| match decode_part(d, sep) {
                Some(c) => c,
                None => {
                    canonical = false;
                    crate::name::decode_component_lenient(d).0
                }
            })
            .collect();
        FolderName::new(comps).ok().map(|n| (n, canonical))
    }

    /// The directory levels under the root that a stored path names.
    pub fn dirs_of(self, rel: &RelPath) -> Vec<String> {
        match self {
            Layout::Nested | Layout::Flat { .. } => rel.dirs().map(str::to_owned).collect(),
            Layout::MaildirPlusPlus => {
                let s = rel.as_str();
                if s == "INBOX" {
                    Vec::new()
                } else if let Some(rest) = s.strip_prefix("INBOX.") {
                    // INBOX's own children: an empty first part (mbsync's `..Sub`).
                    vec![format!("..{rest}")]
                } else {
                    vec![format!(".{s}")]
                }
            }
        }
    }

    /// The stored path of a directory found directly in the root, or `None`
    /// when the directory is not a folder of this one-level layout.
    pub fn rel_of_dir(self, dir: &str) -> Option<RelPath> {
        match self {
            Layout::Nested => None,
            Layout::Flat { .. } => {
                if dir.starts_with('.') {
                    return None;
                }
                RelPath::parse(dir).ok()
            }
            Layout::MaildirPlusPlus => {
                let rest = dir.strip_prefix('.')?;
                if rest.is_empty() || rest == "." {
                    return None;
                }
                let stored = match rest.strip_prefix('.') {
                    Some(sub) => format!("INBOX.{sub}"),
                    // `.INBOX` and `.INBOX.x` would share a stored path with INBOX
                    // and its children (`..x`); such a directory is not ours to map.
                    None if rest == "INBOX" || rest.starts_with("INBOX.") => return None,
                    None => rest.to_owned(),
                };
                RelPath::parse(&stored).ok()
            }
        }
    }
}

/// One component of a one-level layout's directory name: modified UTF-7, then escaped.
fn encode_part(component: &str, sep: char) -> String {
    encode_component_in(&utf7::encode(component), Some(sep))
}

/// The inverse of [`encode_part`], for canonical names only.
fn decode_part(dir: &str, sep: char) -> Option<String> {
    let mutf7 = decode_component_in(dir, Some(sep)).ok()?;
    let c = utf7::decode(mutf7.as_bytes()).ok()?;
    (encode_part(&c, sep) == dir).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(parts: &[&str]) -> FolderName {
        FolderName::new(parts.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn flat_joins_and_escapes_the_separator() {
        let flat = Layout::flat('.').unwrap();
        let rel = flat.rel_of(&name(&["Work", "Projects"])).unwrap().unwrap();
        assert_eq!(rel.as_str(), "Work.Projects");
        assert_eq!(flat.dirs_of(&rel), ["Work.Projects"]);
        let rel = flat.rel_of(&name(&["a.b", "c"])).unwrap().unwrap();
        assert_eq!(rel.as_str(), "a%2Eb.c");
        assert_eq!(flat.name_of(&rel).unwrap(), (name(&["a.b", "c"]), true));
        assert!(Layout::flat('/').is_err() && Layout::flat('a').is_err());
    }

    #[test]
    fn maildirpp_puts_inbox_at_the_root() {
        let l = Layout::MaildirPlusPlus;
        let inbox = l.rel_of(&FolderName::inbox()).unwrap().unwrap();
        assert!(l.dirs_of(&inbox).is_empty());
        let sub = l.rel_of(&name(&["INBOX", "Sub"])).unwrap().unwrap();
        assert_eq!(l.dirs_of(&sub), ["..Sub"]);
        assert_eq!(l.rel_of_dir("..Sub"), Some(sub));
        let w = l.rel_of(&name(&["Work", "Projects"])).unwrap().unwrap();
        assert_eq!(l.dirs_of(&w), [".Work.Projects"]);
        assert_eq!(l.rel_of_dir(".Work.Projects"), Some(w));
        assert_eq!(l.rel_of_dir(".INBOX.x"), None);
        assert_eq!(l.rel_of_dir("cur"), None);
    }

    #[test]
    fn non_ascii_names_are_modified_utf7_as_other_tools_write_them() {
        let l = Layout::MaildirPlusPlus;
        let rel = l
            .rel_of(&name(&["Projekte", "Übersicht"]))
            .unwrap()
            .unwrap();
        assert_eq!(l.dirs_of(&rel), [".Projekte.&ANw-bersicht"]);
        assert_eq!(
            l.name_of(&RelPath::parse("&AMk-t&AOk-").unwrap()).unwrap(),
            (name(&["Été"]), true)
        );
        let flat = Layout::flat('.').unwrap();
        let rel = flat.rel_of(&name(&["a&b"])).unwrap().unwrap();
        assert_eq!(rel.as_str(), "a&-b");
    }
}
