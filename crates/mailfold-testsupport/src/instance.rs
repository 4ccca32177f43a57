//! What the two private servers ([`crate::Dovecot`], [`crate::Cyrus`]) do alike to start and
//! stop: name an instance, make its test users, retry a start whose ports were taken, wait
//! for a greeting, run a helper program and stop processes, every wait bounded.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid};

use crate::rng::SplitMix64;

/// The RFC 6154 special-use mailboxes an instance can give each user, with their attributes.
pub(crate) const SPECIAL_USE: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// How many sets of free ports a start tries before it gives up.
const PORT_ATTEMPTS: usize = 5;

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A name no other instance of this test process has: `prefix`, the process ID and a count.
pub(crate) fn instance_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        INSTANCES.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test account: login name, password, and the OAuth bearer token the introspection
/// endpoint accepts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// Login name (`user1`, `user2`, ...).
    pub name: String,
    /// Password, random per run, usable with every password mechanism.
    pub password: String,
    /// Bearer token for XOAUTH2 and OAUTHBEARER, random per run.
    pub token: String,
}

/// Test users `user1`..`userN` with random passwords, and random OAuth bearer tokens when
/// `tokens` is set (empty otherwise: a server without OAuth).
pub(crate) fn test_users(rng: &mut SplitMix64, n: usize, tokens: bool) -> Vec<TestUser> {
    (1..=n)
        .map(|i| TestUser {
            name: format!("user{i}"),
            password: format!("pw{i}-{}", rng.hex(12)),
            token: if tokens {
                format!("tok{i}-{}", rng.hex(24))
            } else {
                String::new()
            },
        })
        .collect()
}

/// The `i`-th of a `server`'s test users, counting from 0.
///
/// # Panics
/// When the instance has fewer users.
pub(crate) fn nth_user<'a>(users: &'a [TestUser], i: usize, server: &str) -> &'a TestUser {
    users.get(i).unwrap_or_else(|| {
        panic!(
            "{server}::user({i}): the instance has only {} users; use .users(n)",
            users.len()
        )
    })
}

/// Why a start attempt on freshly chosen ports failed in a way worth another try: another
/// process took one of the ports between [`crate::free_port`] and the server's bind.
pub(crate) struct PortTaken(pub(crate) String);

/// Runs `attempt` (choose free ports, configure, start, wait until ready) until it does not
/// find a port taken, at most [`PORT_ATTEMPTS`] times. Any other failure panics in `attempt`.
///
/// # Panics
/// When every attempt found a port taken.
pub(crate) fn on_free_ports<T>(
    server: &str,
    mut attempt: impl FnMut() -> Result<T, PortTaken>,
) -> T {
    let mut last_failure = String::new();
    for _ in 0..PORT_ATTEMPTS {
        match attempt() {
            Ok(started) => return started,
            Err(PortTaken(why)) => last_failure = why,
        }
    }
    panic!(
        "private {server} could not bind its ports after {PORT_ATTEMPTS} attempts: {last_failure}"
    );
}

/// The first line the server at `addr` sends, at most `max` bytes, or `None` when it cannot
/// be read within `read_timeout`. Says LOGOUT, so the server's log does not fill with
/// disconnects without a login.
pub(crate) fn greeting(addr: SocketAddr, read_timeout: Duration, max: usize) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(read_timeout)).ok()?;
    let mut line = Vec::new();
    let mut chunk = [0u8; 512];
    while !line.ends_with(b"\n") && line.len() < max {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.write_all(b"r LOGOUT\r\n");
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// Whether `child` exits within `grace`.
pub(crate) fn exits_within(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    matches!(child.try_wait(), Ok(Some(_)))
}

/// SIGTERM, then SIGKILL, to the processes `left` lists, until it lists none; each signal is
/// repeated for at most two seconds.
pub(crate) fn stop_all(left: impl Fn() -> Vec<Pid>) {
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = left();
            if pids.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                break;
            }
            for p in &pids {
                let _ = kill(*p, signal);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Live (non-zombie) processes other than this one whose command line (its arguments, each
/// ended by a NUL byte) `matches`.
pub(crate) fn processes_where(matches: impl Fn(&[u8]) -> bool) -> Vec<Pid> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).ok() == Some(me) {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !matches(&cmdline) {
            continue;
        }
        // A zombie waits for its parent to reap it; signalling it is pointless.
        let zombie = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
            .unwrap_or(false);
        if !zombie {
            found.push(Pid::from_raw(pid));
        }
    }
    found
}

/// Runs a command with stdin fed from a thread and output collected by threads, killing it
/// if it outlives `timeout`; its standard output, or `Err` with the exit status and what it
/// printed.
pub(crate) fn run_bounded(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_or_kill(&mut child, timeout);
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(format!("{s}: {stderr}{stdout}")),
        None => Err(format!("timed out after {timeout:?}: {stderr}")),
    }
}

/// The exit status of `child` within `timeout`; `None` when it had to be killed.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Every file of a directory where the server records sessions (Dovecot's rawlog, Cyrus'
/// telemetry), in name order, each headed by its name; empty when there is none.
pub(crate) fn recorded_sessions(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return String::new(),
    };
    files.sort();
    let mut out = String::new();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        out.push_str(&format!("== {} ==\n", name.unwrap_or_default()));
        out.push_str(&String::from_utf8_lossy(
            &fs::read(&file).unwrap_or_default(),
        ));
        out.push('\n');
    }
    out
}

/// Creates `path` (and its parents), owned by `owner` when the test runs as root and the
/// server's processes do not.
pub(crate) fn make_owned_dir(path: &Path, owner: Option<(Uid, Gid)>) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    chown(path, owner);
}

/// Gives `path` to `owner`, when there is one.
pub(crate) fn chown(path: &Path, owner: Option<(Uid, Gid)>) {
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// Writes `bytes` to `path` with permissions `mode`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
