//! NOTIFY (RFC 5465): the request's exact bytes and the rules its constructors enforce, and
//! transcripts of what a server sends once it is on (untagged STATUS and LIST between
//! commands and during IDLE, the selected mailbox's EXPUNGE and FETCH, the overflow warning),
//! as Dovecot 2.3 sends them.

use std::time::Instant;

use mailfold_proto::command::Command;
use mailfold_proto::core::{Mailbox, Tag};
use mailfold_proto::encode::{encode, EncodeCaps, EncodeError};
use mailfold_proto::engine::{Client, Config, Event, Transmit};
use mailfold_proto::notify::{EventGroup, Notice, Notify, NotifyEvent, NotifyFilter};
use mailfold_proto::response::ListExtended;
use mailfold_sasl::Secret;

use NotifyEvent::{FlagChange, MailboxName, MessageExpunge, MessageNew};

fn enc(cmd: &Command) -> Result<String, EncodeError> {
    let e = encode(&Tag::new("a001").unwrap(), cmd, &EncodeCaps::default())?;
    Ok(String::from_utf8(e.to_bytes().unwrap()).unwrap())
}

#[test]
fn notify_set_and_none_are_encoded_as_rfc5465_section_8() {
    assert_eq!(
        enc(&Command::Notify(Notify::every_personal_change())).unwrap(),
        "a001 NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
         (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n"
    );
    assert_eq!(
        enc(&Command::Notify(Notify::None)).unwrap(),
        "a001 NOTIFY NONE\r\n"
    );
    let groups = vec![
        EventGroup::new(
            NotifyFilter::Subtree(vec![Mailbox::from_utf8("Work"), Mailbox::from_utf8("a b")]),
            &[MessageNew, MessageExpunge],
        )
        .unwrap(),
        EventGroup::new(NotifyFilter::Inboxes, &[MailboxName]).unwrap(),
        EventGroup::none(NotifyFilter::Mailboxes(vec![Mailbox::from_utf8("Spam")])).unwrap(),
    ];
    assert_eq!(
        enc(&Command::Notify(Notify::set(true, groups).unwrap())).unwrap(),
        "a001 NOTIFY SET STATUS (subtree (Work \"a b\") (MessageNew MessageExpunge)) \
         (inboxes (MailboxName)) (mailboxes (Spam) NONE)\r\n"
    );
    // The fields are public, so the encoder checks the empty case itself.
    assert!(matches!(
        enc(&Command::Notify(Notify::Set {
            status: false,
            groups: vec![]
        })),
        Err(EncodeError::Empty { .. })
    ));
}

#[test]
fn requests_rfc5465_forbids_are_refused() {
    let personal = NotifyFilter::Personal;
    assert!(EventGroup::new(personal.clone(), &[]).is_err());
    assert!(EventGroup::new(personal.clone(), &[MessageNew]).is_err());
    assert!(EventGroup::new(personal.clone(), &[MessageExpunge]).is_err());
    assert!(EventGroup::new(personal.clone(), &[FlagChange]).is_err());
    assert!(EventGroup::new(personal.clone(), &[MailboxName, MailboxName]).is_err());
    assert!(EventGroup::new(NotifyFilter::Selected, &[MailboxName]).is_err());
    assert!(EventGroup::new(NotifyFilter::Mailboxes(vec![]), &[MailboxName]).is_err());
    assert!(EventGroup::none(NotifyFilter::Subtree(vec![])).is_err());
    assert!(Notify::set(false, vec![]).is_err());
    let sel = || EventGroup::new(NotifyFilter::Selected, &[MessageNew, MessageExpunge]).unwrap();
    let delayed =
        EventGroup::new(NotifyFilter::SelectedDelayed, &[MessageNew, MessageExpunge]).unwrap();
    assert!(Notify::set(false, vec![sel(), delayed]).is_err());
    assert!(Notify::set(false, vec![sel(), sel()]).is_err());
    assert!(EventGroup::new(personal, &[MessageNew, MessageExpunge, FlagChange]).is_ok());
}

/// A client past the greeting and LOGIN, with the capabilities Dovecot 2.3 reports.
struct T {
    c: Client,
    now: Instant,
    events: Vec<Event>,
}

impl T {
    fn ready() -> T {
        let now = Instant::now();
        let mut t = T {
            c: Client::new(Config::default(), true, now),
            now,
            events: Vec::new(),
        };
        t.server("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready\r\n");
        t.c.submit(Command::login("u", Secret::new("p".into())));
        let tag = t.tag_of("LOGIN u p\r\n");
        t.server(&format!(
            "{tag} OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE NOTIFY] Logged in\r\n"
        ));
        t.events.clear();
        t
    }

    fn server(&mut self, text: &str) {
        self.c.handle_input(text.as_bytes(), self.now);
        while let Some(e) = self.c.poll_event() {
            self.events.push(e);
        }
    }

    fn sent(&mut self) -> String {
        let mut out = String::new();
        while let Some(t) = self.c.poll_transmit(self.now) {
            if let Transmit::Data(d) = t {
                out.push_str(&String::from_utf8_lossy(&d));
            }
        }
        out
    }

    /// The tag of the one command now sent, which must end with `rest`.
    fn tag_of(&mut self, rest: &str) -> String {
        let s = self.sent();
        let (tag, line) = s.split_once(' ').unwrap();
        assert_eq!(line, rest, "client sent {s:?}");
        tag.to_owned()
    }

    fn notices(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(Notice::of)
            .map(|n| match n {
                Notice::Status(st) => format!(
                    "status {} {:?} {:?} {:?}",
                    st.mailbox.to_utf8().unwrap(),
                    st.messages(),
                    st.uid_next(),
                    st.highest_modseq()
                ),
                Notice::MailboxName(l) => {
                    let old = l.extended.iter().find_map(|x| match x {
                        ListExtended::OldName(m) => Some(m.to_utf8().unwrap()),
                        _ => None,
                    });
                    format!("name {} (was {old:?})", l.mailbox.to_utf8().unwrap())
                }
                Notice::Selected => "selected".into(),
                Notice::Overflow => "overflow".into(),
            })
            .collect()
    }
}

#[test]
fn dovecot_notifications_between_commands_and_during_idle_are_surfaced() {
    let mut t = T::ready();
    let h = t.c.submit(Command::Notify(Notify::every_personal_change()));
    let tag = t.tag_of(
        "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
         (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n",
    );
    t.server(&format!(
        "{tag} OK NOTIFY completed (0.001 + 0.000 secs).\r\n"
    ));
    assert!(t
        .events
        .iter()
        .any(|e| matches!(e, Event::Completed(c) if c.handle == h && c.outcome.is_ok())));
    t.events.clear();

    // No command in progress: Dovecot sends them at once (RFC 5465 allows it).
    t.server("* STATUS Work (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n");
    let idle = t.c.submit(Command::Idle);
    let tag = t.tag_of("IDLE\r\n");
    t.server("+ idling\r\n");
    // A flag change elsewhere: only HIGHESTMODSEQ moves (with CONDSTORE enabled).
    t.server("* STATUS Work (HIGHESTMODSEQ 6)\r\n");
    t.server("* LIST () \".\" New\r\n");
    t.server("* LIST () \".\" Newer (\"OLDNAME\" (New))\r\n");
    t.server("* LIST (\\NonExistent) \".\" Gone\r\n");
    t.server("* OK [NOTIFICATIONOVERFLOW] ...\r\n");
    t.server("* OK Still here\r\n");
    t.c.idle_done(idle, t.now);
    assert_eq!(t.sent(), "DONE\r\n");
    t.server(&format!("{tag} OK Idle completed.\r\n"));
    assert_eq!(
        t.notices(),
        [
            "status Work Some(2) Some(3) None",
            "status Work None None Some(6)",
            "name New (was None)",
            "name Newer (was Some(\"New\"))",
            "name Gone (was None)",
            "overflow",
        ]
    );
}

#[test]
fn the_selected_mailbox_reports_as_ever_and_notify_none_ends_it() {
    let mut t = T::ready();
    t.c.submit(Command::examine(Mailbox::from_utf8("INBOX")));
    let tag = t.tag_of("EXAMINE INBOX\r\n");
    t.server(&format!(
        "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n{tag} OK [READ-ONLY] done\r\n"
    ));
    t.c.submit(Command::Notify(Notify::every_personal_change()));
    let tag = t.tag_of(
        "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
         (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n",
    );
    t.server(&format!("{tag} OK done\r\n"));
    t.events.clear();
    t.server("* 1 FETCH (FLAGS (\\Seen))\r\n* 2 EXPUNGE\r\n* 2 EXISTS\r\n");
    assert_eq!(t.notices(), ["selected", "selected", "selected"]);
    t.events.clear();
    // A NOTIFY is a barrier: nothing is pipelined behind it.
    t.c.submit(Command::Notify(Notify::None));
    t.c.submit(Command::Noop);
    let tag = t.tag_of("NOTIFY NONE\r\n");
    assert_eq!(t.sent(), "");
    t.server(&format!("{tag} OK done\r\n"));
    t.tag_of("NOOP\r\n");
}

#[test]
fn a_refused_notify_completes_with_the_servers_text() {
    let mut t = T::ready();
    let h = t.c.submit(Command::Notify(Notify::every_personal_change()));
    let tag = t.tag_of(
        "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
         (personal (MessageNew MessageExpunge FlagChange MailboxName))\r\n",
    );
    t.server(&format!(
        "{tag} NO [BADEVENT (MessageNew MessageExpunge)] unsupported\r\n"
    ));
    let c = t
        .events
        .iter()
        .find_map(|e| match e {
            Event::Completed(c) if c.handle == h => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!c.outcome.is_ok());
    assert!(t.notices().is_empty());
}
