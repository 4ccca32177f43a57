//! Where an untagged response goes (RFC 3501 7): into the session state whenever it arrives
//! (seed V0024), to the command in flight that collects it (LIST, STATUS, SEARCH, FETCH,
//! ENABLE, ID, NAMESPACE, a raw command), or to the driver as an event: a mailbox change, an
//! unsolicited FETCH, a NOTIFY report, BYE.

use crate::response::{
    Code, Esearch, Fetch, MailboxList, MailboxStatus, Response, StatusKind, StatusResponse,
};
use crate::seqset::UidSet;

use super::{
    Capabilities, Client, Collect, CommandHandle, Event, InFlight, Kind, MailboxChange,
    MAX_COLLECTED,
};

impl Client {
    /// Routes one untagged response: to the session state it updates (whenever it arrives,
    /// seed V0024), to the command in flight that collects it, or to the driver as an event.
    pub(super) fn handle_untagged(&mut self, r: Response) {
        match r {
            Response::Status(s) => self.untagged_status(s),
            Response::Capability(caps) => {
                let caps = Capabilities::new(&caps);
                if let Some(c) = self.collector(|k| matches!(k, Kind::Capability)) {
                    c.collect = Collect::Capability(Some(caps.clone()));
                }
                self.session.capabilities = Some(caps);
            }
            Response::List(l) => self.collect_list(l, false),
            Response::Lsub(l) => self.collect_list(l, true),
            Response::MailboxStatus(st) => self.untagged_mailbox_status(st),
            Response::Search(s) => match self.collector(|k| matches!(k, Kind::Search)) {
                Some(InFlight {
                    collect: Collect::Search(res),
                    ..
                }) => {
                    res.ids.extend_from_slice(&s.ids);
                    if s.modseq.is_some() {
                        res.modseq = s.modseq;
                    }
                }
                _ => self.raw_or_untagged(Response::Search(s)),
            },
            Response::Esearch(e) => self.untagged_esearch(e),
            Response::Flags(f) => {
                let change = self.session.apply_flags(&f);
                self.mailbox_changed(change, Response::Flags(f));
            }
            Response::Exists(n) => {
                let change = self.session.apply_exists(n);
                self.mailbox_changed(change, Response::Exists(n));
            }
            Response::Recent(n) => {
                let change = self.session.apply_recent(n);
                self.mailbox_changed(change, Response::Recent(n));
            }
            Response::Expunge(n) => {
                let change = self.session.apply_expunge(n);
                self.mailbox_changed(change, Response::Expunge(n));
            }
            Response::Vanished(v) => {
                let change = self.session.apply_vanished(v.earlier, &v.uids);
                // VANISHED (EARLIER) is only ever an answer: to SELECT/EXAMINE with QRESYNC
                // or to UID FETCH with VANISHED (RFC 7162 3.2.10). It is collected for that
                // command rather than surfaced as a change.
                let claimed = v.earlier && self.claim_vanished(&v.uids);
                let change = if claimed { None } else { change };
                self.mailbox_changed(change, Response::Vanished(v));
            }
            Response::Fetch(f) => self.untagged_fetch(f),
            Response::Enabled(caps) => self.untagged_enabled(caps),
            Response::Id(fields) => match self.collector(|k| matches!(k, Kind::Id)) {
                Some(InFlight {
                    collect: Collect::Id(v),
                    ..
                }) => {
                    for (k, val) in fields {
                        v.push((
                            k.to_str_lossy().into_owned(),
                            val.map(|x| x.to_str_lossy().into_owned()),
                        ));
                    }
                }
                _ => self.raw_or_untagged(Response::Id(fields)),
            },
            Response::Namespace(ns) => match self.collector(|k| matches!(k, Kind::Namespace)) {
                Some(InFlight {
                    collect: Collect::Namespace(slot),
                    ..
                }) => *slot = Some(ns),
                _ => self.raw_or_untagged(Response::Namespace(ns)),
            },
            other => self.raw_or_untagged(other),
        }
    }

    /// A mailbox-size or flags response applied to the session: the change it made, if any,
    /// goes to the driver, and the response to a raw command collecting it.
    fn mailbox_changed(&mut self, change: Option<MailboxChange>, r: Response) {
        if let Some(ch) = change {
            self.mailbox_event(ch);
        }
        self.copy_to_raw(r);
    }

