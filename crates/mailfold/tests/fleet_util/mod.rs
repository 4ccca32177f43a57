//! Helpers for the fleet tests: many accounts on one private Dovecot, filled by writing
//! Maildir files (Dovecot indexes files it finds in `new/` when the folder is next opened,
//! so 20,000 messages take a second instead of 20,000 `doveadm save` runs), a manifest for
//! them, and the check that a mirror holds exactly its account's messages.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mailfold_testsupport::Dovecot;

/// The Message-IDs written for each user, by user name and folder.
pub type Written = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Writes `per_folder` messages into each of `folders` (`INBOX` or a Maildir++ folder name)
/// of the first `users` users, as files in `new/`, owned like the rest of the mail.
pub fn populate(dovecot: &Dovecot, users: usize, folders: &[&str], per_folder: usize) -> Written {
    let mail = dovecot.root().join("mail");
    let (uid, gid) = mail_owner(dovecot);
    let mut written = Written::new();
    for u in &dovecot.users()[..users] {
        let root = dovecot.mail_root(&u.name);
        for folder in folders {
            let dir = if *folder == "INBOX" {
                root.clone()
            } else {
                root.join(format!(".{folder}"))
            };
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            let mut ids = Vec::new();
            for i in 0..per_folder {
                let id = format!("{}-{}-{i}@fleet.test", u.name, folder);
                let msg = format!(
                    "From: sender{i}@example.org\r\nTo: {0}@example.org\r\nSubject: message {i} \
                     of {0} in {folder}\r\nDate: Mon, 15 Jan 2024 10:00:00 +0000\r\n\
                     Message-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\
                     Body {i} of {0}/{folder}.\r\n{1}\r\n",
                    u.name,
                    "x".repeat(200 + i % 300),
                );
                let path = dir.join("new").join(format!("1700000000.M{i}P1.fleet"));
                std::fs::write(&path, msg).unwrap();
                ids.push(id);
            }
            if *folder != "INBOX" {
                std::fs::write(dir.join("maildirfolder"), b"").unwrap();
            }
            written
                .entry(u.name.clone())
                .or_default()
                .insert(folder.to_string(), ids);
        }
        chown_tree(&mail.join(&u.name), uid, gid);
    }
    written
}

