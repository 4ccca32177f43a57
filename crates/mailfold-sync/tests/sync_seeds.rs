//! Seed IDs proved end to end against a private Dovecot. Where Dovecot cannot be made to
//! misbehave (no UIDVALIDITY, INBOX missing from LIST, a folder vanishing mid-run), the real
//! session is wrapped in [`Hooked`], which alters only the one answer under test.

#[path = "sync_common.rs"]
mod common;

use std::io::Read;

use common::{diff, message, Env};
use mailfold_store::{StateDb, StateRead};
use mailfold_sync::remote::{
    Appended, BodyEvent, Flag, ListEntry, Mailbox, MessageDetails, MessageFlags, ModSeq, Moved,
    Remote, RemoteResult, Selected, Status, StoreOp, Stored, Uid,
};
use mailfold_sync::NetRemote;
use mailfold_sync::{AccountSpec, SyncOptions, SyncReport};

type Hook<T> = Option<Box<dyn FnMut(&mut T)>>;

/// A real session with optional rewrites of some answers, and a hook that runs before the
/// first body fetch or append (to play a second client, V0023).
#[derive(Default)]
struct Hooks {
    list: Hook<Vec<ListEntry>>,
    select: Hook<Selected>,
    before_write: Option<Box<dyn FnMut()>>,
    /// Play a server whose folder names are case-insensitive (V0016): CREATE of a name that
    /// differs only in case from an existing folder is refused, and a write to such a name
    /// would land in the existing folder.
    case_insensitive: bool,
}

struct Hooked {
    inner: NetRemote,
    hooks: Hooks,
}

impl Hooked {
    fn fire(&mut self) {
        if let Some(mut f) = self.hooks.before_write.take() {
            f();
        }
    }
}

