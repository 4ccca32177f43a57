//! A loopback IMAP "server" that plays a fixed script, for hostile-server tests.
//!
//! A test writes what the server says and what the client must send, step by step
//! ([`Script`]), and starts a [`ScriptedServer`]. Each accepted connection runs the script from
//! the top in its own thread. Every byte the client sends is recorded ([`ConnectionReport`]),
//! so a test can assert what the client did *not* do, e.g. send a password to a server whose
//! certificate was bad, or a command after STARTTLS before TLS was up (RFC 9051 section 6.2.1).
//!
//! Bounds: a step that waits for the client (a line, a TLS handshake, a write the client does
//! not read) gives up after the script's step timeout and closes the connection; a stalled or
//! finished script keeps reading (and recording) until the client closes; every thread stops
//! within a poll interval once the server is dropped. Lines are capped at [`MAX_LINE`] and the
//! recording at [`MAX_RECORDED`] bytes per connection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pki::{CertKind, TestPki};

/// Longest line an `expect` step will buffer before failing the script.
pub const MAX_LINE: usize = 64 * 1024;
/// Most bytes recorded per connection; beyond it [`ConnectionReport::truncated`] is set.
pub const MAX_RECORDED: usize = 16 * 1024 * 1024;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Default bound of one step.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One step of a [`Script`].
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as they are.
    Send(Vec<u8>),
    /// Send `<tag> <text>\r\n` with the tag captured by the last [`Step::Expect`].
    SendTagged(String),
    /// Wait, then send.
    SendAfter(Duration, Vec<u8>),
    /// Send `chunk` `times` times in a row, without building the whole payload (huge
    /// literals, lines of 100 MB without CRLF).
    SendRepeat {
        /// The bytes repeated.
        chunk: Vec<u8>,
        /// How many times.
        times: u64,
    },
    /// Send these bytes one at a time, `interval` apart (a server that answers one byte a
    /// second).
    Trickle {
        /// The bytes sent.
        bytes: Vec<u8>,
        /// Pause after each byte.
        interval: Duration,
    },
    /// Read one client line `TAG SP rest` and match `rest` against the pattern (ASCII
    /// case-insensitive; `*` matches any run of characters, `?` any one). Captures `TAG`.
    Expect(String),
    /// Read one client line and match all of it against the pattern (no tag; for SASL
    /// continuation data and literal contents).
    ExpectLine(String),
    /// Do nothing for this long.
    Wait(Duration),
    /// Start TLS as the server, presenting the certificate of this kind. As the first step,
    /// this is implicit TLS; after an `OK` to STARTTLS it is the STARTTLS upgrade.
    StartTls(CertKind),
    /// Read what the client has already sent, then close the connection.
    Close,
    /// Stop answering: read and record what the client sends until it gives up (closes) or the
    /// server is dropped.
    Stall,
}

