//! The server as the applier sees it: a small blocking interface at the granularity of sync
//! steps ("list the folders", "fetch these bodies into this sink", "append this file").
//!
//! Keeping the network behind this trait lets the gather and apply code be tested against any
//! implementation, and lets the transport change without touching them: [`crate::net`]
//! implements it over the async `mailfold-net` session (each call a `block_on`). Implementations
//! pipeline internally where a call covers many messages ([`Remote::fetch_bodies`],
//! [`Remote::fetch_details`]), so the applier stays sequential and simple.
//!
//! Values cross this interface typed, so neither side converts them:
//! - UIDs, UIDVALIDITY and MODSEQ as the workspace's one definition of each
//!   ([`Uid`], [`UidValidity`], [`ModSeq`] from `mailfold_proto::core`), which the planner and
//!   the state database also use; a `0` the server sends, which none of them can be, is dropped
//!   by the implementation.
//! - Mailbox names as [`Mailbox`], the wire form (modified UTF-7 bytes, RFC 3501 5.1.3) that
//!   the command encoder takes, with INBOX in upper case (RFC 3501 5.1).
//! - Flags as the planner's storable [`Flag`] (and [`FlagSet`], [`PermanentFlags`]), not the
//!   wire flag of `mailfold_proto::core`: everything the gather and the applier do with a
//!   flag is plan or store it, and the storable flag cannot hold `\Recent` (seed V0004) or `\*`,
//!   which no message can be given. The implementation maps the wire flags once
//!   (`Flag::from_wire`); `\*` in PERMANENTFLAGS becomes [`PermanentFlags::new_keywords`].

use std::fmt;
use std::io::Read;

pub use mailfold_proto::core::{Mailbox, ModSeq, Uid, UidValidity};

pub use crate::plan::{Flag, FlagSet, PermanentFlags};

/// One LIST (or LSUB) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The name in wire form.
    pub wire: Mailbox,
    /// The hierarchy delimiter (`None`: flat namespace).
    pub delimiter: Option<char>,
    /// `\Noselect` (or `\NoSelect` from LSUB): cannot hold messages.
    pub noselect: bool,
    /// `\NonExistent` (RFC 5258): listed only because of children or subscriptions.
    pub nonexistent: bool,
    /// The RFC 6154 special-use attribute, e.g. `\Sent`.
    pub special_use: Option<String>,
    /// `\Subscribed`, or present in LSUB.
    pub subscribed: bool,
    /// The folder's STATUS when LIST returned it (LIST-STATUS, RFC 5819, seed V0044): the
    /// same items [`Remote::status_all`] asks for, so no STATUS round is needed for it.
    pub status: Option<Status>,
}

/// What SELECT or EXAMINE reported (seeds V0036, V0037, V0038).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selected {
    /// UIDVALIDITY, `None` when the server sent none (V0037).
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT, `None` when missing (V0037: derived later).
    pub uidnext: Option<Uid>,
    /// EXISTS.
    pub exists: u32,
    /// HIGHESTMODSEQ with CONDSTORE.
    pub highestmodseq: Option<ModSeq>,
    /// PERMANENTFLAGS (`\*` as [`PermanentFlags::new_keywords`]); `None` when missing (V0037:
    /// assume all).
    pub permanent_flags: Option<PermanentFlags>,
    /// `[READ-ONLY]`, or opened with EXAMINE (V0039, V0040).
    pub read_only: bool,
}

/// A message's UID and flags (the cheap view of every message in a folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFlags {
    /// UID.
    pub uid: Uid,
    /// Flags (`\Recent` left out, seed V0004).
    pub flags: FlagSet,
    /// MODSEQ with CONDSTORE.
    pub modseq: Option<ModSeq>,
}

/// What content matching needs of a message the state does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDetails {
    /// UID.
    pub uid: Uid,
    /// RFC822.SIZE (seed V0007).
    pub size: Option<u64>,
    /// INTERNALDATE as Unix seconds (seed V0006).
    pub internaldate: Option<i64>,
    /// The Message-ID header value, trimmed, if any.
    pub message_id: Option<String>,
}

