//! Parallel and pipelined sync: several folders at once over `connections` sessions,
//! against a private Dovecot. Every connection goes through a loopback proxy that counts them
//! (and, in one test, cuts the extra ones), so the tests see how many logins a run made.

#[path = "sync_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{diff, message, Env};
use mailfold_store::{StateDb, StateRead};
use mailfold_sync::{AccountSpec, ProgressEvent, SyncOptions, SyncReport};
use mailfold_testsupport::{Direction, Fault, FaultPlan, FaultProxy};

const FOLDERS: [&str; 6] = [
    "Archive",
    "Lists/rust",
    "Lists/tokio",
    "Sent",
    "Work",
    "Zeta",
];
const PER_FOLDER: usize = 60;

/// Six folders of sixty messages with a mix of flags, straight into the server's Maildir.
fn seeded() -> Env {
    let env = Env::new();
    let flags = ["", "S", "FS", "RS", "D", "", "S", "T"];
    for folder in FOLDERS {
        let msgs: Vec<(Vec<u8>, &str)> = (0..PER_FOLDER)
            .map(|i| (message(folder, i), flags[i % flags.len()]))
            .collect();
        env.seed_server(folder, &msgs);
    }
    env
}

/// An account mirroring into its own directory `tag`, through `proxy`.
fn account(env: &Env, tag: &str, connections: u8, proxy: &FaultProxy) -> AccountSpec {
    let mut a = env.account();
    a.maildir = env.dir.path().join(tag).join("mail");
    a.state_db = env.dir.path().join(tag).join("state.db");
    a.host = "127.0.0.1".into();
    a.port = proxy.addr().port();
    a.connections = connections;
    a.fsync = false;
    a
}

fn counting_proxy(env: &Env) -> FaultProxy {
    FaultProxy::start(env.dovecot.imaps_addr(), FaultPlan::Always(Fault::None))
}

fn sync(env: &Env, a: &AccountSpec) -> SyncReport {
    mailfold_sync::sync_account(a, &SyncOptions::default())
        .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", env.dovecot.log()))
}

/// Every message of the mirror by folder (contents and flag letters, as a sorted multiset).
fn mirror(a: &AccountSpec) -> BTreeMap<String, Vec<common::Msg>> {
    let mut out = BTreeMap::new();
    for folder in FOLDERS.iter().copied().chain(["INBOX"]) {
        let dir = if folder == "INBOX" {
            a.maildir.clone()
        } else {
            folder.split('/').fold(a.maildir.clone(), |p, c| p.join(c))
        };
        out.insert(folder.to_owned(), common::read_maildir(&dir));
    }
    out
}

/// What the state database records, less the local file names (each mirror names its own).
type StateView = BTreeMap<String, (Option<u32>, Option<u32>, Vec<String>)>;

fn state(a: &AccountSpec) -> StateView {
    let db = StateDb::open(&a.state_db).expect("state database");
    let mut out = BTreeMap::new();
    for f in db.folders().expect("folders") {
        let mut rows: Vec<String> = db
            .messages(f.id)
            .expect("rows")
            .into_iter()
            .map(|m| {
                format!(
                    "{} {:?} {:?} {:?} {:?} {:?} {:?} {}",
                    m.uid.0,
                    m.flags,
                    m.keywords,
                    m.size,
                    m.internaldate.map(|d| d.unix),
                    m.hash,
                    m.message_id,
                    m.partial
                )
            })
            .collect();
        rows.sort();
        out.insert(
            f.wire_name.clone(),
            (
                f.uidvalidity.map(|v| v.0.get()),
                f.uidnext.map(|n| n.get()),
                rows,
            ),
        );
    }
    out
}

/// The counts of a report that must not depend on how many connections did the work.
fn counts(r: &SyncReport) -> Vec<(String, usize, usize, usize, bool, usize)> {
    r.folders
        .iter()
        .map(|f| {
            (
                f.folder.clone(),
                f.downloaded,
                f.uploaded,
                f.local_flag_changes + f.remote_flag_changes,
                f.created_local,
                f.errors.len(),
            )
        })
        .collect()
}

