//! Which mechanisms to try, in which order, and what to do after one fails
//! (seeds V0027, V0029, V0031, V0032, V0034, E0001, E0002).
//!
//! # The rules
//!
//! * **Only advertised mechanisms** (V0032): a mechanism is tried only if the server
//!   listed it as `AUTH=<name>`; names this crate does not know are ignored (V0027).
//! * **Strongest first** (E0002, V0034): by default SCRAM-SHA-256(-PLUS),
//!   SCRAM-SHA-1(-PLUS), OAUTHBEARER, XOAUTH2, DIGEST-MD5, CRAM-MD5, NTLM, PLAIN,
//!   LOGIN; ANONYMOUS only when the account is configured for it (V0029). An explicit
//!   order in the [`Policy`] replaces the default (and leaves out what it omits).
//! * **The secret decides the family**: an account with a password uses password
//!   mechanisms, one with an OAuth token uses OAUTHBEARER and XOAUTH2.
//! * **No secret in clear without TLS** (V0031): PLAIN, LOGIN, the LOGIN command, and
//!   the bearer-token mechanisms are left out on a connection without TLS unless the
//!   account sets [`Policy::allow_plaintext_password`]. Outlook sends passwords without
//!   protection; mailfold does not, by default.
//! * **LOGIN command as last resort** (V0032, V0034): only when no advertised mechanism
//!   is usable, or all have failed; never when the server says `LOGINDISABLED`, never
//!   when the account's policy turns it off, and under the same plaintext rule.
//!
//! # The fallback rule after a failure
//!
//! When an AUTHENTICATE ends in NO, or the mechanism itself fails, the driver asks
//! [`next_after_failure`]. It may go on to the next mechanism in the chosen list (and
//! finally to the LOGIN command) **only if** the mechanism itself was refused, by the
//! client (a challenge it cannot answer) or by the server (BAD, `[CANNOT]`, a NO before any
//! credentials were exchanged), and no credentials were judged:
//!
//! * a credentials rejection (`[AUTHENTICATIONFAILED]`, or any NO after the server took up
//!   the mechanism and received the client's messages) ends the login, over TLS or not.
//!   Trying the same wrong password with every other mechanism only multiplies failed logins
//!   on the account, which servers count towards lock-outs and fail2ban-style bans, and over
//!   plaintext would hand an eavesdropper more to work with (V0034); and
//! * the server did not fail to prove itself. A server that cannot produce the SCRAM
//!   server signature or the DIGEST-MD5 `rspauth` does not know the password: it is an
//!   impostor or broken, and nothing more, least of all a mechanism that reveals the
//!   password, is sent to it. The driver must also treat a tagged OK that arrives
//!   before [`crate::Mechanism::is_complete`] as such a failure.
//!
//! Failures that no other mechanism can fix (`UNAVAILABLE`, `EXPIRED`,
//! `PRIVACYREQUIRED`, `CONTACTADMIN`, `AUTHORIZATIONFAILED`, RFC 5530) end the attempt.

use crate::error::SaslError;
use crate::mechanism::MechanismName;

/// The default order, strongest first (E0002).
pub const DEFAULT_ORDER: [MechanismName; 12] = MechanismName::ALL;

/// What kind of secret the account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretKind {
    /// A password: password mechanisms and the LOGIN command.
    #[default]
    Password,
    /// An OAuth 2.0 access token: OAUTHBEARER and XOAUTH2.
    OAuthToken,
    /// No secret: only ANONYMOUS, if allowed.
    None,
}

/// An account's authentication policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The account's secret.
    pub secret: SecretKind,
    /// Explicit preference order; `None` uses [`DEFAULT_ORDER`]. Mechanisms not listed
    /// are never used.
    pub order: Option<Vec<MechanismName>>,
    /// Allow PLAIN, LOGIN, the LOGIN command and bearer tokens without TLS (seed
    /// V0031). Off by default; meant for loopback test servers.
    pub allow_plaintext_password: bool,
    /// Allow ANONYMOUS (seed V0029).
    pub allow_anonymous: bool,
    /// Allow the IMAP LOGIN command as a last resort (V0034: "when the LOGIN command
    /// is not disabled by a user/administrator policy").
    pub allow_login_command: bool,
    /// The TLS layer can supply channel-binding data, so `-PLUS` SCRAM may be used.
    pub channel_binding_available: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            secret: SecretKind::Password,
            order: None,
            allow_plaintext_password: false,
            allow_anonymous: false,
            allow_login_command: true,
            channel_binding_available: false,
        }
    }
}

impl Policy {
    /// The default policy for an account with a password.
    pub fn password() -> Self {
        Policy::default()
    }

    /// The default policy for an account with an OAuth 2.0 token.
    pub fn oauth_token() -> Self {
        Policy {
            secret: SecretKind::OAuthToken,
            ..Policy::default()
        }
    }

