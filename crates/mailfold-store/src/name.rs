//! Folder names and their safe, reversible mapping to directory names.
//!
//! An IMAP folder name (already decoded from modified UTF-7 by the caller and
//! split at the server's delimiter) is a list of UTF-8 components. Each
//! component becomes one directory level under the account's `local` root, so
//! `Work.Projects` (delimiter `.`) and `Work/Projects` (delimiter `/`) both
//! live at `local/Work/Projects/`.
//!
//! # The escaping scheme
//!
//! A component is written as-is except for the following, which are written
//! as `%XX` (two upper-case hex digits per UTF-8 byte):
//!
//! * `%` itself (the escape character);
//! * `/` and NUL, which cannot appear in a file name;
//! * C0 control characters, DEL and the C1 controls U+0080–U+009F (seed
//!   V0018: servers may send them, terminals must not see them raw);
//! * a leading `.`, so no component is hidden, and `.`/`..` cannot walk out
//!   of the root (`..` becomes `%2E.`);
//! * the first letter of a component equal, ignoring ASCII case, to `cur`,
//!   `new` or `tmp`, which would otherwise clash with the parent folder's own
//!   Maildir sub-directories (`cur` becomes `%63ur`).
//!
//! The empty component (a server name like `a..b` with delimiter `.`) is
//! written as a lone `%`, which no other encoding produces.
//!
//! Decoding is the exact inverse, and [`decode_component`] accepts only the
//! canonical form (re-encoding gives back the same directory name), so the
//! mapping is a bijection between components and plain directory names.
//!
//! # Aliases
//!
//! Two cases cannot be served by a plain directory name:
//!
//! * the encoding is longer than [`MAX_DIR_NAME`] bytes (the common file-name
//!   limit), and
//! * on a case-insensitive file system, another folder at the same level
//!   already owns a directory whose name differs only in case (seed V0016).
//!
//! Then the directory is an *alias*: a prefix of the encoding, followed by
//! `%#` and 16 hex digits of the SHA-256 of the component. `%#` never occurs
//! in a plain encoding, so aliases are recognisable; the original component
//! is recorded in an [`AliasRegistry`] (the state database in production) so
//! the mapping stays reversible. The hash makes distinct components give
//! distinct aliases; a collision is detected and reported, never merged.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{NameError, Result};

/// Longest directory name the store creates, in bytes (the limit of ext4,
/// XFS, btrfs, APFS and most other file systems).
pub const MAX_DIR_NAME: usize = 255;

/// Marker that starts the hash part of an alias directory name.
const ALIAS_MARK: &str = "%#";
/// Hex digits of the component hash in an alias.
const ALIAS_HASH_HEX: usize = 16;

/// A folder name as a non-empty list of UTF-8 components.
///
/// The first component `INBOX` is matched case-insensitively and normalised
/// to upper case, as RFC 3501 section 5.1 makes `INBOX` case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderName(Vec<String>);

impl FolderName {
    /// Builds a name from components as the server (or the local tree) gives
    /// them. Empty components and control characters are allowed here: they
    /// are escaped by the mapping. Use [`FolderName::validate_user`] for names a
    /// user types.
    pub fn new(components: Vec<String>) -> Result<Self, NameError> {
        let mut components = components;
        match components.first_mut() {
            None => Err(NameError::Empty),
            Some(first) => {
                if first.eq_ignore_ascii_case("INBOX") {
                    *first = "INBOX".to_owned();
                }
                Ok(FolderName(components))
            }
        }
    }

    /// The name `INBOX`.
    pub fn inbox() -> Self {
        FolderName(vec!["INBOX".to_owned()])
    }

    /// Splits a decoded wire name at the server's hierarchy delimiter
    /// (`None` for a flat server, where the whole name is one component).
    pub fn split(name: &str, delimiter: Option<char>) -> Result<Self, NameError> {
        match delimiter {
            Some(d) => FolderName::new(name.split(d).map(str::to_owned).collect()),
            None => FolderName::new(vec![name.to_owned()]),
        }
    }

    /// Joins the components with the server's delimiter. A component that
    /// contains the delimiter (possible for a folder created locally) is
    /// refused with a clear error (seed V0020); so is more than one component
    /// on a server without hierarchy.
    pub fn join(&self, delimiter: Option<char>) -> Result<String, NameError> {
        match delimiter {
            Some(d) => {
                if let Some(c) = self.0.iter().find(|c| c.contains(d)) {
                    return Err(NameError::ContainsDelimiter {
                        component: c.clone(),
                        delimiter: d,
                    });
                }
                let mut buf = [0u8; 4];
                Ok(self.0.join(&*d.encode_utf8(&mut buf)))
            }
            None if self.0.len() == 1 => Ok(self.0[0].clone()),
            None => Err(NameError::BadRelPath {
                path: self.0.join("/"),
                reason:
                    "the server has no hierarchy delimiter, so a nested folder cannot be created",
            }),
        }
    }

