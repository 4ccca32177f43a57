//! Which command a FETCH response belongs to (seed V0023), and the QRESYNC/CONDSTORE results
//! the sync engine needs (RFC 7162): VANISHED (EARLIER) collected for the SELECT or UID FETCH
//! that asked for it, changed messages credited to the SELECT, MODIFIED on a conditional STORE.
//! Transcripts use the RFC 7162 examples where there is one.

use std::num::NonZeroU32;
use std::time::Instant;

use mailfold_proto::command::{
    Command, FetchItem as Want, FetchItems, FetchModifiers, Qresync, SelectParams, StoreFlags,
    StoreMode,
};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::engine::{
    Client, CommandData, CommandHandle, Completion, Config, Event, MailboxChange,
};
use mailfold_proto::response::Code;
use mailfold_proto::seqset::{SeqSet, UidSet};
use mailfold_sasl::Secret;

/// A minimal driver: the server's bytes in, the client's bytes out, tags read back.
struct T {
    c: Client,
    now: Instant,
    events: Vec<Event>,
}

impl T {
    /// Logged in, INBOX selected with `exists` messages.
    fn selected(exists: u32) -> T {
        let now = Instant::now();
        let mut t = T {
            c: Client::new(Config::default(), true, now),
            now,
            events: Vec::new(),
        };
        t.server("* OK [CAPABILITY IMAP4rev1 CONDSTORE QRESYNC ENABLE] hi\r\n");
        t.c.submit(Command::login("u", Secret::new("p".into())));
        let tag = t.sent_tag();
        t.server(&format!("{tag} OK [CAPABILITY IMAP4rev1 QRESYNC] in\r\n"));
        if exists > 0 {
            t.c.submit(Command::select(Mailbox::inbox()));
            let tag = t.sent_tag();
            t.server(&format!(
                "* {exists} EXISTS\r\n* OK [UIDVALIDITY 9] v\r\n{tag} OK [READ-WRITE] ok\r\n"
            ));
        }
        t.events.clear();
        t
    }

    fn server(&mut self, text: &str) {
        self.c.handle_input(text.as_bytes(), self.now);
        while let Some(e) = self.c.poll_event() {
            self.events.push(e);
        }
    }

    /// What the client writes now, as text.
    fn sent(&mut self) -> String {
        let mut out = String::new();
        while let Some(t) = self.c.poll_transmit(self.now) {
            if let mailfold_proto::engine::Transmit::Data(d) = t {
                out.push_str(&String::from_utf8_lossy(&d));
            }
        }
        out
    }

    /// Writes pending output and returns the tag of the (single) line written.
    fn sent_tag(&mut self) -> String {
        let s = self.sent();
        s.get(..4).unwrap_or_default().to_string()
    }

    fn owners(&self) -> Vec<(Option<CommandHandle>, u32)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Fetch { handle, fetch } => Some((*handle, fetch.seq)),
                _ => None,
            })
            .collect()
    }

    fn completion(&self, h: CommandHandle) -> Completion {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Completed(c) if c.handle == h => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{h:?} not completed: {:?}", self.events))
    }
}

fn uid_fetch(set: UidSet, items: Vec<Want>) -> Command {
    Command::UidFetch {
        set,
        items: FetchItems::Items(items),
        modifiers: FetchModifiers::default(),
    }
}

/// Seed V0023: a FLAGS-only FETCH arriving during a body fetch whose set is `1:*` is another
/// client's change, not part of the answer; the body response is the command's.
#[test]
fn v0023_flags_only_fetch_during_star_body_fetch_is_unsolicited() {
    let mut t = T::selected(3);
    let h =
        t.c.submit(uid_fetch(UidSet::all(), vec![Want::Uid, Want::body_peek()]));
    let tag = t.sent_tag();
    t.server(
        "* 2 FETCH (UID 20 FLAGS (\\Seen))\r\n\
         * 3 FETCH (FLAGS (\\Flagged))\r\n\
         * 1 FETCH (UID 10 BODY[] {5}\r\nhello)\r\n",
    );
    t.server(&format!("{tag} OK done\r\n"));
    assert_eq!(t.owners(), vec![(None, 2), (None, 3), (Some(h), 1)]);
    assert_eq!(t.completion(h).data, CommandData::Fetch { count: 1 });
}