    /// An account that logs in anonymously (V0029).
    pub fn anonymous() -> Self {
        Policy {
            secret: SecretKind::None,
            allow_anonymous: true,
            allow_login_command: false,
            ..Policy::default()
        }
    }

    fn usable(&self, m: MechanismName, tls_active: bool) -> bool {
        let family = match m {
            MechanismName::Anonymous => self.allow_anonymous,
            m if m.uses_token() => self.secret == SecretKind::OAuthToken,
            _ => self.secret == SecretKind::Password,
        };
        let transport = !m.sends_secret_in_clear() || tls_active || self.allow_plaintext_password;
        let binding = !m.needs_channel_binding() || (tls_active && self.channel_binding_available);
        family && transport && binding
    }

    /// The LOGIN command is permitted at all: the account has a password, the policy
    /// allows the command, the server has not disabled it, and the password would not
    /// travel in clear against the plaintext rule.
    fn login_permitted(&self, login_disabled: bool, tls_active: bool) -> bool {
        // An explicit mechanism list is the user's whole choice: the LOGIN command, which
        // reveals the password just as the LOGIN mechanism does, is allowed only when that
        // list names LOGIN.
        let order_allows = self
            .order
            .as_ref()
            .is_none_or(|o| o.contains(&MechanismName::Login));
        self.allow_login_command
            && order_allows
            && !login_disabled
            && self.secret == SecretKind::Password
            && (tls_active || self.allow_plaintext_password)
    }
}

/// The mechanisms to try, in order, given the server's `AUTH=` names (with or without
/// the `AUTH=` prefix, any case; unknown names ignored), the policy, and whether the
/// connection is protected by TLS.
pub fn choose_mechanisms(
    advertised: &[&str],
    policy: &Policy,
    tls_active: bool,
) -> Vec<MechanismName> {
    let offered: Vec<MechanismName> = advertised
        .iter()
        .filter_map(|a| MechanismName::parse(a))
        .collect();
    let order: &[MechanismName] = policy.order.as_deref().unwrap_or(&DEFAULT_ORDER);
    let mut chosen = Vec::new();
    for &m in order {
        if offered.contains(&m) && !chosen.contains(&m) && policy.usable(m, tls_active) {
            chosen.push(m);
        }
    }
    chosen
}

/// Whether the IMAP LOGIN command may be used instead of AUTHENTICATE: no advertised
/// mechanism is usable (V0032), the server did not send `LOGINDISABLED`, and the
/// plaintext rule (V0031) and the policy allow it.
pub fn login_command_allowed(
    advertised: &[&str],
    login_disabled: bool,
    policy: &Policy,
    tls_active: bool,
) -> bool {
    policy.login_permitted(login_disabled, tls_active)
        && choose_mechanisms(advertised, policy, tls_active).is_empty()
}

/// How an authentication attempt failed, as far as the fallback rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server said NO with `AUTHENTICATIONFAILED`, or with no code after it took up
    /// the mechanism: the credentials may be wrong.
    CredentialsRejected,
    /// The server did not prove it knows the credentials
    /// ([`SaslError::ServerProofMismatch`], or an OK before the mechanism completed).
    ServerProofFailed,
    /// The mechanism could not run, and no credential was judged: the client refused
    /// the challenge (malformed, unsupported), or the server refused the mechanism
    /// itself (BAD, `CANNOT`).
    MechanismUnusable,
    /// A condition no other mechanism fixes (`UNAVAILABLE`, `EXPIRED`,
    /// `PRIVACYREQUIRED`, `CONTACTADMIN`, `AUTHORIZATIONFAILED`).
    Final,
}

impl FailureKind {
    /// Classifies a tagged NO by its response code (RFC 5530), given without
    /// brackets, e.g. `Some("AUTHENTICATIONFAILED")`. Unknown or absent codes count as
    /// a possible credentials rejection, the cautious reading.
    pub fn from_response_code(code: Option<&str>) -> Self {
        let Some(code) = code else {
            return FailureKind::CredentialsRejected;
        };
        let code = code.trim().to_ascii_uppercase();
        match code.as_str() {
            "UNAVAILABLE"
            | "EXPIRED"
            | "PRIVACYREQUIRED"
            | "CONTACTADMIN"
            | "AUTHORIZATIONFAILED" => FailureKind::Final,
            "CANNOT" => FailureKind::MechanismUnusable,
            _ => FailureKind::CredentialsRejected,
        }
    }

    /// Classifies an error raised by the mechanism on the client side.
    pub fn from_error(error: &SaslError) -> Self {
        match error {
            SaslError::ServerProofMismatch { .. } => FailureKind::ServerProofFailed,
            // SCRAM `e=`: the server judged the proof, which is a credentials verdict.
            SaslError::ServerError { .. } => FailureKind::CredentialsRejected,
            _ => FailureKind::MechanismUnusable,
        }
    }
}

