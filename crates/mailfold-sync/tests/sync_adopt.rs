//! Adopting the Maildir of mbsync (isync 1.4) and of OfflineIMAP, each run for real against a
//! private Dovecot: the first mailfold sync binds the existing files (by the UIDs the tool left,
//! else by content), fetches no body and appends nothing (counted in Dovecot's raw protocol
//! log), pushes the flags changed in the tree, leaves notmuch's message count alone, and ends
//! with a mirror equal to the server.

#[path = "sync_common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{diff, message, read_maildir, Env, Msg};
use mailfold_store::Layout;
use mailfold_sync::{AccountSpec, SyncOptions, SyncReport};
use mailfold_testsupport::Dovecot;

/// The server's folders (Dovecot names, delimiter `.`) and their messages' flag letters.
const SEED: &[(&str, &[&str])] = &[
    ("INBOX", &["S", "", "S", "FS", "", "RS"]),
    ("Archive", &["S", "S", "", "S"]),
    ("Archive/2024", &["", "S", "S"]),
];
/// A folder with a non-ASCII name: Dovecot, mbsync and OfflineIMAP all name its directory in
/// modified UTF-7 (`&AMk-t&AOk-`). It holds one message, delivered without flags.
const NON_ASCII: &str = "Été";

/// Every folder of the test, as `/`-separated names.
fn folders() -> Vec<&'static str> {
    SEED.iter().map(|(f, _)| *f).chain([NON_ASCII]).collect()
}

/// A folder's directory name in a one-level tree: modified UTF-7, levels joined by `.`.
fn one_level(folder: &str) -> String {
    mailfold_proto::utf7::encode(folder).replace('/', ".")
}

fn env() -> Env {
    let dovecot = Dovecot::builder().users(1).rawlog(true).start();
    let u = dovecot.user(0).clone();
    let env = Env {
        dovecot,
        dir: tempfile::tempdir().expect("tempdir"),
        user: u.name,
        password: u.password,
    };
    for (folder, flags) in SEED {
        let msgs: Vec<(Vec<u8>, &str)> = flags
            .iter()
            .enumerate()
            .map(|(i, f)| (message(folder, i), *f))
            .collect();
        env.seed_server(folder, &msgs);
    }
    env.dovecot.create_mailbox(&env.user, NON_ASCII);
    env.deliver(NON_ASCII, &message("Ete", 0));
    fs::write(env.dir.path().join("password"), &env.password).unwrap();
    env
}

fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    // scripts/test installs isync and offlineimap3; a missing tool is a failure, not a skip.
    assert!(
        found,
        "{name} is not installed (apt-get install -y isync offlineimap3)"
    );
    Command::new(name)
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("run the tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// mbsync's tree with `SubFolders Maildir++` (INBOX is the root).
fn mbsync_mirror(env: &Env) -> PathBuf {
    let tree = env.dir.path().join("mbsync");
    fs::create_dir_all(&tree).unwrap();
    let rc = env.dir.path().join("mbsyncrc");
    fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost localhost\nPort {}\nUser {}\nPassCmd \"cat {}\"\nSSLType IMAPS\n\
             CertificateFile {}\n\nIMAPStore t-far\nAccount t\n\nMaildirStore t-near\n\
             SubFolders Maildir++\nInbox {}/\n\nChannel t\nFar :t-far:\nNear :t-near:\n\
             Patterns *\nCreate Near\nSyncState *\n",
            env.dovecot.imaps_addr().port(),
            env.user,
            env.dir.path().join("password").display(),
            env.dovecot.ca_file().display(),
            tree.display()
        ),
    )
    .unwrap();
    let mut cmd = tool("mbsync");
    cmd.arg("-c").arg(&rc).arg("-a");
    run(cmd);
    tree
}

/// OfflineIMAP's tree (its default flat layout, separator `.`) and its metadata directory.
fn offlineimap_mirror(env: &Env) -> (PathBuf, PathBuf) {
    let tree = env.dir.path().join("offlineimap");
    let meta = env.dir.path().join("offlineimap-meta");
    let rc = env.dir.path().join("offlineimaprc");
    fs::write(
        &rc,
        format!(
            "[general]\naccounts = t\nmetadata = {}\n\n[Account t]\nlocalrepository = Local\n\
             remoterepository = Remote\n\n[Repository Local]\ntype = Maildir\nlocalfolders = {}\n\n\
             [Repository Remote]\ntype = IMAP\nremotehost = localhost\nremoteport = {}\n\
             remoteuser = {}\nremotepassfile = {}\nssl = yes\nsslcacertfile = {}\n",
            meta.display(),
            tree.display(),
            env.dovecot.imaps_addr().port(),
            env.user,
            env.dir.path().join("password").display(),
            env.dovecot.ca_file().display(),
        ),
    )
    .unwrap();
    let mut cmd = tool("offlineimap");
    cmd.arg("-c").arg(&rc).args(["-u", "quiet"]);
    run(cmd);
    (tree, meta)
}

