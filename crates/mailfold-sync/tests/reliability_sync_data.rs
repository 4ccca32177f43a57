//! Hostile servers against the sync's data path: what a server says about messages and folders
//! (bodies, sizes, dates, folder names) when it says it twice, wrongly or in conflict. Each case
//! drives a whole run ([`mailfold_sync::sync_account_with_progress`]) against a
//! [`ScriptedServer`] and checks what lands on disk and in the report. The cases are listed in
//! docs/reliability.md ("Hostile server cases (sync data)").

#[path = "reliability_common.rs"]
mod rc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailfold_sync::{
    AccountSpec, DownloadMode, ProgressEvent, Secret, SyncOptions, SyncReport, TlsMode,
};
use mailfold_testsupport::{Script, ScriptedServer};

/// A scratch home: the Maildir and the state database of one account.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    /// A home whose Maildir already holds an empty INBOX: a mirror with nothing at all may
    /// be read one folder at a time after a STATUS round, and a script needs one command
    /// order, the one of a mirror that exists.
    fn new() -> Home {
        let home = Home {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(home.maildir().join("INBOX").join(sub)).unwrap();
        }
        home
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The account pointing at `server` in clear (loopback; the account allows it).
    fn account(&self, server: &ScriptedServer) -> AccountSpec {
        let mut a = AccountSpec::new(
            "hostile",
            "127.0.0.1",
            "user",
            Secret::new("pw".to_owned()),
            self.maildir(),
            self.dir.path().join("state.sqlite"),
        );
        a.port = server.port();
        a.tls = TlsMode::None;
        a.allow_plaintext_password = true;
        a
    }

    fn sync(&self, server: &ScriptedServer) -> SyncReport {
        self.sync_account(&self.account(server), &|_: ProgressEvent<'_>| {})
    }

    fn sync_account(
        &self,
        account: &AccountSpec,
        progress: &dyn mailfold_sync::Progress,
    ) -> SyncReport {
        mailfold_sync::sync_account_with_progress(account, &SyncOptions::default(), progress)
            .unwrap_or_else(|e| panic!("the run failed: {e}"))
    }

    fn files(&self, folder: &str) -> Vec<PathBuf> {
        rc::files_of(&self.maildir().join(folder))
    }
}

/// Every warning of a report, account-wide and per folder, one per line.
fn warnings(r: &SyncReport) -> String {
    r.warnings
        .iter()
        .chain(r.folders.iter().flat_map(|f| f.warnings.iter()))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

fn script_errors(server: &ScriptedServer) -> Vec<Option<String>> {
    server.reports().into_iter().map(|r| r.error).collect()
}

/// Greeting and LOGIN.
fn login() -> Script {
    Script::new()
        .step_timeout(Duration::from_secs(10))
        .send_line("* OK [CAPABILITY IMAP4rev1] hostile server ready")
        .expect("LOGIN *")
        .send_tagged("OK [CAPABILITY IMAP4rev1] logged in")
}

/// LSUB (empty) and LIST answered with `lines`.
fn list(s: Script, lines: &[&str]) -> Script {
    let mut s = s
        .expect("LSUB *")
        .send_tagged("OK LSUB done")
        .expect("LIST *");
    for l in lines {
        s = s.send(format!("{l}\r\n"));
    }
    s.send_tagged("OK LIST done")
}

/// SELECT matching `pattern`, answered with `exists` messages.
fn select(s: Script, pattern: &str, exists: u32) -> Script {
    s.expect(pattern)
        .send(format!(
            "* {exists} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT {}] n\r\n* FLAGS (\\Seen \\Flagged)\r\n",
            exists + 1
        ))
        .send_tagged("OK [READ-WRITE] selected")
}

fn logout(s: Script) -> Script {
    s.expect("LOGOUT")
        .send_line("* BYE bye")
        .send_tagged("OK bye")
}

fn msg(i: u32, pad: usize) -> String {
    format!(
        "From: a@example.org\r\nSubject: hostile {i}\r\nMessage-ID: <hostile.{i}@test>\r\n\r\n{}body {i}\r\n",
        "x".repeat(pad)
    )
}

fn flags_of(uids: &[u32]) -> String {
    uids.iter()
        .enumerate()
        .map(|(i, u)| format!("* {} FETCH (UID {u} FLAGS ())\r\n", i + 1))
        .collect()
}

/// The answer to the metadata FETCH: `(uid, RFC822.SIZE, INTERNALDATE, Message-ID)`.
fn details(items: &[(u32, usize, &str, &str)]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, (u, size, date, id))| {
            let hdr = format!("Message-ID: {id}\r\n\r\n");
            format!(
                "* {} FETCH (UID {u} RFC822.SIZE {size} INTERNALDATE \"{date}\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n{hdr})\r\n",
                i + 1,
                hdr.len()
            )
        })
        .collect()
}

