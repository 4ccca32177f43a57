//! Hostile servers and helper programs around the credentials, against the real binary:
//!
//! - a server that echoes what it received (the password, the base64 PLAIN blob, a bearer
//!   token inside XOAUTH2 or OAUTHBEARER) in its NO, in an ALERT or a BYE: none of it may
//!   reach the terminal, a `--json` document or a log line;
//! - a wrong password: one authentication attempt, exit status 3, a message that says the
//!   server refused the credentials and where they came from; another mechanism only when the
//!   server refused the mechanism itself (real Dovecot with every mechanism, and scripts);
//! - a `password_command` that lingers, fails or prints nothing;
//! - a `password_command` that runs while the sync connects, once per run.

mod util;

use std::path::Path;
use std::time::Duration;

use mailfold_testsupport::{
    CertKind, Dovecot, Fault, FaultPlan, FaultProxy, Script, ScriptedServer,
};
use util::{Home, Run};

/// Contains a quote and a backslash, so the LOGIN command sends it escaped.
const PASSWORD: &str = "Zq9\"echo\\secret-4711";

/// A small local base64 encoder: the test must not trust the code under test to find the
/// secret's encodings.
fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs of 8 characters taken from the base64 of `prefix + secret` for every alignment: any
/// of them in the output would leak 48 bits of the secret.
fn leaks(secret: &str) -> Vec<String> {
    let mut out = vec![
        secret.to_string(),
        secret.replace('\\', "\\\\").replace('"', "\\\""),
    ];
    for k in 0..3 {
        let mut data = vec![b'x'; k];
        data.extend_from_slice(secret.as_bytes());
        let enc = b64(&data);
        let first = (8 * k).div_ceil(6);
        let end = 8 * (k + secret.len()) / 6;
        let core = &enc[first..end];
        for i in 0..core.len().saturating_sub(8) {
            out.push(core[i..i + 8].to_string());
        }
    }
    out
}

fn assert_no_leak(what: &str, r: &Run, secret: &str) {
    let all = format!("{}\n{}", r.stdout, r.stderr);
    for needle in leaks(secret) {
        assert!(
            !all.contains(&needle),
            "{what}: the output shows {needle:?} of the secret:\n{all}"
        );
    }
}

fn home_for(server: &ScriptedServer, password: &str, extra: &str) -> Home {
    let home = Home::new();
    home.write_config(
        "127.0.0.1",
        server.port(),
        "implicit",
        password,
        Some(&server.ca_file()),
        extra,
    );
    home
}

/// Every way out a run has: the human error line, `--json`, and the logs at `-vvv`.
const RUNS: &[&[&str]] = &[
    &["sync"],
    &["--json", "sync"],
    &["-vvv", "sync"],
    &["probe"],
    &["--json", "probe"],
    &["-vvv", "probe"],
];

fn echo_script(caps: &str, expect: &str, untagged: &str, tagged: &str) -> Script {
    Script::new()
        .start_tls(CertKind::Valid)
        .send_line(&format!("* OK [CAPABILITY IMAP4rev1 {caps}] hostile"))
        .expect(expect)
        .send(untagged)
        .send_tagged(tagged)
        .wait(Duration::from_millis(200))
        .close()
        .step_timeout(Duration::from_secs(5))
}

