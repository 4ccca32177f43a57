//! Security checks: the ClientHello mailfold sends offers TLS 1.2+ and modern
//! suites only (seeds N7, V0073, V0074), parsed from the bytes on the wire; secrets never reach
//! the logs at any level; `dangerously_accept_invalid_certs` warns on every connection.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailfold_net::{ConnectConfig, Security, SelectOptions, Session, TrustSource};
use mailfold_proto::core::Mailbox;
use mailfold_sasl::{Credentials, MechanismName, Policy};
use mailfold_testsupport::{CertKind, Dovecot, Script, ScriptedServer};

// ----- the ClientHello -----

/// The parts of a ClientHello the checks need.
struct ClientHello {
    legacy_version: u16,
    suites: Vec<u16>,
    supported_versions: Option<Vec<u16>>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Parses the first TLS record (RFC 8446 4.1.2 / RFC 5246 7.4.1.2 layout).
fn parse_client_hello(rec: &[u8]) -> ClientHello {
    assert_eq!(rec[0], 0x16, "not a handshake record");
    let len = usize::from(u16_at(rec, 3));
    let hs = &rec[5..5 + len];
    assert_eq!(hs[0], 1, "not a ClientHello");
    let body_len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
    let body = &hs[4..4 + body_len];
    let legacy_version = u16_at(body, 0);
    let mut p = 2 + 32; // version, random
    p += 1 + usize::from(body[p]); // legacy_session_id
    let cs_len = usize::from(u16_at(body, p));
    let suites = body[p + 2..p + 2 + cs_len]
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    p += 2 + cs_len;
    p += 1 + usize::from(body[p]); // compression methods
    let mut supported_versions = None;
    if p < body.len() {
        let ext_end = p + 2 + usize::from(u16_at(body, p));
        p += 2;
        while p + 4 <= ext_end {
            let ty = u16_at(body, p);
            let n = usize::from(u16_at(body, p + 2));
            let data = &body[p + 4..p + 4 + n];
            if ty == 0x002b {
                supported_versions = Some(
                    data[1..1 + usize::from(data[0])]
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                );
            }
            p += 4 + n;
        }
    }
    ClientHello {
        legacy_version,
        suites,
        supported_versions,
    }
}

/// Connects mailfold (implicit TLS) to a listener that only records the first TLS record.
async fn captured_client_hello() -> ClientHello {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = [0u8; 5];
        sock.read_exact(&mut head).unwrap();
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut rec = head.to_vec();
        rec.resize(5 + len, 0);
        sock.read_exact(&mut rec[5..]).unwrap();
        // A fatal handshake_failure alert: the client gives up at once.
        let _ = sock.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        rec
    });
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(port);
    c.connect_timeout = Duration::from_secs(5);
    let r = Session::open(&c).await;
    assert!(r.is_err(), "the fake server never completes a handshake");
    parse_client_hello(&reader.join().unwrap())
}

/// The suites a modern client may offer: the TLS 1.3 AEAD suites, ECDHE with AES-GCM or
/// ChaCha20-Poly1305 for TLS 1.2, and the renegotiation-info SCSV (RFC 5746).
const MODERN: [u16; 10] = [
    0x1301, 0x1302, 0x1303, // TLS13_AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305
    0xc02b, 0xc02c, // ECDHE_ECDSA AES_128_GCM / AES_256_GCM
    0xc02f, 0xc030, // ECDHE_RSA AES_128_GCM / AES_256_GCM
    0xcca8, 0xcca9, // ECDHE_RSA / ECDHE_ECDSA CHACHA20_POLY1305
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
];