const GOOD_DATE: &str = "01-Jan-2024 10:00:00 +0000";

fn body_fetch(seq: u32, uid: u32, body: &str) -> String {
    format!(
        "* {seq} FETCH (UID {uid} BODY[] {{{}}}\r\n{body})\r\n",
        body.len()
    )
}

/// The bytes of a Maildir file as the wire carried them (files store LF).
fn lf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").into_bytes()
}

// ---------------------------------------------------------------- one UID twice in a FETCH

/// A server that answers one `UID FETCH` with two bodies for the same UID — two different
/// bodies of the same size, once small enough to arrive inline and once streamed — must leave
/// one file per UID (the first body), warn, and leave nothing for the next run to upload.
#[test]
fn one_uid_sent_twice_in_one_fetch_is_stored_once_with_a_warning() {
    let small_a = msg(1, 0);
    let small_b = small_a.replace("body 1", "BODY 1");
    // Past the engine's inline literal cap (64 KiB): streamed in chunks.
    let big_a = msg(2, 100_000);
    let big_b = big_a.replace("body 2", "BODY 2");
    assert_eq!(small_a.len(), small_b.len());
    assert_eq!(big_a.len(), big_b.len());
    let first = ScriptedServer::start(logout(
        select(
            list(login(), &["* LIST (\\HasNoChildren) \"/\" INBOX"]),
            "SELECT INBOX*",
            2,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1, 2]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(details(&[
            (1, small_a.len(), GOOD_DATE, "<hostile.1@test>"),
            (2, big_a.len(), GOOD_DATE, "<hostile.2@test>"),
        ]))
        .send_tagged("OK details")
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, &small_a))
        .send(body_fetch(1, 1, &small_b))
        .send(body_fetch(2, 2, &big_a))
        .send(body_fetch(2, 2, &big_b))
        .send(body_fetch(1, 1, &small_b))
        .send_tagged("OK bodies"),
    ));
    let home = Home::new();
    let r = home.sync(&first);
    let files = home.files("INBOX");
    let mut got: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    got.sort();
    let mut want = vec![lf(&small_a), lf(&big_a)];
    want.sort();
    assert!(
        got == want,
        "one file per UID, holding the first body: {files:?}\n{r:#?}"
    );
    let w = warnings(&r);
    assert!(
        w.contains("UID 1") && w.contains("UID 2") && w.contains("more than once"),
        "{r:#?}"
    );
    assert!(r.errors.is_empty(), "{r:#?}");

    // The next run finds the one file bound to the UID: nothing to upload, nothing to fetch.
    let second = ScriptedServer::start(logout(
        select(
            list(login(), &["* LIST (\\HasNoChildren) \"/\" INBOX"]),
            "SELECT INBOX*",
            2,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1, 2]))
        .send_tagged("OK flags"),
    ));
    let r = home.sync(&second);
    assert!(r.is_complete(), "{r:#?}\n{:?}", script_errors(&second));
    assert!(!second.received_contains(b"APPEND"), "{r:#?}");
    assert_eq!(home.files("INBOX").len(), 2);
}

// ---------------------------------------------------------------- declared sizes

/// The largest the files being written in `dir/tmp` grew to while the run streamed: sampled
/// on every megabyte of body bytes the applier reports (its progress events come from the
/// thread that writes, between two chunks, so the sample is exact at that point). The files
/// are found among this process's open descriptors, so that an unnamed file (`O_TMPFILE`,
/// which the kernel shows as `tmp/#inode (deleted)`) counts as much as a named one.
struct TmpWatch {
    tmp: PathBuf,
    seen: AtomicU64,
    next_sample: AtomicU64,
    peak: AtomicU64,
}

