//! [`NetRemote`]: the [`Remote`] interface over `mailfold-net`'s [`Session`], the one network
//! stack of mailfold.
//!
//! Everything about the connection — TCP, implicit TLS and STARTTLS (with its injection
//! checks), certificate trust, the SASL mechanism choice and fallback policy, refused login
//! referrals, the IMAP4rev1 requirement, keepalive and command timeouts — is the session's;
//! this module only translates sync steps into typed session calls. So the sync gets every
//! hardening `mailfold-net` has, and its tests prove them once.
//!
//! # Why blocking over a private runtime
//!
//! The applier is sequential by design (one operation, its effect, its commit: the
//! crash-safety argument in [`crate::apply`] is about that order), and it holds the SQLite
//! state database by `&mut` across every step. Making it async would not make one account's
//! run any faster — the server answers one selected mailbox per connection — and would put
//! awaits between effects and commits. So each `NetRemote` owns a current-thread tokio
//! runtime and runs each call with `block_on`; parallelism across folders comes from several
//! remotes (several connections), each on its own thread.
//!
//! # Streamed bodies
//!
//! Bodies above the engine's inline cap arrive as chunks that carry the message's sequence
//! number only. The UID is looked up in the engine's sequence map *before* the fetch (a cheap
//! `UID FETCH set (UID)` fills it when needed), the chunks are passed on at once (never
//! buffered), and the body is confirmed ([`BodyEvent::End`]) only when the FETCH response
//! that closes it names the same UID; otherwise it is dropped ([`BodyEvent::Abort`]). A
//! sequence number shifted by an expunge mid-fetch can therefore never file one message's
//! bytes under another's UID.
//!
//! A server may send a UID's body more than once in one FETCH (RFC 3501 7.4.2 allows
//! unsolicited repeats of data; a broken or hostile server may repeat the body with other
//! bytes). Only the first complete copy is passed on, so the applier never stores two files
//! for one UID; the repeats are reported as warnings ([`Remote::take_warnings`]).
//!
//! # INTERNALDATE that cannot be read
//!
//! A FETCH response whose INTERNALDATE does not parse is dropped whole by the parser (one
//! malformed response poisons only itself), taking the message's RFC822.SIZE and Message-ID
//! with it, and without them the planner cannot match the message by content and refuses the
//! folder. So [`Remote::fetch_details`] asks once more, for just those UIDs, without
//! INTERNALDATE and with the Date header (RFC 5322 3.6.1), and dates each message by that
//! header, or by the time of the run when it has none, with a warning.

use std::collections::HashMap;
use std::io::Read;

use mailfold_net::{ConnectConfig, FetchSink, Security, SelectOptions, Session, Stats, TlsOptions};
use mailfold_proto::command::{
    Command, Date, DateTime as CmdDateTime, FetchItem as CmdItem, FetchItems, FetchModifiers, List,
    ListReturn, Qresync, Search, SearchKey, Section as CmdSection, SectionText, StatusItem,
    StoreFlags, StoreMode,
};
use mailfold_proto::core::{Flag as WireFlag, Mailbox};
use mailfold_proto::engine::{BodyPart, CommandData, Completion, Event, MailboxState, Outcome};
use mailfold_proto::response::{BodyValue, Code, Fetch, FetchItem, ListAttribute, SectionSpec};
use mailfold_proto::seqset::UidSet;
use mailfold_sasl::{Credentials, Policy};
use tokio::io::AsyncWriteExt;

use crate::account::{AccountSecret, AccountSpec, SecretError, TlsMode};
use crate::remote::{
    header_date, header_message_id, Appended, BodyEvent, Copied, Flag, FolderChanges, ListEntry,
    MessageDetails, MessageFlags, ModSeq, Moved, PermanentFlags, Remote, RemoteError, RemoteResult,
    Selected, Status, StoreOp, Stored, Uid, UidValidity,
};

/// UIDs per `UID FETCH` for bodies: one command streams them all back to back, so the server
/// waits for us only between commands (our tagged reply read, the next command sent, the
/// server starting it). That pause is paid once per batch, so the batch is large; a refused
/// batch ends the download pass anyway (the rest of its messages wait for the next run, as
/// they would with a smaller batch), and the bodies are streamed to files, never held.
const BODY_BATCH: usize = 250;
/// UIDs per `UID FETCH` for metadata; these commands are pipelined.
const DETAIL_BATCH: usize = 500;
/// Alerts kept between two [`Remote::take_alerts`] calls (a hostile server cannot grow
/// memory by repeating them).
const MAX_ALERTS: usize = 100;
/// Warnings kept between two [`Remote::take_warnings`] calls, for the same reason.
const MAX_WARNINGS: usize = 100;
/// UIDs named in one warning; the rest are counted.
const UIDS_NAMED: usize = 10;

/// The connection settings of an account, for [`Session::connect`]: the account's
/// security mode, port, certificate trust (CA file, `dangerously_accept_invalid_certs`),
/// SASL policy and time limits ([`AccountSpec::limits`]), with its credentials
/// ([`credentials`], which waits for a pending secret).
pub fn connect_config(account: &AccountSpec) -> Result<(ConnectConfig, Credentials), SecretError> {
    Ok((session_config(account), credentials(account)?))
}

/// [`connect_config`] without the credentials: everything needed to connect, secure the
/// connection and choose a mechanism, which a pending secret does not hold up.
///
/// An anonymous account gets the ANONYMOUS-only policy (seed V0029: never a password
/// mechanism, never the LOGIN command).
pub fn session_config(account: &AccountSpec) -> ConnectConfig {
    let mut cfg = ConnectConfig::new(account.host.clone());
    cfg.port = Some(account.port);
    cfg.security = match account.tls {
        TlsMode::Implicit => Security::ImplicitTls,
        TlsMode::StartTls => Security::StartTls,
        TlsMode::None => Security::Plaintext,
    };
    // mailfold-net warns on every connection made with the check off (its `tls` module), so
    // mapping the switch here never makes it silent.
    cfg.tls = TlsOptions {
        ca_file: account.ca_file.clone(),
        dangerously_accept_invalid_certs: account.dangerously_accept_invalid_certs,
    };
    let policy = match &account.secret {
        AccountSecret::Password(_) => Policy::password(),
        AccountSecret::OAuthToken(_) => Policy::oauth_token(),
        AccountSecret::Pending(p) if p.is_token() => Policy::oauth_token(),
        AccountSecret::Pending(_) => Policy::password(),
        AccountSecret::Anonymous { .. } => Policy::anonymous(),
    };
    cfg.auth_policy = Policy {
        order: account.mechanisms.clone(),
        allow_plaintext_password: account.allow_plaintext_password,
        ..policy
    };
    cfg.tunnel = account.tunnel.clone();
    // The account's time limits, for the sync's and the watcher's connections alike.
    account.limits.apply(&mut cfg);
    cfg
}

