//! The per-folder pipeline of an initial sync, against a private Dovecot: when the mirror and
//! the state hold nothing, no message can match anything already mirrored, so each folder is
//! read, planned and applied on its own (memory follows the largest folder, not the
//! account), over every allowed connection; a mirror that holds files is read whole as
//! before, so its files are bound instead of downloaded again.

#[path = "sync_common.rs"]
mod common;

use common::{message, Env};
use mailfold_sync::gather::{self, GatherOptions};
use mailfold_sync::{NetRemote, Remote, SyncReport};

fn folders() -> Vec<String> {
    (0..6).map(|i| format!("Box{i}")).collect()
}

fn seed(env: &Env) {
    env.deliver("INBOX", &message("INBOX", 0));
    env.dovecot
        .create_mailbox(&env.user, &common::mailbox_arg("Parent/Child"));
    env.deliver("Parent/Child", &message("Parent/Child", 1));
    for (n, f) in folders().iter().enumerate() {
        let msgs: Vec<(Vec<u8>, &str)> = (0..(20 + 30 * n))
            .map(|i| (message(f, i), if i % 2 == 0 { "S" } else { "" }))
            .collect();
        env.seed_server(f, &msgs);
    }
}

/// Each folder of a state database: wire name, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and its
/// number of bound rows, by name.
type FolderState = (
    String,
    Option<mailfold_store::UidValidity>,
    Option<std::num::NonZeroU32>,
    Option<u64>,
    u64,
);

fn folder_states(p: &std::path::Path) -> Vec<FolderState> {
    let db = mailfold_store::StateDb::open(p).unwrap();
    let mut out = Vec::new();
    for f in mailfold_store::StateRead::folders(&db).unwrap() {
        let n = mailfold_store::StateRead::message_counts(&db, f.id)
            .unwrap()
            .0;
        out.push((f.wire_name, f.uidvalidity, f.uidnext, f.highestmodseq, n));
    }
    out.sort();
    out
}

fn gathered(env: &Env, defer_fresh: bool) -> gather::Gathered {
    let a = env.account();
    let (maildir, db) = mailfold_sync::open_store(&a).unwrap();
    let mut remote = NetRemote::connect(&a).unwrap();
    let mut report = SyncReport::default();
    let g = gather::gather_with(
        &mut remote,
        &a,
        &maildir,
        &db,
        &mut report,
        GatherOptions {
            defer_fresh,
            ..GatherOptions::default()
        },
    )
    .unwrap();
    remote.logout();
    g
}