impl Remote for Hooked {
    fn has_capability(&self, name: &str) -> bool {
        self.inner.has_capability(name)
    }
    fn list_all(&mut self) -> RemoteResult<Vec<ListEntry>> {
        let mut v = self.inner.list_all()?;
        if self.hooks.select.is_some() {
            // A test that rewrites SELECT wants its folders opened: without LIST-STATUS
            // counts an unchanged folder would be skipped (V0044) and the hook never run.
            for e in &mut v {
                e.status = None;
            }
        }
        if let Some(h) = self.hooks.list.as_mut() {
            h(&mut v);
        }
        Ok(v)
    }
    fn select(&mut self, mailbox: &Mailbox, read_only: bool) -> RemoteResult<Selected> {
        let mut s = self.inner.select(mailbox, read_only)?;
        if let Some(h) = self.hooks.select.as_mut() {
            h(&mut s);
        }
        Ok(s)
    }
    fn unselect(&mut self) -> RemoteResult<()> {
        self.inner.unselect()
    }
    fn fetch_flags(&mut self) -> RemoteResult<Vec<MessageFlags>> {
        self.inner.fetch_flags()
    }
    fn fetch_details(&mut self, uids: &[Uid]) -> RemoteResult<Vec<MessageDetails>> {
        self.inner.fetch_details(uids)
    }
    fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        headers_only: bool,
        sink: &mut (dyn FnMut(BodyEvent<'_>) + Send),
    ) -> RemoteResult<()> {
        self.fire();
        self.inner.fetch_bodies(uids, headers_only, sink)
    }
    fn append(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<Appended>> {
        self.fire();
        self.inner.append(mailbox, flags, internaldate, len, data)
    }
    fn store(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        since: Option<ModSeq>,
    ) -> RemoteResult<Vec<Uid>> {
        self.inner.store(uids, op, flags, since)
    }
    fn store_tracked(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        since: Option<ModSeq>,
    ) -> RemoteResult<Stored> {
        self.inner.store_tracked(uids, op, flags, since)
    }
    fn expunge(&mut self, uids: &[Uid], plain: bool) -> RemoteResult<()> {
        self.inner.expunge(uids, plain)
    }
    fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> RemoteResult<()> {
        self.inner.rename(from, to)
    }
    fn create(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        if self.hooks.case_insensitive {
            let taken = self
                .inner
                .list_all()?
                .iter()
                .any(|e| e.wire.as_wire().eq_ignore_ascii_case(mailbox.as_wire()));
            if taken {
                return Err(mailfold_sync::remote::RemoteError::No {
                    text: "[ALREADYEXISTS] Mailbox already exists".into(),
                    trycreate: false,
                });
            }
        }
        self.inner.create(mailbox)
    }
    fn delete(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.inner.delete(mailbox)
    }
    fn status(&mut self, mailbox: &Mailbox) -> RemoteResult<Status> {
        self.inner.status(mailbox)
    }
    fn search_message_id(&mut self, id: &str) -> RemoteResult<Vec<Uid>> {
        self.inner.search_message_id(id)
    }
    fn move_or_copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Moved> {
        self.fire();
        self.inner.move_or_copy(uids, dest)
    }
    fn take_alerts(&mut self) -> Vec<String> {
        self.inner.take_alerts()
    }
    fn logout(&mut self) {
        self.inner.logout()
    }
}

fn hooked_sync(env: &Env, a: &AccountSpec, hooks: Hooks) -> SyncReport {
    let (maildir, mut db) = mailfold_sync::open_store(a).unwrap();
    let mut r = Hooked {
        inner: NetRemote::connect(a).unwrap(),
        hooks,
    };
    let rep =
        mailfold_sync::sync_with_remote(&mut r, a, &SyncOptions::default(), &maildir, &mut db)
            .unwrap_or_else(|e| panic!("sync: {e}\n{}", env.dovecot.log()));
    r.logout();
    rep
}

fn crlf(b: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .replace('\n', "\r\n")
        .into_bytes()
}

fn assert_mirror(env: &Env, folder: &str) {
    let (s, l) = (env.server_folder(folder), env.local_folder(folder));
    assert!(s == l, "{folder} differs:\n{}", diff(&s, &l));
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

/// Seeds V0046 and V0048: a new local file and a draft without any header are uploaded with
/// APPEND; the UIDs come from APPENDUID, so nothing is downloaded back and a second run is
/// empty.
#[test]
fn v0048_new_local_files_are_appended_and_mapped_by_appenduid() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.sync();
    env.drop_local("INBOX", "local-1.host", &message("Local", 1));
    // V0046: no header at all.
    env.drop_local("INBOX", "draft-1.host:2,D", b"an unfinished thought\n");
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 2, "{r:#?}");
    assert_eq!(
        total(&r, |f| f.downloaded),
        0,
        "APPENDUID maps the copies: {r:#?}"
    );
    assert!(env.status("INBOX", "messages").contains("messages=3"));
    assert_mirror(&env, "INBOX");
    let db = StateDb::open(&env.state_db()).unwrap();
    let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    assert_eq!(db.messages(f.id).unwrap().len(), 3);
    assert!(db.open_intents().unwrap().is_empty(), "journal settled");
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
}

/// Seeds V0047 and V0058: the folder vanishes between planning and APPEND; the server answers
/// NO [TRYCREATE], mailfold creates it and retries once.
#[test]
fn v0047_trycreate_creates_the_folder_and_retries_once() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Projects");
    env.sync();
    env.drop_local("Projects", "p-1.host", &message("Projects", 1));
    let user = env.user.clone();
    let cfg = env.dovecot.config_path();
    let hooks = Hooks {
        before_write: Some(Box::new(move || {
            let out = std::process::Command::new("doveadm")
                .arg("-c")
                .arg(&cfg)
                .args(["mailbox", "delete", "-u", &user, "Projects"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        })),
        ..Hooks::default()
    };
    let r = hooked_sync(&env, &env.account(), hooks);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    assert!(env.status("Projects", "messages").contains("messages=1"));
    // V0058 names the same rule for COPY; mailfold's only COPY is a message move (UID COPY
    // where the server lacks MOVE).
}

/// Seed V0019: a server NO on CREATE reaches the user with the server's own text, and the rest
/// of the account still syncs.
#[test]
fn v0019_create_refused_shows_the_server_text() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    // Dovecot refuses a name starting with `~` (no full file-system access).
    env.drop_local("~home", "x-1.host", &message("X", 1));
    let r = env.sync();
    assert!(!r.is_complete());
    let f = r
        .folders
        .iter()
        .find(|f| f.folder == "~home")
        .expect("folder reported");
    let text = texts(&f.errors).join("\n");
    assert!(text.contains("CREATE refused"), "{r:#?}");
    assert!(
        text.to_ascii_lowercase().contains("not allowed") || text.contains("["),
        "{text}"
    );
    assert_mirror(&env, "INBOX");
    assert_eq!(
        env.local_files("~home").len(),
        1,
        "the local message is kept"
    );
}

/// Seeds V0016, V0018 and V0020: server names differing only in case stay distinct folders,
/// a name with a control character is mapped safely inside the root, and a local folder whose
/// name contains the server's delimiter stays local with a warning.
#[test]
fn v0016_case_and_odd_names_map_safely() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Work");
    env.dovecot.create_mailbox(&env.user, "work");
    env.deliver("Work", &crlf(&message("Work", 1)));
    env.deliver("work", &crlf(&message("work", 2)));
    // V0020: "a.b" cannot exist on a server whose delimiter is ".".
    env.drop_local("a.b", "l-1.host", &message("dotted", 1));
    let r = env.sync();
    assert_mirror(&env, "Work");
    let low: Vec<_> = common::read_maildir(&env.maildir().join("work"));
    assert_eq!(low.len(), 1, "V0016: 'work' is its own folder");
    assert_ne!(low, env.local_folder("Work"));
    assert!(
        r.warnings.iter().any(|w| w.contains("a.b")),
        "V0020 warning expected: {r:#?}"
    );
    assert_eq!(env.local_files("a.b").len(), 1, "kept locally");
    // Nothing escaped the root (V0018's safety rule for odd names).
    for e in walk(&env.dir.path().join("mail")) {
        assert!(e.starts_with(env.dir.path().join("mail")));
    }
}