    /// An untagged `OK`/`NO`/`BAD`/`BYE`: a MOVE's COPYUID, a response code for the session,
    /// NOTIFY's overflow warning, or the server leaving.
    fn untagged_status(&mut self, s: StatusResponse) {
        if let (Some(Code::CopyUid(_)), StatusKind::Ok) = (&s.code, s.kind) {
            // RFC 6851 4.3: a server with UIDPLUS answers MOVE with an untagged
            // `OK [COPYUID …]` before its EXPUNGEs. It belongs to the MOVE in flight;
            // with more than one, it cannot be attributed and is left unrouted.
            let mut moves = self
                .in_flight
                .iter_mut()
                .filter(|c| matches!(c.kind, Kind::Move));
            if let (Some(cmd), None) = (moves.next(), moves.next()) {
                cmd.copy_uid = s.code.clone();
                return;
            }
        }
        if let Some(code) = &s.code {
            self.apply_code(code, &s.text);
        }
        // RFC 5465 5.8: the server stopped notifying and changes may have been
        // missed; the driver must hear of it (see `crate::notify::Notice`).
        if s.kind == StatusKind::Ok && s.code.as_ref().is_some_and(crate::notify::is_overflow) {
            self.events.push_back(Event::Untagged(Response::Status(s)));
            return;
        }
        if s.kind == StatusKind::Bye {
            self.bye = Some(s.text.clone());
            self.events.push_back(Event::Bye { text: s.text });
        }
    }

    /// An untagged `STATUS`: the answer of the STATUS command in flight for that mailbox,
    /// else one of a LIST-STATUS (RFC 5819), else unclaimed (a NOTIFY report, say).
    fn untagged_mailbox_status(&mut self, st: MailboxStatus) {
        let name = st.mailbox.clone();
        let target = self
            .in_flight
            .iter_mut()
            .find(|c| matches!(&c.kind, Kind::Status(m) if *m == name));
        if let Some(InFlight {
            collect: Collect::Status(slot),
            ..
        }) = target
        {
            *slot = Some(st);
        } else if let Some(InFlight {
            collect: Collect::List(_, statuses),
            ..
        }) = self.collector(|k| matches!(k, Kind::List))
        {
            statuses.push(st);
        } else {
            self.raw_or_untagged(Response::MailboxStatus(st));
        }
    }

    /// An `ESEARCH` (RFC 4731): for the SEARCH its tag names, or the one in flight.
    fn untagged_esearch(&mut self, e: Esearch) {
        let tag = e.tag.clone();
        let target = self
            .in_flight
            .iter_mut()
            .find(|c| matches!(c.kind, Kind::Search) && !matches!(&tag, Some(t) if *t != c.tag));
        match target {
            Some(InFlight {
                collect: Collect::Search(res),
                ..
            }) => res.esearch = Some(e),
            _ => self.raw_or_untagged(Response::Esearch(e)),
        }
    }

    /// A `FETCH`: applied to the session, counted for the command it answers, and handed on
    /// with that command's handle (`None`: unsolicited, another client's change).
    fn untagged_fetch(&mut self, f: Fetch) {
        self.session.apply_fetch(&f);
        let owner = self.fetch_owner(&f);
        if let Some(h) = owner {
            if let Some(c) = self.in_flight.iter_mut().find(|c| c.handle == h) {
                if let Collect::Fetch(n) | Collect::Select(n) = &mut c.collect {
                    *n += 1;
                }
            }
        }
        if self.raw_collector().is_some() {
            self.copy_to_raw(Response::Fetch(f));
        } else {
            self.events.push_back(Event::Fetch {
                handle: owner,
                fetch: f,
            });
        }
    }

