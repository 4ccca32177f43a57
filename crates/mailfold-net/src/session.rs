//! An IMAP session over tokio: owns the transport and drives the sans-IO engine.
//!
//! The driver only moves bytes and time: every protocol decision (tags, pipelining,
//! literals, STARTTLS sequencing, SASL continuations, keepalive) is the engine's. What lives
//! here is the connection policy of RFC 8314 and RFC 9051 6.2.1 (seed N1, issue 3): which
//! transport to open, refusing to continue when STARTTLS is missing or refused, refusing a
//! PREAUTH over cleartext when TLS is required, and which authentication to try (seeds
//! V0031, V0032, V0034), with the mechanism order and fallback rule from `mailfold_sasl`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfold_proto::command::{
    Append, AppendData, Command, DateTime, FetchItems, FetchModifiers, List, Search, SelectParams,
    StatusItem, StoreFlags,
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
    Credentials, FailureKind, NextAttempt, OsNonceSource, Policy, Secret,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::connect::connect_tcp;
use crate::error::Error;
use crate::stats::Stats;
use crate::stream::Transport;
use crate::tls::{client_config, server_name, warn_if_dangerous, TlsOptions};

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
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}

/// Options for SELECT and EXAMINE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// `(CONDSTORE)` (RFC 7162).
    pub condstore: bool,
    /// EXAMINE instead of SELECT (seed V0040).
    pub read_only: bool,
}

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
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    read_buf: Vec<u8>,
    done: HashMap<CommandHandle, Completion>,
    /// FETCH responses for submitted commands nobody streams (pipelined use).
    fetched: HashMap<CommandHandle, Vec<Fetch>>,
    notes: VecDeque<Notification>,
    /// Where body chunks of the command currently being waited on go.
    sink_for: Option<CommandHandle>,
    /// The reader of a streamed APPEND in progress.
    literal: Option<(CommandHandle, Box<dyn AsyncRead + Unpin + Send>)>,
    closed: Option<EngineError>,
    stats: Stats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("state", &self.engine.state())
            .finish_non_exhaustive()
    }
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
        let mut s = Session::open(cfg).await?;
        if let Some(creds) = creds {
            if s.engine.state() == ConnState::NotAuthenticated {
                s.authenticate(cfg, creds).await?;
            }
        }
        if s.engine.session().capabilities.is_none() {
            s.capability().await?;
        }
        Ok(s)
    }

    /// Connects and secures the transport, without authenticating.
    pub async fn open(cfg: &ConnectConfig) -> Result<Self, Error> {
        let port = cfg.port();
        let tls = client_config(&cfg.tls)?;
        if cfg.security != Security::Plaintext {
            warn_if_dangerous(&cfg.tls, &cfg.host);
        }
        let tcp = connect_tcp(&cfg.host, port, cfg.connect_timeout).await?;
        let implicit = cfg.security == Security::ImplicitTls;
        let transport = if implicit {
            let name = server_name(&cfg.host)?;
            tokio::time::timeout(
                cfg.connect_timeout,
                Transport::tls_handshake(tcp, tls.clone(), name),
            )
            .await
            .map_err(|_| Error::Timeout("TLS handshake".into()))?
            .map_err(|e| Error::Tls(e.to_string()))?
        } else {
            Transport::Plain(tcp)
        };
        let mut ecfg = cfg.engine.clone();
        ecfg.tag_seed = random_seed();
        let mut s = Session {
            engine: Client::new(ecfg, implicit, Instant::now()),
            transport: Some(transport),
            host: cfg.host.clone(),
            port,
            tls,
            connect_timeout: cfg.connect_timeout,
            read_buf: vec![0; 64 * 1024],
            done: HashMap::new(),
            fetched: HashMap::new(),
            notes: VecDeque::new(),
            sink_for: None,
            literal: None,
            closed: None,
            stats: Stats::default(),
        };
        // The greeting, bounded by the connect timeout as well as the engine's own.
        let greeting = tokio::time::timeout(
            cfg.connect_timeout,
            s.drive_until(|s| s.engine.state() != ConnState::Greeting, None),
        )
        .await;
        match greeting {
            Err(_) => return Err(Error::Timeout("waiting for the greeting".into())),
            Ok(r) => r?,
        }
        if let Some(e) = s.closed.clone() {
            s.abandon().await;
            return Err(map_engine_error(e));
        }
        let preauth = s.engine.state() == ConnState::Authenticated;
        match cfg.security {
            Security::StartTls => {
                if preauth {
                    // RFC 9051 6.2.1 / RFC 8314: PREAUTH over cleartext skips STARTTLS; an
                    // account that requires TLS must not go on (the 2021 STARTTLS study).
                    s.abandon().await;
                    return Err(Error::Security(
                        "server sent PREAUTH on a cleartext connection; TLS is required".into(),
                    ));
                }
                s.starttls().await?;
            }
            Security::ImplicitTls | Security::Plaintext => {}
        }
        Ok(s)
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
                return Err(Error::Security(format!("STARTTLS failed: {e}")));
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
        let ctx = ClientContext::imap(self.host.clone(), self.port);
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
                    let h = self.engine.authenticate(mech, sasl_ir);
                    self.stats.command("AUTHENTICATE");
                    let c = self.wait(h).await?;
                    if c.outcome.is_ok() {
                        return self.after_auth().await;
                    }
                    let failure = match &c.data {
                        CommandData::Auth {
                            sasl_error: Some(e),
                        } => FailureKind::from_error(e),
                        _ => match &c.outcome {
                            Outcome::Bad { .. } => FailureKind::MechanismUnusable,
                            o => FailureKind::from_response_code(
                                o.code().and_then(code_name).as_deref(),
                            ),
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
                            text: format!("{text} ({reason:?})"),
                        });
                    }
                }
                NextAttempt::LoginCommand => {
                    let h = self.submit(Command::login(
                        &creds.authcid,
                        Secret::new(creds.secret.expose().clone()),
                    ));
                    let c = self.wait(h).await?;
                    if c.outcome.is_ok() {
                        return self.after_auth().await;
                    }
                    return Err(Error::Auth {
                        mechanism: "LOGIN command".into(),
                        text: outcome_error(&c.outcome)
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
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

    /// SELECT or EXAMINE (seeds V0036–V0038, V0040).
    pub async fn select(
        &mut self,
        mailbox: &Mailbox,
        opts: SelectOptions,
    ) -> Result<MailboxState, Error> {
        let params = if opts.condstore {
            SelectParams::CondStore
        } else {
            SelectParams::None
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
        let c = self.run(cmd).await?;
        match c.data {
            CommandData::Select(mb) => Ok(mb),
            _ => Err(Error::Command {
                status: "OK".into(),
                text: "SELECT returned no mailbox state".into(),
            }),
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
        let h = self.submit(Command::UidFetch {
            set: set.clone(),
            items,
            modifiers,
        });
        let c = self.wait_with_sink(h, Some(sink)).await?;
        if let Some(e) = outcome_error(&c.outcome) {
            return Err(e);
        }
        Ok(match c.data {
            CommandData::Fetch { count } => count,
            _ => 0,
        })
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
        let h = self.submit(Command::Append(Append {
            mailbox: mailbox.clone(),
            flags: flags.to_vec(),
            internal_date: date,
            message: AppendData::Streamed { len, binary: false },
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
            let changed = self.notes.iter().skip(base).any(|n| {
                matches!(
                    n,
                    Event::Mailbox(_) | Event::Fetch { handle: None, .. } | Event::Bye { .. }
                )
            });
            if !stopping && (changed || tokio::time::Instant::now() >= until) {
                stopping = true;
                self.engine.idle_done(h, Instant::now());
                continue;
            }
            let deadline = self.engine_deadline();
            tokio::select! {
                r = self.read_once(deadline) => r?,
                _ = stop.0.notified(), if !stopping => {
                    stopping = true;
                    self.engine.idle_done(h, Instant::now());
                }
                _ = tokio::time::sleep_until(until), if !stopping => {}
            }
        }
    }

    /// Takes the notifications collected so far (ALERTs, BYE, mailbox changes, unsolicited
    /// FETCH).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
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
        let now = Instant::now();
        let t = tokio::time::Instant::now();
        self.engine
            .poll_timeout()
            .map(|d| t + d.saturating_duration_since(now))
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
        let now = Instant::now();
        match res {
            None => self.engine.handle_timeout(now),
            Some(Ok(0)) => self.engine.handle_eof(now),
            Some(Ok(n)) => {
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

    /// Writes everything the engine has to send.
    async fn flush(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        while let Some(t) = self.engine.poll_transmit(Instant::now()) {
            let Some(transport) = self.transport.as_mut() else {
                return Err(Error::Closed);
            };
            match t {
                Transmit::Data(d) => {
                    tokio::time::timeout(self.connect_timeout, transport.write_all(&d))
                        .await
                        .map_err(|_| Error::Timeout("writing to the server".into()))?
                        .map_err(|e| Error::Io("writing to the server".into(), e))?;
                    self.stats.sent(d.len() as u64);
                }
                Transmit::Literal { handle, len } => {
                    let Some((h, reader)) = self.literal.as_mut() else {
                        return Err(Error::Closed);
                    };
                    if *h != handle {
                        return Err(Error::Closed);
                    }
                    let mut limited = reader.take(len);
                    let n = tokio::io::copy(&mut limited, transport)
                        .await
                        .map_err(|e| Error::Io("streaming APPEND data".into(), e))?;
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
                }
            }
            wrote = true;
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
                        // Bounded by what the caller asked for with a pipelined FETCH.
                        self.fetched.entry(h).or_default().push(fetch);
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
                    self.notes.push_back(Event::Alert { text, encrypted });
                }
                Event::Greeting { kind, text } => {
                    tracing::debug!("greeting {kind:?}: {text}");
                    if kind == GreetingKind::PreAuth {
                        self.notes.push_back(Event::Greeting { kind, text });
                    }
                }
                Event::IdleStarted(_) => {}
                other => self.notes.push_back(other),
            }
        }
        Ok(start_tls)
    }

    /// The TLS handshake after STARTTLS's OK. Nothing was written since; the engine has
    /// already checked that nothing was read after the OK (response injection).
    async fn upgrade_tls(&mut self) -> Result<(), Error> {
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Err(Error::Security(
                "STARTTLS on a connection that is not cleartext".into(),
            ));
        };
        let name = server_name(&self.host)?;
        let tls = tokio::time::timeout(
            self.connect_timeout,
            Transport::tls_handshake(tcp, self.tls.clone(), name),
        )
        .await
        .map_err(|_| Error::Timeout("TLS handshake after STARTTLS".into()))?
        .map_err(|e| Error::Tls(e.to_string()))?;
        self.transport = Some(tls);
        self.engine.tls_established(Instant::now());
        Ok(())
    }

    async fn step(&mut self, sink: &mut Option<&mut dyn FetchSink>) -> Result<(), Error> {
        if self.dispatch(sink)? {
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