/// Named legacy suites that must never be offered, with their IANA code points.
const FORBIDDEN: [(u16, &str); 24] = [
    (0x0000, "TLS_NULL_WITH_NULL_NULL"),
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x003b, "TLS_RSA_WITH_NULL_SHA256"),
    (0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    (0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x006c, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"),
    (0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x001b, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"),
];

/// Seed N7 (RFC 7465): TLS 1.2 or 1.3 only, and no RC4, export, NULL, anonymous or 3DES
/// suite in what goes on the wire.
#[tokio::test]
async fn n7_client_hello_offers_tls12_plus_and_modern_suites_only() {
    let hello = captured_client_hello().await;
    // TLS 1.3 clients put 1.2 in legacy_version and the real list in supported_versions.
    assert_eq!(hello.legacy_version, 0x0303, "legacy_version");
    let versions = hello.supported_versions.expect("supported_versions");
    assert!(!versions.is_empty());
    for v in &versions {
        assert!(*v == 0x0303 || *v == 0x0304, "offers version {v:#06x}");
    }
    assert!(!hello.suites.is_empty());
    for s in &hello.suites {
        assert!(MODERN.contains(s), "offers non-modern suite {s:#06x}");
    }
    for (code, name) in FORBIDDEN {
        assert!(!hello.suites.contains(&code), "offers {name}");
    }
}

/// Seed V0073 (doc): DHE-DSS and 3DES are not offered; checked on the wire as well.
#[tokio::test]
async fn v0073_no_3des_or_dss_suites_offered() {
    let hello = captured_client_hello().await;
    for (code, name) in FORBIDDEN.iter().filter(|(_, n)| n.contains("3DES")) {
        assert!(!hello.suites.contains(code), "offers {name}");
    }
    // Every DHE_DSS suite lives in 0x0011..=0x0013, 0x0032, 0x0038, 0x0040, 0x006a, 0x00a2/3.
    for code in [
        0x0011u16, 0x0012, 0x0013, 0x0032, 0x0038, 0x0040, 0x006a, 0x00a2, 0x00a3,
    ] {
        assert!(
            !hello.suites.contains(&code),
            "offers DSS suite {code:#06x}"
        );
    }
}

/// Seed V0074 (doc): the suite choice is the TLS library's modern default: the TLS 1.3
/// suites lead, and TLS 1.2 is offered only with forward-secret AEAD suites.
#[tokio::test]
async fn v0074_suite_order_is_the_modern_default() {
    let hello = captured_client_hello().await;
    assert!(
        [0x1301, 0x1302, 0x1303].contains(&hello.suites[0]),
        "{:#06x?}",
        hello.suites
    );
    for s in hello.suites.iter().filter(|s| **s >> 8 == 0xc0) {
        assert!([0xc02b, 0xc02c, 0xc02f, 0xc030].contains(s), "{s:#06x}");
    }
}

// ----- logs -----

/// A `tracing` subscriber writing every level into a shared buffer; active on this thread
/// (the tests run on tokio's current-thread runtime, so the session logs here).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Standard base64, to look for encoded secrets in the logs.
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A full session at TRACE level — every password mechanism, both OAuth mechanisms,
/// a wrong password, SELECT, APPEND, FETCH, LOGOUT — and neither the password, the token,
/// nor their SASL encodings appear anywhere in the log output.
#[tokio::test]
async fn secrets_never_appear_in_logs_at_any_level() {
    let d = Dovecot::start();
    let u = d.user(0).clone();
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let wrong = "wrong-Pa55word-zebra";
    let mut cfg = ConnectConfig::new(d.imaps_addr().ip().to_string());
    cfg.port = Some(d.imaps_addr().port());
    cfg.tls.ca_file = Some(d.ca_file());
    let password_mechs = [
        MechanismName::Plain,
        MechanismName::Login,
        MechanismName::CramMd5,
        MechanismName::DigestMd5,
        MechanismName::ScramSha256,
    ];
    for mech in password_mechs {
        let mut c = cfg.clone();
        c.auth_policy.order = Some(vec![mech]);
        let mut s = Session::connect(
            &c,
            Some(&Credentials::password(u.name.clone(), u.password.clone())),
        )
        .await
        .unwrap_or_else(|e| panic!("{mech}: {e}"));
        s.select(&Mailbox::inbox(), SelectOptions::default())
            .await
            .unwrap();
        s.append(
            &Mailbox::inbox(),
            &[],
            None,
            b"Subject: t\r\n\r\nx\r\n".to_vec(),
        )
        .await
        .unwrap();
        s.logout().await.unwrap();
    }
    for mech in [MechanismName::OAuthBearer, MechanismName::XOAuth2] {
        let mut c = cfg.clone();
        c.auth_policy = Policy::oauth_token();
        c.auth_policy.order = Some(vec![mech]);
        let s = Session::connect(
            &c,
            Some(&Credentials::bearer_token(u.name.clone(), u.token.clone())),
        )
        .await
        .unwrap_or_else(|e| panic!("{mech}: {e}"));
        s.logout().await.unwrap();
    }
    let e = Session::connect(&cfg, Some(&Credentials::password(u.name.clone(), wrong)))
        .await
        .unwrap_err();
    let text = logs.text();
    assert!(text.contains("TRACE"), "no trace output captured");
    assert!(text.contains("connected to"), "no session logs captured");
    let error_text = format!("{e} {e:?}");
    let plain = format!("\0{}\0{}", u.name, u.password);
    let xoauth2 = format!("user={}\x01auth=Bearer {}\x01\x01", u.name, u.token);
    let oauthbearer_prefix = format!("n,a={},", u.name);
    for (what, secret) in [
        ("password", u.password.clone()),
        ("token", u.token.clone()),
        ("wrong password", wrong.to_string()),
        ("password in base64", b64(u.password.as_bytes())),
        ("token in base64", b64(u.token.as_bytes())),
        ("PLAIN response", b64(plain.as_bytes())),
        ("XOAUTH2 response", b64(xoauth2.as_bytes())),
        ("OAUTHBEARER response", b64(oauthbearer_prefix.as_bytes())),
    ] {
        assert!(!text.contains(&secret), "{what} in the logs");
        assert!(!error_text.contains(&secret), "{what} in the error");
    }
}

/// `dangerously_accept_invalid_certs` warns loudly on every connection, not once per process.
#[tokio::test]
async fn dangerously_accept_invalid_certs_warns_on_every_connection() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::SelfSigned)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi")
            .stall(),
    );
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(s.port());
    c.security = Security::ImplicitTls;
    c.tls.dangerously_accept_invalid_certs = true;
    c.connect_timeout = Duration::from_secs(5);
    for round in 1..=3 {
        let sess = Session::open(&c).await.unwrap();
        let info = sess.tls_info().unwrap();
        assert_eq!(info.trust, Some(TrustSource::Unverified));
        let warnings = logs
            .text()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("DANGER"))
            .count();
        assert_eq!(warnings, round, "{}", logs.text());
    }
}
