//! XOAUTH2 (Google's and Microsoft's OAuth 2.0 mechanism):
//! `user=<user>^Aauth=Bearer <token>^A^A`. When the token is refused the server sends a
//! JSON error as a challenge; the client must answer with an empty response, after
//! which the server sends its NO.

use super::{check_bearer, check_size};
use super::{Mechanism, Response};
use crate::error::server_text;
use crate::{Credentials, SaslError, Secret};

const NAME: &str = "XOAUTH2";

/// Client side of XOAUTH2.
#[derive(Debug)]
pub struct XOAuth2 {
    message: Secret<Vec<u8>>,
    sent: bool,
    error: Option<String>,
}

impl XOAuth2 {
    /// Builds the message from the user name and the access token.
    pub fn new(credentials: &Credentials) -> Result<Self, SaslError> {
        let token = credentials.secret.expose();
        check_bearer(&credentials.authcid, token)?;
        let message = format!(
            "user={}\x01auth=Bearer {token}\x01\x01",
            credentials.authcid
        );
        Ok(XOAuth2 {
            message: Secret::new(message.into_bytes()),
            sent: false,
            error: None,
        })
    }
}

impl Mechanism for XOAuth2 {
    fn name(&self) -> &'static str {
        NAME
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
        if self.sent && self.error.is_none() {
            check_size(NAME, challenge)?;
            // The error JSON: keep it for the user, answer empty so the server ends
            // the exchange with its tagged NO.
            self.error = Some(server_text(challenge));
            return Ok(Secret::new(Vec::new()));
        }
        Err(SaslError::UnexpectedChallenge { mechanism: NAME })
    }

    fn is_complete(&self) -> bool {
        self.sent && self.error.is_none()
    }

    fn server_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

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
