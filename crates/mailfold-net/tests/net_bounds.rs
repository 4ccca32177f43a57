//! Memory stays bounded whatever a server sends during one command: a flood of
//! unsolicited FETCH responses during a NOOP keeps at most [`MAX_NOTES`] notifications, and
//! the command still completes.

use std::time::Duration;

use mailfold_net::{ConnectConfig, Security, Session, MAX_NOTES};
use mailfold_proto::engine::Event;
use mailfold_testsupport::{Script, ScriptedServer};

#[tokio::test]
async fn a_flood_of_unsolicited_fetches_keeps_at_most_max_notes() {
    let flood = MAX_NOTES as u64 * 3;
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
            .expect("NOOP")
            .send_repeat("* 1 FETCH (FLAGS (\\Seen))\r\n", flood)
            .send_line("* BYE going away after this")
            .send_tagged("OK done")
            .stall(),
    );
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(server.port());
    c.security = Security::Plaintext;
    c.connect_timeout = Duration::from_secs(5);
    let mut s = Session::open(&c).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.noop())
        .await
        .expect("no hang")
        .unwrap();
    let notes = s.take_notifications();
    assert!(notes.len() <= MAX_NOTES + 1, "{} notes kept", notes.len());
    assert!(notes.len() >= MAX_NOTES, "{} notes kept", notes.len());
    // BYE is kept even past the cap: the caller must learn the server is leaving.
    assert!(notes.iter().any(|n| matches!(n, Event::Bye { .. })));
}