/// The account's credentials, with where the secret came from for a refused login's
/// message. A pending secret is waited for here (once: its clones share the result). An
/// anonymous account's trace string is the authentication identity, which is what the
/// mechanism sends (RFC 4505 section 2).
pub fn credentials(account: &AccountSpec) -> Result<Credentials, SecretError> {
    let creds = match account.secret.wait()? {
        AccountSecret::Password(s) => {
            Credentials::password(account.user.clone(), s.expose().clone())
        }
        AccountSecret::OAuthToken(s) => {
            Credentials::bearer_token(account.user.clone(), s.expose().clone())
        }
        AccountSecret::Anonymous { trace } => Credentials::anonymous(trace),
        AccountSecret::Pending(_) => {
            return Err(SecretError("the secret did not arrive".into()));
        }
    };
    Ok(match &account.secret_origin {
        Some(o) => creds.with_origin(o.clone()),
        None => creds,
    })
}

/// The namespaces of a NAMESPACE response (RFC 2342) as the sync uses them: prefixes decoded
/// from modified UTF-7, other users' and shared namespaces together as foreign. `None` when
/// the data is not a NAMESPACE response. The CLI decodes its own sessions' answers with this
/// too, so that its commands and the sync agree on where the mirrored folders live (V0022).
pub fn namespace_info(data: &CommandData) -> Option<crate::remote::NamespaceInfo> {
    let CommandData::Namespace(ns) = data else {
        return None;
    };
    // A prefix that does not decode is left out: it cannot be matched against names.
    let decode = |list: &[mailfold_proto::response::NamespaceDesc]| -> Vec<(String, Option<char>)> {
        list.iter()
            .filter_map(|d| {
                let name = Mailbox::from_wire(d.prefix.as_bytes().to_vec())
                    .to_utf8()
                    .ok()?;
                Some((name, d.delimiter))
            })
            .collect()
    };
    Some(crate::remote::NamespaceInfo {
        personal: decode(&ns.personal),
        foreign: decode(&ns.other)
            .into_iter()
            .chain(decode(&ns.shared))
            .collect(),
    })
}

/// The session error as the applier classifies it: a command the server refused (NO/BAD)
/// leaves the session usable; everything else ends the run.
fn remote_err(e: mailfold_net::Error) -> RemoteError {
    match e {
        mailfold_net::Error::Command { status, text } if status == "NO" => RemoteError::No {
            // The session keeps the response code in the text (`[TRYCREATE] …`).
            trycreate: text.starts_with("[TRYCREATE]"),
            text,
        },
        mailfold_net::Error::Command { text, .. } => RemoteError::Bad(text),
        other => RemoteError::Fatal(other.to_string()),
    }
}

/// The server's text with its response code in front, as the user should see it (seed V0019:
/// `[CANNOT] Invalid mailbox name`).
fn with_code(code: Option<&Code>, text: &str) -> String {
    let name = match code {
        Some(Code::TryCreate) => "TRYCREATE".to_owned(),
        Some(Code::Alert) => "ALERT".to_owned(),
        Some(Code::Parse) => "PARSE".to_owned(),
        Some(Code::ReadOnly) => "READ-ONLY".to_owned(),
        Some(Code::Other { name, .. }) => name.to_ascii_uppercase(),
        _ => return text.to_owned(),
    };
    format!("[{name}] {text}")
}

fn outcome_result(c: &Completion) -> RemoteResult<()> {
    match &c.outcome {
        Outcome::Ok { .. } => Ok(()),
        Outcome::No { code, text } => Err(RemoteError::No {
            trycreate: matches!(code, Some(Code::TryCreate)),
            text: with_code(code.as_ref(), text),
        }),
        Outcome::Bad { code, text } => Err(RemoteError::Bad(with_code(code.as_ref(), text))),
        Outcome::Rejected(why) => Err(RemoteError::Bad(format!("not sent: {why}"))),
        Outcome::Aborted => Err(RemoteError::Fatal("connection ended".into())),
    }
}

/// Runs an async expression on the remote's session (`$s`) and its runtime; see
/// [`NetRemote::finish`] for what happens after.
macro_rules! on_session {
    ($me:expr, $s:ident => $body:expr) => {{
        let me: &mut NetRemote = &mut *$me;
        match me.session.as_mut() {
            None => Err(RemoteError::Fatal("the connection is closed".into())),
            Some($s) => {
                let r = me.rt.block_on(async { $body });
                me.finish(r)
            }
        }
    }};
}

/// An authenticated session implementing [`Remote`]. See the module docs.
pub struct NetRemote {
    rt: tokio::runtime::Runtime,
    /// `None` after LOGOUT or a fatal error.
    session: Option<Session>,
    stats: Stats,
    alerts: Vec<String>,
    /// What the transport handled on its own that the user should hear about.
    warnings: Vec<String>,
    condstore: bool,
    /// Capabilities treated as absent ([`NetRemote::hide_capability`]).
    hidden: Vec<String>,
    /// The session's selected mailbox was opened by a SELECT/EXAMINE that succeeded.
    selected_ok: bool,
    /// The answer to a NAMESPACE sent right behind the session's first LIST
    /// ([`NetRemote::list_cmd`]), for [`Remote::namespace`] to take.
    namespace_answer: Option<Completion>,
    /// That NAMESPACE was sent (once a session).
    namespace_sent: bool,
}