#[test]
fn a_password_echoed_by_the_server_is_never_printed() {
    let plain = b64(format!("\0user1\0{PASSWORD}").as_bytes());
    let cases = [
        (
            "raw in the NO",
            "AUTH=PLAIN SASL-IR",
            "AUTHENTICATE PLAIN *",
            String::new(),
            format!("NO [AUTHENTICATIONFAILED] wrong: {PASSWORD}"),
        ),
        (
            "PLAIN blob in an ALERT, a BYE and the NO",
            "AUTH=PLAIN SASL-IR",
            "AUTHENTICATE PLAIN *",
            format!("* OK [ALERT] you sent {plain}\r\n* BYE {plain}\r\n"),
            format!("NO [AUTHENTICATIONFAILED] you sent {plain} ({PASSWORD})"),
        ),
        (
            "LOGIN command, quoted",
            "",
            "LOGIN *",
            String::new(),
            format!(
                "NO [AUTHENTICATIONFAILED] LOGIN user1 \"{}\" refused",
                PASSWORD.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        ),
        (
            "base64 of the password alone (SASL LOGIN), and inside a longer text",
            "AUTH=PLAIN SASL-IR",
            "AUTHENTICATE PLAIN *",
            String::new(),
            format!(
                "NO [AUTHENTICATIONFAILED] {} and {}",
                b64(PASSWORD.as_bytes()),
                b64(format!("ab{PASSWORD}cd").as_bytes())
            ),
        ),
    ];
    for (what, caps, expect, untagged, tagged) in cases {
        let server = ScriptedServer::start(echo_script(caps, expect, &untagged, &tagged));
        let home = home_for(&server, PASSWORD, "");
        for args in RUNS {
            let r = home.run(args);
            eprintln!(
                "--- {what} {args:?} (exit {}):\n{}{}",
                r.code, r.stdout, r.stderr
            );
            assert_ne!(r.code, 0, "{what} {args:?}");
            assert!(
                !r.stderr.contains("panicked"),
                "{what} {args:?}: {}",
                r.stderr
            );
            assert_no_leak(&format!("{what} {args:?}"), &r, PASSWORD);
            if args.contains(&"--json") {
                r.json();
            }
        }
        // The script did reach its echo: the client sent the credentials.
        assert!(
            server.received_contains(b"AUTHENTICATE") || server.received_contains(b"LOGIN"),
            "{what}: no login was attempted"
        );
    }
}

#[test]
fn a_bearer_token_echoed_inside_xoauth2_or_oauthbearer_is_never_printed() {
    const TOKEN: &str = "ya29.a0-T0ken_for/mailfold+4711";
    let xoauth2 = b64(format!("user=user1\x01auth=Bearer {TOKEN}\x01\x01").as_bytes());
    let server = ScriptedServer::start(echo_script(
        "AUTH=XOAUTH2 AUTH=OAUTHBEARER SASL-IR",
        "AUTHENTICATE *",
        &format!("* OK [ALERT] {xoauth2}\r\n"),
        &format!("NO [AUTHENTICATIONFAILED] {xoauth2} {}", {
            let port = 4711;
            b64(format!(
                "n,a=user1,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {TOKEN}\x01\x01"
            )
            .as_bytes())
        }),
    ));
    let home = home_for(&server, "unused", "");
    let token_file = home.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = std::fs::read_to_string(home.config()).unwrap().replace(
        &format!(
            "password_command = [\"cat\", {:?}]",
            home.path().join("password").display().to_string()
        ),
        &format!(
            "oauth_token_command = [\"cat\", {:?}]",
            token_file.display().to_string()
        ),
    );
    assert!(config.contains("oauth_token_command"), "{config}");
    std::fs::write(home.config(), config).unwrap();
    for args in RUNS {
        let r = home.run(args);
        eprintln!("--- {args:?} (exit {}):\n{}{}", r.code, r.stdout, r.stderr);
        assert_ne!(r.code, 0, "{args:?}");
        assert_no_leak(&format!("{args:?}"), &r, TOKEN);
    }
    assert!(server.received_contains(b"AUTHENTICATE"));
}

/// Dovecot's `imap-login` reports on disconnect how many logins a connection failed (`auth
/// failed, N attempts in S secs`): the server's own count of what the client tried.
fn failed_attempts_in_log(d: &Dovecot) -> Vec<u32> {
    d.log()
        .lines()
        .filter_map(|l| {
            let rest = l.split_once("auth failed, ")?.1;
            rest.split_once(" attempt")?.0.trim().parse().ok()
        })
        .collect()
}

#[test]
fn a_wrong_password_costs_one_login_on_dovecot_offering_every_mechanism() {
    let env = util::Env::new();
    let addr = env.dovecot.imaps_addr();
    env.home.write_config(
        &addr.ip().to_string(),
        addr.port(),
        "implicit",
        "wrong-password-4711",
        Some(&env.dovecot.ca_file()),
        "",
    );
    for args in [&["sync"][..], &["probe"][..], &["--json", "sync"][..]] {
        let r = env.run(args);
        eprintln!("--- {args:?} (exit {}):\n{}{}", r.code, r.stdout, r.stderr);
        assert_eq!(r.code, 3, "{args:?}: a refused login is a server error");
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains("refused the credentials") && all.contains("password_command"),
            "{args:?}: the message must say the credentials were refused and where they came \
             from:\n{all}"
        );
    }
    // The server saw one failed attempt per connection, never one per mechanism.
    let mut counts = Vec::new();
    for _ in 0..100 {
        counts = failed_attempts_in_log(&env.dovecot);
        if counts.len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts, [1, 1, 1], "Dovecot's log:\n{}", env.dovecot.log());
}

/// Replaces the account's `password_command` with `command` (a TOML value).
fn set_password_command(home: &Home, command: &str) {
    let old = format!(
        "password_command = [\"cat\", {:?}]",
        home.path().join("password").display().to_string()
    );
    let config = std::fs::read_to_string(home.config()).unwrap();
    assert!(config.contains(&old), "{config}");
    std::fs::write(
        home.config(),
        config.replace(&old, &format!("password_command = {command}")),
    )
    .unwrap();
}

