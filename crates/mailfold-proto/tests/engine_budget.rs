//! The engine's time budgets on a virtual clock, against a server that answers one byte per
//! second: a trickle is given up on in bounded time, whatever it sends; keepalive lines
//! during a long command are harmless but buy nothing; data at the floor rate always
//! completes, however large.

use std::time::{Duration, Instant};

use mailfold_proto::command::{Append, AppendData, Command, FetchItem, FetchItems, FetchModifiers};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::{
    Client, CommandHandle, Config, EngineError, Event, Outcome, Transmit,
};
use mailfold_proto::seqset::UidSet;

const SEC: Duration = Duration::from_secs(1);

/// A client on a virtual clock, logged in (PREAUTH) with INBOX of 10 messages selected.
struct V {
    c: Client,
    now: Instant,
    events: Vec<Event>,
}

fn small_budgets() -> Config {
    Config {
        command_timeout: Duration::from_secs(5),
        command_budget: Duration::from_secs(10),
        per_message: Duration::from_millis(100),
        per_message_cap: Duration::from_secs(60),
        min_rate: 1024,
        ..Config::default()
    }
}

impl V {
    fn new(cfg: Config) -> V {
        let now = Instant::now();
        let mut v = V {
            c: Client::new(cfg, true, now),
            now,
            events: Vec::new(),
        };
        v.input(b"* PREAUTH [CAPABILITY IMAP4rev1 IDLE LITERAL+] hi\r\n");
        let h = v.c.submit(Command::select(Mailbox::from_utf8("INBOX")));
        let tag = v.tag_sent();
        v.input(
            format!("* 10 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n{tag} OK [READ-WRITE] s\r\n")
                .as_bytes(),
        );
        assert!(v.done(h).is_some_and(|o| o.is_ok()));
        v.events.clear();
        v
    }

    fn input(&mut self, b: &[u8]) {
        self.c.handle_input(b, self.now);
        while let Some(e) = self.c.poll_event() {
            self.events.push(e);
        }
    }

    /// Writes what the client has to send and returns the tag of its last command line.
    fn tag_sent(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(t) = self.c.poll_transmit(self.now) {
            if let Transmit::Data(d) = t {
                out.extend(d);
            }
        }
        let text = String::from_utf8(out).unwrap();
        let last = text
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        last.split(' ').next().unwrap().to_string()
    }

    /// Advances the clock by `d`, firing the engine's timer on the way when it is due.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.c.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.c.handle_timeout(self.now);
            while let Some(e) = self.c.poll_event() {
                self.events.push(e);
            }
            if self.c.is_closed() {
                return;
            }
        }
        self.now = end;
    }

    fn done(&self, h: CommandHandle) -> Option<Outcome> {
        self.events.iter().find_map(|e| match e {
            Event::Completed(c) if c.handle == h => Some(c.outcome.clone()),
            _ => None,
        })
    }

    fn timeout_text(&self) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(Some(EngineError::Timeout(s))) => Some(s.clone()),
            _ => None,
        })
    }
}

fn body_fetch(n: u32) -> Command {
    Command::UidFetch {
        set: UidSet::range(1, n).unwrap(),
        items: FetchItems::Items(vec![FetchItem::body_peek()]),
        modifiers: FetchModifiers::default(),
    }
}

/// One byte per second of a line that never ends: bytes keep arriving, so silence never
/// fires, but the unfinished response is a stall after the silence timeout (plus its few
/// bytes' worth at the floor rate).
#[test]
fn a_line_trickled_one_byte_per_second_is_a_stall() {
    let mut v = V::new(small_budgets());
    let start = v.now;
    let h = v.c.submit(Command::Noop);
    v.tag_sent();
    let junk = b"* OK the slowest server in the world is thinking about your NOOP";
    for b in junk.iter().cycle().take(600) {
        v.input(std::slice::from_ref(b));
        v.advance(SEC);
        if v.c.is_closed() {
            break;
        }
    }
    assert!(v.c.is_closed(), "the trickle was never given up on");
    let waited = v.now - start;
    assert!(waited <= Duration::from_secs(7), "{waited:?}");
    assert_eq!(v.done(h), Some(Outcome::Aborted));
    let why = v.timeout_text().expect("a timeout");
    assert!(why.contains("has not finished"), "{why}");
}

/// Whole lines trickled one per second earn a little time each (their bytes at the floor
/// rate), far less than they cost: the command's budget runs out in bounded time.
#[test]
fn complete_lines_trickled_slowly_run_out_of_budget() {
    let mut v = V::new(small_budgets());
    let start = v.now;
    let h = v.c.submit(body_fetch(3));
    v.tag_sent();
    for i in 0..600u32 {
        // Answers for messages the command did not ask for: data, not keepalive.
        v.input(format!("* {} FETCH (FLAGS ())\r\n", 1 + i % 10).as_bytes());
        v.advance(SEC);
        if v.c.is_closed() {
            break;
        }
    }
    assert!(v.c.is_closed());
    // Allowance 10 s + 3 × 100 ms; 22 bytes/s at 1024 B/s earn ~2 % more.
    let waited = v.now - start;
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    assert!(waited <= Duration::from_secs(12), "{waited:?}");
    assert_eq!(v.done(h), Some(Outcome::Aborted));
    let why = v.timeout_text().expect("a timeout");
    assert!(why.contains("time budget"), "{why}");
    assert!(why.contains("UID FETCH"), "{why}");
}

