//! The applier's progress events (which drive the CLI's per-folder progress bars) add up to
//! what the run did, and a folder that turns out READ-ONLY only when the applier SELECTs it for
//! writing keeps its local changes pending instead of failing (seed V0039).
//!
//! The run is `mailfold_sync::sync_with_remote_progress` over a remote the test can watch or
//! disturb, with an observer that records every event.

#[path = "sync_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use common::{message, Env};
use mailfold_store::{StateDb, StateRead};
use mailfold_sync::remote::{
    Appended, BodyEvent, Flag, FolderChanges, ListEntry, Mailbox, MessageDetails, MessageFlags,
    ModSeq, Moved, NamespaceInfo, RemoteResult, Selected, Status, StoreOp, Stored, Uid,
    UidValidity,
};
use mailfold_sync::{NetRemote, Progress, ProgressEvent, Remote, SyncOptions, SyncReport};

/// A progress event with owned data.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Planned {
        folders: usize,
        downloads: usize,
        uploads: usize,
        ops: usize,
    },
    Started(String, usize, Option<u64>),
    Bytes(String, u64),
    Message(String),
    Done(String),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Ev>>);

impl Progress for Recorder {
    fn event(&self, e: ProgressEvent<'_>) {
        let ev = match e {
            ProgressEvent::Planned {
                folders,
                downloads,
                uploads,
                ops,
            } => Ev::Planned {
                folders,
                downloads,
                uploads,
                ops,
            },
            ProgressEvent::FolderStarted {
                folder,
                downloads,
                bytes,
            } => Ev::Started(folder.to_string(), downloads, bytes),
            ProgressEvent::Bytes { folder, bytes } => Ev::Bytes(folder.to_string(), bytes),
            ProgressEvent::Message { folder } => Ev::Message(folder.to_string()),
            ProgressEvent::FolderDone { folder } => Ev::Done(folder.to_string()),
        };
        self.0.lock().unwrap().push(ev);
    }
}

fn run(env: &Env, remote: &mut dyn Remote, progress: &dyn Progress) -> SyncReport {
    let a = env.account();
    let (maildir, mut db) = mailfold_sync::open_store(&a).unwrap();
    let r = mailfold_sync::sync_with_remote_progress(
        remote,
        &a,
        &SyncOptions::default(),
        &maildir,
        &mut db,
        progress,
    )
    .unwrap_or_else(|e| panic!("sync: {e}\n{}", env.dovecot.log()));
    remote.logout();
    r
}

/// Messages of growing size (a few lines to a few kilobytes), LF line ends.
fn sized_message(folder: &str, i: usize) -> Vec<u8> {
    let mut m = message(folder, i);
    for line in 0..i * 7 {
        m.extend_from_slice(format!("padding line {line} of message {i}\n").as_bytes());
    }
    m
}