/// Seed V0016 on a case-insensitive server (played by [`Hooked`]: CREATE of `work` beside
/// `Work` is refused with ALREADYEXISTS, as such a server does): the local folder `work` stays
/// its own folder locally, is never merged into `Work` (no duplicate, no message of it lands
/// there), the refusal is reported, and the next runs do the same without looping or growing.
#[test]
fn v0016_case_insensitive_server_gets_no_duplicate_folder_and_no_loop() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &crlf(&message("Work", 1)));
    env.sync();
    env.drop_local("work", "w-1.host", &message("lower", 1));
    let hooks = || Hooks {
        case_insensitive: true,
        ..Hooks::default()
    };
    for run in 0..3 {
        let r = hooked_sync(&env, &env.account(), hooks());
        let f = r
            .folders
            .iter()
            .find(|f| f.folder == "work")
            .unwrap_or_else(|| panic!("run {run}: 'work' reported: {r:#?}"));
        assert!(
            texts(&f.errors).iter().any(|e| e.contains("ALREADYEXISTS")),
            "run {run}: the refusal is reported: {r:#?}"
        );
        assert_eq!(total(&r, |f| f.uploaded), 0, "run {run}: {r:#?}");
        assert_eq!(total(&r, |f| f.downloaded), 0, "run {run}: {r:#?}");
        assert_mirror(&env, "Work");
        assert_eq!(
            env.server_folder("Work").len(),
            1,
            "run {run}: nothing merged"
        );
        assert_eq!(env.local_files("work").len(), 1, "run {run}: kept locally");
        assert_eq!(env.local_files("Work").len(), 1, "run {run}");
        let listed = env.dovecot.doveadm(&["mailbox", "list", "-u", &env.user]);
        assert!(
            !listed.lines().any(|l| l.trim() == "work"),
            "run {run}: {listed}"
        );
    }
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(std::fs::canonicalize(&p).unwrap_or(p));
        }
    }
    out
}

/// Seed V0018: a folder name with a control character, made locally, is refused by the sync
/// itself with a clear error before any CREATE is sent (not left to the server, which might
/// accept it), is never written outside the root, and the message stays local.
#[test]
fn v0018_control_character_name_is_refused_clearly() {
    let env = Env {
        dovecot: mailfold_testsupport::Dovecot::builder()
            .rawlog(true)
            .start(),
        ..Env::new()
    };
    let u = env.dovecot.user(0).clone();
    let env = Env {
        user: u.name,
        password: u.password,
        ..env
    };
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.drop_local("Tab\tName", "t-1.host", &message("tab", 1));
    let r = env.sync();
    assert_mirror(&env, "INBOX");
    let all = format!("{r:?}");
    assert!(
        all.contains("Tab\\tName"),
        "the folder is named in the report: {r:#?}"
    );
    let f = r
        .folders
        .iter()
        .find(|f| f.folder.contains("Tab"))
        .unwrap_or_else(|| panic!("folder reported: {r:#?}"));
    let text = texts(&f.errors).join("\n");
    assert!(
        text.contains("control character U+0009") && !text.contains("CREATE refused"),
        "the sync refused it, not the server: {r:#?}"
    );
    let t = r.traffic.as_ref().expect("traffic");
    assert_eq!(t.count("CREATE"), 0, "{t:#?}");
    let log = env.dovecot.rawlog(&env.user);
    assert!(!log.contains(" CREATE "), "no CREATE on the wire: {log}");
    let listed = env.dovecot.doveadm(&["mailbox", "list", "-u", &env.user]);
    assert!(!listed.contains("Tab"), "{listed}");
    assert_eq!(env.local_files("Tab\tName").len(), 1, "kept locally");
    for e in walk(&env.dir.path().join("mail")) {
        assert!(e.starts_with(env.dir.path().join("mail")));
    }
}

