//! The sync suite against Cyrus IMAP 3.6, the second real server: the guarantees the
//! Dovecot suite checks, on a server whose hierarchy delimiter is `/`, which rewrites 8-bit
//! header bytes to `X` on APPEND, refuses some malformed messages ("Message contains invalid
//! header"), keeps `\Deleted` messages of other clients until an expunge names them, and
//! advertises LOGINDISABLED after a successful login.
//!
//! The server side is read without mailfold: flags with a small blocking client of the test
//! support crate (`Cyrus::run_as`), message bytes straight from the spool file of each UID
//! (`spool/uuid/X/Y/<MAILBOXID>/<uid>.`, Cyrus 3.6's layout). Expunged messages keep their
//! spool files until `cyr_expire` runs (delayed expunge), so only UIDs the server still
//! lists count.
//!
//! Each test skips, saying why, when Cyrus is not installed (`scripts/install-cyrus`); under
//! CI or `scripts/test` (MAILFOLD_REQUIRE_CYRUS) a missing Cyrus fails it instead.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailfold_store::{StateDb, StateRead};
use mailfold_sync::apply::{ABORT_ENV, ABORT_EXIT_CODE};
use mailfold_sync::{AccountSpec, FolderReport, Secret, SyncOptions, SyncReport, TlsMode, Traffic};
use mailfold_testsupport::{Cyrus, CyrusBuilder};

/// One message as a side holds it: bytes with LF line ends and the standard flag letters.
type Msg = (Vec<u8>, String);

/// Starts an instance from `builder`; without Cyrus, returns from the test saying why, or
/// fails it under CI (`mailfold_testsupport::require`).
macro_rules! cyrus_or_skip {
    ($builder:expr) => {{
        mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Cyrus);
        let builder: CyrusBuilder = $builder;
        builder.start()
    }};
}

/// A Cyrus, a scratch directory for the Maildir and state, and one test user.
struct Env {
    cyrus: Cyrus,
    dir: tempfile::TempDir,
    user: String,
    password: String,
}

