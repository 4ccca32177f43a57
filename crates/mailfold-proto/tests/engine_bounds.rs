//! Memory stays bounded whatever the server sends for one command:
//! a server that answers a LIST with endless entries fails the connection at
//! [`MAX_COLLECTED`] instead of growing the engine's memory for ever.

use std::time::Instant;

use mailfold_proto::command::{Command, List};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::{Client, Config, EngineError, Event, Outcome, MAX_COLLECTED};

#[test]
fn endless_list_entries_fail_the_connection_at_the_cap() {
    let now = Instant::now();
    let mut c = Client::new(Config::default(), true, now);
    c.handle_input(b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n", now);
    let h = c.submit(Command::List(List::new(
        Mailbox::from_utf8(""),
        b"*".to_vec(),
    )));
    while c.poll_transmit(now).is_some() {}
    let mut events = Vec::new();
    let batch = "* LIST () \"/\" folder\r\n".repeat(4096);
    let mut sent = 0usize;
    while !c.is_closed() {
        assert!(sent <= MAX_COLLECTED + 8192, "no cap after {sent} entries");
        c.handle_input(batch.as_bytes(), now);
        sent += 4096;
        while let Some(e) = c.poll_event() {
            events.push(e);
        }
    }
    assert!(sent > MAX_COLLECTED, "failed early, after {sent}");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Completed(done) if done.handle == h && done.outcome == Outcome::Aborted
    )));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Closed(Some(EngineError::Protocol(t))) if t.contains("LIST"))));
}