/// Why the driver should stop trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The server failed to prove itself; it may be an impostor.
    ServerNotProven,
    /// The server rejected the credentials; no other mechanism is tried with them, so a
    /// wrong password costs one failed login (V0034).
    CredentialsRejected,
    /// The server reported a condition another mechanism cannot fix.
    ServerRefused,
    /// Every permitted mechanism (and the LOGIN command, if permitted) was tried.
    Exhausted,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// AUTHENTICATE with this mechanism.
    Mechanism(MechanismName),
    /// The IMAP LOGIN command, as the last resort.
    LoginCommand,
    /// Stop and report the failure.
    GiveUp(GiveUpReason),
}

/// The fallback rule (see the module documentation): after `failed`, taken from
/// `chosen` (the list [`choose_mechanisms`] returned), failed with `failure`, what next?
///
/// A `failed` mechanism that is not in `chosen` has no successor, so the answer is the
/// LOGIN command or giving up; this keeps a confused caller from looping.
pub fn next_after_failure(
    chosen: &[MechanismName],
    failed: MechanismName,
    failure: FailureKind,
    policy: &Policy,
    login_disabled: bool,
    tls_active: bool,
) -> NextAttempt {
    match failure {
        FailureKind::ServerProofFailed => {
            return NextAttempt::GiveUp(GiveUpReason::ServerNotProven)
        }
        FailureKind::Final => return NextAttempt::GiveUp(GiveUpReason::ServerRefused),
        FailureKind::CredentialsRejected => {
            return NextAttempt::GiveUp(GiveUpReason::CredentialsRejected)
        }
        FailureKind::MechanismUnusable => {}
    }
    let rest = match chosen.iter().position(|&m| m == failed) {
        Some(i) => &chosen[i + 1..],
        None => &[],
    };
    if let Some(&next) = rest.first() {
        return NextAttempt::Mechanism(next);
    }
    if policy.login_permitted(login_disabled, tls_active) {
        NextAttempt::LoginCommand
    } else {
        NextAttempt::GiveUp(GiveUpReason::Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MechanismName::*;

    #[test]
    fn explicit_order_without_login_forbids_the_login_command() {
        let mut p = Policy::password();
        p.order = Some(vec![Plain]);
        let chosen = choose_mechanisms(&["PLAIN", "LOGIN"], &p, true);
        assert_eq!(chosen, vec![Plain]);
        assert_eq!(
            next_after_failure(
                &chosen,
                Plain,
                FailureKind::MechanismUnusable,
                &p,
                false,
                true
            ),
            NextAttempt::GiveUp(GiveUpReason::Exhausted)
        );
        assert!(!login_command_allowed(&["PLAIN"], false, &p, true));
        p.order = Some(vec![Plain, Login]);
        assert!(login_command_allowed(&[], false, &p, true));
    }

    #[test]
    fn plus_needs_tls_and_binding() {
        let adv = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];
        let mut p = Policy::password();
        assert_eq!(choose_mechanisms(&adv, &p, true), vec![ScramSha256]);
        p.channel_binding_available = true;
        assert_eq!(
            choose_mechanisms(&adv, &p, true),
            vec![ScramSha256Plus, ScramSha256]
        );
        assert_eq!(choose_mechanisms(&adv, &p, false), vec![ScramSha256]);
    }

    #[test]
    fn response_codes_classify() {
        use FailureKind::*;
        assert_eq!(FailureKind::from_response_code(None), CredentialsRejected);
        assert_eq!(
            FailureKind::from_response_code(Some("authenticationfailed")),
            CredentialsRejected
        );
        assert_eq!(FailureKind::from_response_code(Some("UNAVAILABLE")), Final);
        assert_eq!(
            FailureKind::from_response_code(Some("PRIVACYREQUIRED")),
            Final
        );
        assert_eq!(
            FailureKind::from_response_code(Some("CANNOT")),
            MechanismUnusable
        );
        assert_eq!(
            FailureKind::from_error(&SaslError::ServerProofMismatch { mechanism: "X" }),
            ServerProofFailed
        );
        assert_eq!(
            FailureKind::from_error(&SaslError::UnexpectedChallenge { mechanism: "X" }),
            MechanismUnusable
        );
    }

    #[test]
    fn duplicates_and_explicit_order() {
        let adv = ["PLAIN", "plain", "AUTH=CRAM-MD5"];
        let p = Policy {
            order: Some(vec![Plain, CramMd5, Plain]),
            ..Policy::password()
        };
        assert_eq!(choose_mechanisms(&adv, &p, true), vec![Plain, CramMd5]);
    }
}
