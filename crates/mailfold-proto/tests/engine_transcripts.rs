//! Transcript tests of the client engine: "server says / client must send", with a fixed
//! tag seed. `$a`, `$b`, … in an expected client line match a fresh 4-character tag and bind
//! it; the same names in server lines are replaced by the bound tag.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mailfold_proto::command::{
    Append, AppendData, Command, FetchItem as CmdFetchItem, FetchItems, FetchModifiers, List,
    Search, SearchKey, StatusItem as CmdStatusItem, StoreFlags, StoreMode,
};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::engine::{
    Client, CommandData, CommandHandle, Config, ConnState, EngineError, Event, MailboxChange,
    Outcome, Transmit,
};
use mailfold_proto::response::{Code, GreetingKind};
use mailfold_proto::seqset::{SeqSet, UidSet};
use mailfold_sasl::{
    new_mechanism, ClientContext, Credentials, Mechanism, MechanismName, OsNonceSource, Response,
    SaslError, Secret,
};

struct T {
    c: Client,
    now: Instant,
    tags: HashMap<String, String>,
    events: Vec<Event>,
}

impl T {
    fn new() -> T {
        Self::with(Config::default(), false)
    }

    fn with(cfg: Config, encrypted: bool) -> T {
        let now = Instant::now();
        T {
            c: Client::new(cfg, encrypted, now),
            now,
            tags: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// A client past the greeting (and, if `auth`, past LOGIN).
    fn ready(auth: bool) -> T {
        let mut t = T::new();
        t.server("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN] ready\r\n");
        if auth {
            t.c.submit(Command::login("u", Secret::new("p".into())));
            t.client("$z LOGIN u p\r\n");
            t.server("$z OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] logged in\r\n");
            t.events.clear();
        }
        t
    }

    fn server(&mut self, text: &str) {
        let mut s = text.to_string();
        for (k, v) in &self.tags {
            s = s.replace(&format!("${k}"), v);
        }
        self.c.handle_input(s.as_bytes(), self.now);
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.c.poll_event() {
            self.events.push(e);
        }
    }

    /// Everything the client wants to write now, as text (driver literals shown as `<n>`).
    fn sent(&mut self) -> String {
        let mut out = String::new();
        while let Some(t) = self.c.poll_transmit(self.now) {
            match t {
                Transmit::Data(d) => out.push_str(&String::from_utf8_lossy(&d)),
                Transmit::Literal { len, .. } => out.push_str(&format!("<{len}>")),
            }
        }
        self.drain_events();
        out
    }

    /// Asserts the client sends exactly `expected` (with tag placeholders).
    fn client(&mut self, expected: &str) {
        let got = self.sent();
        let mut g = got.as_bytes();
        let e = expected.as_bytes();
        let mut i = 0;
        while i < e.len() {
            if e[i] == b'$' && i + 1 < e.len() && e[i + 1].is_ascii_lowercase() {
                let name = (e[i + 1] as char).to_string();
                assert!(
                    g.len() >= 4,
                    "expected a tag in {got:?} (wanted {expected:?})"
                );
                let tag = std::str::from_utf8(&g[..4]).unwrap().to_string();
                assert!(
                    tag.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "tag {tag:?} is not 4 chars of a-z0-9 (seed C0001)"
                );
                if let Some(prev) = self.tags.get(&name) {
                    assert_eq!(prev, &tag, "tag ${name} changed");
                }
                self.tags.insert(name, tag);
                g = &g[4..];
                i += 2;
            } else {
                assert!(
                    !g.is_empty() && g[0] == e[i],
                    "client sent {got:?}, expected {expected:?}"
                );
                g = &g[1..];
                i += 1;
            }
        }
        assert!(g.is_empty(), "client sent {got:?}, expected {expected:?}");
    }

    fn completions(&mut self) -> Vec<(CommandHandle, Outcome, CommandData)> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Completed(c) => {
                out.push((c.handle, c.outcome.clone(), c.data.clone()));
                false
            }
            _ => true,
        });
        out
    }

    fn completion(&mut self, h: CommandHandle) -> (Outcome, CommandData) {
        let all = self.completions();
        let found = all.iter().find(|(x, _, _)| *x == h).cloned();
        found
            .map(|(_, o, d)| (o, d))
            .unwrap_or_else(|| panic!("{h:?} not completed; events: {:?}", self.events))
    }

    fn closed_error(&self) -> Option<EngineError> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(err) => Some(err.clone()),
            _ => None,
        })?
    }

    fn tick(&mut self) {
        self.c.handle_timeout(self.now);
        self.drain_events();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn inbox() -> Mailbox {
    Mailbox::inbox()
}

fn uid_fetch(set: UidSet, items: Vec<CmdFetchItem>) -> Command {
    Command::UidFetch {
        set,
        items: FetchItems::Items(items),
        modifiers: FetchModifiers::default(),
    }
}

fn seq_fetch(set: SeqSet, items: Vec<CmdFetchItem>) -> Command {
    Command::Fetch {
        set,
        items: FetchItems::Items(items),
        modifiers: FetchModifiers::default(),
    }
}

/// RFC 3501 section 8, driven through the engine (with our tags for the RFC's a001…).
#[test]
fn rfc3501_section8_example_session() {
    let mut t = T::new();
    assert_eq!(t.c.state(), ConnState::Greeting);
    // Nothing is written before the greeting.
    let login =
        t.c.submit(Command::login("mrc", Secret::new("secret".into())));
    t.client("");
    t.server("* OK IMAP4rev1 Service Ready\r\n");
    assert!(matches!(
        &t.events[0],
        Event::Greeting {
            kind: GreetingKind::Ok,
            ..
        }
    ));
    t.client("$a LOGIN mrc secret\r\n");
    t.server("$a OK LOGIN completed\r\n");
    assert!(t.completion(login).0.is_ok());
    assert_eq!(t.c.state(), ConnState::Authenticated);

    let sel = t.c.submit(Command::select(inbox()));
    t.client("$b SELECT INBOX\r\n");
    t.server(
        "* 18 EXISTS\r\n* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
         * 2 RECENT\r\n* OK [UNSEEN 17] Message 17 is the first unseen message\r\n\
         * OK [UIDVALIDITY 3857529045] UIDs valid\r\n\
         $b OK [READ-WRITE] SELECT completed\r\n",
    );
    let (o, d) = t.completion(sel);
    assert!(o.is_ok());
    let CommandData::Select(mb) = d else {
        panic!("{d:?}")
    };
    assert_eq!(mb.exists, 18);
    assert_eq!(mb.recent, 2);
    assert_eq!(mb.unseen, Some(17));
    assert_eq!(mb.uid_validity.map(|v| v.get()), Some(3857529045));
    assert_eq!(mb.flags.len(), 5);
    assert!(!mb.read_only);
    assert_eq!(t.c.state(), ConnState::Selected);

    let f = t.c.submit(Command::Fetch {
        set: SeqSet::single(12).unwrap(),
        items: FetchItems::Full,
        modifiers: FetchModifiers::default(),
    });
    t.client("$c FETCH 12 FULL\r\n");
    t.server(
        "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" \
         RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
         \"IMAP4rev1 WG mtg summary and minutes\" \
         ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
         ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
         ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
         ((NIL NIL \"imap\" \"cac.washington.edu\")) \
         ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
         NIL NIL \"<B27397-0100000@cac.washington.edu>\") \
         BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n\
         $c OK FETCH completed\r\n",
    );
    let fetched: Vec<_> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Fetch { handle, fetch } => Some((*handle, fetch.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].0, Some(f));
    assert_eq!(fetched[0].1.rfc822_size(), Some(4286));
    assert!(fetched[0].1.envelope().is_some());
    assert_eq!(t.completion(f).1, CommandData::Fetch { count: 1 });

    let f2 = t.c.submit(seq_fetch(
        SeqSet::single(12).unwrap(),
        vec![CmdFetchItem::BodySection {
            peek: false,
            section: mailfold_proto::command::Section {
                part: Vec::new(),
                text: Some(mailfold_proto::command::SectionText::Header),
            },
            partial: None,
        }],
    ));
    t.client("$d FETCH 12 BODY[HEADER]\r\n");
    t.server(
        "* 12 FETCH (BODY[HEADER] {34}\r\nDate: Wed, 17 Jul 1996\r\nSubj: x\r\n\r\n)\r\n\
         $d OK FETCH completed\r\n",
    );
    assert!(t.completion(f2).0.is_ok());

    let st = t.c.submit(Command::Store {
        set: SeqSet::single(12).unwrap(),
        store: StoreFlags {
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Deleted],
        },
        unchanged_since: None,
    });
    t.client("$e STORE 12 +FLAGS (\\Deleted)\r\n");
    t.server("* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n$e OK +FLAGS completed\r\n");
    assert_eq!(t.completion(st).1, CommandData::Fetch { count: 1 });

    let lo = t.c.submit(Command::Logout);
    t.client("$f LOGOUT\r\n");
    t.server("* BYE IMAP4rev1 server terminating connection\r\n$f OK LOGOUT completed\r\n");
    assert!(t.completion(lo).0.is_ok());
    assert_eq!(t.c.state(), ConnState::Logout);
    assert!(t.c.is_closed());
    assert_eq!(t.closed_error(), None, "LOGOUT is a clean close");
}

#[test]
fn c0001_tags_are_four_random_chars_unique_in_flight() {
    let mut t = T::ready(true);
    let mut handles = Vec::new();
    for i in 0..200u32 {
        handles.push(t.c.submit(Command::Status {
            mailbox: Mailbox::from_utf8(&format!("box{i}")),
            items: vec![CmdStatusItem::Messages],
        }));
    }
    let sent = t.sent();
    let tags: Vec<&str> = sent.lines().map(|l| &l[..4]).collect();
    assert_eq!(tags.len(), 200, "all 200 STATUS commands pipelined");
    let unique: std::collections::HashSet<_> = tags.iter().collect();
    assert_eq!(unique.len(), 200, "tags unique among commands in flight");
    for tag in tags {
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
    // Same seed, same tags: transcripts are reproducible.
    let mut t2 = T::ready(true);
    t2.c.submit(Command::Noop);
    let mut t3 = T::ready(true);
    t3.c.submit(Command::Noop);
    assert_eq!(t2.sent(), t3.sent());
}

#[test]
fn v0001_untagged_data_inside_another_commands_responses_is_applied() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 3 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n$a OK [READ-WRITE] done\r\n");
    let l =
        t.c.submit(Command::List(List::new(Mailbox::from_wire(""), "*")));
    t.client("$b LIST \"\" *\r\n");
    // EXISTS and EXPUNGE arrive in the middle of the LIST response stream.
    t.server(
        "* LIST () \".\" INBOX\r\n* 4 EXISTS\r\n* LIST () \".\" Sent\r\n* 1 EXPUNGE\r\n\
         $b OK LIST done\r\n",
    );
    let (o, d) = t.completion(l);
    assert!(o.is_ok());
    let CommandData::List { mailboxes, .. } = d else {
        panic!()
    };
    assert_eq!(mailboxes.len(), 2);
    assert_eq!(t.c.session().mailbox.as_ref().unwrap().exists, 3);
    assert!(t.events.contains(&Event::Mailbox(MailboxChange::Exists(4))));
}

/// Seeds C0002 and C0004: all five kinds of mailbox data are recorded.
#[test]
fn c0002_exists_recent_flags_expunge_and_size_are_recorded() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server(
        "* 5 EXISTS\r\n* 1 RECENT\r\n* FLAGS (\\Seen \\Deleted $Junk)\r\n\
         * OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] ok\r\n* OK [UIDVALIDITY 9] ok\r\n\
         * OK [UIDNEXT 60] ok\r\n* OK [HIGHESTMODSEQ 715] ok\r\n$a OK [READ-WRITE] ok\r\n",
    );
    t.server(
        "* 6 EXISTS\r\n* 2 RECENT\r\n* FLAGS (\\Seen \\Deleted $Junk $Label)\r\n* 2 EXPUNGE\r\n",
    );
    let mb = t.c.session().mailbox.clone().unwrap();
    assert_eq!(mb.exists, 5, "6 EXISTS then one EXPUNGE");
    assert_eq!(mb.recent, 2);
    assert_eq!(mb.flags.len(), 4);
    assert_eq!(mb.uid_next, Some(60));
    assert_eq!(mb.highest_modseq, Some(715));
    assert_eq!(
        mb.permanent_flags,
        Some(vec![Flag::Seen, Flag::Deleted, Flag::MayCreate])
    );
}

#[test]
fn c0004_vanished_is_recorded_with_qresync() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 4 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n$a OK ok\r\n");
    t.c.submit(uid_fetch(
        UidSet::range(1, 100).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.client("$b UID FETCH 1:100 FLAGS\r\n");
    t.server(
        "* 1 FETCH (UID 10 FLAGS ())\r\n* 2 FETCH (UID 20 FLAGS ())\r\n\
         * 3 FETCH (UID 30 FLAGS ())\r\n* 4 FETCH (UID 40 FLAGS ())\r\n$b OK ok\r\n",
    );
    t.server("* VANISHED 20:30\r\n");
    let mb = t.c.session().mailbox.clone().unwrap();
    assert_eq!(mb.exists, 2);
    assert_eq!(mb.uid_of(2), Some(40));
    // EARLIER reports history: no count changes.
    t.server("* VANISHED (EARLIER) 1:5\r\n");
    assert_eq!(t.c.session().mailbox.as_ref().unwrap().exists, 2);
}

#[test]
fn expunge_renumbers_the_seq_to_uid_map() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 3 EXISTS\r\n$a OK ok\r\n");
    t.c.submit(seq_fetch(
        SeqSet::range(1, 3).unwrap(),
        vec![CmdFetchItem::Uid],
    ));
    t.client("$b FETCH 1:3 UID\r\n");
    t.server("* 1 FETCH (UID 5)\r\n* 2 FETCH (UID 8)\r\n* 3 FETCH (UID 13)\r\n$b OK ok\r\n");
    t.server("* 1 EXPUNGE\r\n");
    let mb = t.c.session().mailbox.clone().unwrap();
    assert_eq!(mb.uid_of(1), Some(8));
    assert_eq!(mb.uid_of(2), Some(13));
    assert_eq!(mb.uid_of(3), None);
    assert!(t.events.contains(&Event::Mailbox(MailboxChange::Expunged {
        seq: 1,
        uid: Some(5)
    })));
}

/// Seed V0023 (engine part): another client's flag change arrives as an unsolicited FETCH,
/// even while our own UID FETCH of other messages is running.
#[test]
fn v0023_unsolicited_fetch_from_another_client_is_surfaced() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 3 EXISTS\r\n$a OK ok\r\n");
    t.server("* 2 FETCH (UID 7 FLAGS (\\Seen))\r\n");
    let h = t.c.submit(uid_fetch(
        UidSet::single(9).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.client("$b UID FETCH 9 FLAGS\r\n");
    t.server("* 1 FETCH (UID 4 FLAGS (\\Flagged))\r\n* 3 FETCH (UID 9 FLAGS ())\r\n$b OK ok\r\n");
    let owners: Vec<_> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Fetch { handle, fetch } => Some((*handle, fetch.uid())),
            _ => None,
        })
        .collect();
    assert_eq!(
        owners,
        vec![(None, Some(7)), (None, Some(4)), (Some(h), Some(9))]
    );
    assert_eq!(t.c.session().mailbox.as_ref().unwrap().uid_of(2), Some(7));
}

