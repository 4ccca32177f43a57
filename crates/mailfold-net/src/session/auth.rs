//! Authentication per the account's policy (seeds V0031, V0032, V0034): advertised
//! mechanisms only, strongest first, SASL-IR when offered, the LOGIN command last and never
//! with LOGINDISABLED, no password over cleartext unless allowed. The order and the fallback
//! rule are `mailfold_sasl`'s; server quirks are data in `mailfold_sasl::quirks`.

use std::sync::Arc;

use mailfold_proto::command::Command;
use mailfold_proto::engine::{CommandData, Outcome};
use mailfold_proto::response::Code;
use mailfold_sasl::quirks;
use mailfold_sasl::{
    choose_mechanisms, login_command_allowed, new_mechanism, next_after_failure, ClientContext,
    Credentials, FailureKind, GiveUpReason, MechanismName, NextAttempt, OsNonceSource, Policy,
    Secret,
};

use crate::error::Error;

use super::config::ConnectConfig;
use super::driver::Session;
use super::outcome::{code_name, outcome_text};
use super::report::{AuthAttempt, LOGIN_COMMAND};

impl Session {
    /// Authenticates per the policy: advertised mechanisms only, strongest first, SASL-IR
    /// when offered, the LOGIN command last and never with LOGINDISABLED, no password over
    /// cleartext unless allowed (seeds V0031, V0032, V0034).
    ///
    /// The steps: read what the server offers, choose the first attempt, gather the
    /// connection facts the mechanisms need, then try one attempt after another as
    /// `mailfold_sasl::next_after_failure` says until one authenticates or the policy gives up.
    pub(super) async fn authenticate(
        &mut self,
        cfg: &ConnectConfig,
        creds: &Credentials,
    ) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        let offer = self.auth_offer();
        let policy = &cfg.auth_policy;
        let chosen = choose_mechanisms(&offer.mechanisms(), policy, offer.tls);
        let mut next = offer.first_attempt(&chosen, policy)?;
        let ctx = self.sasl_context(&chosen, creds).await;
        loop {
            match next {
                NextAttempt::Mechanism(name) => {
                    let Some((failure, text)) =
                        self.try_mechanism(name, creds, &ctx, offer.sasl_ir).await?
                    else {
                        return Ok(());
                    };
                    tracing::info!("AUTHENTICATE {name} failed: {text}");
                    next = next_after_failure(
                        &chosen,
                        name,
                        failure,
                        policy,
                        offer.login_disabled,
                        offer.tls,
                    );
                    if let NextAttempt::GiveUp(reason) = next {
                        return Err(Error::Auth {
                            mechanism: name.to_string(),
                            text: match reason {
                                GiveUpReason::CredentialsRejected => refused(creds, &text),
                                reason => format!("{text} ({reason:?})"),
                            },
                        });
                    }
                }
                NextAttempt::LoginCommand => return self.login_command(creds).await,
                NextAttempt::GiveUp(reason) => {
                    return Err(Error::Auth {
                        mechanism: "-".into(),
                        text: format!("{reason:?}"),
                    })
                }
            }
        }
    }

    /// What the server offers for authentication, recorded in [`AuthInfo`] as it is read.
    ///
    /// [`AuthInfo`]: super::report::AuthInfo
    fn auth_offer(&mut self) -> AuthOffer {
        let caps = self.caps();
        let offer = AuthOffer {
            advertised: caps
                .auth_mechanisms()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            login_disabled: caps.has("LOGINDISABLED"),
            sasl_ir: caps.has("SASL-IR"),
            tls: self.engine.session().encrypted,
        };
        self.auth_info.capabilities_before = Some(caps.names().to_vec());
        self.auth_info.mechanisms_offered = offer.advertised.clone();
        offer
    }

    /// The connection facts the mechanisms in `chosen` put into their messages.
    async fn sasl_context(
        &mut self,
        chosen: &[MechanismName],
        creds: &Credentials,
    ) -> ClientContext {
        // NTLMv2 needs the client's clock when the server's challenge carries no timestamp
        // (Cyrus sends none); MS-NLMP 3.1.5.1.2 asks for the current time, and a zero
        // timestamp may be refused by stricter servers. The engine stays clock-free: the
        // driver reads the time here.
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut ctx = ClientContext::imap(self.host.clone(), self.port)
            .with_filetime(mailfold_sasl::filetime_from_unix(unix_now));
        if chosen.contains(&MechanismName::DigestMd5) {
            ctx.digest_md5_utf8_hash = self.digest_md5_hashes_utf8(creds).await;
        }
        ctx
    }

    /// One AUTHENTICATE exchange with `name`. `None` when it authenticated the session;
    /// otherwise how it failed, for the fallback rule, and the server's answer as the user
    /// reads it. `Err` only when the session cannot go on.
    async fn try_mechanism(
        &mut self,
        name: MechanismName,
        creds: &Credentials,
        ctx: &ClientContext,
        sasl_ir: bool,
    ) -> Result<Option<(FailureKind, String)>, Error> {
        let mech =
            new_mechanism(name, creds, ctx, &mut OsNonceSource).map_err(|e| Error::Auth {
                mechanism: name.to_string(),
                text: e.to_string(),
            })?;
        let (mech, spoke) = Spoken::wrap(mech);
        let h = self.engine.authenticate(mech, sasl_ir);
        self.stats.command("AUTHENTICATE");
        self.begin_attempt(name.as_str());
        let c = self.wait(h).await.inspect_err(|e| self.attempt_failed(e))?;
        if c.outcome.is_ok() {
            self.auth_info.mechanism_used = Some(name.to_string());
            self.after_auth().await?;
            return Ok(None);
        }
        let sasl_error = match &c.data {
            CommandData::Auth { sasl_error } => sasl_error.as_ref(),
            _ => None,
        };
        match sasl_error {
            Some(e) => self.attempt_failed(format!("the client stopped the exchange: {e}")),
            None => self.attempt_failed(outcome_text(&c.outcome)),
        }
        refuse_referral(&c.outcome, name.as_str())?;
        let failure = match sasl_error {
            Some(e) => FailureKind::from_error(e),
            None => mechanism_failure(&c.outcome, spoke.get()),
        };
        Ok(Some((failure, outcome_text(&c.outcome))))
    }

    /// The LOGIN command, the last resort: it authenticates the session or ends the login.
    async fn login_command(&mut self, creds: &Credentials) -> Result<(), Error> {
        let h = self.submit(Command::login(
            &creds.authcid,
            Secret::new(creds.secret.expose().clone()),
        ));
        self.begin_attempt(LOGIN_COMMAND);
        let c = self.wait(h).await.inspect_err(|e| self.attempt_failed(e))?;
        if c.outcome.is_ok() {
            self.auth_info.mechanism_used = Some(LOGIN_COMMAND.into());
            return self.after_auth().await;
        }
        self.attempt_failed(outcome_text(&c.outcome));
        refuse_referral(&c.outcome, LOGIN_COMMAND)?;
        let text = outcome_text(&c.outcome);
        Err(Error::Auth {
            mechanism: "LOGIN command".into(),
            text: match &c.outcome {
                // LOGIN carries the credentials on its one line: its NO judges them, unless
                // a code says otherwise (RFC 5530).
                Outcome::No { code, .. }
                    if FailureKind::from_response_code(
                        code.as_ref().and_then(code_name).as_deref(),
                    ) == FailureKind::CredentialsRejected =>
                {
                    refused(creds, &text)
                }
                _ => text,
            },
        })
    }

    /// Whether this server's DIGEST-MD5 hashes credentials as UTF-8 where RFC 2831 2.1.2.1
    /// converts them to ISO 8859-1 first (see [`ClientContext::digest_md5_utf8_hash`]), so
    /// a password such as `grüße` fails there unless the client does the same. Which
    /// servers do is data in `mailfold_sasl::quirks`; the driver only reports what the server
    /// says about itself. The two ways differ only for non-ASCII characters that ISO 8859-1
    /// can hold, so the server is only asked (ID, RFC 2971, when offered) when a credential
    /// is not ASCII; its greeting is looked at first. A customised greeting without ID leaves
    /// the RFC's way, which other servers (Cyrus SASL) follow.
    async fn digest_md5_hashes_utf8(&mut self, creds: &Credentials) -> bool {
        if self
            .greeting
            .as_deref()
            .is_some_and(quirks::digest_md5_hashes_utf8)
        {
            return true;
        }
        if !quirks::digest_md5_charset_matters(creds) || !self.caps().has("ID") {
            return false;
        }
        match self.id(None).await {
            Ok(fields) => quirks::digest_md5_hashes_utf8_by_id(&fields),
            // An ID refused is no reason to fail the login; the RFC's way is the default.
            Err(e) => {
                tracing::debug!("ID before DIGEST-MD5 failed: {e}");
                false
            }
        }
    }

    fn begin_attempt(&mut self, mechanism: &str) {
        self.auth_info.attempts.push(mechanism.to_string());
        self.auth_info.tried.push(AuthAttempt {
            mechanism: mechanism.to_string(),
            failure: None,
        });
    }

    /// Records why the attempt in progress failed (the first reason given wins).
    fn attempt_failed(&mut self, why: impl std::fmt::Display) {
        if let Some(a) = self.auth_info.tried.last_mut() {
            if a.failure.is_none() {
                a.failure = Some(why.to_string());
            }
        }
    }

    async fn after_auth(&mut self) -> Result<(), Error> {
        // Seeds V0033/V0035: use the CAPABILITY code when present, else ask.
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        Ok(())
    }
}

