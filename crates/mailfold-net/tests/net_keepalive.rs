//! Keeping a held session alive (seed V0025) and watching a mailbox with IDLE or NOOP polling
//! (seed V0028), against scripted servers with short real timers.

use std::time::{Duration, Instant};

use mailfold_net::{ConnectConfig, IdleStop, Security, SelectOptions, Session};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::{Event, MailboxChange};
use mailfold_testsupport::{Script, ScriptedServer};

fn cfg(server: &ScriptedServer, keepalive: Duration) -> ConnectConfig {
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(server.port());
    // Plaintext with a PREAUTH greeting: the authenticated state without credentials.
    c.security = Security::Plaintext;
    c.connect_timeout = Duration::from_secs(5);
    c.engine.command_timeout = Duration::from_secs(3);
    c.engine.keepalive = keepalive;
    c
}

fn selected(caps: &str) -> Script {
    Script::new()
        .send_line(&format!("* PREAUTH [CAPABILITY IMAP4rev1 {caps}] welcome"))
        .expect("SELECT INBOX")
        .send_line("* 2 EXISTS")
        .send_line("* OK [UIDVALIDITY 7] ok")
        .send_tagged("OK [READ-WRITE] selected")
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w == &needle)
        .count()
}

/// Seed V0025: a session held without commands sends NOOP once the keepalive interval has
/// passed, driven by `keepalive_tick`, and nothing before.
#[tokio::test]
async fn v0025_keepalive_tick_sends_noop_after_the_interval() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] welcome")
            .expect("NOOP")
            .send_tagged("OK still here")
            .expect("NOOP")
            .send_tagged("OK still here")
            .stall(),
    );
    let mut sess = Session::open(&cfg(&s, Duration::from_millis(300)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let t0 = Instant::now();
    let notes = tokio::time::timeout(Duration::from_secs(5), sess.keepalive_tick())
        .await
        .expect("tick returns")
        .unwrap();
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(300), "{first:?}");
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(count(&s.received(), b"NOOP"), 1);
    // And again: each tick is one keepalive round trip.
    tokio::time::timeout(Duration::from_secs(5), sess.keepalive_tick())
        .await
        .expect("tick returns")
        .unwrap();
    assert_eq!(count(&s.received(), b"NOOP"), 2);
    assert!(t0.elapsed() >= Duration::from_millis(600));
}

/// Seed V0024/V0025: what the server says while the session is held (here an ALERT) is read
/// and returned by the tick at once, without waiting for the keepalive.
#[tokio::test]
async fn v0025_keepalive_tick_returns_unsolicited_data_at_once() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] welcome")
            .wait(Duration::from_millis(100))
            .send_line("* OK [ALERT] maintenance tonight")
            .stall(),
    );
    let mut sess = Session::open(&cfg(&s, Duration::from_secs(600)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let notes = tokio::time::timeout(Duration::from_secs(5), sess.keepalive_tick())
        .await
        .expect("tick returns")
        .unwrap();
    assert!(notes
        .iter()
        .any(|n| matches!(n, Event::Alert { text, .. } if text == "maintenance tonight")));
    assert_eq!(count(&s.received(), b"NOOP"), 0);
}

/// Seed V0025: `keepalive_tick` raced against the holder's own work in `select!` and
/// cancelled many times loses nothing: the holder's commands and later keepalives still work.
#[tokio::test]
async fn v0025_keepalive_tick_is_cancel_safe_in_select() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] welcome")
            .expect("NOOP")
            .send_line("* OK [ALERT] first")
            .send_tagged("OK user noop")
            .expect("NOOP")
            .send_tagged("OK keepalive")
            .stall(),
    );
    let mut sess = Session::open(&cfg(&s, Duration::from_millis(400)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let mut cancelled = 0;
    for _ in 0..5 {
        tokio::select! {
            r = sess.keepalive_tick() => panic!("nothing to report yet: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(30)) => cancelled += 1,
        }
    }
    assert_eq!(cancelled, 5);
    sess.noop().await.unwrap();
    assert!(sess
        .take_notifications()
        .iter()
        .any(|n| matches!(n, Event::Alert { text, .. } if text == "first")));
    tokio::time::timeout(Duration::from_secs(5), sess.keepalive_tick())
        .await
        .expect("tick returns")
        .unwrap();
    assert_eq!(count(&s.received(), b"NOOP"), 2);
}

/// Seed V0028: when the server offers IDLE, the watch uses IDLE and ends on the first change.
#[tokio::test]
async fn v0028_watch_uses_idle_where_offered() {
    let s = ScriptedServer::start(
        selected("IDLE")
            .expect("IDLE")
            .send_line("+ idling")
            .send_after(Duration::from_millis(100), b"* 3 EXISTS\r\n")
            .expect_line("DONE")
            .send_tagged("OK IDLE terminated")
            .stall(),
    );
    let mut sess = Session::open(&cfg(&s, Duration::from_secs(600)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    sess.select(&Mailbox::inbox(), SelectOptions::default())
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let notes = tokio::time::timeout(
        Duration::from_secs(5),
        sess.idle_or_poll(
            &IdleStop::new(),
            Duration::from_secs(10),
            Duration::from_millis(100),
        ),
    )
    .await
    .expect("watch returns")
    .unwrap();
    assert!(
        notes.contains(&Event::Mailbox(MailboxChange::Exists(3))),
        "{notes:?}"
    );
    assert_eq!(count(&s.received(), b"NOOP"), 0);
    assert_eq!(sess.mailbox().unwrap().exists, 3);
}

/// Seed V0028: without IDLE the watch polls with NOOP every interval until a change comes.
#[tokio::test]
async fn v0028_watch_polls_with_noop_without_idle() {
    let s = ScriptedServer::start(
        selected("UIDPLUS")
            .expect("NOOP")
            .send_tagged("OK nothing new")
            .expect("NOOP")
            .send_line("* 3 EXISTS")
            .send_tagged("OK something new")
            .stall(),
    );
    let mut sess = Session::open(&cfg(&s, Duration::from_secs(600)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    sess.select(&Mailbox::inbox(), SelectOptions::default())
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let t0 = Instant::now();
    let notes = tokio::time::timeout(
        Duration::from_secs(5),
        sess.idle_or_poll(
            &IdleStop::new(),
            Duration::from_secs(10),
            Duration::from_millis(200),
        ),
    )
    .await
    .expect("watch returns")
    .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        notes.contains(&Event::Mailbox(MailboxChange::Exists(3))),
        "{notes:?}"
    );
    assert!(!s.received_contains(b"IDLE"));
    assert_eq!(count(&s.received(), b"NOOP"), 2);
}

/// Seed V0028: a NOOP-polling watch ends when told to, or after `max`, without a change.
#[tokio::test]
async fn v0028_polling_watch_stops_on_request_and_at_max() {
    let s = ScriptedServer::start(selected("").stall());
    let mut sess = Session::open(&cfg(&s, Duration::from_secs(600)))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    sess.select(&Mailbox::inbox(), SelectOptions::default())
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    let stop = IdleStop::new();
    stop.stop();
    let t0 = Instant::now();
    let notes = sess
        .idle_or_poll(&stop, Duration::from_secs(10), Duration::from_secs(5))
        .await
        .unwrap();
    // The PREAUTH greeting is kept as a notification; these tests start after it.
    sess.take_notifications();
    assert!(notes.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(2));
    let t0 = Instant::now();
    sess.idle_or_poll(
        &IdleStop::new(),
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let e = t0.elapsed();
    assert!(
        e >= Duration::from_millis(200) && e < Duration::from_secs(2),
        "{e:?}"
    );
}