/// Whether process `pid` still runs (a zombie waiting for its parent to reap it does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_password_command_that_lingers_after_its_line_is_ended_with_everything_it_started() {
    let env = util::Env::new();
    let pw = env.dovecot.user(0).password.clone();
    let dir = env.home.path().to_path_buf();
    // In the foreground (the shell waits for it) and in the background (it holds the pipe
    // open after the shell has exited): both must be gone when mailfold is done.
    let cases = [
        (
            "foreground",
            format!(
                "echo '{pw}'; sleep 1000 & echo $! > '{}/child'; wait",
                dir.display()
            ),
        ),
        (
            "background",
            format!(
                "echo '{pw}'; sleep 1000 & echo $! > '{}/child'",
                dir.display()
            ),
        ),
    ];
    for (what, command) in cases {
        env.reachable(true);
        set_password_command(&env.home, &format!("{command:?}"));
        for args in [&["sync"][..], &["probe"][..]] {
            let _ = std::fs::remove_file(dir.join("child"));
            let r = env.run(args);
            assert_eq!(r.code, 0, "{what} {args:?}:\n{}{}", r.stdout, r.stderr);
            let child = read_pid(&dir.join("child"));
            assert!(
                !alive(child),
                "{what} {args:?}: the password_command's child {child} outlived mailfold"
            );
        }
    }
}

#[test]
fn a_failing_or_empty_password_command_is_one_clear_line_and_exit_3() {
    let server = ScriptedServer::start(Script::new().close());
    let home = home_for(&server, "unused", "");
    for (command, says) in [
        (
            "\"exit 7\"",
            "password_command (exit) failed (exit status 7)",
        ),
        ("\"echo hunter2-oops; exit 1\"", "failed (exit status 1)"),
        ("\"true\"", "password_command (true) printed nothing"),
        (
            "[\"printf\", \"\\\\n\"]",
            "password_command (printf) printed nothing",
        ),
        (
            "[\"/nonexistent/helper\"]",
            "password_command (/nonexistent/helper) cannot be run",
        ),
    ] {
        set_password_command_any(&home, command);
        for args in [&["sync"][..], &["probe"][..], &["folders", "--server"][..]] {
            let r = home.run(args);
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(r.code, 3, "{command} {args:?}: {}", r.stderr);
            assert_eq!(
                lines.len(),
                1,
                "{command} {args:?}: one line:\n{}",
                r.stderr
            );
            assert!(lines[0].contains(says), "{command} {args:?}: {}", lines[0]);
            assert!(
                lines[0].matches("account t").count() == 1,
                "{command} {args:?}: name the account once: {}",
                lines[0]
            );
            assert!(!lines[0].contains("hunter2-oops"), "{}", lines[0]);
        }
        let r = home.run(&["--json", "sync"]);
        assert_eq!(r.code, 3, "{command}: {}", r.stderr);
        let doc = r.json();
        let error = doc["accounts"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{command}: {doc}");
    }
    assert_eq!(
        server.connection_count(),
        0,
        "no server without credentials"
    );
}

/// Replaces whatever `password_command` line the config has.
fn set_password_command_any(home: &Home, command: &str) {
    let config = std::fs::read_to_string(home.config()).unwrap();
    let config: Vec<String> = config
        .lines()
        .map(|l| {
            if l.starts_with("password_command = ") {
                format!("password_command = {command}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(home.config(), config.join("\n") + "\n").unwrap();
}

/// The sync starts the password command and connects meanwhile: the command prints the
/// password only once a proxy in front of Dovecot has accepted the sync's connection (the
/// proxy creates a marker file). Had the command run before the connection, as it once did,
/// it would wait for a connection that never comes and fail at its own guard (exit status
/// 9); the sync succeeds, and the command ran once.
#[test]
fn a_password_command_runs_while_the_sync_connects() {
    let env = util::Env::new();
    // A first sync makes the mirror and its state (a first run waits for the command
    // before creating them, so this one is not the run under test).
    env.run(&["sync"]).ok();
    let dir = env.home.path().to_path_buf();
    let marker = dir.join("accepted");
    let proxy = FaultProxy::start_marking(
        env.dovecot.imaps_addr(),
        FaultPlan::Always(Fault::None),
        Some(marker.clone()),
    );
    let pw = env.dovecot.user(0).password.clone();
    env.home.write_config(
        "127.0.0.1",
        proxy.addr().port(),
        "implicit",
        &pw,
        Some(&env.dovecot.ca_file()),
        "",
    );
    let script = format!(
        "echo run >> '{runs}'; i=0; until [ -e '{marker}' ]; do i=$((i+1)); \
         [ $i -gt 600 ] && exit 9; sleep 0.05; done; cat '{pw}'",
        runs = dir.join("runs").display(),
        marker = marker.display(),
        pw = dir.join("password").display(),
    );
    set_password_command(&env.home, &format!("{script:?}"));
    env.deliver(
        "INBOX",
        &util::plain("a@example.org", "while connecting", "x"),
    );
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 downloaded"), "{}", r.stdout);
    assert_eq!(proxy.connection_count(), 1);
    let runs = std::fs::read_to_string(dir.join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the command ran once");

    // With the mirror in place, a failing command is still the run's one line and exit 3,
    // though the sync may have connected meanwhile; the state is left as it was.
    let state = env.home.path().join("state.sqlite");
    let before = std::fs::read(&state).unwrap();
    set_password_command_any(&env.home, "\"exit 7\"");
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        ["mailfold: account t: password_command (exit) failed (exit status 7)"],
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the state is unchanged"
    );
}
