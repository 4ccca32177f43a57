//! [`ImapRemote`]: the [`Remote`] interface over the sans-IO engine of `mailfold-proto`, driven
//! on a blocking socket (plain TCP, or rustls over TCP for implicit TLS and STARTTLS).
//!
//! The driver is thin: it follows the engine's driving contract (write what
//! [`Client::poll_transmit`] returns, feed what the socket returns, wake at
//! [`Client::poll_timeout`]) and makes no protocol decision of its own: tags, pipelining
//! (RFC 3501 5.5), literals, SASL exchanges and session state are the engine's. Calls that cover
//! many messages submit all their commands at once, so they are pipelined (seed V0026), and
//! stream bodies to the caller's sink without holding a whole message (a FETCH literal above the
//! engine's inline cap arrives in chunks).
//!
//! TLS: rustls with the ring provider and its safe defaults (TLS 1.2 and 1.3 only, no RC4 or
//! other legacy suite: seed N7), chain and host name verified against the system roots (the
//! webpki roots when the system has none) plus the account's CA file. STARTTLS failing or
//! missing abandons the connection; nothing is sent in clear except the STARTTLS command.
//! When `mailfold-net` exposes its async session, an implementation of [`Remote`] over it can
//! replace this one without touching the sync code.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfold_proto::command::{
    Append, AppendData, Command, Date, DateTime as CmdDateTime, FetchItem as CmdItem, FetchItems,
    FetchModifiers, List, ListReturn, Search, SearchKey, Section as CmdSection, SectionText,
    SelectParams, StatusItem, StoreFlags, StoreMode,
};
use mailfold_proto::core::{Flag as WireFlag, Mailbox};
use mailfold_proto::engine::{
    Capabilities, Client, CommandData, CommandHandle, Completion, Config, Event, Outcome, Transmit,
};
use mailfold_proto::response::{BodyValue, Code, FetchItem, ListAttribute, SectionSpec};
use mailfold_proto::seqset::UidSet;
use mailfold_sasl::{
    choose_mechanisms, login_command_allowed, new_mechanism, next_after_failure, ClientContext,
    Credentials, FailureKind, NextAttempt, OsNonceSource, Policy, Secret, SecretKind,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::account::{AccountSecret, AccountSpec, TlsMode};
use crate::remote::{
    BodyEvent, ListEntry, MessageDetails, MessageFlags, Remote, RemoteError, RemoteResult,
    Selected, Status, StoreOp,
};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// UIDs per `UID FETCH` for bodies: small enough that a failure costs little, large enough that
/// the server streams without waiting for us.
const BODY_BATCH: usize = 25;
/// UIDs per `UID FETCH` for metadata.
const DETAIL_BATCH: usize = 500;

/// The transport under the engine.
enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Closed,
}

impl Transport {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Tls(s) => Some(&s.sock),
            Transport::Closed => None,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::Closed => Ok(0),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::Closed => Ok(()),
        }
    }
}

/// An authenticated IMAP session implementing [`Remote`].
pub struct ImapRemote {
    client: Client,
    io: Transport,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    caps: Capabilities,
    alerts: Vec<String>,
    exists: u32,
    condstore: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for ImapRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapRemote")
            .field("state", &self.client.state())
            .finish_non_exhaustive()
    }
}

/// Events routed to the caller of [`ImapRemote::run`].
type Sink<'a> = &'a mut dyn FnMut(&Client, Event);

