//! Hostile and odd servers against the real `mailfold sync`: scripted servers that
//! send absurd literal sizes, endless lines, UID sets that would expand to billions, numbers
//! past u32/u64, status responses without text, names that try to leave the store, surprise
//! response codes, messages without headers, EXPUNGE in the middle of a FETCH, BYE in the
//! middle of a literal, missing or refused FETCH data, a UIDVALIDITY change, and a server that
//! answers one byte per second.
//!
//! Every case checks the same four things besides its own: the process ends by itself within a
//! bound (no hang), with an exit status (no panic, no abort, no signal), its peak resident memory
//! (VmHWM, polled from /proc while it runs) stays far below what the server declared, and no file
//! appears outside the Maildir, the state database and the config. Each case also checks that the
//! server's script got as far as its hostile step, so a change in the client's command order
//! cannot make a case pass without testing anything.

#[path = "../../mailfold-sync/tests/reliability_common.rs"]
mod rc;
mod util;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfold_testsupport::{Script, ScriptedServer};
use util::Home;

/// Peak memory allowed to any run here: far below the 4 GiB literal or the 100 MB line the
/// servers declare or send.
const MAX_PEAK_KIB: u64 = 96 * 1024;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kib: u64,
    elapsed: Duration,
}

impl Outcome {
    fn said(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A home whose account points at `server` in clear (loopback; the account allows it).
fn home_for(server: &ScriptedServer) -> Home {
    let home = Home::new();
    home.write_config(
        "127.0.0.1",
        server.port(),
        "none",
        "pw",
        None,
        "allow_plaintext_password = true\n",
    );
    home
}

/// Runs `mailfold --json sync` with a time bound, polling its peak memory.
fn run_sync(home: &Home, limit: Duration) -> Outcome {
    let out = home.path().join("stdout.txt");
    let err = home.path().join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(home.config())
        .args(["--json", "sync"])
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("xdg-state"))
        .env("XDG_CONFIG_HOME", home.path().join("xdg-config"))
        .env_remove("MAILFOLD_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(child.id()) {
            peak = peak.max(k);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mailfold sync did not end within {limit:?} (hang)\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        peak_kib: peak,
        elapsed: started.elapsed(),
    }
}

/// The checks every case shares (see the module docs).
#[track_caller]
fn assert_sane(o: &Outcome, home: &Home, server: &ScriptedServer, hostile_step: usize) {
    let code = o
        .code
        .unwrap_or_else(|| panic!("killed by a signal:\n{}", o.said()));
    assert!(
        code != 101 && !o.stderr.contains("panicked"),
        "mailfold panicked:\n{}",
        o.said()
    );
    assert!(
        o.peak_kib < MAX_PEAK_KIB,
        "peak memory {} KiB (limit {MAX_PEAK_KIB})",
        o.peak_kib
    );
    let reached = server
        .reports()
        .iter()
        .map(|r| r.steps_completed)
        .max()
        .unwrap_or(0);
    assert!(
        reached >= hostile_step,
        "the script stopped at step {reached}, before its hostile step {hostile_step}: {:#?}\n{}",
        server
            .reports()
            .iter()
            .map(|r| &r.error)
            .collect::<Vec<_>>(),
        o.said()
    );
    for p in rc::tree(home.path()) {
        let first = p
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let allowed = first == "mail"
            || first.starts_with("state.sqlite")
            || ["config.toml", "password", "stdout.txt", "stderr.txt"].contains(&first.as_str());
        assert!(allowed, "written outside the store: {p:?}");
    }
}

/// Why each connection's script stopped, for assertion messages.
fn script_errors(server: &ScriptedServer) -> Vec<Option<String>> {
    server.reports().into_iter().map(|r| r.error).collect()
}

/// Message files (cur/ and new/) of a local folder.
fn local_files(home: &Home, folder: &str) -> Vec<PathBuf> {
    rc::files_of(&home.maildir().join(folder))
}

/// Script steps completed once the SELECT response (without extra lines) has been sent.
const SELECTED: usize = 11;
/// Steps completed once the first body FETCH data of [`up_to_bodies`] has been sent.
const BODY_SENT: usize = SELECTED + 8;

/// Greeting and LOGIN (3 steps).
fn login() -> Script {
    Script::new()
        .step_timeout(Duration::from_secs(10))
        .send_line("* OK [CAPABILITY IMAP4rev1] hostile server ready")
        .expect("LOGIN *")
        .send_tagged("OK [CAPABILITY IMAP4rev1] logged in")
}

/// LSUB and LIST with INBOX only (4 more steps).
fn list_inbox(s: Script) -> Script {
    s.expect("LSUB *")
        .send_tagged("OK LSUB done")
        .expect("LIST *")
        .send_line("* LIST (\\HasNoChildren) \"/\" INBOX")
        .send_tagged("OK LIST done")
}

/// SELECT INBOX with `exists` messages (3 steps + `extra` lines).
fn select(s: Script, exists: u32, uidvalidity: u32, extra: &[&str]) -> Script {
    let mut s = s
        .expect("SELECT *")
        .send(format!(
            "* {exists} EXISTS\r\n* OK [UIDVALIDITY {uidvalidity}] v\r\n* OK [UIDNEXT {}] n\r\n* FLAGS (\\Seen \\Flagged)\r\n",
            exists + 1
        ));
    for l in extra {
        s = s.send_line(l);
    }
    s.send_tagged("OK [READ-WRITE] selected")
}

fn msg(i: u32) -> String {
    format!(
        "From: a@example.org\r\nSubject: hostile {i}\r\nMessage-ID: <hostile.{i}@test>\r\n\r\nbody {i}\r\n"
    )
}

fn flags_of(uids: &[u32]) -> String {
    uids.iter()
        .enumerate()
        .map(|(i, u)| format!("* {} FETCH (UID {u} FLAGS ())\r\n", i + 1))
        .collect()
}

fn details_of(uids: &[u32], bodies: &[String]) -> String {
    uids.iter()
        .zip(bodies)
        .enumerate()
        .map(|(i, (u, b))| {
            let id = rc::message_id_of(b.as_bytes()).unwrap_or_default();
            let hdr = format!("Message-ID: {id}\r\n\r\n");
            format!(
                "* {} FETCH (UID {u} RFC822.SIZE {} INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n{hdr})\r\n",
                i + 1,
                b.len(),
                hdr.len()
            )
        })
        .collect()
}

fn body_fetch(seq: u32, uid: u32, body: &str) -> String {
    format!(
        "* {seq} FETCH (UID {uid} BODY[] {{{}}}\r\n{body})\r\n",
        body.len()
    )
}

/// A session up to and including the flags and details FETCHes for `uids`, with their bodies
/// (`msg(uid)`): [`SELECTED`] + 6 steps.
fn up_to_bodies(uids: &[u32], select_extra: &[&str]) -> Script {
    let bodies: Vec<String> = uids.iter().map(|&u| msg(u)).collect();
    select(list_inbox(login()), uids.len() as u32, 7, select_extra)
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(uids))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(details_of(uids, &bodies))
        .send_tagged("OK details")
}

