//! The per-account lock on the real binary: while another process holds an account (here
//! the test itself, through the library, as a running sync would), commands that change the
//! mirror and `sync` refuse with exit status 4 and say who holds it; `--wait` waits for it;
//! reading commands are not held up.

mod util;

use std::process::Command;
use std::time::{Duration, Instant};

use mailfold::lock::AccountLock;
use util::Home;

/// A home whose account points at a port nobody listens on: only offline work can succeed.
fn home() -> Home {
    let home = Home::new();
    let port = mailfold_testsupport::free_port("127.0.0.1".parse().unwrap());
    home.write_config("127.0.0.1", port, "implicit", "pw", None, "");
    home
}

#[test]
fn a_busy_account_is_refused_with_the_holders_pid_and_waited_for_with_wait() {
    let home = home();
    home.run(&["--offline", "create-folder", "Before"]).ok();
    let state = home.path().join("state.sqlite");
    let held = AccountLock::acquire("t", &state, "sync", false).unwrap();

    let pid = std::process::id();
    for args in [
        &["--offline", "create-folder", "Projects"][..],
        &["sync"][..],
        &["--offline", "rename-folder", "Before", "After"][..],
    ] {
        let r = home.run(args);
        assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "account t is busy: `mailfold sync` is running (pid {pid})"
            )) && r.stderr.contains("--wait"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let j = home.run(&["--json", "sync"]);
    assert_eq!(j.code, 4);
    let doc = j.json();
    assert_eq!(doc["accounts"][0]["complete"], false, "{doc}");
    assert!(
        doc["accounts"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("busy")),
        "{doc}"
    );
    assert!(!home.maildir().join(".Projects").exists());

    // Readers are not held up.
    home.run(&["--json", "folders", "--local"]).ok();

    // --wait: the change runs as soon as the holder lets go.
    let child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(home.config())
        .args(["--wait", "--offline", "create-folder", "Projects"])
        .env("HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let released = Instant::now();
    drop(held);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("account t is busy") && stderr.contains("waiting"),
        "{stderr}"
    );
    assert!(released.elapsed() < Duration::from_secs(30));
    let folders = home.run(&["--json", "folders", "--local"]).ok().json();
    assert!(
        folders["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Projects"),
        "{folders}"
    );

    // The lock is released when a command ends, and can be taken again.
    drop(AccountLock::acquire("t", &state, "sync", false).unwrap());
}