/// What the server offers for authentication (its capabilities, read once).
struct AuthOffer {
    /// The SASL mechanisms advertised (`AUTH=…`), in the server's order.
    advertised: Vec<String>,
    /// `LOGINDISABLED`: the LOGIN command must not be sent.
    login_disabled: bool,
    /// `SASL-IR` (RFC 4959): an initial response may go with AUTHENTICATE.
    sasl_ir: bool,
    /// The transport is encrypted.
    tls: bool,
}

impl AuthOffer {
    fn mechanisms(&self) -> Vec<&str> {
        self.advertised.iter().map(String::as_str).collect()
    }

    /// The first attempt the policy allows: the strongest mechanism chosen, else the LOGIN
    /// command, else a refusal that says what was offered.
    fn first_attempt(
        &self,
        chosen: &[MechanismName],
        policy: &Policy,
    ) -> Result<NextAttempt, Error> {
        let adv = self.mechanisms();
        match chosen.first() {
            Some(m) => Ok(NextAttempt::Mechanism(*m)),
            None if login_command_allowed(&adv, self.login_disabled, policy, self.tls) => {
                Ok(NextAttempt::LoginCommand)
            }
            None => Err(Error::Security(format!(
                "no permitted way to authenticate (offered: {}; TLS: {}; LOGINDISABLED: {})",
                if adv.is_empty() {
                    "none".to_string()
                } else {
                    adv.join(" ")
                },
                self.tls,
                self.login_disabled
            ))),
        }
    }
}