impl Env {
    fn new(cyrus: Cyrus, user: usize) -> Env {
        let u = cyrus.user(user).clone();
        Env {
            cyrus,
            dir: tempfile::tempdir().expect("tempdir"),
            user: u.name,
            password: u.password,
        }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    fn state_db(&self) -> PathBuf {
        self.dir.path().join("state").join("account.db")
    }

    /// The account over implicit TLS with the run's CA.
    fn account(&self) -> AccountSpec {
        account_for(&self.cyrus, &self.user, &self.password, self.dir.path())
    }

    fn sync(&self) -> SyncReport {
        self.sync_with(&self.account())
    }

    fn sync_with(&self, a: &AccountSpec) -> SyncReport {
        mailfold_sync::sync_account(a, &SyncOptions::default())
            .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", self.cyrus.telemetry(&self.user)))
    }

    /// A sync that must complete.
    fn sync_ok(&self) -> SyncReport {
        let r = self.sync();
        assert!(
            r.is_complete(),
            "{r:#?}\n{}",
            self.cyrus.telemetry(&self.user)
        );
        r
    }

    /// Runs commands as the user, each of which must end in a tagged OK.
    fn imap(&self, commands: &[&str]) -> Vec<Vec<String>> {
        imap_ok(&self.cyrus, &self.user, commands)
    }

    fn deliver(&self, wire: &str, msg: &[u8]) -> u32 {
        self.cyrus.deliver(&self.user, wire, &crlf(msg))
    }

    fn server(&self, wire: &str) -> Vec<Msg> {
        server_folder(&self.cyrus, &self.user, wire)
    }

    fn local_dir(&self, folder: &str) -> PathBuf {
        let mut p = self.maildir();
        for c in folder.split('/') {
            p.push(c);
        }
        p
    }

    fn local(&self, folder: &str) -> Vec<Msg> {
        read_maildir(&self.local_dir(folder))
    }

    /// Adds a file to `new/` of a local folder as a mail reader would.
    fn drop_local(&self, folder: &str, name: &str, body: &[u8]) -> PathBuf {
        let dir = self.local_dir(folder);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let p = dir.join("new").join(name);
        fs::write(&p, body).unwrap();
        p
    }

    /// The local file whose content contains `needle`.
    fn local_file_with(&self, folder: &str, needle: &str) -> PathBuf {
        files_of(&self.local_dir(folder))
            .into_iter()
            .find(|p| fs::read(p).is_ok_and(|b| contains(&b, needle.as_bytes())))
            .unwrap_or_else(|| panic!("no local file in {folder} contains {needle:?}"))
    }

    /// Asserts that a local folder and its server folder hold the same messages with the
    /// same flags.
    #[track_caller]
    fn assert_mirrored(&self, folder: &str, wire: &str) {
        let (l, s) = (self.local(folder), self.server(wire));
        assert!(l == s, "{folder}: local vs server:\n{}", diff(&l, &s));
    }

    /// The keywords the state database holds for the message whose UID is `uid`.
    fn state_keywords(&self, wire: &str, uid: u32) -> Vec<String> {
        let db = StateDb::open(&self.state_db()).unwrap();
        let f = db
            .folder_by_wire_name(wire)
            .unwrap()
            .unwrap_or_else(|| panic!("{wire} not in the state database"));
        let rows = db.messages(f.id).unwrap();
        let row = rows
            .iter()
            .find(|m| m.uid.get() == uid)
            .unwrap_or_else(|| panic!("no state row for UID {uid} in {wire}"));
        let mut k = row.keywords.clone();
        k.sort();
        k
    }
}

fn account_for(cyrus: &Cyrus, user: &str, password: &str, dir: &Path) -> AccountSpec {
    let addr = cyrus.imaps_addr();
    let mut a = AccountSpec::new(
        "cyrus",
        addr.ip().to_string(),
        user.to_owned(),
        Secret::new(password.to_owned()),
        dir.join("mail"),
        dir.join("state").join("account.db"),
    );
    a.port = addr.port();
    a.tls = TlsMode::Implicit;
    a.ca_file = Some(cyrus.ca_file());
    // Durability is tested elsewhere; fsync only slows a 2-core machine here.
    a.fsync = false;
    a
}

#[track_caller]
fn imap_ok(cyrus: &Cyrus, user: &str, commands: &[&str]) -> Vec<Vec<String>> {
    let replies = cyrus
        .run_as(user, commands)
        .unwrap_or_else(|e| panic!("IMAP session as {user}: {e}"));
    for (c, r) in commands.iter().zip(&replies) {
        let tagged = r.last().map(String::as_str).unwrap_or("");
        assert!(tagged.split(' ').nth(1) == Some("OK"), "{c}: {r:?}");
    }
    replies
}

/// The messages of a server folder: UIDs and flags over IMAP, bytes from the spool.
fn server_folder(cyrus: &Cyrus, user: &str, wire: &str) -> Vec<Msg> {
    let mut v: Vec<Msg> = server_uids(cyrus, user, wire).into_values().collect();
    v.sort();
    v
}

/// UID → message of a server folder.
fn server_uids(cyrus: &Cyrus, user: &str, wire: &str) -> BTreeMap<u32, Msg> {
    let select = format!("SELECT {}", quoted(wire));
    let replies = imap_ok(cyrus, user, &[&select]);
    let lines = &replies[0];
    let id = lines
        .iter()
        .find_map(|l| {
            let start = l.find("[MAILBOXID (")? + "[MAILBOXID (".len();
            let end = l[start..].find(')')?;
            Some(l[start..start + end].to_owned())
        })
        .unwrap_or_else(|| panic!("no MAILBOXID in {lines:?}"));
    let exists = lines
        .iter()
        .find_map(|l| {
            l.strip_suffix(" EXISTS")?
                .strip_prefix("* ")?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    let mut out = BTreeMap::new();
    if exists == 0 {
        return out;
    }
    let fetch = imap_ok(cyrus, user, &[&select, "UID FETCH 1:* (UID FLAGS)"]);
    let mut c = id.chars();
    let (a, b) = (c.next().unwrap(), c.next().unwrap());
    let dir = cyrus
        .root()
        .join("spool/uuid")
        .join(a.to_string())
        .join(b.to_string())
        .join(&id);
    for line in &fetch[1] {
        if !line.starts_with("* ") || !line.contains(" FETCH (") {
            continue;
        }
        let uid: u32 = after(line, "UID ")
            .and_then(|s| s.split([' ', ')']).next()?.parse().ok())
            .unwrap_or_else(|| panic!("no UID in {line}"));
        let flags = after(line, "FLAGS (")
            .and_then(|s| s.split(')').next())
            .unwrap_or_else(|| panic!("no FLAGS in {line}"));
        let bytes = fs::read(dir.join(format!("{uid}.")))
            .unwrap_or_else(|e| panic!("spool file of UID {uid} in {wire}: {e}"));
        out.insert(uid, (lf(&bytes), letters_of_imap(flags)));
    }
    out
}

/// The IMAP flags of a server message, `\Recent` left out.
fn server_flags(cyrus: &Cyrus, user: &str, wire: &str, uid: u32) -> Vec<String> {
    let select = format!("SELECT {}", quoted(wire));
    let fetch = format!("UID FETCH {uid} (FLAGS)");
    let r = imap_ok(cyrus, user, &[&select, &fetch]);
    let line = r[1]
        .iter()
        .find(|l| l.contains(" FETCH ("))
        .unwrap_or_else(|| panic!("UID {uid} gone from {wire}: {r:?}"));
    let mut v: Vec<String> = after(line, "FLAGS (")
        .and_then(|s| s.split(')').next())
        .unwrap_or("")
        .split(' ')
        .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("\\Recent"))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn after<'a>(s: &'a str, needle: &str) -> Option<&'a str> {
    s.find(needle).map(|i| &s[i + needle.len()..])
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Maildir letters for IMAP flags (the mapping of mailfold-store's module docs, which is
/// the Maildir specification's plus `$Forwarded` as `P`).
fn letters_of_imap(flags: &str) -> String {
    let mut l: Vec<char> = flags
        .split(' ')
        .filter_map(|f| match f.to_ascii_lowercase().as_str() {
            "\\draft" => Some('D'),
            "\\flagged" => Some('F'),
            "$forwarded" => Some('P'),
            "\\answered" => Some('R'),
            "\\seen" => Some('S'),
            "\\deleted" => Some('T'),
            _ => None,
        })
        .collect();
    l.sort();
    l.into_iter().collect()
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
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

/// Standard flag letters of a Maildir file name.
fn letters_of(p: &Path) -> String {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let info = name.split_once(":2,").map(|(_, f)| f).unwrap_or("");
    let mut l: Vec<char> = info.chars().filter(|c| "DFPRST".contains(*c)).collect();
    l.sort();
    l.into_iter().collect()
}

fn read_maildir(dir: &Path) -> Vec<Msg> {
    let mut v: Vec<Msg> = files_of(dir)
        .into_iter()
        .map(|p| (fs::read(&p).unwrap(), letters_of(&p)))
        .collect();
    v.sort();
    v
}

/// A multiset difference for assertion messages (`+` only on the left, `-` only on the right).
fn diff(a: &[Msg], b: &[Msg]) -> String {
    let mut count: BTreeMap<&Msg, i64> = BTreeMap::new();
    for m in a {
        *count.entry(m).or_default() += 1;
    }
    for m in b {
        *count.entry(m).or_default() -= 1;
    }
    count
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .take(6)
        .map(|((body, f), n)| {
            format!(
                "{n:+} flags={f} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(100)])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 32);
    for &c in b {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A small message with a Message-ID (LF line ends, ASCII headers: Cyrus would rewrite
/// 8-bit header bytes). `tag` names the folder in ASCII.
fn message(tag: &str, i: usize) -> Vec<u8> {
    format!(
        "From: sender{i}@example.org\nTo: user@example.org\nSubject: {tag} message {i}\n\
         Message-ID: <{tag}.{i}@mailfold.test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n\
         Body of message {i} in {tag}.\nSecond line, with a trailing blank \nand a tab\there.\n"
    )
    .into_bytes()
}

fn total(r: &SyncReport, f: impl Fn(&FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

fn traffic(r: &SyncReport) -> &Traffic {
    r.traffic.as_ref().expect("sync_account reports traffic")
}

fn folder<'a>(r: &'a SyncReport, name: &str) -> &'a FolderReport {
    r.folders
        .iter()
        .find(|f| f.folder == name)
        .unwrap_or_else(|| panic!("no report for {name}: {r:#?}"))
}

/// (local name, wire name) of the folders of the mirror test: nesting with `/`, a parent
/// that Cyrus creates implicitly, non-ASCII names (modified UTF-7, RFC 3501 5.1.3), `&`
/// (seed V0021) and a `.`, which is Dovecot's delimiter but an ordinary character on Cyrus.
const FOLDERS: [(&str, &str); 7] = [
    ("INBOX", "INBOX"),
    ("Projects", "Projects"),
    ("Projects/2024", "Projects/2024"),
    ("Projects/2024/Q1", "Projects/2024/Q1"),
    ("Été/Reçus", "&AMk-t&AOk-/Re&AOc-us"),
    ("R&D", "R&-D"),
    ("v1.2", "v1.2"),
];

/// Initial mirror: several folders with nested and non-ASCII names, each message byte-exact
/// apart from CRLF→LF, each flag in the file name; the hierarchy is nested directories; a
/// second run changes nothing and selects nothing (seed V0045). Covers V0021 (`&`, non-ASCII
/// names), V0041 (LIST "" "*"), V0054 (BODY.PEEK: nothing becomes \Seen).
#[test]
fn v0041_initial_mirror_of_nested_and_non_ascii_folders() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    for (_, wire) in &FOLDERS[1..] {
        // "Été/Reçus" without "Été" first: Cyrus makes the parent itself.
        env.cyrus.create_mailbox(&env.user, wire);
    }
    let flag_sets = [
        "",
        "\\Seen",
        "\\Flagged \\Seen",
        "\\Answered",
        "\\Draft",
        "$Forwarded",
    ];
    let mut n = 0;
    for (i, (_, wire)) in FOLDERS.iter().enumerate() {
        for j in 0..(2 + i % 3) {
            n += 1;
            let uid = env.deliver(wire, &message(&format!("f{i}"), j));
            let flags = flag_sets[(i + j) % flag_sets.len()];
            if !flags.is_empty() {
                env.imap(&[
                    &format!("SELECT {}", quoted(wire)),
                    &format!("UID STORE {uid} +FLAGS.SILENT ({flags})"),
                ]);
            }
        }
    }
    // An 8-bit body (headers stay ASCII): stored and mirrored byte for byte.
    env.deliver(
        "INBOX",
        "From: a@example.org\nSubject: body bytes\nMessage-ID: <8bit-body@t>\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         Grüße, café, 日本語\n"
            .as_bytes(),
    );
    n += 1;
    let before: Vec<Vec<Msg>> = FOLDERS.iter().map(|(_, w)| env.server(w)).collect();

    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.downloaded), n, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 0, "{r:#?}");
    for (i, (local, wire)) in FOLDERS.iter().enumerate() {
        for sub in ["cur", "new", "tmp"] {
            assert!(
                env.local_dir(local).join(sub).is_dir(),
                "{local}: no {sub}/ under {}",
                env.local_dir(local).display()
            );
        }
        env.assert_mirrored(local, wire);
        assert_eq!(
            env.server(wire),
            before[i],
            "{local}: the sync changed the server"
        );
    }
    // The implicit parent of "Été/Reçus" is a directory; whether it is a Maildir of its own
    // follows what the server says of it, but never a name outside the root.
    assert!(env.maildir().join("Été").is_dir());
    assert!(
        !env.maildir().join("&AMk-t&AOk-").exists(),
        "wire name leaked"
    );
    assert!(!env.maildir().join("R&-D").exists(), "wire name leaked");

    let again = env.sync_ok();
    assert!(!again.changed_anything(), "{again:#?}");
    let t = traffic(&again);
    assert_eq!(t.count("SELECT") + t.count("UID FETCH"), 0, "{t:#?}");
}

/// Changes on both sides merged: flags and keywords both ways (V0005, V0056), a flag changed
/// on both sides, new mail both ways, deletions both ways, the local one by UID EXPUNGE only
/// (RFC 4315), so a message another client marked `\Deleted` survives; folders new on
/// either side (V0047); then a second run changes nothing.
#[test]
fn v0056_changes_on_both_sides_are_merged() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    env.cyrus.create_mailbox(&env.user, "Work");
    env.cyrus.create_mailbox(&env.user, "Work/Clients");
    let mut inbox = Vec::new();
    for i in 0..6 {
        inbox.push(env.deliver("INBOX", &message("inbox", i)));
    }
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(env.deliver("Work/Clients", &message("clients", i)));
    }
    env.sync_ok();

    // Server side, as another client: a new message, a flag, a keyword, an expunge, and a
    // message marked \Deleted but not expunged (another client's business).
    let new_remote = env.deliver("Work/Clients", &message("clients", 50));
    env.imap(&[
        "SELECT INBOX",
        &format!("UID STORE {} +FLAGS.SILENT (\\Flagged)", inbox[0]),
        &format!("UID STORE {} +FLAGS.SILENT (\\Seen)", inbox[1]),
        &format!("UID STORE {} +FLAGS.SILENT ($Label1 project-x)", inbox[2]),
        &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", inbox[3]),
        &format!("UID EXPUNGE {}", inbox[3]),
        "SELECT \"Work/Clients\"",
        &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", clients[3]),
    ]);
    env.cyrus.create_mailbox(&env.user, "Work/New on server");
    env.deliver("Work/New on server", &message("newserver", 0));

    // Local side, as a mail reader: the same message seen (server flagged it: both kept),
    // another answered, a file deleted, a new message, a new folder with a message.
    let seen = env.local_file_with("INBOX", "Subject: inbox message 0\n");
    rename_flags(&seen, "S");
    let answered = env.local_file_with("INBOX", "Subject: inbox message 4\n");
    rename_flags(&answered, "RS");
    fs::remove_file(env.local_file_with("Work/Clients", "Subject: clients message 1\n")).unwrap();
    env.drop_local("INBOX", "1700000001.local1.host", &message("local", 1));
    env.drop_local(
        "Work/Local only",
        "1700000002.local2.host",
        &message("localfolder", 2),
    );

    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.downloaded), 2, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 2, "{r:#?}");
    assert_eq!(folder(&r, "INBOX").local_deletions, 1, "{r:#?}");
    assert_eq!(folder(&r, "Work/Clients").remote_deletions, 1, "{r:#?}");
    let t = traffic(&r);
    assert!(t.count("UID EXPUNGE") >= 1, "{t:#?}");
    assert_eq!(t.count("EXPUNGE"), 0, "never a bare EXPUNGE: {t:#?}");

    for (local, wire) in [
        ("INBOX", "INBOX"),
        ("Work", "Work"),
        ("Work/Clients", "Work/Clients"),
        ("Work/New on server", "Work/New on server"),
        ("Work/Local only", "Work/Local only"),
    ] {
        env.assert_mirrored(local, wire);
    }
    let server_inbox = server_uids(&env.cyrus, &env.user, "INBOX");
    assert_eq!(server_inbox.len(), 6, "6 - 1 expunged + 1 local");
    assert_eq!(
        server_inbox[&inbox[0]].1, "FS",
        "flag merged from both sides"
    );
    assert_eq!(server_inbox[&inbox[1]].1, "S");
    assert_eq!(server_inbox[&inbox[4]].1, "RS");
    let clients_now = server_uids(&env.cyrus, &env.user, "Work/Clients");
    assert!(clients_now.contains_key(&new_remote));
    assert!(
        !clients_now.contains_key(&clients[1]),
        "local deletion expunged"
    );
    assert_eq!(
        clients_now.get(&clients[3]).map(|m| m.1.as_str()),
        Some("T"),
        "another client's \\Deleted message must survive the sync's expunge"
    );
    // Keywords (V0005): the server's reach the state database; a keyword removed on the
    // server is removed there too.
    assert_eq!(
        env.state_keywords("INBOX", inbox[2]),
        vec!["$Label1".to_owned(), "project-x".to_owned()]
    );
    env.imap(&[
        "SELECT INBOX",
        &format!("UID STORE {} -FLAGS.SILENT ($Label1)", inbox[2]),
    ]);
    env.sync_ok();
    assert_eq!(
        env.state_keywords("INBOX", inbox[2]),
        vec!["project-x".to_owned()]
    );
    assert_eq!(
        server_flags(&env.cyrus, &env.user, "INBOX", inbox[2]),
        vec!["project-x".to_owned()]
    );

    let again = env.sync_ok();
    assert!(!again.changed_anything(), "{again:#?}");
}

/// Renames a Maildir file to `cur/` with the given flag letters, as a mail reader does.
fn rename_flags(p: &Path, letters: &str) -> PathBuf {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let to = p
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("cur")
        .join(format!("{base}:2,{letters}"));
    fs::rename(p, &to).unwrap();
    to
}

/// Seed V0046 on Cyrus: a draft with a header but no From or Date is uploaded as it is;
/// one with no header at all is refused by Cyrus ("Message contains invalid header"). The
/// refusal is reported with the server's text (V0019), the local file stays, the run does
/// not loop, and later runs neither duplicate it nor lose it.
#[test]
fn v0046_draft_without_headers_refused_by_cyrus_is_reported_and_kept() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    env.cyrus.create_mailbox(&env.user, "Drafts");
    env.deliver("Drafts", &message("drafts", 0));
    env.sync_ok();

    let partial = b"Subject: unfinished\n\nno From, no Date yet\n";
    let headerless = b"just a draft line\nand another\n";
    let dir = env.local_dir("Drafts");
    fs::write(dir.join("cur").join("1700000003.partial.host:2,D"), partial).unwrap();
    let kept = dir.join("cur").join("1700000004.headerless.host:2,D");
    fs::write(&kept, headerless).unwrap();

    let started = std::time::Instant::now();
    let r = env.sync();
    assert!(started.elapsed().as_secs() < 30, "the run took too long");
    let drafts = folder(&r, "Drafts");
    assert_eq!(drafts.uploaded, 1, "{r:#?}");
    assert!(
        drafts
            .errors
            .iter()
            .any(|e| e.to_string().contains("invalid header")),
        "the server's text must reach the report: {r:#?}"
    );
    assert!(!r.is_complete(), "a refused upload is not a complete sync");
    assert_eq!(
        fs::read(&kept).unwrap(),
        headerless,
        "the local file is kept"
    );
    let server = env.server("Drafts");
    assert_eq!(server.len(), 2, "{server:?}");
    assert!(
        server.contains(&(partial.to_vec(), "D".to_owned())),
        "{server:?}"
    );
    let t = traffic(&r);
    assert_eq!(t.count("APPEND"), 2, "one try each, no loop: {t:#?}");

    for run in 0..2 {
        let again = env.sync();
        let d = folder(&again, "Drafts");
        assert_eq!(d.uploaded + d.downloaded, 0, "run {run}: {again:#?}");
        assert!(
            d.errors
                .iter()
                .any(|e| e.to_string().contains("invalid header")),
            "run {run}: still reported: {again:#?}"
        );
        assert!(traffic(&again).count("APPEND") <= 1, "{again:#?}");
        assert_eq!(env.server("Drafts").len(), 2, "run {run}: no duplicate");
        assert_eq!(files_of(&dir).len(), 3, "run {run}: {:?}", files_of(&dir));
        assert_eq!(fs::read(&kept).unwrap(), headerless);
    }
}

/// Cyrus rewrites 8-bit header bytes to `X` on APPEND (`munge8bit`, on by default). The
/// uploaded copy is the same message: it must not be downloaded again as a new one, nor the
/// local file re-uploaded, on this run or any later one.
#[test]
fn eight_bit_header_rewritten_by_cyrus_is_not_downloaded_again() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    env.deliver("INBOX", &message("inbox", 0));
    env.sync_ok();
    let raw = "From: Jürgen Groß <j@example.de>\nTo: user@example.org\n\
               Subject: Grüße aus Köln\nMessage-ID: <8bit-header@mailfold.test>\n\
               Date: Tue, 2 Jan 2024 10:00:00 +0000\n\nHallo!\n"
        .as_bytes();
    let p = env.drop_local("INBOX", "1700000005.eightbit.host", raw);
    let r = env.sync_ok();
    assert_eq!(folder(&r, "INBOX").uploaded, 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 0, "{r:#?}");
    let server = env.server("INBOX");
    assert_eq!(server.len(), 2);
    assert!(
        server
            .iter()
            .any(|(b, _)| contains(b, b"Subject: GrXXXXe aus KXXln")),
        "Cyrus did not rewrite the header as expected: {}",
        diff(&server, &[])
    );
    for run in 0..2 {
        let again = env.sync_ok();
        assert!(!again.changed_anything(), "run {run}: {again:#?}");
        assert_eq!(
            env.local("INBOX").len(),
            2,
            "run {run}: no duplicate locally"
        );
        assert_eq!(
            env.server("INBOX").len(),
            2,
            "run {run}: no duplicate on the server"
        );
    }
    // The local file is the user's own text, untouched.
    let local = files_of(&env.local_dir("INBOX"));
    assert!(
        local.iter().any(|f| fs::read(f).unwrap() == raw),
        "{local:?} (was {})",
        p.display()
    );
    // A flag set locally afterwards still reaches the server copy: the two stay paired.
    let f = env.local_file_with("INBOX", "Message-ID: <8bit-header@mailfold.test>");
    rename_flags(&f, "F");
    let r = env.sync_ok();
    assert_eq!(folder(&r, "INBOX").remote_flag_changes, 1, "{r:#?}");
    assert!(env
        .server("INBOX")
        .iter()
        .any(|(b, f)| contains(b, b"GrXXXXe") && f == "F"));
    assert!(!env.sync_ok().changed_anything());
}

/// Seed V0032 on Cyrus: its capabilities after login still name LOGINDISABLED (a Cyrus
/// quirk: login is done by then). Over STARTTLS on a server that refuses passwords in clear,
/// a sync logs in after TLS, and the stale LOGINDISABLED after login changes nothing: the
/// sync, and the next one, complete.
#[test]
fn v0032_logindisabled_after_login_is_harmless() {
    let env = Env::new(
        cyrus_or_skip!(Cyrus::builder().plaintext_auth(false).telemetry(true)),
        0,
    );
    env.deliver("INBOX", &message("inbox", 0));
    let mut a = env.account();
    let addr = env.cyrus.imap_addr();
    a.port = addr.port();
    a.tls = TlsMode::StartTls;
    for mechs in [None, Some(vec![mailfold_sasl::MechanismName::Plain])] {
        a.mechanisms = mechs.clone();
        let r = env.sync_with(&a);
        assert!(r.is_complete(), "{mechs:?}: {r:#?}");
        assert_eq!(env.local("INBOX"), env.server("INBOX"));
        assert_eq!(traffic(&r).count("STARTTLS"), 1, "{:#?}", traffic(&r));
        assert_eq!(
            traffic(&r).count("LOGIN"),
            0,
            "never the LOGIN command here"
        );
    }
    let log = env.cyrus.telemetry(&env.user);
    assert!(log.contains("LOGINDISABLED"), "the quirk is present: {log}");
    env.drop_local("INBOX", "1700000006.after.host", &message("after", 1));
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(folder(&r, "INBOX").uploaded, 1);
    assert_eq!(env.local("INBOX"), env.server("INBOX"));
}

// ---------------------------------------------------------------------------------------
// Crash safety: kill after every step, on Cyrus.

/// Not a test of its own: the body of the child process (does nothing unless the parent set
/// `MAILFOLD_CYRUS_CHILD_SYNC`).
#[test]
fn child_sync() {
    let Ok(spec) = std::env::var("MAILFOLD_CYRUS_CHILD_SYNC") else {
        return;
    };
    let f: Vec<&str> = spec.split('\t').collect();
    let mut a = AccountSpec::new(
        "child",
        f[0],
        f[2],
        Secret::new(f[3].to_owned()),
        PathBuf::from(f[4]),
        PathBuf::from(f[5]),
    );
    a.port = f[1].parse().unwrap();
    a.tls = TlsMode::Implicit;
    a.ca_file = Some(PathBuf::from(f[6]));
    a.fsync = false;
    let r = mailfold_sync::sync_account(&a, &SyncOptions::default()).unwrap();
    assert!(r.is_complete(), "{r:#?}");
}

/// One user's copy of a crash scenario.
struct Side {
    user: String,
    password: String,
    local: tempfile::TempDir,
}

impl Side {
    fn account(&self, c: &Cyrus) -> AccountSpec {
        account_for(c, &self.user, &self.password, self.local.path())
    }

