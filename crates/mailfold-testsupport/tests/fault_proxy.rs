//! The fault proxy forwards faithfully, and cuts, stalls, delays and fragments exactly as told.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mailfold_testsupport::{Direction, Fault, FaultPlan, FaultProxy};

/// An upstream that echoes every byte back, one thread per connection.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// An upstream that sends `payload` on connect, then reads until EOF and reports what it got.
fn talker(payload: &'static [u8]) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(payload);
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = tx.send(got);
        }
    });
    (addr, rx)
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let s = util::tcp(proxy.addr());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn no_fault_forwards_both_ways() {
    let proxy = FaultProxy::start(echo_server(), FaultPlan::Always(Fault::None));
    let mut s = connect(&proxy);
    s.write_all(b"hello proxy").unwrap();
    let mut buf = [0u8; 11];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello proxy");
    assert_eq!(proxy.faults(), [Fault::None]);
}

#[test]
fn cut_to_server_forwards_exactly_the_offset() {
    let (upstream, got) = talker(b"");
    let proxy = FaultProxy::start(
        upstream,
        FaultPlan::Always(Fault::Cut {
            dir: Direction::ToServer,
            after: 5,
        }),
    );
    let mut s = connect(&proxy);
    let _ = s.write_all(b"0123456789");
    assert_eq!(got.recv_timeout(Duration::from_secs(5)).unwrap(), b"01234");
    assert_eq!(read_all(&mut s), b"");
}

#[test]
fn cut_to_client_forwards_exactly_the_offset() {
    let (upstream, _got) = talker(b"* OK IMAP ready\r\n");
    let proxy = FaultProxy::start(
        upstream,
        FaultPlan::Always(Fault::Cut {
            dir: Direction::ToClient,
            after: 7,
        }),
    );
    let mut s = connect(&proxy);
    assert_eq!(read_all(&mut s), b"* OK IM");
}

#[test]
fn one_byte_segments_arrive_in_many_reads() {
    let (upstream, _got) = talker(b"0123456789abcdefghij");
    let proxy = FaultProxy::start(
        upstream,
        FaultPlan::Always(Fault::OneByteSegments {
            dir: Direction::ToClient,
            gap: Duration::from_millis(5),
        }),
    );
    let mut s = connect(&proxy);
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 64];
    while got.len() < 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        reads += 1;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"0123456789abcdefghij");
    assert!(reads >= 10, "only {reads} reads");
}

#[test]
fn delay_adds_latency() {
    let proxy = FaultProxy::start(
        echo_server(),
        FaultPlan::Always(Fault::Delay {
            dir: Direction::ToServer,
            delay: Duration::from_millis(200),
        }),
    );
    let mut s = connect(&proxy);
    let started = Instant::now();
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn stall_pauses_then_resumes() {
    let (upstream, _got) = talker(b"ab-cd");
    let proxy = FaultProxy::start(
        upstream,
        FaultPlan::Always(Fault::Stall {
            dir: Direction::ToClient,
            after: 2,
            pause: Some(Duration::from_millis(300)),
        }),
    );
    let mut s = connect(&proxy);
    let started = Instant::now();
    let mut first = [0u8; 2];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ab");
    let mut rest = [0u8; 3];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"-cd");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn stall_forever_until_the_proxy_is_dropped() {
    let proxy = FaultProxy::start(
        echo_server(),
        FaultPlan::Always(Fault::Stall {
            dir: Direction::ToClient,
            after: 3,
            pause: None,
        }),
    );
    let mut s = connect(&proxy);
    s.write_all(b"abcdef").unwrap();
    let mut got = [0u8; 3];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut more = [0u8; 8];
    assert!(s.read(&mut more).is_err(), "stalled bytes must not arrive");
    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(2));
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(s.read(&mut more).unwrap_or(0), 0);
}

#[test]
fn random_plans_replay_from_the_seed() {
    let plan = |seed| FaultPlan::Random {
        seed,
        max_offset: 64,
        max_delay: Duration::from_millis(20),
    };
    let upstream = echo_server();
    let run = |seed| {
        let proxy = FaultProxy::start(upstream, plan(seed));
        for _ in 0..8 {
            let mut s = connect(&proxy);
            let _ = s.write_all(b"ping\r\n");
            let mut buf = [0u8; 16];
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = s.read(&mut buf);
        }
        proxy.faults()
    };
    let a = run(7);
    assert_eq!(a.len(), 8);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
}

#[test]
fn sequence_plan_applies_in_connection_order() {
    let proxy = FaultProxy::start(
        echo_server(),
        FaultPlan::Sequence(vec![Fault::Cut {
            dir: Direction::ToClient,
            after: 0,
        }]),
    );
    let mut first = connect(&proxy);
    let _ = first.write_all(b"x");
    assert_eq!(read_all(&mut first), b"");
    let mut second = connect(&proxy);
    second.write_all(b"y").unwrap();
    let mut b = [0u8; 1];
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
}
