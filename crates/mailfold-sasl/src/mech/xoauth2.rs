//! XOAUTH2 (Google's and Microsoft's OAuth 2.0 mechanism):
//! `user=<user>^Aauth=Bearer <token>^A^A`. When the token is refused the server sends a
//! JSON error as a challenge; the client must answer with an empty response, after
//! which the server sends its NO.

use super::{check_bearer, one_message_mechanism, OneMessage};
use crate::credentials::Credentials;
use crate::error::SaslError;

const NAME: &str = "XOAUTH2";

/// Client side of XOAUTH2.
#[derive(Debug)]
pub struct XOAuth2(OneMessage);

impl XOAuth2 {
    /// Builds the message from the user name and the access token.
    pub fn new(credentials: &Credentials) -> Result<Self, SaslError> {
        let token = credentials.secret.expose();
        check_bearer(&credentials.authcid, token)?;
        let message = format!(
            "user={}\x01auth=Bearer {token}\x01\x01",
            credentials.authcid
        );
        // The error JSON: kept for the user, answered empty so the server ends the exchange
        // with its tagged NO.
        Ok(XOAuth2(OneMessage::new(
            NAME,
            message.into_bytes(),
            Some(b""),
        )))
    }
}

one_message_mechanism!(XOAuth2);

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::mech::Mechanism;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Google's published XOAUTH2 example (the "SASL XOAUTH2 mechanism" page).
    #[test]
    fn google_published_example() {
        let creds = Credentials::bearer_token(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        );
        let mut m = XOAuth2::new(&creds).unwrap();
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            b64(ir.expose()),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52\
             YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        assert!(m.is_complete());
    }

    /// Google's error continuation: the client answers with an empty line.
    #[test]
    fn error_json_is_answered_with_empty_response() {
        let creds = Credentials::bearer_token("someuser@example.com", "expired.token");
        let mut m = XOAuth2::new(&creds).unwrap();
        m.initial_response().unwrap();
        let json = br#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#;
        let r = m.step(json).unwrap();
        assert!(r.expose().is_empty());
        assert!(!m.is_complete());
        assert_eq!(
            m.server_error(),
            Some(r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#)
        );
        assert!(m.step(b"again").is_err());
    }
}