impl ImapRemote {
    /// Connects, secures the connection as the account says, reads the greeting and
    /// authenticates (strongest advertised mechanism first; never a password in clear unless
    /// allowed: seeds V0031, V0032, V0034).
    pub fn connect(account: &AccountSpec) -> RemoteResult<ImapRemote> {
        let tls = match account.tls {
            TlsMode::None => None,
            _ => Some((
                tls_config(account.ca_file.as_deref()).map_err(RemoteError::Fatal)?,
                ServerName::try_from(
                    account
                        .host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                )
                .map_err(|e| RemoteError::Fatal(format!("bad host name {}: {e}", account.host)))?,
            )),
        };
        let tcp = connect_tcp(&account.host, account.port)?;
        let mut io = Transport::Plain(tcp);
        let encrypted = account.tls == TlsMode::Implicit;
        if encrypted {
            if let (Transport::Plain(tcp), Some((cfg, name))) =
                (std::mem::replace(&mut io, Transport::Closed), &tls)
            {
                io = Transport::Tls(Box::new(handshake(tcp, cfg.clone(), name.clone())?));
            }
        }
        let config = Config {
            tag_seed: random_seed(),
            ..Config::default()
        };
        let client = Client::new(config, encrypted, Instant::now());
        let mut me = ImapRemote {
            client,
            io,
            tls,
            caps: Capabilities::default(),
            alerts: Vec::new(),
            exists: 0,
            condstore: false,
            buf: vec![0; 64 * 1024],
        };
        let preauth = std::cell::Cell::new(false);
        let greeted = std::cell::Cell::new(false);
        me.run(
            &[],
            &mut |_, ev| {
                if let Event::Greeting { kind, .. } = ev {
                    greeted.set(true);
                    preauth.set(kind == mailfold_proto::response::GreetingKind::PreAuth);
                }
            },
            None,
            &mut || greeted.get(),
        )?;
        let preauth = preauth.get();
        if account.tls == TlsMode::StartTls {
            if preauth {
                // RFC 9051 6.2.1 / RFC 8314: a PREAUTH in clear cannot be upgraded.
                return Err(RemoteError::Fatal(
                    "server sent PREAUTH on a connection that requires STARTTLS".into(),
                ));
            }
            me.refresh_capabilities()?;
            if !me.caps.has("STARTTLS") {
                return Err(RemoteError::Fatal("server does not offer STARTTLS".into()));
            }
            let h = me.client.submit(Command::StartTls);
            let c = me.wait(h)?;
            expect_ok(c)?;
            if !me.client.session().encrypted {
                return Err(RemoteError::Fatal("STARTTLS did not complete".into()));
            }
        }
        if !preauth {
            me.refresh_capabilities()?;
            me.authenticate(account)?;
        }
        me.refresh_capabilities()?;
        me.condstore = me.caps.has("CONDSTORE");
        Ok(me)
    }

    fn refresh_capabilities(&mut self) -> RemoteResult<()> {
        if let Some(c) = &self.client.session().capabilities {
            self.caps = c.clone();
            return Ok(());
        }
        let h = self.client.submit(Command::Capability);
        let c = self.wait(h)?;
        let data = c.data.clone();
        expect_ok(c)?;
        if let CommandData::Capability(caps) = data {
            self.caps = caps;
        } else if let Some(c) = &self.client.session().capabilities {
            self.caps = c.clone();
        }
        Ok(())
    }

    fn authenticate(&mut self, account: &AccountSpec) -> RemoteResult<()> {
        let (kind, secret) = match &account.secret {
            AccountSecret::Password(s) => (SecretKind::Password, s),
            AccountSecret::OAuthToken(s) => (SecretKind::OAuthToken, s),
        };
        let policy = Policy {
            secret: kind,
            order: account.mechanisms.clone(),
            allow_plaintext_password: account.allow_plaintext_password,
            ..Policy::default()
        };
        let caps = self.caps.clone();
        let advertised = caps.auth_mechanisms();
        let tls = self.client.session().encrypted;
        let login_disabled = caps.has("LOGINDISABLED");
        let chosen = choose_mechanisms(&advertised, &policy, tls);
        let creds = Credentials {
            authcid: account.user.clone(),
            authzid: None,
            secret: Secret::new(secret.expose().clone()),
        };
        let ctx = ClientContext::imap(account.host.clone(), account.port);
        let mut next = match chosen.first() {
            Some(&m) => NextAttempt::Mechanism(m),
            None if login_command_allowed(&advertised, login_disabled, &policy, tls) => {
                NextAttempt::LoginCommand
            }
            None => {
                return Err(RemoteError::Fatal(if tls {
                    "no usable authentication mechanism".into()
                } else {
                    "refusing to send a password over a connection without TLS \
                     (set allow_plaintext_password to override)"
                        .into()
                }))
            }
        };
        loop {
            match next {
                NextAttempt::Mechanism(m) => {
                    let mech = new_mechanism(m, &creds, &ctx, &mut OsNonceSource)
                        .map_err(|e| RemoteError::Fatal(format!("SASL {}: {e}", m.as_str())))?;
                    let h = self.client.authenticate(mech, caps.has("SASL-IR"));
                    let c = self.wait(h)?;
                    let failure = match (&c.outcome, &c.data) {
                        (Outcome::Ok { .. }, _) => return Ok(()),
                        (
                            _,
                            CommandData::Auth {
                                sasl_error: Some(e),
                            },
                        ) => FailureKind::from_error(e),
                        (o, _) => FailureKind::from_response_code(code_name(o.code()).as_deref()),
                    };
                    let text = outcome_text(&c.outcome);
                    next = next_after_failure(&chosen, m, failure, &policy, login_disabled, tls);
                    if let NextAttempt::GiveUp(reason) = next {
                        return Err(RemoteError::Fatal(format!(
                            "authentication failed ({} {text}; {reason:?})",
                            m.as_str()
                        )));
                    }
                }
                NextAttempt::LoginCommand => {
                    let h = self.client.submit(Command::login(
                        &account.user,
                        Secret::new(secret.expose().clone()),
                    ));
                    let c = self.wait(h)?;
                    return match c.outcome {
                        Outcome::Ok { .. } => Ok(()),
                        o => Err(RemoteError::Fatal(format!(
                            "LOGIN failed: {}",
                            outcome_text(&o)
                        ))),
                    };
                }
                NextAttempt::GiveUp(reason) => {
                    return Err(RemoteError::Fatal(format!(
                        "authentication failed: {reason:?}"
                    )))
                }
            }
        }
    }

