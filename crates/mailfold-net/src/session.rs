//! An IMAP session over tokio: owns the transport and drives the sans-IO engine.
//!
//! The driver only moves bytes and time: every protocol decision (tags, pipelining,
//! literals, STARTTLS sequencing, SASL continuations, keepalive) is the engine's. What lives
//! here is the connection policy of RFC 8314 and RFC 9051 6.2.1 (seed N1): which
//! transport to open, refusing to continue when STARTTLS is missing or refused, refusing a
//! PREAUTH over cleartext when TLS is required, and which authentication to try (seeds
//! V0031, V0032, V0034), with the mechanism order and fallback rule from `mailfold_sasl`.
//!
//! Time: the engine's timers run on tokio's clock and fire only while a `Session` method is
//! driving the connection. A holder that keeps a session without commands drives it with
//! [`Session::keepalive_tick`] (seed V0025) or watches with [`Session::idle`] /
//! [`Session::idle_or_poll`] (seed V0028); there is no background task that could write
//! behind the caller's back.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfold_proto::command::{
    Append, AppendData, Command, DateTime, FetchItems, FetchModifiers, List, Qresync, Search,
    SelectParams, StatusItem, StoreFlags,
};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::engine::{
    BodyPart, Capabilities, Client, CommandData, CommandHandle, Completion, Config as EngineConfig,
    ConnState, EngineError, Event, MailboxState, Outcome, SearchResult, Transmit,
};
use mailfold_proto::response::{Code, Fetch, GreetingKind, MailboxList, MailboxStatus};
use mailfold_proto::seqset::UidSet;
use mailfold_sasl::{
    choose_mechanisms, login_command_allowed, new_mechanism, next_after_failure, ClientContext,
    Credentials, FailureKind, GiveUpReason, MechanismName, NextAttempt, OsNonceSource, Policy,
    Secret,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::connect::connect_tcp;
use crate::error::Error;
use crate::stats::Stats;
use crate::stream::Transport;
use crate::tls::{
    client_config_recording, handshake_error, server_name, warn_if_dangerous, TlsInfo, TlsOptions,
    TrustRecord,
};

/// Most notifications kept between two [`Session::take_notifications`] (a server
/// flooding unsolicited FETCH or EXPUNGE during one long command must not grow memory for
/// ever). Past it they are dropped, except BYE; a watcher needs only one to know that
/// something changed, and the sync learns about changes by asking.
pub const MAX_NOTES: usize = 10_000;

/// Most FETCH responses kept for one command that nobody streams (a pipelined FETCH, STORE,
/// or QRESYNC SELECT): 1 Mi, more than one command names in practice. More fails the
/// session rather than growing memory for ever.
pub const MAX_FETCHED: usize = 1 << 20;

/// How long `bytes` take at `rate` bytes per second (a rate of 0 counts as 1), saturating.
fn at_rate(bytes: u64, rate: u32) -> Duration {
    Duration::try_from_secs_f64(bytes as f64 / f64::from(rate.max(1))).unwrap_or(Duration::MAX)
}

/// The engine's clock: tokio's, so that a test with paused time drives the engine's timers
/// (keepalive, IDLE refresh, command timeouts) too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How the connection is protected (seed N1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314), port 993 by default. The default.
    ImplicitTls,
    /// Cleartext, then STARTTLS (port 143 by default). Abandoned, never downgraded, if the
    /// server does not offer STARTTLS or refuses it.
    StartTls,
    /// No TLS at all. Only when the account explicitly says so; passwords then still need
    /// `allow_plaintext_password` (seed V0031).
    Plaintext,
}

impl Security {
    /// The standard port for this security mode.
    pub fn default_port(self) -> u16 {
        match self {
            Security::ImplicitTls => 993,
            Security::StartTls | Security::Plaintext => 143,
        }
    }
}

/// Everything needed to open a session to one account's server.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Host name or IP literal.
    pub host: String,
    /// Port; `None` means the default for `security`.
    pub port: Option<u16>,
    /// Transport protection.
    pub security: Security,
    /// Certificates.
    pub tls: TlsOptions,
    /// Bound on TCP connect (per address), the TLS handshake, and the greeting.
    pub connect_timeout: Duration,
    /// Engine timers: command timeout, keepalive, IDLE refresh, LOGOUT wait.
    pub engine: EngineConfig,
    /// Which mechanisms to try and whether a password may cross cleartext.
    pub auth_policy: Policy,
    /// A command to run instead of connecting (argv, no shell): the session speaks IMAP over
    /// its stdin and stdout, and must be greeted with PREAUTH (the command authenticates, e.g.
    /// `ssh host /usr/lib/dovecot/imap`). `host`, `port`, `security` and `tls` do not apply.
    pub tunnel: Option<Vec<String>>,
}

impl ConnectConfig {
    /// Implicit TLS to `host:993` with default timeouts and policy.
    pub fn new(host: impl Into<String>) -> Self {
        ConnectConfig {
            host: host.into(),
            port: None,
            security: Security::ImplicitTls,
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(30),
            engine: EngineConfig::default(),
            auth_policy: Policy::password(),
            tunnel: None,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}

/// Options for SELECT and EXAMINE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// `(CONDSTORE)` (RFC 7162).
    pub condstore: bool,
    /// EXAMINE instead of SELECT (seed V0040).
    pub read_only: bool,
    /// `(QRESYNC (…))`: what the client knew at its last sync (RFC 7162 3.2.5). Takes
    /// precedence over `condstore` (QRESYNC implies CONDSTORE). [`Session::select_with`]
    /// sends `ENABLE QRESYNC` first when needed; the server must advertise QRESYNC.
    pub qresync: Option<QresyncParams>,
}

/// The QRESYNC parameters of a SELECT: UIDVALIDITY and HIGHESTMODSEQ of the last sync, and
/// optionally the known UIDs and sequence-match data (RFC 7162 3.2.5).
pub type QresyncParams = Qresync;

/// What SELECT/EXAMINE returned, with the QRESYNC data a resync needs (RFC 7162 3.2.5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The mailbox state when the tagged OK arrived (EXISTS, UIDVALIDITY, HIGHESTMODSEQ, …).
    pub state: MailboxState,
    /// UIDs expunged since the QRESYNC mod-sequence (`VANISHED (EARLIER)`), if any.
    pub vanished: Option<UidSet>,
    /// FETCH responses of the messages changed since that mod-sequence (UID, FLAGS, MODSEQ).
    pub changed: Vec<Fetch>,
}

/// The result of a UID FETCH beyond the items delivered to the sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// How many FETCH responses answered the command.
    pub count: u64,
    /// With the VANISHED modifier: UIDs of the set expunged since CHANGEDSINCE (RFC 7162
    /// 3.2.6).
    pub vanished: Option<UidSet>,
}

/// The result of a (conditional) UID STORE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// FETCH responses with the new flags (and MODSEQ with CONDSTORE); empty with `.SILENT`.
    pub fetched: Vec<Fetch>,
    /// UIDs not stored because they changed since UNCHANGEDSINCE (`[MODIFIED …]`, RFC 7162
    /// 3.1.3); empty when every message was stored.
    pub modified: UidSet,
}

/// How the session authenticated, for `mailfold probe` (seeds V0027, V0033, V0035).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// Capabilities before authentication (the ones over TLS when TLS is used: cleartext
    /// ones are discarded), upper-cased. `None` when there was no authentication step.
    pub capabilities_before: Option<Vec<String>>,
    /// Capabilities after authentication (or after a PREAUTH greeting).
    pub capabilities_after: Option<Vec<String>>,
    /// The SASL mechanisms offered (`AUTH=…`), in the server's order.
    pub mechanisms_offered: Vec<String>,
    /// What was tried, in order: SASL names, and `LOGIN-COMMAND` for the LOGIN command.
    pub attempts: Vec<String>,
    /// The same attempts with how each ended: `failure` is `None` for the one that
    /// authenticated. Kept when the login fails ([`ConnectFailure::auth`]), so a caller can
    /// show what was tried before giving up (seed V0034's fallback, made visible).
    pub tried: Vec<AuthAttempt>,
    /// What authenticated the session: a SASL name, or `LOGIN-COMMAND`. `None` for PREAUTH
    /// or when no credentials were given.
    pub mechanism_used: Option<String>,
    /// The server greeted with PREAUTH.
    pub preauth: bool,
}

