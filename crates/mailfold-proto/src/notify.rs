//! The NOTIFY extension (RFC 5465): one command that asks the server to report changes in
//! mailboxes other than the selected one, and the typed view of what it then sends.
//!
//! The command is [`crate::command::Command::Notify`] with a [`Notify`] built here; the
//! constructors refuse the event combinations RFC 5465 section 5 forbids, so an invalid
//! request cannot be written. What the server sends back needs no new response syntax: a
//! change in a mailbox that is not selected arrives as an untagged `STATUS` (section 5.2–5.3),
//! a created, deleted or renamed mailbox as an untagged `LIST` (section 5.4, with the
//! `OLDNAME` extended item for a rename), and changes to the selected mailbox as the usual
//! `EXISTS`/`EXPUNGE`/`FETCH`. The engine surfaces the first two as
//! [`crate::engine::Event::Untagged`] when no command claims them; [`Notice::of`] tells a
//! driver which events are NOTIFY's reports, including the `NOTIFICATIONOVERFLOW` warning
//! (section 5.8) after which the server has stopped notifying and the client must assume it
//! missed changes. `Notice::of` reads the engine's events, so it is defined beside them (in
//! the engine); this module stays below the engine and the command types that carry a
//! [`Notify`].

use crate::core::Mailbox;
use crate::response::{Code, MailboxList, MailboxStatus};

/// The events a NOTIFY event group can ask for (RFC 5465 section 5). `MessageNew` is sent
/// without its optional fetch attributes: a sync client fetches what it needs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A message was added (section 5.2).
    MessageNew,
    /// A message was expunged (section 5.2).
    MessageExpunge,
    /// A message's flags changed (section 5.3).
    FlagChange,
    /// A message's annotations changed (section 5.3).
    AnnotationChange,
    /// A mailbox was created, deleted or renamed (section 5.4).
    MailboxName,
    /// A mailbox was subscribed or unsubscribed (section 5.5).
    SubscriptionChange,
}

impl NotifyEvent {
    /// The event's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::MessageNew => "MessageNew",
            NotifyEvent::MessageExpunge => "MessageExpunge",
            NotifyEvent::FlagChange => "FlagChange",
            NotifyEvent::AnnotationChange => "AnnotationChange",
            NotifyEvent::MailboxName => "MailboxName",
            NotifyEvent::SubscriptionChange => "SubscriptionChange",
        }
    }

    fn is_message_event(self) -> bool {
        matches!(
            self,
            NotifyEvent::MessageNew
                | NotifyEvent::MessageExpunge
                | NotifyEvent::FlagChange
                | NotifyEvent::AnnotationChange
        )
    }
}

/// Which mailboxes an event group covers (RFC 5465 section 6, `filter-mailboxes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyFilter {
    /// The selected mailbox.
    Selected,
    /// The selected mailbox, with expunges held back until a command allows them (6.1).
    SelectedDelayed,
    /// Every mailbox the server considers an inbox of the user.
    Inboxes,
    /// Every mailbox in the user's personal namespaces.
    Personal,
    /// Every subscribed mailbox.
    Subscribed,
    /// These mailboxes and everything below them (at least one).
    Subtree(Vec<Mailbox>),
    /// Exactly these mailboxes (at least one).
    Mailboxes(Vec<Mailbox>),
}

impl NotifyFilter {
    fn is_selected(&self) -> bool {
        matches!(self, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
    }
}

/// One `(filter events)` group. Build it with [`EventGroup::new`] or [`EventGroup::none`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventGroup {
    filter: NotifyFilter,
    /// Empty: `NONE` (no events for these mailboxes).
    events: Vec<NotifyEvent>,
}

/// A [`Notify`] request RFC 5465 forbids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyError(&'static str);

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid NOTIFY request: {}", self.0)
    }
}

impl std::error::Error for NotifyError {}