    fn sync(&self, c: &Cyrus) -> SyncReport {
        let r = mailfold_sync::sync_account(&self.account(c), &SyncOptions::default())
            .unwrap_or_else(|e| panic!("sync: {e}"));
        assert!(r.is_complete(), "{r:#?}");
        r
    }

    /// Server then local messages of each folder.
    fn state(&self, c: &Cyrus, folders: &[&str]) -> Vec<Vec<Msg>> {
        let mut v = Vec::new();
        for f in folders {
            v.push(server_folder(c, &self.user, f));
            let mut dir = self.local.path().join("mail");
            for part in f.split('/') {
                dir.push(part);
            }
            v.push(read_maildir(&dir));
        }
        v
    }

    fn local_dir(&self, folder: &str) -> PathBuf {
        let mut dir = self.local.path().join("mail");
        for part in folder.split('/') {
            dir.push(part);
        }
        dir
    }

    fn file_with(&self, folder: &str, needle: &str) -> PathBuf {
        files_of(&self.local_dir(folder))
            .into_iter()
            .find(|p| fs::read(p).is_ok_and(|b| contains(&b, needle.as_bytes())))
            .unwrap_or_else(|| panic!("no file in {folder} with {needle:?}"))
    }
}

/// The child process' command line for a sync of `a` (password and CA given apart, as the
/// account holds only a secret).
fn child_command(a: &AccountSpec, password: &str, ca: &Path) -> Command {
    let spec = [
        a.host.clone(),
        a.port.to_string(),
        a.user.clone(),
        password.to_owned(),
        a.maildir.display().to_string(),
        a.state_db.display().to_string(),
        ca.display().to_string(),
    ]
    .join("\t");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_sync", "--nocapture", "--test-threads=1"])
        .env("MAILFOLD_CYRUS_CHILD_SYNC", spec)
        .env_remove(ABORT_ENV);
    cmd
}

fn run_child(c: &Cyrus, s: &Side, n: u64) -> Option<i32> {
    let out = child_command(&s.account(c), &s.password, &c.ca_file())
        .env(ABORT_ENV, n.to_string())
        .output()
        .expect("spawn child");
    if !out.status.success() && out.status.code() != Some(ABORT_EXIT_CODE) {
        panic!(
            "child failed: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.code()
}

/// Kills the sync after step N for N = 1, 2, … (each N on its own user prepared the same
/// way), resumes, and compares with an uninterrupted run; a further run must change nothing.
fn kill_after_every_step(
    max_steps: usize,
    min_steps: usize,
    folders: &[&str],
    exact_mirror: bool,
    prepare: &dyn Fn(&Cyrus, &Side),
    check_reference: &dyn Fn(&[Vec<Msg>]),
) {
    let c = cyrus_or_skip!(Cyrus::builder().users(max_steps + 1));
    let side = |i: usize| {
        let u = c.user(i).clone();
        let s = Side {
            user: u.name,
            password: u.password,
            local: tempfile::tempdir().unwrap(),
        };
        prepare(&c, &s);
        s
    };
    let reference = side(0);
    let r = reference.sync(&c);
    assert!(r.changed_anything());
    assert!(!reference.sync(&c).changed_anything());
    let want = reference.state(&c, folders);
    for (i, f) in folders.iter().enumerate().filter(|_| exact_mirror) {
        assert!(
            want[2 * i] == want[2 * i + 1],
            "reference {f}: {}",
            diff(&want[2 * i], &want[2 * i + 1])
        );
    }
    check_reference(&want);

    for n in 1..=max_steps {
        let s = side(n);
        let code = run_child(&c, &s, n as u64);
        if code == Some(0) {
            eprintln!(
                "killed after each of {} steps; every resume converged",
                n - 1
            );
            assert!(
                n > min_steps,
                "expected more than {min_steps} steps, had {}",
                n - 1
            );
            assert_eq!(
                s.state(&c, folders),
                want,
                "uninterrupted child run differs"
            );
            return;
        }
        assert_eq!(code, Some(ABORT_EXIT_CODE));
        s.sync(&c);
        let got = s.state(&c, folders);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "after a kill at step {n}, {} {} differs from the uninterrupted run:\n{}",
                folders[i / 2],
                if i % 2 == 0 { "server" } else { "local" },
                diff(g, w)
            );
        }
        let again = s.sync(&c);
        assert!(
            !again.changed_anything(),
            "step {n}: a further run changed: {again:#?}"
        );
    }
    panic!("the sync has more than {max_steps} steps; raise max_steps");
}

/// Kill after every step of a sync with changes on both sides, in a nested folder (`/`):
/// downloads, an APPEND journaled through APPENDUID (V0048), a draft with a header only
/// (V0046), flag changes and deletions both ways.
#[test]
fn kill_after_every_step_then_resume_equals_an_uninterrupted_run_on_cyrus() {
    let folders = ["INBOX", "Work/Sub"];
    let prepare = |c: &Cyrus, s: &Side| {
        c.create_mailbox(&s.user, "Work");
        c.create_mailbox(&s.user, "Work/Sub");
        let mut inbox = Vec::new();
        for n in 0..4 {
            inbox.push(c.deliver(&s.user, "INBOX", &crlf(&message("inbox", n))));
        }
        let mut sub = Vec::new();
        for n in 0..3 {
            sub.push(c.deliver(&s.user, "Work/Sub", &crlf(&message("sub", n))));
        }
        s.sync(c);
        c.deliver(&s.user, "INBOX", &crlf(&message("inbox", 100)));
        imap_ok(
            c,
            &s.user,
            &[
                "SELECT INBOX",
                &format!("UID STORE {} +FLAGS.SILENT (\\Flagged)", inbox[1]),
                "SELECT \"Work/Sub\"",
                &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", sub[0]),
                &format!("UID EXPUNGE {}", sub[0]),
            ],
        );
        let inbox_dir = s.local_dir("INBOX");
        fs::write(
            inbox_dir.join("new").join("local-1.host"),
            message("local", 1),
        )
        .unwrap();
        fs::write(
            s.local_dir("Work/Sub").join("cur").join("draft-1.host:2,D"),
            b"Subject: draft\n\njust a draft line\n",
        )
        .unwrap();
        fs::remove_file(s.file_with("INBOX", "Subject: inbox message 0\n")).unwrap();
        rename_flags(&s.file_with("INBOX", "Subject: inbox message 3\n"), "S");
    };
    kill_after_every_step(30, 6, &folders, true, &prepare, &|want| {
        assert_eq!(
            want[0].len(),
            4 + 1 + 1 - 1,
            "INBOX: 4, 1 new, 1 local, 1 deleted"
        );
        assert_eq!(want[2].len(), 3 - 1 + 1, "Work/Sub: 3, 1 expunged, 1 draft");
    });
}

/// The APPEND of a message Cyrus rewrites (8-bit header bytes to `X`) interrupted at every
/// step: the journaled upload must be recognised after the resume although the server's
/// bytes differ from the local file's, so nothing is uploaded twice or downloaded back.
#[test]
fn kill_after_every_step_of_an_upload_cyrus_rewrites() {
    let folders = ["INBOX"];
    let prepare = |c: &Cyrus, s: &Side| {
        c.deliver(&s.user, "INBOX", &crlf(&message("inbox", 0)));
        s.sync(c);
        fs::write(
            s.local_dir("INBOX").join("new").join("eightbit.host"),
            "From: Jürgen <j@example.de>\nSubject: Grüße\nMessage-ID: <crash-8bit@t>\n\nHallo\n"
                .as_bytes(),
        )
        .unwrap();
    };
    // Server and local copies of the rewritten message differ by design: no exact mirror.
    kill_after_every_step(12, 1, &folders, false, &prepare, &|want| {
        assert_eq!(want[0].len(), 2, "server: {}", diff(&want[0], &[]));
        assert_eq!(want[1].len(), 2, "local: {}", diff(&want[1], &[]));
    });
}

/// The spool directory of a server folder (Cyrus 3.6 keeps each mailbox under its
/// MAILBOXID).
fn spool_dir(c: &Cyrus, user: &str, wire: &str) -> PathBuf {
    let r = imap_ok(c, user, &[&format!("SELECT {}", quoted(wire))]);
    let id = r[0]
        .iter()
        .find_map(|l| {
            let rest = after(l, "[MAILBOXID (")?;
            Some(rest.split(')').next()?.to_owned())
        })
        .unwrap_or_else(|| panic!("no MAILBOXID in {r:?}"));
    let mut ch = id.chars();
    let (a, b) = (ch.next().unwrap(), ch.next().unwrap());
    c.root()
        .join("spool/uuid")
        .join(a.to_string())
        .join(b.to_string())
        .join(&id)
}

/// Seed V0048 and crash safety (after a crash between APPEND and commit, the copy is found
/// again without creating a duplicate) on Cyrus, where the step hook cannot reach (it stops
/// *after* a step): the server's answers are slowed by a proxy, and the sync is killed with
/// SIGKILL the moment Cyrus has stored the upload, before the client can record its UID. The
/// next run must pair the stored copy with the local file — also when Cyrus rewrote the
/// copy's 8-bit header bytes, so that its bytes differ from the file's.
#[test]
fn v0048_kill_between_append_and_commit_makes_no_duplicate_on_cyrus() {
    use mailfold_testsupport::{Direction, Fault, FaultPlan, FaultProxy};
    let c = cyrus_or_skip!(Cyrus::builder().users(2));
    let cases: [(&str, &[u8]); 2] = [
        ("ascii", b"From: a@example.org\nSubject: plain upload\nMessage-ID: <mid-append-ascii@t>\n\nHello\n"),
        (
            "8-bit header",
            "From: J\u{fc}rgen <j@example.de>\nSubject: Gr\u{fc}\u{df}e\nMessage-ID: <mid-append-8bit@t>\n\nHallo\n"
                .as_bytes(),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (what, body)) in cases.into_iter().enumerate() {
        let u = c.user(i).clone();
        let s = Side {
            user: u.name.clone(),
            password: u.password.clone(),
            local: tempfile::tempdir().unwrap(),
        };
        c.deliver(&s.user, "INBOX", &crlf(&message("inbox", 0)));
        s.sync(&c);
        fs::write(s.local_dir("INBOX").join("new").join("upload.host"), body).unwrap();
        let stored = spool_dir(&c, &s.user, "INBOX").join("2.");

        let proxy = FaultProxy::start(
            c.imaps_addr(),
            FaultPlan::Always(Fault::Delay {
                dir: Direction::ToClient,
                delay: std::time::Duration::from_millis(300),
            }),
        );
        let mut a = s.account(&c);
        a.host = proxy.addr().ip().to_string();
        a.port = proxy.addr().port();
        let mut child = child_command(&a, &s.password, &c.ca_file())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
        let killed = loop {
            if stored.exists() {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            if child.try_wait().ok().flatten().is_some() || std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        drop(proxy);
        assert!(
            killed,
            "{what}: the upload never reached the server through the proxy"
        );

        let r = s.sync(&c);
        eprintln!("{what}: resume after the kill: {:?}", r.folders);
        let again = s.sync(&c);
        let server = server_folder(&c, &s.user, "INBOX");
        let local = read_maildir(&s.local_dir("INBOX"));
        // The journaled upload is found and bound; it is neither uploaded again nor
        // downloaded as a stranger.
        let resumed = total(&r, |f| f.bound) == 1 && total(&r, |f| f.uploaded + f.downloaded) == 0;
        if server.len() != 2 || local.len() != 2 || again.changed_anything() || !resumed {
            failures.push(format!(
                "{what}: after the resume the server holds {} and the Maildir {} messages \
                 (want 2 each); resume report {:?}; further run changed anything: {}\n{}",
                server.len(),
                local.len(),
                r.folders,
                again.changed_anything(),
                diff(&local, &server)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Seed V0019 for an upload Cyrus refuses outright, an empty file ("Zero-length message
/// literal"): the refusal is reported with the server's text, the file is kept as it is, the
/// run goes on with the other messages, and later runs neither duplicate nor lose. A file
/// with a NUL byte, which Cyrus refuses in a normal literal ("Message contains NUL
/// characters"), goes up in a BINARY literal8 (seed V0014; Cyrus offers BINARY) and arrives
/// intact.
#[test]
fn v0019_uploads_cyrus_refuses_are_reported_and_kept() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    env.deliver("INBOX", &message("inbox", 0));
    env.sync_ok();
    let empty = env.drop_local("INBOX", "1700000007.empty.host", b"");
    let nul = env.drop_local(
        "INBOX",
        "1700000008.nul.host",
        b"Subject: nul\n\nbefore\0after\n",
    );
    env.drop_local("INBOX", "1700000009.fine.host", &message("fine", 1));
    for run in 0..3 {
        let r = env.sync();
        let inbox = folder(&r, "INBOX");
        assert_eq!(
            inbox.uploaded,
            2 * usize::from(run == 0),
            "run {run}: {r:#?}"
        );
        assert_eq!(inbox.downloaded, 0, "run {run}: {r:#?}");
        let errors = inbox
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!errors.contains("NUL"), "run {run}: {r:#?}");
        assert!(
            errors.to_ascii_lowercase().contains("zero-length"),
            "run {run}: server text: {r:#?}"
        );
        assert!(traffic(&r).count("APPEND") <= 3, "{:#?}", traffic(&r));
        let server = env.server("INBOX");
        assert_eq!(server.len(), 3, "run {run}");
        assert!(
            server
                .iter()
                .any(|(b, _)| b == b"Subject: nul\n\nbefore\0after\n"),
            "run {run}: the NUL byte arrived intact: {server:?}"
        );
        assert_eq!(fs::read(&empty).unwrap(), b"");
        assert_eq!(fs::read(&nul).unwrap(), b"Subject: nul\n\nbefore\0after\n");
        assert_eq!(files_of(&env.local_dir("INBOX")).len(), 4, "run {run}");
    }
}

/// A local file that already has CRLF line ends (written by a tool that does not follow the
/// Maildir convention, or a Windows `.eml`) is uploaded once, as a valid RFC 5322 message:
/// CR and LF only together as CRLF (section 2.3), not `CR CR LF`, which Cyrus stores as it
/// is. The server's copy is not taken for a new message afterwards.
#[test]
fn local_file_with_crlf_line_ends_is_uploaded_once() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    env.deliver("INBOX", &message("inbox", 0));
    env.sync_ok();
    let raw = crlf(&message("crlf", 1));
    env.drop_local("INBOX", "1700000010.crlf.host", &raw);
    let r = env.sync_ok();
    assert_eq!(folder(&r, "INBOX").uploaded, 1, "{r:#?}");
    let server = env.server("INBOX");
    assert_eq!(server.len(), 2);
    assert!(
        server.iter().any(|(b, _)| *b == message("crlf", 1)),
        "the server's copy must end its lines in CRLF, not CR CR LF (a bare CR, RFC 5322 \
         section 2.3); shown after CRLF->LF, so a remaining \\r is the bare CR: {}",
        diff(&server, &[])
    );
    for run in 0..2 {
        let again = env.sync_ok();
        assert!(!again.changed_anything(), "run {run}: {again:#?}");
        assert_eq!(env.local("INBOX").len(), 2, "run {run}");
        assert_eq!(env.server("INBOX").len(), 2, "run {run}");
    }
}

/// Seed V0019 on Cyrus: a local folder whose name Cyrus refuses (`%`, "Invalid mailbox
/// name") is reported with the server's text; the other folders sync; the local folder and
/// its message stay, and later runs do not loop or duplicate.
#[test]
fn v0019_folder_name_cyrus_refuses_is_reported_with_its_text() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    env.deliver("INBOX", &message("inbox", 0));
    env.sync_ok();
    let kept = env.drop_local("100%", "1700000011.pct.host", &message("pct", 1));
    env.drop_local("Fine", "1700000012.fine.host", &message("fine", 2));
    for run in 0..2 {
        let r = env.sync();
        let all: Vec<String> = r
            .errors
            .iter()
            .chain(r.folders.iter().flat_map(|f| f.errors.iter()))
            .map(ToString::to_string)
            .collect();
        assert!(
            all.iter().any(|e| e.contains("Invalid mailbox name")),
            "run {run}: the server's text must be reported: {r:#?}"
        );
        assert!(kept.exists(), "run {run}: the local message is kept");
        env.assert_mirrored("Fine", "Fine");
        assert_eq!(env.server("Fine").len(), 1, "run {run}");
        assert_eq!(env.server("INBOX").len(), 1, "run {run}");
    }
}

/// Seeds V0016/V0020 on Cyrus: a server folder whose name starts with a dot (`.hidden`,
/// legal on Cyrus, a hidden directory or a Maildir++ folder locally) and two names that
/// differ only in case are mapped into the root safely and reversibly: mirrored, never
/// created again on the server under another name, and a second run changes nothing.
#[test]
fn v0016_dot_and_case_names_from_cyrus_map_safely() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    for name in [".hidden", "Dup", "dup"] {
        env.cyrus.create_mailbox(&env.user, name);
        env.deliver(
            name,
            &message(
                &format!("m{}", name.len()),
                name.len() + usize::from(name == "dup"),
            ),
        );
    }
    let before = list_names(&env);
    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.downloaded), 3, "{r:#?}");
    assert_eq!(
        list_names(&env),
        before,
        "no folder was created on the server"
    );
    for root_entry in fs::read_dir(env.maildir()).unwrap().flatten() {
        let p = root_entry.path();
        assert!(p.starts_with(env.maildir()));
    }
    let mut local_msgs: Vec<Msg> = Vec::new();
    let mut stack = vec![env.maildir()];
    while let Some(d) = stack.pop() {
        local_msgs.extend(read_maildir(&d));
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let n = e.file_name();
            if p.is_dir() && !["cur", "new", "tmp"].contains(&n.to_str().unwrap_or("")) {
                stack.push(p);
            }
        }
    }
    local_msgs.sort();
    let mut server_msgs: Vec<Msg> = [".hidden", "Dup", "dup", "INBOX"]
        .iter()
        .flat_map(|w| env.server(w))
        .collect();
    server_msgs.sort();
    assert!(
        local_msgs == server_msgs,
        "{}",
        diff(&local_msgs, &server_msgs)
    );
    let again = env.sync_ok();
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(list_names(&env), before);
}

fn list_names(env: &Env) -> Vec<String> {
    let r = env.imap(&["LIST \"\" \"*\""]);
    let mut v: Vec<String> = r[0]
        .iter()
        .filter(|l| l.starts_with("* LIST"))
        .map(|l| l.rsplit("\"/\" ").next().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

/// Another client renames a folder with a child on Cyrus (RENAME takes the children along,
/// with an untagged OK per mailbox). The Maildir follows: every message is where the server
/// has it, none is uploaded back under the old name, and a second run changes nothing.
#[test]
fn folder_renamed_on_the_server_is_followed_without_duplicates() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    env.cyrus.create_mailbox(&env.user, "Work");
    env.cyrus.create_mailbox(&env.user, "Work/Sub");
    env.deliver("Work", &message("work", 0));
    env.deliver("Work/Sub", &message("sub", 1));
    env.deliver("Work/Sub", &message("sub", 2));
    env.sync_ok();
    env.imap(&["RENAME \"Work\" \"Job\""]);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 0, "nothing goes back up: {r:#?}");
    assert_eq!(
        list_names(&env),
        vec!["INBOX".to_owned(), "Job".to_owned(), "Job/Sub".to_owned()],
        "the old names are not created again"
    );
    env.assert_mirrored("Job", "Job");
    env.assert_mirrored("Job/Sub", "Job/Sub");
    assert!(env.local("Work").is_empty() && env.local("Work/Sub").is_empty());
    let again = env.sync_ok();
    assert!(!again.changed_anything(), "{again:#?}");
}

/// Seed V0003 on Cyrus: another client deletes a folder and re-creates it with the same
/// messages (Cyrus gives the new folder a new UIDVALIDITY). Every message is paired again by
/// content without a download or an upload — including one the server holds rewritten
/// (8-bit header bytes to `X`, so its bytes differ from the local file's) — flags follow the
/// server, and a second run changes nothing.
#[test]
fn v0003_folder_recreated_with_a_new_uidvalidity_is_rebound_without_transfer() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    env.cyrus.create_mailbox(&env.user, "Work");
    for i in 0..3 {
        env.deliver("Work", &message("work", i));
    }
    env.sync_ok();
    env.drop_local(
        "Work",
        "1700000013.eightbit.host",
        "From: Jürgen <j@example.de>\nSubject: Grüße\nMessage-ID: <rebind-8bit@t>\n\nHallo\n"
            .as_bytes(),
    );
    env.sync_ok();
    assert!(!env.sync_ok().changed_anything());
    let validity = |env: &Env| -> String {
        let r = env.imap(&["STATUS \"Work\" (UIDVALIDITY)"]);
        r[0][0].clone()
    };
    let old_validity = validity(&env);
    let copies = server_uids(&env.cyrus, &env.user, "Work");
    let mut commands = vec!["DELETE \"Work\"".to_owned(), "CREATE \"Work\"".to_owned()];
    for (bytes, letters) in copies.values() {
        let wire = crlf(bytes);
        let text = String::from_utf8(wire).expect("Cyrus' copies are ASCII");
        let flags: Vec<&str> = letters
            .chars()
            .filter_map(|c| match c {
                'D' => Some("\\Draft"),
                'F' => Some("\\Flagged"),
                'R' => Some("\\Answered"),
                'S' => Some("\\Seen"),
                'T' => Some("\\Deleted"),
                _ => None,
            })
            .collect();
        // LITERAL+ (Cyrus offers it): the message goes in the same command line.
        commands.push(format!(
            "APPEND \"Work\" ({}) {{{}+}}\r\n{text}",
            flags.join(" "),
            text.len()
        ));
    }
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    env.imap(&refs);
    assert_ne!(
        validity(&env),
        old_validity,
        "Cyrus gave the same UIDVALIDITY"
    );

    let r = env.sync_ok();
    let work = folder(&r, "Work");
    assert_eq!(
        (work.downloaded, work.uploaded),
        (0, 0),
        "paired by content, nothing transferred: {r:#?}"
    );
    assert_eq!(env.server("Work").len(), 4, "no duplicate on the server");
    assert_eq!(env.local("Work").len(), 4, "no duplicate locally");
    assert!(!env.sync_ok().changed_anything());
}

/// Seed V0057 on Cyrus: a message moved to a nested folder by another client (UID MOVE) is
/// moved in the Maildir without a download; one moved between local folders becomes a UID
/// MOVE on the server, again with nothing transferred.
#[test]
fn v0057_moves_into_a_nested_folder_are_moves_both_ways() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()), 0);
    env.cyrus.create_mailbox(&env.user, "Archive");
    env.cyrus.create_mailbox(&env.user, "Archive/2024");
    let uids: Vec<u32> = (0..3)
        .map(|i| env.deliver("INBOX", &message("inbox", i)))
        .collect();
    env.sync_ok();
    env.imap(&[
        "SELECT INBOX",
        &format!("UID MOVE {} \"Archive/2024\"", uids[0]),
    ]);
    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.downloaded), 0, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_moves), 1, "{r:#?}");
    env.assert_mirrored("INBOX", "INBOX");
    env.assert_mirrored("Archive/2024", "Archive/2024");
    let src = env.local_file_with("INBOX", "Subject: inbox message 1\n");
    let dest = env
        .local_dir("Archive/2024")
        .join("cur")
        .join(src.file_name().unwrap());
    fs::rename(&src, &dest).unwrap();
    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.remote_moves), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded + f.downloaded), 0, "{r:#?}");
    assert_eq!(traffic(&r).count("UID MOVE"), 1, "{:#?}", traffic(&r));
    env.assert_mirrored("INBOX", "INBOX");
    env.assert_mirrored("Archive/2024", "Archive/2024");
    assert_eq!(env.server("Archive/2024").len(), 2);
    assert!(!env.sync_ok().changed_anything());
}