/// Seeds V0036 and V0037: without UIDVALIDITY the folder is synced read-only by content, with
/// a warning; no state is written and a second run downloads nothing again.
#[test]
fn v0037_missing_uidvalidity_syncs_read_only_by_content() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.deliver("INBOX", &crlf(&message("INBOX", 2)));
    let strip = || Hooks {
        select: Some(Box::new(|s: &mut Selected| {
            s.uidvalidity = None;
            s.permanent_flags = None; // V0037: missing PERMANENTFLAGS means all
            s.uidnext = None; // and UIDNEXT is derived
        })),
        ..Hooks::default()
    };
    let r = hooked_sync(&env, &env.account(), strip());
    assert_eq!(total(&r, |f| f.downloaded), 2, "{r:#?}");
    assert!(
        r.warnings.iter().any(|w| w.contains("UIDVALIDITY")),
        "{r:#?}"
    );
    assert_mirror(&env, "INBOX");
    let db = StateDb::open(&env.state_db()).unwrap();
    let rows: usize = db
        .folders()
        .unwrap()
        .iter()
        .map(|f| db.messages(f.id).unwrap().len())
        .sum();
    assert_eq!(rows, 0, "no state under a missing UIDVALIDITY");
    let again = hooked_sync(&env, &env.account(), strip());
    assert_eq!(total(&again, |f| f.downloaded), 0, "{again:#?}");
    assert_mirror(&env, "INBOX");
}

/// Seed V0036 with a normal server: EXISTS and UIDVALIDITY are recorded.
#[test]
fn v0036_select_data_is_recorded() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.sync();
    let db = StateDb::open(&env.state_db()).unwrap();
    let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    let st = env.status("INBOX", "uidvalidity uidnext");
    assert!(
        st.contains(&format!("uidvalidity={}", f.uidvalidity.unwrap().get())),
        "{st}"
    );
    assert!(
        st.contains(&format!("uidnext={}", f.uidnext.unwrap())),
        "{st}"
    );
}

/// Seed V0042: a server whose LIST omits INBOX still has its INBOX synced.
#[test]
fn v0042_inbox_missing_from_list_is_synced() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    let hooks = Hooks {
        list: Some(Box::new(|v: &mut Vec<ListEntry>| {
            v.retain(|e| !e.wire.is_inbox())
        })),
        ..Hooks::default()
    };
    let r = hooked_sync(&env, &env.account(), hooks);
    assert!(r.is_complete(), "{r:#?}");
    assert_mirror(&env, "INBOX");
    assert_eq!(env.local_folder("INBOX").len(), 1);
}

/// Seed V0041: folder patterns select folders; an excluded folder is neither synced nor taken
/// for deleted.
#[test]
fn v0041_patterns_select_folders() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Lists");
    env.dovecot.create_mailbox(&env.user, "Lists.rust");
    env.deliver("Lists.rust", &crlf(&message("rust", 1)));
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    let mut a = env.account();
    a.folders = mailfold_sync::FolderPatterns::new(["*", "!Lists/*"]);
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    assert!(!env.local_dir("Lists/rust").exists());
    assert_mirror(&env, "INBOX");
    let r = env.sync_with(&env.account());
    assert!(r.is_complete(), "{r:#?}");
    assert_mirror(&env, "Lists/rust");
}

/// Seed V0043: subscriptions come from LSUB (or \Subscribed), attributes from the most recent
/// response (LIST); the subscription is recorded in the state.
#[test]
fn v0043_subscriptions_are_recorded() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Unsubscribed");
    env.sync();
    let db = StateDb::open(&env.state_db()).unwrap();
    let sent = db
        .folder_by_wire_name("Sent")
        .unwrap()
        .expect("Sent synced");
    assert!(
        sent.subscribed,
        "Dovecot subscribes its special-use folders"
    );
    let other = db
        .folder_by_wire_name("Unsubscribed")
        .unwrap()
        .expect("synced");
    assert!(!other.subscribed);
}

