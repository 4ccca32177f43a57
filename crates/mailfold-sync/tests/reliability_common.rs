//! Shared pieces of the reliability tests, included with `#[path]` by the sync
//! crate's and the CLI's `reliability_*` tests; compiled alone it holds no test.
//!
//! The judge of every fault test is an **expected model**: per folder, the set of messages
//! (by Message-ID, with a hash of the body) and the standard flags each must carry. Both
//! sides are read from the files themselves — the local Maildir and Dovecot's own Maildir —
//! never through mailfold, and compared with the model. A [`Tally`] counts what differs:
//! lost messages, duplicated messages, lost flag changes, altered bodies and messages nobody
//! created. Every fault test must end with an empty tally.
//!
//! Local changes are made the way a mail reader makes them (mutt, neomutt): a new file in
//! `new/`, a flag change by renaming the file into `cur/` with a new `:2,` suffix, a
//! deletion by unlinking the file.
#![allow(dead_code)]
#![forbid(unsafe_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use mailfold_testsupport::SplitMix64;

/// One message as a side holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    /// The Message-ID header, without angle brackets trimmed.
    pub message_id: String,
    /// Hash of the bytes with CR removed (Maildirs store LF; the wire carries CRLF).
    pub body_hash: u64,
    /// Standard flag letters (`DFPRST`), sorted.
    pub flags: String,
    /// The file.
    pub path: PathBuf,
}

/// What a message must look like on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Hash of the LF form of the body.
    pub body_hash: u64,
    /// Standard flag letters, sorted.
    pub flags: String,
}

/// Folder name (`INBOX`, `Work`) → Message-ID → what it must be.
pub type Model = BTreeMap<String, BTreeMap<String, Expected>>;

/// Differences between a side and the model. All zero is the only acceptable outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages checked (model entries × sides).
    pub checked: usize,
    /// In the model, absent from a side.
    pub lost: usize,
    /// Present more than once on a side.
    pub duplicated: usize,
    /// Present with other flags than the model's (a lost flag change).
    pub flag_mismatches: usize,
    /// Present with other bytes than the model's.
    pub altered: usize,
    /// Present on a side but in no model (created by nobody).
    pub unexpected: usize,
    /// A line per difference, for the assertion message.
    pub details: Vec<String>,
}

impl Tally {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.lost + self.duplicated + self.flag_mismatches + self.altered + self.unexpected == 0
    }

    /// Adds another tally's counts.
    pub fn add(&mut self, o: &Tally) {
        self.checked += o.checked;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.flag_mismatches += o.flag_mismatches;
        self.altered += o.altered;
        self.unexpected += o.unexpected;
        self.details.extend(o.details.iter().cloned());
    }

    /// One line of counts.
    pub fn summary(&self) -> String {
        format!(
            "checked={} lost={} duplicated={} flag_mismatches={} altered={} unexpected={}",
            self.checked,
            self.lost,
            self.duplicated,
            self.flag_mismatches,
            self.altered,
            self.unexpected
        )
    }
}

/// Hash of the bytes with every CR removed.
pub fn body_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    for &b in bytes {
        if b != b'\r' {
            b.hash(&mut h);
        }
    }
    h.finish()
}

/// The Message-ID header of a message (first occurrence in the header), if any.
pub fn message_id_of(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("message-id") {
                return Some(value.trim().to_string());
            }
        }
    }
    None
}

/// Standard flag letters of a Maildir file name; Dovecot's keyword letters (a–z) are dropped.
pub fn letters_of(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = name.split_once(":2,").map(|(_, f)| f).unwrap_or("");
    let mut l: Vec<char> = info.chars().filter(|c| "DFPRST".contains(*c)).collect();
    l.sort_unstable();
    l.dedup();
    l.into_iter().collect()
}

/// Message files of one Maildir (`cur/` and `new/`), sorted.
pub fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = fs::read_dir(dir.join(sub)) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// Every message of a Maildir folder. A message without a Message-ID is listed under
/// `"<none:HASH>"` so that it still counts.
pub fn read_side(dir: &Path) -> Vec<Seen> {
    let mut v: Vec<Seen> = files_of(dir)
        .into_iter()
        .filter_map(|p| {
            let bytes = fs::read(&p).ok()?;
            let h = body_hash(&bytes);
            Some(Seen {
                message_id: message_id_of(&bytes).unwrap_or_else(|| format!("<none:{h:x}>")),
                body_hash: h,
                flags: letters_of(&p),
                path: p,
            })
        })
        .collect();
    v.sort();
    v
}