fn logout(s: Script) -> Script {
    s.expect("LOGOUT")
        .send_line("* BYE bye")
        .send_tagged("OK bye")
}

#[test]
fn literal_of_2_pow_32_minus_1_in_a_body_is_a_clean_error_in_bounded_memory() {
    let server = ScriptedServer::start(
        up_to_bodies(&[1], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send("* 1 FETCH (UID 1 BODY[] {4294967295}\r\n")
            .send_repeat(vec![b'z'; 64 * 1024], 64)
            .close(),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(60));
    assert_sane(&o, &home, &server, BODY_SENT);
    assert_ne!(o.code, Some(0), "{}", o.said());
    assert!(
        local_files(&home, "INBOX").is_empty(),
        "a torn body was kept"
    );
}

#[test]
fn literal_sizes_past_u64_and_numbers_past_u32_are_refused_cleanly() {
    let server = ScriptedServer::start(
        select(list_inbox(login()), 2, 7, &[])
            .expect("UID FETCH *FLAGS*")
            .send(
                "* 1 FETCH (UID 4294967296 FLAGS ())\r\n\
                 * 99999999999999999999999 FETCH (UID 2 FLAGS ())\r\n\
                 * 2 FETCH (UID 3 FLAGS (\\Seen) RFC822.SIZE 99999999999999999999999999)\r\n\
                 * 2 FETCH (UID 3 INTERNALDATE \"01-Jan-2024 10:00:00 +0000000000000000000000000000000000000\")\r\n\
                 * 2 FETCH (UID 3 BODY[] {18446744073709551616}\r\n",
            )
            .send_tagged("OK flags")
            .close(),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(60));
    assert_sane(&o, &home, &server, SELECTED + 2);
    assert!(local_files(&home, "INBOX").is_empty());
}

#[test]
fn a_100_mb_line_without_crlf_is_refused_in_bounded_memory_and_time() {
    let server = ScriptedServer::start(
        login()
            .expect("LSUB *")
            .send("* LSUB () \"/\" ")
            .send_repeat(vec![b'a'; 64 * 1024], 1600)
            .close(),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(90));
    // The client may stop reading long before the 100 MB are sent, ending the script early;
    // reaching the step that starts the line is what matters.
    assert_sane(&o, &home, &server, 5);
    assert_ne!(o.code, Some(0), "{}", o.said());
    println!(
        "RELIABILITY 100MB line: exit {:?} in {:?}, peak {} KiB",
        o.code, o.elapsed, o.peak_kib
    );
}

#[test]
fn uid_sets_that_would_expand_to_billions_and_sets_ending_in_a_comma_stay_small() {
    let server = ScriptedServer::start(logout(
        up_to_bodies(
            &[1],
            &[
                "* VANISHED (EARLIER) 1:4294967295",
                "* VANISHED 2,3,",
                "* OK [COPYUID 7 1:4294967295 1:4294967295] surprise",
                "* OK [APPENDUID 7 5,] surprise",
                "* ESEARCH (TAG \"zz\") UID ALL 1:4294967295",
                "* SEARCH 1 2 3 4294967295 4294967296",
            ],
        )
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, &msg(1)))
        .send_tagged("OK bodies"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(60));
    assert_sane(&o, &home, &server, SELECTED + 6);
    // Handled or refused, but never expanded: the memory bound above is the point.
    println!(
        "RELIABILITY billions: exit {:?}, peak {} KiB",
        o.code, o.peak_kib
    );
}

#[test]
fn no_and_bad_without_text_are_clean_errors() {
    // SELECT answered "NO" with nothing after it; LOGOUT answered "BAD".
    let server = ScriptedServer::start(
        list_inbox(login())
            .expect("SELECT *")
            .send_tagged("NO")
            .expect("LOGOUT")
            .send_tagged("BAD"),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, 10);
    assert_ne!(
        o.code,
        Some(0),
        "a folder that cannot be opened is not synced"
    );
    let server = ScriptedServer::start(login().expect("LSUB *").send_tagged("BAD"));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, 5);
    assert_ne!(o.code, Some(0));
}