/// How an AUTHENTICATE the server answered NO or BAD failed, for the fallback rule: BAD says
/// the mechanism is unusable; a NO is classified by its response code (RFC 5530).
fn mechanism_failure(outcome: &Outcome, spoke: bool) -> FailureKind {
    match outcome {
        Outcome::Bad { .. } => FailureKind::MechanismUnusable,
        o => {
            let code = o.code().and_then(code_name);
            // A NO without a code before the client said anything is the server refusing
            // the mechanism, not the credentials: they never reached it.
            if code.is_none() && !spoke {
                FailureKind::MechanismUnusable
            } else {
                FailureKind::from_response_code(code.as_deref())
            }
        }
    }
}

/// The message of a login the server refused on the credentials: which user, where the
/// secret came from (the thing to fix), the server's own answer, and that nothing else was
/// tried with them.
fn refused(creds: &Credentials, server: &str) -> String {
    let from = match &creds.origin {
        Some(o) => format!(" (from {o})"),
        None => String::new(),
    };
    format!(
        "the server refused the credentials of user {:?}{from}: {server}; not retried with \
         other mechanisms, so that one wrong password counts as one failed login",
        creds.authcid
    )
}

/// A mechanism that notes whether it gave the server anything (an initial response or an
/// answer to a challenge), to tell a NO to the credentials from a NO to the mechanism.
struct Spoken {
    inner: Box<dyn mailfold_sasl::Mechanism>,
    spoke: Arc<std::sync::atomic::AtomicBool>,
}

/// Read side of [`Spoken`].
struct SpokeFlag(Arc<std::sync::atomic::AtomicBool>);

impl SpokeFlag {
    fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Spoken {
    fn wrap(
        inner: Box<dyn mailfold_sasl::Mechanism>,
    ) -> (Box<dyn mailfold_sasl::Mechanism>, SpokeFlag) {
        let spoke = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = SpokeFlag(spoke.clone());
        (Box::new(Spoken { inner, spoke }), flag)
    }

    fn mark(&self) {
        self.spoke.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl mailfold_sasl::Mechanism for Spoken {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn initial_response(
        &mut self,
    ) -> Result<Option<mailfold_sasl::Response>, mailfold_sasl::SaslError> {
        let r = self.inner.initial_response()?;
        if r.is_some() {
            self.mark();
        }
        Ok(r)
    }

    fn step(
        &mut self,
        challenge: &[u8],
    ) -> Result<mailfold_sasl::Response, mailfold_sasl::SaslError> {
        let r = self.inner.step(challenge)?;
        self.mark();
        Ok(r)
    }

    fn is_complete(&self) -> bool {
        self.inner.is_complete()
    }

    fn server_error(&self) -> Option<&str> {
        self.inner.server_error()
    }
}

/// RFC 2221 login referrals (`NO [REFERRAL imap://…]`) name another server to log in to.
/// Following one would hand the credentials to whoever wrote the response; mailfold never
/// does, and stops instead of trying other mechanisms on a server that said "not
/// here".
fn refuse_referral(outcome: &Outcome, mechanism: &str) -> Result<(), Error> {
    match outcome.code() {
        Some(Code::Referral(url)) => Err(Error::Auth {
            mechanism: mechanism.to_string(),
            text: format!(
                "the server refers this login to {url}; referrals are not followed \
                 (configure that server instead if it is legitimate)"
            ),
        }),
        _ => Ok(()),
    }
}