    /// Checks a name a user typed: no empty components and no control
    /// characters (seed V0018), with a clear error naming the culprit.
    pub fn validate_user(&self) -> Result<(), NameError> {
        for c in &self.0 {
            if c.is_empty() {
                return Err(NameError::EmptyComponent);
            }
            if let Some(ch) = c.chars().find(|ch| ch.is_control()) {
                return Err(NameError::ControlCharacter {
                    component: c.clone(),
                    code: u32::from(ch),
                });
            }
        }
        Ok(())
    }

    /// The components.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// True for `INBOX`.
    pub fn is_inbox(&self) -> bool {
        self.0.len() == 1 && self.0[0] == "INBOX"
    }
}

impl fmt::Display for FolderName {
    /// Shows the components joined by `/`, for messages to the user.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// A folder's directory relative to the `local` root, `/`-separated, each
/// level a safe directory name (non-empty, no `/` or NUL, not hidden, not
/// `cur`/`new`/`tmp`). It cannot name anything outside the root.
///
/// This is what the state database stores for each folder, so a folder keeps
/// its directory even if the mapping of a new name would now choose another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Parses a stored relative path, checking every level.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::BadRelPath {
                path: s.to_owned(),
                reason: "empty",
            });
        }
        for level in s.split('/') {
            check_dir_name(level).map_err(|reason| NameError::BadRelPath {
                path: s.to_owned(),
                reason,
            })?;
        }
        Ok(RelPath(s.to_owned()))
    }

    /// Builds a path from directory names, checking each.
    pub fn from_dirs<I, S>(dirs: I) -> Result<Self, NameError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = dirs.into_iter().map(|d| d.as_ref().to_owned()).collect();
        RelPath::parse(&joined.join("/"))
    }

    /// The path as stored: levels joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory names, outermost first.
    pub fn dirs(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent path (`None` for a top-level folder).
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_owned()))
    }

    /// The last directory name.
    pub fn last(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// Appends one checked level.
    pub fn join(&self, dir: &str) -> Result<RelPath, NameError> {
        RelPath::parse(&format!("{}/{}", self.0, dir))
    }

    /// The absolute path under `root`.
    pub fn to_path(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for d in self.dirs() {
            p.push(d);
        }
        p
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a directory name is not safe as one level of a folder path.
fn check_dir_name(d: &str) -> Result<(), &'static str> {
    if d.is_empty() {
        return Err("empty level");
    }
    if d.len() > MAX_DIR_NAME {
        return Err("level longer than 255 bytes");
    }
    if d.starts_with('.') {
        return Err("level starts with a dot");
    }
    if d.contains('/') || d.contains('\0') {
        return Err("level contains '/' or NUL");
    }
    if is_maildir_subdir(d) {
        return Err("level is a Maildir sub-directory name");
    }
    Ok(())
}

/// `cur`, `new` or `tmp`, ignoring ASCII case (on a case-insensitive file
/// system `CUR` is `cur`).
pub(crate) fn is_maildir_subdir(d: &str) -> bool {
    ["cur", "new", "tmp"]
        .iter()
        .any(|s| d.eq_ignore_ascii_case(s))
}

fn needs_escape(index: usize, ch: char, reserved: bool, sep: Option<char>) -> bool {
    (index == 0 && (ch == '.' || reserved))
        || ch == '%'
        || ch == '/'
        || Some(ch) == sep
        || ch.is_control()
    // C0, DEL and C1 (U+0080..U+009F)
}

/// Encodes one component as a plain directory name (see the module docs).
/// The result may be longer than [`MAX_DIR_NAME`]; the store then uses an
/// alias.
pub fn encode_component(component: &str) -> String {
    encode_component_in(component, None)
}

/// [`encode_component`] for a one-level layout whose directory names join
/// components with `sep` ([`crate::layout`]): `sep` is escaped too, so the
/// joined name splits back into the same components.
pub fn encode_component_in(component: &str, sep: Option<char>) -> String {
    if component.is_empty() {
        return "%".to_owned();
    }
    let reserved = is_maildir_subdir(component);
    let mut out = String::with_capacity(component.len());
    for (i, ch) in component.chars().enumerate() {
        if needs_escape(i, ch, reserved, sep) {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0x0f));
            }
        } else {
            out.push(ch);
        }
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0x0f)])
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// True when `dir` is an alias (hash-shortened or case-disambiguated) that
/// must be resolved through an [`AliasRegistry`].
pub fn is_alias(dir: &str) -> bool {
    dir.contains(ALIAS_MARK)
}

