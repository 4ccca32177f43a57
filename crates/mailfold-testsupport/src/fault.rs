//! A fault-injecting TCP proxy on loopback, between a client under test and a real server.
//!
//! Each accepted connection gets one [`Fault`], taken from a [`FaultPlan`]: fixed, a list in
//! connection order, or drawn from a seeded [`SplitMix64`] so that a failing soak round can be
//! replayed from its seed. Faults act on one direction of the byte stream and are
//! exact: `Cut { after: 10 }` forwards precisely ten bytes, then closes both sides.
//!
//! Every thread polls a stop flag, so dropping the proxy ends all connections within a poll
//! interval; a stalled direction still reads (and discards) so that a client giving up is seen.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;

const POLL: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which way the bytes a fault acts on are flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything untouched.
    None,
    /// Forward exactly `after` bytes in `dir`, then close the connection on both sides.
    Cut {
        /// The direction counted.
        dir: Direction,
        /// Bytes forwarded before the cut.
        after: u64,
    },
    /// Forward `after` bytes in `dir`, then stop forwarding that direction: for `pause`, or,
    /// when `None`, for good (later bytes are discarded; the other direction keeps working).
    Stall {
        /// The direction stalled.
        dir: Direction,
        /// Bytes forwarded before the stall.
        after: u64,
        /// How long; `None` is forever.
        pause: Option<Duration>,
    },
    /// Hold every chunk read in `dir` for `delay` before forwarding it.
    Delay {
        /// The direction delayed.
        dir: Direction,
        /// Added latency per chunk.
        delay: Duration,
    },
    /// Forward `dir` one byte per write (with TCP_NODELAY), `gap` apart, so the reader sees
    /// many tiny segments.
    OneByteSegments {
        /// The direction fragmented.
        dir: Direction,
        /// Pause between bytes (zero is allowed).
        gap: Duration,
    },
}

impl Fault {
    fn direction(&self) -> Option<Direction> {
        match *self {
            Fault::None => None,
            Fault::Cut { dir, .. }
            | Fault::Stall { dir, .. }
            | Fault::Delay { dir, .. }
            | Fault::OneByteSegments { dir, .. } => Some(dir),
        }
    }
}

/// How faults are assigned to connections, in accept order.
#[derive(Debug, Clone)]
pub enum FaultPlan {
    /// Every connection gets this fault.
    Always(Fault),
    /// Connection `i` gets element `i`; connections past the end get [`Fault::None`].
    Sequence(Vec<Fault>),
    /// Each connection draws a fault: one of none, cut, stall (a pause of at most
    /// `max_delay`), delay (at most `max_delay / 10` per chunk) or one-byte segments, in a
    /// random direction, at an offset in `0..=max_offset`.
    Random {
        /// The generator's seed: the same seed gives the same faults.
        seed: u64,
        /// Largest byte offset for cuts and stalls.
        max_offset: u64,
        /// Longest stall pause.
        max_delay: Duration,
    },
}

/// Draws the next fault of a plan.
struct Planner {
    plan: FaultPlan,
    rng: SplitMix64,
    next: usize,
}

impl Planner {
    fn new(plan: FaultPlan) -> Planner {
        let seed = match plan {
            FaultPlan::Random { seed, .. } => seed,
            _ => 0,
        };
        Planner {
            plan,
            rng: SplitMix64::new(seed),
            next: 0,
        }
    }