impl std::fmt::Debug for NetRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetRemote")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl NetRemote {
    /// Sends every FETCH command before reading the first answer (seed V0026) and returns
    /// each one's completion with the FETCH data it collected, in order.
    fn fetch_pipelined(
        &mut self,
        cmds: Vec<Command>,
    ) -> RemoteResult<Vec<(Completion, Vec<Fetch>)>> {
        on_session!(self, s => {
            let handles: Vec<_> = cmds.into_iter().map(|c| s.submit(c)).collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                let c = s.wait(h).await?;
                out.push((c, s.take_fetched(h)));
            }
            Ok(out)
        })
    }

    /// Connects and authenticates as the account says ([`Session::connect`]: TLS mode, CA
    /// file, mechanism order, plaintext-password rule). A pending secret is waited for
    /// after the greeting and CAPABILITY, just before authentication.
    pub fn connect(account: &AccountSpec) -> RemoteResult<NetRemote> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Fatal(format!("starting the I/O runtime: {e}")))?;
        let cfg = session_config(account);
        let fatal = |e: mailfold_net::Error| RemoteError::Fatal(e.to_string());
        let mut session = rt.block_on(Session::open(&cfg)).map_err(fatal)?;
        // Only authentication needs the secret: a pending one (a password command started
        // with the run) has had the connection's set-up to arrive in.
        let creds = match credentials(account) {
            Ok(c) => c,
            // Nothing was sent yet; the session is dropped unused, without LOGOUT (seed
            // V0011), and the run reports the secret's failure (`crate::secret_first`).
            Err(e) => return Err(RemoteError::Fatal(e.to_string())),
        };
        rt.block_on(session.log_in(&cfg, Some(&creds)))
            .map_err(fatal)?;
        Ok(NetRemote::from_session(rt, session))
    }

    /// Wraps a session opened elsewhere (tests, the watch loop), with the runtime it runs on.
    pub fn from_session(rt: tokio::runtime::Runtime, session: Session) -> NetRemote {
        let condstore = session
            .capabilities()
            .is_some_and(|c| c.has("CONDSTORE") || c.has("QRESYNC"));
        let stats = session.stats().clone();
        let mut me = NetRemote {
            rt,
            session: Some(session),
            stats,
            alerts: Vec::new(),
            warnings: Vec::new(),
            condstore,
            hidden: Vec::new(),
            selected_ok: false,
            namespace_answer: None,
            namespace_sent: false,
        };
        me.drain_notes();
        me
    }

    /// The session's traffic counters (commands by name, bytes each way).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The session, while it is open.
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    /// The end of every call: collect notifications, and forget a session a fatal error
    /// ended.
    fn finish<T>(&mut self, res: Result<T, mailfold_net::Error>) -> RemoteResult<T> {
        self.drain_notes();
        match res {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_fatal() {
                    self.session = None;
                }
                Err(remote_err(e))
            }
        }
    }

    /// Keeps the ALERTs (seed V0063) and drops the other notifications: the sync learns
    /// about changes by asking, and an unread queue must not grow without bound.
    fn drain_notes(&mut self) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        for n in s.take_notifications() {
            if let Event::Alert { text, encrypted } = n {
                if self.alerts.len() < MAX_ALERTS {
                    // One from a cleartext connection is marked: anyone on the path could
                    // have written it.
                    self.alerts.push(if encrypted {
                        text
                    } else {
                        format!("(unencrypted connection) {text}")
                    });
                }
            }
        }
    }

    /// Keeps a warning about the selected mailbox for [`Remote::take_warnings`] (bounded).
    fn warn(&mut self, text: String) {
        if self.warnings.len() < MAX_WARNINGS {
            let mailbox = self
                .session
                .as_ref()
                .and_then(|s| s.mailbox())
                .map(|m| {
                    m.name
                        .to_utf8()
                        .unwrap_or_else(|_| String::from_utf8_lossy(m.name.as_wire()).into_owned())
                })
                .unwrap_or_default();
            self.warnings.push(format!("{mailbox}: {text}"));
        }
    }

    /// Submits one command and waits for it, returning its data or the server's refusal.
    fn simple(&mut self, cmd: Command) -> RemoteResult<CommandData> {
        let c = on_session!(self, s => {
                let h = s.submit(cmd);
                s.wait(h).await
        })?;
        outcome_result(&c)?;
        Ok(c.data)
    }

    fn has(&self, cap: &str) -> bool {
        !self.hidden.iter().any(|h| h.eq_ignore_ascii_case(cap))
            && self
                .session
                .as_ref()
                .and_then(|s| s.capabilities())
                .is_some_and(|c| c.has(cap))
    }

    /// Treats a capability as not offered from now on: for a server whose implementation of
    /// an extension is broken, and for tests of the paths taken without it (e.g. CONDSTORE
    /// without QRESYNC). Hiding CONDSTORE or QRESYNC before the first SELECT keeps the
    /// session from using them.
    pub fn hide_capability(&mut self, name: &str) {
        self.hidden.push(name.to_owned());
        self.condstore = self.has("CONDSTORE") || self.has("QRESYNC");
    }

    /// APPEND streaming `len` bytes from `data`, in a BINARY literal8 when `binary` (seed
    /// V0014).
    fn append_with(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
        binary: bool,
    ) -> RemoteResult<Option<Appended>> {
        let flags = wire_flags(flags);
        let date = internaldate.and_then(date_time_utc);
        let Some(session) = self.session.as_mut() else {
            return Err(RemoteError::Fatal("the connection is closed".into()));
        };
        // The session streams from an owned async reader; the file is pumped into it through
        // a bounded in-memory pipe, so the message is never held whole.
        let (rx, mut tx) = tokio::io::duplex(64 * 1024);
        let res = self.rt.block_on(async {
            let append =
                session.append_stream_with(mailbox, &flags, date, Box::new(rx), len, binary);
            let pump = async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = match data.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        // The session sees a short literal and fails the connection (its
                        // size is on the wire already).
                        Err(_) => break,
                    };
                    if tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = tx.shutdown().await;
            };
            tokio::pin!(append);
            tokio::pin!(pump);
            let mut pumped = false;
            loop {
                tokio::select! {
                    r = &mut append => break r,
                    _ = &mut pump, if !pumped => pumped = true,
                }
            }
        });
        self.drain_notes();
        let code = match res {
            Ok(code) => code,
            Err(e) => {
                if e.is_fatal() {
                    self.session = None;
                }
                return Err(remote_err(e));
            }
        };
        Ok(match code {
            Some(Code::AppendUid { uid_validity, uids }) => {
                uids.first().and_then(Uid::new).map(|uid| Appended {
                    uidvalidity: UidValidity(uid_validity),
                    uid,
                })
            }
            _ => None,
        })
    }

    /// One LIST or LSUB into `out`. With `namespace`, the session's first NAMESPACE goes
    /// right behind it: the sync asks for NAMESPACE after listing the account (its root,
    /// seed V0022), and sent in the same order without waiting it costs no round trip of its
    /// own.
    fn list_cmd(
        &mut self,
        cmd: Command,
        out: &mut HashMap<Mailbox, ListEntry>,
        lsub: bool,
        namespace: bool,
    ) -> RemoteResult<()> {
        let namespace = namespace && !self.namespace_sent && self.has("NAMESPACE");
        self.namespace_sent |= namespace;
        let (list, ns) = on_session!(self, s => {
            let h = s.submit(cmd);
            let n = namespace.then(|| s.submit(Command::Namespace));
            let list = s.wait(h).await?;
            let ns = match n {
                Some(n) => Some(s.wait(n).await?),
                None => None,
            };
            Ok((list, ns))
        })?;
        if ns.is_some() {
            self.namespace_answer = ns;
        }
        outcome_result(&list)?;
        if let CommandData::List {
            mailboxes,
            statuses,
        } = list.data
        {
            // LIST-STATUS (RFC 5819): each STATUS follows its LIST line; keyed by name so an
            // unexpected order or a STATUS for an unlisted name cannot be misattributed.
            let mut by_name: HashMap<Mailbox, Status> = statuses
                .into_iter()
                .map(|st| (st.mailbox.clone(), status_of(&st)))
                .collect();
            for m in mailboxes {
                let key = m.mailbox.clone();
                let entry = ListEntry {
                    wire: key.clone(),
                    delimiter: m.delimiter,
                    noselect: m.has(&ListAttribute::NoSelect),
                    nonexistent: m.has(&ListAttribute::NonExistent),
                    special_use: m
                        .special_use()
                        .and_then(ListAttribute::special_use_name)
                        .map(str::to_owned),
                    subscribed: lsub || m.has(&ListAttribute::Subscribed),
                    status: None,
                };
                // Seed V0043: the most recent response for a name wins for attributes; the
                // subscription mark, known only from LSUB or \Subscribed, is kept.
                let subscribed = out.get(&key).is_some_and(|e| e.subscribed) || entry.subscribed;
                let status = by_name.remove(&key);
                out.insert(
                    key,
                    ListEntry {
                        subscribed,
                        status,
                        ..entry
                    },
                );
            }
        }
        Ok(())
    }

    /// `UID STORE`; `silent` adds `.SILENT`. Returns the MODIFIED UIDs and the new MODSEQs
    /// the server reported.
    fn store_with(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        unchanged_since: Option<ModSeq>,
        silent: bool,
    ) -> RemoteResult<Stored> {
        let flags = wire_flags(flags);
        // Replacing with the empty list clears the flags; adding or removing nothing is nothing.
        if (flags.is_empty() && op != StoreOp::Replace) || uids.is_empty() {
            return Ok(Stored::default());
        }
        let set = uid_set(uids)?;
        let store = StoreFlags {
            mode: match op {
                StoreOp::Add => StoreMode::Add,
                StoreOp::Remove => StoreMode::Remove,
                StoreOp::Replace => StoreMode::Replace,
            },
            silent,
            flags,
        };
        match unchanged_since.filter(|_| self.condstore) {
            Some(n) => {
                let n = n.get();
                let r = on_session!(self, s => s.uid_store_report(&set, store, n).await)?;
                // After UID STORE the MODIFIED set holds UIDs (RFC 7162 3.1.3).
                let modified = r
                    .modified
                    .iter()
                    .take(uids.len())
                    .filter_map(Uid::new)
                    .collect();
                let wanted: std::collections::HashSet<Uid> = uids.iter().copied().collect();
                // A FETCH without UID (some servers omit it after a silent store) is mapped
                // through the engine's sequence map.
                let seqs = self.known_seqs(uids);
                let modseqs = r
                    .fetched
                    .iter()
                    .filter_map(|f| {
                        let uid = match f.uid() {
                            Some(u) => Uid::new(u)?,
                            None => seqs.get(&f.seq).copied()?,
                        };
                        Some((uid, ModSeq::new(f.modseq()?)?))
                    })
                    .filter(|(u, _)| wanted.contains(u))
                    .collect();
                Ok(Stored { modified, modseqs })
            }
            None => {
                on_session!(self, s => s.uid_store(&set, store, None).await)?;
                Ok(Stored::default())
            }
        }
    }

    /// The STATUS items of the unchanged-folder check (seed V0045), for STATUS and for
    /// LIST-STATUS alike.
    fn status_items(&self) -> Vec<StatusItem> {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
        ];
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        items
    }

    /// The details of messages whose INTERNALDATE could not be read: `UID FETCH uids (UID
    /// RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])`, each dated by its Date header
    /// or else the time of the run, with one warning for the batch (module docs). UIDs the
    /// server does not answer for stay absent.
    fn fetch_details_without_internaldate(
        &mut self,
        uids: &[Uid],
    ) -> RemoteResult<Vec<MessageDetails>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut out: Vec<MessageDetails> = Vec::new();
        let (mut by_header, mut by_now) = (Vec::new(), Vec::new());
        let results = self.fetch_pipelined(detail_fetches(uids, false)?)?;
        let wanted: std::collections::HashSet<Uid> = uids.iter().copied().collect();
        for (c, fetched) in results {
            // Refused: these UIDs stay without details, as they were before asking again.
            if outcome_result(&c).is_err() {
                continue;
            }
            for fetch in fetched {
                let Some(uid) = fetch
                    .uid()
                    .and_then(Uid::new)
                    .filter(|u| wanted.contains(u))
                else {
                    continue;
                };
                let mut header: &[u8] = &[];
                for item in &fetch.items {
                    if let FetchItem::BodySection {
                        data: BodyValue::Inline(b),
                        ..
                    } = item
                    {
                        header = b.as_bytes();
                    }
                }
                let date = match header_date(header) {
                    Some(d) => {
                        by_header.push(uid);
                        d
                    }
                    None => {
                        by_now.push(uid);
                        now
                    }
                };
                out.push(MessageDetails {
                    uid,
                    size: fetch.rfc822_size(),
                    internaldate: Some(date),
                    message_id: header_message_id(header),
                });
            }
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        self.warn_undated(by_header, "its Date header");
        self.warn_undated(by_now, "the time of download");
        Ok(out)
    }

    /// One warning for the messages of a batch dated without INTERNALDATE, `how` naming
    /// what dated them (module docs).
    fn warn_undated(&mut self, mut uids: Vec<Uid>, how: &str) {
        if !uids.is_empty() {
            uids.sort_unstable();
            uids.dedup();
            self.warn(format!(
                "{} came without an INTERNALDATE that can be read; dated by {how}",
                uid_list(&uids)
            ));
        }
    }

    /// Sequence number → UID for those of `uids` the engine's map knows.
    fn known_seqs(&self, uids: &[Uid]) -> HashMap<u32, Uid> {
        let mb = self.session.as_ref().and_then(|s| s.mailbox());
        uids.iter()
            .filter_map(|&u| Some((mb?.seq_of(u.get())?, u)))
            .collect()
    }

    /// One `UID FETCH chunk (UID BODY.PEEK[…])`; returns the UIDs whose streamed body could
    /// not be attributed (empty when every body was, or none streamed unknown).
    fn fetch_batch(
        &mut self,
        chunk: &[Uid],
        item: &CmdItem,
        seqs: HashMap<u32, Uid>,
        sink: &mut (dyn FnMut(BodyEvent<'_>) + Send),
    ) -> RemoteResult<Vec<Uid>> {
        let set = uid_set(chunk)?;
        let items = FetchItems::Items(vec![CmdItem::Uid, item.clone()]);
        let mut bodies = Bodies {
            sink,
            seqs,
            wanted: chunk.iter().copied().collect(),
            current: None,
            done: std::collections::HashSet::new(),
            unattributed: false,
            repeated: std::collections::BTreeSet::new(),
        };
        let r = on_session!(self, s => {
            let r = s
                .uid_fetch(&set, items, FetchModifiers::default(), &mut bodies)
                .await;
            bodies.resolve_pending(None);
            r
        });
        if !bodies.repeated.is_empty() {
            let uids: Vec<Uid> = bodies.repeated.iter().copied().collect();
            self.warn(format!(
                "the server sent the body of {} more than once in one FETCH; the first copy \
                 was kept",
                uid_list(&uids)
            ));
        }
        r?;
        Ok(if bodies.unattributed {
            chunk
                .iter()
                .copied()
                .filter(|u| !bodies.done.contains(u))
                .collect()
        } else {
            Vec::new()
        })
    }

    /// Sequence numbers of `uids` in the selected mailbox, from the engine's map; when some
    /// are unknown, one `UID FETCH set (UID)` fills the map first.
    fn seq_map(&mut self, uids: &[Uid]) -> RemoteResult<HashMap<u32, Uid>> {
        let lookup = |me: &NetRemote| -> (HashMap<u32, Uid>, bool) {
            let mut map = HashMap::new();
            let mut complete = true;
            let mb = me.session.as_ref().and_then(|s| s.mailbox());
            for &u in uids {
                match mb.and_then(|m| m.seq_of(u.get())) {
                    Some(seq) => {
                        map.insert(seq, u);
                    }
                    None => complete = false,
                }
            }
            (map, complete)
        };
        let (map, complete) = lookup(self);
        if complete {
            return Ok(map);
        }
        let set = uid_set(uids)?;
        on_session!(self, s => {
                let mut sink = Collect::default();
                s.uid_fetch(
                    &set,
                    FetchItems::Items(vec![CmdItem::Uid]),
                    FetchModifiers::default(),
                    &mut sink,
                )
                .await
        })?;
        Ok(lookup(self).0)
    }
}

/// Collects FETCH responses (small ones: flags, sizes, UIDs).
#[derive(Default)]
struct Collect(Vec<Fetch>);

impl FetchSink for Collect {
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        self.0.push(fetch);
        Ok(())
    }
    fn body_chunk(&mut self, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps only the UID of each FETCH response: four bytes a message, however many there are.
#[derive(Default)]
struct UidsOnly(Vec<Uid>);

impl FetchSink for UidsOnly {
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        self.0.extend(fetch.uid().and_then(Uid::new));
        Ok(())
    }
    fn body_chunk(&mut self, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Passes bodies on to the applier's sink; see the module docs for streamed ones.
struct Bodies<'a> {
    sink: &'a mut (dyn FnMut(BodyEvent<'_>) + Send),
    /// Sequence number → UID, taken before the fetch.
    seqs: HashMap<u32, Uid>,
    wanted: std::collections::HashSet<Uid>,
    /// The streamed body in progress: (sequence number, UID), and whether its bytes are
    /// complete and wait for the closing FETCH response.
    current: Option<(u32, Uid, bool)>,
    /// UIDs whose body was delivered whole.
    done: std::collections::HashSet<Uid>,
    /// A streamed body arrived for a sequence number the map did not know.
    unattributed: bool,
    /// UIDs whose body came again after a complete copy was passed on; the repeats are
    /// dropped.
    repeated: std::collections::BTreeSet<Uid>,
}