/// A sequence of steps played on each connection; build it with the chained methods.
#[derive(Debug, Clone)]
pub struct Script {
    steps: Vec<Step>,
    step_timeout: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// An empty script (the server would accept and then only record).
    pub fn new() -> Script {
        Script {
            steps: Vec::new(),
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    /// Bound for each step that waits on the client (default 10 s).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// Appends any step.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Sends raw bytes.
    pub fn send(self, bytes: impl AsRef<[u8]>) -> Self {
        self.step(Step::Send(bytes.as_ref().to_vec()))
    }

    /// Sends `line` followed by CRLF.
    pub fn send_line(self, line: &str) -> Self {
        self.step(Step::Send(format!("{line}\r\n").into_bytes()))
    }

    /// Sends `<captured tag> <text>\r\n`.
    pub fn send_tagged(self, text: &str) -> Self {
        self.step(Step::SendTagged(text.to_string()))
    }

    /// Waits `delay`, then sends raw bytes.
    pub fn send_after(self, delay: Duration, bytes: impl AsRef<[u8]>) -> Self {
        self.step(Step::SendAfter(delay, bytes.as_ref().to_vec()))
    }

    /// Sends `chunk` repeated `times` times.
    pub fn send_repeat(self, chunk: impl AsRef<[u8]>, times: u64) -> Self {
        self.step(Step::SendRepeat {
            chunk: chunk.as_ref().to_vec(),
            times,
        })
    }

    /// Sends bytes one at a time with `interval` after each.
    pub fn trickle(self, bytes: impl AsRef<[u8]>, interval: Duration) -> Self {
        self.step(Step::Trickle {
            bytes: bytes.as_ref().to_vec(),
            interval,
        })
    }

    /// Expects a tagged client line whose text after the tag matches `pattern`.
    pub fn expect(self, pattern: &str) -> Self {
        self.step(Step::Expect(pattern.to_string()))
    }

    /// Expects a client line that matches `pattern` as a whole.
    pub fn expect_line(self, pattern: &str) -> Self {
        self.step(Step::ExpectLine(pattern.to_string()))
    }

    /// Pauses.
    pub fn wait(self, duration: Duration) -> Self {
        self.step(Step::Wait(duration))
    }

    /// Starts server-side TLS with the certificate of `kind`.
    pub fn start_tls(self, kind: CertKind) -> Self {
        self.step(Step::StartTls(kind))
    }

    /// Closes the connection.
    pub fn close(self) -> Self {
        self.step(Step::Close)
    }

    /// Stops answering until the client gives up.
    pub fn stall(self) -> Self {
        self.step(Step::Stall)
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    /// Every byte the client sent: raw before TLS, decrypted after. The client's TLS handshake
    /// is not included.
    pub received: Vec<u8>,
    /// Offset in `received` where TLS began, if a TLS step ran.
    pub tls_started_at: Option<usize>,
    /// Whether a TLS handshake completed.
    pub tls_established: bool,
    /// Why the TLS handshake failed (e.g. the client rejected the certificate).
    pub tls_error: Option<String>,
    /// Why the script stopped early (timeout, mismatch, client closed, I/O error), if it did.
    pub error: Option<String>,
    /// How many steps ran to completion.
    pub steps_completed: usize,
    /// The client closed its side (EOF seen).
    pub client_closed: bool,
    /// The connection's thread has ended.
    pub finished: bool,
    /// The recording hit [`MAX_RECORDED`] and later bytes were dropped.
    pub truncated: bool,
}

type Reports = Arc<Mutex<Vec<ConnectionReport>>>;

/// A running scripted server on loopback; dropping it stops every thread.
pub struct ScriptedServer {
    addr: SocketAddr,
    pki: Arc<TestPki>,
    reports: Reports,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Starts a server on a free 127.0.0.1 port with freshly generated certificates.
    pub fn start(script: Script) -> ScriptedServer {
        Self::with_pki(script, Arc::new(TestPki::generate()))
    }

    /// Starts a server that uses the given certificates (so several servers, or a server and a
    /// Dovecot, can share one CA).
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn with_pki(script: Script, pki: Arc<TestPki>) -> ScriptedServer {
        Self::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), script, pki)
    }

    /// Starts a server on a free port of the loopback address `ip` (`::1` for IPv6 tests;
    /// the valid certificate names both 127.0.0.1 and ::1).
    ///
    /// # Panics
    /// If that address cannot be bound.
    pub fn start_at(ip: IpAddr, script: Script, pki: Arc<TestPki>) -> ScriptedServer {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a loopback port");
        let addr = listener.local_addr().expect("address of a bound listener");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let reports: Reports = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, reports, pki) = (Arc::clone(&stop), Arc::clone(&reports), Arc::clone(&pki));
            std::thread::Builder::new()
                .name(format!("scripted-{}", addr.port()))
                .spawn(move || accept_loop(listener, script, pki, reports, stop))
                .expect("spawn the scripted server thread")
        };
        ScriptedServer {
            addr,
            pki,
            reports,
            stop,
            thread: Some(thread),
        }
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The certificates this server presents.
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The CA file under which [`CertKind::Valid`] verifies.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_file()
    }

    /// A snapshot of every connection so far, in accept order.
    pub fn reports(&self) -> Vec<ConnectionReport> {
        lock(&self.reports).clone()
    }

    /// How many connections were accepted.
    pub fn connection_count(&self) -> usize {
        lock(&self.reports).len()
    }

    /// Everything the client sent, all connections concatenated.
    pub fn received(&self) -> Vec<u8> {
        lock(&self.reports)
            .iter()
            .flat_map(|r| r.received.iter().copied())
            .collect()
    }

    /// Whether the client ever sent `needle` (e.g. its password), on any connection.
    pub fn received_contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && lock(&self.reports)
                .iter()
                .any(|r| r.received.windows(needle.len()).any(|w| w == needle))
    }

    /// Waits up to `timeout` until at least one connection was accepted and every accepted
    /// connection has ended; returns whether that happened.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let reports = lock(&self.reports);
                if !reports.is_empty() && reports.iter().all(|r| r.finished) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(reports: &Reports) -> std::sync::MutexGuard<'_, Vec<ConnectionReport>> {
    // A poisoned lock means a connection thread panicked; the data is still worth reading.
    reports.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    script: Script,
    pki: Arc<TestPki>,
    reports: Reports,
    stop: Arc<AtomicBool>,
) {
    let mut threads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((sock, _)) => {
                let index = {
                    let mut r = lock(&reports);
                    r.push(ConnectionReport::default());
                    r.len() - 1
                };
                let mut conn = Conn {
                    sock,
                    pre: Vec::new(),
                    tls: None,
                    inbuf: Vec::new(),
                    tag: None,
                    stop: Arc::clone(&stop),
                    reports: Arc::clone(&reports),
                    index,
                };
                let (script, pki) = (script.clone(), Arc::clone(&pki));
                let spawned = std::thread::Builder::new()
                    .name(format!("scripted-conn-{index}"))
                    .spawn(move || {
                        let result = conn.run(&script, &pki);
                        conn.finish(result);
                    });
                match spawned {
                    Ok(handle) => threads.push(handle),
                    Err(e) => {
                        let mut r = lock(&reports);
                        r[index].error = Some(format!("cannot spawn a thread: {e}"));
                        r[index].finished = true;
                    }
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

/// Why a connection's script stopped.
enum End {
    /// The server is being dropped.
    Stopped,
    /// The script failed; the text says why.
    Failed(String),
    /// The connection was closed by a `Close` step.
    Closed,
    /// The client closed while the server was only listening (after the script or a stall).
    ClientClosed,
}

struct Conn {
    sock: TcpStream,
    /// Bytes read as plaintext but belonging to the TLS handshake, fed to rustls first.
    pre: Vec<u8>,
    tls: Option<rustls::ServerConnection>,
    /// Received plaintext not yet consumed by a step.
    inbuf: Vec<u8>,
    tag: Option<String>,
    stop: Arc<AtomicBool>,
    reports: Reports,
    index: usize,
}

/// Reads `pre` first, then the socket: how bytes that arrived with the STARTTLS command
/// reach the TLS engine.
struct PreThenSock<'a> {
    pre: &'a mut Vec<u8>,
    sock: &'a mut TcpStream,
}

impl Read for PreThenSock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pre.is_empty() {
            return self.sock.read(buf);
        }
        let n = buf.len().min(self.pre.len());
        buf[..n].copy_from_slice(&self.pre[..n]);
        self.pre.drain(..n);
        Ok(n)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Conn {
    fn report(&self, f: impl FnOnce(&mut ConnectionReport)) {
        let mut reports = lock(&self.reports);
        if let Some(r) = reports.get_mut(self.index) {
            f(r);
        }
    }

    fn record(&self, bytes: &[u8]) {
        self.report(|r| {
            let room = MAX_RECORDED.saturating_sub(r.received.len());
            if bytes.len() > room {
                r.truncated = true;
            }
            r.received
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
    }

    fn run(&mut self, script: &Script, pki: &TestPki) -> End {
        let setup = self
            .sock
            .set_nonblocking(false)
            .and_then(|()| self.sock.set_read_timeout(Some(POLL)))
            .and_then(|()| self.sock.set_write_timeout(Some(POLL)))
            .and_then(|()| self.sock.set_nodelay(true));
        if let Err(e) = setup {
            return End::Failed(format!("socket setup: {e}"));
        }
        for step in &script.steps {
            let outcome = self.play(step, script.step_timeout, pki);
            match outcome {
                Ok(()) => self.report(|r| r.steps_completed += 1),
                Err(end) => return end,
            }
            if matches!(step, Step::Close) {
                return End::Closed;
            }
        }
        // The script is over: keep listening so that whatever the client still sends (say,
        // credentials after a forged OK) is recorded.
        self.listen_until_closed()
    }

    fn finish(&mut self, end: End) {
        let error = match end {
            End::Failed(why) => Some(why),
            End::Stopped | End::Closed | End::ClientClosed => None,
        };
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut self.sock);
        }
        let _ = self.sock.shutdown(Shutdown::Both);
        self.report(|r| {
            if r.error.is_none() {
                r.error = error;
            }
            r.finished = true;
        });
    }

    fn play(&mut self, step: &Step, timeout: Duration, pki: &TestPki) -> Result<(), End> {
        let deadline = Instant::now() + timeout;
        match step {
            Step::Send(bytes) => self.write_all(bytes, deadline),
            Step::SendTagged(text) => {
                let tag = self.tag.clone().ok_or_else(|| {
                    End::Failed("send_tagged before any expect captured a tag".into())
                })?;
                self.write_all(format!("{tag} {text}\r\n").as_bytes(), deadline)
            }
            Step::SendAfter(delay, bytes) => {
                self.sleep(*delay)?;
                self.write_all(bytes, Instant::now() + timeout)
            }
            Step::SendRepeat { chunk, times } => {
                for _ in 0..*times {
                    // Each chunk gets the whole step bound: a slow reader is not a failure as
                    // long as it keeps reading.
                    self.write_all(chunk, Instant::now() + timeout)?;
                }
                Ok(())
            }
            Step::Trickle { bytes, interval } => {
                for byte in bytes {
                    self.write_all(std::slice::from_ref(byte), Instant::now() + timeout)?;
                    self.sleep(*interval)?;
                }
                Ok(())
            }
            Step::Expect(pattern) => {
                let line = self.read_line(deadline, pattern)?;
                let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                if tag.is_empty() || !glob_match(pattern, rest) {
                    return Err(End::Failed(format!(
                        "expected a tagged line matching {pattern:?}, got {line:?}"
                    )));
                }
                self.tag = Some(tag.to_string());
                Ok(())
            }
            Step::ExpectLine(pattern) => {
                let line = self.read_line(deadline, pattern)?;
                if glob_match(pattern, &line) {
                    Ok(())
                } else {
                    Err(End::Failed(format!(
                        "expected a line matching {pattern:?}, got {line:?}"
                    )))
                }
            }
            Step::Wait(duration) => self.sleep(*duration),
            Step::StartTls(kind) => self.start_tls(pki.server_config(*kind), deadline),
            Step::Close => {
                // Record what already arrived (and avoid a reset from unread data).
                let drain_until = Instant::now() + POLL;
                while let Ok(n) = self.fill(drain_until) {
                    self.inbuf.clear();
                    if n == 0 {
                        break;
                    }
                }
                Ok(())
            }
            Step::Stall => match self.listen_until_closed() {
                End::ClientClosed => Err(End::ClientClosed),
                other => Err(other),
            },
        }
    }

    /// Sleeps in slices so that dropping the server is noticed.
    fn sleep(&self, duration: Duration) -> Result<(), End> {
        let until = Instant::now() + duration;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(End::Stopped);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    fn listen_until_closed(&mut self) -> End {
        loop {
            match self.fill(Instant::now() + Duration::from_secs(3600)) {
                Ok(0) => return End::ClientClosed,
                Ok(_) => self.inbuf.clear(),
                Err(end) => return end,
            }
        }
    }

    fn read_line(&mut self, deadline: Instant, pattern: &str) -> Result<String, End> {
        loop {
            if let Some(pos) = self.inbuf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.inbuf.drain(..=pos).collect();
                let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(String::from_utf8_lossy(text).into_owned());
            }
            if self.inbuf.len() > MAX_LINE {
                return Err(End::Failed(format!(
                    "client line longer than {MAX_LINE} bytes while expecting {pattern:?}"
                )));
            }
            match self.fill(deadline) {
                Ok(0) => {
                    self.report(|r| r.client_closed = true);
                    return Err(End::Failed(format!(
                        "client closed the connection while expecting {pattern:?}"
                    )));
                }
                Ok(_) => {}
                Err(End::Failed(why)) => {
                    return Err(End::Failed(format!("{why} while expecting {pattern:?}")))
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Reads more plaintext into `inbuf` (recording it). `Ok(0)` is end of stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize, End> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(End::Stopped);
            }
            if Instant::now() >= deadline {
                return Err(End::Failed("timed out waiting for the client".into()));
            }
            match self.read_plain(&mut buf) {
                Ok(0) => {
                    self.report(|r| r.client_closed = true);
                    return Ok(0);
                }
                Ok(n) => {
                    self.record(&buf[..n]);
                    self.inbuf.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.report(|r| r.client_closed = true);
                    return Ok(0);
                }
                Err(e) => return Err(End::Failed(format!("read: {e}"))),
            }
        }
    }

    /// One read of application data: from the socket, or decrypted from TLS.
    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let mut source = PreThenSock {
                pre: &mut self.pre,
                sock: &mut self.sock,
            };
            if tls.read_tls(&mut source)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            while tls.wants_write() {
                tls.write_tls(&mut self.sock)?;
            }
        }
    }

    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> Result<(), End> {
        while !data.is_empty() {
            match self.tls.as_mut() {
                None => match self.sock.write(data) {
                    Ok(0) => return Err(End::Failed("write: connection closed".into())),
                    Ok(n) => data = &data[n..],
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => return Err(End::Failed(format!("write: {e}"))),
                },
                Some(tls) => match tls.writer().write(data) {
                    Ok(n) => data = &data[n..],
                    Err(e) => return Err(End::Failed(format!("TLS write: {e}"))),
                },
            }
            self.flush_tls(deadline)?;
            if self.stop.load(Ordering::Relaxed) {
                return Err(End::Stopped);
            }
            if !data.is_empty() && Instant::now() >= deadline {
                return Err(End::Failed("timed out writing to the client".into()));
            }
        }
        Ok(())
    }

    fn flush_tls(&mut self, deadline: Instant) -> Result<(), End> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(End::Stopped);
                    }
                    if Instant::now() >= deadline {
                        return Err(End::Failed("timed out writing to the client".into()));
                    }
                }
                Err(e) => return Err(End::Failed(format!("TLS write: {e}"))),
            }
        }
        Ok(())
    }

    fn start_tls(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        deadline: Instant,
    ) -> Result<(), End> {
        // Bytes that arrived after the last consumed line are the client's handshake, unless
        // the client (wrongly) kept talking in clear: only a TLS handshake record (0x16) is
        // taken out of the recording.
        let leftover = std::mem::take(&mut self.inbuf);
        if leftover.first() == Some(&0x16) {
            self.report(|r| {
                let keep = r.received.len().saturating_sub(leftover.len());
                r.received.truncate(keep);
            });
        }
        self.pre = leftover;
        self.report(|r| r.tls_started_at = Some(r.received.len()));
        let tls = rustls::ServerConnection::new(config)
            .map_err(|e| End::Failed(format!("TLS setup: {e}")))?;
        self.tls = Some(tls);
        loop {
            self.flush_tls(deadline)?;
            let Some(tls) = self.tls.as_mut() else {
                return Err(End::Failed("TLS state lost".into()));
            };
            if !tls.is_handshaking() {
                break;
            }
            if self.stop.load(Ordering::Relaxed) {
                return Err(End::Stopped);
            }
            if Instant::now() >= deadline {
                return self.tls_failed("timed out in the TLS handshake".into());
            }
            let mut source = PreThenSock {
                pre: &mut self.pre,
                sock: &mut self.sock,
            };
            match tls.read_tls(&mut source) {
                Ok(0) => {
                    return self.tls_failed("client closed during the TLS handshake".into());
                }
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Send our alert, if any, so the client learns why.
                        let _ = tls.write_tls(&mut self.sock);
                        return self.tls_failed(e.to_string());
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return self.tls_failed(format!("read during handshake: {e}")),
            }
        }
        self.report(|r| r.tls_established = true);
        Ok(())
    }

    fn tls_failed(&mut self, why: String) -> Result<(), End> {
        self.tls = None;
        self.report(|r| r.tls_error = Some(why.clone()));
        Err(End::Failed(format!("TLS handshake failed: {why}")))
    }
}

/// ASCII case-insensitive glob: `*` matches any run (including none), `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` and the text index it is currently assumed to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_basics() {
        assert!(glob_match("CAPABILITY", "capability"));
        assert!(glob_match("LOGIN *", "LOGIN user pass"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("LOGIN *", "LOGOUT"));
        assert!(!glob_match("STARTTLS", "STARTTLS extra"));
        assert!(glob_match("*TLS", "STARTTLS"));
        assert!(glob_match("**a", "bba"));
    }
}
