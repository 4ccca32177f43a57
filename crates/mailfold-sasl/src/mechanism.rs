//! The registry: the names of the mechanisms this crate speaks, and the factory that builds
//! one from credentials and connection facts. It stands above the mechanisms it builds
//! ([`crate::mech`], which also holds the [`Mechanism`] interface they implement) and the
//! connection facts they read ([`crate::context`]); both are re-exported here, where they
//! have always been named.

use std::fmt;
use std::str::FromStr;

use crate::credentials::Credentials;
use crate::error::SaslError;
use crate::mech;
use crate::nonce::NonceSource;

pub use crate::context::{filetime_from_unix, ChannelBinding, ClientContext};
pub use crate::mech::{Mechanism, Response};

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MechanismName {
    /// SCRAM-SHA-256-PLUS (RFC 7677) with channel binding.
    ScramSha256Plus,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-1-PLUS (RFC 5802) with channel binding.
    ScramSha1Plus,
    /// SCRAM-SHA-1 (RFC 5802).
    ScramSha1,
    /// OAUTHBEARER (RFC 7628).
    OAuthBearer,
    /// XOAUTH2 (Google's OAuth 2.0 mechanism).
    XOAuth2,
    /// DIGEST-MD5 (RFC 2831, historic per RFC 6331).
    DigestMd5,
    /// CRAM-MD5 (RFC 2195).
    CramMd5,
    /// NTLM (MS-NLMP), NTLMv2 responses only.
    Ntlm,
    /// PLAIN (RFC 4616): reveals the password to the server.
    Plain,
    /// LOGIN (draft-murchison-sasl-login): reveals the password to the server.
    Login,
    /// ANONYMOUS (RFC 4505).
    Anonymous,
}

impl MechanismName {
    /// Every mechanism, strongest first.
    pub const ALL: [MechanismName; 12] = [
        MechanismName::ScramSha256Plus,
        MechanismName::ScramSha256,
        MechanismName::ScramSha1Plus,
        MechanismName::ScramSha1,
        MechanismName::OAuthBearer,
        MechanismName::XOAuth2,
        MechanismName::DigestMd5,
        MechanismName::CramMd5,
        MechanismName::Ntlm,
        MechanismName::Plain,
        MechanismName::Login,
        MechanismName::Anonymous,
    ];

    /// The registered name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            MechanismName::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            MechanismName::ScramSha256 => "SCRAM-SHA-256",
            MechanismName::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            MechanismName::ScramSha1 => "SCRAM-SHA-1",
            MechanismName::OAuthBearer => "OAUTHBEARER",
            MechanismName::XOAuth2 => "XOAUTH2",
            MechanismName::DigestMd5 => "DIGEST-MD5",
            MechanismName::CramMd5 => "CRAM-MD5",
            MechanismName::Ntlm => "NTLM",
            MechanismName::Plain => "PLAIN",
            MechanismName::Login => "LOGIN",
            MechanismName::Anonymous => "ANONYMOUS",
        }
    }

    /// Parses a mechanism name in any case, with or without the `AUTH=` capability
    /// prefix and surrounding blanks (seed V0027 quotes `AUTH= DIGEST-MD5`). Unknown
    /// names give `None`: a client ignores mechanisms it does not know.
    pub fn parse(advertised: &str) -> Option<Self> {
        let s = advertised.trim();
        let s = match s.get(..5) {
            Some(prefix) if prefix.eq_ignore_ascii_case("AUTH=") => s[5..].trim_start(),
            _ => s,
        };
        MechanismName::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// The mechanism sends the password itself (RFC 4616 section 4, seed V0031): it is
    /// only acceptable inside TLS unless the account allows plaintext passwords.
    pub fn reveals_password(self) -> bool {
        matches!(self, MechanismName::Plain | MechanismName::Login)
    }

    /// The mechanism puts a reusable secret on the wire as is: the password (PLAIN,
    /// LOGIN) or a bearer token (XOAUTH2, OAUTHBEARER; RFC 7628 section 5 requires TLS
    /// for them). Without TLS these are refused unless the account allows it (V0031).
    pub fn sends_secret_in_clear(self) -> bool {
        self.reveals_password() || self.uses_token()
    }

    /// The server proves knowledge of the credentials (mutual authentication), so an
    /// impostor is detected.
    pub fn proves_server(self) -> bool {
        matches!(
            self,
            MechanismName::ScramSha256Plus
                | MechanismName::ScramSha256
                | MechanismName::ScramSha1Plus
                | MechanismName::ScramSha1
                | MechanismName::DigestMd5
        )
    }

    /// The secret is an OAuth 2.0 bearer token rather than a password.
    pub fn uses_token(self) -> bool {
        matches!(self, MechanismName::OAuthBearer | MechanismName::XOAuth2)
    }

    /// The mechanism binds to the TLS channel (`-PLUS`).
    pub fn needs_channel_binding(self) -> bool {
        matches!(
            self,
            MechanismName::ScramSha256Plus | MechanismName::ScramSha1Plus
        )
    }
}

