//! Which engine events are NOTIFY's reports (RFC 5465): [`Notice::of`], defined here beside
//! the [`Event`]s it reads, so that `crate::notify` (the request and the report types) needs
//! nothing from the engine.

use crate::notify::{is_overflow, Notice};
use crate::response::{Response, StatusKind};

use super::Event;

impl<'a> Notice<'a> {
    /// The NOTIFY report `event` carries, if it is one.
    pub fn of(event: &'a Event) -> Option<Notice<'a>> {
        match event {
            Event::Untagged(Response::MailboxStatus(st)) => Some(Notice::Status(st)),
            Event::Untagged(Response::List(l)) => Some(Notice::MailboxName(l)),
            Event::Untagged(Response::Status(s))
                if s.kind == StatusKind::Ok && s.code.as_ref().is_some_and(is_overflow) =>
            {
                Some(Notice::Overflow)
            }
            Event::Mailbox(_) | Event::Fetch { handle: None, .. } => Some(Notice::Selected),
            _ => None,
        }
    }
}
