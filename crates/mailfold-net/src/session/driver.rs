//! The [`Session`] and its drive loop: the only place that reads and writes the transport.
//!
//! Every public call ends in [`Session::wait`] or one of the loops of `watch`, which take
//! turns at the same steps: write what the engine has to send (`flush`), sort the engine's
//! events (`dispatch`: completions, FETCH data to a sink, notifications), then read once or
//! let the engine's timer fire (`read_once`). The TLS upgrade after STARTTLS's OK happens
//! between two such steps, before anything else is written.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfold_proto::command::Command;
use mailfold_proto::engine::{
    BodyPart, Capabilities, Client, CommandHandle, Completion, EngineError, Event, MailboxState,
    Outcome, Transmit,
};
use mailfold_proto::response::{Fetch, GreetingKind};
use mailfold_sasl::{NonceSource, OsNonceSource};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::stats::Stats;
use crate::stream::Transport;
use crate::tls::{handshake_error, server_name, TlsInfo, TrustRecord};

use super::config::ConnectConfig;
use super::outcome::{map_engine_error, outcome_error};
use super::report::AuthInfo;

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
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
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

/// An open IMAP session.
pub struct Session {
    pub(super) engine: Client,
    pub(super) transport: Option<Transport>,
    pub(super) host: String,
    pub(super) port: u16,
    /// `None` for a [`Security::Plaintext`] session, which never starts TLS.
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) connect_timeout: Duration,
    /// The engine's floor rate, which also bounds the upload of a streamed APPEND literal.
    min_rate: u32,
    read_buf: Vec<u8>,
    pub(super) done: HashMap<CommandHandle, Completion>,
    /// FETCH responses for submitted commands nobody streams (pipelined use).
    pub(super) fetched: HashMap<CommandHandle, Vec<Fetch>>,
    pub(super) notes: VecDeque<Notification>,
    /// Notifications dropped since the last take, past [`MAX_NOTES`].
    notes_dropped: u64,
    /// Where body chunks of the command currently being waited on go.
    sink_for: Option<CommandHandle>,
    /// The reader of a streamed APPEND in progress.
    pub(super) literal: Option<(CommandHandle, Box<dyn AsyncRead + Unpin + Send>)>,
    /// Bytes taken from the engine and not yet written: a write cancelled halfway (the
    /// caller dropped a future in `select!`) resumes here instead of losing bytes.
    wbuf: Vec<u8>,
    wpos: usize,
    pub(super) closed: Option<EngineError>,
    pub(super) stats: Stats,
    pub(super) trust: TrustRecord,
    pub(super) tls_info: Option<TlsInfo>,
    pub(super) auth_info: AuthInfo,
    pub(super) greeting: Option<String>,
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
pub(super) fn no_tls() -> Error {
    Error::Config("TLS asked of a session configured for plaintext".into())
}

impl Session {
    /// A session over `transport`, freshly opened as `cfg` says: nothing read or written yet.
    /// `implicit` tells the engine the transport is already encrypted.
    pub(super) fn new(
        cfg: &ConnectConfig,
        transport: Transport,
        implicit: bool,
        tls: Option<Arc<rustls::ClientConfig>>,
        trust: TrustRecord,
    ) -> Session {
        let mut ecfg = cfg.engine.clone();
        ecfg.tag_seed = random_seed();
        let mut s = Session {
            engine: Client::new(ecfg, implicit, now()),
            transport: Some(transport),
            host: cfg.host.clone(),
            port: cfg.port(),
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
        s
    }

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

    pub(super) fn caps(&self) -> Capabilities {
        self.engine
            .session()
            .capabilities
            .clone()
            .unwrap_or_default()
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

    pub(super) async fn run(&mut self, cmd: Command) -> Result<Completion, Error> {
        let h = self.submit(cmd);
        let c = self.wait(h).await?;
        match outcome_error(&c.outcome) {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }

    pub(super) async fn wait_with_sink(
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
    pub(super) async fn drive_until(
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

    pub(super) fn engine_deadline(&self) -> Option<tokio::time::Instant> {
        self.engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
    }

    /// One read (or the engine's timer firing), fed to the engine.
    pub(super) async fn read_once(
        &mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), Error> {
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
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            if self.wpos < self.wbuf.len() {
                self.write_some().await?;
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
                    self.stream_literal(handle, len).await?;
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

    /// One write of the bytes in `wbuf` not yet written, within the connect timeout.
    async fn write_some(&mut self) -> Result<(), Error> {
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
        Ok(())
    }

    /// Copies the `len` bytes of a streamed APPEND literal from its reader to the server.
    /// A failure halfway leaves the connection unusable: the literal's size is on the wire.
    async fn stream_literal(&mut self, handle: CommandHandle, len: u64) -> Result<(), Error> {
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
        // A server that stops reading (its window closed for ever) must not hang the upload:
        // it gets the literal's time at the floor rate, plus the connect timeout for a start.
        let bound = self
            .connect_timeout
            .saturating_add(at_rate(len, self.min_rate));
        let copied = tokio::time::timeout(bound, tokio::io::copy(&mut limited, transport)).await;
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
            // The literal's size is on the wire already: the connection cannot be
            // resynchronised.
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
    pub(super) fn note(&mut self, n: Notification) {
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

    pub(super) async fn step(
        &mut self,
        sink: &mut Option<&mut dyn FetchSink>,
    ) -> Result<(), Error> {
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
    pub(super) async fn abandon(&mut self) {
        if let Some(mut t) = self.transport.take() {
            t.close().await;
        }
    }
}

/// Server text with control characters removed, so that printing it cannot drive a
/// terminal.
fn without_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// A tag seed from the OS (tags need not be secret, only varied; seed C0001).
fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut bytes = [0u8; 8];
    let mut src = OsNonceSource;
    let _ = NonceSource::fill_bytes(&mut src, &mut bytes);
    u64::from_le_bytes(bytes) ^ t
}