impl fmt::Display for MechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MechanismName {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MechanismName::parse(s).ok_or_else(|| SaslError::UnknownMechanism(s.to_owned()))
    }
}

/// Builds the client side of `name` for these credentials.
///
/// Nonces are drawn from `nonces` now (pass [`crate::OsNonceSource`] in real use).
/// Fails when the credentials cannot be expressed in the mechanism, or when a `-PLUS`
/// mechanism is requested without channel-binding data.
pub fn new_mechanism(
    name: MechanismName,
    credentials: &Credentials,
    context: &ClientContext,
    nonces: &mut dyn NonceSource,
) -> Result<Box<dyn Mechanism>, SaslError> {
    use mech::scram::{Scram, ScramHash};
    Ok(match name {
        MechanismName::Plain => Box::new(mech::plain::Plain::new(credentials)?),
        MechanismName::Login => Box::new(mech::login::Login::new(credentials)),
        MechanismName::CramMd5 => Box::new(mech::cram_md5::CramMd5::new(credentials)),
        MechanismName::DigestMd5 => Box::new(mech::digest_md5::DigestMd5::new(
            credentials,
            context,
            nonces,
        )?),
        MechanismName::Ntlm => Box::new(mech::ntlm::Ntlm::new(credentials, context, nonces)?),
        MechanismName::ScramSha1
        | MechanismName::ScramSha256
        | MechanismName::ScramSha1Plus
        | MechanismName::ScramSha256Plus => {
            let hash = match name {
                MechanismName::ScramSha1 | MechanismName::ScramSha1Plus => ScramHash::Sha1,
                _ => ScramHash::Sha256,
            };
            Box::new(Scram::new(
                hash,
                credentials,
                context.channel_binding.clone(),
                name.needs_channel_binding(),
                nonces,
            )?)
        }
        MechanismName::XOAuth2 => Box::new(mech::xoauth2::XOAuth2::new(credentials)?),
        MechanismName::OAuthBearer => {
            Box::new(mech::oauthbearer::OAuthBearer::new(credentials, context)?)
        }
        MechanismName::Anonymous => Box::new(mech::anonymous::Anonymous::new(credentials)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for m in MechanismName::ALL {
            assert_eq!(MechanismName::parse(m.as_str()), Some(m));
            assert_eq!(MechanismName::parse(&m.as_str().to_lowercase()), Some(m));
            assert_eq!(MechanismName::parse(&format!("AUTH={m}")), Some(m));
            assert_eq!(m.to_string().parse::<MechanismName>().ok(), Some(m));
        }
        assert_eq!(
            MechanismName::parse("auth= digest-md5"),
            Some(MechanismName::DigestMd5)
        );
        assert_eq!(MechanismName::parse("GSSAPI"), None);
        assert_eq!(MechanismName::parse("AUTH="), None);
        assert_eq!(MechanismName::parse(""), None);
        assert_eq!(MechanismName::parse("é"), None);
    }
}