impl EventGroup {
    /// A group asking for `events` in the mailboxes of `filter`. Refused, as RFC 5465
    /// section 5 requires: no events (use [`EventGroup::none`]); `MessageNew` without
    /// `MessageExpunge` or the reverse; `FlagChange` or `AnnotationChange` without both;
    /// a mailbox event for the selected mailbox (6.1); an empty mailbox list; a repeated
    /// event.
    pub fn new(filter: NotifyFilter, events: &[NotifyEvent]) -> Result<EventGroup, NotifyError> {
        if events.is_empty() {
            return Err(NotifyError("an event group needs at least one event"));
        }
        for (i, e) in events.iter().enumerate() {
            if events[..i].contains(e) {
                return Err(NotifyError("an event is named twice"));
            }
        }
        let has = |e| events.contains(&e);
        if has(NotifyEvent::MessageNew) != has(NotifyEvent::MessageExpunge) {
            return Err(NotifyError(
                "MessageNew and MessageExpunge must be asked for together",
            ));
        }
        if (has(NotifyEvent::FlagChange) || has(NotifyEvent::AnnotationChange))
            && !has(NotifyEvent::MessageNew)
        {
            return Err(NotifyError(
                "FlagChange and AnnotationChange need MessageNew and MessageExpunge",
            ));
        }
        if filter.is_selected() && events.iter().any(|e| !e.is_message_event()) {
            return Err(NotifyError(
                "the selected mailbox takes message events only",
            ));
        }
        if let NotifyFilter::Subtree(m) | NotifyFilter::Mailboxes(m) = &filter {
            if m.is_empty() {
                return Err(NotifyError("a mailbox list needs at least one mailbox"));
            }
        }
        Ok(EventGroup {
            filter,
            events: events.to_vec(),
        })
    }

    /// A group that turns events off for the mailboxes of `filter` (`events = NONE`).
    pub fn none(filter: NotifyFilter) -> Result<EventGroup, NotifyError> {
        if let NotifyFilter::Subtree(m) | NotifyFilter::Mailboxes(m) = &filter {
            if m.is_empty() {
                return Err(NotifyError("a mailbox list needs at least one mailbox"));
            }
        }
        Ok(EventGroup {
            filter,
            events: Vec::new(),
        })
    }

    /// The mailboxes covered.
    pub fn filter(&self) -> &NotifyFilter {
        &self.filter
    }

    /// The events asked for; empty for `NONE`.
    pub fn events(&self) -> &[NotifyEvent] {
        &self.events
    }
}

/// The argument of `NOTIFY` (RFC 5465 section 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notify {
    /// `NOTIFY NONE`: stop all notifications.
    None,
    /// `NOTIFY SET [STATUS] groups…`. Build it with [`Notify::set`].
    Set {
        /// Ask for an initial `STATUS` of every covered mailbox (section 3).
        status: bool,
        /// The event groups, at least one.
        groups: Vec<EventGroup>,
    },
}

impl Notify {
    /// `NOTIFY SET`, refused with no group or with two groups for the selected mailbox
    /// (section 6: one filter may not be named twice).
    pub fn set(status: bool, groups: Vec<EventGroup>) -> Result<Notify, NotifyError> {
        if groups.is_empty() {
            return Err(NotifyError("NOTIFY SET needs at least one event group"));
        }
        if groups.iter().filter(|g| g.filter.is_selected()).count() > 1 {
            return Err(NotifyError("the selected mailbox is named twice"));
        }
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].iter().any(|o| o.filter == g.filter) {
                return Err(NotifyError("a filter is named twice"));
            }
        }
        Ok(Notify::Set { status, groups })
    }

    /// What a mirror needs to hear about: new, expunged and re-flagged messages and renamed,
    /// created or deleted mailboxes in every personal mailbox, and, when a mailbox is
    /// selected, the same message events for it as ordinary untagged responses.
    pub fn every_personal_change() -> Notify {
        let msg = [
            NotifyEvent::MessageNew,
            NotifyEvent::MessageExpunge,
            NotifyEvent::FlagChange,
        ];
        let all = [
            NotifyEvent::MessageNew,
            NotifyEvent::MessageExpunge,
            NotifyEvent::FlagChange,
            NotifyEvent::MailboxName,
        ];
        Notify::Set {
            status: false,
            groups: vec![
                EventGroup {
                    filter: NotifyFilter::Selected,
                    events: msg.to_vec(),
                },
                EventGroup {
                    filter: NotifyFilter::Personal,
                    events: all.to_vec(),
                },
            ],
        }
    }
}

/// A report NOTIFY makes, as the engine surfaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// A mailbox other than the selected one changed: new, expunged or re-flagged messages
    /// (section 5.2–5.3).
    Status(&'a MailboxStatus),
    /// A mailbox was created, deleted (`\NonExistent`) or renamed (`OLDNAME`) (section 5.4).
    MailboxName(&'a MailboxList),
    /// The selected mailbox changed (EXISTS, EXPUNGE, VANISHED, FLAGS) or another client
    /// changed a message's flags in it (unsolicited FETCH).
    Selected,
    /// `NOTIFICATIONOVERFLOW` (section 5.8): the server could not keep up and has stopped
    /// sending notifications as after `NOTIFY NONE`; changes may have been missed.
    Overflow,
}

/// Whether a response code is RFC 5465's `NOTIFICATIONOVERFLOW`.
pub fn is_overflow(code: &Code) -> bool {
    matches!(code, Code::Other { name, .. } if name.eq_ignore_ascii_case("NOTIFICATIONOVERFLOW"))
}