/// Seed V0023: during a FETCH by sequence number, a response for a message outside the set
/// is unsolicited; inside it (and asking for FLAGS) it is the command's.
#[test]
fn v0023_sequence_fetch_credits_only_its_own_messages() {
    let mut t = T::selected(9);
    let h = t.c.submit(Command::Fetch {
        set: SeqSet::from_numbers([1, 2]).unwrap(),
        items: FetchItems::Items(vec![Want::Flags]),
        modifiers: FetchModifiers::default(),
    });
    let tag = t.sent_tag();
    t.server("* 5 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS (\\Seen))\r\n");
    t.server(&format!("{tag} OK done\r\n"));
    assert_eq!(t.owners(), vec![(None, 5), (Some(h), 2)]);
}

/// `n:*` names the last message even when its UID is below n (RFC 9051 section 9), and
/// nothing else below n.
#[test]
fn v0023_uid_star_range_credits_the_last_message_only() {
    let mut t = T::selected(5);
    let h =
        t.c.submit(uid_fetch(UidSet::star_from(100), vec![Want::Flags]));
    let tag = t.sent_tag();
    t.server("* 2 FETCH (UID 4 FLAGS ())\r\n* 5 FETCH (UID 50 FLAGS ())\r\n");
    t.server(&format!("{tag} OK done\r\n"));
    assert_eq!(t.owners(), vec![(None, 2), (Some(h), 5)]);
}

/// A UID STORE's answer carries UID (RFC 3501 6.4.8): a bare FLAGS response is unsolicited.
#[test]
fn v0023_uid_store_ignores_responses_without_uid() {
    let mut t = T::selected(5);
    let h = t.c.submit(Command::UidStore {
        set: UidSet::single(7).unwrap(),
        store: StoreFlags {
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Seen],
        },
        unchanged_since: None,
    });
    let tag = t.sent_tag();
    t.server("* 1 FETCH (FLAGS (\\Seen))\r\n* 3 FETCH (UID 7 FLAGS (\\Seen))\r\n");
    t.server(&format!("{tag} OK done\r\n"));
    assert_eq!(t.owners(), vec![(None, 1), (Some(h), 3)]);
}

/// RFC 7162 3.2.5.2 example: SELECT with QRESYNC returns VANISHED (EARLIER) and the changed
/// messages as the SELECT's own data, not as mailbox changes.
#[test]
fn c0004_qresync_select_collects_vanished_and_changed_messages() {
    let mut t = T::selected(0);
    let e = t.c.submit(Command::Enable(vec!["QRESYNC".into()]));
    let tag = t.sent_tag();
    t.server(&format!("* ENABLED QRESYNC\r\n{tag} OK enabled\r\n"));
    assert!(t.c.session().enabled.iter().any(|x| x == "QRESYNC"));
    assert!(t.completion(e).outcome.is_ok());
    let h = t.c.submit(Command::Select {
        mailbox: Mailbox::inbox(),
        params: SelectParams::Qresync(Qresync {
            uid_validity: NonZeroU32::new(67890007).unwrap(),
            modseq: 20050715194045000,
            known_uids: Some(UidSet::parse(b"41,43:211,214:541").unwrap()),
            seq_match: None,
        }),
    });
    let line = t.sent();
    assert_eq!(
        &line[4..],
        " SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n"
    );
    let tag = &line[..4];
    t.events.clear();
    t.server(&format!(
        "* 314 EXISTS\r\n* 15 RECENT\r\n* OK [UIDVALIDITY 67890007] UIDVALIDITY\r\n\
         * OK [UIDNEXT 567] Predicted next UID\r\n\
         * OK [HIGHESTMODSEQ 20050715194045319] Highest\r\n\
         * VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n\
         * 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (20050715194045001))\r\n\
         * 50 FETCH (UID 119 FLAGS (\\Draft $MDNSent) MODSEQ (20050715194045308))\r\n\
         {tag} OK [READ-WRITE] mailbox selected\r\n"
    ));
    let c = t.completion(h);
    let CommandData::Select(mb) = &c.data else {
        panic!("{:?}", c.data)
    };
    assert_eq!(mb.exists, 314);
    assert_eq!(mb.highest_modseq, Some(20050715194045319));
    assert_eq!(mb.uid_of(49), Some(117));
    assert_eq!(
        c.vanished,
        Some(UidSet::parse(b"41,43:116,118,120:211,214:540").unwrap())
    );
    assert_eq!(t.owners(), vec![(Some(h), 49), (Some(h), 50)]);
    assert!(
        !t.events.iter().any(|e| matches!(e, Event::Mailbox(_))),
        "SELECT data is not a change: {:?}",
        t.events
    );
}