/// One authentication attempt: a SASL mechanism or the LOGIN command, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// The SASL name, or [`LOGIN_COMMAND`] for the LOGIN command.
    pub mechanism: String,
    /// Why it failed: the server's tagged answer with its response code (`server said NO:
    /// [AUTHENTICATIONFAILED] …`), why the client stopped the exchange, or the connection
    /// error that ended it. `None` when it authenticated the session.
    pub failure: Option<String>,
}

/// Why [`Session::connect_report`] or [`Session::open_report`] failed, with what the session
/// had learned by then: the greeting, the TLS session, and the authentication attempts (for
/// `mailfold probe`, which shows what was tried before the failure).
#[derive(Debug)]
pub struct ConnectFailure {
    /// What went wrong.
    pub error: Error,
    /// The server's greeting text, control characters stripped ([`Session::greeting`]);
    /// `None` when none arrived.
    pub greeting: Option<String>,
    /// What TLS negotiated, when the handshake completed ([`Session::tls_info`]). A refused
    /// certificate is in the error instead ([`Error::Certificate`]).
    pub tls: Option<TlsInfo>,
    /// Capabilities, mechanisms offered and the attempts made ([`Session::auth_info`]).
    pub auth: AuthInfo,
}

/// The name recorded in [`AuthInfo`] for the LOGIN command (not the SASL mechanism LOGIN).
pub const LOGIN_COMMAND: &str = "LOGIN-COMMAND";

