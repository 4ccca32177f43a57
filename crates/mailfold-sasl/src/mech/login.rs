//! LOGIN (draft-murchison-sasl-login): the server prompts twice and the client answers
//! with the user name, then the password. The prompt texts vary between servers
//! ("User Name", "Username:") and carry no meaning, so only their order is used.

use super::check_size;
use super::{Mechanism, Response};
use crate::credentials::Credentials;
use crate::error::SaslError;
use crate::secret::Secret;

const NAME: &str = "LOGIN";

/// Client side of LOGIN.
#[derive(Debug)]
pub struct Login {
    user: String,
    password: Secret<String>,
    answered: u8,
}

impl Login {
    /// Prepares the two answers.
    pub fn new(credentials: &Credentials) -> Self {
        Login {
            user: credentials.authcid.clone(),
            password: credentials.secret.clone(),
            answered: 0,
        }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &'static str {
        NAME
    }

    /// LOGIN is server-first: the draft defines no initial response.
    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, prompt: &[u8]) -> Result<Response, SaslError> {
        check_size(NAME, prompt)?;
        let answer = match self.answered {
            0 => self.user.as_bytes().to_vec(),
            1 => self.password.expose().as_bytes().to_vec(),
            _ => return Err(SaslError::UnexpectedChallenge { mechanism: NAME }),
        };
        self.answered += 1;
        Ok(Secret::new(answer))
    }

    fn is_complete(&self) -> bool {
        self.answered == 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draft's exchange: `User Name` then `Password` prompts.
    #[test]
    fn draft_exchange() {
        let mut m = Login::new(&Credentials::password("tim", "tanstaaftanstaaf"));
        assert!(m.initial_response().unwrap().is_none());
        assert_eq!(m.step(b"User Name").unwrap().expose().as_slice(), b"tim");
        assert!(!m.is_complete());
        assert_eq!(
            m.step(b"Password").unwrap().expose().as_slice(),
            b"tanstaaftanstaaf"
        );
        assert!(m.is_complete());
        assert!(m.step(b"More?").is_err());
    }
}
