//! What the user authenticates with: identities and one secret (a password or an OAuth
//! access token). The secret is held in [`Secret`], so `Debug` never shows it.

use crate::secret::Secret;

/// An account's SASL credentials.
///
/// `Debug` prints the identities and `Secret(<redacted>)` for the secret, so a
/// `Credentials` value can be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Authentication identity (the user name; for ANONYMOUS, the trace token).
    pub authcid: String,
    /// Authorization identity: act as this user, when the server allows it (RFC 4422
    /// section 3.4.1). `None` means "the same as `authcid`".
    pub authzid: Option<String>,
    /// The password, or the OAuth 2.0 bearer token for XOAUTH2 / OAUTHBEARER.
    pub secret: Secret<String>,
    /// Where the secret came from, in words for an error message (`password_command of
    /// account work`), so that a refused login says what to fix. Never the secret itself.
    pub origin: Option<String>,
}

impl Credentials {
    /// User name and password.
    pub fn password(authcid: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            authcid: authcid.into(),
            authzid: None,
            secret: Secret::new(password.into()),
            origin: None,
        }
    }

    /// User name and OAuth 2.0 access token (XOAUTH2, OAUTHBEARER).
    pub fn bearer_token(authcid: impl Into<String>, token: impl Into<String>) -> Self {
        Credentials {
            authcid: authcid.into(),
            authzid: None,
            secret: Secret::new(token.into()),
            origin: None,
        }
    }

    /// ANONYMOUS access with an optional trace token (RFC 4505 section 2): an email
    /// address or an opaque string; empty sends no trace.
    pub fn anonymous(trace: impl Into<String>) -> Self {
        Credentials {
            authcid: trace.into(),
            authzid: None,
            secret: Secret::new(String::new()),
            origin: None,
        }
    }

    /// Sets the authorization identity.
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = Some(authzid.into());
        self
    }

    /// Sets where the secret came from (see [`Credentials::origin`]).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The authorization identity when one is set and non-empty.
    pub(crate) fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref().filter(|a| !a.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let c = Credentials::password("tim", "tanstaaftanstaaf").with_authzid("admin");
        let shown = format!("{c:?}");
        assert!(!shown.contains("tanstaaf"), "{shown}");
        assert!(shown.contains("tim"));
        assert!(shown.contains("Secret(<redacted>)"));

        let t = Credentials::bearer_token("u@example.com", "ya29.vF9dft4qmTc2");
        let shown = format!("{t:?} {:#?}", t);
        assert!(!shown.contains("ya29"), "{shown}");
    }
}
