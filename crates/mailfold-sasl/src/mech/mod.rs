//! The mechanisms, one module each, the [`Mechanism`] interface they implement, and the
//! small helpers several of them share. The registry that builds one by name stands above
//! them ([`crate::mechanism`]).

pub mod anonymous;
pub mod cram_md5;
pub mod digest_md5;
pub mod login;
pub mod ntlm;
pub mod oauthbearer;
pub mod plain;
pub mod scram;
pub mod xoauth2;

use crate::error::server_text;
use crate::error::SaslError;
use crate::secret::Secret;

/// Bytes the client sends (already decoded: the IMAP layer does the base64). They may
/// contain the password or token, so they stay wrapped until written to the wire.
pub type Response = Secret<Vec<u8>>;

/// One client side of a SASL exchange (RFC 4422), driven by the caller:
///
/// 1. If the server offers SASL-IR (RFC 4959), send `AUTHENTICATE <name> <initial>`
///    with [`Mechanism::initial_response`] when it is `Some` (an empty `Some` is sent
///    as `=`); otherwise send `AUTHENTICATE <name>` alone.
/// 2. For every continuation `+ <base64>`, decode it and answer with
///    [`Mechanism::step`]. A client-first mechanism whose initial response was not sent
///    with SASL-IR produces it on the first (empty) challenge.
/// 3. On the tagged OK, check [`Mechanism::is_complete`]: `false` means the server did
///    not finish the exchange (for SCRAM and DIGEST-MD5: it never proved itself), and the
///    session must be treated as failed.
/// 4. On an error from `step`, cancel with `*` (RFC 3501 6.2.2) and consult
///    [`crate::policy::next_after_failure`].
pub trait Mechanism: Send {
    /// The registered mechanism name, e.g. `"SCRAM-SHA-256"`.
    fn name(&self) -> &'static str;

    /// Client-first data, or `None` for server-first mechanisms (CRAM-MD5,
    /// DIGEST-MD5, LOGIN). Calling it marks the data as sent.
    fn initial_response(&mut self) -> Result<Option<Response>, SaslError>;

    /// Answers one server challenge.
    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError>;

    /// True once the mechanism has nothing more to send and, for mechanisms with
    /// mutual authentication, the server's proof has been verified.
    fn is_complete(&self) -> bool;

    /// Error detail the server sent inside the exchange (the OAuth JSON status), kept
    /// for the user-facing message after the server's NO.
    fn server_error(&self) -> Option<&str> {
        None
    }
}

/// The exchange every one-message, client-first mechanism shares (PLAIN, ANONYMOUS,
/// XOAUTH2, OAUTHBEARER): the message goes as the initial response, or after the empty
/// challenge a server without SASL-IR sends first (RFC 4422 section 5). A bearer-token
/// server may answer a refused token with an error challenge: it is kept for the user
/// ([`Mechanism::server_error`]) and answered with the mechanism's `error_reply`, after which
/// the server ends the exchange with its NO. Anything else is an unexpected challenge.
#[derive(Debug)]
pub(crate) struct OneMessage {
    name: &'static str,
    message: Secret<Vec<u8>>,
    /// The answer to a server error challenge; `None` for a mechanism that has none.
    error_reply: Option<&'static [u8]>,
    sent: bool,
    error: Option<String>,
}

impl OneMessage {
    pub(crate) fn new(
        name: &'static str,
        message: Vec<u8>,
        error_reply: Option<&'static [u8]>,
    ) -> Self {
        OneMessage {
            name,
            message: Secret::new(message),
            error_reply,
            sent: false,
            error: None,
        }
    }
}

impl Mechanism for OneMessage {
    fn name(&self) -> &'static str {
        self.name
    }

    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        self.sent = true;
        Ok(Some(self.message.clone()))
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        if !self.sent && challenge.is_empty() {
            self.sent = true;
            return Ok(self.message.clone());
        }
        if let (true, None, Some(reply)) = (self.sent, &self.error, self.error_reply) {
            check_size(self.name, challenge)?;
            self.error = Some(server_text(challenge));
            return Ok(Secret::new(reply.to_vec()));
        }
        Err(SaslError::UnexpectedChallenge {
            mechanism: self.name,
        })
    }

    fn is_complete(&self) -> bool {
        self.sent && self.error.is_none()
    }

    fn server_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Implements [`Mechanism`] for a public mechanism type that wraps a [`OneMessage`].
macro_rules! one_message_mechanism {
    ($t:ty) => {
        impl $crate::mech::Mechanism for $t {
            fn name(&self) -> &'static str {
                self.0.name()
            }

            fn initial_response(
                &mut self,
            ) -> Result<Option<$crate::mech::Response>, $crate::error::SaslError> {
                self.0.initial_response()
            }

            fn step(
                &mut self,
                challenge: &[u8],
            ) -> Result<$crate::mech::Response, $crate::error::SaslError> {
                self.0.step(challenge)
            }

            fn is_complete(&self) -> bool {
                self.0.is_complete()
            }

            fn server_error(&self) -> Option<&str> {
                self.0.server_error()
            }
        }
    };
}
pub(crate) use one_message_mechanism;

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
