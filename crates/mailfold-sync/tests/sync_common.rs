//! Shared helpers for the sync integration tests (included with `#[path]`; compiled alone it
//! holds no test). A private Dovecot, an account pointing at it, and readers for both sides
//! that look at the files themselves, not through mailfold.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mailfold_sync::Secret;
use mailfold_sync::{AccountSpec, SyncOptions, SyncReport, TlsMode};
use mailfold_testsupport::Dovecot;

/// One message as a side holds it: the bytes (LF line ends, as both Maildirs store them) and
/// the standard Maildir flag letters.
pub(crate) type Msg = (Vec<u8>, String);

/// A Dovecot, a scratch directory, and the first test user.
pub(crate) struct Env {
    pub(crate) dovecot: Dovecot,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Env {
    pub(crate) fn new() -> Env {
        Env::with_users(2)
    }

    pub(crate) fn with_users(n: usize) -> Env {
        let dovecot = Dovecot::builder().users(n).start();
        let u = dovecot.user(0).clone();
        Env {
            dovecot,
            dir: tempfile::tempdir().expect("tempdir"),
            user: u.name,
            password: u.password,
        }
    }

    pub(crate) fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub(crate) fn state_db(&self) -> PathBuf {
        self.dir.path().join("state").join("account.db")
    }

    /// The account over implicit TLS with the run's CA.
    pub(crate) fn account(&self) -> AccountSpec {
        let addr = self.dovecot.imaps_addr();
        let mut a = AccountSpec::new(
            "test",
            addr.ip().to_string(),
            self.user.clone(),
            Secret::new(self.password.clone()),
            self.maildir(),
            self.state_db(),
        );
        a.port = addr.port();
        a.tls = TlsMode::Implicit;
        a.ca_file = Some(self.dovecot.ca_file());
        a
    }

    pub(crate) fn sync(&self) -> SyncReport {
        self.sync_with(&self.account())
    }

    pub(crate) fn sync_with(&self, a: &AccountSpec) -> SyncReport {
        let r = mailfold_sync::sync_account(a, &SyncOptions::default())
            .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", self.dovecot.log()));
        r
    }

    /// The server's Maildir directory of a folder (Maildir++ layout: `.A.B`).
    pub(crate) fn server_dir(&self, folder: &str) -> PathBuf {
        let root = self.dovecot.mail_root(&self.user);
        if folder == "INBOX" {
            root
        } else {
            root.join(format!(".{}", folder.replace('/', ".")))
        }
    }

    /// The local Maildir of a folder.
    pub(crate) fn local_dir(&self, folder: &str) -> PathBuf {
        let mut p = self.maildir();
        for c in folder.split('/') {
            p.push(c);
        }
        p
    }

    /// Writes messages straight into the server's Maildir and makes Dovecot index them
    /// ([`seed_maildir`]).
    pub(crate) fn seed_server(&self, folder: &str, msgs: &[(Vec<u8>, &str)]) {
        seed_maildir(&self.dovecot, &self.user, folder, msgs);
    }

    pub(crate) fn server_folder(&self, folder: &str) -> Vec<Msg> {
        read_maildir(&self.server_dir(folder))
    }

    pub(crate) fn local_folder(&self, folder: &str) -> Vec<Msg> {
        read_maildir(&self.local_dir(folder))
    }

    pub(crate) fn deliver(&self, folder: &str, msg: &[u8]) {
        self.dovecot.deliver(&self.user, &mailbox_arg(folder), msg);
    }

    /// Adds a file to the local Maildir as a mail reader would.
    pub(crate) fn drop_local(&self, folder: &str, name: &str, body: &[u8]) -> PathBuf {
        let dir = self.local_dir(folder);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let p = dir.join("new").join(name);
        fs::write(&p, body).unwrap();
        p
    }

    /// Local files of a folder (paths), `cur/` and `new/`.
    pub(crate) fn local_files(&self, folder: &str) -> Vec<PathBuf> {
        files_of(&self.local_dir(folder))
    }

    pub(crate) fn status(&self, folder: &str, items: &str) -> String {
        self.dovecot.status(&self.user, &mailbox_arg(folder), items)
    }
}

/// Writes messages (LF line ends, Maildir flag letters) straight into `user`'s Maildir folder
/// on the server and makes Dovecot index them: much faster than a delivery per message.
pub(crate) fn seed_maildir(dovecot: &Dovecot, user: &str, folder: &str, msgs: &[(Vec<u8>, &str)]) {
    // Makes Dovecot create the user's Maildir with the right owner first.
    dovecot.status(user, "INBOX", "messages");
    if folder != "INBOX" {
        let _ = dovecot.try_doveadm(
            &["mailbox", "create", "-u", user, &mailbox_arg(folder)],
            None,
        );
    }
    let root = dovecot.mail_root(user);
    let dir = if folder == "INBOX" {
        root.clone()
    } else {
        root.join(format!(".{}", mailbox_arg(folder)))
    };
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (i, (body, flags)) in msgs.iter().enumerate() {
        let name = format!("1700000000.M{i}P1.seed:2,{flags}");
        let p = dir.join("cur").join(name);
        fs::write(&p, body).unwrap();
        // INTERNALDATE comes from the file's mtime in a Maildir.
        let t = filetime_of(1_600_000_000 + i as i64 * 60);
        set_mtime(&p, t);
    }
    chown_like(&root, &dir);
    dovecot.doveadm(&["force-resync", "-u", user, &mailbox_arg(folder)]);
}

pub(crate) fn mailbox_arg(folder: &str) -> String {
    folder.replace('/', ".")
}

pub(crate) fn files_of(dir: &Path) -> Vec<PathBuf> {
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

/// Standard flag letters of a Maildir file name (Dovecot's keyword letters a–z dropped).
pub(crate) fn letters_of(p: &Path) -> String {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let info = name.split_once(":2,").map(|(_, f)| f).unwrap_or("");
    let mut l: Vec<char> = info.chars().filter(|c| "DFPRST".contains(*c)).collect();
    l.sort();
    l.into_iter().collect()
}

/// Every message of a Maildir, sorted, so two sides compare as multisets.
pub(crate) fn read_maildir(dir: &Path) -> Vec<Msg> {
    let mut v: Vec<Msg> = files_of(dir)
        .into_iter()
        .map(|p| (fs::read(&p).unwrap(), letters_of(&p)))
        .collect();
    v.sort();
    v
}

/// A compact description of a multiset difference for assertion messages.
pub(crate) fn diff(a: &[Msg], b: &[Msg]) -> String {
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
        .take(5)
        .map(|((body, f), n)| {
            format!(
                "{n:+} flags={f} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A small message with a Message-ID (LF line ends).
pub(crate) fn message(folder: &str, i: usize) -> Vec<u8> {
    format!(
        "From: sender{i}@example.org\nTo: user@example.org\nSubject: {folder} message {i}\n\
         Message-ID: <{folder}.{i}@mailfold.test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n\
         Body of message {i} in {folder}.\nSecond line.\n"
    )
    .into_bytes()
}

fn filetime_of(unix: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64)
}

fn set_mtime(p: &Path, t: std::time::SystemTime) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

/// When the test runs as root, Dovecot's mail is owned by an unprivileged user: files written
/// by the test must be given to that owner or Dovecot cannot rename them.
fn chown_like(reference: &Path, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(reference) else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::os::unix::fs::chown(&d, Some(uid), Some(gid));
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
                }
            }
        }
    }
}