/// Three connections mirror exactly what one does, with the same report, over more than one
/// login; a no-change run afterwards logs in once.
#[test]
fn three_connections_mirror_like_one_and_a_no_change_run_opens_one() {
    let env = seeded();
    let proxy1 = counting_proxy(&env);
    let one = account(&env, "one", 1, &proxy1);
    let r1 = sync(&env, &one);
    assert!(r1.is_complete(), "{r1:#?}");
    assert_eq!(proxy1.connection_count(), 1);

    let proxy3 = counting_proxy(&env);
    let three = account(&env, "three", 3, &proxy3);
    // The progress observer hears of the whole plan once, and of every message from
    // whichever connection moved it.
    let planned = std::sync::Mutex::new(Vec::new());
    let messages = AtomicUsize::new(0);
    let observer = |e: ProgressEvent<'_>| match e {
        ProgressEvent::Planned { downloads, .. } => planned.lock().unwrap().push(downloads),
        ProgressEvent::Message { .. } => {
            messages.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    };
    let r3 = mailfold_sync::sync_account_with_progress(&three, &SyncOptions::default(), &observer)
        .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", env.dovecot.log()));
    assert!(r3.is_complete(), "{r3:#?}");
    assert_eq!(*planned.lock().unwrap(), [FOLDERS.len() * PER_FOLDER]);
    assert_eq!(messages.load(Ordering::Relaxed), FOLDERS.len() * PER_FOLDER);
    let logins = proxy3.connection_count();
    assert_eq!(logins, 3, "six big folders keep all three connections busy");

    let total: usize = r3.folders.iter().map(|f| f.downloaded).sum();
    assert_eq!(total, FOLDERS.len() * PER_FOLDER, "{r3:#?}");
    assert_eq!(counts(&r1), counts(&r3));
    assert_eq!(r1.steps, r3.steps);
    assert!(
        r3.warnings.is_empty(),
        "no 'ignored' warning: {:?}",
        r3.warnings
    );
    // The traffic of every session is summed: the same FETCHes, split over the sessions, and
    // one login per session.
    let (t1, t3) = (r1.traffic.as_ref().unwrap(), r3.traffic.as_ref().unwrap());
    assert_eq!(
        t3.count("UID FETCH"),
        t1.count("UID FETCH"),
        "{t1:#?}\n{t3:#?}"
    );
    assert_eq!(t1.logins(), 1, "{t1:#?}");
    assert_eq!(t3.logins(), 3, "{t3:#?}");
    assert_eq!(t3.count("LOGOUT"), 3, "every worker logs out: {t3:#?}");

    let (m1, m3) = (mirror(&one), mirror(&three));
    for folder in FOLDERS {
        let server = env.server_folder(folder);
        assert_eq!(server.len(), PER_FOLDER, "{folder}");
        assert!(
            m3[folder] == server,
            "{folder}:\n{}",
            diff(&server, &m3[folder])
        );
        assert!(m1[folder] == m3[folder], "{folder}");
    }
    assert_eq!(state(&one), state(&three));

    // Nothing changed: the STATUS round on the main connection finds it, no worker logs in.
    let again = sync(&env, &three);
    assert!(again.is_complete(), "{again:#?}");
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(proxy3.connection_count(), logins + 1);
}

/// A small change in many folders is not worth a login per folder: one connection.
#[test]
fn small_changes_in_every_folder_open_no_extra_connection() {
    let env = seeded();
    let proxy = counting_proxy(&env);
    let a = account(&env, "small", 3, &proxy);
    let first = sync(&env, &a);
    assert!(first.is_complete(), "{first:#?}");
    let before = proxy.connection_count();
    for folder in FOLDERS {
        env.deliver(folder, &message(&format!("{folder}-new"), 0));
    }
    let r = sync(&env, &a);
    assert!(r.is_complete(), "{r:#?}");
    let total: usize = r.folders.iter().map(|f| f.downloaded).sum();
    assert_eq!(total, FOLDERS.len(), "{r:#?}");
    assert_eq!(proxy.connection_count(), before + 1);
}

