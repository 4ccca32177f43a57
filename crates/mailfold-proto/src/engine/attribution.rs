//! Which command a FETCH response answers.
//!
//! A `* n FETCH (…)` carries no tag, so the same bytes may answer our FETCH or STORE, or report
//! another client's flag change (seeds V0023, V0024). Crediting an unsolicited response to a
//! command would hand the caller data it did not ask for as if it had; the rules below use
//! everything the protocol guarantees to tell them apart:
//!
//! 1. **Items.** An unsolicited FETCH only ever carries FLAGS, UID and MODSEQ (RFC 3501 7.4.2
//!    "unilateral", RFC 7162 3.2.4). A response with any other item (a body, ENVELOPE,
//!    RFC822.SIZE, …) is a command's answer, and only a command that asked for such items
//!    can own it. A response of FLAGS/UID/MODSEQ only is credited to a command that asked for
//!    FLAGS (or, lacking FLAGS, to one that asked for nothing but UID/MODSEQ). So a bare
//!    `FLAGS` response during a `BODY.PEEK[]` fetch is unsolicited.
//! 2. **UID.** Every FETCH caused by a UID command carries UID (RFC 3501 6.4.8). A response
//!    without one is not a UID command's, except when it carries requested non-flag data (a
//!    broken server that dropped UID still sent what was asked).
//! 3. **Set membership.** The UID (for UID commands) or the sequence number (otherwise) must
//!    be in the command's set. `*` stands for the message with the highest sequence number,
//!    and `n:*` for everything from `n` plus that message (RFC 9051 9, `seq-range`: when `n`
//!    exceeds the largest number, the largest is meant).
//!
//! What remains ambiguous, and is credited to the command: an unsolicited FLAGS change for a
//! message inside the set of a command that asked for FLAGS. The data is then the message's
//! current flags either way, so the caller loses nothing by the attribution.

use crate::command::{FetchItem as Want, FetchItems};
use crate::response::{Fetch, FetchItem};
use crate::seqset::{SeqSet, Star, UidSet};

/// What a FETCH-producing command asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wants {
    /// FLAGS was requested (or the command is a non-silent STORE).
    pub flags: bool,
    /// Some item other than FLAGS, UID and MODSEQ was requested.
    pub other: bool,
}

impl Wants {
    pub(crate) fn of(items: &FetchItems) -> Wants {
        match items {
            // ALL, FAST and FULL all include FLAGS and more (RFC 3501 6.4.5).
            FetchItems::All | FetchItems::Fast | FetchItems::Full => Wants {
                flags: true,
                other: true,
            },
            FetchItems::Items(list) => {
                let mut w = Wants::default();
                for i in list {
                    match i {
                        Want::Flags => w.flags = true,
                        Want::Uid | Want::ModSeq => {}
                        _ => w.other = true,
                    }
                }
                w
            }
        }
    }

    /// A STORE without `.SILENT` answers with the new FLAGS.
    pub(crate) fn store() -> Wants {
        Wants {
            flags: true,
            other: false,
        }
    }
}

/// The messages a command names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// By UID (UID FETCH, UID STORE).
    Uids(UidSet),
    /// By sequence number (FETCH, STORE).
    Seqs(SeqSet),
}

/// A command that FETCH responses may answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    pub target: Target,
    pub wants: Wants,
}

/// True when `n` is named by `set`: explicitly, or by its `*` form given that the message in
/// question is (`is_last`) or is not the one with the highest sequence number.
fn in_set(ranges_contain: bool, star: Option<Star>, n: u32, is_last: bool) -> bool {
    ranges_contain
        || match star {
            None => false,
            Some(Star::Largest) => is_last,
            Some(Star::From(from)) => n >= from || is_last,
        }
}

impl Scope {
    /// Rule 3 for a streamed body literal, whose UID may only follow it: the sequence number
    /// decides for sequence commands; a UID command is given the benefit of the doubt.
    fn may_contain_seq(&self, seq: u32, exists: u32) -> bool {
        match &self.target {
            Target::Seqs(set) => in_set(set.contains(seq), set.star(), seq, seq == exists),
            Target::Uids(_) => true,
        }
    }

    /// Whether a complete FETCH response answers this command (rules 1–3 of the module docs).
    /// `exists` is the mailbox size, to resolve `*`.
    pub(crate) fn owns(&self, f: &Fetch, exists: u32) -> bool {
        let mut has_flags = false;
        let mut has_other = false;
        for item in &f.items {
            match item {
                FetchItem::Flags(_) => has_flags = true,
                FetchItem::Uid(_) | FetchItem::ModSeq(_) => {}
                _ => has_other = true,
            }
        }
        let items_match = if has_other {
            self.wants.other
        } else if has_flags {
            self.wants.flags
        } else {
            !self.wants.flags && !self.wants.other
        };
        if !items_match {
            return false;
        }
        let is_last = exists != 0 && f.seq == exists;
        match &self.target {
            Target::Seqs(set) => in_set(set.contains(f.seq), set.star(), f.seq, is_last),
            Target::Uids(set) => match f.uid() {
                Some(uid) => in_set(set.contains(uid), set.star(), uid, is_last),
                None => has_other,
            },
        }
    }

    /// Whether a body literal starting for message `seq` can belong to this command.
    pub(crate) fn owns_body(&self, seq: u32, exists: u32) -> bool {
        self.wants.other && self.may_contain_seq(seq, exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Flag;
    use crate::response::BodyValue;

    fn fetch(seq: u32, items: Vec<FetchItem>) -> Fetch {
        Fetch { seq, items }
    }

    fn body_scope(target: Target) -> Scope {
        Scope {
            target,
            wants: Wants::of(&FetchItems::Items(vec![Want::Uid, Want::body_peek()])),
        }
    }

    #[test]
    fn flags_only_response_is_not_a_body_fetch() {
        let s = body_scope(Target::Uids(UidSet::star_from(1)));
        let flags = fetch(
            3,
            vec![FetchItem::Uid(30), FetchItem::Flags(vec![Flag::Seen])],
        );
        assert!(!s.owns(&flags, 5));
        let body = fetch(
            3,
            vec![
                FetchItem::Uid(30),
                FetchItem::Rfc822(BodyValue::Streamed { len: 10 }),
            ],
        );
        assert!(s.owns(&body, 5));
    }

    #[test]
    fn uid_command_needs_uid_in_response() {
        let s = Scope {
            target: Target::Uids(UidSet::all()),
            wants: Wants::store(),
        };
        assert!(!s.owns(&fetch(2, vec![FetchItem::Flags(vec![])]), 5));
        assert!(s.owns(
            &fetch(2, vec![FetchItem::Uid(7), FetchItem::Flags(vec![])]),
            5
        ));
    }

    #[test]
    fn star_means_the_last_message() {
        // UID 100:* when the largest UID is 50 returns the last message (RFC 9051 9).
        let s = Scope {
            target: Target::Uids(UidSet::star_from(100)),
            wants: Wants::store(),
        };
        let last = fetch(5, vec![FetchItem::Uid(50), FetchItem::Flags(vec![])]);
        let other = fetch(4, vec![FetchItem::Uid(40), FetchItem::Flags(vec![])]);
        assert!(s.owns(&last, 5));
        assert!(!s.owns(&other, 5));
        let seq = Scope {
            target: Target::Seqs(SeqSet::from_numbers([1, 2]).unwrap()),
            wants: Wants::store(),
        };
        assert!(seq.owns(&fetch(2, vec![FetchItem::Flags(vec![])]), 9));
        assert!(!seq.owns(&fetch(3, vec![FetchItem::Flags(vec![])]), 9));
    }
}
