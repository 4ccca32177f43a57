//! `mailfold probe [ACCOUNT] [--host H --port P --tls MODE]`: the first thing to run when a
//! server does not work. It reports, step by step, how far a connection gets:
//!
//! 1. a raw connection shows the greeting and the TLS session: protocol version, cipher
//!    suite, the length of the certificate chain and whether it verifies for the host name
//!    against the system roots plus the account's `ca_file` (if not, the handshake is
//!    repeated without verification only to learn the rest, and nothing is sent over it);
//! 2. a session through `mailfold-net` lists the capabilities before login and the SASL
//!    mechanisms offered;
//! 3. with an account, a second session logs in with the account's policy (strongest
//!    mechanism first, seeds V0031–V0034) and lists the capabilities after login (V0033).
//!
//! The TLS details come from a connection of this command's own because the session API does
//! not expose them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use mailfold_net::{ConnectConfig, Security, Session, TlsOptions};
use mailfold_sasl::{choose_mechanisms, Credentials, Policy};
use serde_json::json;

use super::{print_json, Ctx};
use crate::cli::{ProbeArgs, TlsArg};
use crate::exit;
use crate::online;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest greeting line read.
const MAX_LINE: u64 = 8 * 1024;

/// What the raw connection learned.
#[derive(Debug, Default, Clone)]
pub struct TlsReport {
    /// The greeting line.
    pub greeting: Option<String>,
    /// `TLSv1_3`, …
    pub version: Option<String>,
    /// The cipher suite.
    pub cipher: Option<String>,
    /// Certificates the server sent.
    pub certificates: usize,
    /// The chain verified for the host name.
    pub verified: bool,
    /// Why it did not.
    pub verify_error: Option<String>,
}

fn read_line<R: BufRead>(r: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    r.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn connect_tcp(host: &str, port: u16) -> anyhow::Result<TcpStream> {
    let addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow::anyhow!("{host}:{port}: {e}"),
        None => anyhow::anyhow!("{host}: no address"),
    })
}

/// One TLS handshake (after STARTTLS when asked); returns the report or the handshake error.
fn handshake(
    host: &str,
    port: u16,
    security: Security,
    opts: &TlsOptions,
) -> anyhow::Result<Result<TlsReport, (String, Option<String>)>> {
    let mut tcp = connect_tcp(host, port)?;
    let mut report = TlsReport::default();
    if security == Security::StartTls {
        let mut r = BufReader::new(tcp.try_clone()?);
        report.greeting = Some(read_line(&mut r)?);
        tcp.write_all(b"P1 STARTTLS\r\n")?;
        loop {
            let l = read_line(&mut r)?;
            if let Some(rest) = l.strip_prefix("P1 ") {
                if !rest.to_ascii_uppercase().starts_with("OK") {
                    anyhow::bail!("STARTTLS refused: {rest}");
                }
                break;
            }
        }
    }
    let config: Arc<rustls::ClientConfig> =
        mailfold_net::tls::client_config(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = mailfold_net::tls::server_name(host).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = rustls::ClientConnection::new(config, name)?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Ok(Err((e.to_string(), report.greeting)));
        }
    }
    report.version = conn.protocol_version().map(|v| format!("{v:?}"));
    report.cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()));
    report.certificates = conn.peer_certificates().map_or(0, |c| c.len());
    report.verified = !opts.dangerously_accept_invalid_certs;
    if security == Security::ImplicitTls {
        let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
        let mut r = BufReader::new(&mut stream);
        report.greeting = read_line(&mut r).ok();
    }
    Ok(Ok(report))
}

/// The raw probe: greeting, TLS details, verification.
pub fn tls_probe(
    host: &str,
    port: u16,
    security: Security,
    opts: &TlsOptions,
) -> anyhow::Result<TlsReport> {
    if security == Security::Plaintext {
        let tcp = connect_tcp(host, port)?;
        let mut r = BufReader::new(tcp);
        return Ok(TlsReport {
            greeting: Some(read_line(&mut r)?),
            ..TlsReport::default()
        });
    }
    match handshake(host, port, security, opts)? {
        Ok(r) => Ok(r),
        Err((why, greeting)) => {
            // Learn the rest without verification; this connection carries nothing.
            let lax = TlsOptions {
                ca_file: opts.ca_file.clone(),
                dangerously_accept_invalid_certs: true,
            };
            let mut r = match handshake(host, port, security, &lax)? {
                Ok(r) => r,
                Err((e, _)) => TlsReport {
                    verify_error: Some(e),
                    ..TlsReport::default()
                },
            };
            r.verified = false;
            r.verify_error = Some(why);
            if r.greeting.is_none() {
                r.greeting = greeting;
            }
            Ok(r)
        }
    }
}