/// Seed V0024: untagged data while no command is in progress, and during IDLE, is applied.
#[test]
fn v0024_untagged_data_between_commands_and_during_idle_is_applied() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 2 EXISTS\r\n$a OK ok\r\n");
    // Between commands.
    t.server("* 3 EXISTS\r\n");
    assert_eq!(t.c.session().mailbox.as_ref().unwrap().exists, 3);
    // During IDLE.
    let idle = t.c.submit(Command::Idle);
    t.client("$b IDLE\r\n");
    t.server("+ idling\r\n");
    assert!(t.events.contains(&Event::IdleStarted(idle)));
    t.server("* 4 EXISTS\r\n* 1 RECENT\r\n* 1 EXPUNGE\r\n");
    let mb = t.c.session().mailbox.clone().unwrap();
    assert_eq!(mb.exists, 3);
    assert_eq!(mb.recent, 1);
    t.c.idle_done(idle, t.now);
    t.client("DONE\r\n");
    t.server("$b OK IDLE terminated\r\n");
    assert!(t.completion(idle).0.is_ok());
}

/// Seed V0025: NOOP after the keepalive interval without traffic; IDLE re-issued before 29
/// minutes.
#[test]
fn v0025_keepalive_noop_and_idle_refresh_fire_on_time() {
    let mut t = T::ready(true);
    t.client("");
    let start = t.now;
    assert_eq!(t.c.poll_timeout(), Some(start + Duration::from_secs(600)));
    t.advance(Duration::from_secs(599));
    t.tick();
    t.client("");
    t.advance(Duration::from_secs(1));
    t.tick();
    t.client("$n NOOP\r\n");
    t.server("$n OK NOOP completed\r\n");
    assert!(
        t.completions().is_empty(),
        "the keepalive's completion is internal"
    );

    // IDLE: refreshed after 28 minutes (before 29), under a new tag, same handle.
    let idle = t.c.submit(Command::Idle);
    t.client("$i IDLE\r\n");
    t.server("+ idling\r\n");
    let idle_start = t.now;
    assert_eq!(
        t.c.poll_timeout(),
        Some(idle_start + Duration::from_secs(28 * 60))
    );
    t.advance(Duration::from_secs(28 * 60));
    t.tick();
    t.client("DONE\r\n");
    t.server("$i OK done\r\n");
    t.client("$j IDLE\r\n");
    assert!(
        t.completions().is_empty(),
        "a refresh does not complete the IDLE"
    );
    assert_ne!(t.tags["i"], t.tags["j"]);
    t.server("+ idling\r\n");
    t.c.idle_done(idle, t.now);
    t.client("DONE\r\n");
    t.server("$j OK done\r\n");
    assert!(t.completion(idle).0.is_ok());
}

