//! The one error type of this crate, grouped by cause: the peer misbehaved, the peer
//! failed to prove itself, the configuration cannot be used, or the API was misused.

use std::fmt;

/// Why a SASL exchange could not go on.
///
/// The variants say *who* is at fault, because the fallback policy
/// ([`crate::policy::next_after_failure`]) treats them differently: a server that fails
/// its proof ([`SaslError::ServerProofMismatch`]) ends the whole authentication, while a
/// challenge we merely cannot use lets the driver try the next mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// The server's challenge does not follow the mechanism's grammar (peer misbehaved).
    MalformedChallenge {
        /// Mechanism name, e.g. `"DIGEST-MD5"`.
        mechanism: &'static str,
        /// What was wrong, without echoing secret material.
        reason: String,
    },
    /// The server could not prove that it knows the credentials (SCRAM `v=`, DIGEST-MD5
    /// `rspauth`): it is an impostor or broken. Nothing more may be sent to it.
    ServerProofMismatch {
        /// Mechanism name.
        mechanism: &'static str,
    },
    /// The server reported an error inside the exchange (SCRAM `e=`). The text is the
    /// server's own.
    ServerError {
        /// Mechanism name.
        mechanism: &'static str,
        /// The server's error value, lossily decoded and truncated.
        message: String,
    },
    /// The challenge is well formed but asks for something this client refuses or does
    /// not implement (an iteration count out of range, a mandatory extension, a quality
    /// of protection other than `auth`, NTLMv1).
    Unsupported {
        /// Mechanism name.
        mechanism: &'static str,
        /// What was refused.
        reason: String,
    },
    /// The server sent a challenge after the mechanism had finished, or an empty one
    /// where data was required.
    UnexpectedChallenge {
        /// Mechanism name.
        mechanism: &'static str,
    },
    /// The configured credentials cannot be expressed in this mechanism (a NUL in a
    /// PLAIN user name, a password SASLprep rejects, a token with forbidden characters).
    InvalidCredentials {
        /// Which part is unusable and why; never the secret itself.
        reason: String,
    },
    /// The nonce source could not supply unpredictable bytes.
    Randomness(String),
    /// A mechanism name this crate does not implement.
    UnknownMechanism(String),
}

impl SaslError {
    /// True when the server failed to prove its identity. The driver must then abandon
    /// the connection without trying another mechanism (see [`crate::policy`]).
    pub fn is_server_proof_failure(&self) -> bool {
        matches!(self, SaslError::ServerProofMismatch { .. })
    }

    pub(crate) fn malformed(mechanism: &'static str, reason: impl Into<String>) -> Self {
        SaslError::MalformedChallenge {
            mechanism,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(mechanism: &'static str, reason: impl Into<String>) -> Self {
        SaslError::Unsupported {
            mechanism,
            reason: reason.into(),
        }
    }

    pub(crate) fn credentials(reason: impl Into<String>) -> Self {
        SaslError::InvalidCredentials {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::MalformedChallenge { mechanism, reason } => {
                write!(f, "{mechanism}: malformed server challenge: {reason}")
            }
            SaslError::ServerProofMismatch { mechanism } => write!(
                f,
                "{mechanism}: the server failed to prove it knows the credentials; \
                 it may be an impostor"
            ),
            SaslError::ServerError { mechanism, message } => {
                write!(f, "{mechanism}: server reported: {message}")
            }
            SaslError::Unsupported { mechanism, reason } => {
                write!(f, "{mechanism}: refused: {reason}")
            }
            SaslError::UnexpectedChallenge { mechanism } => {
                write!(f, "{mechanism}: unexpected server challenge")
            }
            SaslError::InvalidCredentials { reason } => {
                write!(f, "credentials unusable: {reason}")
            }
            SaslError::Randomness(why) => write!(f, "no randomness available: {why}"),
            SaslError::UnknownMechanism(name) => write!(f, "unknown SASL mechanism {name:?}"),
        }
    }
}

impl std::error::Error for SaslError {}

/// Server text copied into an error: lossily decoded, control characters replaced, and
/// cut to a bounded length so a hostile server cannot flood logs.
pub(crate) fn server_text(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
