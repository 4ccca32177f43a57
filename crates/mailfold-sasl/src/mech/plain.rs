//! PLAIN (RFC 4616): one client message, `[authzid] NUL authcid NUL passwd`. It reveals
//! the password, so the policy only offers it inside TLS (seed V0031).

use super::{one_message_mechanism, OneMessage};
use crate::credentials::Credentials;
use crate::error::SaslError;

const NAME: &str = "PLAIN";

/// Client side of PLAIN.
#[derive(Debug)]
pub struct Plain(OneMessage);

impl Plain {
    /// Builds the message. NUL cannot appear in any field (RFC 4616 section 2), and the
    /// user name and password must not be empty.
    pub fn new(credentials: &Credentials) -> Result<Self, SaslError> {
        let authzid = credentials.authzid().unwrap_or("");
        let password = credentials.secret.expose();
        if credentials.authcid.is_empty() || password.is_empty() {
            return Err(SaslError::credentials(
                "PLAIN needs a user name and a password",
            ));
        }
        if [authzid, credentials.authcid.as_str(), password.as_str()]
            .iter()
            .any(|f| f.contains('\0'))
        {
            return Err(SaslError::credentials("PLAIN fields cannot contain NUL"));
        }
        let mut message =
            Vec::with_capacity(authzid.len() + credentials.authcid.len() + password.len() + 2);
        message.extend_from_slice(authzid.as_bytes());
        message.push(0);
        message.extend_from_slice(credentials.authcid.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        Ok(Plain(OneMessage::new(NAME, message, None)))
    }
}

one_message_mechanism!(Plain);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::Mechanism;

    /// RFC 4616 section 4, first example: no authzid.
    #[test]
    fn rfc4616_example_tim() {
        let mut m = Plain::new(&Credentials::password("tim", "tanstaaftanstaaf")).unwrap();
        assert!(!m.is_complete());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose().as_slice(), b"\0tim\0tanstaaftanstaaf");
        assert!(m.is_complete());
        assert!(m.step(b"").is_err());
    }

    /// RFC 4616 section 4, second example: authzid "Ursel", authcid "Kurt".
    #[test]
    fn rfc4616_example_ursel_kurt() {
        let creds = Credentials::password("Kurt", "xipj3plmq").with_authzid("Ursel");
        let mut m = Plain::new(&creds).unwrap();
        // Without SASL-IR the message answers the server's empty challenge.
        let r = m.step(b"").unwrap();
        assert_eq!(r.expose().as_slice(), b"Ursel\0Kurt\0xipj3plmq");
    }

    #[test]
    fn nul_and_empty_fields_are_refused() {
        assert!(Plain::new(&Credentials::password("a\0b", "x")).is_err());
        assert!(Plain::new(&Credentials::password("a", "x\0")).is_err());
        assert!(Plain::new(&Credentials::password("", "x")).is_err());
        assert!(Plain::new(&Credentials::password("a", "")).is_err());
    }
}