#[test]
fn mailbox_names_that_try_to_leave_the_store_write_nothing_outside_it() {
    let deep = vec!["d"; 1000].join("/");
    let ctl = "ctl\u{1}\u{1b}[31mname";
    let mut s = login()
        .expect("LSUB *")
        .send_tagged("OK")
        .expect("LIST *")
        .send_line("* LIST (\\HasNoChildren) \"/\" INBOX");
    for name in [
        "..",
        "../../escape",
        "a/../../../b",
        "/absolute/path",
        "`touch pwned`",
        "$(touch pwned)",
        ".hidden",
        "a//b",
        "x/./y",
    ] {
        s = s.send_line(&format!("* LIST () \"/\" \"{name}\""));
    }
    s = s
        .send(format!("* LIST () \"/\" {{{}}}\r\n{ctl}\r\n", ctl.len()))
        .send(format!("* LIST () \"/\" {{{}}}\r\n{deep}\r\n", deep.len()))
        .send(format!(
            "* LIST () \".\" {{{}}}\r\n{}\r\n",
            deep.len(),
            deep.replace('/', ".")
        ))
        .send_tagged("OK LIST done");
    // Whatever the client opens or creates next is refused; it must give up cleanly.
    for _ in 0..60 {
        s = s
            .expect("*")
            .send_tagged("NO [NONEXISTENT] no such mailbox here");
    }
    let server = ScriptedServer::start(s);
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(60));
    assert_sane(&o, &home, &server, 20);
    assert!(!home.path().join("pwned").exists());
    let parent = home.path().parent().unwrap();
    assert!(!parent.join("escape").exists() && !parent.join("b").exists());
    assert!(!std::path::Path::new("/absolute/path").exists());
}