/// `* OK still here` every 200 ms during a long command: no error, and the command completes
/// when the server answers within its budget.
#[test]
fn keepalive_lines_during_a_long_command_are_not_errors() {
    let mut v = V::new(small_budgets());
    let h = v.c.submit(Command::Noop);
    let tag = v.tag_sent();
    // 9 s of keepalives: longer than the 5 s silence timeout, within the 10 s budget.
    for _ in 0..45 {
        v.input(b"* OK still here\r\n");
        v.advance(Duration::from_millis(200));
    }
    assert!(!v.c.is_closed(), "{:?}", v.timeout_text());
    v.input(format!("{tag} OK done\r\n").as_bytes());
    assert!(v.done(h).is_some_and(|o| o.is_ok()));
}

/// The same keepalives do not stretch the command past its budget.
#[test]
fn keepalive_lines_do_not_extend_the_budget() {
    let mut v = V::new(small_budgets());
    let start = v.now;
    let h = v.c.submit(Command::Noop);
    v.tag_sent();
    for _ in 0..500 {
        v.input(b"* OK still here\r\n");
        v.advance(Duration::from_millis(200));
        if v.c.is_closed() {
            break;
        }
    }
    assert!(v.c.is_closed());
    let waited = v.now - start;
    assert!(waited <= Duration::from_millis(10_200), "{waited:?}");
    assert_eq!(v.done(h), Some(Outcome::Aborted));
}

/// A body of 200 KiB at exactly the floor rate (1 KiB/s: 200 s, twenty times the base budget)
/// completes: its bytes earn the time they take.
#[test]
fn a_large_literal_at_an_honest_slow_rate_completes() {
    let mut v = V::new(small_budgets());
    let h = v.c.submit(body_fetch(1));
    let tag = v.tag_sent();
    let size = 200 * 1024;
    v.input(format!("* 1 FETCH (UID 1 BODY[] {{{size}}}\r\n").as_bytes());
    let chunk = vec![b'x'; 1024];
    for _ in 0..200 {
        v.advance(SEC);
        assert!(!v.c.is_closed(), "{:?}", v.timeout_text());
        v.input(&chunk);
    }
    v.input(format!(")\r\n{tag} OK done\r\n").as_bytes());
    assert!(
        v.done(h).is_some_and(|o| o.is_ok()),
        "{:?}",
        v.timeout_text()
    );
    let streamed: usize = v
        .events
        .iter()
        .map(|e| match e {
            Event::BodyChunk { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(streamed, size);
}

/// A literal announced as four gigabytes buys nothing until its bytes arrive: trickled, it
/// runs out of budget like anything else.
#[test]
fn an_announced_huge_literal_does_not_buy_time() {
    let mut v = V::new(small_budgets());
    let start = v.now;
    let h = v.c.submit(body_fetch(1));
    v.tag_sent();
    v.input(b"* 1 FETCH (UID 1 BODY[] {4294967295}\r\n");
    for _ in 0..600 {
        v.input(b"x");
        v.advance(SEC);
        if v.c.is_closed() {
            break;
        }
    }
    assert!(v.c.is_closed());
    assert!(
        v.now - start <= Duration::from_secs(12),
        "{:?}",
        v.now - start
    );
    assert_eq!(v.done(h), Some(Outcome::Aborted));
}

/// An APPEND is allowed its own upload at the floor rate: 60 KiB at 1 KiB/s is 60 s on top
/// of the base, and a server that answers after 65 s is still in time.
#[test]
fn append_budget_scales_with_its_size() {
    let mut v = V::new(small_budgets());
    let h = v.c.submit(Command::Append(Append {
        mailbox: Mailbox::from_utf8("INBOX"),
        flags: Vec::new(),
        internal_date: None,
        message: AppendData::Streamed {
            len: 60 * 1024,
            binary: false,
        },
    }));
    let mut tag = String::new();
    while let Some(t) = v.c.poll_transmit(v.now) {
        if let Transmit::Data(d) = t {
            let s = String::from_utf8(d).unwrap();
            if tag.is_empty() {
                tag = s.split(' ').next().unwrap().to_string();
            }
        }
    }
    // Keepalives keep the silence clock quiet; only the budget matters here.
    for _ in 0..65 {
        v.input(b"* OK uploading\r\n");
        v.advance(SEC);
    }
    assert!(!v.c.is_closed(), "{:?}", v.timeout_text());
    v.input(format!("{tag} OK [APPENDUID 1 11] appended\r\n").as_bytes());
    assert!(v.done(h).is_some_and(|o| o.is_ok()));
}

/// IDLE is exempt while idling: hours of quiet are no error (its refresh timer ends and
/// re-issues it instead).
#[test]
fn idle_is_exempt_from_the_command_budget() {
    let mut v = V::new(small_budgets());
    let h = v.c.submit(Command::Idle);
    v.tag_sent();
    v.input(b"+ idling\r\n");
    v.advance(Duration::from_secs(20 * 60));
    assert!(!v.c.is_closed(), "{:?}", v.timeout_text());
    assert!(v.done(h).is_none());
}

/// Pipelined commands each get their budget from when the server turned to them: three
/// NOOPs answered 8 s apart (each within its 10 s budget) all complete.
#[test]
fn pipelined_commands_budget_from_the_previous_completion() {
    let mut v = V::new(small_budgets());
    let hs: Vec<_> = (0..3).map(|_| v.c.submit(Command::Noop)).collect();
    let mut out = Vec::new();
    while let Some(t) = v.c.poll_transmit(v.now) {
        if let Transmit::Data(d) = t {
            out.extend(d);
        }
    }
    let text = String::from_utf8(out).unwrap();
    let tags: Vec<String> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(tags.len(), 3, "{text}");
    for (tag, h) in tags.iter().zip(&hs) {
        for _ in 0..8 {
            v.input(b"* OK working\r\n");
            v.advance(SEC);
        }
        v.input(format!("{tag} OK done\r\n").as_bytes());
        assert!(
            v.done(*h).is_some_and(|o| o.is_ok()),
            "{:?}",
            v.timeout_text()
        );
    }
}