/// RFC822.SIZE of an LF-only message: its CRLF length.
fn wire_size(m: &[u8]) -> u64 {
    (m.len() + m.iter().filter(|&&b| b == b'\n').count()) as u64
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

#[test]
fn progress_events_add_up_to_the_messages_and_bytes_downloaded() {
    let env = Env::new();
    let mut want: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (folder, n) in [("INBOX", 30), ("Work", 20)] {
        let msgs: Vec<(Vec<u8>, &str)> = (0..n)
            .map(|i| (sized_message(folder, i), if i % 2 == 0 { "S" } else { "" }))
            .collect();
        let bytes = msgs.iter().map(|(m, _)| wire_size(m)).sum();
        env.seed_server(folder, &msgs);
        want.insert(folder.to_owned(), (n, bytes));
    }

    let rec = Recorder::default();
    let mut remote = NetRemote::connect(&env.account()).unwrap();
    let r = run(&env, &mut remote, &rec);
    assert!(r.is_complete(), "{r:#?}");
    let events = rec.0.into_inner().unwrap();

    // The plan comes first and announces every download.
    let Some(Ev::Planned {
        folders,
        downloads,
        uploads,
        ops,
    }) = events.first().cloned()
    else {
        panic!("first event: {:?}", events.first());
    };
    assert_eq!(downloads, 50);
    assert_eq!(uploads, 0);
    // INBOX, Work, and Dovecot's special-use folders (created locally, empty).
    assert!(folders >= 2, "{folders}");
    assert!(ops >= downloads, "{ops}");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Ev::Planned { .. }))
            .count(),
        1
    );

    // Per folder: announced count and bytes, the bytes that arrived, one message event per
    // download, all between the folder's start and done.
    let mut open: Option<String> = None;
    let mut got: BTreeMap<String, (usize, Option<u64>, u64, usize)> = BTreeMap::new();
    for e in &events[1..] {
        match e {
            Ev::Started(f, n, b) => {
                assert_eq!(open, None, "nested start: {e:?}");
                open = Some(f.clone());
                let g = got.entry(f.clone()).or_default();
                g.0 += n;
                g.1 = Some(g.1.unwrap_or(0) + b.expect("whole bodies declare their size"));
            }
            Ev::Bytes(f, n) => {
                assert_eq!(open.as_ref(), Some(f), "bytes outside the folder's batch");
                got.get_mut(f).unwrap().2 += n;
            }
            Ev::Message(f) => {
                assert_eq!(open.as_ref(), Some(f), "message outside the folder's batch");
                got.get_mut(f).unwrap().3 += 1;
            }
            Ev::Done(f) => {
                assert_eq!(open.as_ref(), Some(f), "done without start");
                open = None;
            }
            Ev::Planned { .. } => unreachable!(),
        }
    }
    assert_eq!(open, None, "a folder was never done");
    for (folder, (n, bytes)) in &want {
        let g = got[folder];
        assert_eq!(g.0, *n, "{folder}: announced downloads");
        assert_eq!(g.1, Some(*bytes), "{folder}: announced bytes");
        assert_eq!(g.2, *bytes, "{folder}: bytes received");
        assert_eq!(g.3, *n, "{folder}: messages");
        assert_eq!(env.local_files(folder).len(), *n);
    }

    // A re-sync with two flag changes on the server and one new local file: a message event
    // for each, in the folder concerned, and no download batch.
    for uid in ["2", "4"] {
        env.dovecot.doveadm(&[
            "flags",
            "add",
            "-u",
            &env.user,
            "\\Flagged",
            "mailbox",
            "Work",
            "uid",
            uid,
        ]);
    }
    env.drop_local("INBOX", "local-1.host", &message("Local", 1));
    let rec = Recorder::default();
    let mut remote = NetRemote::connect(&env.account()).unwrap();
    let r = run(&env, &mut remote, &rec);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    let events = rec.0.into_inner().unwrap();
    assert!(matches!(
        events.first(),
        Some(Ev::Planned {
            downloads: 0,
            uploads: 1,
            ..
        })
    ));
    let messages = |f: &str| {
        events
            .iter()
            .filter(|e| matches!(e, Ev::Message(x) if x == f))
            .count()
    };
    assert_eq!(messages("Work"), 2, "{events:?}");
    assert_eq!(messages("INBOX"), 1, "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, Ev::Started(..) | Ev::Bytes(..))));
}

// ----- seed V0039 noticed by the applier

/// A real session whose SELECT (not EXAMINE) answers READ-ONLY, and which counts the server
/// writes it is asked for. LIST-STATUS is left alone, so an unchanged folder is skipped by the
/// gather and first SELECTed by the applier.
struct ReadOnlySelect {
    inner: NetRemote,
    writes: Vec<String>,
}