/// An empty mirror: every selectable folder is left to its own pipeline, none is read by the
/// gather (no SELECT of any of them happens there), and the sync that follows mirrors every
/// folder exactly; a second run has nothing to do.
#[test]
fn an_initial_sync_reads_plans_and_applies_each_folder_alone() {
    let env = Env::new();
    seed(&env);
    let g = gathered(&env, true);
    let mut fresh: Vec<String> = g.fresh.iter().map(|f| f.path.to_string()).collect();
    fresh.sort();
    for f in folders()
        .iter()
        .chain(["INBOX".to_owned(), "Parent/Child".to_owned()].iter())
    {
        assert!(fresh.contains(f), "{f} not deferred: {fresh:?}");
    }
    assert!(
        g.input.remote.iter().all(|r| r.mailbox.is_none()),
        "no folder is read by the gather: {:#?}",
        g.input.remote
    );
    let sizes: Vec<u32> = g
        .fresh
        .iter()
        .filter(|f| f.path.to_string().starts_with("Box"))
        .map(|f| {
            f.messages
                .expect("sized: several folders, several connections")
        })
        .collect();
    assert_eq!(
        sizes.iter().sum::<u32>(),
        (0..6).map(|n| 20 + 30 * n).sum::<u32>()
    );

    let mut a = env.account();
    a.connections = 3;
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    for f in folders()
        .iter()
        .map(String::as_str)
        .chain(["INBOX", "Parent/Child"])
    {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
    let downloaded: usize = r.folders.iter().map(|f| f.downloaded).sum();
    assert_eq!(downloaded, 2 + (0..6).map(|n| 20 + 30 * n).sum::<usize>());
    // Extra connections took folders: more than one login.
    let t = r.traffic.as_ref().expect("traffic");
    assert!(t.logins() >= 2, "{t:#?}");
    let again = env.sync_with(&a);
    assert!(!again.changed_anything(), "{again:#?}");
}

/// A mirror that already holds files (a lost state database, a tree made by another tool) is
/// not an empty mirror: it is gathered whole, so its files are bound to the server's
/// messages by content instead of being downloaded a second time.
#[test]
fn a_mirror_with_files_is_gathered_whole_and_bound() {
    let env = Env::new();
    seed(&env);
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    std::fs::remove_file(env.state_db()).unwrap();
    let g = gathered(&env, true);
    assert!(g.fresh.is_empty(), "{:?}", g.fresh);
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let downloaded: usize = r.folders.iter().map(|f| f.downloaded).sum();
    assert_eq!(downloaded, 0, "{r:#?}");
    for f in folders() {
        assert_eq!(env.server_folder(&f), env.local_folder(&f), "{f}");
    }
}

/// A dry run shows the whole plan at once: nothing is deferred.
#[test]
fn a_dry_run_plans_every_folder_at_once() {
    let env = Env::new();
    seed(&env);
    let g = gathered(&env, false);
    assert!(g.fresh.is_empty());
    assert!(g.input.remote.iter().any(|r| r.mailbox.is_some()));
    let r = mailfold_sync::sync_account(
        &env.account(),
        &mailfold_sync::SyncOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.dry_run);
    assert!(env.local_folder("Box0").is_empty());
}

/// A fresh folder larger than the account's window is read, planned and applied window by
/// window (its UIDs first, then each window's flags, details and bodies), over one connection
/// and over several: the mirror and the state end as a single plan leaves them, the folder's
/// UIDNEXT and HIGHESTMODSEQ are recorded once every window is in (so the next run has
/// nothing to do), and each window's flags are asked for on their own.
#[test]
fn a_large_fresh_folder_goes_window_by_window() {
    let env = Env::new();
    seed(&env);
    let mut whole = env.account();
    whole.maildir = env.dir.path().join("whole").join("mail");
    whole.state_db = env.dir.path().join("whole").join("state.db");
    let r = env.sync_with(&whole);
    assert!(r.is_complete(), "{r:#?}");
    for connections in [1, 3] {
        let mut a = env.account();
        a.maildir = env
            .dir
            .path()
            .join(format!("win{connections}"))
            .join("mail");
        a.state_db = env
            .dir
            .path()
            .join(format!("win{connections}"))
            .join("state.db");
        a.connections = connections;
        // Box5 holds 170 messages: four windows of 50; Box1 (50) fits one exactly.
        a.fresh_window = 50;
        let w = env.sync_with(&a);
        assert!(w.is_complete(), "{w:#?}");
        let count = |r: &SyncReport| -> Vec<(String, usize)> {
            r.folders
                .iter()
                .map(|f| (f.folder.clone(), f.downloaded))
                .collect()
        };
        assert_eq!(count(&r), count(&w));
        for f in folders()
            .iter()
            .map(String::as_str)
            .chain(["INBOX", "Parent/Child"])
        {
            let dir =
                |root: &std::path::Path| f.split('/').fold(root.to_path_buf(), |p, c| p.join(c));
            let want = if f == "INBOX" {
                common::read_maildir(&whole.maildir)
            } else {
                common::read_maildir(&dir(&whole.maildir))
            };
            let got = if f == "INBOX" {
                common::read_maildir(&a.maildir)
            } else {
                common::read_maildir(&dir(&a.maildir))
            };
            assert!(got == want, "{f}:\n{}", common::diff(&want, &got));
        }
        // Flags by window: Box2..Box5 (80, 110, 140, 170 messages) take 2, 3, 3 and 4
        // windows; a folder that fits takes the one `1:*` fetch.
        let t = w.traffic.as_ref().expect("traffic");
        assert!(t.count("UID FETCH") > 0, "{t:#?}");
        let again = env.sync_with(&a);
        assert!(!again.changed_anything(), "{again:#?}");
        let t = again.traffic.as_ref().expect("traffic");
        assert_eq!(t.count("SELECT") + t.count("EXAMINE"), 0, "{t:#?}");
        assert_eq!(folder_states(&whole.state_db), folder_states(&a.state_db));
    }
}

/// One large fresh folder alone is not one connection's work: its first window, read and
/// applied by the connection that took the folder, creates it; the other windows are shared
/// out over every allowed connection, and the folder's UIDNEXT and HIGHESTMODSEQ are recorded
/// once the last of them is in. The mirror and the state end as on one connection, and the
/// next run has nothing to do.
#[test]
fn the_windows_of_one_large_fresh_folder_are_shared_out_over_the_connections() {
    let env = Env::new();
    let msgs: Vec<(Vec<u8>, &str)> = (0..230)
        .map(|i| (message("Big", i), if i % 3 == 0 { "S" } else { "" }))
        .collect();
    env.seed_server("Big", &msgs);
    let run = |connections: u8| {
        let mut a = env.account();
        let root = env.dir.path().join(format!("c{connections}"));
        a.maildir = root.join("mail");
        a.state_db = root.join("state.db");
        a.connections = connections;
        // Five windows of 50 (the last of 30).
        a.fresh_window = 50;
        let r = env.sync_with(&a);
        assert!(r.is_complete(), "{r:#?}");
        let big = r.folders.iter().find(|f| f.folder == "Big").expect("Big");
        assert_eq!(big.downloaded, 230, "{r:#?}");
        (a, r)
    };
    let (one, _) = run(1);
    let (three, r) = run(3);
    let t = r.traffic.as_ref().expect("traffic");
    assert!(
        t.logins() >= 2,
        "the windows were worth extra connections: {t:#?}"
    );
    assert!(
        common::read_maildir(&one.maildir.join("Big"))
            == common::read_maildir(&three.maildir.join("Big")),
        "{}",
        common::diff(
            &common::read_maildir(&one.maildir.join("Big")),
            &common::read_maildir(&three.maildir.join("Big"))
        )
    );
    let shared = folder_states(&three.state_db);
    assert_eq!(folder_states(&one.state_db), shared);
    assert!(
        shared
            .iter()
            .any(|(w, _, uidnext, _, n)| w == "Big" && uidnext.is_some() && *n == 230),
        "{shared:?}"
    );
    let again = env.sync_with(&three);
    assert!(!again.changed_anything(), "{again:#?}");
    let t = again.traffic.as_ref().expect("traffic");
    assert_eq!(t.count("SELECT") + t.count("EXAMINE"), 0, "{t:#?}");
}
