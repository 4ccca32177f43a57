//! Progress bars of `mailfold sync`: drawn on a terminal, cleared before the
//! summary, and absent — not a byte of them — when the output is not a terminal, with
//! `--json`, or with `-q`. The renderer's state machine has its own unit tests
//! (`mailfold::progress`).

mod util;

use std::process::Command;

use util::{plain, Env};

fn env_with_mail(n: usize) -> Env {
    let env = Env::new();
    for i in 0..n {
        env.deliver(
            "INBOX",
            &plain("a@example.org", &format!("message {i}"), &"x".repeat(2000)),
        );
    }
    env
}

#[test]
fn not_a_terminal_means_no_progress_output_at_all() {
    let env = env_with_mail(5);
    let r = env.run(&["sync"]).ok();
    // stderr carries nothing on a clean run, and stdout is the plain report.
    assert_eq!(r.stderr, "", "stderr: {:?}", r.stderr);
    assert!(
        !r.stdout.contains('\x1b') && !r.stdout.contains('\r'),
        "control characters on stdout: {:?}",
        r.stdout
    );
    assert!(r.stdout.starts_with("account t: synced\n"), "{}", r.stdout);
    assert!(r.stdout.contains("INBOX: 5 downloaded"), "{}", r.stdout);

    // --json: one JSON document, nothing else on either stream.
    env.deliver("INBOX", &plain("b@example.org", "one more", "y"));
    let r = env.run(&["--json", "sync"]).ok();
    assert_eq!(r.stderr, "");
    assert_eq!(r.json()["accounts"][0]["complete"], true);
}

/// Runs `mailfold ARGS` under a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed; `None` where `script` is missing.
fn on_terminal(env: &Env, args: &str) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_mailfold");
    let cmd = format!("{bin} --config {} {args}", env.home.config().display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", env.home.path())
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .env_remove("MAILFOLD_CONFIG")
        .output()
        .ok()?;
    assert!(out.status.success(), "{out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_terminal_shows_bars_that_are_gone_before_the_summary() {
    let env = env_with_mail(100);
    let Some(screen) = on_terminal(&env, "sync") else {
        eprintln!("no `script` on this machine: the terminal half is not checked");
        return;
    };
    let summary = screen
        .find("account t: synced")
        .unwrap_or_else(|| panic!("no summary in {screen:?}"));
    let bar = screen
        .find("syncing t")
        .unwrap_or_else(|| panic!("no progress line in {screen:?}"));
    assert!(bar < summary, "{screen:?}");
    // A folder's own bar is drawn only if it lives past the redraw interval (20 per second),
    // which a loopback sync of small messages may not: its state machine is unit-tested.
    // Everything after the summary began is the plain report: the bars were cleared first.
    assert!(
        !screen[summary..].contains("syncing"),
        "a bar was drawn after the summary: {screen:?}"
    );

    // -q on a terminal: the report only.
    env.deliver("INBOX", &plain("b@example.org", "one more", "y"));
    let screen = on_terminal(&env, "-q sync").unwrap_or_default();
    assert!(screen.contains("account t: synced"), "{screen:?}");
    assert!(!screen.contains("syncing"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
}
