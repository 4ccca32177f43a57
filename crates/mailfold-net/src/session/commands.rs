//! Typed commands: each sends one command (or, for [`Session::status_many`], a pipelined
//! batch) through the drive loop and returns typed data, or the server's refusal as
//! [`Error::Command`]. Large FETCH results stream to a [`FetchSink`].

use tokio::io::AsyncRead;

use mailfold_proto::command::{
    Append, AppendData, Command, DateTime, FetchItems, FetchModifiers, List, Qresync, Search,
    SelectParams, StatusItem, StoreFlags,
};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::engine::{
    Capabilities, CommandData, CommandHandle, Completion, MailboxState, Outcome, SearchResult,
};
use mailfold_proto::response::{Code, Fetch, MailboxList, MailboxStatus};
use mailfold_proto::seqset::UidSet;

use crate::error::Error;

use super::driver::{FetchSink, Session};
use super::outcome::outcome_error;

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

impl Session {
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

    /// Runs `cmd` and returns the tagged OK's response code: what UIDPLUS (RFC 4315) puts
    /// there for COPY, MOVE and APPEND (COPYUID, APPENDUID).
    async fn run_for_code(&mut self, cmd: Command) -> Result<Option<Code>, Error> {
        let c = self.run(cmd).await?;
        Ok(c.outcome.code().cloned())
    }

    /// UID COPY; the tagged OK's code carries COPYUID when the server has UIDPLUS.
    pub async fn uid_copy(&mut self, set: &UidSet, to: &Mailbox) -> Result<Option<Code>, Error> {
        self.run_for_code(Command::UidCopy {
            set: set.clone(),
            mailbox: to.clone(),
        })
        .await
    }

    /// UID MOVE (RFC 6851).
    pub async fn uid_move(&mut self, set: &UidSet, to: &Mailbox) -> Result<Option<Code>, Error> {
        self.run_for_code(Command::UidMove {
            set: set.clone(),
            mailbox: to.clone(),
        })
        .await
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
        self.run_for_code(Command::Append(Append {
            mailbox: mailbox.clone(),
            flags: flags.to_vec(),
            internal_date: date,
            message: AppendData::Inline(message),
        }))
        .await
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
}

// ----- watching many mailboxes: NOTIFY (RFC 5465) and cheap status polls -----
//
// Plain commands with typed results like those above, for a watcher that follows every
// folder of an account from one connection.

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
