//! The client engine driven by a hostile server and a jumping clock: any server bytes, any
//! commands, any time steps never panic; the timers always name a future instant or none; a
//! closed engine stays closed; and the engine never queues more output than the commands it
//! was given can explain. Exercises the engine's time budgets (`engine/budget.rs`) with
//! `Instant` arithmetic near its limits (budgets of many hours, credits of many bytes).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mailfold_proto::command::{
    Append, AppendData, Command, FetchItem, FetchItems, FetchModifiers, List, StatusItem,
};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::{Client, Config, Transmit};
use mailfold_proto::framing::FramingConfig;
use mailfold_proto::parse::ParserConfig;
use mailfold_proto::seqset::UidSet;

fn command(k: u8) -> Command {
    let inbox = Mailbox::from_utf8("INBOX");
    match k % 10 {
        0 => Command::Noop,
        1 => Command::select(inbox),
        2 => Command::UidFetch {
            set: UidSet::star_from(1),
            items: FetchItems::Items(vec![FetchItem::body_peek()]),
            modifiers: FetchModifiers::default(),
        },
        3 => Command::UidFetch {
            set: UidSet::range(1, u32::MAX).unwrap_or_default(),
            items: FetchItems::Fast,
            modifiers: FetchModifiers::default(),
        },
        4 => Command::List(List::new(Mailbox::from_utf8(""), b"*".to_vec())),
        5 => Command::Idle,
        6 => Command::Append(Append {
            mailbox: inbox,
            flags: Vec::new(),
            internal_date: None,
            message: AppendData::Streamed {
                len: u64::MAX / 2,
                binary: false,
            },
        }),
        7 => Command::Status {
            mailbox: inbox,
            items: vec![StatusItem::Messages, StatusItem::UidNext],
        },
        8 => Command::Capability,
        _ => Command::Logout,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = Config {
        // Extreme settings half the time: budgets that saturate, a floor rate of 0.
        command_budget: if data[0] & 1 == 1 {
            Duration::MAX
        } else {
            Duration::from_secs(2)
        },
        per_message: Duration::from_millis(u64::from(data[0])),
        min_rate: u32::from(data[0] >> 4),
        command_timeout: Duration::from_secs(1),
        parser: ParserConfig {
            framing: FramingConfig {
                max_line: 4096,
                max_inline_literal: 256,
                max_response: 16384,
            },
            expect_greeting: true,
        },
        ..Config::default()
    };
    let mut c = Client::new(cfg, data[0] & 2 != 0, now);
    let mut submitted: u64 = 0;
    let mut idle = None;
    let mut written: u64 = 0;
    let mut i = 1;
    while i < data.len() {
        let op = data[i];
        i += 1;
        if op & 0x80 != 0 {
            // Let time pass: up to ~2 minutes in steps of 1 s.
            now += Duration::from_secs(u64::from(op & 0x7f));
            if let Some(t) = c.poll_timeout() {
                if now >= t {
                    c.handle_timeout(now);
                }
            }
        } else if op < 10 {
            let h = c.submit(command(op));
            if op == 5 {
                idle = Some(h);
            }
            submitted += 1;
        } else if op < 12 {
            if let Some(h) = idle {
                c.idle_done(h, now);
            }
        } else {
            let n = usize::from(op).min(data.len() - i);
            c.handle_input(&data[i..i + n], now);
            i += n;
        }
        while let Some(t) = c.poll_transmit(now) {
            if let Transmit::Data(d) = t {
                written += d.len() as u64;
            }
        }
        while c.poll_event().is_some() {}
        if let Some(t) = c.poll_timeout() {
            // A timer is never set in the past of the engine's own start.
            assert!(t >= t0);
        }
        let was_closed = c.is_closed();
        if was_closed {
            c.handle_input(b"* OK more\r\n", now);
            assert!(c.is_closed());
            assert!(c.poll_timeout().is_none());
        }
    }
    // Commands are short here (no inline literals), keepalives and IDLE DONEs add a little:
    // output stays proportional to what was asked for plus the time that passed.
    let elapsed = now.saturating_duration_since(t0).as_secs();
    assert!(
        written <= (submitted + 1) * 512 + elapsed * 64 + 4096,
        "wrote {written} bytes for {submitted} commands"
    );
});