    fn wait(&mut self, h: CommandHandle) -> RemoteResult<Completion> {
        let mut done = self.run(&[h], &mut |_, _| {}, None, &mut || true)?;
        done.remove(&h)
            .ok_or_else(|| RemoteError::Fatal("command vanished".into()))
    }

    /// Drives the engine until every handle in `handles` has completed (and `extra_done`
    /// says so), passing every other event for the caller to `sink`. `literal` supplies the
    /// bytes of a streamed APPEND.
    fn run(
        &mut self,
        handles: &[CommandHandle],
        sink: Sink<'_>,
        mut literal: Option<&mut dyn Read>,
        extra_done: &mut dyn FnMut() -> bool,
    ) -> RemoteResult<HashMap<CommandHandle, Completion>> {
        let mut done: HashMap<CommandHandle, Completion> = HashMap::new();
        loop {
            self.flush(&mut literal)?;
            while let Some(ev) = self.client.poll_event() {
                match ev {
                    Event::Completed(c) => {
                        done.insert(c.handle, c);
                    }
                    Event::Alert { text, encrypted } => {
                        // Seed V0063: alerts reach the user; one from a cleartext connection
                        // is marked, since anyone on the path could have written it.
                        self.alerts.push(if encrypted {
                            text
                        } else {
                            format!("(unencrypted connection) {text}")
                        });
                    }
                    Event::StartTls => self.start_tls()?,
                    Event::Closed(err) => {
                        self.io = Transport::Closed;
                        if handles.iter().all(|h| done.contains_key(h)) && extra_done() {
                            return Ok(done);
                        }
                        return Err(RemoteError::Fatal(match err {
                            Some(e) => e.to_string(),
                            None => "session closed".into(),
                        }));
                    }
                    other => sink(&self.client, other),
                }
            }
            if handles.iter().all(|h| done.contains_key(h)) && extra_done() {
                return Ok(done);
            }
            self.read_once()?;
        }
    }

    fn flush(&mut self, literal: &mut Option<&mut dyn Read>) -> RemoteResult<()> {
        let mut wrote = false;
        while let Some(t) = self.client.poll_transmit(Instant::now()) {
            wrote = true;
            match t {
                Transmit::Data(bytes) => self.io.write_all(&bytes).map_err(io_fatal)?,
                Transmit::Literal { len, .. } => {
                    let Some(src) = literal.as_mut() else {
                        return Err(RemoteError::Fatal("literal requested without data".into()));
                    };
                    let copied = io::copy(&mut src.take(len), &mut self.io).map_err(io_fatal)?;
                    if copied != len {
                        // The length was declared on the wire; a short file would desynchronise
                        // the session, so it ends here.
                        return Err(RemoteError::Fatal(format!(
                            "message shrank while being sent ({copied} of {len} bytes)"
                        )));
                    }
                }
            }
        }
        if wrote {
            self.io.flush().map_err(io_fatal)?;
        }
        Ok(())
    }