impl Bodies<'_> {
    fn resolve_pending(&mut self, fetch: Option<&Fetch>) {
        if let Some((seq, uid, true)) = self.current {
            let confirmed = fetch.is_some_and(|f| f.seq == seq && f.uid() == Some(uid.get()));
            if confirmed {
                self.done.insert(uid);
                (self.sink)(BodyEvent::End { uid });
            } else {
                (self.sink)(BodyEvent::Abort { uid });
            }
            self.current = None;
        }
    }
}

impl FetchSink for Bodies<'_> {
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        if matches!(self.current, Some((_, _, true))) {
            self.resolve_pending(Some(&fetch));
            return Ok(());
        }
        let Some(uid) = fetch
            .uid()
            .and_then(Uid::new)
            .filter(|u| self.wanted.contains(u))
        else {
            return Ok(());
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
                if whole && self.done.contains(&uid) {
                    self.repeated.insert(uid);
                } else if whole {
                    (self.sink)(BodyEvent::Start {
                        uid,
                        len: b.as_bytes().len() as u64,
                    });
                    (self.sink)(BodyEvent::Data {
                        uid,
                        bytes: b.as_bytes(),
                    });
                    self.done.insert(uid);
                    (self.sink)(BodyEvent::End { uid });
                }
            }
        }
        Ok(())
    }

    fn body_start(&mut self, part: &BodyPart) -> std::io::Result<()> {
        // A body whose closing response never came (cannot happen with a well-formed stream)
        // is not kept.
        self.resolve_pending(None);
        match self.seqs.get(&part.seq) {
            // A repeat of a body already passed on: its chunks are dropped (`current` stays
            // empty), and so is its closing response, whose body item is not inline.
            Some(&uid) if self.done.contains(&uid) => {
                self.repeated.insert(uid);
            }
            Some(&uid) => {
                self.current = Some((part.seq, uid, false));
                (self.sink)(BodyEvent::Start { uid, len: part.len });
            }
            None => self.unattributed = true,
        }
        Ok(())
    }

    fn body_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some((_, uid, false)) = self.current {
            (self.sink)(BodyEvent::Data { uid, bytes: data });
        }
        Ok(())
    }

    fn body_end(&mut self) -> std::io::Result<()> {
        if let Some((seq, uid, false)) = self.current {
            self.current = Some((seq, uid, true));
        }
        Ok(())
    }
}