/// Who owns the users' mail: `nobody` when the tests run as root (Dovecot will not
/// access mail as root), else ourselves.
fn mail_owner(dovecot: &Dovecot) -> (u32, u32) {
    if !dovecot.runs_as_root() {
        let me = std::fs::metadata(dovecot.root()).unwrap();
        return (me.uid(), me.gid());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("user nobody")
}

/// Gives the directories to the mail's owner. The message files stay ours, readable by all:
/// Dovecot only reads them and renames them (which needs the directory, not the file), and
/// skipping 20,000 chowns keeps the fleet tests' set-up short.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// Writes each user's password into `secrets/<user>` and a manifest whose defaults point
/// every account at `server` with `tls`; `fleet` is the `[fleet]` table's body and `extra`
/// more `[defaults]` lines. Accounts are listed in a CSV file (one column: the name).
pub fn write_manifest(
    dir: &Path,
    dovecot: &Dovecot,
    users: usize,
    server: SocketAddr,
    tls: &str,
    fleet: &str,
    extra: &str,
) -> PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let mut csv = String::from("account\n");
    for u in &dovecot.users()[..users] {
        std::fs::write(secrets.join(&u.name), format!("{}\n", u.password)).unwrap();
        csv.push_str(&u.name);
        csv.push('\n');
    }
    std::fs::write(dir.join("accounts.csv"), csv).unwrap();
    let plaintext = if tls == "none" {
        "allow_plaintext_password = true\n"
    } else {
        ""
    };
    let text = format!(
        "[fleet]\naccounts_csv = \"accounts.csv\"\n{fleet}\n\n[defaults]\nhost = {host:?}\n\
         port = {port}\ntls = {tls:?}\n{plaintext}ca_file = {ca:?}\nuser = \"{{account}}\"\n\
         password_file = \"{dir}/secrets/{{account}}\"\nlocal = \"{dir}/mirror/{{account}}\"\n\
         state = \"{dir}/state/{{account}}.sqlite\"\nfsync = false\n{extra}",
        host = server.ip().to_string(),
        port = server.port(),
        ca = dovecot.ca_file().display().to_string(),
        dir = dir.display(),
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the mailfold program `bin` with ARGS and a clean environment (no personal config).
/// The tests pass their `CARGO_BIN_EXE_mailfold`; the fleet_bench example, which includes
/// this file too, has no such variable.
pub fn mailfold_with(bin: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .env_remove("MAILFOLD_CONFIG")
        .output()
        .expect("run mailfold")
}

/// The JSON lines of a `fleet run` output.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The Message-IDs of every message file of a local mirror folder (`INBOX`, `Archive`),
/// sorted; a message present twice appears twice.
pub fn mirror_ids(local: &Path, folder: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(local.join(folder).join(sub)) else {
            continue;
        };
        for e in rd {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: <"))
                .and_then(|l| l.split('>').next())
                .unwrap_or("(none)")
                .to_string();
            ids.push(id);
        }
    }
    ids.sort();
    ids
}

/// Asserts that every account's mirror holds exactly the messages written for it (no loss,
/// no duplicate) and that the server still holds exactly as many (nothing uploaded twice).
pub fn assert_mirrors(dovecot: &Dovecot, dir: &Path, written: &Written) {
    let folders: std::collections::BTreeSet<&String> =
        written.values().flat_map(|f| f.keys()).collect();
    for folder in folders {
        // One doveadm run for every user (`-A`), not one per user.
        // It exits non-zero when some user (the ANONYMOUS login's) lacks the folder; the
        // rows of the others are printed all the same, and a missing row fails below.
        let table = dovecot
            .try_doveadm(
                &["-f", "tab", "mailbox", "status", "-A", "messages", folder],
                None,
            )
            .unwrap_or_else(|e| e);
        let counts: BTreeMap<&str, usize> = table
            .lines()
            .skip(1)
            .filter_map(|l| {
                // Username, mailbox, messages.
                let mut cells = l.split('\t');
                let (u, _, n) = (cells.next()?, cells.next()?, cells.next()?);
                Some((u, n.trim().parse().ok()?))
            })
            .collect();
        for (user, fs) in written {
            let Some(ids) = fs.get(folder) else { continue };
            let mut want = ids.clone();
            want.sort();
            let got = mirror_ids(&dir.join("mirror").join(user), folder);
            assert_eq!(got.len(), want.len(), "{user}/{folder}: message count");
            assert_eq!(got, want, "{user}/{folder}: messages");
            assert_eq!(
                counts.get(user.as_str()),
                Some(&ids.len()),
                "{user}/{folder} on the server"
            );
        }
    }
}

/// A TCP proxy that counts IMAP sessions open at once. A session counts from its accept
/// until the client sends LOGOUT (seen before it is forwarded, so before the client can
/// have its answer and start another session) or the connection ends; the peak is what
/// the server saw at most at any moment.
pub struct CountingProxy {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CountingProxy {
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (open, peak, total, stop) = (
                Arc::clone(&open),
                Arc::clone(&peak),
                Arc::clone(&total),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            total.fetch_add(1, Ordering::SeqCst);
                            let Ok(server) = TcpStream::connect(upstream) else {
                                open.fetch_sub(1, Ordering::SeqCst);
                                continue;
                            };
                            let ended = Arc::new(Mutex::new(false));
                            let end = {
                                let (open, ended) = (Arc::clone(&open), Arc::clone(&ended));
                                move || {
                                    let mut e = ended.lock().unwrap();
                                    if !*e {
                                        *e = true;
                                        open.fetch_sub(1, Ordering::SeqCst);
                                    }
                                }
                            };
                            let (c2, s2) =
                                (client.try_clone().unwrap(), server.try_clone().unwrap());
                            let end1 = end.clone();
                            std::thread::spawn(move || pump(client, server, true, end1));
                            std::thread::spawn(move || pump(s2, c2, false, end));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        CountingProxy {
            addr,
            open,
            peak,
            total,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The most sessions open at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Sessions accepted so far.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, from_client: bool, end: impl Fn()) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if from_client {
            let chunk = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
            if chunk.contains(" LOGOUT\r\n") {
                end();
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    end();
    let _ = to.shutdown(std::net::Shutdown::Write);
}