    fn read_once(&mut self) -> RemoteResult<()> {
        let now = Instant::now();
        let wait = match self.client.poll_timeout() {
            Some(t) if t <= now => {
                self.client.handle_timeout(now);
                return Ok(());
            }
            Some(t) => t - now,
            None => Duration::from_secs(60),
        };
        let Some(tcp) = self.io.tcp() else {
            self.client.handle_eof(now);
            return Ok(());
        };
        tcp.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(io_fatal)?;
        match self.io.read(&mut self.buf) {
            Ok(0) => self.client.handle_eof(Instant::now()),
            Ok(n) => self.client.handle_input(&self.buf[..n], Instant::now()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.client.handle_timeout(Instant::now())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_fatal(e)),
        }
        Ok(())
    }

    fn start_tls(&mut self) -> RemoteResult<()> {
        let Some((cfg, name)) = self.tls.clone() else {
            return Err(RemoteError::Fatal(
                "STARTTLS without a TLS configuration".into(),
            ));
        };
        let Transport::Plain(tcp) = std::mem::replace(&mut self.io, Transport::Closed) else {
            return Err(RemoteError::Fatal(
                "STARTTLS on an encrypted connection".into(),
            ));
        };
        self.io = Transport::Tls(Box::new(handshake(tcp, cfg, name)?));
        self.client.tls_established(Instant::now());
        Ok(())
    }

    /// Runs one command to completion, returning its data or the server's refusal.
    fn simple(&mut self, cmd: Command) -> RemoteResult<CommandData> {
        let h = self.client.submit(cmd);
        let c = self.wait(h)?;
        let data = c.data.clone();
        expect_ok(c)?;
        Ok(data)
    }

    fn list_cmd(
        &mut self,
        cmd: Command,
        out: &mut HashMap<Vec<u8>, ListEntry>,
        lsub: bool,
    ) -> RemoteResult<()> {
        if let CommandData::List { mailboxes, .. } = self.simple(cmd)? {
            for m in mailboxes {
                let key = m.mailbox.as_wire().to_vec();
                let entry = ListEntry {
                    wire: key.clone(),
                    delimiter: m.delimiter,
                    noselect: m.has(&ListAttribute::NoSelect),
                    nonexistent: m.has(&ListAttribute::NonExistent),
                    special_use: m.special_use().map(special_use_text),
                    subscribed: lsub || m.has(&ListAttribute::Subscribed),
                };
                // Seed V0043: the most recent response for a name wins for attributes; the
                // subscription mark, known only from LSUB or \Subscribed, is kept.
                let subscribed = out.get(&key).is_some_and(|e| e.subscribed) || entry.subscribed;
                out.insert(
                    key,
                    ListEntry {
                        subscribed,
                        ..entry
                    },
                );
            }
        }
        Ok(())
    }
}

impl Remote for ImapRemote {
    fn has_capability(&self, name: &str) -> bool {
        self.caps.has(name)
    }

    fn list_all(&mut self) -> RemoteResult<Vec<ListEntry>> {
        let mut out: HashMap<Vec<u8>, ListEntry> = HashMap::new();
        let root = Mailbox::from_wire(Vec::new());
        if self.caps.has("LIST-EXTENDED") {
            let mut returns = vec![ListReturn::Subscribed];
            if self.caps.has("SPECIAL-USE") {
                returns.push(ListReturn::SpecialUse);
            }
            let list = List {
                returns,
                ..List::new(root, b"*".to_vec())
            };
            self.list_cmd(Command::List(list), &mut out, false)?;
        } else {
            // LSUB first, LIST second: LIST is then the most recent response, and its
            // attributes are the ones that describe the mailbox (V0043).
            self.list_cmd(
                Command::Lsub {
                    reference: root.clone(),
                    pattern: b"*".to_vec(),
                },
                &mut out,
                true,
            )?;
            self.list_cmd(
                Command::List(List::new(root, b"*".to_vec())),
                &mut out,
                false,
            )?;
        }
        let mut v: Vec<ListEntry> = out.into_values().collect();
        v.sort_by(|a, b| a.wire.cmp(&b.wire));
        Ok(v)
    }