impl Remote for NetRemote {
    fn has_capability(&self, name: &str) -> bool {
        self.has(name)
    }

    fn list_all(&mut self) -> RemoteResult<Vec<ListEntry>> {
        let mut out: HashMap<Mailbox, ListEntry> = HashMap::new();
        let root = Mailbox::from_wire(Vec::new());
        if self.has("LIST-EXTENDED") {
            let mut returns = vec![ListReturn::Subscribed];
            if self.has("SPECIAL-USE") {
                returns.push(ListReturn::SpecialUse);
            }
            if self.has("LIST-STATUS") {
                // Seed V0044: the STATUS of every folder in the same response, instead of a
                // separate round of STATUS commands.
                returns.push(ListReturn::Status(self.status_items()));
            }
            let list = List {
                returns,
                ..List::new(root, b"*".to_vec())
            };
            self.list_cmd(Command::List(list), &mut out, false, true)?;
        } else {
            // LSUB first, LIST second: LIST is then the most recent response, and its
            // attributes are the ones that describe the mailbox (V0043). LSUB only adds the
            // subscription; a name only LSUB reports is a subscription whose folder does not
            // exist (RFC 3501 6.3.9 lets a server keep listing it), not a folder.
            let mut subs = HashMap::new();
            self.list_cmd(
                Command::Lsub {
                    reference: root.clone(),
                    pattern: b"*".to_vec(),
                },
                &mut subs,
                true,
                false,
            )?;
            self.list_cmd(
                Command::List(List::new(root, b"*".to_vec())),
                &mut out,
                false,
                true,
            )?;
            for (key, sub) in subs {
                match out.get_mut(&key) {
                    Some(e) => e.subscribed = true,
                    None => {
                        out.insert(
                            key,
                            ListEntry {
                                nonexistent: true,
                                ..sub
                            },
                        );
                    }
                }
            }
        }
        let mut v: Vec<ListEntry> = out.into_values().collect();
        v.sort_by(|a, b| a.wire.cmp(&b.wire));
        Ok(v)
    }