#[test]
fn command_timeout_fails_a_silent_connection() {
    let mut t = T::ready(true);
    t.c.submit(Command::Noop);
    t.client("$a NOOP\r\n");
    let deadline = t.c.poll_timeout().unwrap();
    assert_eq!(deadline, t.now + Duration::from_secs(60));
    t.advance(Duration::from_secs(60));
    t.tick();
    assert!(matches!(t.closed_error(), Some(EngineError::Timeout(_))));
    assert!(t.c.is_closed());
}

#[test]
fn greeting_timeout_fails_a_mute_server() {
    let mut t = T::new();
    assert_eq!(t.c.poll_timeout(), Some(t.now + Duration::from_secs(60)));
    t.advance(Duration::from_secs(60));
    t.tick();
    assert!(matches!(t.closed_error(), Some(EngineError::Timeout(_))));
}

/// Seed V0026: independent commands go back to back; RFC 3501 5.5 barriers hold.
#[test]
fn v0026_commands_are_pipelined_within_rfc3501_5_5() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 9 EXISTS\r\n$a OK ok\r\n");

    // UID commands pipeline freely.
    t.c.submit(uid_fetch(
        UidSet::range(1, 5).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.c.submit(Command::UidStore {
        set: UidSet::single(3).unwrap(),
        store: StoreFlags {
            mode: StoreMode::Add,
            silent: true,
            flags: vec![Flag::Seen],
        },
        unchanged_since: None,
    });
    t.c.submit(Command::Search(Search::new(true, vec![SearchKey::Unseen])));
    t.client("$b UID FETCH 1:5 FLAGS\r\n$c UID STORE 3 +FLAGS.SILENT (\\Seen)\r\n$d UID SEARCH UNSEEN\r\n");
    t.server("$b OK\r\n$c OK\r\n$d OK\r\n");

    // FETCH + STORE + SEARCH by sequence number pipeline (no EXPUNGE may come during them).
    t.c.submit(seq_fetch(
        SeqSet::single(1).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.c.submit(Command::Search(Search::new(false, vec![SearchKey::All])));
    t.client("$e FETCH 1 FLAGS\r\n$f SEARCH ALL\r\n");
    t.server("$e OK\r\n$f OK\r\n");

    // NOOP may produce EXPUNGE: a following FETCH by number waits (RFC 3501 5.5 "FETCH + NOOP
    // + STORE" is invalid), but a UID FETCH does not.
    t.c.submit(Command::Noop);
    t.c.submit(seq_fetch(
        SeqSet::single(2).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.client("$g NOOP\r\n");
    t.server("* 1 EXPUNGE\r\n$g OK\r\n");
    t.client("$h FETCH 2 FLAGS\r\n");
    t.server("$h OK\r\n");

    // COPY + COPY is invalid without waiting (COPY may expunge? no, but it is not
    // EXPUNGE-free, so a second numbered COPY waits).
    t.c.submit(Command::Copy {
        set: SeqSet::single(1).unwrap(),
        mailbox: Mailbox::from_utf8("A"),
    });
    t.c.submit(Command::Copy {
        set: SeqSet::single(2).unwrap(),
        mailbox: Mailbox::from_utf8("B"),
    });
    t.client("$i COPY 1 A\r\n");
    t.server("$i OK\r\n");
    t.client("$j COPY 2 B\r\n");
    t.server("$j OK\r\n");

    // Barriers: nothing after SELECT until it completes, and SELECT waits for what is in
    // flight.
    t.c.submit(uid_fetch(
        UidSet::single(1).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.c.submit(Command::select(Mailbox::from_utf8("Other")));
    t.c.submit(uid_fetch(
        UidSet::single(2).unwrap(),
        vec![CmdFetchItem::Flags],
    ));
    t.client("$k UID FETCH 1 FLAGS\r\n");
    t.server("$k OK\r\n");
    t.client("$l SELECT Other\r\n");
    t.client("");
    t.server("$l OK\r\n");
    t.client("$m UID FETCH 2 FLAGS\r\n");
}

/// The RFC 3501 5.5 rule for every barrier command.
#[test]
fn v0026_state_changing_commands_are_barriers() {
    for (cmd, line) in [
        (Command::examine(inbox()), "EXAMINE INBOX"),
        (Command::Close, "CLOSE"),
        (Command::Unselect, "UNSELECT"),
        (Command::Idle, "IDLE"),
        (Command::StartTls, "STARTTLS"),
    ] {
        let mut t = T::ready(true);
        t.c.submit(Command::Noop);
        t.c.submit(cmd);
        t.c.submit(Command::Noop);
        t.client("$a NOOP\r\n");
        t.server("$a OK\r\n");
        t.client(&format!("$b {line}\r\n"));
        t.client("");
    }
}

/// Seeds V0033/V0035/V0065: capabilities from the CAPABILITY code after LOGIN; without a
/// code they are unknown (the caller asks), and a CAPABILITY response fills them.
#[test]
fn v0033_capabilities_refreshed_after_authentication() {
    let t = T::ready(true);
    let caps = t.c.session().capabilities.clone().unwrap();
    assert!(caps.has("IDLE"), "taken from the tagged OK's code");
    assert!(!caps.has("AUTH=PLAIN"), "pre-auth capabilities replaced");
}

#[test]
fn v0035_no_capability_code_after_login_means_unknown() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
    assert!(t
        .c
        .session()
        .capabilities
        .as_ref()
        .unwrap()
        .has("AUTH=PLAIN"));
    t.c.submit(Command::login("u", Secret::new("p".into())));
    t.client("$a LOGIN u p\r\n");
    t.server("$a OK done\r\n");
    assert!(t.c.session().capabilities.is_none());
    let h = t.c.submit(Command::Capability);
    t.client("$b CAPABILITY\r\n");
    t.server("* CAPABILITY IMAP4rev1 IDLE MOVE\r\n$b OK\r\n");
    let (_, d) = t.completion(h);
    let CommandData::Capability(c) = d else {
        panic!()
    };
    assert!(c.has("MOVE"));
    assert!(t.c.session().capabilities.as_ref().unwrap().has("idle"));
}

#[test]
fn v0065_capability_response_code_in_greeting_and_untagged_ok() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n");
    let caps = t.c.session().capabilities.clone().unwrap();
    assert!(caps.has("STARTTLS") && caps.has("LOGINDISABLED"));
    t.server("* OK [CAPABILITY IMAP4rev1 ID] changed\r\n");
    assert!(t.c.session().capabilities.as_ref().unwrap().has("ID"));
}

/// Seed V0036: SELECT needs EXISTS and UIDVALIDITY; everything else has defaults.
#[test]
fn v0036_select_result_carries_exists_and_uidvalidity() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 0 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n$a OK done\r\n");
    let CommandData::Select(mb) = t.completion(h).1 else {
        panic!()
    };
    assert_eq!(mb.exists, 0);
    assert_eq!(mb.uid_validity.map(|v| v.get()), Some(1));
    assert_eq!(mb.recent, 0);
}

/// Seed V0037: missing PERMANENTFLAGS means all flags; missing UIDVALIDITY is visible.
#[test]
fn v0037_missing_select_data_gets_defaults() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 2 EXISTS\r\n* FLAGS (\\Seen \\Deleted)\r\n$a OK done\r\n");
    let CommandData::Select(mb) = t.completion(h).1 else {
        panic!()
    };
    assert_eq!(mb.uid_validity, None);
    assert_eq!(mb.uid_next, None);
    assert_eq!(mb.permanent_flags, None);
    assert_eq!(
        mb.permanent_flags_or_all(),
        vec![Flag::Seen, Flag::Deleted, Flag::MayCreate]
    );
}

/// Seed V0038: READ-WRITE and READ-ONLY are recorded.
#[test]
fn v0038_read_write_and_read_only_are_recorded() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 1 EXISTS\r\n$a OK [READ-ONLY] done\r\n");
    assert!(t.c.session().mailbox.as_ref().unwrap().read_only);
    t.c.submit(Command::select(inbox()));
    t.client("$b SELECT INBOX\r\n");
    t.server("* 1 EXISTS\r\n$b OK [READ-WRITE] done\r\n");
    assert!(!t.c.session().mailbox.as_ref().unwrap().read_only);
    // EXAMINE is read-only even without a code.
    t.c.submit(Command::examine(inbox()));
    t.client("$c EXAMINE INBOX\r\n");
    t.server("* 1 EXISTS\r\n$c OK done\r\n");
    assert!(t.c.session().mailbox.as_ref().unwrap().read_only);
}

/// A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
#[test]
fn failed_select_deselects() {
    let mut t = T::ready(true);
    t.c.submit(Command::select(inbox()));
    t.client("$a SELECT INBOX\r\n");
    t.server("* 1 EXISTS\r\n$a OK done\r\n");
    t.c.submit(Command::select(Mailbox::from_utf8("Nope")));
    t.client("$b SELECT Nope\r\n");
    t.server("$b NO no such mailbox\r\n");
    assert_eq!(t.c.state(), ConnState::Authenticated);
    assert!(t.c.session().mailbox.is_none());
}

/// Seed V0063: ALERT text surfaces, marked with whether the connection was encrypted.
#[test]
fn v0063_alert_text_surfaces_with_encryption_flag() {
    let mut t = T::new();
    t.server("* OK [ALERT] cleartext alert\r\n");
    assert!(t.events.contains(&Event::Alert {
        text: "cleartext alert".into(),
        encrypted: false
    }));
    let mut t = T::with(Config::default(), true);
    t.server("* OK hi\r\n");
    t.c.submit(Command::Noop);
    t.client("$a NOOP\r\n");
    t.server("* NO [ALERT] quota nearly full\r\n$a OK [ALERT] really\r\n");
    assert!(t.events.contains(&Event::Alert {
        text: "quota nearly full".into(),
        encrypted: true
    }));
    assert!(t.events.contains(&Event::Alert {
        text: "really".into(),
        encrypted: true
    }));
}

/// Seed V0064: BYE text surfaces and ends the session with it.
#[test]
fn v0064_bye_text_is_in_the_error_that_ends_the_session() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::Noop);
    t.client("$a NOOP\r\n");
    t.server("* BYE Autologout; idle for too long\r\n");
    t.c.handle_eof(t.now);
    t.drain_events();
    assert!(t.events.contains(&Event::Bye {
        text: "Autologout; idle for too long".into()
    }));
    assert_eq!(
        t.closed_error(),
        Some(EngineError::Bye("Autologout; idle for too long".into()))
    );
    assert_eq!(t.completion(h).0, Outcome::Aborted);

    let mut t = T::new();
    t.server("* BYE too many connections\r\n");
    assert_eq!(
        t.closed_error(),
        Some(EngineError::Bye("too many connections".into()))
    );
}

