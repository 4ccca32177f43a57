//! A server that answers one byte per second, end to end: the real `mailfold sync`
//! against a scripted server that logs the client in and then trickles. The binary gives up
//! with a clear timeout error in bounded time, whichever way the server trickles.
//!
//! The runs shorten the network time limits with the account's own configuration keys
//! (`command_timeout = 3`, `command_budget = 6`, see [`LIMITS`]) instead of the defaults' 60 s
//! and 2 minutes, so the test also proves that the keys reach the engine: with the defaults
//! neither run could end within its bound.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfold_testsupport::{Script, ScriptedServer};
use util::Home;

/// The account's time limits for the runs (see the module docs). `min_rate` is the default
/// rate, set explicitly so that the key's path is exercised too.
const LIMITS: &str = "connect_timeout = 5\ncommand_timeout = 3\ncommand_budget = 6\n\
                      min_rate = 16384\n";

struct Finished {
    code: Option<i32>,
    said: String,
    elapsed: Duration,
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
        &format!("allow_plaintext_password = true\n{LIMITS}"),
    );
    home
}

/// Runs `mailfold sync`, killing it (and failing) past `limit`.
fn run_sync(home: &Home, limit: Duration) -> Finished {
    let out = home.path().join("stdout.txt");
    let err = home.path().join("stderr.txt");
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(home.config())
        .arg("sync")
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("xdg-state"))
        .env("XDG_CONFIG_HOME", home.path().join("xdg-config"))
        .env_remove("MAILFOLD_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mailfold sync still running after {limit:?} against a trickling server\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        code: status.code(),
        said: format!(
            "{}\n{}",
            std::fs::read_to_string(&out).unwrap_or_default(),
            std::fs::read_to_string(&err).unwrap_or_default()
        ),
        elapsed: t0.elapsed(),
    }
}

/// Greeting and LOGIN; then whatever the client asks next is answered by `trickle`.
fn logged_in() -> Script {
    Script::new()
        .step_timeout(Duration::from_secs(20))
        .send_line("* OK [CAPABILITY IMAP4rev1] slow server ready")
        .expect("LOGIN *")
        .send_tagged("OK [CAPABILITY IMAP4rev1] logged in")
        .expect("*")
}

/// One byte per second of a line that never ends, after login: the bytes keep coming, so
/// silence never fires, but the unfinished response is a stall after the configured 3 s
/// `command_timeout`. The run fails with a timeout error in seconds, not never.
#[test]
fn sync_gives_up_on_one_byte_per_second_after_login() {
    let server = ScriptedServer::start(logged_in().trickle(
        "* OK I answer one byte per second and I never finish my line ".repeat(20),
        Duration::from_secs(1),
    ));
    let home = home_for(&server);
    let f = run_sync(&home, Duration::from_secs(30));
    println!(
        "RELIABILITY one byte per second after login: gave up after {:?} (exit {:?})",
        f.elapsed, f.code
    );
    assert!(
        f.code.is_some_and(|c| c != 0),
        "exit {:?}: {}",
        f.code,
        f.said
    );
    assert!(f.said.contains("timed out"), "{}", f.said);
    assert!(f.said.contains("has not finished"), "{}", f.said);
    // Not before the configured limit, and long before the default's 60 s.
    assert!(f.elapsed >= Duration::from_secs(3), "{:?}", f.elapsed);
    assert!(f.elapsed < Duration::from_secs(10), "{:?}", f.elapsed);
    assert!(server.received_contains(b"LOGIN"), "never got past login");
}

/// Whole keepalive lines twice a second, for ever, in answer to the first command after
/// login: not errors, but they earn nothing, so the command's configured 6 s
/// `command_budget` runs out.
#[test]
fn sync_gives_up_on_endless_keepalives_after_login() {
    let mut script = logged_in();
    for _ in 0..60 {
        script = script.send_after(Duration::from_millis(500), "* OK still here\r\n");
    }
    let server = ScriptedServer::start(script);
    let home = home_for(&server);
    let f = run_sync(&home, Duration::from_secs(30));
    println!(
        "RELIABILITY endless keepalives after login: gave up after {:?} (exit {:?})",
        f.elapsed, f.code
    );
    assert!(
        f.code.is_some_and(|c| c != 0),
        "exit {:?}: {}",
        f.code,
        f.said
    );
    assert!(f.said.contains("timed out"), "{}", f.said);
    assert!(f.said.contains("time budget"), "{}", f.said);
    assert!(f.elapsed >= Duration::from_secs(5), "{:?}", f.elapsed);
    assert!(f.elapsed < Duration::from_secs(12), "{:?}", f.elapsed);
}
