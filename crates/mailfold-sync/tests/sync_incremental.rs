//! Against a private Dovecot: incremental sync (STATUS round, CONDSTORE/QRESYNC),
//! UIDVALIDITY recovery, moves. Each test checks the end state *and* the absence of needless
//! work, counted from `mailfold-net`'s traffic counters.

#[path = "sync_common.rs"]
mod common;

use common::{message, Env};
use mailfold_sync::{AccountSpec, NetRemote, SyncOptions, SyncReport, Traffic};

fn crlf(b: &[u8]) -> Vec<u8> {
    String::from_utf8(b.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

fn traffic(r: &SyncReport) -> &Traffic {
    r.traffic.as_ref().expect("sync_account reports traffic")
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

/// A run over a NetRemote whose capabilities are trimmed first (a server without QRESYNC).
fn sync_hiding(env: &Env, a: &AccountSpec, hide: &[&str]) -> SyncReport {
    let (maildir, mut db) = mailfold_sync::open_store(a).unwrap();
    let mut remote = NetRemote::connect(a).unwrap();
    for h in hide {
        remote.hide_capability(h);
    }
    let r =
        mailfold_sync::sync_with_remote(&mut remote, a, &SyncOptions::default(), &maildir, &mut db)
            .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", env.dovecot.log()));
    let stats = remote.stats();
    mailfold_sync::Remote::logout(&mut remote);
    SyncReport {
        traffic: Some(Traffic::of(&stats)),
        ..r
    }
}

fn server_flag(env: &Env, folder: &str, uid: u32, op: &str, flag: &str) {
    env.dovecot.doveadm(&[
        "flags",
        op,
        "-u",
        &env.user,
        flag,
        "mailbox",
        &common::mailbox_arg(folder),
        "uid",
        &uid.to_string(),
    ]);
}

/// Seed V0045: after a first sync, a sync with no change anywhere in 20 folders (plus INBOX)
/// costs one pipelined round of STATUS (on a server without LIST-STATUS) and not a single
/// SELECT, EXAMINE or FETCH.
#[test]
fn v0045_no_change_sync_of_20_folders_sends_no_select() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 0)));
    for i in 0..20 {
        let f = format!("F{i:02}");
        env.dovecot.create_mailbox(&env.user, &f);
        env.deliver(&f, &crlf(&message(&f, 1)));
    }
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    assert_eq!(total(&first, |f| f.downloaded), 21);
    // LIST-STATUS hidden: this is the STATUS round's test (V0044 has its own).
    let again = sync_hiding(&env, &env.account(), &["LIST-STATUS"]);
    assert!(again.is_complete(), "{again:#?}");
    assert!(!again.changed_anything(), "{again:#?}");
    let t = traffic(&again);
    assert_eq!(t.count("SELECT"), 0, "{t:#?}");
    assert_eq!(t.count("EXAMINE"), 0, "{t:#?}");
    assert_eq!(t.count("UID FETCH"), 0, "{t:#?}");
    // Every folder (ours and Dovecot's own Drafts, Sent, …) in one STATUS each, all unchanged.
    let folders = again.unchanged_folders as u64;
    assert!(folders >= 21, "{again:#?}");
    assert_eq!(t.count("STATUS"), folders, "{t:#?}");
    // One folder changed on the server: only that one is selected.
    env.deliver("F07", &crlf(&message("F07", 2)));
    let third = env.sync();
    assert_eq!(total(&third, |f| f.downloaded), 1, "{third:#?}");
    assert_eq!(traffic(&third).count("SELECT"), 1, "{:#?}", traffic(&third));
    assert_eq!(third.unchanged_folders as u64, folders - 1);
}

/// Seed V0045 with local changes: a folder the server did not change is not read, and a new
/// local file in it is still pushed (APPEND needs no SELECT).
#[test]
fn v0045_local_change_in_an_unchanged_folder_is_pushed() {
    let env = Env::new();
    for i in 0..3 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &crlf(&message("Work", 0)));
    env.sync();
    env.drop_local("Work", "new-local.host", &message("WorkLocal", 1));
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("SELECT") + t.count("UID FETCH"), 0, "{t:#?}");
    assert_eq!(t.count("APPEND"), 1, "{t:#?}");
    assert_eq!(env.server_folder("Work").len(), 2);
    assert_eq!(env.local_folder("Work"), env.server_folder("Work"));
    assert!(!env.sync().changed_anything());
}

