//! Exchanges against a real server implementation: Cyrus SASL's own mechanisms,
//! driven through its `sasl-sample-server` (Debian package `sasl2-bin`). This is the
//! real NTLM server the project has (Dovecot has no NTLM), and a second, independent
//! DIGEST-MD5 and SCRAM implementation.
//!
//! When `sasl-sample-server` or `saslpasswd2` is not installed the tests say so on stderr
//! and return (the published-vector tests cover the same code everywhere), except under CI
//! or `scripts/test` (MAILFOLD_REQUIRE_SASL2BIN), where they fail
//! (`mailfold_testsupport::require`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use mailfold_sasl::{
    filetime_from_unix, new_mechanism, ClientContext, Credentials, MechanismName, OsNonceSource,
};
use mailfold_testsupport::{find_program, require, Tool};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A private sasldb with `User@LOCALHOST` / `Password`, in a fresh temp dir; `None` when
/// sasl2-bin is missing and may be (`mailfold_testsupport::require` fails the test otherwise).
fn setup(test: &str) -> Option<(PathBuf, PathBuf)> {
    if !require(Tool::Sasl2Bin) {
        return None;
    }
    // require(Tool::Sasl2Bin) found both programs.
    let server = find_program("sasl-sample-server").expect("sasl-sample-server");
    let passwd = find_program("saslpasswd2").expect("saslpasswd2");
    let dir = std::env::temp_dir().join(format!("mailfold-sasl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("sasldb2");
    std::fs::write(
        dir.join("sample.conf"),
        format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\n",
            db.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(passwd)
        .arg("-f")
        .arg(&db)
        .args(["-a", "sample", "-u", "LOCALHOST", "-p", "User"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Password").unwrap();
    assert!(child.wait().unwrap().success());
    Some((server, dir))
}

/// Runs one exchange; `Ok` when the server reports success and the mechanism is
/// complete, `Err(transcript)` otherwise. `timeout` bounds the server's life, so a
/// stuck exchange ends in EOF rather than a hang.
fn exchange(
    server: &Path,
    conf_dir: &Path,
    mech: MechanismName,
    password: &str,
    ctx: &ClientContext,
) -> Result<(), String> {
    let mut child = Command::new("timeout")
        .arg("10")
        .arg("stdbuf")
        .arg("-oL")
        .arg(server)
        .args(["-s", "imap", "-m", mech.as_str(), "-u", "LOCALHOST"])
        .env("SASL_CONF_PATH", conf_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to_server = child.stdin.take().unwrap();
    let mut from_server = BufReader::new(child.stdout.take().unwrap());
    let creds = Credentials::password("User", password);
    let mut m = new_mechanism(mech, &creds, ctx, &mut OsNonceSource).unwrap();

    let mut transcript = String::new();
    let mut last_challenge = Vec::new();
    let mut line = String::new();
    let outcome = loop {
        line.clear();
        if from_server.read_line(&mut line).unwrap_or(0) == 0 {
            break Err("server ended".to_string());
        }
        transcript.push_str(&line);
        let l = line.trim_end();
        if let Some(data) = l.strip_prefix("S: ") {
            last_challenge = B64.decode(data).unwrap_or_default();
        } else if l.starts_with("Waiting for client mechanism") {
            // The sample protocol: mechanism name, NUL, optional initial response.
            let mut first = mech.as_str().as_bytes().to_vec();
            if let Some(ir) = m.initial_response().unwrap() {
                first.push(0);
                first.extend_from_slice(ir.expose());
            }
            writeln!(to_server, "C: {}", B64.encode(&first)).unwrap();
        } else if l.starts_with("Waiting for client reply") {
            match m.step(&last_challenge) {
                Ok(r) => writeln!(to_server, "C: {}", B64.encode(r.expose())).unwrap(),
                Err(e) => break Err(format!("client refused: {e}")),
            }
        } else if l.contains("Negotiation complete") {
            break if m.is_complete() {
                Ok(())
            } else {
                Err("server done but mechanism incomplete".into())
            };
        }
    };
    drop(to_server);
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|why| format!("{why}\n{transcript}"))
}

fn context() -> ClientContext {
    ClientContext::imap("localhost", 143).with_filetime(filetime_from_unix(1_700_000_000))
}

#[test]
fn e0001_ntlm_v2_against_cyrus_sasl() {
    let Some((server, dir)) = setup("ntlm") else {
        return;
    };
    exchange(&server, &dir, MechanismName::Ntlm, "Password", &context()).unwrap();
    let mut with_domain = context();
    with_domain.ntlm_domain = Some("LOCALHOST".into());
    exchange(&server, &dir, MechanismName::Ntlm, "Password", &with_domain).unwrap();
    assert!(exchange(&server, &dir, MechanismName::Ntlm, "wrong", &context()).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn e0001_digest_md5_against_cyrus_sasl() {
    let Some((server, dir)) = setup("digest") else {
        return;
    };
    // Success includes checking Cyrus's rspauth.
    exchange(
        &server,
        &dir,
        MechanismName::DigestMd5,
        "Password",
        &context(),
    )
    .unwrap();
    assert!(exchange(&server, &dir, MechanismName::DigestMd5, "wrong", &context()).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn e0002_scram_and_others_against_cyrus_sasl() {
    let Some((server, dir)) = setup("scram") else {
        return;
    };
    for mech in [
        MechanismName::ScramSha256,
        MechanismName::ScramSha1,
        MechanismName::CramMd5,
        MechanismName::Plain,
    ] {
        exchange(&server, &dir, mech, "Password", &context())
            .unwrap_or_else(|e| panic!("{mech}: {e}"));
    }
    assert!(exchange(
        &server,
        &dir,
        MechanismName::ScramSha256,
        "wrong",
        &context()
    )
    .is_err());
    let _ = std::fs::remove_dir_all(dir);
}
