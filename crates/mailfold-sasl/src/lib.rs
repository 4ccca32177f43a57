//! # mailfold-sasl: sans-IO SASL client mechanisms
//!
//! Every mechanism an IMAP client meets (seed V0027, E0001, E0002): PLAIN, LOGIN,
//! CRAM-MD5, DIGEST-MD5, NTLM (v2 only), SCRAM-SHA-1, SCRAM-SHA-256 (and their
//! `-PLUS` forms), XOAUTH2, OAUTHBEARER and ANONYMOUS, each tested on its
//! specification's published example exchange.
//!
//! The crate does no I/O and reads no clock: a [`Mechanism`] takes decoded server
//! challenges and returns decoded client responses (the IMAP layer does the base64);
//! nonces come from a caller-supplied [`NonceSource`] and NTLM's time from
//! [`ClientContext::filetime`]. Which mechanisms to try, in which order, and what to do
//! after a failure is decided by [`policy`] (seeds V0031, V0032, V0034).
//!
//! ```
//! use mailfold_sasl::{new_mechanism, ClientContext, Credentials, MechanismName, OsNonceSource};
//!
//! let creds = Credentials::password("tim", "tanstaaftanstaaf");
//! let ctx = ClientContext::imap("imap.example.org", 993);
//! let mut m = new_mechanism(MechanismName::CramMd5, &creds, &ctx, &mut OsNonceSource)?;
//! assert!(m.initial_response()?.is_none()); // CRAM-MD5 is server-first
//! let answer = m.step(b"<1896.697170952@postoffice.reston.mci.net>")?;
//! assert_eq!(answer.expose().as_slice(), b"tim b913a602c7eda7a495b4e6e7334d3890");
//! # Ok::<(), mailfold_sasl::SaslError>(())
//! ```
#![forbid(unsafe_code)]

pub mod context;
pub mod credentials;
pub mod error;
pub mod mech;
pub mod mechanism;
pub mod nonce;
pub mod policy;
pub mod quirks;
pub mod saslprep;
pub mod secret;

pub use credentials::Credentials;
pub use error::SaslError;
pub use mechanism::{
    filetime_from_unix, new_mechanism, ChannelBinding, ClientContext, Mechanism, MechanismName,
    Response,
};
pub use nonce::{FixedNonces, NonceSource, OsNonceSource};
pub use policy::{
    choose_mechanisms, login_command_allowed, next_after_failure, FailureKind, GiveUpReason,
    NextAttempt, Policy, SecretKind,
};
pub use secret::Secret;