    fn namespace(&mut self) -> RemoteResult<Option<crate::remote::NamespaceInfo>> {
        if !self.has("NAMESPACE") {
            return Ok(None);
        }
        if let Some(c) = self.namespace_answer.take() {
            outcome_result(&c)?;
            return Ok(namespace_info(&c.data));
        }
        Ok(namespace_info(&self.simple(Command::Namespace)?))
    }

    fn select(&mut self, mailbox: &Mailbox, read_only: bool) -> RemoteResult<Selected> {
        let opts = SelectOptions {
            condstore: self.condstore,
            read_only,
            qresync: None,
        };
        // Already selected in the same mode (gather selected it, the applier asks again):
        // the engine keeps its state current, so a second SELECT would only cost a round
        // trip (and resend its untagged data).
        if let Some(st) = self.session.as_ref().and_then(|s| s.mailbox()) {
            if st.name == *mailbox && st.read_only == read_only && self.selected_ok {
                return Ok(selected_of(st, read_only));
            }
        }
        self.selected_ok = false;
        let st = on_session!(self, s => s.select(mailbox, opts).await)?;
        self.selected_ok = true;
        Ok(selected_of(&st, read_only))
    }

    fn unselect(&mut self) -> RemoteResult<()> {
        let selected = self.session.as_ref().is_some_and(|s| s.mailbox().is_some());
        if self.has("UNSELECT") && selected {
            self.simple(Command::Unselect)?;
        }
        Ok(())
    }

    fn fetch_flags(&mut self) -> RemoteResult<Vec<MessageFlags>> {
        let exists = self
            .session
            .as_ref()
            .and_then(|s| s.mailbox())
            .map_or(0, |m| m.exists);
        if exists == 0 {
            // `1:*` on an empty mailbox is an error on some servers; nothing to fetch anyway.
            return Ok(Vec::new());
        }
        let mut items = vec![CmdItem::Uid, CmdItem::Flags];
        if self.condstore {
            items.push(CmdItem::ModSeq);
        }
        let got = on_session!(self, s => {
                let mut sink = Collect::default();
                s.uid_fetch(
                    &UidSet::all(),
                    FetchItems::Items(items),
                    FetchModifiers::default(),
                    &mut sink,
                )
                .await?;
                Ok(sink.0)
        })?;
        Ok(flags_of(&got))
    }