/// Seed V0043 on the LSUB + LIST path (a server without LIST-EXTENDED, scripted so that the
/// two answers disagree, RFC 3501 6.3.9): LSUB is asked first and LIST second, so LIST is the
/// most recent response and its attributes win (`Archive`, `\Noselect` in LSUB, is selectable
/// per LIST; `Work` the other way round); a subscription comes from LSUB only (`INBOX` and
/// `Other` are not subscribed); and a name only LSUB knows (a subscription to a folder that
/// no longer exists, which RFC 3501 6.3.9 lets a server keep listing) is not taken for a
/// folder the sync could open.
#[test]
fn v0043_lsub_and_list_disagree_the_most_recent_response_wins() {
    use mailfold_testsupport::{Script, ScriptedServer};
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] ready")
            .expect("LSUB \"\" *")
            .send(
                "* LSUB (\\Noselect) \"/\" Archive\r\n* LSUB () \"/\" Work\r\n\
                 * LSUB () \"/\" Gone\r\n",
            )
            .send_tagged("OK LSUB done")
            .expect("LIST \"\" *")
            .send(
                "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Archive\r\n\
                 * LIST (\\Noselect) \"/\" Work\r\n* LIST () \"/\" Other\r\n",
            )
            .send_tagged("OK LIST done")
            .expect("LOGOUT")
            .send_line("* BYE bye")
            .send_tagged("OK done"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = mailfold_net::ConnectConfig::new("127.0.0.1");
    cfg.port = Some(server.port());
    cfg.security = mailfold_net::Security::Plaintext;
    let session = rt.block_on(mailfold_net::Session::open(&cfg)).unwrap();
    let mut remote = NetRemote::from_session(rt, session);
    let list = remote.list_all().unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} {:?}",
            String::from_utf8_lossy(&server.received()),
            server.reports()
        )
    });
    remote.logout();
    let get = |name: &str| list.iter().find(|e| e.wire.as_wire() == name.as_bytes());
    let archive = get("Archive").expect("Archive listed");
    assert!(!archive.noselect && archive.subscribed, "{archive:?}");
    let work = get("Work").expect("Work listed");
    assert!(work.noselect && work.subscribed, "{work:?}");
    for name in ["INBOX", "Other"] {
        let e = get(name).expect("listed");
        assert!(!e.subscribed && !e.noselect, "{e:?}");
    }
    let gone = get("Gone");
    assert!(
        gone.is_none_or(|e| e.noselect || e.nonexistent),
        "a name only LSUB lists is no folder to open: {gone:?}"
    );
}

/// Seed V0039: a READ-ONLY folder keeps local changes pending and reported, without server
/// writes, and does not retry them on every run.
#[test]
fn v0039_read_only_folder_keeps_local_changes_pending() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.sync();
    env.drop_local("INBOX", "new-1.host", &message("Local", 9));
    let ro = || Hooks {
        select: Some(Box::new(|s: &mut Selected| s.read_only = true)),
        ..Hooks::default()
    };
    let r = hooked_sync(&env, &env.account(), ro());
    assert_eq!(total(&r, |f| f.uploaded), 0);
    assert_eq!(total(&r, |f| f.pending), 1, "{r:#?}");
    assert!(env.status("INBOX", "messages").contains("messages=1"));
    assert_eq!(env.local_files("INBOX").len(), 2, "kept locally");
    let again = hooked_sync(&env, &env.account(), ro());
    assert_eq!(
        total(&again, |f| f.pending),
        1,
        "still reported: {again:#?}"
    );
    assert_eq!(again.steps, 0, "not retried: {again:#?}");
    // Writable again: the change goes up.
    let r = env.sync();
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    assert_mirror(&env, "INBOX");
}

/// Seed V0040 with V0050: a pull-only account opens folders with EXAMINE and never writes to
/// the server; folders are switched by SELECT/EXAMINE, never CLOSE; and a folder holding a
/// `\Deleted` message is left with UNSELECT, which does not expunge it.
#[test]
fn v0050_no_close_between_folders_and_pull_uses_examine() {
    let env = Env {
        dovecot: mailfold_testsupport::Dovecot::builder()
            .rawlog(true)
            .start(),
        ..Env::new()
    };
    let u = env.dovecot.user(0).clone();
    let env = Env {
        user: u.name,
        password: u.password,
        ..env
    };
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &crlf(&message("Work", 1)));
    let mut a = env.account();
    a.direction = mailfold_sync::Direction::Pull;
    env.drop_local("INBOX", "local-only.host", &message("L", 1));
    let r = env.sync_with(&a);
    assert_eq!(total(&r, |f| f.downloaded), 2, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 0);
    let log = env.dovecot.rawlog(&env.user);
    let sent: Vec<&str> = log.lines().collect();
    assert!(sent.iter().any(|l| l.contains(" EXAMINE ")), "{log}");
    assert!(
        !sent.iter().any(|l| l.contains(" SELECT ")),
        "pull never SELECTs: {log}"
    );
    assert!(
        !sent
            .iter()
            .any(|l| l.ends_with(" CLOSE") || l.contains(" CLOSE\r")),
        "{log}"
    );
    assert!(env.status("INBOX", "messages").contains("messages=1"));

    // UNSELECT where it must not expunge: the sync's own remote leaves a folder holding a
    // \Deleted message with UNSELECT (RFC 3691), never CLOSE, and the message survives.
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Deleted",
        "mailbox",
        "Work",
        "uid",
        "1",
    ]);
    let before = env.dovecot.rawlog(&env.user).len();
    let mut remote = NetRemote::connect(&env.account()).unwrap();
    assert!(remote.has_capability("UNSELECT"));
    let sel = remote.select(&Mailbox::from_wire("Work"), false).unwrap();
    assert_eq!(sel.exists, 1);
    remote.unselect().unwrap();
    // Still usable, with no folder selected: STATUS of the folder just left.
    assert_eq!(
        remote.status(&Mailbox::from_wire("Work")).unwrap().messages,
        Some(1)
    );
    remote.logout();
    let log = env.dovecot.rawlog(&env.user);
    let run = &log[before..];
    assert!(
        run.lines().any(|l| l.trim_end().ends_with(" UNSELECT")),
        "{run}"
    );
    assert!(!run.contains(" CLOSE") && !run.contains("EXPUNGE"), "{run}");
    assert!(
        env.status("Work", "messages").contains("messages=1"),
        "the \\Deleted message was not expunged"
    );
}

