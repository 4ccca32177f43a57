//! What the client knows about the session, recorded from server data whenever it arrives
//! (seeds V0001, C0002, C0004, V0024): capabilities, and the selected mailbox's size, flags,
//! UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, access mode and a sequence-number→UID map that
//! follows EXPUNGE and VANISHED renumbering.
//!
//! Nothing here allocates in proportion to a number the server merely declares: EXISTS is a
//! counter, and the seq→UID map holds only pairs the server actually sent, at most
//! [`MAX_KNOWN_UIDS`] of them (a server streaming FETCH responses for ever must not grow the
//! map for ever).

use std::num::NonZeroU32;

use crate::core::{Flag, Mailbox};
use crate::response::{Code, Fetch, FetchItem};
use crate::seqset::UidSet;

/// Most seq→UID pairs the map keeps: 4 Mi pairs, 32 MiB, more messages than any real single
/// mailbox holds. Past it new pairs are not recorded: [`MailboxState::uid_of`] answers `None`
/// for them, as for any pair the server has not sent, and callers that need the UID ask the
/// server again.
pub const MAX_KNOWN_UIDS: usize = 1 << 22;

/// The server's capabilities, as last advertised (upper-cased for matching).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    names: Vec<String>,
}

impl Capabilities {
    /// Builds from advertised names (any case).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        Capabilities {
            names: names
                .into_iter()
                .map(|s| s.as_ref().to_ascii_uppercase())
                .collect(),
        }
    }

    /// True when `name` (any case) was advertised.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The SASL mechanisms from `AUTH=` entries (seed V0027), upper-cased, in server order.
    pub fn auth_mechanisms(&self) -> Vec<&str> {
        self.names
            .iter()
            .filter_map(|n| n.strip_prefix("AUTH="))
            .collect()
    }

    /// All names, upper-cased.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when the server speaks IMAP4rev1 (or IMAP4rev2, which includes it).
    pub fn is_imap4rev1(&self) -> bool {
        self.has("IMAP4rev1") || self.has("IMAP4rev2")
    }
}

/// State of the selected (or being selected) mailbox (RFC 3501 6.3.1, 7.3; RFC 7162).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxState {
    /// The mailbox name as sent in SELECT/EXAMINE.
    pub name: Mailbox,
    /// `[READ-ONLY]` was reported (or the mailbox was EXAMINEd), seed V0038.
    pub read_only: bool,
    /// The number of messages (EXISTS, adjusted by EXPUNGE/VANISHED).
    pub exists: u32,
    /// RECENT (seed C0002).
    pub recent: u32,
    /// FLAGS: the flags defined in the mailbox (seed V0068).
    pub flags: Vec<Flag>,
    /// PERMANENTFLAGS, or `None` when the server sent none (seed V0037: then assume all
    /// flags are permanent, see [`MailboxState::permanent_flags_or_all`]).
    pub permanent_flags: Option<Vec<Flag>>,
    /// UIDVALIDITY, or `None` when the server never sent it (seed V0037).
    pub uid_validity: Option<NonZeroU32>,
    /// UIDNEXT as last reported (seed V0002).
    pub uid_next: Option<u32>,
    /// The first unseen message's sequence number (`[UNSEEN n]`).
    pub unseen: Option<u32>,
    /// HIGHESTMODSEQ (RFC 7162), updated by MODSEQ in FETCH responses too.
    pub highest_modseq: Option<u64>,
    /// `[NOMODSEQ]`: the mailbox does not support mod-sequences.
    pub no_modseq: bool,
    /// Known (sequence number, UID) pairs, sorted by sequence number.
    seq_uids: Vec<(u32, u32)>,
}

impl MailboxState {
    /// A fresh state for a mailbox about to be selected.
    pub fn new(name: Mailbox, read_only: bool) -> Self {
        MailboxState {
            name,
            read_only,
            exists: 0,
            recent: 0,
            flags: Vec::new(),
            permanent_flags: None,
            uid_validity: None,
            uid_next: None,
            unseen: None,
            highest_modseq: None,
            no_modseq: false,
            seq_uids: Vec::new(),
        }
    }

    /// PERMANENTFLAGS, or (when the server sent none) FLAGS plus `\*`: RFC 3501 6.3.1 says a
    /// missing PERMANENTFLAGS means all flags can be changed permanently (seed V0037).
    pub fn permanent_flags_or_all(&self) -> Vec<Flag> {
        match &self.permanent_flags {
            Some(p) => p.clone(),
            None => {
                let mut all = self.flags.clone();
                all.push(Flag::MayCreate);
                all
            }
        }
    }

    /// The UID of a message by sequence number, when the server has told us.
    pub fn uid_of(&self, seq: u32) -> Option<u32> {
        self.seq_uids
            .binary_search_by_key(&seq, |&(s, _)| s)
            .ok()
            .map(|i| self.seq_uids[i].1)
    }

