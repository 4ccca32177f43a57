//! DIGEST-MD5 with a non-ASCII password against the real Dovecot: Dovecot hashes
//! the credentials as UTF-8 where RFC 2831 2.1.2.1 converts them to ISO 8859-1 first, so the
//! session must recognise Dovecot (greeting, else ID) and hash the same way. The password
//! holds characters ISO 8859-1 can represent (`ü`, `ß`, `É`), the only case where the two ways
//! differ.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use mailfold_net::{ConnectConfig, Security, Session};
use mailfold_sasl::{Credentials, MechanismName};
use mailfold_testsupport::Dovecot;

const USER: &str = "latin";
const PASSWORD: &str = "grüße-ÉTÉ-ñ";

/// Adds user `latin` with [`PASSWORD`] to the instance's passwd file (Dovecot re-reads it
/// when it changes), sharing user1's home so that no new directory needs the mail owner.
fn add_latin_user(d: &Dovecot) {
    let home = d
        .mail_root("user1")
        .parent()
        .expect("user1's home")
        .to_path_buf();
    let meta = std::fs::metadata(&home).expect("user1's home exists");
    let passwd = d.root().join("users.passwd");
    let mut text = std::fs::read_to_string(&passwd).expect("the instance's passwd file");
    text.push_str(&format!(
        "{USER}:{{PLAIN}}{PASSWORD}:{}:{}::{}::\n",
        meta.uid(),
        meta.gid(),
        home.display()
    ));
    std::fs::write(&passwd, text).unwrap();
}

fn digest_only(d: &Dovecot) -> ConnectConfig {
    let addr = d.imaps_addr();
    let mut c = ConnectConfig::new(addr.ip().to_string());
    c.port = Some(addr.port());
    c.security = Security::ImplicitTls;
    c.tls.ca_file = Some(d.ca_file());
    c.connect_timeout = Duration::from_secs(10);
    c.engine.command_timeout = Duration::from_secs(20);
    c.auth_policy.order = Some(vec![MechanismName::DigestMd5]);
    c
}

async fn login(d: &Dovecot) -> Session {
    let creds = Credentials::password(USER, PASSWORD);
    match Session::connect_report(&digest_only(d), Some(&creds)).await {
        Ok(s) => s,
        Err(f) => panic!("{}; tried {:?}\n{}", f.error, f.auth.tried, d.log()),
    }
}

/// Dovecot's default greeting ("Dovecot ready.") names it: no extra round trip.
#[tokio::test]
async fn e0001_digest_md5_latin1_password_on_dovecot_recognised_by_greeting() {
    let d = Dovecot::start();
    add_latin_user(&d);
    let s = login(&d).await;
    assert_eq!(s.auth_info().mechanism_used.as_deref(), Some("DIGEST-MD5"));
    assert_eq!(s.stats().commands("ID"), 0);
    s.logout().await.unwrap();
}

/// With a greeting that does not name the server, ID (RFC 2971) does.
#[tokio::test]
async fn e0001_digest_md5_latin1_password_on_dovecot_recognised_by_id() {
    let d = Dovecot::builder()
        .extra_config("login_greeting = IMAP service ready.")
        .start();
    add_latin_user(&d);
    let s = login(&d).await;
    assert!(
        !s.greeting().unwrap_or_default().contains("Dovecot"),
        "{:?}",
        s.greeting()
    );
    assert_eq!(s.auth_info().mechanism_used.as_deref(), Some("DIGEST-MD5"));
    assert_eq!(s.stats().commands("ID"), 1);
    s.logout().await.unwrap();
}

/// An ASCII password hashes the same either way: no ID is sent for it.
#[tokio::test]
async fn digest_md5_ascii_password_needs_no_identification() {
    let d = Dovecot::builder()
        .extra_config("login_greeting = IMAP service ready.")
        .start();
    let u = d.user(0);
    let creds = Credentials::password(u.name.clone(), u.password.clone());
    let s = Session::connect(&digest_only(&d), Some(&creds))
        .await
        .unwrap();
    assert_eq!(s.auth_info().mechanism_used.as_deref(), Some("DIGEST-MD5"));
    assert_eq!(s.stats().commands("ID"), 0);
    s.logout().await.unwrap();
}