/// Seed V0005: keywords sync where PERMANENTFLAGS allows, kept in the state database (not in
/// the file name), and removing one on the server is followed.
#[test]
fn v0005_keywords_follow_the_server_and_live_in_the_state() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.dovecot.doveadm(&[
        "flags", "add", "-u", &env.user, "$Junk", "mailbox", "INBOX", "uid", "1",
    ]);
    env.sync();
    let kw = |env: &Env| {
        let db = StateDb::open(&env.state_db()).unwrap();
        let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
        db.messages(f.id).unwrap()[0].keywords.clone()
    };
    assert_eq!(kw(&env), vec!["$Junk".to_owned()]);
    env.dovecot.doveadm(&[
        "flags", "remove", "-u", &env.user, "$Junk", "mailbox", "INBOX", "uid", "1",
    ]);
    env.dovecot.doveadm(&[
        "flags", "add", "-u", &env.user, "label1", "mailbox", "INBOX", "uid", "1",
    ]);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(kw(&env), vec!["label1".to_owned()]);
    let fetched = env
        .dovecot
        .doveadm(&["fetch", "-u", &env.user, "flags", "mailbox", "INBOX"]);
    assert!(
        fetched.contains("label1") && !fetched.contains("$Junk"),
        "{fetched}"
    );
    assert!(!env.sync().changed_anything());
}

/// Seeds V0006 and V0007: INTERNALDATE and RFC822.SIZE are stored; the size equals the CRLF
/// length of the downloaded bytes and the file's mtime is the INTERNALDATE.
#[test]
fn v0007_size_and_internaldate_are_stored_and_checked() {
    let env = Env::new();
    env.seed_server("INBOX", &[(message("INBOX", 7), "S")]);
    env.sync();
    let db = StateDb::open(&env.state_db()).unwrap();
    let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    let row = db.messages(f.id).unwrap().remove(0);
    let file = env.local_files("INBOX").remove(0);
    let bytes = std::fs::read(&file).unwrap();
    let crlf_len = bytes.len() + bytes.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(row.size, Some(crlf_len as u64));
    let size = env
        .dovecot
        .doveadm(&["fetch", "-u", &env.user, "size.virtual", "mailbox", "INBOX"]);
    assert!(size.contains(&crlf_len.to_string()), "{size}");
    let mtime = std::fs::metadata(&file)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(row.internaldate.unwrap().unix, mtime);
    assert_eq!(mtime, 1_600_000_000, "V0006: mtime = INTERNALDATE");
}

/// Seed V0054: downloading never sets \Seen on the server.
#[test]
fn v0054_downloads_peek() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.sync();
    assert!(env.status("INBOX", "unseen").contains("unseen=1"));
    assert_eq!(common::letters_of(&env.local_files("INBOX")[0]), "");
}

/// Changes on both sides merge: flags one way and the other, a local deletion becomes a UID
/// EXPUNGE of that message only, a server expunge deletes the local file.
#[test]
fn changes_on_both_sides_are_merged() {
    let env = Env::new();
    for i in 0..4 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    env.sync();
    // Another client's \Deleted message must survive our expunge (no bare EXPUNGE).
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Deleted",
        "mailbox",
        "INBOX",
        "uid",
        "4",
    ]);
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    env.dovecot
        .doveadm(&["expunge", "-u", &env.user, "mailbox", "INBOX", "uid", "3"]);
    let files = env.local_files("INBOX");
    let by_subject = |n: usize| {
        files
            .iter()
            .find(|p| {
                std::fs::read_to_string(p)
                    .is_ok_and(|t| t.contains(&format!("INBOX message {n}\n")))
            })
            .unwrap()
            .clone()
    };
    std::fs::remove_file(by_subject(0)).unwrap();
    let p = by_subject(1);
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::rename(&p, p.with_file_name(format!("{name}S"))).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.remote_deletions), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_deletions), 1, "{r:#?}");
    let left = env
        .dovecot
        .doveadm(&["fetch", "-u", &env.user, "uid flags", "mailbox", "INBOX"]);
    assert!(
        left.contains("uid: 4"),
        "another client's \\Deleted message kept: {left}"
    );
    assert!(!left.contains("uid: 1\n"), "{left}");
    assert_mirror(&env, "INBOX");
    assert!(!env.sync().changed_anything());
}