    /// The sequence number of a UID, when known.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        // UIDs ascend with sequence numbers (RFC 3501 2.3.1.1), so the map is sorted by both.
        self.seq_uids
            .binary_search_by_key(&uid, |&(_, u)| u)
            .ok()
            .map(|i| self.seq_uids[i].0)
    }

    /// How many seq→UID pairs are known.
    pub fn known_uids(&self) -> usize {
        self.seq_uids.len()
    }

    fn record_uid(&mut self, seq: u32, uid: u32) {
        if seq == 0 || uid == 0 {
            return;
        }
        match self.seq_uids.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => self.seq_uids[i].1 = uid,
            Err(i) if self.seq_uids.len() < MAX_KNOWN_UIDS => self.seq_uids.insert(i, (seq, uid)),
            Err(_) => {}
        }
    }

    /// EXPUNGE n: message n is gone and every later message moves down one (RFC 3501 7.4.1).
    fn expunge(&mut self, seq: u32) {
        self.exists = self.exists.saturating_sub(1);
        let start = match self.seq_uids.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => {
                self.seq_uids.remove(i);
                i
            }
            Err(i) => i,
        };
        for pair in &mut self.seq_uids[start..] {
            pair.0 -= 1; // pair.0 > seq >= 1 here
        }
    }

    /// VANISHED (not EARLIER): like one EXPUNGE per UID (RFC 7162 3.2.10). Known pairs are
    /// renumbered by the count of vanished UIDs below them, since UID order is sequence order.
    fn vanish(&mut self, uids: &UidSet) {
        // When every message's UID is known, the map says exactly which messages went (a
        // range such as 20:30 may name UIDs that never existed) and how the rest renumber.
        // Otherwise the count is the set's size, and pairs above the first vanished UID can
        // no longer be renumbered with certainty, so they are dropped (re-learnt on the
        // next FETCH) rather than kept wrong.
        let complete = self.seq_uids.len() as u64 == u64::from(self.exists);
        let first = uids.first().unwrap_or(u32::MAX);
        let mut removed = 0u32;
        let mut out = Vec::with_capacity(self.seq_uids.len());
        for &(seq, uid) in &self.seq_uids {
            if uids.contains(uid) {
                removed += 1;
            } else if complete {
                // removed < seq: each removed pair had a smaller sequence number.
                out.push((seq - removed, uid));
            } else if uid < first {
                out.push((seq, uid));
            }
        }
        self.seq_uids = out;
        let gone = if complete {
            removed
        } else {
            u32::try_from(uids.len()).unwrap_or(u32::MAX)
        };
        self.exists = self.exists.saturating_sub(gone);
    }

    /// Applies one FETCH response's state-bearing items (UID map, HIGHESTMODSEQ).
    fn apply_fetch(&mut self, fetch: &Fetch) {
        for item in &fetch.items {
            match item {
                FetchItem::Uid(uid) => self.record_uid(fetch.seq, *uid),
                // Tracking the largest MODSEQ seen keeps HIGHESTMODSEQ current between
                // commands (RFC 7162 3.1.2).
                FetchItem::ModSeq(m) if !matches!(self.highest_modseq, Some(h) if h >= *m) => {
                    self.highest_modseq = Some(*m);
                }
                _ => {}
            }
        }
    }

    /// Applies a response code that concerns the mailbox.
    fn apply_code(&mut self, code: &Code) {
        match code {
            Code::PermanentFlags(f) => self.permanent_flags = Some(f.clone()),
            Code::ReadOnly => self.read_only = true,
            Code::ReadWrite => self.read_only = false,
            Code::UidNext(n) => self.uid_next = Some(*n),
            Code::UidValidity(v) => {
                if self.uid_validity.is_some_and(|old| old != *v) {
                    // A UIDVALIDITY change inside a session invalidates every UID we hold.
                    self.seq_uids.clear();
                }
                self.uid_validity = Some(*v);
            }
            Code::Unseen(n) => self.unseen = Some(*n),
            Code::HighestModSeq(m) => self.highest_modseq = Some(*m),
            Code::NoModSeq => self.no_modseq = true,
            _ => {}
        }
    }
}

/// Everything the engine records about the session.
#[derive(Clone, Debug, Default)]
pub struct SessionState {
    /// Capabilities, or `None` when they are unknown (never received, or discarded after
    /// STARTTLS or authentication: seeds V0033, V0035); the caller then sends CAPABILITY.
    pub capabilities: Option<Capabilities>,
    /// True once the transport is encrypted (implicit TLS, or after STARTTLS).
    pub encrypted: bool,
    /// Extensions enabled with ENABLE (RFC 5161).
    pub enabled: Vec<String>,
    /// The selected mailbox, or the one being selected while SELECT/EXAMINE is in flight.
    pub mailbox: Option<MailboxState>,
}