/// Runs the command.
pub fn run(ctx: &Ctx, a: &ProbeArgs) -> anyhow::Result<u8> {
    let (cfg, login): (ConnectConfig, Option<(Credentials, Policy)>) = match &a.host {
        Some(h) => {
            let mut cfg = ConnectConfig::new(h.clone());
            cfg.security = match a.tls {
                TlsArg::Implicit => Security::ImplicitTls,
                TlsArg::Starttls => Security::StartTls,
                TlsArg::None => Security::Plaintext,
            };
            cfg.port = a.port;
            cfg.tls.ca_file = a.ca_file.clone();
            cfg.connect_timeout = TIMEOUT;
            (cfg, None)
        }
        None => {
            let (name, acct) = ctx.one_account(a.account_name.as_deref())?;
            let mut cfg = crate::account::connect_config(&acct)?;
            if let Some(p) = a.port {
                cfg.port = Some(p);
            }
            let creds = crate::account::credentials(&name, &acct)?;
            (cfg, Some(creds))
        }
    };
    let host = cfg.host.clone();
    let port = cfg.port();
    let mut errors: Vec<String> = Vec::new();
    let mut status = exit::OK;

    let tls = match tls_probe(&host, port, cfg.security, &cfg.tls) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(format!("connection: {e:#}"));
            status = exit::SERVER;
            None
        }
    };
    if tls
        .as_ref()
        .is_some_and(|t| cfg.security != Security::Plaintext && !t.verified)
    {
        status = exit::SERVER;
    }

    let mut before: Option<Vec<String>> = None;
    let mut after: Option<Vec<String>> = None;
    let mut mechanism: Option<String> = None;
    let mut login_ok: Option<bool> = None;
    if status == exit::OK {
        online::block_on(async {
            match Session::open(&cfg).await {
                Ok(mut s) => {
                    let caps = match s.capabilities().cloned() {
                        Some(c) => Ok(c),
                        None => s.capability().await,
                    };
                    match caps {
                        Ok(c) => before = Some(c.names().to_vec()),
                        Err(e) => errors.push(format!("CAPABILITY: {e}")),
                    }
                    online::logout(s, &host).await;
                }
                Err(e) => {
                    errors.push(format!("session: {e}"));
                    status = exit::SERVER;
                }
            }
            if let (Some((creds, policy)), true) = (&login, status == exit::OK) {
                let mut cfg = cfg.clone();
                cfg.auth_policy = policy.clone();
                let offered: Vec<String> = before
                    .iter()
                    .flatten()
                    .filter_map(|c| {
                        c.get(..5)
                            .filter(|p| p.eq_ignore_ascii_case("AUTH="))
                            .map(|_| c[5..].to_string())
                    })
                    .collect();
                let adv: Vec<&str> = offered.iter().map(String::as_str).collect();
                let tls_on = cfg.security != Security::Plaintext;
                mechanism = Some(
                    choose_mechanisms(&adv, policy, tls_on)
                        .first()
                        .map_or_else(|| "LOGIN command".to_string(), |m| m.as_str().to_string()),
                );
                match Session::connect(&cfg, Some(creds)).await {
                    Ok(mut s) => {
                        login_ok = Some(true);
                        after = s.capabilities().map(|c| c.names().to_vec());
                        if after.is_none() {
                            after = s.capability().await.ok().map(|c| c.names().to_vec());
                        }
                        online::logout(s, &host).await;
                    }
                    Err(e) => {
                        login_ok = Some(false);
                        errors.push(format!("login: {e}"));
                        status = exit::SERVER;
                    }
                }
            }
        })?;
    }
    let offered: Vec<String> = before
        .iter()
        .flatten()
        .filter(|c| c.len() > 5 && c[..5].eq_ignore_ascii_case("AUTH="))
        .map(|c| c[5..].to_string())
        .collect();
    let mode = match cfg.security {
        Security::ImplicitTls => "implicit",
        Security::StartTls => "starttls",
        Security::Plaintext => "none",
    };
    if ctx.json {
        print_json(&json!({
            "host": host,
            "port": port,
            "tls_mode": mode,
            "greeting": tls.as_ref().and_then(|t| t.greeting.clone()),
            "tls": tls.as_ref().filter(|_| cfg.security != Security::Plaintext).map(|t| json!({
                "version": t.version,
                "cipher": t.cipher,
                "certificates": t.certificates,
                "verified": t.verified,
                "error": t.verify_error,
            })),
            "capabilities_before_login": before,
            "mechanisms_offered": offered,
            "login": login_ok.map(|ok| json!({"ok": ok, "mechanism": mechanism})),
            "capabilities_after_login": after,
            "errors": errors,
        }))?;
    } else {
        println!("server        {host}:{port} (TLS: {mode})");
        if let Some(t) = &tls {
            println!(
                "greeting      {}",
                t.greeting.as_deref().unwrap_or("(none)")
            );
            if cfg.security != Security::Plaintext {
                println!(
                    "TLS           {} {}",
                    t.version.as_deref().unwrap_or("?"),
                    t.cipher.as_deref().unwrap_or("?")
                );
                match &t.verify_error {
                    None => println!(
                        "certificate   chain of {}, verified for {host}",
                        t.certificates
                    ),
                    Some(e) => println!(
                        "certificate   chain of {}, NOT verified: {e}",
                        t.certificates
                    ),
                }
            }
        }
        if let Some(b) = &before {
            println!("before login  {}", b.join(" "));
            println!(
                "mechanisms    {}",
                if offered.is_empty() {
                    "(none advertised)".to_string()
                } else {
                    offered.join(" ")
                }
            );
        }
        if let Some(ok) = login_ok {
            println!(
                "login         {} ({})",
                if ok { "OK" } else { "FAILED" },
                mechanism.as_deref().unwrap_or("?")
            );
        }
        if let Some(c) = &after {
            println!("after login   {}", c.join(" "));
        }
        for e in &errors {
            println!("error         {e}");
        }
    }
    Ok(status)
}
