//! A server that answers one byte per second after login, and the honest servers
//! that the same rules must never cut off: keepalive lines during a long command, and a large
//! body on a slow link. Budgets are small so each test ends in a few seconds; the rules are
//! those of `mailfold_proto::engine` (the `budget` module docs).

use std::time::{Duration, Instant};

use mailfold_net::{ConnectConfig, Error, FetchSink, Security, Session};
use mailfold_proto::command::{FetchItem, FetchItems, FetchModifiers};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::BodyPart;
use mailfold_proto::response::Fetch;
use mailfold_proto::seqset::UidSet;
use mailfold_testsupport::{Script, ScriptedServer};

/// Silence 1 s, base budget 2 s, 100 ms per message, floor rate 32 KiB/s.
fn cfg(server: &ScriptedServer) -> ConnectConfig {
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(server.port());
    c.security = Security::Plaintext;
    c.connect_timeout = Duration::from_secs(5);
    c.engine.command_timeout = Duration::from_secs(1);
    c.engine.command_budget = Duration::from_secs(2);
    c.engine.per_message = Duration::from_millis(100);
    c.engine.min_rate = 32 * 1024;
    c
}

/// A PREAUTH server that lets the client select an INBOX of one message; tests chain the
/// next command's steps on it.
fn selected() -> Script {
    Script::new()
        .step_timeout(Duration::from_secs(30))
        .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
        .expect("SELECT INBOX")
        .send_line("* 1 EXISTS")
        .send_line("* OK [UIDVALIDITY 7] v")
        .send_tagged("OK [READ-WRITE] selected")
}

/// Counts what a FETCH delivered.
#[derive(Default)]
struct Count {
    fetches: usize,
    bytes: u64,
    ends: usize,
}

impl FetchSink for Count {
    fn fetch(&mut self, _f: Fetch) -> std::io::Result<()> {
        self.fetches += 1;
        Ok(())
    }
    fn body_start(&mut self, _p: &BodyPart) -> std::io::Result<()> {
        Ok(())
    }
    fn body_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.bytes += data.len() as u64;
        Ok(())
    }
    fn body_end(&mut self) -> std::io::Result<()> {
        self.ends += 1;
        Ok(())
    }
}

async fn open_selected(server: &ScriptedServer) -> Session {
    let mut s = Session::open(&cfg(server)).await.unwrap();
    s.select(&Mailbox::from_utf8("INBOX"), Default::default())
        .await
        .unwrap();
    s
}

fn body(uid: u32) -> (UidSet, FetchItems) {
    (
        UidSet::single(uid).unwrap(),
        FetchItems::Items(vec![FetchItem::body_peek()]),
    )
}

/// (a) After login the server answers a NOOP one byte per second, for ever: the bytes keep
/// coming, so silence never fires, but the unfinished line is a stall once the silence
/// timeout has passed. The NOOP fails with a timeout in about a second, not never.
#[tokio::test]
async fn one_byte_per_second_after_login_times_out_within_the_budget() {
    let server = ScriptedServer::start(selected().expect("NOOP").trickle(
        "* OK this server answers one byte per second, for as long as you wait".repeat(10),
        Duration::from_secs(1),
    ));
    let mut s = open_selected(&server).await;
    let t0 = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), s.noop())
        .await
        .expect("the client must give up on its own")
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(e.to_string().contains("has not finished"), "{e}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

/// (a') Whole FETCH lines trickled one every 300 ms: each is data and earns its bytes' time
/// at the floor rate, which is next to nothing; the UID FETCH runs out of its budget (2 s +
/// 100 ms) instead of lasting as long as the server pleases.
#[tokio::test]
async fn whole_lines_trickled_slowly_exhaust_the_command_budget() {
    let mut rest = selected().expect("UID FETCH 1 *");
    for _ in 0..100 {
        rest = rest.send_after(Duration::from_millis(300), "* 1 FETCH (FLAGS ())\r\n");
    }
    let server = ScriptedServer::start(rest);
    let mut s = open_selected(&server).await;
    let t0 = Instant::now();
    let (set, items) = body(1);
    let mut sink = Count::default();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        s.uid_fetch(&set, items, FetchModifiers::default(), &mut sink),
    )
    .await
    .expect("the client must give up on its own")
    .unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(e.to_string().contains("time budget"), "{e}");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

/// (b) `* OK still here` every 200 ms for 1.6 s (longer than the 1 s silence timeout, within
/// the 2 s budget), then the answer: success, and the keepalives are not errors.
#[tokio::test]
async fn keepalives_during_a_long_command_then_success() {
    let mut rest = selected().expect("NOOP");
    for _ in 0..8 {
        rest = rest.send_after(Duration::from_millis(200), "* OK still here\r\n");
    }
    let server = ScriptedServer::start(rest.send_tagged("OK done"));
    let mut s = open_selected(&server).await;
    tokio::time::timeout(Duration::from_secs(10), s.noop())
        .await
        .expect("no hang")
        .unwrap();
}

/// (b') The same keepalives for ever do not stretch the command past its budget.
#[tokio::test]
async fn endless_keepalives_do_not_extend_the_budget() {
    let mut rest = selected().expect("NOOP");
    for _ in 0..100 {
        rest = rest.send_after(Duration::from_millis(200), "* OK still here\r\n");
    }
    let server = ScriptedServer::start(rest);
    let mut s = open_selected(&server).await;
    let t0 = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), s.noop())
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t0.elapsed()
    );
}

/// (c) A 256 KiB body at an honest 64 KiB/s (4 s: twice the base budget, four times the
/// silence timeout) completes: its bytes earn twice the time they take at the 32 KiB/s floor.
#[tokio::test]
async fn a_large_literal_at_an_honest_slow_rate_completes() {
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 16;
    let mut rest = selected().expect("UID FETCH 1 *").send(format!(
        "* 1 FETCH (UID 1 BODY[] {{{}}}\r\n",
        CHUNK * CHUNKS
    ));
    for i in 0..CHUNKS {
        let line = format!("{i:04} {}\r\n", "x".repeat(CHUNK - 7));
        assert_eq!(line.len(), CHUNK);
        rest = rest.send_after(Duration::from_millis(250), line);
    }
    let server = ScriptedServer::start(rest.send(")\r\n").send_tagged("OK done"));
    let mut s = open_selected(&server).await;
    let t0 = Instant::now();
    let (set, items) = body(1);
    let mut sink = Count::default();
    let n = tokio::time::timeout(
        Duration::from_secs(15),
        s.uid_fetch(&set, items, FetchModifiers::default(), &mut sink),
    )
    .await
    .expect("no hang")
    .unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(n, 1);
    assert_eq!(sink.bytes, (CHUNK * CHUNKS) as u64);
    assert_eq!(sink.ends, 1);
}