    fn next_fault(&mut self) -> Fault {
        let index = self.next;
        self.next += 1;
        match &self.plan {
            FaultPlan::Always(f) => *f,
            FaultPlan::Sequence(list) => list.get(index).copied().unwrap_or(Fault::None),
            FaultPlan::Random {
                max_offset,
                max_delay,
                ..
            } => {
                let (max_offset, max_delay) = (*max_offset, *max_delay);
                let rng = &mut self.rng;
                let dir = if rng.next_u64() & 1 == 0 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                let after = rng.below_or_eq(max_offset);
                let millis = u64::try_from(max_delay.as_millis()).unwrap_or(u64::MAX);
                let pause = Duration::from_millis(rng.below_or_eq(millis));
                match rng.below_or_eq(4) {
                    0 => Fault::None,
                    1 => Fault::Cut { dir, after },
                    2 => Fault::Stall {
                        dir,
                        after,
                        pause: Some(pause),
                    },
                    3 => Fault::Delay {
                        dir,
                        delay: pause / 10,
                    },
                    _ => Fault::OneByteSegments {
                        dir,
                        gap: Duration::ZERO,
                    },
                }
            }
        }
    }
}

/// A running proxy on 127.0.0.1; dropping it closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Vec<Fault>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free 127.0.0.1 port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> FaultProxy {
        FaultProxy::start_marking(upstream, plan, None)
    }

    /// [`FaultProxy::start`], creating the file `marker` (when given) as each connection is
    /// accepted, before the server is reached: a helper program the client runs (a password
    /// command) can wait for it to see that the client has connected.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start_marking(
        upstream: SocketAddr,
        plan: FaultPlan,
        marker: Option<std::path::PathBuf>,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("address of a bound listener");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, faults) = (Arc::clone(&stop), Arc::clone(&faults));
            std::thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || {
                    accept_loop(listener, upstream, Planner::new(plan), faults, stop, marker)
                })
                .expect("spawn the proxy thread")
        };
        FaultProxy {
            addr,
            faults,
            stop,
            thread: Some(thread),
        }
    }

    /// The address clients connect to instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fault given to each connection so far, in accept order (print it when a soak
    /// round fails).
    pub fn faults(&self) -> Vec<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many connections were accepted.
    pub fn connection_count(&self) -> usize {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut planner: Planner,
    faults: Arc<Mutex<Vec<Fault>>>,
    stop: Arc<AtomicBool>,
    marker: Option<std::path::PathBuf>,
) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let fault = planner.next_fault();
                faults.lock().unwrap_or_else(|p| p.into_inner()).push(fault);
                if let Some(m) = &marker {
                    let _ = std::fs::write(m, b"accepted\n");
                }
                // Threads of finished connections are reaped as we go, so a long soak run does
                // not pile up handles.
                threads.retain(|t| !t.is_finished());
                if let Ok(pumps) = connect(client, upstream, fault, &stop) {
                    threads.extend(pumps);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 2),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// Connects to the server and starts one pump per direction.
fn connect(
    client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let server = match TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            // The client sees the same thing it would see without the proxy: a closed door.
            let _ = client.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    for s in [&client, &server] {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(POLL))?;
    }
    let dead = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (dir, src, dst) in [
        (
            Direction::ToServer,
            client.try_clone()?,
            server.try_clone()?,
        ),
        (Direction::ToClient, server, client),
    ] {
        let applies = fault.direction() == Some(dir);
        let pump = Pump {
            src,
            dst,
            fault: if applies { fault } else { Fault::None },
            stop: Arc::clone(stop),
            dead: Arc::clone(&dead),
        };
        handles.push(
            std::thread::Builder::new()
                .name("fault-proxy-pump".into())
                .spawn(move || pump.run())?,
        );
    }
    Ok(handles)
}

/// Copies one direction of one connection, applying that direction's fault.
struct Pump {
    src: TcpStream,
    dst: TcpStream,
    fault: Fault,
    stop: Arc<AtomicBool>,
    /// Set when either direction tore the connection down.
    dead: Arc<AtomicBool>,
}