impl Remote for ReadOnlySelect {
    fn has_capability(&self, name: &str) -> bool {
        self.inner.has_capability(name)
    }
    fn list_all(&mut self) -> RemoteResult<Vec<ListEntry>> {
        self.inner.list_all()
    }
    fn namespace(&mut self) -> RemoteResult<Option<NamespaceInfo>> {
        self.inner.namespace()
    }
    fn select(&mut self, mailbox: &Mailbox, read_only: bool) -> RemoteResult<Selected> {
        // EXAMINE, so that the server really refuses nothing; the answer says READ-ONLY.
        let mut s = self.inner.select(mailbox, true)?;
        s.read_only = true;
        let _ = read_only;
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
        self.writes.push("APPEND".into());
        self.inner.append(mailbox, flags, internaldate, len, data)
    }
    fn store(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        since: Option<ModSeq>,
    ) -> RemoteResult<Vec<Uid>> {
        self.writes.push(format!("STORE {flags:?}"));
        self.inner.store(uids, op, flags, since)
    }
    fn store_tracked(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        since: Option<ModSeq>,
    ) -> RemoteResult<Stored> {
        self.writes.push(format!("STORE {flags:?}"));
        self.inner.store_tracked(uids, op, flags, since)
    }
    fn expunge(&mut self, uids: &[Uid], plain: bool) -> RemoteResult<()> {
        self.writes.push("EXPUNGE".into());
        self.inner.expunge(uids, plain)
    }
    fn create(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.writes.push("CREATE".into());
        self.inner.create(mailbox)
    }
    fn delete(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.writes.push("DELETE".into());
        self.inner.delete(mailbox)
    }
    fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> RemoteResult<()> {
        self.writes.push("RENAME".into());
        self.inner.rename(from, to)
    }
    fn status(&mut self, mailbox: &Mailbox) -> RemoteResult<Status> {
        self.inner.status(mailbox)
    }
    fn status_all(&mut self, mailboxes: &[Mailbox]) -> RemoteResult<Vec<Option<Status>>> {
        self.inner.status_all(mailboxes)
    }
    fn select_changes(
        &mut self,
        mailbox: &Mailbox,
        read_only: bool,
        uidvalidity: UidValidity,
        since: ModSeq,
    ) -> RemoteResult<Option<FolderChanges>> {
        self.inner
            .select_changes(mailbox, read_only, uidvalidity, since)
    }
    fn search_message_id(&mut self, id: &str) -> RemoteResult<Vec<Uid>> {
        self.inner.search_message_id(id)
    }
    fn move_or_copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Moved> {
        self.writes.push("MOVE".into());
        self.inner.move_or_copy(uids, dest)
    }
    fn take_alerts(&mut self) -> Vec<String> {
        self.inner.take_alerts()
    }
    fn logout(&mut self) {
        self.inner.logout()
    }
}

fn pending_rows(env: &Env) -> usize {
    let db = StateDb::open(&env.state_db()).unwrap();
    let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    db.pending(Some(f.id)).unwrap().len()
}

#[test]
fn v0039_read_only_noticed_at_select_keeps_local_changes_pending() {
    let env = Env::new();
    let msgs: Vec<(Vec<u8>, &str)> = (0..3).map(|i| (message("INBOX", i), "")).collect();
    env.seed_server("INBOX", &msgs);
    assert!(env.sync().is_complete());
    let server_before = env.server_folder("INBOX");

    // Local changes only, so the STATUS round finds INBOX unchanged and the gather does not
    // SELECT it: a flag set, a file deleted, a new file.
    let files = env.local_files("INBOX");
    assert_eq!(files.len(), 3);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let cur = env.local_dir("INBOX").join("cur");
    std::fs::rename(&files[0], cur.join(format!("{base}:2,F"))).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    env.drop_local("INBOX", "local-1.host", &message("Local", 1));

    for round in 0..2 {
        let mut remote = ReadOnlySelect {
            inner: NetRemote::connect(&env.account()).unwrap(),
            writes: Vec::new(),
        };
        let r = run(&env, &mut remote, &mailfold_sync::NoProgress);
        assert!(
            remote.writes.is_empty(),
            "round {round}: {:?}",
            remote.writes
        );
        assert!(r.is_complete(), "round {round}: not errors: {r:#?}");
        let inbox = r.folders.iter().find(|f| f.folder == "INBOX").unwrap();
        assert_eq!(inbox.pending, 3, "round {round}: {r:#?}");
        assert!(inbox.read_only, "{r:#?}");
        assert!(
            inbox.warnings.iter().any(|w| w.contains("READ-ONLY")),
            "noticed by the applier's SELECT: {r:#?}"
        );
        assert_eq!(inbox.uploaded + inbox.remote_deletions, 0);
        assert_eq!(inbox.remote_flag_changes, 0);
        assert_eq!(pending_rows(&env), 3, "round {round}: marked once");
        assert_eq!(env.server_folder("INBOX"), server_before);
        assert_eq!(env.local_files("INBOX").len(), 3, "local changes kept");
    }

    // Writable again: every kept change goes up and the marks are cleared.
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.remote_deletions), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.remote_flag_changes), 1, "{r:#?}");
    assert_eq!(pending_rows(&env), 0);
    let (s, l) = (env.server_folder("INBOX"), env.local_folder("INBOX"));
    assert!(s == l, "{}", common::diff(&s, &l));
    assert!(s.iter().any(|(_, f)| f == "F"));
}