/// Seed V0002 / RFC 7162 with QRESYNC: a flag changed and a message expunged by another client
/// are picked up from `SELECT … (QRESYNC …)` without reading every UID's flags.
#[test]
fn v0002_qresync_changes_reach_the_maildir_without_a_full_flag_fetch() {
    let env = Env::new();
    let msgs: Vec<(Vec<u8>, &str)> = (0..150).map(|i| (message("INBOX", i), "")).collect();
    env.seed_server("INBOX", &msgs);
    let first = env.sync();
    assert_eq!(total(&first, |f| f.downloaded), 150);
    let full_fetch_bytes = traffic(&first).bytes_received;
    server_flag(&env, "INBOX", 5, "add", "\\Flagged");
    env.dovecot
        .doveadm(&["expunge", "-u", &env.user, "mailbox", "INBOX", "uid", "9"]);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.local_flag_changes), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_deletions), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 0);
    let t = traffic(&r);
    assert_eq!(t.count("SELECT"), 1, "{t:#?}");
    assert_eq!(
        t.count("UID FETCH"),
        0,
        "QRESYNC's SELECT says it all: {t:#?}"
    );
    assert!(t.count("ENABLE") >= 1, "{t:#?}");
    // 150 UIDs with flags would be several kilobytes; the changes are a few lines.
    assert!(
        t.bytes_received < 3000,
        "{t:#?} (first run {full_fetch_bytes})"
    );
    assert_eq!(env.local_folder("INBOX").len(), 149);
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    assert!(!env.sync().changed_anything());
}

/// The same against a server with CONDSTORE but no QRESYNC: `UID FETCH 1:* (…)
/// (CHANGEDSINCE n)` for flags; an expunge, which CHANGEDSINCE cannot show, is noticed from
/// EXISTS and the folder is read whole that time.
#[test]
fn v0002_condstore_without_qresync_uses_changedsince() {
    let env = Env::new();
    let msgs: Vec<(Vec<u8>, &str)> = (0..100).map(|i| (message("INBOX", i), "")).collect();
    env.seed_server("INBOX", &msgs);
    let a = env.account();
    sync_hiding(&env, &a, &["QRESYNC"]);
    server_flag(&env, "INBOX", 3, "add", "\\Seen");
    env.deliver("INBOX", &crlf(&message("INBOX", 100)));
    let r = sync_hiding(&env, &a, &["QRESYNC"]);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_flag_changes), 1, "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("ENABLE"), 0, "no QRESYNC: {t:#?}");
    assert_eq!(t.count("SELECT"), 1, "{t:#?}");
    // CHANGEDSINCE, the new message's details, its body: three UID FETCHes, no full read.
    assert_eq!(t.count("UID FETCH"), 3, "{t:#?}");
    assert!(t.bytes_received < 4000, "{t:#?}");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    // An expunge: EXISTS does not add up, so the folder is read whole, correctly.
    env.dovecot
        .doveadm(&["expunge", "-u", &env.user, "mailbox", "INBOX", "uid", "7"]);
    let r = sync_hiding(&env, &a, &["QRESYNC"]);
    assert_eq!(total(&r, |f| f.local_deletions), 1, "{r:#?}");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    assert!(!sync_hiding(&env, &a, &["QRESYNC"]).changed_anything());
}

/// Seed V0002 on a server without CONDSTORE or QRESYNC (Dovecot's `imap_capability` trimmed, so
/// the server itself offers neither and never sends a MODSEQ): each run records the server's
/// UIDNEXT. A message delivered after the first run is found and downloaded, and the only
/// details and body fetched are of UIDs at or above the recorded UIDNEXT; with nothing new
/// (UIDNEXT unchanged) no details or body are fetched at all. Without MODSEQ the flags of
/// every UID are still read (a flag change has no other sign), so the STATUS round cannot skip
/// such a folder (see `v0045_…` for the skip on a CONDSTORE server).
#[test]
fn v0002_without_condstore_uidnext_alone_finds_new_mail() {
    let dovecot = mailfold_testsupport::Dovecot::builder()
        .rawlog(true)
        .extra_config(
            "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT \
             UIDPLUS CHILDREN LIST-EXTENDED SPECIAL-USE MOVE",
        )
        .start();
    let u = dovecot.user(0).clone();
    let env = Env {
        dovecot,
        dir: tempfile::tempdir().unwrap(),
        user: u.name,
        password: u.password,
    };
    for i in 0..5 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    assert_eq!(total(&first, |f| f.downloaded), 5);
    let t = traffic(&first);
    assert_eq!(
        t.count("ENABLE"),
        0,
        "the server offers no CONDSTORE: {t:#?}"
    );
    let recorded = |env: &Env| {
        let db = mailfold_store::StateDb::open(&env.state_db()).unwrap();
        let f = mailfold_store::StateRead::folder_by_wire_name(&db, "INBOX")
            .unwrap()
            .unwrap();
        assert_eq!(f.highestmodseq, None, "no MODSEQ from this server");
        f.uidnext.expect("UIDNEXT recorded").get()
    };
    let uidnext = recorded(&env);
    assert!(
        env.status("INBOX", "uidnext")
            .contains(&format!("uidnext={uidnext}")),
        "the server's UIDNEXT is recorded"
    );

    env.deliver("INBOX", &crlf(&message("INBOX", 5)));
    let before = env.dovecot.rawlog(&env.user).len();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 1, "{r:#?}");
    let log = env.dovecot.rawlog(&env.user);
    let run = &log[before..];
    assert!(
        !run.contains("CHANGEDSINCE") && !run.contains("CONDSTORE"),
        "{run}"
    );
    let fetched = detail_and_body_uids(run);
    assert!(!fetched.is_empty(), "the new message was fetched: {run}");
    assert!(
        fetched.iter().all(|&u| u >= uidnext),
        "only UIDs from the recorded UIDNEXT {uidnext} on are fetched: {fetched:?}\n{run}"
    );
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    let next = recorded(&env);
    assert!(
        next > uidnext,
        "the new UIDNEXT is recorded ({uidnext} -> {next})"
    );

    // Nothing new: UIDNEXT unchanged, and no message's details or body are read.
    let before = env.dovecot.rawlog(&env.user).len();
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
    let log = env.dovecot.rawlog(&env.user);
    let fetched = detail_and_body_uids(&log[before..]);
    assert!(fetched.is_empty(), "{fetched:?}\n{}", &log[before..]);
    assert_eq!(recorded(&env), next);
}