    fn select(&mut self, mailbox: &[u8], read_only: bool) -> RemoteResult<Selected> {
        let mailbox = Mailbox::from_wire(mailbox.to_vec());
        let params = if self.condstore {
            SelectParams::CondStore
        } else {
            SelectParams::None
        };
        let cmd = if read_only {
            Command::Examine { mailbox, params }
        } else {
            Command::Select { mailbox, params }
        };
        let data = self.simple(cmd)?;
        let CommandData::Select(st) = data else {
            return Err(RemoteError::Bad("SELECT returned no mailbox state".into()));
        };
        self.exists = st.exists;
        Ok(Selected {
            uidvalidity: st.uid_validity.map(|v| v.get()),
            uidnext: st.uid_next,
            exists: st.exists,
            highestmodseq: if st.no_modseq {
                None
            } else {
                st.highest_modseq
            },
            permanent_flags: st
                .permanent_flags
                .as_ref()
                .map(|p| p.iter().map(ToString::to_string).collect()),
            read_only: st.read_only || read_only,
        })
    }

    fn unselect(&mut self) -> RemoteResult<()> {
        if self.caps.has("UNSELECT") && self.client.session().mailbox.is_some() {
            self.simple(Command::Unselect)?;
        }
        Ok(())
    }

    fn fetch_flags(&mut self) -> RemoteResult<Vec<MessageFlags>> {
        let exists = self
            .client
            .session()
            .mailbox
            .as_ref()
            .map_or(self.exists, |m| m.exists);
        if exists == 0 {
            // `1:*` on an empty mailbox is an error on some servers; nothing to fetch anyway.
            return Ok(Vec::new());
        }
        let mut items = vec![CmdItem::Uid, CmdItem::Flags];
        if self.condstore {
            items.push(CmdItem::ModSeq);
        }
        let h = self.client.submit(Command::UidFetch {
            set: UidSet::all(),
            items: FetchItems::Items(items),
            modifiers: FetchModifiers::default(),
        });
        let mut out = Vec::new();
        let mut done = self.run(
            &[h],
            &mut |_, ev| {
                if let Event::Fetch {
                    handle: Some(x),
                    fetch,
                } = ev
                {
                    if x == h {
                        if let Some(uid) = fetch.uid() {
                            out.push(MessageFlags {
                                uid,
                                flags: fetch
                                    .flags()
                                    .unwrap_or_default()
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect(),
                                modseq: fetch.modseq(),
                            });
                        }
                    }
                }
            },
            None,
            &mut || true,
        )?;
        if let Some(c) = done.remove(&h) {
            expect_ok(c)?;
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    fn fetch_details(&mut self, uids: &[u32]) -> RemoteResult<Vec<MessageDetails>> {
        let mut handles = Vec::new();
        for chunk in uids.chunks(DETAIL_BATCH) {
            let set = uid_set(chunk)?;
            handles.push(self.client.submit(Command::UidFetch {
                set,
                items: FetchItems::Items(vec![
                    CmdItem::Uid,
                    CmdItem::Rfc822Size,
                    CmdItem::InternalDate,
                    CmdItem::BodySection {
                        peek: true,
                        section: CmdSection {
                            part: Vec::new(),
                            text: Some(SectionText::HeaderFields(vec![b"MESSAGE-ID".to_vec()])),
                        },
                        partial: None,
                    },
                ]),
                modifiers: FetchModifiers::default(),
            }));
        }
        let mut out = Vec::new();
        let hs = handles.clone();
        let done = self.run(
            &handles,
            &mut |_, ev| {
                if let Event::Fetch {
                    handle: Some(x),
                    fetch,
                } = ev
                {
                    if !hs.contains(&x) {
                        return;
                    }
                    let Some(uid) = fetch.uid() else { return };
                    let mut message_id = None;
                    for item in &fetch.items {
                        if let FetchItem::BodySection {
                            data: BodyValue::Inline(b),
                            ..
                        } = item
                        {
                            message_id = header_message_id(b.as_bytes());
                        }
                    }
                    out.push(MessageDetails {
                        uid,
                        size: fetch.rfc822_size(),
                        internaldate: fetch.internal_date().map(|d| d.unix_timestamp()),
                        message_id,
                    });
                }
            },
            None,
            &mut || true,
        )?;
        for (_, c) in done {
            expect_ok(c)?;
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    fn fetch_bodies(
        &mut self,
        uids: &[u32],
        headers_only: bool,
        sink: &mut dyn FnMut(BodyEvent<'_>),
    ) -> RemoteResult<()> {
        let item = if headers_only {
            CmdItem::header_peek()
        } else {
            CmdItem::body_peek() // seed V0054: never sets \Seen
        };
        let mut handles = Vec::new();
        for chunk in uids.chunks(BODY_BATCH) {
            handles.push(self.client.submit(Command::UidFetch {
                set: uid_set(chunk)?,
                items: FetchItems::Items(vec![CmdItem::Uid, item.clone()]),
                modifiers: FetchModifiers::default(),
            }));
        }
        let hs = handles.clone();
        let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
        // The UID of the body being streamed; `None` while none is, or when the server streams
        // a body we cannot attribute (then its bytes are dropped).
        let mut current: Option<u32> = None;
        let done = self.run(
            &handles,
            &mut |client, ev| match ev {
                Event::BodyStart {
                    handle: Some(x),
                    part,
                } if hs.contains(&x) => {
                    // Streamed literals carry only the sequence number; the engine's map,
                    // filled by our UID FETCH of every message, gives the UID.
                    current = client
                        .session()
                        .mailbox
                        .as_ref()
                        .and_then(|m| m.uid_of(part.seq))
                        .filter(|u| wanted.contains(u));
                    if let Some(uid) = current {
                        sink(BodyEvent::Start { uid, len: part.len });
                    }
                }
                Event::BodyChunk {
                    handle: Some(x),
                    data,
                } if hs.contains(&x) => {
                    if let Some(uid) = current {
                        sink(BodyEvent::Data { uid, bytes: &data });
                    }
                }
                Event::BodyEnd { handle: Some(x) } if hs.contains(&x) => {
                    if let Some(uid) = current.take() {
                        sink(BodyEvent::End { uid });
                    }
                }
                Event::Fetch {
                    handle: Some(x),
                    fetch,
                } if hs.contains(&x) => {
                    let Some(uid) = fetch.uid().filter(|u| wanted.contains(u)) else {
                        return;
                    };
                    for item in &fetch.items {
                        if let FetchItem::BodySection {
                            section,
                            origin: None,
                            data: BodyValue::Inline(b),
                        } = item
                        {
                            let whole = section.part.is_empty()
                                && matches!(section.spec, SectionSpec::Full | SectionSpec::Header);
                            if whole {
                                sink(BodyEvent::Start {
                                    uid,
                                    len: b.as_bytes().len() as u64,
                                });
                                sink(BodyEvent::Data {
                                    uid,
                                    bytes: b.as_bytes(),
                                });
                                sink(BodyEvent::End { uid });
                            }
                        }
                    }
                }
                _ => {}
            },
            None,
            &mut || true,
        )?;
        for (_, c) in done {
            expect_ok(c)?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        mailbox: &[u8],
        flags: &[String],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<(u32, u32)>> {
        let cmd = Command::Append(Append {
            mailbox: Mailbox::from_wire(mailbox.to_vec()),
            flags: wire_flags(flags),
            internal_date: internaldate.and_then(date_time_utc),
            message: AppendData::Streamed { len, binary: false },
        });
        let h = self.client.submit(cmd);
        let mut done = self.run(&[h], &mut |_, _| {}, Some(data), &mut || true)?;
        let c = done
            .remove(&h)
            .ok_or_else(|| RemoteError::Fatal("APPEND vanished".into()))?;
        let uid = match c.outcome.code() {
            Some(Code::AppendUid { uid_validity, uids }) => {
                uids.first().map(|u| (uid_validity.get(), u))
            }
            _ => None,
        };
        expect_ok(c)?;
        Ok(uid)
    }

    fn store(
        &mut self,
        uids: &[u32],
        op: StoreOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> RemoteResult<Vec<u32>> {
        let flags = wire_flags(flags);
        if flags.is_empty() || uids.is_empty() {
            return Ok(Vec::new());
        }
        let h = self.client.submit(Command::UidStore {
            set: uid_set(uids)?,
            store: StoreFlags {
                mode: match op {
                    StoreOp::Add => StoreMode::Add,
                    StoreOp::Remove => StoreMode::Remove,
                },
                silent: true,
                flags,
            },
            unchanged_since: unchanged_since.filter(|_| self.condstore),
        });
        let c = self.wait(h)?;
        let modified = match c.outcome.code() {
            // After UID STORE the MODIFIED set holds UIDs (RFC 7162 3.1.3).
            Some(Code::Modified(set)) => set.iter().take(uids.len()).collect(),
            _ => Vec::new(),
        };
        expect_ok(c)?;
        Ok(modified)
    }

    fn expunge(&mut self, uids: &[u32], plain: bool) -> RemoteResult<()> {
        if plain {
            self.simple(Command::Expunge)?;
        } else if !uids.is_empty() {
            self.simple(Command::UidExpunge(uid_set(uids)?))?;
        }
        Ok(())
    }

    fn create(&mut self, mailbox: &[u8]) -> RemoteResult<()> {
        self.simple(Command::Create(Mailbox::from_wire(mailbox.to_vec())))?;
        Ok(())
    }

    fn delete(&mut self, mailbox: &[u8]) -> RemoteResult<()> {
        self.simple(Command::Delete(Mailbox::from_wire(mailbox.to_vec())))?;
        Ok(())
    }

    fn status(&mut self, mailbox: &[u8]) -> RemoteResult<Status> {
        let data = self.simple(Command::Status {
            mailbox: Mailbox::from_wire(mailbox.to_vec()),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidValidity,
                StatusItem::UidNext,
            ],
        })?;
        Ok(match data {
            CommandData::Status(Some(s)) => Status {
                messages: s.messages(),
                uidvalidity: s.uid_validity().map(|v| v.get()),
                uidnext: s.uid_next(),
            },
            _ => Status::default(),
        })
    }

    fn search_message_id(&mut self, message_id: &str) -> RemoteResult<Vec<u32>> {
        let data = self.simple(Command::Search(Search::new(
            true,
            vec![SearchKey::Header(
                b"Message-ID".to_vec(),
                message_id.as_bytes().to_vec(),
            )],
        )))?;
        Ok(match data {
            CommandData::Search(r) => r.ids,
            _ => Vec::new(),
        })
    }

    fn move_or_copy(&mut self, uids: &[u32], dest: &[u8]) -> RemoteResult<(bool, Vec<(u32, u32)>)> {
        let set = uid_set(uids)?;
        let mailbox = Mailbox::from_wire(dest.to_vec());
        // With UIDPLUS, COPY's tagged OK carries COPYUID, which maps the copy without a
        // download (seed V0057); MOVE sends it in an untagged OK the engine does not route to
        // the command, so MOVE is used only where no mapping would come anyway.
        let use_move = self.caps.has("MOVE") && !self.caps.has("UIDPLUS");
        let cmd = if use_move {
            Command::UidMove { set, mailbox }
        } else {
            Command::UidCopy { set, mailbox }
        };
        let h = self.client.submit(cmd);
        let c = self.wait(h)?;
        let pairs = match c.outcome.code() {
            Some(Code::CopyUid(cu)) => cu.pairs().take(uids.len()).collect(),
            _ => Vec::new(),
        };
        expect_ok(c)?;
        Ok((use_move, pairs))
    }

    fn take_alerts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.alerts)
    }

    fn logout(&mut self) {
        if matches!(self.io, Transport::Closed) {
            return;
        }
        let h = self.client.submit(Command::Logout);
        // The engine bounds the wait for the tagged OK (seed N2); errors are irrelevant now.
        let _ = self.run(&[h], &mut |_, _| {}, None, &mut || true);
        if let Transport::Tls(s) = &mut self.io {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.io = Transport::Closed;
    }
}

fn connect_tcp(host: &str, port: u16) -> RemoteResult<TcpStream> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| RemoteError::Fatal(format!("resolving {host}: {e}")))?
        .collect();
    let mut last = format!("{host} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("connecting to {a}: {e}"),
        }
    }
    Err(RemoteError::Fatal(last))
}

fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(p) = ca_file {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(p)
            .map_err(|e| format!("reading CA file {}: {e}", p.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("CA file {}: {e}", p.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("CA file {}: {e}", p.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn handshake(
    mut tcp: TcpStream,
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> RemoteResult<StreamOwned<ClientConnection, TcpStream>> {
    let mut conn =
        ClientConnection::new(cfg, name).map_err(|e| RemoteError::Fatal(format!("TLS: {e}")))?;
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(io_fatal)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| RemoteError::Fatal(format!("TLS handshake: {e}")))?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

fn io_fatal(e: io::Error) -> RemoteError {
    RemoteError::Fatal(e.to_string())
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; enough to make tags unpredictable
    // across runs (seed C0001 needs uniqueness in flight, which the engine guarantees).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

fn code_name(code: Option<&Code>) -> Option<String> {
    match code? {
        Code::Other { name, .. } => Some(name.clone()),
        Code::Alert => Some("ALERT".into()),
        _ => None,
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok { text, .. } => text.clone(),
        Outcome::No { code, text } | Outcome::Bad { code, text } => {
            match code_name(code.as_ref()) {
                Some(c) => format!("[{c}] {text}"),
                None => text.clone(),
            }
        }
        Outcome::Rejected(t) => format!("not sent: {t}"),
        Outcome::Aborted => "connection ended".into(),
    }
}

fn expect_ok(c: Completion) -> RemoteResult<()> {
    match &c.outcome {
        Outcome::Ok { .. } => Ok(()),
        Outcome::No { code, .. } => Err(RemoteError::No {
            trycreate: matches!(code, Some(Code::TryCreate)),
            text: outcome_text(&c.outcome),
        }),
        Outcome::Bad { .. } | Outcome::Rejected(_) => {
            Err(RemoteError::Bad(outcome_text(&c.outcome)))
        }
        Outcome::Aborted => Err(RemoteError::Fatal("connection ended".into())),
    }
}

fn uid_set(uids: &[u32]) -> RemoteResult<UidSet> {
    UidSet::from_numbers(uids.iter().copied()).map_err(|e| RemoteError::Bad(e.to_string()))
}

fn wire_flags(flags: &[String]) -> Vec<WireFlag> {
    flags
        .iter()
        .filter_map(|f| WireFlag::parse(f))
        .filter(WireFlag::is_storable)
        .collect()
}

fn special_use_text(a: &ListAttribute) -> String {
    match a {
        ListAttribute::All => "\\All",
        ListAttribute::Archive => "\\Archive",
        ListAttribute::Drafts => "\\Drafts",
        ListAttribute::Flagged => "\\Flagged",
        ListAttribute::Junk => "\\Junk",
        ListAttribute::Sent => "\\Sent",
        ListAttribute::Trash => "\\Trash",
        _ => "",
    }
    .to_owned()
}

/// The Message-ID from a `HEADER.FIELDS (MESSAGE-ID)` result or any header block: the first
/// `Message-ID:` field, unfolded and trimmed.
pub fn header_message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break; // end of the header
        }
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((name, rest)) = line.split_once(':') {
            if name.trim_end().eq_ignore_ascii_case("Message-ID") {
                value = Some(rest.trim().to_owned());
            }
        }
    }
    value.filter(|v| !v.is_empty() && v.len() <= 998)
}

/// A UTC `date-time` for APPEND from Unix seconds (seed V0006: the file's mtime, which was set
/// from INTERNALDATE when downloaded).
fn date_time_utc(unix: i64) -> Option<CmdDateTime> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since the epoch (H. Hinnant's algorithm, inverse of the one in
    // the response parser).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = Date::new(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    CmdDateTime::new(
        date,
        u8::try_from(secs / 3600).ok()?,
        u8::try_from(secs % 3600 / 60).ok()?,
        u8::try_from(secs % 60).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_unfolded_and_trimmed() {
        let h = b"Message-ID:\r\n <abc@example.org>\r\n\r\n";
        assert_eq!(header_message_id(h).as_deref(), Some("<abc@example.org>"));
        let h = b"Subject: x\r\nmessage-id: <q@x>  \r\n";
        assert_eq!(header_message_id(h).as_deref(), Some("<q@x>"));
        assert_eq!(header_message_id(b"\r\n"), None);
        assert_eq!(
            header_message_id(b"Subject: no id\n\nMessage-ID: <body@x>\n"),
            None
        );
    }

    #[test]
    fn append_dates_round_trip_through_the_parser_arithmetic() {
        for unix in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799] {
            let d = date_time_utc(unix).unwrap();
            let shown = d.to_string();
            // " 1-Feb-2024 09:05:00 +0000": parse back with the response type.
            let parts: Vec<&str> = shown.split_whitespace().collect();
            let dmy: Vec<&str> = parts[0].split('-').collect();
            let hms: Vec<u8> = parts[1].split(':').map(|x| x.parse().unwrap()).collect();
            let back = mailfold_proto::response::DateTime {
                year: dmy[2].parse().unwrap(),
                month: mailfold_proto::response::DateTime::month_from_name(dmy[1].as_bytes())
                    .unwrap(),
                day: dmy[0].parse().unwrap(),
                hour: hms[0],
                minute: hms[1],
                second: hms[2],
                offset_minutes: 0,
            };
            assert_eq!(back.unix_timestamp(), unix, "{shown}");
        }
    }
}