/// A worker whose connection breaks mid-download fails the run like a lost main connection;
/// the next run completes it with no message twice and none missing.
#[test]
fn a_worker_cut_mid_run_fails_the_run_and_the_next_run_converges() {
    let env = seeded();
    // The main connection (accepted first) is left alone; every extra one is cut a little way
    // into its downloads (after the TLS handshake and login, inside the first folder's FETCH).
    let cut = Fault::Cut {
        dir: Direction::ToClient,
        after: 9_000,
    };
    let proxy = FaultProxy::start(
        env.dovecot.imaps_addr(),
        FaultPlan::Sequence(vec![Fault::None, cut, cut]),
    );
    let a = account(&env, "cut", 3, &proxy);
    let err = mailfold_sync::sync_account(&a, &SyncOptions::default());
    assert!(
        err.is_err(),
        "a lost worker connection fails the run: {err:#?}"
    );
    assert_eq!(proxy.connection_count(), 3);

    let partial: usize = mirror(&a).values().map(Vec::len).sum();
    assert!(
        partial < FOLDERS.len() * PER_FOLDER,
        "the cut stopped some work"
    );

    // The proxy now forwards everything (connections past the sequence get no fault).
    let r = sync(&env, &a);
    assert!(r.is_complete(), "{r:#?}");
    let m = mirror(&a);
    for folder in FOLDERS {
        let server = env.server_folder(folder);
        assert!(
            m[folder] == server,
            "{folder}:\n{}",
            diff(&server, &m[folder])
        );
    }
    let again = sync(&env, &a);
    assert!(!again.changed_anything(), "{again:#?}");
}

/// The measurement behind `connections` (not run by CI): an initial sync of 5,000 messages
/// (about 3 KiB each) in ten folders, over one connection and over three, each into a fresh
/// Dovecot (so that neither gets the other's warm caches), straight over loopback and through a
/// proxy that holds every server chunk 5 ms (a distant server). Run it with
/// `cargo test --release -p mailfold-sync --test sync_parallel -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run by hand in a release build"]
fn measure_initial_sync_of_5000_messages_in_10_folders() {
    use std::time::{Duration, Instant};
    for delay in [None, Some(Duration::from_millis(5))] {
        for connections in [1u8, 3, 3, 1] {
            let env = Env::new();
            for i in 0..10 {
                let f = format!("Bench{i}");
                let msgs: Vec<(Vec<u8>, &str)> = (0..500)
                    .map(|i| {
                        let mut m = message(&f, i);
                        m.extend(
                            std::iter::repeat_n(b"lorem ipsum dolor sit amet\n", 100).flatten(),
                        );
                        (m, if i % 3 == 0 { "S" } else { "" })
                    })
                    .collect();
                env.seed_server(&f, &msgs);
            }
            let fault = delay.map_or(Fault::None, |delay| Fault::Delay {
                dir: Direction::ToClient,
                delay,
            });
            let proxy = FaultProxy::start(env.dovecot.imaps_addr(), FaultPlan::Always(fault));
            let mut a = env.account();
            if delay.is_some() {
                a.port = proxy.addr().port();
            }
            a.connections = connections;
            a.fsync = false;
            let t = Instant::now();
            let r = sync(&env, &a);
            let took = t.elapsed();
            assert!(r.is_complete(), "{r:#?}");
            let n: usize = r.folders.iter().map(|f| f.downloaded).sum();
            assert_eq!(n, 5000);
            let logins = r.traffic.as_ref().map_or(0, mailfold_sync::Traffic::logins);
            eprintln!(
                "delay {delay:?}, connections = {connections}: {n} messages in {:.2} s ({logins} logins)",
                took.as_secs_f64()
            );
        }
    }
}

