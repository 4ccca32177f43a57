//! A pending secret ([`mailfold_sync::PendingSecret`], the CLI's `password_command` started
//! with the run): fetched while the run opens its store and connects, waited for only at
//! authentication, fetched once for all of a run's connections, and a failure that is the
//! run's only error and changes nothing. Against a private Dovecot, through a loopback proxy
//! that counts connections.

#[path = "sync_common.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{message, Env};
use mailfold_sync::{
    AccountSecret, AccountSpec, PendingSecret, Secret, SecretError, SyncError, SyncOptions,
};
use mailfold_testsupport::{Fault, FaultPlan, FaultProxy};

/// How long the overlap test's fetch waits for the run's connection before it gives up (a
/// guard against a hang, not a measurement: the test asserts only what happened).
const GUARD: Duration = Duration::from_secs(30);

fn proxy(env: &Env) -> Arc<FaultProxy> {
    Arc::new(FaultProxy::start(
        env.dovecot.imaps_addr(),
        FaultPlan::Always(Fault::None),
    ))
}

/// The account through `proxy`, with `secret` as its secret.
fn account(env: &Env, proxy: &FaultProxy, connections: u8, secret: AccountSecret) -> AccountSpec {
    let mut a = env.account();
    a.host = "127.0.0.1".into();
    a.port = proxy.addr().port();
    a.connections = connections;
    a.fsync = false;
    a.secret = secret;
    a
}

fn downloaded(r: &mailfold_sync::SyncReport) -> usize {
    r.folders.iter().map(|f| f.downloaded).sum()
}

fn sync(env: &Env, a: &AccountSpec) -> mailfold_sync::SyncReport {
    mailfold_sync::sync_account(a, &SyncOptions::default())
        .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", env.dovecot.log()))
}

/// The fetch gives the password only once the proxy has accepted the run's connection. Were
/// the secret fetched before the run connected (the order before), the fetch would wait for
/// a connection that never comes and fail at its guard; the run succeeds, so the connection
/// (TCP, TLS, greeting, CAPABILITY) was made while the secret was still being fetched.
#[test]
fn the_secret_is_fetched_while_the_run_connects() {
    let env = Env::new();
    env.deliver("INBOX", &message("INBOX", 1));
    let proxy = proxy(&env);
    // A first run creates the store (a pending secret is waited for before creating it).
    let first = account(&env, &proxy, 1, env.account().secret);
    assert!(sync(&env, &first).is_complete());
    let before = proxy.connection_count();

    let seen = Arc::clone(&proxy);
    let password = env.password.clone();
    let secret = PendingSecret::password(move || {
        let start = Instant::now();
        while seen.connection_count() == before {
            if start.elapsed() > GUARD {
                return Err(SecretError("no connection came while waiting".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Secret::new(password))
    });
    let a = account(&env, &proxy, 1, AccountSecret::Pending(secret));
    env.deliver("INBOX", &message("INBOX", 2));
    let r = sync(&env, &a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(downloaded(&r), 1, "{r:#?}");
    assert_eq!(proxy.connection_count(), before + 1);
}

/// Six big folders over three connections: three logins, one fetch of the secret.
#[test]
fn parallel_connections_share_one_fetch_of_the_secret() {
    let env = Env::new();
    for folder in [
        "Archive",
        "Lists/rust",
        "Lists/tokio",
        "Sent",
        "Work",
        "Zeta",
    ] {
        let msgs: Vec<(Vec<u8>, &str)> = (0..60).map(|i| (message(folder, i), "S")).collect();
        env.seed_server(folder, &msgs);
    }
    let proxy = proxy(&env);
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let password = env.password.clone();
    let secret = PendingSecret::password(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new(password))
    });
    let a = account(&env, &proxy, 3, AccountSecret::Pending(secret));
    let r = sync(&env, &a);
    assert!(r.is_complete(), "{r:#?}");
    let t = r.traffic.as_ref().expect("traffic");
    assert_eq!(t.logins(), 3, "three logins: {t:#?}");
    assert_eq!(proxy.connection_count(), 3);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch for every login"
    );
}

/// A fetch that fails is the run's only error, in its own words, whatever else the run met
/// meanwhile (here: a server nobody listens on). A first run creates nothing; a later one
/// leaves the mirror and its state as they were, and sends nothing to the server.
#[test]
fn a_failed_fetch_is_the_runs_error_and_changes_nothing() {
    let env = Env::new();
    env.deliver("INBOX", &message("INBOX", 1));
    let proxy = proxy(&env);
    let failing = || {
        AccountSecret::Pending(PendingSecret::password(|| {
            Err(SecretError(
                "password_command (x) failed (exit status 7)".into(),
            ))
        }))
    };
    // First run: nothing exists yet, and nothing is created.
    let a = account(&env, &proxy, 1, failing());
    match mailfold_sync::sync_account(&a, &SyncOptions::default()) {
        Err(SyncError::Secret(e)) => {
            assert_eq!(e.to_string(), "password_command (x) failed (exit status 7)")
        }
        other => panic!("{other:?}"),
    }
    assert!(!a.maildir.exists() && !a.state_db.exists());
    assert_eq!(
        proxy.connection_count(),
        0,
        "a first run waits for the secret"
    );

    // A store in place: the run connects while the fetch runs, sends no credentials and
    // changes nothing.
    let ok = account(&env, &proxy, 1, env.account().secret);
    assert!(sync(&env, &ok).is_complete());
    env.deliver("INBOX", &message("INBOX", 2));
    let db_before = std::fs::read(&a.state_db).unwrap();
    let a = account(&env, &proxy, 1, failing());
    match mailfold_sync::sync_account(&a, &SyncOptions::default()) {
        Err(SyncError::Secret(e)) => {
            assert_eq!(e.to_string(), "password_command (x) failed (exit status 7)")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&a.state_db).unwrap(), db_before);
    // The next run that can log in finds the second message still to download.
    let r = sync(&env, &ok);
    assert_eq!(downloaded(&r), 1, "{r:#?}");

    // The server away as well: still the secret's failure, as when it was fetched first.
    let mut away = account(&env, &proxy, 1, failing());
    away.port = mailfold_testsupport::free_port("127.0.0.1".parse().unwrap());
    match mailfold_sync::sync_account(&away, &SyncOptions::default()) {
        Err(SyncError::Secret(_)) => {}
        other => panic!("{other:?}"),
    }
}