#[test]
fn surprise_appenduid_and_copyuid_and_a_message_without_headers_are_handled() {
    let body = "no header lines at all, just text\r\n";
    let server = ScriptedServer::start(logout(
        select(
            list_inbox(login()),
            1,
            7,
            &[
                "* OK [APPENDUID 7 9] surprise",
                "* OK [COPYUID 7 1 2] surprise",
            ],
        )
        .expect("UID FETCH *FLAGS*")
        .send(flags_of(&[1]))
        .send_tagged("OK flags")
        .expect("UID FETCH *RFC822.SIZE*")
        .send(format!(
            "* 1 FETCH (UID 1 RFC822.SIZE {} INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{2}}\r\n\r\n)\r\n",
            body.len()
        ))
        .send_tagged("OK [COPYUID 7 1:3 4:6] details")
        .expect("UID FETCH *BODY.PEEK[]*")
        .send(body_fetch(1, 1, body))
        .send_tagged("OK [APPENDUID 7 1] bodies"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT);
    assert_eq!(
        o.code,
        Some(0),
        "{}\n{:?}",
        o.said(),
        script_errors(&server)
    );
    let files = local_files(&home, "INBOX");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        body.replace("\r\n", "\n").into_bytes()
    );
}

#[test]
fn expunge_during_uid_fetch_never_files_one_body_under_another_message() {
    let server = ScriptedServer::start(logout(
        up_to_bodies(&[1, 2, 3], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send(body_fetch(1, 1, &msg(1)))
            .send_line("* 2 EXPUNGE")
            .send(body_fetch(2, 3, &msg(3)))
            .send_tagged("OK bodies"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT + 2);
    for f in local_files(&home, "INBOX") {
        let bytes = std::fs::read(&f).unwrap();
        let id = rc::message_id_of(&bytes).unwrap();
        let n: u32 = id
            .trim_start_matches("<hostile.")
            .trim_end_matches("@test>")
            .parse()
            .unwrap();
        assert_ne!(n, 2, "the expunged message was written");
        assert_eq!(bytes, msg(n).replace("\r\n", "\n").into_bytes(), "{f:?}");
    }
}

#[test]
fn out_of_range_and_bursty_expunge_do_not_crash() {
    // A burst of 2,000 EXPUNGEs of a two-message mailbox in the middle of a body FETCH, then
    // out-of-range ones.
    let mut burst = String::new();
    for _ in 0..2000 {
        burst.push_str("* 1 EXPUNGE\r\n");
    }
    let server = ScriptedServer::start(logout(
        up_to_bodies(&[1, 2], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send(body_fetch(1, 1, &msg(1)))
            .send(burst)
            .send("* 0 EXPUNGE\r\n* 4000000000 EXPUNGE\r\n* 99 EXPUNGE\r\n")
            .send_tagged("OK bodies"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT + 2);
    // Out-of-range EXPUNGE right in the SELECT response.
    let server = ScriptedServer::start(logout(up_to_bodies(
        &[1, 2],
        &["* 0 EXPUNGE", "* 4000000000 EXPUNGE", "* 99 EXPUNGE"],
    )));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, SELECTED + 3);
}

#[test]
fn bye_in_the_middle_of_a_literal_keeps_no_torn_message() {
    let server = ScriptedServer::start(
        up_to_bodies(&[1], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send("* 1 FETCH (UID 1 BODY[] {5000}\r\nFrom: a@example.org\r\nSubject: torn\r\n")
            .send("\r\n* BYE server going down in the middle of your literal\r\n")
            .close(),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT + 1);
    assert_ne!(o.code, Some(0), "{}", o.said());
    assert!(
        local_files(&home, "INBOX").is_empty(),
        "a torn body was kept"
    );
}

#[test]
fn fetch_returning_nothing_for_a_listed_uid_or_no_for_an_expunged_one_loses_nothing() {
    // UID 2 is listed but its body never comes; the command still ends OK.
    let server = ScriptedServer::start(logout(
        up_to_bodies(&[1, 2], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send(body_fetch(1, 1, &msg(1)))
            .send_tagged("OK bodies"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT);
    assert_eq!(
        local_files(&home, "INBOX").len(),
        1,
        "{}\n{:?}",
        o.said(),
        script_errors(&server)
    );

    // Another session expunged UID 2: the server says NO (RFC 2180 4.1.2) after the data it
    // still had.
    let server = ScriptedServer::start(logout(
        up_to_bodies(&[1, 2], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send(body_fetch(1, 1, &msg(1)))
            .send_tagged("NO [EXPUNGEISSUED] Some of the requested messages no longer exist"),
    ));
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &server, BODY_SENT);
    for f in local_files(&home, "INBOX") {
        assert_eq!(
            std::fs::read(&f).unwrap(),
            msg(1).replace("\r\n", "\n").into_bytes()
        );
    }
}

/// V0003: the same two messages under a new UIDVALIDITY (and new UIDs) on the next run are
/// matched by content: nothing downloaded twice, nothing deleted.
#[test]
fn v0003_uidvalidity_changing_between_two_selects_deletes_and_duplicates_nothing() {
    let first = ScriptedServer::start(logout(
        up_to_bodies(&[1, 2], &[])
            .expect("UID FETCH *BODY.PEEK[]*")
            .send(body_fetch(1, 1, &msg(1)))
            .send(body_fetch(2, 2, &msg(2)))
            .send_tagged("OK bodies"),
    ));
    let home = home_for(&first);
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &first, BODY_SENT);
    assert_eq!(o.code, Some(0), "{}\n{:?}", o.said(), script_errors(&first));
    assert_eq!(local_files(&home, "INBOX").len(), 2);
    drop(first);
    // Same messages, UIDVALIDITY 8 instead of 7, UIDs 5 and 6. No body FETCH is scripted:
    // matching by content needs none.
    let bodies = vec![msg(1), msg(2)];
    let second = ScriptedServer::start(logout(
        select(list_inbox(login()), 2, 8, &[])
            .expect("UID FETCH *FLAGS*")
            .send(flags_of(&[5, 6]))
            .send_tagged("OK flags")
            .expect("UID FETCH *RFC822.SIZE*")
            .send(details_of(&[5, 6], &bodies))
            .send_tagged("OK details"),
    ));
    home.write_config(
        "127.0.0.1",
        second.port(),
        "none",
        "pw",
        None,
        "allow_plaintext_password = true\n",
    );
    let o = run_sync(&home, Duration::from_secs(30));
    assert_sane(&o, &home, &second, SELECTED + 6);
    assert_eq!(
        o.code,
        Some(0),
        "{}\n{:?}",
        o.said(),
        script_errors(&second)
    );
    let files = local_files(&home, "INBOX");
    assert_eq!(files.len(), 2, "{files:?}\n{}", o.said());
    assert!(!second.received_contains(b"BODY.PEEK[]"));
    assert!(!second.received_contains(b"EXPUNGE"));
}

#[test]
fn a_server_answering_one_byte_per_second_is_given_up_on_in_bounded_time() {
    let server = ScriptedServer::start(
        Script::new()
            .step_timeout(Duration::from_secs(120))
            .trickle(
                "* OK [CAPABILITY IMAP4rev1] a very very slow server says hello to you\r\n",
                Duration::from_secs(1),
            )
            .stall(),
    );
    let home = home_for(&server);
    let o = run_sync(&home, Duration::from_secs(75));
    assert_sane(&o, &home, &server, 0);
    assert_ne!(o.code, Some(0));
    println!(
        "RELIABILITY one byte per second: gave up after {:?} (exit {:?})",
        o.elapsed, o.code
    );
}
