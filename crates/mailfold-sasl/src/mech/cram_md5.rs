//! CRAM-MD5 (RFC 2195): the server sends a challenge string; the client answers with
//! its user name, a space, and the lower-case hex HMAC-MD5 of the challenge keyed with
//! the password.

use hmac::{Hmac, Mac};
use md5::Md5;

use super::{check_size, hex};
use super::{Mechanism, Response};
use crate::credentials::Credentials;
use crate::error::SaslError;
use crate::secret::Secret;

const NAME: &str = "CRAM-MD5";

/// Client side of CRAM-MD5.
#[derive(Debug)]
pub struct CramMd5 {
    user: String,
    password: Secret<String>,
    done: bool,
}

impl CramMd5 {
    /// Prepares the mechanism.
    pub fn new(credentials: &Credentials) -> Self {
        CramMd5 {
            user: credentials.authcid.clone(),
            password: credentials.secret.clone(),
            done: false,
        }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        if self.done {
            return Err(SaslError::UnexpectedChallenge { mechanism: NAME });
        }
        check_size(NAME, challenge)?;
        if challenge.is_empty() {
            return Err(SaslError::malformed(NAME, "empty challenge"));
        }
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Md5> as Mac>::new_from_slice(self.password.expose().as_bytes())
            .map_err(|_| SaslError::credentials("password unusable as HMAC key"))?;
        mac.update(challenge);
        let digest = hex(&mac.finalize().into_bytes());
        self.done = true;
        Ok(Secret::new(format!("{} {digest}", self.user).into_bytes()))
    }

    fn is_complete(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2195 section 2, the example exchange.
    #[test]
    fn rfc2195_example() {
        let mut m = CramMd5::new(&Credentials::password("tim", "tanstaaftanstaaf"));
        assert!(m.initial_response().unwrap().is_none());
        let r = m
            .step(b"<1896.697170952@postoffice.reston.mci.net>")
            .unwrap();
        assert_eq!(
            r.expose().as_slice(),
            b"tim b913a602c7eda7a495b4e6e7334d3890"
        );
        assert!(m.is_complete());
        assert!(m.step(b"<again>").is_err());
    }

    #[test]
    fn empty_challenge_is_refused() {
        let mut m = CramMd5::new(&Credentials::password("tim", "x"));
        assert!(m.step(b"").is_err());
    }
}