/// APPENDs many messages in one session (LITERAL+, which Cyrus offers): far faster than a
/// connection per message.
fn bulk_deliver(env: &Env, wire: &str, msgs: &[Vec<u8>]) {
    let commands: Vec<String> = msgs
        .iter()
        .map(|m| {
            let text = String::from_utf8(crlf(m)).expect("ASCII test message");
            format!("APPEND {} {{{}+}}\r\n{text}", quoted(wire), text.len())
        })
        .collect();
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    env.imap(&refs);
}

/// Seed V0002 with Cyrus' QRESYNC (RFC 7162): a flag changed and a message expunged by
/// another client reach the Maildir from `SELECT … (QRESYNC …)` — Cyrus answers with
/// `VANISHED (EARLIER)` and the changed FETCH — without reading every UID's flags.
#[test]
fn v0002_qresync_changes_from_cyrus_reach_the_maildir_without_a_full_flag_fetch() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().telemetry(true)), 0);
    let msgs: Vec<Vec<u8>> = (0..120).map(|i| message("inbox", i)).collect();
    bulk_deliver(&env, "INBOX", &msgs);
    let first = env.sync_ok();
    assert_eq!(total(&first, |f| f.downloaded), 120);
    env.imap(&[
        "SELECT INBOX",
        "UID STORE 5 +FLAGS.SILENT (\\Flagged)",
        "UID STORE 9 +FLAGS.SILENT (\\Deleted)",
        "UID EXPUNGE 9",
    ]);
    let r = env.sync_ok();
    assert_eq!(total(&r, |f| f.local_flag_changes), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_deletions), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 0, "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("SELECT"), 1, "{t:#?}");
    assert_eq!(
        t.count("UID FETCH"),
        0,
        "QRESYNC's SELECT says it all: {t:#?}"
    );
    // 120 UIDs with flags would be several kilobytes; the changes are a few lines.
    assert!(t.bytes_received < 4000, "{t:#?}");
    env.assert_mirrored("INBOX", "INBOX");
    assert_eq!(env.local("INBOX").len(), 119);
    assert!(!env.sync_ok().changed_anything());
}