/// One piece of a streamed body, in order: `Start`, any number of `Data`, `End`.
#[derive(Debug)]
pub enum BodyEvent<'a> {
    /// A body for `uid` begins; `len` is the size the server declared (never allocate it).
    Start {
        /// The message.
        uid: Uid,
        /// Declared size.
        len: u64,
    },
    /// Bytes of the current body.
    Data {
        /// The message.
        uid: Uid,
        /// The bytes, wire form (CRLF).
        bytes: &'a [u8],
    },
    /// The current body is complete.
    End {
        /// The message.
        uid: Uid,
    },
    /// The current body must not be kept: the transport could not confirm which message it
    /// belongs to (see [`crate::net`]). Whatever was written for it is discarded.
    Abort {
        /// The message it was started for.
        uid: Uid,
    },
}

/// STATUS results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// MESSAGES.
    pub messages: Option<u32>,
    /// UIDVALIDITY.
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT.
    pub uidnext: Option<Uid>,
    /// UNSEEN (asked only by [`Remote::status_all`], seed V0045).
    pub unseen: Option<u32>,
    /// HIGHESTMODSEQ (RFC 7162 3.1.6; asked only by [`Remote::status_all`] when the server
    /// has CONDSTORE).
    pub highestmodseq: Option<ModSeq>,
}

/// What changed in the selected folder since a known `(UIDVALIDITY, HIGHESTMODSEQ)` (RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChanges {
    /// What SELECT/EXAMINE reported. When its UIDVALIDITY differs from the one asked about,
    /// `changed` and `vanished` mean nothing and the caller reads the whole folder.
    pub selected: Selected,
    /// Messages whose MODSEQ is above the one asked about, new ones included.
    pub changed: Vec<MessageFlags>,
    /// UIDs expunged since then, from `VANISHED (EARLIER)` (QRESYNC), as inclusive ranges in
    /// the server's own compact form: a range such as `1:4294967295` is legal and is never
    /// expanded into single UIDs. `None` when the server cannot say (CONDSTORE without
    /// QRESYNC): the caller must find expunges another way. A range starting at 0 starts at 1.
    pub vanished: Option<Vec<(Uid, Uid)>>,
}

/// The server's namespaces (RFC 2342, seed V0022), names decoded to UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Personal namespaces: `(prefix, delimiter)`, e.g. `("INBOX.", Some('.'))` or `("", …)`.
    pub personal: Vec<(String, Option<char>)>,
    /// Other users' and shared namespaces: folders under them are not the user's own mail.
    pub foreign: Vec<(String, Option<char>)>,
}

/// What APPENDUID (RFC 4315, seed V0048) reported for an APPEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: UidValidity,
    /// The new message's UID.
    pub uid: Uid,
}

/// What a tracked `UID STORE` reports ([`Remote::store_tracked`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The UIDs the server reported `[MODIFIED]` (RFC 7162 3.1.3): not changed.
    pub modified: Vec<Uid>,
    /// The new MODSEQ of stored UIDs, where the server said.
    pub modseqs: Vec<(Uid, ModSeq)>,
}

impl Stored {
    /// The new MODSEQ the server reported for `uid`.
    pub fn modseq_of(&self, uid: Uid) -> Option<ModSeq> {
        self.modseqs
            .iter()
            .find(|(u, _)| *u == uid)
            .map(|&(_, m)| m)
    }
}

/// What COPYUID (RFC 4315) reported for a copy or a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The destination's UIDVALIDITY.
    pub uidvalidity: UidValidity,
    /// `(source, dest)` UID pairs.
    pub pairs: Vec<(Uid, Uid)>,
}

impl Copied {
    /// The destination UID of `source`, where the server gave one.
    pub fn dest_of(&self, source: Uid) -> Option<Uid> {
        dest_of(&self.pairs, source)
    }
}