/// Seed N2: LOGOUT waits for the tagged OK, bounded by the logout timeout.
#[test]
fn n2_logout_reads_the_tagged_ok_with_a_bounded_wait() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::Logout);
    t.client("$a LOGOUT\r\n");
    assert!(!t.c.is_closed());
    assert_eq!(t.c.poll_timeout(), Some(t.now + Duration::from_secs(5)));
    t.server("* BYE bye\r\n$a OK LOGOUT completed\r\n");
    assert!(t.completion(h).0.is_ok());
    assert!(t.c.is_closed());
    assert_eq!(t.closed_error(), None);

    let mut t = T::ready(true);
    t.c.submit(Command::Logout);
    t.client("$a LOGOUT\r\n");
    t.advance(Duration::from_secs(5));
    t.tick();
    assert!(matches!(t.closed_error(), Some(EngineError::Timeout(_))));
}

#[test]
fn starttls_stops_writing_and_discards_cleartext_state() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi\r\n");
    let h = t.c.submit(Command::StartTls);
    t.c.submit(Command::Capability);
    t.client("$a STARTTLS\r\n");
    t.server("$a OK begin TLS\r\n");
    assert!(t.events.contains(&Event::StartTls));
    assert!(t.completion(h).0.is_ok());
    t.client("");
    assert_eq!(t.c.poll_timeout(), None);
    t.c.tls_established(t.now);
    assert!(t.c.session().capabilities.is_none());
    assert!(t.c.session().encrypted);
    t.client("$b CAPABILITY\r\n");
    t.server("* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=SCRAM-SHA-256\r\n$b OK\r\n");
    assert!(t
        .c
        .session()
        .capabilities
        .as_ref()
        .unwrap()
        .has("AUTH=SCRAM-SHA-256"));
}