/// Decodes a plain directory name back to its component, accepting only
/// the canonical encoding so that the mapping is one-to-one.
pub fn decode_component(dir: &str) -> Result<String, NameError> {
    decode_component_in(dir, None)
}

/// [`decode_component`] for one part of a one-level layout's directory name
/// (see [`encode_component_in`]).
pub fn decode_component_in(dir: &str, sep: Option<char>) -> Result<String, NameError> {
    let bad = |reason| NameError::BadEncoding {
        dir: dir.to_owned(),
        reason,
    };
    if is_alias(dir) {
        return Err(NameError::UnknownAlias {
            dir: dir.to_owned(),
        });
    }
    let decoded = percent_decode(dir, false).ok_or_else(|| bad("invalid % escape"))?;
    if encode_component_in(&decoded, sep) != dir {
        return Err(bad("not in canonical form"));
    }
    Ok(decoded)
}

/// Decodes a directory name created by someone else (a user's `mkdir`),
/// taking invalid escapes literally. Returns the component and whether the
/// directory name is the canonical encoding of it.
pub fn decode_component_lenient(dir: &str) -> (String, bool) {
    if let Ok(c) = decode_component(dir) {
        return (c, true);
    }
    match percent_decode(dir, true) {
        Some(c) => {
            let canonical = encode_component(&c) == dir;
            (c, canonical)
        }
        None => (dir.to_owned(), false),
    }
}

/// Percent-decodes; `lenient` keeps malformed escapes as literal text. The
/// lone `%` is the empty component.
fn percent_decode(dir: &str, lenient: bool) -> Option<String> {
    if dir == "%" {
        return Some(String::new());
    }
    let bytes = dir.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes
                .get(i + 1)
                .and_then(|&h| hex_value(h))
                .zip(bytes.get(i + 2).and_then(|&l| hex_value(l)));
            match pair {
                // Strict decoding wants upper case only (canonical form).
                Some((h, l))
                    if lenient
                        || (!bytes[i + 1].is_ascii_lowercase()
                            && !bytes[i + 2].is_ascii_lowercase()) =>
                {
                    out.push((h << 4) | l);
                    i += 3;
                }
                _ if lenient => {
                    out.push(b'%');
                    i += 1;
                }
                _ => return None,
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Some(s),
        Err(e) if lenient => Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(_) => None,
    }
}

/// Builds the alias directory name for `component` whose plain encoding is
/// `encoded`: the longest prefix of `encoded` that keeps the total within
/// [`MAX_DIR_NAME`] without cutting a `%XX` escape or a UTF-8 character, then
/// `%#` and the hash.
pub fn alias_name(component: &str, encoded: &str) -> String {
    let hash = Sha256::digest(component.as_bytes());
    let mut hex = String::with_capacity(ALIAS_HASH_HEX);
    for b in hash.iter().take(ALIAS_HASH_HEX / 2) {
        hex.push(hex_digit(b >> 4).to_ascii_lowercase());
        hex.push(hex_digit(b & 0x0f).to_ascii_lowercase());
    }
    let budget = MAX_DIR_NAME - ALIAS_MARK.len() - ALIAS_HASH_HEX;
    let mut cut = encoded.len().min(budget);
    while !encoded.is_char_boundary(cut) {
        cut -= 1;
    }
    // Do not leave a truncated "%X" escape at the end of the prefix.
    let tail = &encoded.as_bytes()[cut.saturating_sub(2)..cut];
    if let Some(pos) = tail.iter().rposition(|&b| b == b'%') {
        cut = cut - tail.len() + pos;
    }
    format!("{}{ALIAS_MARK}{hex}", &encoded[..cut])
}

/// Where the original components of alias directories are kept.
///
/// `parent` is the relative path of the containing directory (`""` at the
/// root). [`crate::StateDb`] implements this durably; [`MemoryAliases`] is
/// an in-memory version for tests and dry runs.
pub trait AliasRegistry {
    /// The component an alias directory stands for.
    fn component_of(&self, parent: &str, dir: &str) -> Result<Option<String>>;
    /// The alias directory already assigned to a component, if any.
    fn alias_of(&self, parent: &str, component: &str) -> Result<Option<String>>;
    /// Records an alias. Must be durable before the directory is created, so
    /// a crash never leaves a directory whose name cannot be decoded.
    fn record_alias(&mut self, parent: &str, dir: &str, component: &str) -> Result<()>;
    /// Moves all aliases under `from` (and `from`'s own entry is not touched)
    /// to `to`, after a folder rename.
    fn rename_alias_prefix(&mut self, from: &str, to: &str) -> Result<()>;
}