/// The destination UID of `source` in COPYUID pairs.
pub fn dest_of(pairs: &[(Uid, Uid)], source: Uid) -> Option<Uid> {
    pairs.iter().find(|(s, _)| *s == source).map(|&(_, d)| d)
}

/// What a move reported ([`Remote::move_or_copy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// `UID MOVE` was used: the source is gone. `false` after a `UID COPY`, which leaves the
    /// source for the caller to remove.
    pub moved: bool,
    /// COPYUID's `(source, dest)` pairs, when the server gave them.
    pub pairs: Vec<(Uid, Uid)>,
}

/// A failed server command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// Tagged NO: the server could not do it; the text is the server's own (seed V0019).
    No {
        /// The server's text, with its response code when it sent one.
        text: String,
        /// `[TRYCREATE]` was given (seeds V0047, V0058).
        trycreate: bool,
    },
    /// Tagged BAD, or the command could not be sent to this server.
    Bad(String),
    /// The session is unusable (I/O, protocol, timeout, BYE).
    Fatal(String),
}

impl RemoteError {
    /// Whether the session is gone.
    pub fn is_fatal(&self) -> bool {
        matches!(self, RemoteError::Fatal(_))
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::No { text, .. } => write!(f, "server said NO: {text}"),
            RemoteError::Bad(t) => write!(f, "server said BAD: {t}"),
            RemoteError::Fatal(t) => write!(f, "connection failed: {t}"),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Result alias for remote calls.
pub type RemoteResult<T> = Result<T, RemoteError>;

/// A flag change sent with `UID STORE … ±FLAGS.SILENT` (seed V0056).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// `+FLAGS.SILENT`.
    Add,
    /// `-FLAGS.SILENT`.
    Remove,
    /// `FLAGS.SILENT`: the message's flags become exactly these (an empty list clears them).
    Replace,
}

/// The server, at the granularity of sync steps. See the module docs.
pub trait Remote {
    /// Whether the server advertised the capability (any case).
    fn has_capability(&self, name: &str) -> bool;

    /// `LIST "" "*"` (seed V0041), with `RETURN (SPECIAL-USE SUBSCRIBED)` where LIST-EXTENDED is
    /// offered; subscriptions from LSUB otherwise. See [`crate::gather`] for the LIST/LSUB
    /// attribute rule (V0043).
    fn list_all(&mut self) -> RemoteResult<Vec<ListEntry>>;

    /// `NAMESPACE` (RFC 2342) when the server offers it (seed V0022); `None` otherwise. The
    /// default offers none.
    fn namespace(&mut self) -> RemoteResult<Option<NamespaceInfo>> {
        Ok(None)
    }

    /// SELECT, or EXAMINE when `read_only` (V0040). The previous mailbox is left by selecting
    /// the next one, never by CLOSE, which would expunge (seed V0050).
    fn select(&mut self, mailbox: &Mailbox, read_only: bool) -> RemoteResult<Selected>;

    /// Leaves the selected mailbox without expunging: UNSELECT where offered (V0050), otherwise
    /// nothing (the next SELECT does it).
    fn unselect(&mut self) -> RemoteResult<()>;

    /// `UID FETCH 1:* (UID FLAGS [MODSEQ])` on the selected mailbox.
    fn fetch_flags(&mut self) -> RemoteResult<Vec<MessageFlags>>;