#[test]
fn starttls_response_injection_is_detected() {
    // Injected bytes in the same read as the OK.
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
    t.c.submit(Command::StartTls);
    t.client("$a STARTTLS\r\n");
    t.server("$a OK begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Injection(_))));
    // Injected bytes in a later read, before the handshake.
    let mut t = T::new();
    t.server("* OK hi\r\n");
    t.c.submit(Command::StartTls);
    t.client("$a STARTTLS\r\n");
    t.server("$a OK begin TLS\r\n");
    t.server("$a OK forged\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Injection(_))));
}

#[test]
fn starttls_answered_with_continuation_is_fatal() {
    let mut t = T::new();
    t.server("* OK hi\r\n");
    t.c.submit(Command::StartTls);
    t.client("$a STARTTLS\r\n");
    t.server("+ go ahead\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Protocol(_))));
}

#[test]
fn tagged_response_for_unknown_tag_is_fatal() {
    let mut t = T::new();
    t.server("* OK hi\r\n");
    t.server("zzzz OK forged before any command\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Protocol(_))));
}

#[test]
fn tagged_greeting_is_fatal() {
    let mut t = T::new();
    t.server("a001 OK hello\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Protocol(_))));
}

#[test]
fn preauth_greeting_enters_authenticated_state() {
    let mut t = T::new();
    t.server("* PREAUTH [CAPABILITY IMAP4rev1] welcome\r\n");
    assert_eq!(t.c.state(), ConnState::Authenticated);
}

#[test]
fn synchronizing_literal_waits_for_continuation() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1] hi\r\n");
    t.c.submit(Command::login("u", Secret::new("p".into())));
    t.client("$a LOGIN u p\r\n");
    t.server("$a OK [CAPABILITY IMAP4rev1] ok\r\n");
    let h = t.c.submit(Command::Append(Append {
        mailbox: inbox(),
        flags: vec![],
        internal_date: None,
        message: AppendData::Inline(b"Subject: x\r\n\r\nhi\r\n".to_vec()),
    }));
    let after = t.c.submit(Command::Noop);
    t.client("$b APPEND INBOX {18}\r\n");
    t.client("");
    t.server("+ Ready for literal data\r\n");
    t.client("Subject: x\r\n\r\nhi\r\n\r\n$c NOOP\r\n");
    t.server("$b OK [APPENDUID 1 5] done\r\n$c OK\r\n");
    let (o, _) = t.completion(h);
    assert!(matches!(o.code(), Some(Code::AppendUid { .. })));
    let _ = after;
}

#[test]
fn no_instead_of_continuation_fails_only_that_command() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1] hi\r\n");
    let h = t.c.submit(Command::Append(Append {
        mailbox: inbox(),
        flags: vec![],
        internal_date: None,
        message: AppendData::Streamed {
            len: 100_000_000,
            binary: false,
        },
    }));
    t.client("$a APPEND INBOX {100000000}\r\n");
    t.server("$a NO [OVERQUOTA] too big\r\n");
    assert!(matches!(t.completion(h).0, Outcome::No { .. }));
    assert!(!t.c.is_closed());
    t.c.submit(Command::Noop);
    t.client("$b NOOP\r\n");
}

#[test]
fn streamed_append_asks_the_driver_for_its_literal() {
    let mut t = T::ready(true);
    t.c.submit(Command::Append(Append {
        mailbox: inbox(),
        flags: vec![Flag::Seen],
        internal_date: None,
        message: AppendData::Streamed {
            len: 5,
            binary: false,
        },
    }));
    t.client("$a APPEND INBOX (\\Seen) {5}\r\n");
    t.server("+ go\r\n");
    t.client("<5>\r\n");
}

struct PlainIr;

#[test]
fn sasl_plain_with_sasl_ir_and_capability_code() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n");
    let creds = Credentials::password("tim", "tanstaaftanstaaf");
    let ctx = ClientContext::imap("localhost", 143);
    let m = new_mechanism(MechanismName::Plain, &creds, &ctx, &mut OsNonceSource).unwrap();
    let h = t.c.authenticate(m, true);
    t.client("$a AUTHENTICATE PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    t.server("$a OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n");
    assert!(t.completion(h).0.is_ok());
    assert_eq!(t.c.state(), ConnState::Authenticated);
    assert!(t.c.session().capabilities.as_ref().unwrap().has("IDLE"));
    let _ = PlainIr;
}

#[test]
fn sasl_continuations_are_base64_both_ways() {
    let mut t = T::new();
    t.server("* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] hi\r\n");
    let creds = Credentials::password("tim", "tanstaaftanstaaf");
    let ctx = ClientContext::imap("localhost", 143);
    let m = new_mechanism(MechanismName::CramMd5, &creds, &ctx, &mut OsNonceSource).unwrap();
    let h = t.c.authenticate(m, false);
    t.client("$a AUTHENTICATE CRAM-MD5\r\n");
    // RFC 2195's example challenge and answer.
    t.server("+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
    t.client("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    t.server("$a OK done\r\n");
    assert!(t.completion(h).0.is_ok());
    assert!(
        t.c.session().capabilities.is_none(),
        "no code: caller must ask"
    );
}

/// A mechanism that fails on the first challenge.
struct Failing;

impl Mechanism for Failing {
    fn name(&self) -> &'static str {
        "X-FAIL"
    }
    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        Ok(None)
    }
    fn step(&mut self, _c: &[u8]) -> Result<Response, SaslError> {
        Err(SaslError::ServerProofMismatch {
            mechanism: "X-FAIL",
        })
    }
    fn is_complete(&self) -> bool {
        false
    }
}

#[test]
fn sasl_mechanism_error_cancels_with_star() {
    let mut t = T::new();
    t.server("* OK hi\r\n");
    let h = t.c.authenticate(Box::new(Failing), false);
    t.client("$a AUTHENTICATE X-FAIL\r\n");
    t.server("+ \r\n");
    t.client("*\r\n");
    t.server("$a BAD cancelled\r\n");
    let (o, d) = t.completion(h);
    assert!(matches!(o, Outcome::Bad { .. }));
    let CommandData::Auth { sasl_error } = d else {
        panic!()
    };
    assert!(sasl_error.unwrap().is_server_proof_failure());
    assert_eq!(t.c.state(), ConnState::NotAuthenticated);
}

#[test]
fn sasl_ok_without_server_proof_is_fatal() {
    let mut t = T::new();
    t.server("* OK hi\r\n");
    t.c.authenticate(Box::new(Failing), false);
    t.client("$a AUTHENTICATE X-FAIL\r\n");
    t.server("$a OK welcome, impostor\r\n");
    assert!(matches!(t.closed_error(), Some(EngineError::Protocol(_))));
}

#[test]
fn streamed_fetch_bodies_are_chunk_events_tagged_with_the_handle() {
    let mut cfg = Config::default();
    cfg.parser.framing.max_inline_literal = 8;
    let mut t = T::with(cfg, true);
    t.server("* OK hi\r\n");
    t.c.submit(Command::login("u", Secret::new("p".into())));
    t.client("$a LOGIN u p\r\n");
    t.server("$a OK ok\r\n");
    t.c.submit(Command::select(inbox()));
    t.client("$b SELECT INBOX\r\n");
    t.server("* 1 EXISTS\r\n$b OK ok\r\n");
    let h = t.c.submit(uid_fetch(
        UidSet::single(4).unwrap(),
        vec![CmdFetchItem::body_peek()],
    ));
    t.client("$c UID FETCH 4 BODY.PEEK[]\r\n");
    t.server("* 1 FETCH (UID 4 BODY[] {20}\r\n0123456789");
    t.server("abcdefghij)\r\n$c OK\r\n");
    let mut body = Vec::new();
    let mut started = false;
    let mut ended = false;
    for e in &t.events {
        match e {
            Event::BodyStart { handle, part } => {
                assert_eq!(*handle, Some(h));
                assert_eq!(part.len, 20);
                started = true;
            }
            Event::BodyChunk { handle, data } => {
                assert_eq!(*handle, Some(h));
                body.extend_from_slice(data);
            }
            Event::BodyEnd { handle } => {
                assert_eq!(*handle, Some(h));
                ended = true;
            }
            _ => {}
        }
    }
    assert!(started && ended);
    assert_eq!(body, b"0123456789abcdefghij");
    assert_eq!(t.completion(h).1, CommandData::Fetch { count: 1 });
}

#[test]
fn malformed_response_poisons_only_itself() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::Noop);
    t.client("$a NOOP\r\n");
    t.server("* 1 FETCH (((((\r\n* 3 EXISTS\r\n$a OK\r\n");
    assert!(t.events.iter().any(|e| matches!(e, Event::Malformed(_))));
    assert!(t.completion(h).0.is_ok());
}