impl Pump {
    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.dead.load(Ordering::Relaxed)
    }

    fn kill_connection(&self) {
        self.dead.store(true, Ordering::Relaxed);
        let _ = self.src.shutdown(Shutdown::Both);
        let _ = self.dst.shutdown(Shutdown::Both);
    }

    fn run(mut self) {
        let mut forwarded: u64 = 0;
        let mut stall_done = false;
        let mut buf = vec![0u8; 16 * 1024];
        if let Fault::OneByteSegments { .. } = self.fault {
            let _ = self.dst.set_nodelay(true);
        }
        loop {
            if self.halted() {
                break;
            }
            // Limit each read so that offsets are exact.
            let mut limit = buf.len();
            match self.fault {
                Fault::Cut { after, .. } => {
                    if forwarded >= after {
                        self.kill_connection();
                        return;
                    }
                    limit = limit.min(usize::try_from(after - forwarded).unwrap_or(usize::MAX));
                }
                Fault::Stall { after, pause, .. } if !stall_done => {
                    if forwarded >= after {
                        match pause {
                            Some(pause) => {
                                if !self.sleep(pause) {
                                    break;
                                }
                                stall_done = true;
                            }
                            None => {
                                self.black_hole();
                                break;
                            }
                        }
                    } else {
                        limit = limit.min(usize::try_from(after - forwarded).unwrap_or(usize::MAX));
                    }
                }
                _ => {}
            }
            let n = match self.src.read(&mut buf[..limit]) {
                Ok(0) => {
                    // Pass the half-close on; the other direction may still be talking.
                    let _ = self.dst.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => {
                    self.kill_connection();
                    return;
                }
            };
            if let Fault::Delay { delay, .. } = self.fault {
                if !self.sleep(delay) {
                    break;
                }
            }
            let ok = match self.fault {
                Fault::OneByteSegments { gap, .. } => buf[..n].iter().all(|b| {
                    self.write_all(std::slice::from_ref(b)) && (gap.is_zero() || self.sleep(gap))
                }),
                _ => self.write_all(&buf[..n]),
            };
            if !ok {
                self.kill_connection();
                return;
            }
            forwarded += n as u64;
        }
        if self.stop.load(Ordering::Relaxed) {
            self.kill_connection();
        }
    }

    /// Reads and drops everything until the sender closes or the connection dies.
    fn black_hole(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.halted() {
            match self.src.read(&mut buf) {
                Ok(0) => {
                    self.kill_connection();
                    return;
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    self.kill_connection();
                    return;
                }
            }
        }
    }

    /// Sleeps in slices; false if the proxy or connection went away meanwhile.
    fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        loop {
            if self.halted() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    /// Writes everything unless the connection dies or the proxy stops.
    fn write_all(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.halted() {
                return false;
            }
            match self.dst.write(data) {
                Ok(0) => return false,
                Ok(n) => data = &data[n..],
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_plan_is_reproducible_from_its_seed() {
        let plan = FaultPlan::Random {
            seed: 42,
            max_offset: 1000,
            max_delay: Duration::from_millis(500),
        };
        let mut a = Planner::new(plan.clone());
        let mut b = Planner::new(plan);
        let faults: Vec<Fault> = (0..50).map(|_| a.next_fault()).collect();
        assert_eq!(faults, (0..50).map(|_| b.next_fault()).collect::<Vec<_>>());
        // All kinds show up over 50 draws, and offsets respect the bound.
        assert!(faults.iter().any(|f| matches!(f, Fault::Cut { .. })));
        assert!(faults.iter().any(|f| matches!(f, Fault::Stall { .. })));
        assert!(faults.iter().any(|f| matches!(f, Fault::Delay { .. })));
        assert!(faults
            .iter()
            .any(|f| matches!(f, Fault::OneByteSegments { .. })));
        assert!(faults.iter().any(|f| matches!(f, Fault::None)));
        for f in faults {
            if let Fault::Cut { after, .. } | Fault::Stall { after, .. } = f {
                assert!(after <= 1000);
            }
        }
    }

    #[test]
    fn sequence_plan_then_none() {
        let mut p = Planner::new(FaultPlan::Sequence(vec![Fault::Cut {
            dir: Direction::ToClient,
            after: 3,
        }]));
        assert!(matches!(p.next_fault(), Fault::Cut { after: 3, .. }));
        assert_eq!(p.next_fault(), Fault::None);
    }
}
