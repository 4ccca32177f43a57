//! OAUTHBEARER (RFC 7628): a GS2 header, then `^A`-separated key/value pairs with the
//! host, port and `auth=Bearer <token>`. On failure the server sends a JSON error as a
//! challenge and the client must answer with a single `^A` (RFC 7628 section 3.2.3),
//! after which the server sends its NO.

use super::{check_bearer, gs2_saslname, one_message_mechanism, OneMessage};
use crate::context::ClientContext;
use crate::credentials::Credentials;
use crate::error::SaslError;

const NAME: &str = "OAUTHBEARER";

/// Client side of OAUTHBEARER.
#[derive(Debug)]
pub struct OAuthBearer(OneMessage);

impl OAuthBearer {
    /// Builds the client message. The GS2 authzid (`a=`) is the authorization identity
    /// when set, else the user name (servers such as Dovecot take the user from it);
    /// `host` and `port` come from the context when known.
    pub fn new(credentials: &Credentials, context: &ClientContext) -> Result<Self, SaslError> {
        let token = credentials.secret.expose();
        let user = credentials.authzid().unwrap_or(&credentials.authcid);
        check_bearer(user, token)?;
        if context.host.chars().any(char::is_control) {
            return Err(SaslError::credentials(
                "host name contains control characters",
            ));
        }
        let mut m = String::from("n,");
        if !user.is_empty() {
            m.push_str("a=");
            m.push_str(&gs2_saslname(user));
        }
        m.push_str(",\x01");
        if !context.host.is_empty() {
            m.push_str("host=");
            m.push_str(&context.host);
            m.push('\x01');
        }
        if context.port != 0 {
            m.push_str(&format!("port={}\x01", context.port));
        }
        m.push_str("auth=Bearer ");
        m.push_str(token);
        m.push_str("\x01\x01");
        // RFC 7628 3.2.3: the client answers the server's error challenge with a single ^A.
        Ok(OAuthBearer(OneMessage::new(
            NAME,
            m.into_bytes(),
            Some(b"\x01"),
        )))
    }
}

one_message_mechanism!(OAuthBearer);

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::mech::Mechanism;

    const STD: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn rfc_example() -> OAuthBearer {
        let creds = Credentials::bearer_token(
            "user@example.com",
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        );
        OAuthBearer::new(&creds, &ClientContext::imap("server.example.com", 143)).unwrap()
    }

    /// RFC 7628 section 4.1: the successful IMAP exchange, byte for byte.
    #[test]
    fn rfc7628_section_4_1_success() {
        let mut m = rfc_example();
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
              auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(
            STD.encode(ir.expose()),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1\
             dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
        assert!(m.is_complete());
    }

    /// RFC 7628 section 4.3: the server's JSON error is answered with `AQ==` (0x01).
    #[test]
    fn rfc7628_section_4_3_failure() {
        let mut m = rfc_example();
        m.initial_response().unwrap();
        let challenge = STD
            .decode(
                "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3Blbmlk\
                 LWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1j\
                 b25maWd1cmF0aW9uIn0=",
            )
            .unwrap();
        let r = m.step(&challenge).unwrap();
        assert_eq!(STD.encode(r.expose()), "AQ==");
        assert!(!m.is_complete());
        assert!(m.server_error().unwrap().contains("invalid_token"));
        assert!(m.step(b"{}").is_err());
    }

    #[test]
    fn without_host_or_user() {
        let creds = Credentials::bearer_token("", "tok");
        let mut m = OAuthBearer::new(&creds, &ClientContext::imap("", 0)).unwrap();
        assert_eq!(
            m.step(b"").unwrap().expose().as_slice(),
            b"n,,\x01auth=Bearer tok\x01\x01"
        );
    }
}