#[test]
fn eof_mid_command_aborts_pending_commands() {
    let mut t = T::ready(true);
    let h = t.c.submit(Command::Noop);
    t.client("$a NOOP\r\n");
    t.c.handle_eof(t.now);
    t.drain_events();
    assert_eq!(t.completion(h).0, Outcome::Aborted);
    assert_eq!(t.closed_error(), Some(EngineError::ConnectionClosed));
}

#[test]
fn status_and_search_results_are_typed() {
    let mut t = T::ready(true);
    let st = t.c.submit(Command::Status {
        mailbox: Mailbox::from_utf8("Sent"),
        items: vec![CmdStatusItem::Messages, CmdStatusItem::UidNext],
    });
    t.client("$a STATUS Sent (MESSAGES UIDNEXT)\r\n");
    t.server("* STATUS Sent (MESSAGES 3 UIDNEXT 44)\r\n$a OK\r\n");
    let CommandData::Status(Some(s)) = t.completion(st).1 else {
        panic!()
    };
    assert_eq!(s.messages(), Some(3));
    assert_eq!(s.uid_next(), Some(44));

    t.c.submit(Command::select(inbox()));
    t.client("$b SELECT INBOX\r\n");
    t.server("$b OK\r\n");
    let se =
        t.c.submit(Command::Search(Search::new(true, vec![SearchKey::Unseen])));
    t.client("$c UID SEARCH UNSEEN\r\n");
    t.server("* SEARCH 4 9 12\r\n$c OK\r\n");
    let CommandData::Search(r) = t.completion(se).1 else {
        panic!()
    };
    assert_eq!(r.ids, vec![4, 9, 12]);
}