    /// Every UID of the selected mailbox, ascending (`UID FETCH 1:* (UID)`): four bytes a
    /// message, so that a very large folder can then be read in windows. The default takes
    /// them from [`Remote::fetch_flags`].
    fn fetch_uids(&mut self) -> RemoteResult<Vec<Uid>> {
        let mut uids: Vec<Uid> = self.fetch_flags()?.into_iter().map(|m| m.uid).collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// `UID FETCH uids (UID FLAGS [MODSEQ])` on the selected mailbox: [`Remote::fetch_flags`]
    /// of some messages. UIDs the server no longer has are absent. The default filters
    /// [`Remote::fetch_flags`].
    fn fetch_flags_of(&mut self, uids: &[Uid]) -> RemoteResult<Vec<MessageFlags>> {
        let wanted: std::collections::HashSet<Uid> = uids.iter().copied().collect();
        let mut flags = self.fetch_flags()?;
        flags.retain(|m| wanted.contains(&m.uid));
        Ok(flags)
    }

    /// `UID FETCH uids (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`.
    /// A message whose INTERNALDATE is missing or cannot be read is dated by its Date header,
    /// or by the time of the run, with a warning ([`Remote::take_warnings`]).
    fn fetch_details(&mut self, uids: &[Uid]) -> RemoteResult<Vec<MessageDetails>>;

    /// `UID FETCH uids (UID BODY.PEEK[])` (or `BODY.PEEK[HEADER]` with `headers_only`), never
    /// setting `\Seen` (seed V0054); bodies go to `sink` as they arrive. UIDs the server no
    /// longer has are simply absent. Each UID's body is passed on complete at most once,
    /// whatever the server repeats (a repeat is a warning, [`Remote::take_warnings`]).
    fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        headers_only: bool,
        sink: &mut (dyn FnMut(BodyEvent<'_>) + Send),
    ) -> RemoteResult<()>;

    /// `APPEND mailbox (flags) "date" {len}` streaming `len` bytes from `data`. Returns the
    /// APPENDUID when the server has UIDPLUS (seed V0048).
    fn append(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<Appended>>;

    /// [`Remote::append`] of a message holding NUL bytes, in a BINARY literal8 (RFC 3516, seed
    /// V0014); called only when the server offers BINARY. A remote that cannot send one
    /// refuses.
    fn append_binary(
        &mut self,
        mailbox: &Mailbox,
        flags: &[Flag],
        internaldate: Option<i64>,
        len: u64,
        data: &mut dyn Read,
    ) -> RemoteResult<Option<Appended>> {
        let _ = (mailbox, flags, internaldate, len, data);
        Err(RemoteError::Bad(
            "this connection cannot send binary data (BINARY literal8)".into(),
        ))
    }

    /// `UID STORE uids ±FLAGS.SILENT (flags)` with `(UNCHANGEDSINCE n)` when given. Returns the
    /// UIDs the server reported `[MODIFIED]` (not changed because another client changed them).
    fn store(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        unchanged_since: Option<ModSeq>,
    ) -> RemoteResult<Vec<Uid>>;

    /// [`Remote::store`], also returning the new MODSEQ of each stored UID where the server
    /// reported it (RFC 7162 3.1.3: a conditional STORE answers with `FETCH (UID MODSEQ)` even
    /// when silent). A second conditional STORE on the same message in the same run needs it:
    /// the first one raised the message's MODSEQ, so the view's value would report our own
    /// change as MODIFIED. The default reports none.
    fn store_tracked(
        &mut self,
        uids: &[Uid],
        op: StoreOp,
        flags: &[Flag],
        unchanged_since: Option<ModSeq>,
    ) -> RemoteResult<Stored> {
        self.store(uids, op, flags, unchanged_since)
            .map(|modified| Stored {
                modified,
                modseqs: Vec::new(),
            })
    }

    /// `UID EXPUNGE uids` (UIDPLUS), or a bare `EXPUNGE` when `plain` (the caller checked that
    /// the account allows it).
    fn expunge(&mut self, uids: &[Uid], plain: bool) -> RemoteResult<()>;

    /// `CREATE mailbox`.
    fn create(&mut self, mailbox: &Mailbox) -> RemoteResult<()>;

    /// `DELETE mailbox`.
    fn delete(&mut self, mailbox: &Mailbox) -> RemoteResult<()>;

    /// `RENAME from to` (RFC 3501 6.3.5).
    fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> RemoteResult<()>;

    /// The server's hierarchy delimiter, for a change made before any sync recorded one
    /// ([`crate::changes`]); `None` for a flat server. The default asks [`Remote::list_all`].
    fn delimiter(&mut self) -> RemoteResult<Option<char>> {
        let entries = self.list_all()?;
        Ok(entries
            .iter()
            .find(|e| e.wire.is_inbox())
            .or_else(|| entries.first())
            .and_then(|e| e.delimiter))
    }

    /// `SUBSCRIBE mailbox` (RFC 3501 6.3.6), for a folder a user created
    /// ([`crate::changes`]). A remote that cannot send it says so.
    fn subscribe(&mut self, mailbox: &Mailbox) -> RemoteResult<()> {
        let _ = mailbox;
        Err(RemoteError::Bad(
            "SUBSCRIBE is not offered by this remote".into(),
        ))
    }

    /// `STATUS mailbox (MESSAGES UIDVALIDITY UIDNEXT)`.
    fn status(&mut self, mailbox: &Mailbox) -> RemoteResult<Status>;

    /// STATUS of many folders in one pipelined round (seed V0045): MESSAGES UIDNEXT
    /// UIDVALIDITY UNSEEN, and HIGHESTMODSEQ with CONDSTORE. One entry per mailbox, in order;
    /// `None` where the server refused. The default sends them one by one.
    fn status_all(&mut self, mailboxes: &[Mailbox]) -> RemoteResult<Vec<Option<Status>>> {
        let mut out = Vec::with_capacity(mailboxes.len());
        for m in mailboxes {
            match self.status(m) {
                Ok(s) => out.push(Some(s)),
                Err(e) if e.is_fatal() => return Err(e),
                Err(_) => out.push(None),
            }
        }
        Ok(out)
    }

    /// Selects the folder asking only for what changed since `(uidvalidity, since)`: with
    /// QRESYNC, `SELECT … (QRESYNC (uidvalidity since))`; with CONDSTORE alone,
    /// `SELECT … (CONDSTORE)` then `UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE since)`.
    /// `Ok(None)` when the server offers neither (the caller then selects and reads
    /// everything). The default offers neither.
    fn select_changes(
        &mut self,
        _mailbox: &Mailbox,
        _read_only: bool,
        _uidvalidity: UidValidity,
        _since: ModSeq,
    ) -> RemoteResult<Option<FolderChanges>> {
        Ok(None)
    }

    /// `UID SEARCH HEADER Message-ID "<id>"` on the selected mailbox.
    fn search_message_id(&mut self, message_id: &str) -> RemoteResult<Vec<Uid>>;

    /// `UID MOVE` (RFC 6851) where offered, else `UID COPY`; returns COPYUID pairs
    /// `(source, dest)` when the server gave them. The caller removes the source after a COPY.
    fn move_or_copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Moved>;

    /// `UID COPY` (RFC 3501 6.4.7) of `uids` from the selected folder (SELECTed or EXAMINEd)
    /// into `dest`, never MOVE: the source stays. Returns the destination's UIDVALIDITY and
    /// the `(source, dest)` pairs of COPYUID (RFC 4315) when the server gave them. The default
    /// refuses, for an implementation without a copy of its own.
    fn copy(&mut self, uids: &[Uid], dest: &Mailbox) -> RemoteResult<Option<Copied>> {
        let _ = (uids, dest);
        Err(RemoteError::Bad("UID COPY is not available here".into()))
    }

    /// `[ALERT]` texts received since the last call (seed V0063).
    fn take_alerts(&mut self) -> Vec<String>;

    /// Warnings since the last call about server data the implementation handled on its own
    /// (a body sent twice, a date that does not parse), each naming its folder. The default
    /// has none.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// LOGOUT, reading the tagged OK within a short time (seed N2).
    fn logout(&mut self);
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

/// The first `Date:` field of a header block (RFC 5322 3.6.1) as Unix seconds, for a message
/// whose INTERNALDATE cannot be read. `None` when there is none or it does not parse.
pub fn header_date(header: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((name, rest)) = line.split_once(':') {
            if name.trim_end().eq_ignore_ascii_case("Date") {
                value = Some(rest.trim().to_owned());
            }
        }
    }
    rfc5322_date(&value?)
}

/// RFC 5322 3.3 `date-time`, with the obsolete forms of 4.3 (two- and three-digit years,
/// named zones, no seconds) and comments removed; `None` for anything else.
fn rfc5322_date(value: &str) -> Option<i64> {
    if value.len() > 998 {
        return None; // longer than a header line may be (RFC 5322 2.1.1)
    }
    // Comments (`(UTC)`) out, nested ones included.
    let mut plain = String::with_capacity(value.len());
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    // The optional day of the week ends at its comma.
    let rest = match plain.split_once(',') {
        Some((_, r)) => r,
        None => plain.as_str(),
    };
    let mut tokens = rest.split_whitespace();
    let day: u8 = tokens.next()?.parse().ok()?;
    let month = month_number(tokens.next()?)?;
    let year_text = tokens.next()?;
    let year: u16 = year_text.parse().ok()?;
    let year = match year_text.len() {
        2 if year < 50 => year + 2000,
        2 | 3 => year + 1900,
        4 => year,
        _ => return None,
    };
    let mut hms = tokens.next()?.split(':');
    let hour: u8 = hms.next()?.parse().ok()?;
    let minute: u8 = hms.next()?.parse().ok()?;
    let second: u8 = match hms.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if hms.next().is_some() {
        return None;
    }
    let offset_minutes = zone_minutes(tokens.next()?)?;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let d = mailfold_proto::response::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        offset_minutes,
    };
    Some(d.unix_timestamp())
}

fn month_number(name: &str) -> Option<u8> {
    mailfold_proto::response::DateTime::month_from_name(name.as_bytes())
}

/// `+hhmm`/`-hhmm`, or an obsolete zone name (RFC 5322 4.3; military letters and unknown
/// names mean an unknown zone, read as UTC).
fn zone_minutes(zone: &str) -> Option<i16> {
    let b = zone.as_bytes();
    if let (Some(&sign @ (b'+' | b'-')), 5) = (b.first(), b.len()) {
        if !b[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |i: usize| i16::from(b[i] - b'0');
        let (h, m) = (n(1) * 10 + n(2), n(3) * 10 + n(4));
        if m > 59 {
            return None;
        }
        let off = h * 60 + m;
        return Some(if sign == b'-' { -off } else { off });
    }
    if !zone.chars().all(|c| c.is_ascii_alphabetic()) || zone.len() > 3 {
        return None;
    }
    Some(match zone.to_ascii_uppercase().as_str() {
        "EDT" => -4 * 60,
        "EST" | "CDT" => -5 * 60,
        "CST" | "MDT" => -6 * 60,
        "MST" | "PDT" => -7 * 60,
        "PST" => -8 * 60,
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_headers_in_current_and_obsolete_forms() {
        let d = |s: &str| header_date(format!("Date: {s}\r\n\r\n").as_bytes());
        // 2024-01-02T02:04:05Z.
        assert_eq!(d("Tue, 02 Jan 2024 03:04:05 +0100"), Some(1_704_161_045));
        assert_eq!(d("2 Jan 2024 02:04:05 +0000 (UTC)"), Some(1_704_161_045));
        assert_eq!(d("Tue, 2 Jan 24 02:04:05 GMT"), Some(1_704_161_045));
        assert_eq!(d("Mon, 1 Jan 2024 21:04 EST"), Some(1_704_161_040));
        assert_eq!(
            header_date(b"Subject: x\r\ndate: Tue, 02 Jan 2024\r\n 03:04:05 +0100\r\n\r\n"),
            Some(1_704_161_045)
        );
        for bad in [
            "yesterday",
            "31 Foo 2024 10:00:00 +0000",
            "32 Jan 2024 10:00:00 +0000",
            "2 Jan 2024 25:00:00 +0000",
            "2 Jan 2024 10:00:00 +99999",
            "2 Jan 2024 10:00:00",
            "",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
        assert_eq!(
            header_date(b"Subject: no date\r\n\r\nDate: 2 Jan 2024 10:00 +0000\r\n"),
            None
        );
    }

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
}
