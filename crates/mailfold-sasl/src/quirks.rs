//! Server quirks as data: which servers depart from a mechanism's RFC, and how they are
//! recognised. The network driver only reports what the server says about itself (its
//! greeting text, its RFC 2971 ID answer); the decision is made here, from the table below,
//! so that adding a server is a line of data, not a change to the driver.

use crate::credentials::Credentials;

/// Servers known to hash DIGEST-MD5 credentials as UTF-8 where RFC 2831 2.1.2.1 converts them
/// to ISO 8859-1 first ([`crate::ClientContext::digest_md5_utf8_hash`]), by a word their
/// self-description contains (compared without regard to ASCII case).
///
/// * `dovecot`: checked against Dovecot 2.3.19, where a non-ASCII password fails with the
///   RFC's conversion; its default greeting is "Dovecot ready." and its ID name "Dovecot".
pub const DIGEST_MD5_UTF8_SERVERS: &[&str] = &["dovecot"];

/// Whether a server that describes itself as `text` (a greeting's text or an ID `name`)
/// hashes DIGEST-MD5 credentials as UTF-8 ([`DIGEST_MD5_UTF8_SERVERS`]). Servers not in the
/// table follow the RFC (Cyrus SASL does).
pub fn digest_md5_hashes_utf8(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    DIGEST_MD5_UTF8_SERVERS.iter().any(|w| text.contains(w))
}

/// [`digest_md5_hashes_utf8`] for a server's RFC 2971 ID answer: its `name` field (section
/// 3.3, compared without regard to case) describes the server.
pub fn digest_md5_hashes_utf8_by_id(fields: &[(String, Option<String>)]) -> bool {
    fields.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("name") && v.as_deref().is_some_and(digest_md5_hashes_utf8)
    })
}

/// Whether the two ways of hashing DIGEST-MD5 credentials can differ for `creds`: only for a
/// user name, authorisation identity or password that is not ASCII (RFC 2831 2.1.2.1
/// converts nothing else). A driver need not ask the server about itself otherwise.
pub fn digest_md5_charset_matters(creds: &Credentials) -> bool {
    !(creds.authcid.is_ascii()
        && creds.authzid.as_deref().is_none_or(str::is_ascii)
        && creds.secret.expose().is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_is_recognised_by_its_greeting_and_its_id_name() {
        assert!(digest_md5_hashes_utf8("Dovecot ready."));
        assert!(digest_md5_hashes_utf8("Dovecot (Debian) ready."));
        assert!(digest_md5_hashes_utf8("Dovecot"));
        assert!(!digest_md5_hashes_utf8("Cyrus IMAP v3.6 server ready"));
        assert!(!digest_md5_hashes_utf8("IMAP4rev1 Service Ready"));
    }

    #[test]
    fn the_id_answer_is_read_by_its_name_field() {
        let id = |k: &str, v: Option<&str>| vec![(k.to_string(), v.map(str::to_string))];
        assert!(digest_md5_hashes_utf8_by_id(&id("name", Some("Dovecot"))));
        assert!(digest_md5_hashes_utf8_by_id(&id("NAME", Some("Dovecot"))));
        assert!(!digest_md5_hashes_utf8_by_id(&id(
            "vendor",
            Some("Dovecot")
        )));
        assert!(!digest_md5_hashes_utf8_by_id(&id("name", None)));
        assert!(!digest_md5_hashes_utf8_by_id(&id(
            "name",
            Some("Cyrus IMAP")
        )));
    }

    #[test]
    fn only_non_ascii_credentials_make_the_charset_matter() {
        assert!(!digest_md5_charset_matters(&Credentials::password(
            "tim", "secret"
        )));
        assert!(digest_md5_charset_matters(&Credentials::password(
            "tim", "grüße"
        )));
        assert!(digest_md5_charset_matters(&Credentials::password(
            "jürgen", "x"
        )));
    }
}