/// An in-memory [`AliasRegistry`].
#[derive(Debug, Default, Clone)]
pub struct MemoryAliases {
    by_dir: HashMap<(String, String), String>,
}

impl MemoryAliases {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AliasRegistry for MemoryAliases {
    fn component_of(&self, parent: &str, dir: &str) -> Result<Option<String>> {
        Ok(self
            .by_dir
            .get(&(parent.to_owned(), dir.to_owned()))
            .cloned())
    }

    fn alias_of(&self, parent: &str, component: &str) -> Result<Option<String>> {
        Ok(self
            .by_dir
            .iter()
            .find(|((p, _), c)| p == parent && c.as_str() == component)
            .map(|((_, d), _)| d.clone()))
    }

    fn record_alias(&mut self, parent: &str, dir: &str, component: &str) -> Result<()> {
        self.by_dir
            .insert((parent.to_owned(), dir.to_owned()), component.to_owned());
        Ok(())
    }

    fn rename_alias_prefix(&mut self, from: &str, to: &str) -> Result<()> {
        let old = std::mem::take(&mut self.by_dir);
        for ((p, d), c) in old {
            let p = rebase_parent(&p, from, to).unwrap_or(p);
            self.by_dir.insert((p, d), c);
        }
        Ok(())
    }
}

/// If `parent` is `from` or below it, the same path below `to`.
pub(crate) fn rebase_parent(parent: &str, from: &str, to: &str) -> Option<String> {
    if parent == from {
        Some(to.to_owned())
    } else {
        parent
            .strip_prefix(from)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| format!("{to}/{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_untouched() {
        assert_eq!(encode_component("Work"), "Work");
        assert_eq!(encode_component("Entwürfe"), "Entwürfe");
        assert_eq!(encode_component("a b&c"), "a b&c");
    }

    #[test]
    fn hostile_components_are_escaped() {
        assert_eq!(encode_component(".."), "%2E.");
        assert_eq!(encode_component("."), "%2E");
        assert_eq!(encode_component(".hidden"), "%2Ehidden");
        assert_eq!(encode_component("a/b"), "a%2Fb");
        assert_eq!(encode_component("100%"), "100%25");
        assert_eq!(encode_component("cur"), "%63ur");
        assert_eq!(encode_component("TMP"), "%54MP");
        assert_eq!(encode_component("a\nb"), "a%0Ab");
        assert_eq!(encode_component("\u{85}"), "%C2%85");
        assert_eq!(encode_component(""), "%");
        for c in [
            "..", ".", ".hidden", "a/b", "100%", "cur", "TMP", "a\nb", "\u{85}", "",
        ] {
            assert_eq!(decode_component(&encode_component(c)).unwrap(), c);
        }
    }

    #[test]
    fn non_canonical_directory_names_are_rejected_strictly() {
        assert!(decode_component("a%2fb").is_err());
        assert!(decode_component("100%").is_err());
        assert!(decode_component("%2Fx%").is_err());
        assert!(
            decode_component("%41").is_err(),
            "escaping a plain letter is not canonical"
        );
        assert_eq!(decode_component_lenient("100%"), ("100%".to_owned(), false));
        assert_eq!(decode_component_lenient("a%2fb"), ("a/b".to_owned(), false));
    }

    #[test]
    fn alias_fits_and_does_not_split_escapes() {
        let long: String = "\u{1}".repeat(200);
        let enc = encode_component(&long);
        assert!(enc.len() > MAX_DIR_NAME);
        let a = alias_name(&long, &enc);
        assert!(a.len() <= MAX_DIR_NAME);
        assert!(is_alias(&a));
        let prefix = &a[..a.find(ALIAS_MARK).unwrap()];
        assert!(percent_decode(prefix, false).is_some(), "{prefix}");
        let b = alias_name("x", "x");
        assert_ne!(a, b);
    }

    #[test]
    fn inbox_is_normalised_and_join_refuses_delimiter() {
        let n = FolderName::split("inbox.Sub", Some('.')).unwrap();
        assert_eq!(n.components(), ["INBOX", "Sub"]);
        let bad = FolderName::new(vec!["a.b".into()]).unwrap();
        assert!(matches!(
            bad.join(Some('.')),
            Err(NameError::ContainsDelimiter { .. })
        ));
        assert_eq!(bad.join(Some('/')).unwrap(), "a.b");
    }

    #[test]
    fn relpath_rejects_escapes() {
        for bad in ["", "..", "a/../b", ".x", "a//b", "a/cur", "/a", "a/"] {
            assert!(RelPath::parse(bad).is_err(), "{bad}");
        }
        let p = RelPath::parse("Work/Projects").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "Work");
        assert_eq!(p.last(), "Projects");
    }
}