/// The UIDs named by the client's `UID FETCH` commands that read message details or bodies
/// (RFC822.SIZE, BODY.PEEK[…]) in a Dovecot rawlog, `*` read as `u32::MAX`.
fn detail_and_body_uids(rawlog: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for line in rawlog.lines() {
        let Some(at) = line.find("UID FETCH ") else {
            continue;
        };
        let rest = &line[at + "UID FETCH ".len()..];
        if !(rest.contains("RFC822.SIZE") || rest.contains("BODY")) {
            continue;
        }
        let set = rest.split(' ').next().unwrap_or_default();
        for part in set.split(',') {
            for n in part.split(':') {
                out.push(if n == "*" {
                    u32::MAX
                } else {
                    n.parse()
                        .unwrap_or_else(|_| panic!("UID set {set:?} in {line:?}"))
                });
            }
        }
    }
    out
}

/// Seed V0003 end to end: after a UIDVALIDITY reset every message is re-bound by content
/// without fetching a single body; a flag set locally just before the reset reaches the
/// server; a file deleted locally just before it does not come back.
#[test]
fn v0003_uidvalidity_reset_recovers_without_download_and_keeps_local_changes() {
    let env = Env::new();
    // 20 KB bodies: fetching even one would show in the byte count.
    for i in 0..6 {
        let mut m = message("INBOX", i);
        for _ in 0..400 {
            m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n");
        }
        env.deliver("INBOX", &crlf(&m));
    }
    env.sync();
    let mut files = env.local_files("INBOX");
    files.sort();
    // Local changes not yet pushed: flag one file, delete another.
    // Unflagged downloads lie in new/ (no info suffix); a mail reader flags one by moving it
    // to cur/ with `:2,F`, as mutt does.
    let flagged = files[1].clone();
    let name = flagged.file_name().unwrap().to_str().unwrap().to_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let renamed = env
        .local_dir("INBOX")
        .join("cur")
        .join(format!("{base}:2,F"));
    std::fs::rename(&flagged, &renamed).unwrap();
    std::fs::remove_file(&files[4]).unwrap();
    env.dovecot.set_uidvalidity(&env.user, "INBOX", 777_777);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 0, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 0, "{r:#?}");
    let t = traffic(&r);
    // Re-binding reads sizes, dates and Message-IDs (a few hundred bytes a message), never a
    // body (each is over 20 KB).
    assert!(t.bytes_received < 15_000, "{t:#?}");
    let server = env.server_folder("INBOX");
    assert_eq!(server.len(), 5, "the local deletion reached the server");
    assert_eq!(
        server.iter().filter(|(_, f)| f.contains('F')).count(),
        1,
        "the local flag reached the server"
    );
    assert_eq!(env.local_folder("INBOX"), server);
    assert!(!env.sync().changed_anything());
}