    fn fetch_uids(&mut self) -> RemoteResult<Vec<Uid>> {
        let exists = self
            .session
            .as_ref()
            .and_then(|s| s.mailbox())
            .map_or(0, |m| m.exists);
        if exists == 0 {
            return Ok(Vec::new());
        }
        let got = on_session!(self, s => {
                let mut sink = UidsOnly::default();
                s.uid_fetch(
                    &UidSet::all(),
                    FetchItems::Items(vec![CmdItem::Uid]),
                    FetchModifiers::default(),
                    &mut sink,
                )
                .await?;
                Ok(sink.0)
        })?;
        let mut uids = got;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    fn fetch_flags_of(&mut self, uids: &[Uid]) -> RemoteResult<Vec<MessageFlags>> {
        let mut items = vec![CmdItem::Uid, CmdItem::Flags];
        if self.condstore {
            items.push(CmdItem::ModSeq);
        }
        let mut cmds = Vec::new();
        // Batches keep each command line short whatever the UIDs' spread (servers cap a
        // line: Dovecot at 64 KiB by default).
        for chunk in uids.chunks(DETAIL_BATCH) {
            cmds.push(Command::UidFetch {
                set: uid_set(chunk)?,
                items: FetchItems::Items(items.clone()),
                modifiers: FetchModifiers::default(),
            });
        }
        // Pipelined (seed V0026), as the details are.
        let results = self.fetch_pipelined(cmds)?;
        let mut out = Vec::new();
        for (c, fetched) in results {
            outcome_result(&c)?;
            out.extend(flags_of(&fetched));
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    fn fetch_details(&mut self, uids: &[Uid]) -> RemoteResult<Vec<MessageDetails>> {
        // Pipelined (seed V0026): every batch is sent before the first answer is read.
        let results = self.fetch_pipelined(detail_fetches(uids, true)?)?;
        let mut out = Vec::new();
        for (c, fetched) in results {
            outcome_result(&c)?;
            for fetch in fetched {
                let Some(uid) = fetch.uid().and_then(Uid::new) else {
                    continue;
                };
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
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        // Without a readable INTERNALDATE (the response dropped as malformed, or the item
        // left out): asked again without it (module docs).
        let dated: std::collections::HashSet<Uid> = out
            .iter()
            .filter(|d| d.internaldate.is_some())
            .map(|d| d.uid)
            .collect();
        let undated: Vec<Uid> = uids
            .iter()
            .copied()
            .filter(|u| !dated.contains(u))
            .collect();
        if !undated.is_empty() {
            let again = self.fetch_details_without_internaldate(&undated)?;
            out.retain(|d| d.internaldate.is_some());
            out.extend(again);
            out.sort_by_key(|m| m.uid);
        }
        Ok(out)
    }

    fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        headers_only: bool,
        sink: &mut (dyn FnMut(BodyEvent<'_>) + Send),
    ) -> RemoteResult<()> {
        let item = if headers_only {
            CmdItem::header_peek()
        } else {
            CmdItem::body_peek() // seed V0054: never sets \Seen
        };
        for chunk in uids.chunks(BODY_BATCH) {
            // The engine's sequence map as it is (complete after a full flag fetch); bodies
            // small enough to arrive inline carry their UID and need none of it.
            let seqs = self.known_seqs(chunk);
            let missed = self.fetch_batch(chunk, &item, seqs, sink)?;
            if !missed.is_empty() {
                // Streamed bodies of unknown sequence numbers were not kept: learn the numbers
                // (one small `UID FETCH set (UID)`) and fetch just those again.
                let seqs = self.seq_map(&missed)?;
                self.fetch_batch(&missed, &item, seqs, sink)?;
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<Appended>> {
        self.append_with(mailbox, flags, internaldate, len, data, false)
    }

    fn append_binary(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<Appended>> {
        self.append_with(mailbox, flags, internaldate, len, data, true)
    }

    fn store(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        unchanged_since: Option<ModSeq>,
    ) -> RemoteResult<Vec<Uid>> {
        self.store_with(uids, op, flags, unchanged_since, true)
            .map(|s| s.modified)
    }

    fn store_tracked(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        unchanged_since: Option<ModSeq>,
    ) -> RemoteResult<Stored> {
        // Not silent when conditional: Dovecot, for one, sends no `FETCH (MODSEQ …)` after a
        // silent conditional STORE, and the caller needs the new MODSEQ (see the trait).
        let silent = unchanged_since.is_none();
        self.store_with(uids, op, flags, unchanged_since, silent)
    }

    fn expunge(&mut self, uids: &[Uid], plain: bool) -> RemoteResult<()> {
        if plain {
            self.simple(Command::Expunge)?;
        } else if !uids.is_empty() {
            self.simple(Command::UidExpunge(uid_set(uids)?))?;
        }
        Ok(())
    }

    fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> RemoteResult<()> {
        self.simple(Command::Rename {
            from: from.clone(),
            to: to.clone(),
        })?;
        Ok(())
    }

    fn create(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.simple(Command::Create(mailbox.clone()))?;
        Ok(())
    }

    fn delete(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.simple(Command::Delete(mailbox.clone()))?;
        Ok(())
    }

    fn delimiter(&mut self) -> RemoteResult<Option<char>> {
        // `LIST "" ""` names no folder and returns the delimiter alone (RFC 3501 6.3.8).
        let mut out = HashMap::new();
        let root = Mailbox::from_wire(Vec::new());
        self.list_cmd(
            Command::List(List::new(root, Vec::new())),
            &mut out,
            false,
            false,
        )?;
        Ok(out.into_values().find_map(|e| e.delimiter))
    }

    fn subscribe(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        self.simple(Command::Subscribe(mailbox.clone()))?;
        Ok(())
    }

    fn status(&mut self, mailbox: &Mailbox) -> RemoteResult<Status> {
        let data = self.simple(Command::Status {
            mailbox: mailbox.clone(),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidValidity,
                StatusItem::UidNext,
            ],
        })?;
        Ok(match data {
            CommandData::Status(Some(s)) => Status {
                messages: s.messages(),
                uidvalidity: s.uid_validity().map(UidValidity),
                uidnext: s.uid_next().and_then(Uid::new),
                ..Status::default()
            },
            _ => Status::default(),
        })
    }

    fn status_all(&mut self, mailboxes: &[Mailbox]) -> RemoteResult<Vec<Option<Status>>> {
        let items = self.status_items();
        let cmds: Vec<Command> = mailboxes
            .iter()
            .map(|m| Command::Status {
                mailbox: m.clone(),
                items: items.clone(),
            })
            .collect();
        // Pipelined: every STATUS is written before the first answer is read, so N folders
        // cost one round trip, not N (seed V0045).
        let done = on_session!(self, s => {
            let handles: Vec<_> = cmds.into_iter().map(|c| s.submit(c)).collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(s.wait(h).await?);
            }
            Ok(out)
        })?;
        Ok(done
            .into_iter()
            .map(|c| match (&c.outcome, c.data) {
                (Outcome::Ok { .. }, CommandData::Status(Some(st))) => Some(status_of(&st)),
                _ => None,
            })
            .collect())
    }

    fn select_changes(
        &mut self,
        mailbox: &Mailbox,
        read_only: bool,
        uidvalidity: UidValidity,
        since: ModSeq,
    ) -> RemoteResult<Option<FolderChanges>> {
        if !self.condstore {
            return Ok(None);
        }
        let qresync = self.has("QRESYNC");
        let opts = SelectOptions {
            condstore: true,
            read_only,
            qresync: qresync.then_some(Qresync {
                uid_validity: uidvalidity.0,
                modseq: since.get(),
                known_uids: None,
                seq_match: None,
            }),
        };
        self.selected_ok = false;
        let sel = on_session!(self, s => s.select_with(mailbox, opts).await)?;
        self.selected_ok = true;
        let selected = selected_of(&sel.state, read_only);
        if selected.uidvalidity != Some(uidvalidity) {
            return Ok(Some(FolderChanges {
                selected,
                changed: Vec::new(),
                vanished: None,
            }));
        }
        let (fetched, vanished) = if qresync {
            // RFC 7162 3.2.5.2: the SELECT itself answered with VANISHED (EARLIER) and a
            // FETCH of every message changed (or added) since `since`.
            let vanished: Vec<(Uid, Uid)> = sel
                .vanished
                .map(|v| {
                    v.ranges()
                        .filter_map(|(a, b)| Some((Uid::new(a.max(1))?, Uid::new(b)?)))
                        .collect()
                })
                .unwrap_or_default();
            (sel.changed, Some(vanished))
        } else if selected.exists == 0 {
            (Vec::new(), None)
        } else {
            let got = on_session!(self, s => {
                let mut sink = Collect::default();
                s.uid_fetch(
                    &UidSet::all(),
                    FetchItems::Items(vec![CmdItem::Uid, CmdItem::Flags, CmdItem::ModSeq]),
                    FetchModifiers {
                        changed_since: Some(since.get()),
                        vanished: false,
                    },
                    &mut sink,
                )
                .await?;
                Ok(sink.0)
            })?;
            (got, None)
        };
        let mut changed = flags_of(&fetched);
        changed.retain(|m| m.modseq.is_none_or(|n| n > since));
        Ok(Some(FolderChanges {
            selected,
            changed,
            vanished,
        }))
    }

    fn search_message_id(&mut self, message_id: &str) -> RemoteResult<Vec<Uid>> {
        let data = self.simple(Command::Search(Search::new(
            true,
            vec![SearchKey::Header(
                b"Message-ID".to_vec(),
                message_id.as_bytes().to_vec(),
            )],
        )))?;
        Ok(match data {
            CommandData::Search(r) => r.ids.into_iter().filter_map(Uid::new).collect(),
            _ => Vec::new(),
        })
    }

    fn move_or_copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Moved> {
        let set = uid_set(uids)?;
        let mailbox = dest.clone();
        // UID MOVE (RFC 6851) where offered: atomic, and with UIDPLUS its untagged COPYUID
        // is routed by the engine to the command's completion, mapping the copy without a
        // download (seed V0057). Otherwise COPY, whose tagged OK carries COPYUID.
        let use_move = self.has("MOVE");
        let cmd = if use_move {
            Command::UidMove { set, mailbox }
        } else {
            Command::UidCopy { set, mailbox }
        };
        let c = on_session!(self, s => {
                let h = s.submit(cmd);
                s.wait(h).await
        })?;
        let pairs = match c.outcome.code() {
            Some(Code::CopyUid(cu)) => uid_pairs(cu.pairs(), uids.len()),
            _ => Vec::new(),
        };
        outcome_result(&c)?;
        Ok(Moved {
            moved: use_move,
            pairs,
        })
    }

    fn copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Option<Copied>> {
        let set = uid_set(uids)?;
        let mailbox = dest.clone();
        let c = on_session!(self, s => {
                let h = s.submit(Command::UidCopy { set, mailbox });
                s.wait(h).await
        })?;
        let copied = match c.outcome.code() {
            Some(Code::CopyUid(cu)) => Some(Copied {
                uidvalidity: UidValidity(cu.uid_validity),
                pairs: uid_pairs(cu.pairs(), uids.len()),
            }),
            _ => None,
        };
        outcome_result(&c)?;
        Ok(copied)
    }

    fn take_alerts(&mut self) -> Vec<String> {
        self.drain_notes();
        std::mem::take(&mut self.alerts)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn logout(&mut self) {
        if let Some(s) = self.session.take() {
            // The session bounds the wait for the tagged OK (seed N2); errors are irrelevant
            // now.
            let _ = self.rt.block_on(s.logout());
        }
    }
}

/// The applier's view of a SELECT/EXAMINE result.
fn selected_of(st: &MailboxState, read_only: bool) -> Selected {
    Selected {
        uidvalidity: st.uid_validity.map(UidValidity),
        uidnext: st.uid_next.and_then(Uid::new),
        exists: st.exists,
        highestmodseq: if st.no_modseq {
            None
        } else {
            st.highest_modseq.and_then(ModSeq::new)
        },
        permanent_flags: st.permanent_flags.as_ref().map(|p| PermanentFlags {
            flags: p.iter().cloned().filter_map(Flag::from_wire).collect(),
            new_keywords: p.contains(&WireFlag::MayCreate),
        }),
        read_only: st.read_only || read_only,
    }
}

/// UID, flags and MODSEQ of FETCH responses, one per UID, ascending.
fn flags_of(fetched: &[Fetch]) -> Vec<MessageFlags> {
    let mut out: Vec<MessageFlags> = fetched
        .iter()
        .filter_map(|f| {
            Some(MessageFlags {
                uid: Uid::new(f.uid()?)?,
                // `\Recent` dropped (seed V0004).
                flags: f
                    .flags()
                    .unwrap_or_default()
                    .iter()
                    .cloned()
                    .filter_map(Flag::from_wire)
                    .collect(),
                modseq: f.modseq().and_then(ModSeq::new),
            })
        })
        .collect();
    out.sort_by_key(|m| m.uid);
    out.dedup_by_key(|m| m.uid);
    out
}

/// `UID FETCH uids (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])` in
/// batches of [`DETAIL_BATCH`]; without `internaldate`, the Date header instead of
/// INTERNALDATE (`HEADER.FIELDS (MESSAGE-ID DATE)`), to date a message whose INTERNALDATE
/// cannot be read.
fn detail_fetches(uids: &[Uid], internaldate: bool) -> RemoteResult<Vec<Command>> {
    let mut items = vec![CmdItem::Uid, CmdItem::Rfc822Size];
    let mut fields = vec![b"MESSAGE-ID".to_vec()];
    if internaldate {
        items.push(CmdItem::InternalDate);
    } else {
        fields.push(b"DATE".to_vec());
    }
    items.push(CmdItem::BodySection {
        peek: true,
        section: CmdSection {
            part: Vec::new(),
            text: Some(SectionText::HeaderFields(fields)),
        },
        partial: None,
    });
    uids.chunks(DETAIL_BATCH)
        .map(|chunk| {
            Ok(Command::UidFetch {
                set: uid_set(chunk)?,
                items: FetchItems::Items(items.clone()),
                modifiers: FetchModifiers::default(),
            })
        })
        .collect()
}

/// `UID 1`, `UID 1, 2, 3`, or the first [`UIDS_NAMED`] and how many more, for warnings.
fn uid_list(uids: &[Uid]) -> String {
    let named: Vec<String> = uids.iter().take(UIDS_NAMED).map(Uid::to_string).collect();
    let mut s = format!("UID {}", named.join(", UID "));
    if uids.len() > UIDS_NAMED {
        s.push_str(&format!(" and {} more", uids.len() - UIDS_NAMED));
    }
    s
}

fn uid_set(uids: &[Uid]) -> RemoteResult<UidSet> {
    UidSet::from_numbers(uids.iter().map(|u| u.get())).map_err(|e| RemoteError::Bad(e.to_string()))
}

/// COPYUID's `(source, dest)` pairs, at most `max` (a server cannot make us keep more pairs
/// than UIDs we sent), pairs naming UID 0 dropped.
fn uid_pairs(pairs: impl Iterator<Item = (u32, u32)>, max: usize) -> Vec<(Uid, Uid)> {
    pairs
        .take(max)
        .filter_map(|(s, d)| Some((Uid::new(s)?, Uid::new(d)?)))
        .collect()
}

/// The wire flags of storable flags; a keyword that is no valid atom (one a Maildir can hold
/// but IMAP cannot carry) is left out.
fn wire_flags(flags: &[Flag]) -> Vec<WireFlag> {
    flags
        .iter()
        .filter_map(|f| WireFlag::parse(&f.to_imap()))
        .filter(WireFlag::is_storable)
        .collect()
}

/// A UTC `date-time` for APPEND from Unix seconds (seed V0006: the file's mtime, which was set
/// from INTERNALDATE when downloaded).
fn date_time_utc(unix: i64) -> Option<CmdDateTime> {
    let d = mailfold_proto::response::DateTime::from_unix_utc(unix)?;
    CmdDateTime::new(
        Date::new(d.year, d.month, d.day).ok()?,
        d.hour,
        d.minute,
        d.second,
        0,
    )
    .ok()
}

/// The counts of a STATUS response (or a LIST-STATUS one).
fn status_of(st: &mailfold_proto::response::MailboxStatus) -> Status {
    Status {
        messages: st.messages(),
        uidvalidity: st.uid_validity().map(UidValidity),
        uidnext: st.uid_next().and_then(Uid::new),
        unseen: st.items.iter().find_map(|i| match i {
            mailfold_proto::response::StatusItem::Unseen(n) => Some(*n),
            _ => None,
        }),
        highestmodseq: st.highest_modseq().and_then(ModSeq::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_streamed_body_is_kept_only_when_its_response_names_the_same_uid() {
        let mut events: Vec<String> = Vec::new();
        let mut sink = |e: BodyEvent<'_>| {
            events.push(match e {
                BodyEvent::Start { uid, .. } => format!("start {uid}"),
                BodyEvent::Data { uid, bytes } => format!("data {uid} {}", bytes.len()),
                BodyEvent::End { uid } => format!("end {uid}"),
                BodyEvent::Abort { uid } => format!("abort {uid}"),
            })
        };
        let mut b = Bodies {
            sink: &mut sink,
            seqs: [(3, 30), (4, 40)]
                .into_iter()
                .filter_map(|(s, u)| Some((s, Uid::new(u)?)))
                .collect(),
            wanted: [30, 40].into_iter().filter_map(Uid::new).collect(),
            current: None,
            done: Default::default(),
            unattributed: false,
            repeated: Default::default(),
        };
        let part = |seq| BodyPart {
            seq,
            item: mailfold_proto::parse::StreamedItem::Rfc822,
            len: 5,
        };
        let fetch = |seq, uid| Fetch {
            seq,
            items: vec![FetchItem::Uid(uid)],
        };
        b.body_start(&part(3)).unwrap();
        b.body_chunk(b"hello").unwrap();
        b.body_end().unwrap();
        b.fetch(fetch(3, 30)).unwrap();
        // Sequence 4 turned out to be another message (an expunge shifted the numbers).
        b.body_start(&part(4)).unwrap();
        b.body_chunk(b"world").unwrap();
        b.body_end().unwrap();
        b.fetch(fetch(4, 41)).unwrap();
        assert_eq!(
            events,
            [
                "start 30",
                "data 30 5",
                "end 30",
                "start 40",
                "data 40 5",
                "abort 40"
            ]
        );
    }
}