fn account(env: &Env, tree: &Path, layout: Layout) -> AccountSpec {
    let mut a = env.account();
    a.maildir = tree.to_path_buf();
    a.layout = layout;
    a
}

fn sync(a: &AccountSpec, opts: SyncOptions) -> SyncReport {
    mailfold_sync::sync_account(a, &opts).unwrap_or_else(|e| panic!("sync failed: {e}"))
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

/// Forgets the sessions logged so far, so the next look counts one run only.
fn clear_rawlog(env: &Env) {
    let dir = env
        .dovecot
        .root()
        .join("mail")
        .join(&env.user)
        .join("rawlog");
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        fs::remove_file(e.path()).unwrap();
    }
}

/// What the clients sent since [`clear_rawlog`].
fn client_lines(env: &Env) -> Vec<String> {
    let dir = env
        .dovecot
        .root()
        .join("mail")
        .join(&env.user)
        .join("rawlog");
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "in") {
            let text = fs::read(e.path()).unwrap();
            out.extend(String::from_utf8_lossy(&text).lines().map(str::to_owned));
        }
    }
    out
}

/// Body fetches (whole messages) and APPENDs among the client's commands.
fn transfers(lines: &[String]) -> (usize, usize) {
    let upper: Vec<String> = lines.iter().map(|l| l.to_ascii_uppercase()).collect();
    let bodies = upper
        .iter()
        .filter(|l| l.contains("BODY.PEEK[]") || l.contains("BODY[]") || l.contains("RFC822)"))
        .count();
    let appends = upper.iter().filter(|l| l.contains(" APPEND ")).count();
    (bodies, appends)
}

/// A file renamed to other flag letters, as a mail reader does it.
fn set_letters(p: &Path, letters: &str) {
    let name = p.file_name().unwrap().to_str().unwrap();
    let base = name.split_once(":2,").map_or(name, |(b, _)| b);
    fs::rename(p, p.with_file_name(format!("{base}:2,{letters}"))).unwrap();
}

/// The messages of a local folder without mbsync's `X-TUID` header line.
fn local_messages(dir: &Path) -> Vec<Msg> {
    let mut v: Vec<Msg> = read_maildir(dir)
        .into_iter()
        .map(|(body, flags)| {
            let text = String::from_utf8(body).unwrap();
            let kept: Vec<&str> = text
                .split_inclusive('\n')
                .filter(|l| !l.starts_with("X-TUID: "))
                .collect();
            (kept.concat().into_bytes(), flags)
        })
        .collect();
    v.sort();
    v
}

fn assert_mirror(env: &Env, local_dir: impl Fn(&str) -> PathBuf) {
    for folder in folders() {
        let server = match folder {
            "INBOX" => env.dovecot.mail_root(&env.user),
            f => env
                .dovecot
                .mail_root(&env.user)
                .join(format!(".{}", one_level(f))),
        };
        let (l, s) = (local_messages(&local_dir(folder)), read_maildir(&server));
        assert_eq!(l, s, "{folder}:\n{}", diff(&l, &s));
    }
}