/// Receives FETCH results as they arrive. Bodies come in chunks, never as one buffer.
pub trait FetchSink: Send {
    /// One FETCH response (a streamed body appears in it as its length only).
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()>;
    /// A large body literal begins.
    fn body_start(&mut self, _part: &BodyPart) -> std::io::Result<()> {
        Ok(())
    }
    /// Bytes of the current body literal.
    fn body_chunk(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// The current body literal is complete.
    fn body_end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Something the server said that is not an answer to a command: ALERT and BYE text,
/// mailbox changes, unsolicited FETCH (seeds V0023, V0063, V0064).
pub type Notification = Event;

/// Stops an [`Session::idle`] from another task.
#[derive(Clone, Debug, Default)]
pub struct IdleStop(Arc<Notify>);

impl IdleStop {
    /// A new stop handle.
    pub fn new() -> Self {
        IdleStop::default()
    }

    /// Ends the IDLE it was passed to (or the next one, if none is running).
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// An open IMAP session.
pub struct Session {
    engine: Client,
    transport: Option<Transport>,
    host: String,
    port: u16,
    /// `None` for a [`Security::Plaintext`] session, which never starts TLS.
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    /// The engine's floor rate, which also bounds the upload of a streamed APPEND literal.
    min_rate: u32,
    read_buf: Vec<u8>,
    done: HashMap<CommandHandle, Completion>,
    /// FETCH responses for submitted commands nobody streams (pipelined use).
    fetched: HashMap<CommandHandle, Vec<Fetch>>,
    notes: VecDeque<Notification>,
    /// Notifications dropped since the last take, past [`MAX_NOTES`].
    notes_dropped: u64,
    /// Where body chunks of the command currently being waited on go.
    sink_for: Option<CommandHandle>,
    /// The reader of a streamed APPEND in progress.
    literal: Option<(CommandHandle, Box<dyn AsyncRead + Unpin + Send>)>,
    /// Bytes taken from the engine and not yet written: a write cancelled halfway (the
    /// caller dropped a future in `select!`) resumes here instead of losing bytes.
    wbuf: Vec<u8>,
    wpos: usize,
    closed: Option<EngineError>,
    stats: Stats,
    trust: TrustRecord,
    tls_info: Option<TlsInfo>,
    auth_info: AuthInfo,
    greeting: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("state", &self.engine.state())
            .finish_non_exhaustive()
    }
}

/// A TLS handshake asked of a session built without a TLS configuration (plaintext).
fn no_tls() -> Error {
    Error::Config("TLS asked of a session configured for plaintext".into())
}

fn outcome_error(o: &Outcome) -> Option<Error> {
    match o {
        Outcome::Ok { .. } => None,
        Outcome::No { code, text } => Some(Error::Command {
            status: "NO".into(),
            text: with_code(code.as_ref(), text),
        }),
        Outcome::Bad { code, text } => Some(Error::Command {
            status: "BAD".into(),
            text: with_code(code.as_ref(), text),
        }),
        Outcome::Rejected(why) => Some(Error::Command {
            status: "not sent".into(),
            text: why.clone(),
        }),
        Outcome::Aborted => Some(Error::Closed),
    }
}

/// A failed outcome as the user should read it (`server said NO: [CODE] text`).
fn outcome_text(o: &Outcome) -> String {
    outcome_error(o).map(|e| e.to_string()).unwrap_or_default()
}

fn with_code(code: Option<&Code>, text: &str) -> String {
    match code.and_then(code_name) {
        Some(name) => format!("[{name}] {text}"),
        None => text.to_string(),
    }
}

/// The name of a response code, upper-case (for RFC 5530 classification and messages).
fn code_name(code: &Code) -> Option<String> {
    Some(match code {
        Code::Alert => "ALERT".into(),
        Code::Parse => "PARSE".into(),
        Code::TryCreate => "TRYCREATE".into(),
        Code::ReadOnly => "READ-ONLY".into(),
        Code::ReadWrite => "READ-WRITE".into(),
        Code::Referral(_) => "REFERRAL".into(),
        Code::Other { name, .. } => name.to_ascii_uppercase(),
        _ => return None,
    })
}

impl Session {
    /// Connects, secures the transport as configured, and authenticates with `creds`
    /// (or not at all with `None`, e.g. for a PREAUTH server over TLS).
    pub async fn connect(cfg: &ConnectConfig, creds: Option<&Credentials>) -> Result<Self, Error> {
        Session::connect_report(cfg, creds)
            .await
            .map_err(|f| f.error)
    }

    /// [`Session::connect`], and on failure what the session had learned before it failed:
    /// the greeting, the TLS session, and every authentication attempt with how it ended.
    pub async fn connect_report(
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<Self, Box<ConnectFailure>> {
        let mut s = Session::open_report(cfg).await?;
        match s.login_steps(cfg, creds).await {
            Ok(()) => Ok(s),
            Err(e) => {
                // No LOGOUT on a connection we refuse or that failed (seed V0011): close it,
                // and the error says why.
                s.abandon().await;
                Err(s.failure(e))
            }
        }
    }

    fn failure(&self, error: Error) -> Box<ConnectFailure> {
        Box::new(ConnectFailure {
            error,
            greeting: self.greeting.clone(),
            tls: self.tls_info.clone(),
            auth: self.auth_info.clone(),
        })
    }

    async fn login_steps(
        &mut self,
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        // A server without IMAP4rev1 (e.g. only "IMAP4", RFC 1730) speaks a dialect whose
        // responses we would misread; nothing, credentials least of all, is sent to it.
        if !self.caps().is_imap4rev1() {
            return Err(Error::Protocol(EngineError::Protocol(format!(
                "server does not speak IMAP4rev1 (capabilities: {})",
                self.caps().names().join(" ")
            ))));
        }
        if let Some(creds) = creds {
            if self.engine.state() == ConnState::NotAuthenticated {
                self.authenticate(cfg, creds).await?;
            }
        }
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        if self.engine.state() != ConnState::NotAuthenticated {
            self.auth_info.capabilities_after = Some(self.caps().names().to_vec());
        }
        Ok(())
    }

    /// Connects and secures the transport, without authenticating.
    pub async fn open(cfg: &ConnectConfig) -> Result<Self, Error> {
        Session::open_report(cfg).await.map_err(|f| f.error)
    }

    /// [`Session::open`], and on failure what the session had learned before it failed (the
    /// greeting, when the failure came after it: a refused STARTTLS, say).
    pub async fn open_report(cfg: &ConnectConfig) -> Result<Self, Box<ConnectFailure>> {
        let bare = |error| {
            Box::new(ConnectFailure {
                error,
                greeting: None,
                tls: None,
                auth: AuthInfo::default(),
            })
        };
        let port = cfg.port();
        // A plaintext session never shakes hands, so it skips reading the system trust store
        // (milliseconds per process, most of a no-change run's own time).
        let (tls, trust) = if cfg.security == Security::Plaintext {
            (None, TrustRecord::default())
        } else {
            let (config, trust) = client_config_recording(&cfg.tls).map_err(bare)?;
            (Some(config), trust)
        };
        if cfg.security != Security::Plaintext && cfg.tunnel.is_none() {
            warn_if_dangerous(&cfg.tls, &cfg.host);
        }
        let implicit = cfg.security == Security::ImplicitTls && cfg.tunnel.is_none();
        let transport = if let Some(argv) = &cfg.tunnel {
            Transport::Tunnel(Box::new(crate::connect::spawn_tunnel(argv).map_err(bare)?))
        } else if implicit {
            let tcp = connect_tcp(&cfg.host, port, cfg.connect_timeout)
                .await
                .map_err(bare)?;
            let name = server_name(&cfg.host).map_err(bare)?;
            tokio::time::timeout(
                cfg.connect_timeout,
                Transport::tls_handshake(tcp, tls.clone().ok_or_else(no_tls).map_err(bare)?, name),
            )
            .await
            .map_err(|_| bare(Error::Timeout("TLS handshake".into())))?
            .map_err(|e| bare(handshake_error(&e, &trust)))?
        } else {
            let tcp = connect_tcp(&cfg.host, port, cfg.connect_timeout)
                .await
                .map_err(bare)?;
            Transport::Plain(tcp)
        };
        let mut ecfg = cfg.engine.clone();
        ecfg.tag_seed = random_seed();
        let mut s = Session {
            engine: Client::new(ecfg, implicit, now()),
            transport: Some(transport),
            host: cfg.host.clone(),
            port,
            tls,
            connect_timeout: cfg.connect_timeout,
            min_rate: cfg.engine.min_rate,
            read_buf: vec![0; 64 * 1024],
            done: HashMap::new(),
            fetched: HashMap::new(),
            notes: VecDeque::new(),
            notes_dropped: 0,
            sink_for: None,
            literal: None,
            wbuf: Vec::new(),
            wpos: 0,
            closed: None,
            stats: Stats::default(),
            trust,
            tls_info: None,
            auth_info: AuthInfo::default(),
            greeting: None,
        };
        s.record_tls_info(false);
        match s.open_steps(cfg).await {
            Ok(()) => Ok(s),
            Err(e) => {
                s.abandon().await;
                Err(s.failure(e))
            }
        }
    }

    /// After the transport is up: the greeting, then STARTTLS when configured.
    async fn open_steps(&mut self, cfg: &ConnectConfig) -> Result<(), Error> {
        // The greeting, bounded by the connect timeout as well as the engine's own.
        let greeting = tokio::time::timeout(
            cfg.connect_timeout,
            self.drive_until(|s| s.engine.state() != ConnState::Greeting, None),
        )
        .await;
        match greeting {
            Err(_) => return Err(Error::Timeout("waiting for the greeting".into())),
            Ok(r) => r?,
        }
        if let Some(e) = self.closed.clone() {
            return Err(map_engine_error(e));
        }
        let preauth = self.engine.state() == ConnState::Authenticated;
        self.auth_info.preauth = preauth;
        if cfg.tunnel.is_some() {
            // Nothing secret crosses a tunnel: the command has authenticated already.
            return if preauth {
                Ok(())
            } else {
                Err(Error::Security(
                    "the tunnel command's server did not greet with PREAUTH; mailfold sends no credentials through a tunnel".into(),
                ))
            };
        }
        match cfg.security {
            Security::StartTls => {
                if preauth {
                    // RFC 9051 6.2.1 / RFC 8314: PREAUTH over cleartext skips STARTTLS; an
                    // account that requires TLS must not go on (the 2021 STARTTLS study).
                    return Err(Error::Security(
                        "server sent PREAUTH on a cleartext connection; TLS is required".into(),
                    ));
                }
                self.starttls().await?;
            }
            Security::ImplicitTls | Security::Plaintext => {}
        }
        Ok(())
    }

    async fn starttls(&mut self) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            if let Err(e) = self.capability().await {
                self.abandon().await;
                return Err(Error::Security(format!(
                    "CAPABILITY failed before STARTTLS ({e}); not continuing without TLS"
                )));
            }
        }
        let offered = self
            .engine
            .session()
            .capabilities
            .as_ref()
            .is_some_and(|c| c.has("STARTTLS"));
        if !offered {
            self.abandon().await;
            return Err(Error::Security(
                "server does not offer STARTTLS; not continuing without TLS".into(),
            ));
        }
        let h = self.submit(Command::StartTls);
        let c = match self.wait(h).await {
            Ok(c) => c,
            Err(e) => {
                self.abandon().await;
                return Err(match e {
                    // A certificate refused after STARTTLS is the same failure as with
                    // implicit TLS; keep its kind so the caller can tell.
                    Error::Tls(_) | Error::Certificate { .. } | Error::NotTls(_) => e,
                    e => Error::Security(format!("STARTTLS failed: {e}")),
                });
            }
        };
        if let Some(e) = outcome_error(&c.outcome) {
            self.abandon().await;
            return Err(Error::Security(format!("STARTTLS refused: {e}")));
        }
        if !self.engine.session().encrypted {
            self.abandon().await;
            return Err(Error::Security("TLS did not start after STARTTLS".into()));
        }
        // Capabilities from before TLS are gone (engine); ask again over TLS (seed V0033).
        self.capability().await?;
        Ok(())
    }

    /// Authenticates per the policy: advertised mechanisms only, strongest first, SASL-IR
    /// when offered, the LOGIN command last and never with LOGINDISABLED, no password over
    /// cleartext unless allowed (seeds V0031, V0032, V0034).
    async fn authenticate(
        &mut self,
        cfg: &ConnectConfig,
        creds: &Credentials,
    ) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        let caps = self.caps();
        let tls = self.engine.session().encrypted;
        let advertised: Vec<String> = caps
            .auth_mechanisms()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let adv: Vec<&str> = advertised.iter().map(|s| s.as_str()).collect();
        let login_disabled = caps.has("LOGINDISABLED");
        let sasl_ir = caps.has("SASL-IR");
        let policy = &cfg.auth_policy;
        let chosen = choose_mechanisms(&adv, policy, tls);
        self.auth_info.capabilities_before = Some(caps.names().to_vec());
        self.auth_info.mechanisms_offered = advertised.clone();
        let mut next = match chosen.first() {
            Some(m) => NextAttempt::Mechanism(*m),
            None if login_command_allowed(&adv, login_disabled, policy, tls) => {
                NextAttempt::LoginCommand
            }
            None => {
                return Err(Error::Security(format!(
                    "no permitted way to authenticate (offered: {}; TLS: {tls}; \
                     LOGINDISABLED: {login_disabled})",
                    if adv.is_empty() {
                        "none".to_string()
                    } else {
                        adv.join(" ")
                    }
                )))
            }
        };
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
        loop {
            match next {
                NextAttempt::Mechanism(name) => {
                    let mech =
                        new_mechanism(name, creds, &ctx, &mut OsNonceSource).map_err(|e| {
                            Error::Auth {
                                mechanism: name.to_string(),
                                text: e.to_string(),
                            }
                        })?;
                    let (mech, spoke) = Spoken::wrap(mech);
                    let h = self.engine.authenticate(mech, sasl_ir);
                    self.stats.command("AUTHENTICATE");
                    self.begin_attempt(name.as_str());
                    let c = self.wait(h).await.inspect_err(|e| self.attempt_failed(e))?;
                    if c.outcome.is_ok() {
                        self.auth_info.mechanism_used = Some(name.to_string());
                        return self.after_auth().await;
                    }
                    match &c.data {
                        CommandData::Auth {
                            sasl_error: Some(e),
                        } => self.attempt_failed(format!("the client stopped the exchange: {e}")),
                        _ => self.attempt_failed(outcome_text(&c.outcome)),
                    }
                    refuse_referral(&c.outcome, name.as_str())?;
                    let failure = match &c.data {
                        CommandData::Auth {
                            sasl_error: Some(e),
                        } => FailureKind::from_error(e),
                        _ => match &c.outcome {
                            Outcome::Bad { .. } => FailureKind::MechanismUnusable,
                            o => {
                                let code = o.code().and_then(code_name);
                                // A NO without a code before the client said anything is the
                                // server refusing the mechanism, not the credentials: they
                                // never reached it.
                                if code.is_none() && !spoke.get() {
                                    FailureKind::MechanismUnusable
                                } else {
                                    FailureKind::from_response_code(code.as_deref())
                                }
                            }
                        },
                    };
                    let text = match outcome_error(&c.outcome) {
                        Some(e) => e.to_string(),
                        None => String::new(),
                    };
                    tracing::info!("AUTHENTICATE {name} failed: {text}");
                    next = next_after_failure(&chosen, name, failure, policy, login_disabled, tls);
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
                NextAttempt::LoginCommand => {
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
                    return Err(Error::Auth {
                        mechanism: "LOGIN command".into(),
                        text: match &c.outcome {
                            // LOGIN carries the credentials on its one line: its NO judges
                            // them, unless a code says otherwise (RFC 5530).
                            Outcome::No { code, .. }
                                if FailureKind::from_response_code(
                                    code.as_ref().and_then(code_name).as_deref(),
                                ) == FailureKind::CredentialsRejected =>
                            {
                                refused(creds, &text)
                            }
                            _ => text,
                        },
                    });
                }
                NextAttempt::GiveUp(reason) => {
                    return Err(Error::Auth {
                        mechanism: "-".into(),
                        text: format!("{reason:?}"),
                    })
                }
            }
        }
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
            .is_some_and(mailfold_sasl::quirks::digest_md5_hashes_utf8)
        {
            return true;
        }
        let ascii = creds.authcid.is_ascii()
            && creds.authzid.as_deref().is_none_or(str::is_ascii)
            && creds.secret.expose().is_ascii();
        if ascii || !self.caps().has("ID") {
            return false;
        }
        match self.id(None).await {
            Ok(fields) => fields.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("name")
                    && v.as_deref()
                        .is_some_and(mailfold_sasl::quirks::digest_md5_hashes_utf8)
            }),
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

    fn caps(&self) -> Capabilities {
        self.engine
            .session()
            .capabilities
            .clone()
            .unwrap_or_default()
    }

    // ----- typed commands -----

    /// The server's capabilities (cached; refreshed after TLS and authentication).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.engine.session().capabilities.as_ref()
    }