    /// `ENABLED` (RFC 5161): recorded in the session (capped), and collected for ENABLE.
    fn untagged_enabled(&mut self, caps: Vec<String>) {
        for c in &caps {
            // The list names what we enabled; a server inventing names is capped.
            if self.session.enabled.len() < MAX_COLLECTED
                && !self
                    .session
                    .enabled
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(c))
            {
                self.session.enabled.push(c.to_ascii_uppercase());
            }
        }
        match self.collector(|k| matches!(k, Kind::Enable)) {
            Some(InFlight {
                collect: Collect::Enabled(v),
                ..
            }) => v.extend(caps),
            _ => self.raw_or_untagged(Response::Enabled(caps)),
        }
    }

    fn collect_list(&mut self, l: MailboxList, lsub: bool) {
        match self.collector(|k| matches!(k, Kind::List)) {
            Some(InFlight {
                collect: Collect::List(v, _),
                ..
            }) => v.push(l),
            _ => self.raw_or_untagged(if lsub {
                Response::Lsub(l)
            } else {
                Response::List(l)
            }),
        }
    }

    /// Surfaces a mailbox change, except the data that answers a SELECT/EXAMINE in flight
    /// (that is the SELECT's result, not a change).
    fn mailbox_event(&mut self, ch: MailboxChange) {
        if !self
            .in_flight
            .iter()
            .any(|c| matches!(c.kind, Kind::Select(..)))
        {
            self.events.push_back(Event::Mailbox(ch));
        }
    }

    /// The oldest in-flight command whose kind matches.
    fn collector(&mut self, want: impl Fn(&Kind) -> bool) -> Option<&mut InFlight> {
        self.in_flight.iter_mut().find(|c| want(&c.kind))
    }

    fn raw_collector(&mut self) -> Option<&mut InFlight> {
        self.collector(|k| matches!(k, Kind::Raw))
    }

    /// Gives a response to the raw command in flight, or surfaces it as an event.
    fn raw_or_untagged(&mut self, r: Response) {
        match self.raw_collector() {
            Some(InFlight {
                collect: Collect::Raw(v),
                ..
            }) => v.push(r),
            _ => self.events.push_back(Event::Untagged(r)),
        }
    }

    /// A raw command also sees the mailbox data the session recorded.
    fn copy_to_raw(&mut self, r: Response) {
        if let Some(InFlight {
            collect: Collect::Raw(v),
            ..
        }) = self.raw_collector()
        {
            v.push(r);
        }
    }

    /// Which command a FETCH response answers, or `None` when it is unsolicited (seed
    /// V0023). During SELECT/EXAMINE (a barrier: nothing else is in flight) every FETCH is
    /// the SELECT's (QRESYNC's changed messages, RFC 7162 3.2.5.2). Otherwise the oldest
    /// FETCH or non-silent STORE that the response can belong to; see `attribution` for the
    /// rules and the one ambiguity left.
    fn fetch_owner(&self, f: &Fetch) -> Option<CommandHandle> {
        let exists = self.session.mailbox.as_ref().map_or(0, |m| m.exists);
        self.in_flight.iter().find_map(|c| {
            let owns = match &c.kind {
                Kind::Select(..) => true,
                Kind::Fetch { scope, .. } => scope.owns(f, exists),
                Kind::Store { scope: Some(scope) } => scope.owns(f, exists),
                _ => false,
            };
            owns.then_some(c.handle)
        })
    }

    /// The command a streamed body literal for message `seq` belongs to: only a FETCH that
    /// asked for body data can receive one.
    pub(super) fn body_owner_for(&self, seq: u32) -> Option<CommandHandle> {
        let exists = self.session.mailbox.as_ref().map_or(0, |m| m.exists);
        self.in_flight.iter().find_map(|c| match &c.kind {
            Kind::Fetch { scope, .. } if scope.owns_body(seq, exists) => Some(c.handle),
            _ => None,
        })
    }

    /// Gives `VANISHED (EARLIER)` UIDs to the command that asked for them: the oldest UID
    /// FETCH with VANISHED, else a SELECT/EXAMINE in flight. False when none is in flight.
    fn claim_vanished(&mut self, uids: &UidSet) -> bool {
        let pos = self
            .in_flight
            .iter()
            .position(|c| matches!(c.kind, Kind::Fetch { vanished: true, .. }))
            .or_else(|| {
                self.in_flight
                    .iter()
                    .position(|c| matches!(c.kind, Kind::Select(..)))
            });
        let Some(i) = pos else {
            return false;
        };
        let slot = self.in_flight[i].vanished.get_or_insert_with(UidSet::new);
        slot.extend_from(uids);
        true
    }
}