/// notmuch's message count of a tree, its database kept outside the tree.
fn notmuch_count(env: &Env, tree: &Path) -> u64 {
    let db = env.dir.path().join("notmuch-db");
    fs::create_dir_all(&db).unwrap();
    let cfg = env.dir.path().join("notmuch-config");
    fs::write(
        &cfg,
        format!(
            "[database]\npath={}\nmail_root={}\n[new]\ntags=new\n",
            db.display(),
            tree.display()
        ),
    )
    .unwrap();
    let mut cmd = tool("notmuch");
    cmd.arg(format!("--config={}", cfg.display())).arg("new");
    run(cmd);
    let out = tool("notmuch")
        .arg(format!("--config={}", cfg.display()))
        .args(["count", "*"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// mbsync's Maildir++ tree: every file is bound through `.mbsyncstate` (its files carry an
/// `X-TUID` header, so content matching alone would bind none), the flags changed in the tree
/// reach the server, nothing is transferred, notmuch sees the same messages.
#[test]
fn mbsync_tree_is_adopted_without_transfer() {
    let env = env();
    let tree = mbsync_mirror(&env);
    let inbox = files(&tree, "cur");
    assert_eq!(
        inbox.len() + files(&tree, "new").len(),
        6,
        "mbsync mirrored INBOX"
    );
    set_letters(&inbox[0], "FS");
    set_letters(&files(&tree.join(".Archive"), "cur")[0], "");
    let before = notmuch_count(&env, &tree);
    assert_eq!(before, 14);

    clear_rawlog(&env);
    let a = account(&env, &tree, Layout::MaildirPlusPlus);
    let r = sync(&a, SyncOptions::default());
    let adoption = r.adoption.clone().expect("the first sync adopts");
    assert_eq!(adoption.by_uid, 14, "{r:#?}");
    assert_eq!((adoption.by_content, adoption.local_only), (0, 0), "{r:#?}");
    for f in ["INBOX", "Archive", "Archive/2024", NON_ASCII] {
        assert!(adoption.mbsync_folders.iter().any(|m| m == f), "{r:#?}");
    }
    assert_eq!(total(&r, |f| f.downloaded) + total(&r, |f| f.uploaded), 0);
    assert_eq!(total(&r, |f| f.remote_flag_changes), 2, "{r:#?}");
    assert_eq!(transfers(&client_lines(&env)), (0, 0));

    assert_mirror(&env, |f| match f {
        "INBOX" => tree.clone(),
        other => tree.join(format!(".{}", one_level(other))),
    });
    assert_eq!(notmuch_count(&env, &tree), before);
    // The next run is an ordinary one with nothing to do.
    let again = sync(&a, SyncOptions::default());
    assert!(again.adoption.is_none());
    assert!(again.folders.is_empty(), "{again:#?}");
}

/// OfflineIMAP's flat tree with a file deleted and one added by hand, and a server folder reset
/// (UIDVALIDITY changed) since OfflineIMAP ran: the `,U=` UIDs bind where the validity still
/// holds, the reset folder binds by content, the deleted file comes back (nothing is deleted
/// on a first sync), the hand-made file stays local-only until `--upload-unmatched`.
#[test]
fn offlineimap_tree_is_adopted_and_unmatched_files_stay_local() {
    let env = env();
    let (tree, meta) = offlineimap_mirror(&env);
    let inbox = tree.join("INBOX");
    let first = files(&inbox, "cur").into_iter().next().unwrap();
    set_letters(&first, "F");
    fs::remove_file(&files(&tree.join("Archive"), "cur")[0]).unwrap();
    fs::write(
        inbox.join("new").join("handmade.host:2,"),
        message("Handmade", 1),
    )
    .unwrap();
    env.dovecot
        .set_uidvalidity(&env.user, "Archive.2024", 4_000_000_000);

    clear_rawlog(&env);
    let mut a = account(&env, &tree, Layout::flat('.').unwrap());
    a.adopt_offlineimap = Some(meta.join("Repository-Remote"));
    let r = sync(&a, SyncOptions::default());
    let adoption = r.adoption.clone().expect("the first sync adopts");
    assert_eq!(adoption.by_uid, 10, "{r:#?}");
    assert_eq!(adoption.by_content, 3, "{r:#?}");
    assert_eq!(adoption.local_only, 1, "{r:#?}");
    assert_eq!(adoption.validity_changed, ["Archive/2024"], "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 1, "the deleted file: {r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 0, "{r:#?}");
    assert_eq!(transfers(&client_lines(&env)), (1, 0));
    let handmade = inbox.join("new").join("handmade.host:2,");
    assert!(handmade.is_file(), "another tool's files are never renamed");

    // The hand-made file aside, the mirror equals the server; later runs keep it local.
    let keep = env.dir.path().join("handmade");
    fs::rename(&handmade, &keep).unwrap();
    assert_mirror(&env, |f| tree.join(one_level(f)));
    fs::rename(&keep, &handmade).unwrap();
    let again = sync(&a, SyncOptions::default());
    assert_eq!(total(&again, |f| f.uploaded), 0, "{again:#?}");

    let up = sync(
        &a,
        SyncOptions {
            upload_unmatched: true,
            ..SyncOptions::default()
        },
    );
    assert_eq!(total(&up, |f| f.uploaded), 1, "{up:#?}");
    assert_mirror(&env, |f| tree.join(one_level(f)));
}

/// The same adoption through a `tunnel`: Dovecot's `imap` binary run directly, greeting with
/// PREAUTH on its stdin and stdout; no TCP, no TLS, no password.
#[test]
fn mbsync_tree_is_adopted_through_a_tunnel() {
    let env = env();
    let tree = mbsync_mirror(&env);
    set_letters(&files(&tree, "cur")[1], "FS");
    let mut a = account(&env, &tree, Layout::MaildirPlusPlus);
    a.tunnel = Some(vec![
        "/usr/lib/dovecot/imap".into(),
        "-c".into(),
        env.dovecot.config_path().display().to_string(),
        "-u".into(),
        env.user.clone(),
    ]);
    // Nothing of these is used: a tunnel connects nowhere and sends no secret.
    a.port = 1;
    a.secret = mailfold_sync::AccountSecret::Password(mailfold_sync::Secret::new(
        "not-the-password".into(),
    ));
    let r = sync(&a, SyncOptions::default());
    let adoption = r.adoption.clone().expect("the first sync adopts");
    assert_eq!(adoption.by_uid, 14, "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded) + total(&r, |f| f.uploaded), 0);
    assert_eq!(total(&r, |f| f.remote_flag_changes), 1, "{r:#?}");
    let traffic = r.traffic.clone().expect("a mailfold-net session");
    assert!(!traffic.commands.contains_key("APPEND"), "{traffic:?}");
    assert!(!traffic.commands.contains_key("LOGIN"), "{traffic:?}");
    assert!(
        !traffic.commands.contains_key("AUTHENTICATE"),
        "{traffic:?}"
    );
    assert_mirror(&env, |f| match f {
        "INBOX" => tree.clone(),
        other => tree.join(format!(".{}", one_level(other))),
    });
}