impl TmpWatch {
    fn new(folder: &Path) -> TmpWatch {
        TmpWatch {
            tmp: folder.join("tmp"),
            seen: AtomicU64::new(0),
            next_sample: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    fn on(&self, e: ProgressEvent<'_>) {
        let ProgressEvent::Bytes { bytes, .. } = e else {
            return;
        };
        let seen = self.seen.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if seen < self.next_sample.load(Ordering::SeqCst) {
            return;
        }
        self.next_sample.store(seen + (1 << 20), Ordering::SeqCst);
        // The kernel names files by their resolved path.
        let tmp = std::fs::canonicalize(&self.tmp).unwrap_or_else(|_| self.tmp.clone());
        let size: u64 = std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .flatten()
            .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(&tmp)))
            .filter_map(|fd| std::fs::metadata(fd.path()).ok())
            .map(|m| m.len())
            .sum();
        self.peak.fetch_max(size, Ordering::SeqCst);
    }
}

/// 60 MiB of body for a message whose RFC822.SIZE was 109: nothing past a small margin may
/// be written, the message is not kept, and the run goes on.
fn oversized_literal_case(download: DownloadMode, fetch_pattern: &str, item: &str) {
    const HUGE: u64 = 60 << 20;
    let body = msg(1, 28);
    let size = body.len();
    assert_eq!(size, 109);
    let server = ScriptedServer::start(logout(
        select(
            list(login(), &["* LIST (\\HasNoChildren) \"/\" INBOX"]),
            "SELECT INBOX*",
            1,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(details(&[(1, size, GOOD_DATE, "<hostile.1@test>")]))
        .send_tagged("OK details")
        .expect(fetch_pattern)
        .send(format!("* 1 FETCH (UID 1 {item} {{{HUGE}}}\r\n"))
        .send_repeat(vec![b'z'; 64 << 10], HUGE / (64 << 10))
        .send(")\r\n")
        .send_tagged("OK bodies"),
    ));
    let home = Home::new();
    let mut account = home.account(&server);
    account.download = download;
    let watch = TmpWatch::new(&home.maildir().join("INBOX"));
    let r = home.sync_account(&account, &|e: ProgressEvent<'_>| watch.on(e));
    assert!(
        watch.seen.load(Ordering::SeqCst) >= HUGE / 2,
        "the literal was not streamed through the applier: {r:#?}\n{:?}",
        script_errors(&server)
    );
    let peak = watch.peak.load(Ordering::SeqCst);
    assert!(
        peak <= 64 << 10,
        "{peak} bytes were written to tmp/ for a {size}-byte message"
    );
    assert!(home.files("INBOX").is_empty(), "{r:#?}");
    let errors = r
        .folders
        .iter()
        .flat_map(|f| f.errors.iter())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        errors.contains("UID 1") && errors.contains(&HUGE.to_string()),
        "{r:#?}"
    );
    // The session survived: the run logged out normally.
    assert!(server.received_contains(b"LOGOUT"), "{r:#?}");
}

#[test]
fn a_60_mib_body_for_a_109_byte_message_is_never_written_whole() {
    oversized_literal_case(DownloadMode::Full, "UID FETCH *BODY.PEEK[]*", "BODY[]");
}

/// With `max_message_size` below the message's size only its header is fetched; a header of
/// 60 MiB is refused the same way.
#[test]
fn a_60_mib_header_under_max_message_size_is_never_written_whole() {
    oversized_literal_case(
        DownloadMode::MaxSize(50),
        "UID FETCH *BODY.PEEK[HEADER]*",
        "BODY[HEADER]",
    );
}

// ---------------------------------------------------------------- unparsable INTERNALDATE

/// A message whose INTERNALDATE does not parse is dated by its Date header (or, without one,
/// by the time of download), with a warning; the folder syncs.
#[test]
fn an_unparsable_internaldate_falls_back_to_the_date_header_or_the_download_time() {
    let dated = "From: a@example.org\r\nDate: Tue, 02 Jan 2024 03:04:05 +0100\r\nMessage-ID: <dated@test>\r\n\r\nbody\r\n";
    let undated = "From: a@example.org\r\nMessage-ID: <undated@test>\r\n\r\nbody\r\n";
    let ok = msg(3, 0);
    let hdr = |id: &str, date: Option<&str>| {
        let mut h = format!("Message-ID: {id}\r\n");
        if let Some(d) = date {
            h.push_str(&format!("Date: {d}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let h1 = hdr("<dated@test>", Some("Tue, 02 Jan 2024 03:04:05 +0100"));
    let h2 = hdr("<undated@test>", None);
    let server = ScriptedServer::start(logout(
        select(
            list(login(), &["* LIST (\\HasNoChildren) \"/\" INBOX"]),
            "SELECT INBOX*",
            3,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1, 2, 3]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*INTERNALDATE*")
        .send(details(&[
            (1, dated.len(), "31-Foo-2024 99:00:00 +0000", "<dated@test>"),
            (2, undated.len(), "yesterday", "<undated@test>"),
            (3, ok.len(), GOOD_DATE, "<hostile.3@test>"),
        ]))
        .send_tagged("OK details")
        // Asked again without INTERNALDATE, with the Date header.
        .expect("UID FETCH 1:2 *RFC822.SIZE*DATE*")
        .send(format!(
            "* 1 FETCH (UID 1 RFC822.SIZE {} BODY[HEADER.FIELDS (MESSAGE-ID DATE)] {{{}}}\r\n{h1})\r\n\
             * 2 FETCH (UID 2 RFC822.SIZE {} BODY[HEADER.FIELDS (MESSAGE-ID DATE)] {{{}}}\r\n{h2})\r\n",
            dated.len(),
            h1.len(),
            undated.len(),
            h2.len()
        ))
        .send_tagged("OK details again")
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, dated))
        .send(body_fetch(2, 2, undated))
        .send(body_fetch(3, 3, &ok))
        .send_tagged("OK bodies"),
    ));
    let home = Home::new();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = home.sync(&server);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        r.is_complete() && r.refused.is_empty(),
        "{r:#?}\n{:?}",
        script_errors(&server)
    );
    let w = warnings(&r);
    assert!(
        w.contains("INTERNALDATE") && w.contains("UID 1") && w.contains("UID 2"),
        "{r:#?}"
    );
    let files = home.files("INBOX");
    assert_eq!(files.len(), 3, "{files:?}\n{r:#?}");
    let mtime_of = |id: &str| -> u64 {
        let f = rc::find_local(&home.maildir().join("INBOX"), id)
            .unwrap_or_else(|| panic!("{id} not stored: {files:?}"));
        std::fs::metadata(f)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    // 2024-01-02T02:04:05Z.
    assert_eq!(mtime_of("<dated@test>"), 1_704_161_045);
    let t = mtime_of("<undated@test>");
    assert!(
        (before..=after).contains(&t),
        "{t} not in {before}..={after}"
    );
    // 2024-01-01T10:00:00Z, the server's own INTERNALDATE.
    assert_eq!(mtime_of("<hostile.3@test>"), 1_704_103_200);
}

// ---------------------------------------------------------------- folder names and delimiters

/// `a.b` with delimiter `.` and `a/b` with delimiter `/` are the same local folder `a/b`: one
/// server name is chosen (the one with the delimiter INBOX has), the other is skipped with a
/// warning naming both, and every command for the folder goes to the chosen name.
#[test]
fn conflicting_delimiters_map_one_server_name_per_local_folder() {
    let body = msg(1, 0);
    let server = ScriptedServer::start(logout(
        select(
            select(
                list(
                    login(),
                    &[
                        "* LIST (\\HasNoChildren) \"/\" INBOX",
                        "* LIST (\\HasNoChildren) \".\" \"a.b\"",
                        "* LIST (\\HasNoChildren) \"/\" \"a/b\"",
                    ],
                ),
                "SELECT INBOX*",
                0,
            ),
            "SELECT a/b*",
            1,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(details(&[(1, body.len(), GOOD_DATE, "<hostile.1@test>")]))
        .send_tagged("OK details")
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, &body))
        .send_tagged("OK bodies"),
    ));
    let home = Home::new();
    let r = home.sync(&server);
    assert!(
        !server.received_contains(b"a.b"),
        "a command went to the skipped name: {r:#?}"
    );
    let w = warnings(&r);
    assert!(w.contains("\"a.b\"") && w.contains("\"a/b\""), "{r:#?}");
    assert!(r.errors.is_empty(), "{r:#?}\n{:?}", script_errors(&server));
    let files = home.files("a/b");
    assert_eq!(files.len(), 1, "{r:#?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), lf(&body));
}

/// A folder listed with a NUL, a control character or a non-ASCII character as delimiter is
/// skipped with a warning, on this run and the next; the state database is never touched by
/// it and the rest of the account syncs.
#[test]
fn a_nul_or_unusable_delimiter_skips_that_folder_on_every_run() {
    let script = || {
        logout(select(
            select(
                list(
                    login(),
                    &[
                        "* LIST (\\HasNoChildren) \"/\" INBOX",
                        "* LIST (\\HasNoChildren) \"\0\" \"nul\"",
                        "* LIST (\\HasNoChildren) \"\x01\" \"ctl\"",
                        "* LIST (\\HasNoChildren) \"\u{e9}\" \"accent\"",
                        "* LIST (\\HasNoChildren) \"/\" \"fine\"",
                    ],
                ),
                "SELECT INBOX*",
                0,
            ),
            // The only folder left to select after INBOX.
            "SELECT fine*",
            0,
        ))
    };
    let home = Home::new();
    for run in 0..2 {
        let server = ScriptedServer::start(script());
        let r = home.sync(&server);
        let w = warnings(&r);
        for name in ["nul", "ctl", "accent"] {
            assert!(
                w.lines()
                    .any(|l| l.contains(name) && l.contains("delimiter")),
                "run {run}: no warning for {name}: {r:#?}"
            );
        }
        assert!(r.errors.is_empty(), "run {run}: {r:#?}");
        assert!(home.maildir().join("fine").is_dir(), "run {run}: {r:#?}");
        for name in ["nul", "ctl", "accent"] {
            assert!(
                !std::fs::read_dir(home.maildir())
                    .unwrap()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(name)),
                "run {run}: a folder was made for {name}"
            );
        }
    }
}

// ---------------------------------------------------------------- a local racer

/// While a body streams in, a local process swaps the folder's `cur/` and `new/` for links
/// to a directory outside the Maildir. The message must land in the directories the run
/// checked (now moved aside), never through the links.
#[test]
fn a_maildir_directory_swapped_for_a_link_mid_download_is_never_written_through() {
    let body = msg(1, 100_000);
    let server = ScriptedServer::start(logout(
        select(
            list(login(), &["* LIST (\\HasNoChildren) \"/\" INBOX"]),
            "SELECT INBOX*",
            1,
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(details(&[(1, body.len(), GOOD_DATE, "<hostile.1@test>")]))
        .send_tagged("OK details")
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, &body))
        .send_tagged("OK bodies"),
    ));
    let home = Home::new();
    let outside = home.dir.path().join("outside");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(outside.join(sub)).unwrap();
    }
    let inbox = home.maildir().join("INBOX");
    let swapped = std::sync::atomic::AtomicBool::new(false);
    let racer = |e: ProgressEvent<'_>| {
        if matches!(e, ProgressEvent::Bytes { .. }) && !swapped.swap(true, Ordering::SeqCst) {
            for sub in ["cur", "new"] {
                std::fs::rename(inbox.join(sub), inbox.join(format!("{sub}.held"))).unwrap();
                std::os::unix::fs::symlink(outside.join(sub), inbox.join(sub)).unwrap();
            }
        }
    };
    let r = mailfold_sync::sync_account_with_progress(
        &home.account(&server),
        &SyncOptions::default(),
        &racer,
    );
    assert!(swapped.load(Ordering::SeqCst), "{r:?}");
    for sub in ["cur", "new", "tmp"] {
        let found: Vec<_> = std::fs::read_dir(outside.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            found.is_empty(),
            "written through the link: {found:?}\n{r:#?}"
        );
    }
    let held: usize = ["new.held", "cur.held"]
        .iter()
        .map(|d| std::fs::read_dir(inbox.join(d)).unwrap().count())
        .sum();
    assert_eq!(held, 1, "the message is not where the run checked: {r:#?}");
}