/// Compares one side's folder with the model's folder.
pub fn compare(
    side: &str,
    folder: &str,
    seen: &[Seen],
    want: &BTreeMap<String, Expected>,
) -> Tally {
    let mut t = Tally {
        checked: want.len(),
        ..Tally::default()
    };
    let mut by_id: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in seen {
        by_id.entry(s.message_id.as_str()).or_default().push(s);
    }
    for (id, e) in want {
        match by_id.get(id.as_str()) {
            None => {
                t.lost += 1;
                t.details.push(format!("{side} {folder}: lost {id}"));
            }
            Some(copies) => {
                if copies.len() > 1 {
                    t.duplicated += copies.len() - 1;
                    t.details.push(format!(
                        "{side} {folder}: {} copies of {id}: {:?}",
                        copies.len(),
                        copies.iter().map(|c| &c.path).collect::<Vec<_>>()
                    ));
                }
                let first = copies[0];
                if first.body_hash != e.body_hash {
                    t.altered += 1;
                    t.details
                        .push(format!("{side} {folder}: bytes of {id} differ"));
                }
                if first.flags != e.flags {
                    t.flag_mismatches += 1;
                    t.details.push(format!(
                        "{side} {folder}: {id} has flags {:?}, expected {:?}",
                        first.flags, e.flags
                    ));
                }
            }
        }
    }
    for (id, copies) in &by_id {
        if !want.contains_key(*id) {
            t.unexpected += copies.len();
            t.details.push(format!("{side} {folder}: unexpected {id}"));
        }
    }
    t
}

/// A message with a unique Message-ID and a body of a size drawn from `rng` (a few hundred
/// bytes to ~40 KB, so that cuts land inside literals too). LF line ends.
pub fn make_message(rng: &mut SplitMix64, tag: &str, n: usize) -> (String, Vec<u8>) {
    let id = format!("<{tag}.{n}.{}@reliability.test>", rng.hex(8));
    let lines = match rng.below_or_eq(9) {
        0..=5 => 2 + rng.below_or_eq(10),
        6..=8 => 50 + rng.below_or_eq(200),
        _ => 400 + rng.below_or_eq(200),
    };
    let mut body = format!(
        "From: soak{n}@example.org\nTo: user@example.org\nSubject: {tag} message {n}\n\
         Message-ID: {id}\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
    );
    for l in 0..lines {
        body.push_str(&format!("{tag} {n} line {l} {}\n", rng.hex(48)));
    }
    (id, body.into_bytes())
}

/// LF to CRLF (what doveadm save and the wire carry).
pub fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 16);
    for &c in b {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Finds the local file of a message by its Message-ID.
pub fn find_local(dir: &Path, message_id: &str) -> Option<PathBuf> {
    read_side(dir)
        .into_iter()
        .find(|s| s.message_id == message_id)
        .map(|s| s.path)
}

/// Sets a local file's standard flags as a mail reader does: rename into `cur/` with the
/// `:2,` suffix holding `letters` (anything after the suffix that is not a standard letter,
/// such as Dovecot keyword letters, is kept). Returns the new path.
pub fn set_local_flags(path: &Path, letters: &str) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, info) = match name.split_once(":2,") {
        Some((b, i)) => (b.to_string(), i.to_string()),
        None => (name.clone(), String::new()),
    };
    let mut all: Vec<char> = info
        .chars()
        .filter(|c| !"DFPRST".contains(*c))
        .chain(letters.chars())
        .collect();
    all.sort_unstable();
    all.dedup();
    let folder = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    let to = folder
        .join("cur")
        .join(format!("{base}:2,{}", all.into_iter().collect::<String>()));
    fs::rename(path, &to)?;
    Ok(to)
}

/// Drops a new message into a local folder's `new/`, as a mail reader or MDA would (write in
/// `tmp/`, rename into `new/`).
pub fn drop_local(folder_dir: &Path, name: &str, body: &[u8]) -> std::io::Result<PathBuf> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(folder_dir.join(sub))?;
    }
    let tmp = folder_dir.join("tmp").join(name);
    fs::write(&tmp, body)?;
    let to = folder_dir.join("new").join(name);
    fs::rename(&tmp, &to)?;
    Ok(to)
}

/// Toggles one of `S`/`F`/`R` in a sorted letter string.
pub fn toggle(flags: &str, letter: char) -> String {
    let mut v: Vec<char> = if flags.contains(letter) {
        flags.chars().filter(|&c| c != letter).collect()
    } else {
        flags.chars().chain(std::iter::once(letter)).collect()
    };
    v.sort_unstable();
    v.into_iter().collect()
}

/// The IMAP name of a standard flag letter.
pub fn imap_flag(letter: char) -> &'static str {
    match letter {
        'S' => "\\Seen",
        'F' => "\\Flagged",
        'R' => "\\Answered",
        'D' => "\\Draft",
        'T' => "\\Deleted",
        _ => "\\Seen",
    }
}

/// Every directory and file under `root`, relative, sorted (for "nothing written outside the
/// store" checks).
pub fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