/// Seed V0023: another client changes the mailbox while a sync runs (a new message arrives and
/// a message about to be downloaded is expunged); the run finishes, and the next one converges.
#[test]
fn v0023_second_client_during_sync() {
    let env = Env::new();
    for i in 0..3 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    let cfg = env.dovecot.config_path();
    let user = env.user.clone();
    let hooks = Hooks {
        before_write: Some(Box::new(move || {
            let run = |args: &[&str], input: Option<&[u8]>| {
                use std::io::Write;
                let mut c = std::process::Command::new("doveadm")
                    .arg("-c")
                    .arg(&cfg)
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                if let Some(i) = input {
                    c.stdin.take().unwrap().write_all(i).unwrap();
                }
                drop(c.stdin.take());
                assert!(c.wait().unwrap().success());
            };
            run(
                &["expunge", "-u", &user, "mailbox", "INBOX", "uid", "2"],
                None,
            );
            run(
                &["save", "-u", &user, "-m", "INBOX"],
                Some(&crlf(&message("late", 1))),
            );
        })),
        ..Hooks::default()
    };
    let r = hooked_sync(&env, &env.account(), hooks);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 2, "{r:#?}");
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_mirror(&env, "INBOX");
    assert_eq!(env.local_folder("INBOX").len(), 3);
    assert!(!env.sync().changed_anything());
}

/// Seed V0003 (minimum): a UIDVALIDITY change deletes nothing and duplicates nothing; every
/// message is matched again by content.
#[test]
fn v0003_uidvalidity_change_deletes_and_duplicates_nothing() {
    let env = Env::new();
    for i in 0..5 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    env.sync();
    env.drop_local("INBOX", "local-x.host", &message("LocalX", 1));
    env.dovecot.set_uidvalidity(&env.user, "INBOX", 424242);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(
        total(&r, |f| f.downloaded),
        0,
        "bodies already held: {r:#?}"
    );
    assert_eq!(total(&r, |f| f.local_deletions + f.remote_deletions), 0);
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    assert_mirror(&env, "INBOX");
    assert_eq!(env.local_folder("INBOX").len(), 6);
    assert!(!env.sync().changed_anything());
}

fn delete_mailbox_hook(env: &Env, mailbox: &str) -> Hooks {
    let user = env.user.clone();
    let cfg = env.dovecot.config_path();
    let mailbox = mailbox.to_owned();
    Hooks {
        before_write: Some(Box::new(move || {
            let out = std::process::Command::new("doveadm")
                .arg("-c")
                .arg(&cfg)
                .args(["mailbox", "delete", "-u", &user, &mailbox])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        })),
        ..Hooks::default()
    }
}

/// Seed V0058: COPY answered NO [TRYCREATE] (the destination vanished mid-run while a file moved
/// between local folders is moved on the server) creates the folder and retries once.
#[test]
fn v0058_copy_trycreate_creates_the_folder_and_retries_once() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Later");
    env.deliver("INBOX", &crlf(&message("INBOX", 1)));
    env.sync();
    // mutt-style move: same file name, other folder.
    let src = env.local_files("INBOX").remove(0);
    let dst = env
        .local_dir("Later")
        .join("cur")
        .join(src.file_name().unwrap());
    std::fs::rename(&src, &dst).unwrap();
    let r = hooked_sync(&env, &env.account(), delete_mailbox_hook(&env, "Later"));
    assert!(r.is_complete(), "{r:#?}");
    assert!(
        env.status("Later", "messages").contains("messages=1"),
        "{r:#?}"
    );
    assert!(
        env.status("INBOX", "messages").contains("messages=0"),
        "{r:#?}"
    );
    assert_mirror(&env, "Later");
}

