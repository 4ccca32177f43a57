//! The tunnel transport: a command's stdin and stdout as the IMAP stream. A tunnel whose
//! server does not greet with PREAUTH is refused before anything is sent (no secret ever
//! crosses a tunnel), and dropping the session ends the command's whole process group.

use std::path::Path;
use std::time::Duration;

use mailfold_net::{ConnectConfig, Error, Session};
use mailfold_sasl::Credentials;

fn tunnel(script: &str) -> ConnectConfig {
    let mut c = ConnectConfig::new("tunnel");
    c.tunnel = Some(vec!["sh".into(), "-c".into(), script.into()]);
    c.connect_timeout = Duration::from_secs(10);
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_tunnel_without_preauth_is_refused_and_gets_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("received");
    let script = format!(
        "printf '* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\\r\\n'; cat > {}",
        got.display()
    );
    let creds = Credentials::password("alice", "hunter2-secret");
    let Err(err) = rt().block_on(Session::connect(&tunnel(&script), Some(&creds))) else {
        panic!("a tunnel without PREAUTH was accepted");
    };
    assert!(matches!(err, Error::Security(_)), "{err}");
    let sent = std::fs::read_to_string(&got).unwrap_or_default();
    assert!(
        !sent.contains("hunter2") && !sent.contains("LOGIN"),
        "{sent:?}"
    );
}

#[test]
fn dropping_a_tunnel_session_ends_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    // The command leaves a grandchild behind, as `ssh` or a shell pipeline may.
    let script = format!(
        "sleep 600 & echo $! > {}; echo starting >&2; \
         printf '* PREAUTH [CAPABILITY IMAP4rev1] ready\\r\\n'; \
         while read -r tag rest; do printf '%s OK done\\r\\n' \"$tag\"; done",
        pid_file.display()
    );
    let rt = rt();
    let s = rt
        .block_on(Session::connect(&tunnel(&script), None))
        .expect("a PREAUTH tunnel session");
    assert!(s.auth_info().preauth);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let proc_dir = format!("/proc/{pid}");
    assert!(Path::new(&proc_dir).exists());
    drop(s);
    drop(rt);
    // SIGTERM to the group: the grandchild goes too (waited for, never timed).
    let mut gone = false;
    for _ in 0..500 {
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        // A zombie (state Z) has ended already; only its parent's wait is missing.
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "the tunnel's child {pid} outlived the session");
}