/// A server that turns extra connections away (a per-user connection limit) costs the run its
/// parallelism, not its success: the main connection does every folder, with a warning.
#[test]
fn extra_connections_refused_at_login_leave_the_work_to_the_main_one() {
    let env = seeded();
    let refuse = Fault::Cut {
        dir: Direction::ToClient,
        after: 0,
    };
    let proxy = FaultProxy::start(
        env.dovecot.imaps_addr(),
        FaultPlan::Sequence(vec![Fault::None, refuse, refuse]),
    );
    let a = account(&env, "refused", 3, &proxy);
    let r = sync(&env, &a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(proxy.connection_count(), 3);
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("could not be opened"),
        "{:?}",
        r.warnings
    );
    let m = mirror(&a);
    for folder in FOLDERS {
        let server = env.server_folder(folder);
        assert!(
            m[folder] == server,
            "{folder}:\n{}",
            diff(&server, &m[folder])
        );
    }
}

/// Folders changed on the server by flag changes alone (a phone marking mail read in many
/// folders) are each read, planned and applied on their own, spread over the connections:
/// one extra login per `FLAGS_ONLY_PER_CONNECTION` such folders, each folder selected once,
/// the mirror and the state as one connection leaves them, and every stamp recorded (the
/// next run skips every folder).
#[test]
fn flag_changes_in_many_folders_spread_over_the_connections() {
    let env = Env::new();
    let names: Vec<String> = (0..17).map(|i| format!("G{i:02}")).collect();
    for folder in &names {
        let msgs: Vec<(Vec<u8>, &str)> = (0..5)
            .map(|i| (message(folder, i), if i % 2 == 0 { "S" } else { "" }))
            .collect();
        env.seed_server(folder, &msgs);
    }
    let (proxy1, proxy3) = (counting_proxy(&env), counting_proxy(&env));
    let one = account(&env, "one", 1, &proxy1);
    let three = account(&env, "three", 3, &proxy3);
    for a in [&one, &three] {
        assert!(sync(&env, a).is_complete());
        assert!(!sync(&env, a).changed_anything());
    }
    for folder in &names {
        for (change, flag, uid) in [("add", "\\Flagged", "1"), ("remove", "\\Seen", "3")] {
            env.dovecot.doveadm(&[
                "flags", change, "-u", &env.user, flag, "mailbox", folder, "uid", uid,
            ]);
        }
    }
    let before = proxy3.connection_count();
    let r1 = sync(&env, &one);
    let r3 = sync(&env, &three);
    for r in [&r1, &r3] {
        assert!(r.is_complete(), "{r:#?}");
        let flagged: usize = r.folders.iter().map(|f| f.local_flag_changes).sum();
        assert_eq!(flagged, 2 * names.len(), "{:#?}", r.folders);
    }
    let extra = names.len() / mailfold_sync::parallel::FLAGS_ONLY_PER_CONNECTION;
    assert_eq!(proxy3.connection_count() - before, 1 + extra.min(2));
    let t3 = r3.traffic.as_ref().unwrap();
    assert_eq!(t3.count("SELECT") as usize, names.len(), "{t3:#?}");
    assert_eq!(counts(&r1), counts(&r3));
    for folder in &names {
        let server = env.server_folder(folder);
        for a in [&one, &three] {
            let dir = a.maildir.join(folder);
            let local = common::read_maildir(&dir);
            assert!(local == server, "{folder}:\n{}", diff(&server, &local));
        }
    }
    assert_eq!(state(&one), state(&three));
    // Every folder's stamp was recorded with its new rows: nothing is read again.
    let again = sync(&env, &three);
    assert!(!again.changed_anything(), "{again:#?}");
    let t = again.traffic.as_ref().unwrap();
    assert_eq!(t.count("SELECT") + t.count("EXAMINE"), 0, "{t:#?}");
    assert!(again.unchanged_folders > names.len(), "{again:#?}");
}
