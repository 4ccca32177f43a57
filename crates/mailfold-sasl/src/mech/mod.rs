//! The mechanisms, one module each, and the small helpers several of them share.

pub mod anonymous;
pub mod cram_md5;
pub mod digest_md5;
pub mod login;
pub mod ntlm;
pub mod oauthbearer;
pub mod plain;
pub mod scram;
pub mod xoauth2;

use crate::SaslError;

/// Lower-case hex, as CRAM-MD5 and DIGEST-MD5 print digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// RFC 5801 section 4 / RFC 5802 section 5.1 `saslname`: `=` and `,` are escaped as
/// `=3D` and `=2C` so the value cannot end its attribute early.
pub(crate) fn gs2_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// An OAuth bearer token must be visible ASCII (RFC 6750 section 2.1 `b64token` is a
/// subset), which also keeps the `\x01` separators of XOAUTH2 and OAUTHBEARER from
/// being forged by a token or user name.
pub(crate) fn check_bearer(user: &str, token: &str) -> Result<(), SaslError> {
    if token.is_empty() {
        return Err(SaslError::credentials("the OAuth token is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SaslError::credentials(
            "the OAuth token contains characters outside visible ASCII",
        ));
    }
    if user.chars().any(char::is_control) {
        return Err(SaslError::credentials(
            "the user name contains control characters",
        ));
    }
    Ok(())
}

/// Upper bound on a challenge a mechanism will look at. Mechanism challenges are small
/// (DIGEST-MD5 caps its own at 2048 bytes, RFC 2831 2.1.1); anything much larger is
/// hostile and is refused before it is parsed or stored.
pub(crate) const MAX_CHALLENGE: usize = 16 * 1024;

pub(crate) fn check_size(mechanism: &'static str, challenge: &[u8]) -> Result<(), SaslError> {
    if challenge.len() > MAX_CHALLENGE {
        return Err(SaslError::malformed(
            mechanism,
            format!("challenge of {} bytes exceeds the limit", challenge.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes_separators() {
        assert_eq!(gs2_saslname("a=b,c"), "a=3Db=2Cc");
        assert_eq!(gs2_saslname("user"), "user");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn bearer_rejects_separator_injection() {
        assert!(check_bearer("u", "abc\x01auth=x").is_err());
        assert!(check_bearer("u\x01", "abc").is_err());
        assert!(check_bearer("u", "").is_err());
        assert!(check_bearer("u", "ya29.a-b_c~d+e/f==").is_ok());
    }
}