/// A change to the selected mailbox worth telling the caller about at once (seeds V0023,
/// V0024: another client's changes during IDLE).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxChange {
    /// New message count (EXISTS).
    Exists(u32),
    /// RECENT count.
    Recent(u32),
    /// Message with this sequence number expunged; the UID when it was known.
    Expunged {
        /// Sequence number before the expunge.
        seq: u32,
        /// Its UID, when the map knew it.
        uid: Option<u32>,
    },
    /// UIDs expunged (QRESYNC VANISHED); `earlier` for the `(EARLIER)` form, which reports
    /// history and changes no count.
    Vanished {
        /// Whether the `(EARLIER)` form was used.
        earlier: bool,
        /// The UIDs.
        uids: UidSet,
    },
    /// FLAGS (the defined flags) changed.
    Flags(Vec<Flag>),
    /// UIDVALIDITY changed while selected: every UID held is invalid.
    UidValidity(NonZeroU32),
}

impl SessionState {
    /// Applies a response code from any status response.
    pub(crate) fn apply_code(&mut self, code: &Code) {
        match code {
            Code::Capability(c) => self.capabilities = Some(Capabilities::new(c)),
            other => {
                if let Some(mb) = &mut self.mailbox {
                    mb.apply_code(other);
                }
            }
        }
    }

    pub(crate) fn apply_exists(&mut self, n: u32) -> Option<MailboxChange> {
        let mb = self.mailbox.as_mut()?;
        mb.exists = n;
        Some(MailboxChange::Exists(n))
    }

    pub(crate) fn apply_recent(&mut self, n: u32) -> Option<MailboxChange> {
        let mb = self.mailbox.as_mut()?;
        mb.recent = n;
        Some(MailboxChange::Recent(n))
    }

    pub(crate) fn apply_flags(&mut self, flags: &[Flag]) -> Option<MailboxChange> {
        let mb = self.mailbox.as_mut()?;
        mb.flags = flags.to_vec();
        Some(MailboxChange::Flags(flags.to_vec()))
    }

    pub(crate) fn apply_expunge(&mut self, seq: u32) -> Option<MailboxChange> {
        let mb = self.mailbox.as_mut()?;
        let uid = mb.uid_of(seq);
        mb.expunge(seq);
        Some(MailboxChange::Expunged { seq, uid })
    }

    pub(crate) fn apply_vanished(&mut self, earlier: bool, uids: &UidSet) -> Option<MailboxChange> {
        let mb = self.mailbox.as_mut()?;
        if !earlier {
            mb.vanish(uids);
        }
        Some(MailboxChange::Vanished {
            earlier,
            uids: uids.clone(),
        })
    }

    pub(crate) fn apply_fetch(&mut self, fetch: &Fetch) {
        if let Some(mb) = &mut self.mailbox {
            mb.apply_fetch(fetch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb_with(pairs: &[(u32, u32)]) -> MailboxState {
        let mut mb = MailboxState::new(Mailbox::inbox(), false);
        mb.exists = pairs.len() as u32;
        for &(s, u) in pairs {
            mb.record_uid(s, u);
        }
        mb
    }

    #[test]
    fn expunge_renumbers_later_messages() {
        let mut mb = mb_with(&[(1, 10), (2, 20), (3, 30), (4, 40)]);
        mb.expunge(2);
        assert_eq!(mb.exists, 3);
        assert_eq!(mb.uid_of(1), Some(10));
        assert_eq!(mb.uid_of(2), Some(30));
        assert_eq!(mb.uid_of(3), Some(40));
        assert_eq!(mb.seq_of(20), None);
    }

    #[test]
    fn vanished_renumbers_like_expunges() {
        let mut mb = mb_with(&[(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]);
        mb.vanish(&UidSet::from_numbers([20, 40]).unwrap());
        assert_eq!(mb.exists, 3);
        assert_eq!(mb.uid_of(1), Some(10));
        assert_eq!(mb.uid_of(2), Some(30));
        assert_eq!(mb.uid_of(3), Some(50));
        assert_eq!(mb.known_uids(), 3);
    }

    #[test]
    fn vanished_range_spanning_known_uids() {
        let mut mb = mb_with(&[(1, 10), (2, 11), (3, 12), (4, 13)]);
        mb.vanish(&UidSet::range(11, 12).unwrap());
        assert_eq!(mb.uid_of(1), Some(10));
        assert_eq!(mb.uid_of(2), Some(13));
    }

    #[test]
    fn huge_exists_allocates_nothing() {
        let mut s = SessionState {
            mailbox: Some(MailboxState::new(Mailbox::inbox(), false)),
            ..Default::default()
        };
        s.apply_exists(u32::MAX);
        assert_eq!(s.mailbox.as_ref().unwrap().known_uids(), 0);
    }
}