    /// The selected mailbox's recorded state.
    pub fn mailbox(&self) -> Option<&MailboxState> {
        self.engine.session().mailbox.as_ref()
    }

    /// True when the transport is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.engine.session().encrypted
    }

    /// What TLS negotiated (version, suite, the server's chain, which anchors verified it);
    /// `None` on a plaintext connection.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    /// The text of the server's greeting (OK or PREAUTH; RFC 3501 7.1), after its response
    /// code, with control characters removed. With STARTTLS it arrived before TLS, so anyone
    /// on the path could have written it: show it, never trust it.
    pub fn greeting(&self) -> Option<&str> {
        self.greeting.as_deref()
    }

    /// How the session authenticated: capabilities before and after, mechanisms offered,
    /// tried and used.
    pub fn auth_info(&self) -> &AuthInfo {
        &self.auth_info
    }

    /// Extensions enabled with ENABLE (RFC 5161), upper-cased.
    pub fn enabled(&self) -> &[String] {
        &self.engine.session().enabled
    }

    /// Counters of commands and bytes (for "no needless work" tests).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sends CAPABILITY and returns the result.
    pub async fn capability(&mut self) -> Result<Capabilities, Error> {
        let c = self.run(Command::Capability).await?;
        match c.data {
            CommandData::Capability(c) => Ok(c),
            _ => Ok(self.caps()),
        }
    }

    /// SELECT or EXAMINE (seeds V0036–V0038, V0040). With QRESYNC, use
    /// [`Session::select_with`] to get the vanished UIDs and changed messages too.
    pub async fn select(
        &mut self,
        mailbox: &Mailbox,
        opts: SelectOptions,
    ) -> Result<MailboxState, Error> {
        self.select_with(mailbox, opts).await.map(|s| s.state)
    }

    /// SELECT or EXAMINE with CONDSTORE or QRESYNC (RFC 7162), returning the mailbox state
    /// plus, for QRESYNC, `VANISHED (EARLIER)` and the changed messages' FETCH data. Sends
    /// `ENABLE QRESYNC` first when QRESYNC is asked for and not yet enabled.
    pub async fn select_with(
        &mut self,
        mailbox: &Mailbox,
        opts: SelectOptions,
    ) -> Result<Selected, Error> {
        let params = match opts.qresync {
            Some(q) => {
                self.ensure_qresync().await?;
                SelectParams::Qresync(q)
            }
            None if opts.condstore => SelectParams::CondStore,
            None => SelectParams::None,
        };
        let cmd = if opts.read_only {
            Command::Examine {
                mailbox: mailbox.clone(),
                params,
            }
        } else {
            Command::Select {
                mailbox: mailbox.clone(),
                params,
            }
        };
        let h = self.submit(cmd);
        let c = self.wait(h).await?;
        let changed = self.fetched.remove(&h).unwrap_or_default();
        if let Some(e) = outcome_error(&c.outcome) {
            return Err(e);
        }
        match c.data {
            CommandData::Select(state) => Ok(Selected {
                state,
                vanished: c.vanished,
                changed,
            }),
            _ => Err(Error::Command {
                status: "OK".into(),
                text: "SELECT returned no mailbox state".into(),
            }),
        }
    }

    /// `ENABLE QRESYNC` unless already enabled (RFC 7162 3.2.3: required before any SELECT
    /// with QRESYNC parameters).
    async fn ensure_qresync(&mut self) -> Result<(), Error> {
        if self.enabled().iter().any(|e| e == "QRESYNC") {
            return Ok(());
        }
        if !self.caps().has("QRESYNC") {
            return Err(Error::Command {
                status: "not sent".into(),
                text: "the server does not offer QRESYNC".into(),
            });
        }
        self.enable(&["QRESYNC"]).await?;
        if self.enabled().iter().any(|e| e == "QRESYNC") {
            Ok(())
        } else {
            Err(Error::Command {
                status: "OK".into(),
                text: "ENABLE QRESYNC did not enable QRESYNC".into(),
            })
        }
    }

    /// EXAMINE (read-only SELECT).
    pub async fn examine(&mut self, mailbox: &Mailbox) -> Result<MailboxState, Error> {
        self.select(
            mailbox,
            SelectOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .await
    }

    /// LIST reference pattern.
    pub async fn list(
        &mut self,
        reference: &str,
        pattern: &str,
    ) -> Result<Vec<MailboxList>, Error> {
        let c = self
            .run(Command::List(List::new(
                Mailbox::from_utf8(reference),
                pattern.as_bytes().to_vec(),
            )))
            .await?;
        match c.data {
            CommandData::List { mailboxes, .. } => Ok(mailboxes),
            _ => Ok(Vec::new()),
        }
    }

    /// STATUS mailbox (items).
    pub async fn status(
        &mut self,
        mailbox: &Mailbox,
        items: &[StatusItem],
    ) -> Result<MailboxStatus, Error> {
        let c = self
            .run(Command::Status {
                mailbox: mailbox.clone(),
                items: items.to_vec(),
            })
            .await?;
        match c.data {
            CommandData::Status(Some(s)) => Ok(s),
            _ => Err(Error::Command {
                status: "OK".into(),
                text: "no STATUS response".into(),
            }),
        }
    }

    /// SEARCH or UID SEARCH (seed V0051).
    pub async fn search(&mut self, search: Search) -> Result<SearchResult, Error> {
        let c = self.run(Command::Search(search)).await?;
        match c.data {
            CommandData::Search(r) => Ok(r),
            _ => Ok(SearchResult::default()),
        }
    }

    /// UID FETCH, delivering each response and body chunk to `sink` as it arrives. Returns
    /// the number of FETCH responses.
    pub async fn uid_fetch(
        &mut self,
        set: &UidSet,
        items: FetchItems,
        modifiers: FetchModifiers,
        sink: &mut dyn FetchSink,
    ) -> Result<u64, Error> {
        self.uid_fetch_report(set, items, modifiers, sink)
            .await
            .map(|r| r.count)
    }

    /// UID FETCH like [`Session::uid_fetch`], also returning what CONDSTORE/QRESYNC
    /// modifiers bring: with `CHANGEDSINCE n VANISHED` (QRESYNC enabled), the UIDs expunged
    /// since n (RFC 7162 3.2.6). FETCH responses that do not answer this command (another
    /// client's flag changes) are not given to `sink`; they arrive as notifications.
    pub async fn uid_fetch_report(
        &mut self,
        set: &UidSet,
        items: FetchItems,
        modifiers: FetchModifiers,
        sink: &mut dyn FetchSink,
    ) -> Result<FetchReport, Error> {
        let h = self.submit(Command::UidFetch {
            set: set.clone(),
            items,
            modifiers,
        });
        let c = self.wait_with_sink(h, Some(sink)).await?;
        if let Some(e) = outcome_error(&c.outcome) {
            return Err(e);
        }
        Ok(FetchReport {
            count: match c.data {
                CommandData::Fetch { count } => count,
                _ => 0,
            },
            vanished: c.vanished,
        })
    }

    /// Conditional UID STORE (RFC 7162 3.1.3): stores only on messages whose mod-sequence is
    /// not above `unchanged_since`, and reports the others in `modified` instead of failing.
    /// Needs CONDSTORE (the server advertises it; a SELECT with CONDSTORE or QRESYNC, or any
    /// CONDSTORE command, enables it).
    pub async fn uid_store_report(
        &mut self,
        set: &UidSet,
        store: StoreFlags,
        unchanged_since: u64,
    ) -> Result<StoreReport, Error> {
        let h = self.submit(Command::UidStore {
            set: set.clone(),
            store,
            unchanged_since: Some(unchanged_since),
        });
        let c = self.wait(h).await?;
        let fetched = self.fetched.remove(&h).unwrap_or_default();
        let modified = match c.outcome.code() {
            // For UID STORE the set holds UIDs (RFC 7162 3.1.3).
            Some(Code::Modified(set)) => UidSet::from_ranges(set.ranges()).unwrap_or_default(),
            _ => UidSet::new(),
        };
        match &c.outcome {
            Outcome::Ok { .. } => {}
            // Some servers answer NO [MODIFIED …] when nothing could be stored; that is
            // still the answer to a conditional STORE, not a failure of the command.
            Outcome::No { .. } if !modified.is_empty() => {}
            other => {
                if let Some(e) = outcome_error(other) {
                    return Err(e);
                }
            }
        }
        Ok(StoreReport { fetched, modified })
    }

    /// UID STORE; returns the FETCH responses (none with `.SILENT`).
    pub async fn uid_store(
        &mut self,
        set: &UidSet,
        store: StoreFlags,
        unchanged_since: Option<u64>,
    ) -> Result<Vec<Fetch>, Error> {
        let h = self.submit(Command::UidStore {
            set: set.clone(),
            store,
            unchanged_since,
        });
        let c = self.wait(h).await?;
        if let Some(e) = outcome_error(&c.outcome) {
            return Err(e);
        }
        Ok(self.fetched.remove(&h).unwrap_or_default())
    }

    /// UID COPY; the tagged OK's code carries COPYUID when the server has UIDPLUS.
    pub async fn uid_copy(&mut self, set: &UidSet, to: &Mailbox) -> Result<Option<Code>, Error> {
        let c = self
            .run(Command::UidCopy {
                set: set.clone(),
                mailbox: to.clone(),
            })
            .await?;
        Ok(c.outcome.code().cloned())
    }

    /// UID MOVE (RFC 6851).
    pub async fn uid_move(&mut self, set: &UidSet, to: &Mailbox) -> Result<Option<Code>, Error> {
        let c = self
            .run(Command::UidMove {
                set: set.clone(),
                mailbox: to.clone(),
            })
            .await?;
        Ok(c.outcome.code().cloned())
    }

    /// UID EXPUNGE (RFC 4315).
    pub async fn uid_expunge(&mut self, set: &UidSet) -> Result<(), Error> {
        self.run(Command::UidExpunge(set.clone())).await.map(|_| ())
    }

    /// APPEND from memory; returns the tagged OK's code (APPENDUID with UIDPLUS).
    pub async fn append(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        date: Option<DateTime>,
        message: Vec<u8>,
    ) -> Result<Option<Code>, Error> {
        let c = self
            .run(Command::Append(Append {
                mailbox: mailbox.clone(),
                flags: flags.to_vec(),
                internal_date: date,
                message: AppendData::Inline(message),
            }))
            .await?;
        Ok(c.outcome.code().cloned())
    }

    /// APPEND streaming `len` bytes from `reader`: the message is never held in memory.
    pub async fn append_stream(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        date: Option<DateTime>,
        reader: Box<dyn AsyncRead + Unpin + Send>,
        len: u64,
    ) -> Result<Option<Code>, Error> {
        self.append_stream_with(mailbox, flags, date, reader, len, false)
            .await
    }

    /// [`Session::append_stream`] in a BINARY literal8 (`~{n}`, RFC 3516) when `binary`: for
    /// data holding NUL bytes, which a normal literal must not carry (seed V0014). Refused
    /// before anything is sent when the server does not offer BINARY.
    pub async fn append_stream_with(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        date: Option<DateTime>,
        reader: Box<dyn AsyncRead + Unpin + Send>,
        len: u64,
        binary: bool,
    ) -> Result<Option<Code>, Error> {
        let h = self.submit(Command::Append(Append {
            mailbox: mailbox.clone(),
            flags: flags.to_vec(),
            internal_date: date,
            message: AppendData::Streamed { len, binary },
        }));
        self.literal = Some((h, reader));
        let c = self.wait(h).await;
        self.literal = None;
        let c = c?;
        if let Some(e) = outcome_error(&c.outcome) {
            return Err(e);
        }
        Ok(c.outcome.code().cloned())
    }

    /// CREATE.
    pub async fn create(&mut self, mailbox: &Mailbox) -> Result<(), Error> {
        self.run(Command::Create(mailbox.clone())).await.map(|_| ())
    }

    /// RENAME.
    pub async fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> Result<(), Error> {
        self.run(Command::Rename {
            from: from.clone(),
            to: to.clone(),
        })
        .await
        .map(|_| ())
    }

    /// DELETE.
    pub async fn delete(&mut self, mailbox: &Mailbox) -> Result<(), Error> {
        self.run(Command::Delete(mailbox.clone())).await.map(|_| ())
    }

    /// SUBSCRIBE.
    pub async fn subscribe(&mut self, mailbox: &Mailbox) -> Result<(), Error> {
        self.run(Command::Subscribe(mailbox.clone()))
            .await
            .map(|_| ())
    }

    /// NOOP (also polls for changes: seed V0028).
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.run(Command::Noop).await.map(|_| ())
    }

    /// ENABLE; returns what the server enabled.
    pub async fn enable(&mut self, caps: &[&str]) -> Result<Vec<String>, Error> {
        let c = self
            .run(Command::Enable(
                caps.iter().map(|s| s.to_string()).collect(),
            ))
            .await?;
        Ok(match c.data {
            CommandData::Enabled(v) => v,
            _ => Vec::new(),
        })
    }

    /// ID (RFC 2971).
    pub async fn id(
        &mut self,
        fields: Option<Vec<(String, Option<String>)>>,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        let c = self.run(Command::Id(fields)).await?;
        Ok(match c.data {
            CommandData::Id(v) => v,
            _ => Vec::new(),
        })
    }

    /// NAMESPACE (RFC 2342).
    pub async fn namespace(&mut self) -> Result<CommandData, Error> {
        Ok(self.run(Command::Namespace).await?.data)
    }

    /// A raw command (seed V0061); returns its completion with every untagged response.
    pub async fn raw(&mut self, text: &str) -> Result<Completion, Error> {
        let h = self.submit(Command::Raw(text.as_bytes().to_vec()));
        self.wait(h).await
    }

    /// IDLE until something changes in the mailbox, `stop` is triggered, or `max` passes;
    /// then DONE. Returns the notifications that arrived (seed V0023, V0028). The engine
    /// re-issues IDLE before 29 minutes on its own.
    pub async fn idle(
        &mut self,
        stop: &IdleStop,
        max: Duration,
    ) -> Result<Vec<Notification>, Error> {
        // Only what arrives from now on ends the IDLE; older notes are just returned too.
        let base = self.notes.len();
        let h = self.submit(Command::Idle);
        let until = tokio::time::Instant::now() + max;
        let mut stopping = false;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(c) = self.done.remove(&h) {
                if let Some(e) = outcome_error(&c.outcome) {
                    return Err(e);
                }
                return Ok(self.take_notifications());
            }
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            let changed = self.notes.iter().skip(base).any(is_change);
            if !stopping && (changed || tokio::time::Instant::now() >= until) {
                stopping = true;
                self.engine.idle_done(h, now());
                continue;
            }
            let deadline = self.engine_deadline();
            tokio::select! {
                r = self.read_once(deadline) => r?,
                _ = stop.0.notified(), if !stopping => {
                    stopping = true;
                    self.engine.idle_done(h, now());
                }
                _ = tokio::time::sleep_until(until), if !stopping => {}
            }
        }
    }

    /// Keeps a session that is held without commands alive (seed V0025): reads and applies
    /// whatever the server sends meanwhile (seed V0024), lets the engine send its keepalive
    /// NOOP when `Config::keepalive` has passed without traffic, and returns once that NOOP
    /// has completed or the server sent something worth reporting, with the notifications
    /// collected so far.
    ///
    /// Made to be raced against the holder's own work in `tokio::select!` (no background
    /// task, so nothing writes behind the caller's back): it is cancel-safe, because a read
    /// in progress consumes nothing until it completes and bytes taken for writing are kept
    /// in the session until written.
    ///
    /// ```no_run
    /// # async fn demo(mut s: mailfold_net::Session, mut jobs: tokio::sync::mpsc::Receiver<()>)
    /// # -> Result<(), mailfold_net::Error> {
    /// loop {
    ///     tokio::select! {
    ///         job = jobs.recv() => match job {
    ///             Some(()) => { s.noop().await?; }
    ///             None => break,
    ///         },
    ///         notes = s.keepalive_tick() => {
    ///             for note in notes? { println!("{note:?}"); }
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn keepalive_tick(&mut self) -> Result<Vec<Notification>, Error> {
        let mut noop_sent = false;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            if !self.engine.is_quiet() {
                // The timer fired and queued the NOOP (or the caller left commands pending,
                // which this drives too).
                noop_sent = true;
            } else if noop_sent || !self.notes.is_empty() {
                return Ok(self.take_notifications());
            }
            let deadline = self.engine_deadline();
            self.read_once(deadline).await?;
        }
    }

    /// Watches the selected mailbox until something changes, `stop` is triggered, or `max`
    /// passes (seed V0028): with IDLE when the server offers it, else by polling with NOOP
    /// every `poll_every` (NOOP also resets the server's autologout timer, seed V0025).
    /// Returns the notifications that arrived.
    pub async fn idle_or_poll(
        &mut self,
        stop: &IdleStop,
        max: Duration,
        poll_every: Duration,
    ) -> Result<Vec<Notification>, Error> {
        if self.caps().has("IDLE") {
            return self.idle(stop, max).await;
        }
        let start = tokio::time::Instant::now();
        let until = start + max;
        let mut next_poll = start + poll_every;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            if self.notes.iter().any(is_change) {
                return Ok(self.take_notifications());
            }
            let t = tokio::time::Instant::now();
            if t >= until {
                return Ok(self.take_notifications());
            }
            if t >= next_poll {
                self.noop().await?;
                next_poll = tokio::time::Instant::now() + poll_every;
                continue;
            }
            let wake = match self.engine_deadline() {
                Some(d) => d.min(next_poll).min(until),
                None => next_poll.min(until),
            };
            tokio::select! {
                r = self.read_once(Some(wake)) => r?,
                _ = stop.0.notified() => return Ok(self.take_notifications()),
            }
        }
    }

    /// Takes the notifications collected so far (ALERTs, BYE, mailbox changes, unsolicited
    /// FETCH).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        self.notes_dropped = 0;
        self.notes.drain(..).collect()
    }

    /// LOGOUT, reading the tagged OK within the engine's logout timeout (seeds N2, V0011),
    /// then close_notify and close.
    pub async fn logout(mut self) -> Result<(), Error> {
        let result = match self.closed.clone() {
            None => {
                let h = self.submit(Command::Logout);
                match self.wait(h).await {
                    Ok(_) => Ok(()),
                    // BYE and a close without the tagged OK: the server ended it anyway.
                    Err(Error::Protocol(EngineError::Bye(_))) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Some(EngineError::Bye(_)) => Ok(()),
            Some(e) => Err(map_engine_error(e)),
        };
        if let Some(mut t) = self.transport.take() {
            t.close().await;
        }
        result
    }

    // ----- pipelining -----

    /// Queues a command and returns at once; [`Session::wait`] collects the result. Many
    /// commands may be submitted before waiting: they are pipelined where RFC 3501 5.5
    /// allows (seed V0026).
    pub fn submit(&mut self, cmd: Command) -> CommandHandle {
        self.stats.command(cmd.name());
        self.engine.submit(cmd)
    }

    /// Drives the connection until `handle` completes. FETCH responses for it are kept
    /// and can be taken with [`Session::take_fetched`].
    pub async fn wait(&mut self, handle: CommandHandle) -> Result<Completion, Error> {
        self.wait_with_sink(handle, None).await
    }

    /// FETCH responses collected for a waited command.
    pub fn take_fetched(&mut self, handle: CommandHandle) -> Vec<Fetch> {
        self.fetched.remove(&handle).unwrap_or_default()
    }

    async fn run(&mut self, cmd: Command) -> Result<Completion, Error> {
        let h = self.submit(cmd);
        let c = self.wait(h).await?;
        match outcome_error(&c.outcome) {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }

    async fn wait_with_sink(
        &mut self,
        handle: CommandHandle,
        sink: Option<&mut dyn FetchSink>,
    ) -> Result<Completion, Error> {
        self.sink_for = sink.is_some().then_some(handle);
        let r = self
            .drive_until(|s| s.done.contains_key(&handle), sink)
            .await;
        self.sink_for = None;
        r?;
        let c = self.done.remove(&handle).ok_or(Error::Closed)?;
        if c.outcome == Outcome::Aborted {
            // The command died with the connection: report why the connection died.
            if let Some(e) = self.closed.clone() {
                return Err(map_engine_error(e));
            }
        }
        Ok(c)
    }

    /// Reads and writes until `cond` holds or the session ends.
    async fn drive_until(
        &mut self,
        cond: impl Fn(&Session) -> bool,
        mut sink: Option<&mut dyn FetchSink>,
    ) -> Result<(), Error> {
        loop {
            self.flush().await?;
            self.step(&mut sink).await?;
            if cond(self) {
                return Ok(());
            }
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            let deadline = self.engine_deadline();
            self.read_once(deadline).await?;
            self.step(&mut sink).await?;
        }
    }

    fn engine_deadline(&self) -> Option<tokio::time::Instant> {
        self.engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
    }

    /// One read (or the engine's timer firing), fed to the engine.
    async fn read_once(&mut self, deadline: Option<tokio::time::Instant>) -> Result<(), Error> {
        let Some(transport) = self.transport.as_mut() else {
            return Err(Error::Closed);
        };
        let read = transport.read(&mut self.read_buf);
        let res = match deadline {
            Some(d) => tokio::time::timeout_at(d, read).await.ok(),
            None => Some(read.await),
        };
        let now = now();
        match res {
            None => self.engine.handle_timeout(now),
            Some(Ok(0)) => self.engine.handle_eof(now),
            Some(Ok(n)) => {
                // Sizes only: the bytes may be mail, and what we write may hold credentials.
                tracing::trace!("read {n} bytes");
                self.stats.received(n as u64);
                self.engine.handle_input(&self.read_buf[..n], now);
            }
            Some(Err(e)) => {
                self.engine.handle_eof(now);
                return Err(Error::Io("reading from the server".into(), e));
            }
        }
        Ok(())
    }

    /// Writes everything the engine has to send. Cancel-safe for command bytes: what was
    /// taken from the engine but not written stays in `wbuf` for the next call. (A streamed
    /// APPEND literal is not: its reader is consumed as it is copied.)
    async fn flush(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            if self.wpos < self.wbuf.len() {
                let Some(transport) = self.transport.as_mut() else {
                    return Err(Error::Closed);
                };
                let n = tokio::time::timeout(
                    self.connect_timeout,
                    transport.write(&self.wbuf[self.wpos..]),
                )
                .await
                .map_err(|_| Error::Timeout("writing to the server".into()))?
                .map_err(|e| Error::Io("writing to the server".into(), e))?;
                if n == 0 {
                    return Err(Error::Io(
                        "writing to the server".into(),
                        std::io::ErrorKind::WriteZero.into(),
                    ));
                }
                self.wpos += n;
                tracing::trace!("wrote {n} bytes");
                self.stats.sent(n as u64);
                wrote = true;
                continue;
            }
            self.wbuf.clear();
            self.wpos = 0;
            let Some(t) = self.engine.poll_transmit(now()) else {
                break;
            };
            match t {
                Transmit::Data(d) => self.wbuf = d,
                Transmit::Literal { handle, len } => {
                    let Some(transport) = self.transport.as_mut() else {
                        return Err(Error::Closed);
                    };
                    let Some((h, reader)) = self.literal.as_mut() else {
                        return Err(Error::Closed);
                    };
                    if *h != handle {
                        return Err(Error::Closed);
                    }
                    let mut limited = reader.take(len);
                    // A server that stops reading (its window closed for ever) must not hang
                    // the upload: it gets the literal's time at the floor rate, plus the
                    // connect timeout for a start.
                    let bound = self
                        .connect_timeout
                        .saturating_add(at_rate(len, self.min_rate));
                    let copied =
                        tokio::time::timeout(bound, tokio::io::copy(&mut limited, transport)).await;
                    let Ok(copied) = copied else {
                        // Part of the literal is on the wire: the connection is unusable.
                        self.transport = None;
                        return Err(Error::Timeout(format!(
                            "the server did not take the {len}-byte APPEND literal in {} s",
                            bound.as_secs()
                        )));
                    };
                    let n = copied.map_err(|e| Error::Io("streaming APPEND data".into(), e))?;
                    if n != len {
                        // The literal's size is on the wire already: the connection cannot
                        // be resynchronised.
                        self.transport = None;
                        return Err(Error::Io(
                            "streaming APPEND data".into(),
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!("reader gave {n} of {len} bytes"),
                            ),
                        ));
                    }
                    self.stats.sent(len);
                    wrote = true;
                }
            }
        }
        if wrote {
            if let Some(t) = self.transport.as_mut() {
                t.flush()
                    .await
                    .map_err(|e| Error::Io("writing to the server".into(), e))?;
            }
        }
        Ok(())
    }

    /// Sorts engine events: completions, FETCH data, notifications. Returns true when the
    /// engine asks for the TLS handshake (STARTTLS accepted).
    fn dispatch(&mut self, sink: &mut Option<&mut dyn FetchSink>) -> Result<bool, Error> {
        let mut start_tls = false;
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Completed(c) => {
                    self.done.insert(c.handle, c);
                }
                Event::Fetch {
                    handle: Some(h),
                    fetch,
                } => {
                    if let (Some(s), true) = (sink.as_deref_mut(), self.sink_for == Some(h)) {
                        s.fetch(fetch)
                            .map_err(|e| Error::Io("FETCH sink".into(), e))?;
                    } else {
                        let kept = self.fetched.entry(h).or_default();
                        if kept.len() >= MAX_FETCHED {
                            let e = EngineError::Protocol(format!(
                                "the server sent more than {MAX_FETCHED} FETCH responses for \
                                 one command"
                            ));
                            self.closed = Some(e.clone());
                            self.transport = None;
                            return Err(Error::Protocol(e));
                        }
                        kept.push(fetch);
                    }
                }
                Event::BodyStart { handle, part } => {
                    if let (Some(s), true) = (sink.as_deref_mut(), handle == self.sink_for) {
                        s.body_start(&part)
                            .map_err(|e| Error::Io("FETCH sink".into(), e))?;
                    }
                }
                Event::BodyChunk { handle, data } => {
                    if let (Some(s), true) = (sink.as_deref_mut(), handle == self.sink_for) {
                        s.body_chunk(&data)
                            .map_err(|e| Error::Io("FETCH sink".into(), e))?;
                    }
                }
                Event::BodyEnd { handle } => {
                    if let (Some(s), true) = (sink.as_deref_mut(), handle == self.sink_for) {
                        s.body_end()
                            .map_err(|e| Error::Io("FETCH sink".into(), e))?;
                    }
                }
                Event::StartTls => start_tls = true,
                Event::Closed(e) => {
                    self.closed = Some(e.unwrap_or(EngineError::ConnectionClosed));
                }
                Event::Alert { text, encrypted } => {
                    if encrypted {
                        tracing::warn!("server ALERT: {text}");
                    } else {
                        tracing::warn!("server ALERT (over cleartext, untrusted): {text}");
                    }
                    self.note(Event::Alert { text, encrypted });
                }
                Event::Greeting { kind, text } => {
                    tracing::debug!("greeting {kind:?}: {text}");
                    self.greeting = Some(without_controls(&text));
                    if kind == GreetingKind::PreAuth {
                        self.note(Event::Greeting { kind, text });
                    }
                }
                Event::IdleStarted(_) => {}
                other => self.note(other),
            }
        }
        Ok(start_tls)
    }

    /// Keeps a notification for [`Session::take_notifications`], within [`MAX_NOTES`].
    fn note(&mut self, n: Notification) {
        if self.notes.len() < MAX_NOTES || matches!(n, Event::Bye { .. }) {
            self.notes.push_back(n);
        } else {
            if self.notes_dropped == 0 {
                tracing::warn!(
                    "more than {MAX_NOTES} server notifications unread; dropping the rest"
                );
            }
            self.notes_dropped = self.notes_dropped.saturating_add(1);
        }
    }

    /// The TLS handshake after STARTTLS's OK. Nothing was written since; the engine has
    /// already checked that nothing was read after the OK (response injection).
    async fn upgrade_tls(&mut self) -> Result<(), Error> {
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Err(Error::Security(
                "STARTTLS on a connection that is not cleartext".into(),
            ));
        };
        // Bytes the server sent after its OK in a later segment, already here: the same
        // injection as bytes in the OK's own read, caught before the ClientHello is written.
        // One look without waiting (tokio's `timeout` polls the read before its timer); later
        // bytes fail the handshake instead, as rustls refuses what is not a TLS record.
        let mut first = [0u8; 1];
        if let Ok(Ok(1..)) = tokio::time::timeout(Duration::ZERO, tcp.peek(&mut first)).await {
            drop(tcp);
            let e = EngineError::Injection(
                "bytes arrived after the STARTTLS OK, before the TLS handshake".into(),
            );
            self.closed = Some(e.clone());
            return Err(map_engine_error(e));
        }
        let name = server_name(&self.host)?;
        let config = self.tls.clone().ok_or_else(no_tls)?;
        let tls = tokio::time::timeout(
            self.connect_timeout,
            Transport::tls_handshake(tcp, config, name),
        )
        .await
        .map_err(|_| Error::Timeout("TLS handshake after STARTTLS".into()))?
        .map_err(|e| handshake_error(&e, &self.trust))?;
        self.transport = Some(tls);
        self.engine.tls_established(now());
        // Anything the server said in cleartext could have been written by anyone on the
        // path: forged LIST, STATUS, FETCH, … are dropped with the engine's state (RFC 9051
        // 6.2.1). A cleartext ALERT was already logged as untrusted.
        self.notes.clear();
        self.fetched.clear();
        self.record_tls_info(true);
        Ok(())
    }

    fn record_tls_info(&mut self, via_starttls: bool) {
        if let Some(Transport::Tls(t)) = &self.transport {
            let info = TlsInfo::from_connection(t.get_ref().1, self.trust.get(), via_starttls);
            tracing::debug!(
                "TLS {} {} ({} certificates, trust {:?})",
                info.protocol,
                info.cipher_suite,
                info.peer_certificates.len(),
                info.trust
            );
            self.tls_info = Some(info);
        }
    }

    async fn step(&mut self, sink: &mut Option<&mut dyn FetchSink>) -> Result<(), Error> {
        if self.dispatch(sink)? {
            // The engine announces the handshake when it reads STARTTLS's OK, and fails the
            // connection a moment later, in the same `handle_input`, when more bytes came
            // with that OK (injection, RFC 9051 6.2.1): both events are queued by the time
            // they are dispatched. The failure wins, before a ClientHello is written.
            if let Some(e) = self.closed.clone() {
                self.abandon().await;
                return Err(map_engine_error(e));
            }
            self.upgrade_tls().await?;
        }
        Ok(())
    }

    /// Drops the connection without LOGOUT: only after a security refusal or a protocol
    /// or I/O error (seed V0011), and the error says why.
    async fn abandon(&mut self) {
        if let Some(mut t) = self.transport.take() {
            t.close().await;
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

/// Server text with control characters removed, so that printing it cannot drive a
/// terminal.
fn without_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Whether a notification ends a watch: a mailbox change, another client's flag change, a
/// NOTIFY report about another mailbox, or the server leaving.
fn is_change(n: &Notification) -> bool {
    // NOTIFY's reports (RFC 5465) include the selected mailbox's changes and unsolicited
    // FETCH, so one test covers both kinds of session.
    matches!(n, Event::Bye { .. }) || mailfold_proto::notify::Notice::of(n).is_some()
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

fn map_engine_error(e: EngineError) -> Error {
    match e {
        EngineError::Timeout(s) => Error::Timeout(s),
        EngineError::Injection(s) => Error::Security(format!("response injection: {s}")),
        other => Error::Protocol(other),
    }
}

/// A tag seed from the OS (tags need not be secret, only varied; seed C0001).
fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut bytes = [0u8; 8];
    let mut src = OsNonceSource;
    let _ = mailfold_sasl::NonceSource::fill_bytes(&mut src, &mut bytes);
    u64::from_le_bytes(bytes) ^ t
}

// ----- watching many mailboxes: NOTIFY (RFC 5465) and cheap status polls -----
//
// Kept apart from the connection and authentication code above: these are plain commands
// with typed results, for a watcher that follows every folder of an account from one
// connection.

impl Session {
    /// `NOTIFY SET …` or `NOTIFY NONE` (RFC 5465). From then on the server's reports arrive
    /// as notifications ([`Session::take_notifications`], [`Session::idle_or_poll`], which
    /// also ends on them); [`mailfold_proto::notify::Notice::of`] tells them apart. A server
    /// without NOTIFY answers BAD, returned as [`Error::Command`].
    pub async fn notify(&mut self, request: &mailfold_proto::notify::Notify) -> Result<(), Error> {
        self.run(Command::Notify(request.clone())).await.map(|_| ())
    }

    /// `LIST "" pattern RETURN (STATUS (items))` (LIST-STATUS, RFC 5819): every matching
    /// mailbox with its status in one round trip. A mailbox the server could not give a
    /// status for (RFC 5819 allows that) has none in the second list.
    pub async fn list_status(
        &mut self,
        pattern: &str,
        items: &[StatusItem],
    ) -> Result<(Vec<MailboxList>, Vec<MailboxStatus>), Error> {
        if items.is_empty() {
            return Err(Error::Command {
                status: "BAD".into(),
                text: "LIST-STATUS needs at least one status item".into(),
            });
        }
        let mut list = List::new(Mailbox::from_utf8(""), pattern.as_bytes().to_vec());
        list.returns = vec![mailfold_proto::command::ListReturn::Status(items.to_vec())];
        let c = self.run(Command::List(list)).await?;
        match c.data {
            CommandData::List {
                mailboxes,
                statuses,
            } => Ok((mailboxes, statuses)),
            _ => Ok((Vec::new(), Vec::new())),
        }
    }

    /// STATUS of every mailbox in one pipelined round trip (RFC 3501 5.5 allows STATUS to
    /// pipeline). One result per mailbox, in order: the status, or the server's refusal
    /// (such as NO for a mailbox deleted meanwhile). `Err` only when the connection failed.
    pub async fn status_many(
        &mut self,
        mailboxes: &[Mailbox],
        items: &[StatusItem],
    ) -> Result<Vec<Result<MailboxStatus, Error>>, Error> {
        let handles: Vec<CommandHandle> = mailboxes
            .iter()
            .map(|m| {
                self.submit(Command::Status {
                    mailbox: m.clone(),
                    items: items.to_vec(),
                })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let c = self.wait(h).await?;
            out.push(match (outcome_error(&c.outcome), c.data) {
                (Some(e), _) => Err(e),
                (None, CommandData::Status(Some(st))) => Ok(st),
                (None, _) => Err(Error::Command {
                    status: "OK".into(),
                    text: "no STATUS response".into(),
                }),
            });
        }
        Ok(out)
    }
}
