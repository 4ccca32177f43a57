//! [`RealServer`]: what the integration and sync suites need from a real IMAP server, so one
//! test body can run against Dovecot and against Cyrus.
//!
//! The two differ where real servers differ (hierarchy delimiter, mechanisms, quirks); the
//! trait only exposes what both can do, and each method says where behaviour diverges.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cyrus::Cyrus;
use crate::dovecot::Dovecot;
use crate::instance::TestUser;

/// A running private IMAP server with test users.
pub trait RealServer {
    /// `"Dovecot"` or `"Cyrus"`, for test messages.
    fn kind(&self) -> &'static str;
    /// The cleartext listener that offers STARTTLS.
    fn imap_addr(&self) -> SocketAddr;
    /// The implicit-TLS listener.
    fn imaps_addr(&self) -> SocketAddr;
    /// The per-run CA that issued the server certificate (names 127.0.0.1 and localhost).
    fn ca_file(&self) -> PathBuf;
    /// The test users, `user1`, `user2`, ... (Cyrus users have no OAuth token).
    fn users(&self) -> &[TestUser];
    /// The hierarchy delimiter: `.` for Dovecot's default Maildir++, `/` for Cyrus.
    fn delimiter(&self) -> char;
    /// Stores `message` in `user`'s `mailbox` (a name as the user sees it). Dovecot saves it
    /// as given; Cyrus APPENDs it, which rejects some malformed messages.
    ///
    /// # Panics
    /// If the server refuses.
    fn deliver(&self, user: &str, mailbox: &str, message: &[u8]);
    /// Creates `mailbox` (full name with this server's delimiter) for `user`.
    ///
    /// # Panics
    /// If the server refuses (e.g. it exists already).
    fn create_mailbox(&self, user: &str, mailbox: &str);
    /// Whatever the server logged, for the message of a failing test.
    fn log(&self) -> String;
}

impl RealServer for Dovecot {
    fn kind(&self) -> &'static str {
        "Dovecot"
    }
    fn imap_addr(&self) -> SocketAddr {
        Dovecot::imap_addr(self)
    }
    fn imaps_addr(&self) -> SocketAddr {
        Dovecot::imaps_addr(self)
    }
    fn ca_file(&self) -> PathBuf {
        Dovecot::ca_file(self)
    }
    fn users(&self) -> &[TestUser] {
        Dovecot::users(self)
    }
    fn delimiter(&self) -> char {
        Dovecot::delimiter(self)
    }
    fn deliver(&self, user: &str, mailbox: &str, message: &[u8]) {
        Dovecot::deliver(self, user, mailbox, message);
    }
    fn create_mailbox(&self, user: &str, mailbox: &str) {
        Dovecot::create_mailbox(self, user, mailbox);
    }
    fn log(&self) -> String {
        Dovecot::log(self)
    }
}

impl RealServer for Cyrus {
    fn kind(&self) -> &'static str {
        "Cyrus"
    }
    fn imap_addr(&self) -> SocketAddr {
        Cyrus::imap_addr(self)
    }
    fn imaps_addr(&self) -> SocketAddr {
        Cyrus::imaps_addr(self)
    }
    fn ca_file(&self) -> PathBuf {
        Cyrus::ca_file(self)
    }
    fn users(&self) -> &[TestUser] {
        Cyrus::users(self)
    }
    fn delimiter(&self) -> char {
        Cyrus::delimiter(self)
    }
    fn deliver(&self, user: &str, mailbox: &str, message: &[u8]) {
        Cyrus::deliver(self, user, mailbox, message);
    }
    fn create_mailbox(&self, user: &str, mailbox: &str) {
        Cyrus::create_mailbox(self, user, mailbox);
    }
    fn log(&self) -> String {
        Cyrus::log(self)
    }
}