/// RFC 7162 3.2.6 example: UID FETCH … (CHANGEDSINCE n VANISHED) returns the changed
/// messages and, in the completion, the UIDs expunged since n.
#[test]
fn c0004_uid_fetch_changedsince_vanished_collects_expunged_uids() {
    let mut t = T::selected(5);
    let h = t.c.submit(Command::UidFetch {
        set: UidSet::parse(b"300:500").unwrap(),
        items: FetchItems::Items(vec![Want::Flags]),
        modifiers: FetchModifiers {
            changed_since: Some(12345),
            vanished: true,
        },
    });
    let line = t.sent();
    assert_eq!(
        &line[4..],
        " UID FETCH 300:500 FLAGS (CHANGEDSINCE 12345 VANISHED)\r\n"
    );
    let tag = &line[..4];
    t.server(&format!(
        "* VANISHED (EARLIER) 300:310,405,411\r\n\
         * 1 FETCH (UID 404 MODSEQ (65402) FLAGS (\\Seen))\r\n\
         * 2 FETCH (UID 406 MODSEQ (75403) FLAGS (\\Deleted))\r\n\
         {tag} OK Fetch completed\r\n"
    ));
    let c = t.completion(h);
    assert_eq!(c.vanished, Some(UidSet::parse(b"300:310,405,411").unwrap()));
    assert_eq!(c.data, CommandData::Fetch { count: 2 });
    assert_eq!(
        t.c.session().mailbox.as_ref().unwrap().highest_modseq,
        Some(75403)
    );
    // A live VANISHED (no EARLIER) is still a mailbox change, and counts.
    t.events.clear();
    t.server("* VANISHED 404\r\n");
    assert!(t.events.iter().any(|e| matches!(
        e,
        Event::Mailbox(MailboxChange::Vanished { earlier: false, .. })
    )));
}

/// RFC 7162 3.1.3: a conditional STORE reports the messages it did not change in MODIFIED.
#[test]
fn c0004_store_unchangedsince_reports_modified() {
    let mut t = T::selected(5);
    let h = t.c.submit(Command::UidStore {
        set: UidSet::parse(b"7,9").unwrap(),
        store: StoreFlags {
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Seen],
        },
        unchanged_since: Some(200),
    });
    let line = t.sent();
    assert_eq!(
        &line[4..],
        " UID STORE 7,9 (UNCHANGEDSINCE 200) +FLAGS (\\Seen)\r\n"
    );
    let tag = &line[..4];
    t.server(&format!(
        "* 1 FETCH (UID 7 MODSEQ (320) FLAGS (\\Seen))\r\n\
         {tag} OK [MODIFIED 9] Conditional STORE failed\r\n"
    ));
    let c = t.completion(h);
    assert_eq!(
        c.outcome.code(),
        Some(&Code::Modified(SeqSet::single(9).unwrap()))
    );
    assert_eq!(t.owners(), vec![(Some(h), 1)]);
}