/// Seed V0046: a draft without any header (not valid RFC 5322) is uploaded as it is.
#[test]
fn v0046_headerless_draft_is_appended() {
    let env = Env::new();
    env.sync();
    env.drop_local(
        "Drafts",
        "d-1.host:2,D",
        b"no headers, just text\nsecond line\n",
    );
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    let server = env.server_folder("Drafts");
    assert_eq!(server.len(), 1);
    assert_eq!(
        server[0].0,
        b"no headers, just text\nsecond line\n".to_vec()
    );
    assert_eq!(server[0].1, "D");
}

/// Seed V0020: a local folder whose name holds the server's hierarchy delimiter is refused for
/// the server with a clear warning and stays local.
#[test]
fn v0020_name_with_the_delimiter_stays_local() {
    let env = Env::new();
    env.drop_local("2024.Q1", "q-1.host", &message("q", 1));
    let r = env.sync();
    let w = r.warnings.join("\n");
    assert!(w.contains("2024.Q1") && w.contains("delimiter"), "{r:#?}");
    let listed = env.dovecot.doveadm(&["mailbox", "list", "-u", &env.user]);
    assert!(!listed.contains("2024"), "{listed}");
    assert_eq!(env.local_files("2024.Q1").len(), 1);
}

/// Seed V0006: an uploaded file's mtime becomes the server's INTERNALDATE (and a downloaded
/// message's INTERNALDATE its mtime, see v0007).
#[test]
fn v0006_upload_keeps_the_file_date_as_internaldate() {
    let env = Env::new();
    env.sync();
    let p = env.drop_local("INBOX", "dated.host", &message("dated", 1));
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let r = env.sync();
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    let out = env.dovecot.doveadm(&[
        "fetch",
        "-u",
        &env.user,
        "date.received",
        "mailbox",
        "INBOX",
    ]);
    assert!(
        out.contains("1500000000") || out.contains("2017-07-14"),
        "{out}"
    );
}

/// Seed V0014: a local message holding binary data (a NUL byte) is never sent raw in a normal
/// literal. With BINARY (Dovecot offers it) it goes up in a literal8 (`~{n}`, RFC 3516) and
/// arrives intact; with BINARY hidden from the session it is not uploaded at all (no APPEND
/// on the wire), kept locally and reported on every run.
#[test]
fn v0014_binary_message_goes_in_a_literal8_or_waits() {
    let env = Env {
        dovecot: mailfold_testsupport::Dovecot::builder()
            .rawlog(true)
            .start(),
        ..Env::new()
    };
    let u = env.dovecot.user(0).clone();
    let env = Env {
        user: u.name,
        password: u.password,
        ..env
    };
    let body = b"Subject: nul\nContent-Type: application/octet-stream\n\nab\0cd\n";

    // Without BINARY: refused before anything is sent, every run.
    env.drop_local("Work", "nul-1.host", body);
    env.dovecot.create_mailbox(&env.user, "Work");
    for run in 0..2 {
        let a = env.account();
        let (maildir, mut db) = mailfold_sync::open_store(&a).unwrap();
        let mut remote = NetRemote::connect(&a).unwrap();
        remote.hide_capability("BINARY");
        let before = env.dovecot.rawlog(&env.user).len();
        let r = mailfold_sync::sync_with_remote(
            &mut remote,
            &a,
            &SyncOptions::default(),
            &maildir,
            &mut db,
        )
        .unwrap();
        remote.logout();
        let f = r.folders.iter().find(|f| f.folder == "Work").unwrap();
        assert!(
            texts(&f.errors)
                .iter()
                .any(|e| e.contains("NUL") && e.contains("BINARY")),
            "run {run}: {r:#?}"
        );
        assert_eq!(total(&r, |f| f.uploaded), 0, "run {run}: {r:#?}");
        let log = env.dovecot.rawlog(&env.user);
        assert!(
            !log[before..].contains(" APPEND "),
            "run {run}: {}",
            &log[before..]
        );
        assert!(env.status("Work", "messages").contains("messages=0"));
        assert_eq!(env.local_files("Work").len(), 1, "kept locally");
    }

    // With BINARY: a literal8, and the bytes arrive unchanged.
    let before = env.dovecot.rawlog(&env.user).len();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    let log = env.dovecot.rawlog(&env.user);
    let append = log[before..]
        .lines()
        .find(|l| l.contains(" APPEND "))
        .unwrap_or_else(|| panic!("APPEND sent: {}", &log[before..]));
    assert!(append.contains(" ~{"), "a literal8: {append}");
    let server = env.server_folder("Work");
    assert_eq!(server.len(), 1);
    assert!(server[0].0.windows(5).any(|w| w == b"ab\0cd"), "{server:?}");
    assert_mirror(&env, "Work");
    assert!(!env.sync().changed_anything());
}

/// A report's errors as the text a user reads.
fn texts(errors: &[mailfold_sync::StepError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
