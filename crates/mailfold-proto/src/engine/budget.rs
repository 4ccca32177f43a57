//! Time budgets: how long a command may take, so that a server that answers slowly on
//! purpose (one byte per second) cannot hold a session for ever, while an honest
//! server on a slow link, or one that sends keepalive lines during a long command, is never
//! cut off.
//!
//! The engine runs three clocks on the `now` the driver passes in:
//!
//! 1. **Silence** (`Config::command_timeout`): a command that sees no byte at all for that
//!    long has stalled (a connection dropped without a FIN).
//! 2. **An unfinished response**: bytes keep arriving but no response completes (no CRLF,
//!    or a literal that never ends) for `command_timeout` plus the time its bytes would
//!    take at `Config::min_rate`. A line trickled at one byte per second fails here.
//! 3. **The command's budget**: each command gets an *allowance* when it is written,
//!    scaled by what it asks for ([`allowance`]): `Config::command_budget`, plus
//!    `Config::per_message` for each message it names (capped by
//!    `Config::per_message_cap`), plus an APPEND's size at `min_rate`. On top of that it
//!    *earns* time as data for it arrives: every byte of a response other than an untagged
//!    status line adds `1 / min_rate` seconds ([`earns_credit`]). A server that sends data
//!    at `min_rate` or faster therefore never runs out; one that sends less falls behind by
//!    `1 - rate / min_rate` seconds per second and runs out after a bounded time. Untagged
//!    `* OK still here` lines are not errors, but earn nothing: they cannot stretch a
//!    command past its allowance.
//!
//! Why credit bytes as they arrive rather than the literal sizes a server announces: a
//! `{4294967295}` announcement would buy three days at 16 KiB/s, for nothing; crediting the
//! received bytes gives an honest server exactly the same time and a liar none.
//!
//! IDLE is exempt while idling (it has its own refresh timer, RFC 2177); LOGOUT has its own
//! short wait (seed N2).

use std::time::Duration;

use crate::command::{AppendData, Command};
use crate::response::Response;
use crate::seqset::{NumberSet, SetKind};

/// The time `bytes` take at `min_rate` bytes per second (a rate of 0 counts as 1).
pub(crate) fn transfer_time(bytes: u64, min_rate: u32) -> Duration {
    let rate = u64::from(min_rate.max(1));
    let secs = bytes / rate;
    // The remainder is below `rate` (a u32), so the product fits a u64.
    let nanos = (bytes % rate) * 1_000_000_000 / rate;
    Duration::from_secs(secs).saturating_add(Duration::from_nanos(nanos))
}

/// How many messages a set names: its explicit numbers, plus the whole mailbox for a `*`
/// form (the server may have to look at every message up to the last).
fn named<K: SetKind>(set: &NumberSet<K>, exists: u32) -> u64 {
    let star = if set.star().is_some() {
        u64::from(exists)
    } else {
        0
    };
    set.len().saturating_add(star)
}

/// How many messages the server must handle for `cmd`, for the per-message allowance.
fn messages(cmd: &Command, exists: u32) -> u64 {
    match cmd {
        Command::Fetch { set, .. }
        | Command::Store { set, .. }
        | Command::Copy { set, .. }
        | Command::Move { set, .. } => named(set, exists),
        Command::UidFetch { set, .. }
        | Command::UidStore { set, .. }
        | Command::UidCopy { set, .. }
        | Command::UidMove { set, .. }
        | Command::UidExpunge(set) => named(set, exists),
        // These walk the whole selected mailbox.
        Command::Search(_) | Command::Expunge | Command::Close => u64::from(exists),
        _ => 0,
    }
}

/// The fixed part of `cmd`'s budget (see the module docs): the base, the per-message part
/// for the messages it names (`exists` resolves `*`), and an APPEND's upload at `min_rate`.
pub(crate) fn allowance(
    base: Duration,
    per_message: Duration,
    per_message_cap: Duration,
    min_rate: u32,
    cmd: &Command,
    exists: u32,
) -> Duration {
    let n = u32::try_from(messages(cmd, exists)).unwrap_or(u32::MAX);
    let scaled = per_message
        .checked_mul(n)
        .unwrap_or(Duration::MAX)
        .min(per_message_cap);
    let upload = match cmd {
        Command::Append(a) => match &a.message {
            AppendData::Inline(b) => transfer_time(b.len() as u64, min_rate),
            AppendData::Streamed { len, .. } => transfer_time(*len, min_rate),
        },
        _ => Duration::ZERO,
    };
    base.saturating_add(scaled).saturating_add(upload)
}

/// Whether a response's bytes earn its command more time: everything but untagged status
/// lines (`* OK …`, `* NO …`, `* BAD …`), which are what a server sends to say "still
/// here" and so must not stretch a command past its allowance.
pub(crate) fn earns_credit(r: &Response) -> bool {
    !matches!(r, Response::Status(s) if s.tag.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Append, FetchItems};
    use crate::core::Mailbox;
    use crate::seqset::UidSet;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn transfer_time_is_exact_and_saturates() {
        assert_eq!(transfer_time(16 * 1024, 16 * 1024), S);
        assert_eq!(transfer_time(8 * 1024, 16 * 1024), S / 2);
        assert_eq!(transfer_time(5, 0), 5 * S);
        // 2^64-1 bytes at 1 B/s is more seconds than anyone waits, but no overflow.
        assert!(transfer_time(u64::MAX, 1) > Duration::from_secs(1 << 62));
    }

    fn fetch(set: UidSet) -> Command {
        Command::UidFetch {
            set,
            items: FetchItems::Fast,
            modifiers: Default::default(),
        }
    }

    #[test]
    fn fetch_budget_scales_with_the_messages_named_and_is_capped() {
        let ms = Duration::from_millis(100);
        let cap = Duration::from_secs(600);
        let ten = fetch(UidSet::range(1, 10).unwrap());
        assert_eq!(allowance(S, ms, cap, 1024, &ten, 0), S + 10 * ms);
        let noop = Command::Noop;
        assert_eq!(allowance(S, ms, cap, 1024, &noop, 5000), S);
        // A set that would expand to four billion UIDs is capped, not multiplied out.
        let all = fetch(UidSet::range(1, u32::MAX).unwrap());
        assert_eq!(allowance(S, ms, cap, 1024, &all, 0), S + cap);
        // `1:*` counts the mailbox.
        let star = fetch(UidSet::star_from(1));
        assert_eq!(allowance(S, ms, cap, 1024, &star, 30), S + 30 * ms);
    }

    #[test]
    fn append_budget_includes_the_upload_at_the_floor_rate() {
        let cmd = Command::Append(Append {
            mailbox: Mailbox::from_utf8("INBOX"),
            flags: Vec::new(),
            internal_date: None,
            message: AppendData::Streamed {
                len: 10 * 1024,
                binary: false,
            },
        });
        assert_eq!(allowance(S, S, S, 1024, &cmd, 0), S + 10 * S);
    }
}