/// Seed V0057: a message moved between server folders by another client is moved in the
/// Maildir without a download; one moved between local folders becomes a UID MOVE whose
/// COPYUID maps it, again with nothing transferred.
#[test]
fn v0057_moves_are_moves_both_ways() {
    let env = Env::new();
    for i in 0..3 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    env.dovecot.create_mailbox(&env.user, "Archive");
    env.deliver("Archive", &crlf(&message("Archive", 0)));
    env.sync();
    // Server side: another client moves UID 1 to Archive.
    env.dovecot.doveadm(&[
        "move", "-u", &env.user, "Archive", "mailbox", "INBOX", "uid", "1",
    ]);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 0, "{r:#?}");
    assert_eq!(total(&r, |f| f.local_moves), 1, "{r:#?}");
    assert_eq!(env.local_folder("Archive"), env.server_folder("Archive"));
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    // Local side: a mail reader moves a file from INBOX to Archive.
    let src = env.local_files("INBOX").into_iter().next().unwrap();
    let dest = env
        .local_dir("Archive")
        .join("cur")
        .join(src.file_name().unwrap());
    std::fs::rename(&src, &dest).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.remote_moves), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded + f.downloaded), 0, "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("UID MOVE"), 1, "{t:#?}");
    assert_eq!(t.count("APPEND"), 0, "{t:#?}");
    assert_eq!(env.local_folder("Archive"), env.server_folder("Archive"));
    assert_eq!(env.server_folder("Archive").len(), 3);
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    assert!(!env.sync().changed_anything());
}

/// Seeds V0010 and V0070: in headers-only mode a message is stored as its header alone,
/// without fetching its body, recorded as partial and never uploaded.
#[test]
fn v0070_headers_only_stores_the_header_and_never_uploads_it() {
    let env = Env::new();
    let mut big = message("INBOX", 1);
    for _ in 0..300 {
        big.extend_from_slice(b"A body line that is not part of the header at all.\n");
    }
    env.deliver("INBOX", &crlf(&big));
    let mut a = env.account();
    a.download = mailfold_sync::DownloadMode::HeadersOnly;
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert!(t.bytes_received < 8_000, "no body fetched: {t:#?}");
    let local = env.local_folder("INBOX");
    assert_eq!(local.len(), 1);
    let text = String::from_utf8(local[0].0.clone()).unwrap();
    assert!(text.contains("Subject: INBOX message 1"), "{text}");
    assert!(!text.contains("A body line"), "{text}");
    assert!(!env.sync_with(&a).changed_anything());
    assert_eq!(
        env.server_folder("INBOX").len(),
        1,
        "the partial copy is never uploaded"
    );
    assert_eq!(env.local_files("INBOX").len(), 1);
}

/// A state that claims a folder is in sync while a message older than its HIGHESTMODSEQ was
/// never recorded (what a run whose download failed, under a version that still recorded the
/// folder, left behind): neither the STATUS round nor the QRESYNC changes view may hide the
/// message. EXISTS does not add up, so the folder is read whole and the message downloaded.
#[test]
fn v0045_a_message_the_state_never_recorded_is_not_hidden_by_the_incremental_view() {
    use mailfold_store::{StateRead, Uid};
    let env = Env::new();
    for i in 0..4 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    assert!(env.sync().is_complete());
    // Forget UID 2 and its file, as if its download had failed and the folder's UIDNEXT and
    // HIGHESTMODSEQ had been recorded anyway.
    {
        let (_, mut db) = mailfold_sync::open_store(&env.account()).unwrap();
        let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
        let row = db.message(f.id, Uid::new(2).unwrap()).unwrap().unwrap();
        db.write(|tx| tx.delete_messages(f.id, &[Uid::new(2).unwrap()]))
            .unwrap();
        let file = env
            .local_files("INBOX")
            .into_iter()
            .find(|p| p.to_string_lossy().contains(row.base.as_str()))
            .unwrap();
        std::fs::remove_file(file).unwrap();
    }
    assert_eq!(env.local_folder("INBOX").len(), 3);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 1, "{r:#?}");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    // Once whole again, the folder is skipped as unchanged.
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(traffic(&again).count("SELECT"), 0);
}

/// A folder deleted locally (its directory removed, as a mail reader deletes a folder) on a
/// CONDSTORE server: the next run reads it whole, not from a delta (which cannot show that the
/// server holds nothing else), so its messages are expunged and the emptied folder deleted in
/// that one run, and the state forgets it.
#[test]
fn a_folder_deleted_locally_is_deleted_on_the_server_in_one_run() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Old");
    for i in 0..3 {
        env.deliver("Old", &message("Old", i));
    }
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    assert!(!env.sync().changed_anything());
    std::fs::remove_dir_all(env.local_dir("Old")).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert!(
        env.dovecot
            .try_doveadm(
                &["mailbox", "status", "-u", &env.user, "messages", "Old"],
                None
            )
            .is_err(),
        "the server folder is deleted: {r:#?}"
    );
    let db = mailfold_store::StateDb::open(&env.state_db()).unwrap();
    let folders = mailfold_store::StateRead::folders(&db).unwrap();
    assert!(folders.iter().all(|f| f.wire_name != "Old"), "{folders:#?}");
    drop(db);
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
}
