//! Seed E0001 on the wire: a real NTLM exchange between mailfold and Cyrus SASL's NTLM
//! plugin, recorded by a loopback relay and decoded per MS-NLMP 2.2.1, to show that it is
//! the exchange it claims to be: NEGOTIATE as SASL initial response, a CHALLENGE naming the
//! target `LOCALHOST`, and an AUTHENTICATE carrying an NTLMv2 response (longer than the
//! 24 bytes of NTLMv1) for `user1`, an LMv2 (not LMv1) response, and the password nowhere.
//!
//! NTLM never sends the password, so the policy allows it on a cleartext connection, which
//! is what makes the exchange readable here (over TLS it is the same exchange).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailfold_net::{ConnectConfig, Security, Session};
use mailfold_sasl::{Credentials, MechanismName, Policy};
use mailfold_testsupport::Cyrus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Both directions of one relayed connection, as received.
#[derive(Default)]
struct Recording {
    client: Vec<u8>,
    server: Vec<u8>,
}

/// Relays one connection from a fresh loopback port to `upstream`, recording both sides.
async fn relay(upstream: std::net::SocketAddr) -> (u16, Arc<Mutex<Recording>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = Arc::new(Mutex::new(Recording::default()));
    let rec2 = rec.clone();
    tokio::spawn(async move {
        let Ok((down, _)) = listener.accept().await else {
            return;
        };
        let Ok(up) = TcpStream::connect(upstream).await else {
            return;
        };
        let (mut dr, mut dw) = down.into_split();
        let (mut ur, mut uw) = up.into_split();
        let r1 = rec2.clone();
        let to_server = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = dr.read(&mut buf).await {
                if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                r1.lock().unwrap().client.extend_from_slice(&buf[..n]);
            }
            let _ = uw.shutdown().await;
        });
        let mut buf = [0u8; 8192];
        while let Ok(n) = ur.read(&mut buf).await {
            if n == 0 || dw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            rec2.lock().unwrap().server.extend_from_slice(&buf[..n]);
        }
        let _ = dw.shutdown().await;
        let _ = to_server.await;
    });
    (port, rec)
}

fn u16_at(m: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([m[at], m[at + 1]]))
}

fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])
}

/// The payload of the security-buffer field at `at` (MS-NLMP 2.2.1: length, max length,
/// offset).
fn field(m: &[u8], at: usize) -> &[u8] {
    let len = u16_at(m, at);
    let off = u32_at(m, at + 4) as usize;
    &m[off..off + len]
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Standard base64 (RFC 4648 section 4) as IMAP carries SASL data; a test helper, since
/// this crate has no base64 dependency of its own.
fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| format!("not base64: {c:?}"))?;
        acc = ((acc << 6) | v as u32) & 0xFFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn ntlm_message(line: &str, kind: u32) -> Vec<u8> {
    let m = b64_decode(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(&m[..8], b"NTLMSSP\0", "{line}");
    assert_eq!(u32_at(&m, 8), kind, "{line}");
    m
}

#[tokio::test]
async fn e0001_ntlmv2_exchange_on_the_wire() {
    mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Cyrus);
    let c = Cyrus::start();
    let (port, rec) = relay(c.imap_addr()).await;
    let mut cfg = ConnectConfig::new("127.0.0.1");
    cfg.port = Some(port);
    cfg.security = Security::Plaintext;
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.engine.command_timeout = Duration::from_secs(20);
    cfg.auth_policy = Policy {
        order: Some(vec![MechanismName::Ntlm]),
        ..Policy::password()
    };
    let user = c.user(0);
    let creds = Credentials::password(user.name.clone(), user.password.clone());
    let mut s = Session::connect(&cfg, Some(&creds)).await.unwrap();
    s.noop().await.unwrap();
    s.logout().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let rec = rec.lock().unwrap();
    let client = String::from_utf8_lossy(&rec.client).into_owned();
    let server = String::from_utf8_lossy(&rec.server).into_owned();
    eprintln!("--- client sent ---\n{client}--- server sent ---\n{server}");
    assert!(
        !client.contains(&user.password),
        "the password crossed the wire"
    );

    // NEGOTIATE: the SASL initial response (Cyrus offers SASL-IR).
    let auth_line = client
        .lines()
        .find(|l| l.contains(" AUTHENTICATE NTLM"))
        .unwrap_or_else(|| panic!("{client}"));
    let negotiate = auth_line.rsplit(' ').next().unwrap();
    ntlm_message(negotiate, 1);

    // CHALLENGE: target name LOCALHOST (the instance's servername, upper-cased).
    let challenge_line = server
        .lines()
        .find(|l| l.starts_with("+ "))
        .unwrap_or_else(|| panic!("{server}"));
    let challenge = ntlm_message(&challenge_line[2..], 2);
    let target = field(&challenge, 12);
    assert!(
        target == utf16("LOCALHOST").as_slice() || target == b"LOCALHOST",
        "target {target:?}"
    );

    // AUTHENTICATE: the line after the AUTHENTICATE command.
    let mut lines = client
        .lines()
        .skip_while(|l| !l.contains(" AUTHENTICATE NTLM"));
    lines.next();
    let authenticate = ntlm_message(lines.next().expect("AUTHENTICATE message"), 3);
    let lm = field(&authenticate, 12);
    let nt = field(&authenticate, 20);
    let name = field(&authenticate, 36);
    assert!(
        nt.len() > 24,
        "NTLMv2 response expected, got {} bytes",
        nt.len()
    );
    // NTLMv2_CLIENT_CHALLENGE (MS-NLMP 2.2.2.7) after the 16-byte proof: RespType 1,
    // HiRespType 1.
    assert_eq!(&nt[16..18], &[1, 1]);
    // No LMv1 (DES of the password, crackable): the LM field is either empty, all zero
    // (MS-NLMP 3.1.5.1.2 with a server timestamp) or LMv2, whose last 8 bytes are the
    // client challenge also found in the NTLMv2 blob (after proof 16, types 2, reserved 6,
    // timestamp 8).
    assert!(
        lm.is_empty() || lm.iter().all(|&b| b == 0) || (lm.len() == 24 && lm[16..] == nt[32..40]),
        "not an LMv2 response: {lm:?}"
    );
    assert_eq!(name, utf16(&user.name).as_slice());

    // And the server accepted it.
    let tagged_ok = server.lines().any(|l| {
        let mut parts = l.split(' ');
        let tag = parts.next().unwrap_or_default();
        auth_line.starts_with(&format!("{tag} ")) && parts.next() == Some("OK")
    });
    assert!(tagged_ok, "{server}");
}
