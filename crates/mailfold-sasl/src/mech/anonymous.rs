//! ANONYMOUS (RFC 4505): one client message carrying optional trace information (an
//! email address or an opaque token) and no credentials. Only used when the account is
//! configured for it (seed V0029).

use super::{one_message_mechanism, OneMessage};
use crate::credentials::Credentials;
use crate::error::SaslError;

const NAME: &str = "ANONYMOUS";

/// RFC 4505 section 3: the trace is at most 255 characters.
const MAX_TRACE_CHARS: usize = 255;

/// Client side of ANONYMOUS.
#[derive(Debug)]
pub struct Anonymous(OneMessage);

impl Anonymous {
    /// Uses `credentials.authcid` as the trace (see [`Credentials::anonymous`]).
    pub fn new(credentials: &Credentials) -> Result<Self, SaslError> {
        let trace = credentials.authcid.clone();
        if trace.chars().count() > MAX_TRACE_CHARS {
            return Err(SaslError::credentials(
                "ANONYMOUS trace is longer than 255 characters",
            ));
        }
        if trace.chars().any(char::is_control) {
            return Err(SaslError::credentials(
                "ANONYMOUS trace contains control characters",
            ));
        }
        Ok(Anonymous(OneMessage::new(NAME, trace.into_bytes(), None)))
    }
}

one_message_mechanism!(Anonymous);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::Mechanism;

    /// RFC 4505 section 4: the trace "sirhc", sent after an empty challenge.
    #[test]
    fn rfc4505_example_sirhc() {
        let mut m = Anonymous::new(&Credentials::anonymous("sirhc")).unwrap();
        assert_eq!(m.step(b"").unwrap().expose().as_slice(), b"sirhc");
        assert!(m.is_complete());
        assert!(m.step(b"").is_err());
    }

    #[test]
    fn empty_trace_and_limits() {
        let mut m = Anonymous::new(&Credentials::anonymous("")).unwrap();
        assert_eq!(m.initial_response().unwrap().unwrap().expose().len(), 0);
        assert!(Anonymous::new(&Credentials::anonymous("é".repeat(255))).is_ok());
        assert!(Anonymous::new(&Credentials::anonymous("a".repeat(256))).is_err());
        assert!(Anonymous::new(&Credentials::anonymous("a\nb")).is_err());
    }
}
