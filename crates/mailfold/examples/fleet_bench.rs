//! The measuring half of bench/fleet (run it through that script): `mailfold fleet run
//! --jobs J` against a shell loop of `mailfold sync ACCOUNT`, on one private Dovecot with
//! generated accounts, and the per-account costs the docs/fleet.md estimates come from.
//!
//! Usage: fleet_bench MAILFOLD_BINARY ACCOUNTS MESSAGES JOBS REPEATS OUT.md
//!
//! Both sides sync the same accounts over implicit TLS with the same account settings, from
//! empty mirrors and state, once with `fsync = false` and once with `fsync = true` (the
//! default). The conditions are made equal before each timed run:
//!
//! - **The server is warm for both.** Dovecot builds its indexes and caches the fields a
//!   client asks for on a mailbox's first opening; whichever side ran first would pay that
//!   for both. An untimed fleet run into a scratch directory (kept, not deleted, until the
//!   end) opens every mailbox first (as the mail readers of a real server have long done).
//! - **The file system has forgotten recent deletions.** On ext4 without a journal (the
//!   machine these figures come from) the inode allocator skips inodes freed in the last
//!   `vm.dirty_expire_centisecs` (`recently_deleted`), which makes creating files right
//!   after many deletions several times dearer; each timed run starts that long (plus 6 s)
//!   after the last deletion or run. Other processes' deletions on the same file system
//!   still disturb a run, so each mode runs REPEATS rounds, the two sides alternating, and
//!   the fastest run of each kind is reported.
//!
//! Wall times come from the clock around each run; mailfold's CPU time is this process's
//! waited-for children's (`/proc/self/stat`, cutime and cstime, before and after); the
//! server's is Dovecot's: every process under its master (each one's own and its reaped
//! children's, so the per-session `imap` and `imap-login` processes count). Every mirror is
//! checked against its account after each first run. The result is a Markdown fragment
//! written to OUT.md, which bench/fleet pastes into docs/fleet.md.

#[path = "../tests/fleet_util/mod.rs"]
mod fleet_util;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mailfold_testsupport::Dovecot;

/// The time one side took, and the CPU it and the server used.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    wall: Duration,
    /// mailfold: user, system.
    client: (f64, f64),
    /// Dovecot: user, system.
    server: (f64, f64),
}

impl Measured {
    fn client_cpu(&self) -> f64 {
        self.client.0 + self.client.1
    }
    fn server_cpu(&self) -> f64 {
        self.server.0 + self.server.1
    }
}

/// What one fsync mode measured.
struct Mode {
    fsync: bool,
    looped: Measured,
    fleet: Measured,
    idle: Measured,
    /// Per-account figures from the fleet run's JSON lines and files.
    bytes: u64,
    median_ms: u64,
    mirror_bytes: u64,
    state_bytes: u64,
}

struct Bench<'a> {
    bin: &'a str,
    dovecot: Dovecot,
    written: fleet_util::Written,
    accounts: usize,
    messages: usize,
    jobs: usize,
    home: PathBuf,
    server_pid: u32,
    /// Rounds of each mode; the fastest run of each kind is reported.
    repeats: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: fleet_bench MAILFOLD ACCOUNTS MESSAGES JOBS REPEATS OUT.md");
        std::process::exit(2);
    }
    let accounts: usize = args[2].parse().expect("ACCOUNTS");
    let messages: usize = args[3].parse().expect("MESSAGES");
    let jobs: usize = args[4].parse().expect("JOBS");
    let repeats: usize = args[5].parse().expect("REPEATS");
    assert!(repeats >= 1, "REPEATS must be at least 1");
    let out_md = Path::new(&args[6]);

    let dovecot = Dovecot::builder()
        .users(accounts)
        .special_use(false)
        .start();
    let written = fleet_util::populate(&dovecot, accounts, &["INBOX"], messages);
    let work = tempfile::tempdir().expect("tempdir");
    let server_pid = dovecot_pid();
    assert!(
        server_pid != 0,
        "the Dovecot master is not a child of this process"
    );
    let b = Bench {
        bin: &args[1],
        dovecot,
        written,
        accounts,
        messages,
        jobs,
        home: work.path().to_path_buf(),
        server_pid,
        repeats,
    };

    // Warm the server (module docs). The scratch mirror is kept until the end: deleting its
    // files now would make the next runs' file creations dearer (module docs).
    let scratch = work.path().join("warm");
    let manifest = b.manifest(&scratch, false);
    b.fleet_run(&manifest, "warm-up");

    let load_start = loadavg();
    let modes: Vec<Mode> = [false, true]
        .into_iter()
        .map(|fsync| b.mode(work.path(), fsync))
        .collect();
    let load_end = loadavg();
    let md = report(&b, &modes, &load_start, &load_end);
    std::fs::write(out_md, md).expect("write the result");
    for m in &modes {
        println!(
            "fsync = {}: fleet {:.1}s vs loop {:.1}s: {:.2}x",
            m.fsync,
            m.fleet.wall.as_secs_f64(),
            m.looped.wall.as_secs_f64(),
            m.fleet.wall.as_secs_f64() / m.looped.wall.as_secs_f64()
        );
    }
    println!("written to {}", out_md.display());
}

impl Bench<'_> {
    /// The loop and the fleet (a first sync, then one with nothing new) in one fsync mode.
    fn mode(&self, work: &Path, fsync: bool) -> Mode {
        let tag = if fsync { "fsync-on" } else { "fsync-off" };
        let names: Vec<&str> = self.dovecot.users()[..self.accounts]
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        let script = format!(
            "for a in {}; do \"$MAILFOLD\" --config \"$CONFIG\" -q sync \"$a\" >/dev/null || exit 1; done",
            names.join(" ")
        );
        let mut best: Option<Mode> = None;
        let faster = |a: &Measured, b: Option<&Measured>| b.is_none_or(|b| a.wall < b.wall);
        for round in 0..self.repeats {
            // The shell loop: one personal config with every account, `mailfold sync NAME`
            // each.
            let loop_dir = work.join(format!("loop-{tag}-{round}"));
            // The manifest is not used; writing it writes the secrets the config points at.
            self.manifest(&loop_dir, fsync);
            let config_path = loop_dir.join("config.toml");
            std::fs::write(&config_path, self.loop_config(&loop_dir, fsync)).unwrap();
            settle();
            let looped = self.measure(|| {
                let status = Command::new("sh")
                    .args(["-c", &script])
                    .env("MAILFOLD", self.bin)
                    .env("CONFIG", &config_path)
                    .env("HOME", &self.home)
                    .status()
                    .expect("run the shell loop");
                assert!(status.success(), "the shell loop failed");
            });
            fleet_util::assert_mirrors(&self.dovecot, &loop_dir, &self.written);

            // The fleet: a manifest with the same accounts, one process.
            let fleet_dir = work.join(format!("fleet-{tag}-{round}"));
            let manifest = self.manifest(&fleet_dir, fsync);
            settle();
            let mut out = Vec::new();
            let fleet = self.measure(|| out = self.fleet_run(&manifest, "fleet run"));
            fleet_util::assert_mirrors(&self.dovecot, &fleet_dir, &self.written);
            // A re-run with nothing to do: the periodic (CronJob) cost per account.
            let idle = self.measure(|| {
                self.fleet_run(&manifest, "fleet run, nothing new");
            });
            eprintln!(
                "fleet_bench: fsync = {fsync}, round {}: loop {:.1} s, fleet {:.1} s, nothing new {:.1} s",
                round + 1,
                looped.wall.as_secs_f64(),
                fleet.wall.as_secs_f64(),
                idle.wall.as_secs_f64()
            );
            // Each kind keeps its own fastest run; the per-account figures go with the
            // fastest fleet run.
            let prev = best.take();
            let (prev_loop, prev_idle) = (
                prev.as_ref().map(|p| p.looped),
                prev.as_ref().map(|p| p.idle),
            );
            let mut m = match prev {
                Some(p) if !faster(&fleet, Some(&p.fleet)) => p,
                _ => self.fleet_figures(fsync, fleet, &out, &fleet_dir),
            };
            m.looped = match prev_loop {
                Some(p) if !faster(&looped, Some(&p)) => p,
                _ => looped,
            };
            m.idle = match prev_idle {
                Some(p) if !faster(&idle, Some(&p)) => p,
                _ => idle,
            };
            best = Some(m);
        }
        best.expect("at least one round")
    }

    /// The per-account figures of a first fleet run (its JSON lines and files).
    fn fleet_figures(&self, fsync: bool, fleet: Measured, out: &[u8], dir: &Path) -> Mode {
        let lines = fleet_util::json_lines(out);
        let per: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l.get("account").is_some())
            .collect();
        assert_eq!(per.len(), self.accounts);
        let downloaded: u64 = per.iter().map(|l| l["downloaded"].as_u64().unwrap()).sum();
        assert_eq!(
            downloaded,
            (self.accounts * self.messages) as u64,
            "every message mirrored"
        );
        let bytes: u64 = per
            .iter()
            .map(|l| l["bytes_received"].as_u64().unwrap())
            .sum();
        let mut durations: Vec<u64> = per
            .iter()
            .map(|l| l["duration_ms"].as_u64().unwrap())
            .collect();
        durations.sort_unstable();
        Mode {
            fsync,
            looped: Measured::default(),
            fleet,
            idle: Measured::default(),
            bytes,
            median_ms: durations[durations.len() / 2],
            mirror_bytes: du(&dir.join("mirror")),
            state_bytes: du(&dir.join("state")),
        }
    }

    /// The fleet manifest of every account under `dir` (fleet_util writes `fsync = false`).
    fn manifest(&self, dir: &Path, fsync: bool) -> PathBuf {
        let addr = self.dovecot.imaps_addr();
        let path =
            fleet_util::write_manifest(dir, &self.dovecot, self.accounts, addr, "implicit", "", "");
        if fsync {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.matches("\nfsync = false\n").count(), 1, "{text}");
            let text = text.replace("\nfsync = false\n", "\nfsync = true\n");
            std::fs::write(&path, text).unwrap();
        }
        path
    }

    /// The personal config of the loop: the same accounts, secrets and paths as
    /// [`Bench::manifest`] writes for `dir`.
    fn loop_config(&self, dir: &Path, fsync: bool) -> String {
        let addr = self.dovecot.imaps_addr();
        let mut config = String::new();
        for u in &self.dovecot.users()[..self.accounts] {
            let d = dir.display();
            let _ = write!(
                config,
                "[accounts.{n}]\nhost = \"{ip}\"\nport = {port}\nca_file = {ca:?}\nuser = \"{n}\"\n\
                 password_file = \"{d}/secrets/{n}\"\nlocal = \"{d}/mirror/{n}\"\n\
                 state = \"{d}/state/{n}.sqlite\"\nfsync = {fsync}\n\n",
                n = u.name,
                ip = addr.ip(),
                port = addr.port(),
                ca = self.dovecot.ca_file().display().to_string(),
            );
        }
        config
    }

    /// `mailfold fleet run -q --jobs J MANIFEST`; its stdout.
    fn fleet_run(&self, manifest: &Path, what: &str) -> Vec<u8> {
        let out = Command::new(self.bin)
            .args(["fleet", "run", "-q", "--jobs", &self.jobs.to_string()])
            .arg(manifest)
            .env("HOME", &self.home)
            .output()
            .expect("run mailfold fleet");
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs `f` and measures it (module docs).
    fn measure(&self, f: impl FnOnce()) -> Measured {
        let (c0, s0) = (children_cpu(), tree_cpu(self.server_pid));
        let t = Instant::now();
        f();
        let wall = t.elapsed();
        let (c1, s1) = (children_cpu(), tree_cpu(self.server_pid));
        Measured {
            wall,
            client: (c1.0 - c0.0, c1.1 - c0.1),
            server: (s1.0 - s0.0, s1.1 - s0.1),
        }
    }
}

/// Waits until the file system has forgotten the deletions and runs before now (module
/// docs): ext4 skips an inode freed less than `vm.dirty_expire_centisecs` ago, 5 s more
/// while its inode table block is still dirty (fs/ext4/ialloc.c, `recently_deleted`);
/// then a second.
fn settle() {
    let centis: u64 = std::fs::read_to_string("/proc/sys/vm/dirty_expire_centisecs")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(3000);
    std::thread::sleep(Duration::from_millis(centis * 10 + 6000));
}

fn report(b: &Bench<'_>, modes: &[Mode], load_start: &str, load_end: &str) -> String {
    let (accounts, messages, jobs) = (b.accounts, b.messages, b.jobs);
    let n = accounts as f64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let bytes = modes[0].bytes;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured by `bench/fleet` on {cores} cores ({}), mailfold {} ({} build): {accounts} accounts of \
         {messages} messages (about {:.1} KB each) on one private Dovecot over implicit TLS, the \
         server warm and the file system settled before each run, {} (the two sides \
         alternating). Load average (1 min) of the machine: \
         {load_start} when the runs started, {load_end} when they ended (other work on the \
         machine competes for the same cores).\n",
        uname(),
        env!("CARGO_PKG_VERSION"),
        std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "unknown".into()),
        bytes as f64 / (n * messages as f64) / 1000.0,
        if b.repeats == 1 {
            "one round".to_string()
        } else {
            format!("the fastest of {} rounds of each run", b.repeats)
        },
    );
    let _ = writeln!(
        md,
        "| `fsync` | run | wall time | CPU time of mailfold | CPU time of the server (Dovecot) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|");
    for m in modes {
        for (label, r) in [
            (
                "shell loop of `mailfold sync ACCOUNT`".to_string(),
                &m.looped,
            ),
            (format!("`mailfold fleet run --jobs {jobs}`"), &m.fleet),
            (
                format!("`mailfold fleet run --jobs {jobs}`, nothing new"),
                &m.idle,
            ),
        ] {
            let _ = writeln!(
                md,
                "| {} | {label} | {} | {:.1} s | {:.1} s |",
                m.fsync,
                secs(r.wall),
                r.client_cpu(),
                r.server_cpu()
            );
        }
    }
    let _ = writeln!(md);
    for m in modes {
        let ratio = m.fleet.wall.as_secs_f64() / m.looped.wall.as_secs_f64();
        let verdict = if ratio <= 0.3 { "met" } else { "not met" };
        // The fleet cannot finish before the cores have done its CPU work and the server's.
        let floor = (m.fleet.client_cpu() + m.fleet.server_cpu())
            / cores as f64
            / m.looped.wall.as_secs_f64();
        let server_floor = m.fleet.server_cpu() / cores as f64 / m.looped.wall.as_secs_f64();
        // What mailfold's CPU may come to at most for the target on these cores, with the
        // server's CPU as measured and every core busy all the time (the best case).
        let budget = 0.3 * m.looped.wall.as_secs_f64() * cores as f64 - m.fleet.server_cpu();
        let budget_words = if budget > 0.0 {
            format!(
                "so that even with every core busy all the time, the target needs mailfold's CPU \
                 time at or under {budget:.1} s ({:.1} ms an account; measured: {:.1} ms)",
                budget * 1000.0 / n,
                m.fleet.client_cpu() * 1000.0 / n
            )
        } else {
            "so that the target is out of reach on these cores whatever mailfold spends".into()
        };
        let _ = writeln!(
            md,
            "- `fsync = {}`{}: fleet wall time / shell loop wall time **{ratio:.2}x** (target ≤ \
             0.3x: {verdict}). The fleet's CPU work and the server's, spread over {cores} \
             cores, alone come to {floor:.2}x of the loop's wall time; the server's alone to \
             {server_floor:.2}x, {budget_words}.",
            m.fsync,
            if m.fsync { " (the default)" } else { "" },
        );
    }
    // The per-account costs and the estimates: the default mode.
    let m = modes.iter().find(|m| m.fsync).unwrap_or(&modes[0]);
    let cpu_per = m.fleet.client_cpu() / n;
    let idle_cpu_per = m.idle.client_cpu() / n;
    let server_per = m.fleet.server_cpu() / n;
    let wall_per_job = m.fleet.wall.as_secs_f64() * jobs as f64 / n;
    let idle_wall_per_job = m.idle.wall.as_secs_f64() * jobs as f64 / n;
    let disk_per = (m.mirror_bytes + m.state_bytes) as f64 / n;
    let _ = writeln!(
        md,
        "\nPer account (the fleet run with `fsync = {}`, from its JSON lines, the CPU times and \
         the files):\n",
        m.fsync
    );
    let _ = writeln!(md, "| cost | per account |");
    let _ = writeln!(md, "|---|---:|");
    let _ = writeln!(md, "| CPU of mailfold, first sync | {:.3} s |", cpu_per);
    let _ = writeln!(
        md,
        "| CPU of the server, first sync | {:.3} s |",
        server_per
    );
    let _ = writeln!(
        md,
        "| CPU of mailfold, sync with nothing new | {:.3} s |",
        idle_cpu_per
    );
    let _ = writeln!(
        md,
        "| wall time, first sync (median) | {:.3} s |",
        m.median_ms as f64 / 1000.0
    );
    let _ = writeln!(
        md,
        "| bytes from the server | {} |",
        human(m.bytes as f64 / n)
    );
    let _ = writeln!(
        md,
        "| disk (Maildir + state database) | {} |",
        human(disk_per)
    );
    let _ = writeln!(
        md,
        "| state database alone | {} |",
        human(m.state_bytes as f64 / n)
    );
    let _ = writeln!(
        md,
        "\nEstimates from these per-account costs (linear in accounts; scale by your mailboxes' \
         size, since these accounts hold {messages} small messages each). `jobs` slots per \
         node and the server cap bound the rate as shown; the server's own CPU is not in \
         them (it runs elsewhere in a real fleet):\n"
    );
    let _ = writeln!(md, "| accounts | layout | first sync (estimate) | periodic run, nothing new (estimate) | disk |");
    let _ = writeln!(md, "|---:|---|---:|---:|---:|");
    for (label, count, nodes, layout) in [
        ("10", 10usize, 1usize, "one machine, `fleet run --jobs 8`"),
        ("1,000", 1_000, 1, "one machine, `fleet run --jobs 8`"),
        ("100,000", 100_000, 50, "50 nodes × 8 jobs (`--shards 50`)"),
    ] {
        let slots = (nodes * jobs) as f64;
        let c = count as f64;
        // Wall: accounts run `slots` at a time at the measured wall time per account
        // (which already includes waiting for the server), or the CPU bound, whichever
        // is larger; the same for the run with nothing new.
        let wall = (c * wall_per_job / slots).max(c * cpu_per / (nodes * cores) as f64);
        let idle = (c * idle_wall_per_job / slots).max(c * idle_cpu_per / (nodes * cores) as f64);
        let _ = writeln!(
            md,
            "| {label} | {layout} | {} | {} | {} |",
            dur(wall),
            dur(idle),
            human(c * disk_per)
        );
    }
    let _ = writeln!(
        md,
        "\nThe 100,000-account row is an estimate, not a measurement: it assumes the servers \
         accept 400 sessions at once (set `max_connections_per_server` to what yours allow; \
         the time grows in proportion when it is lower)."
    );
    md
}

/// CPU time (user, system) of this process's waited-for children so far, in seconds.
fn children_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // cutime and cstime: fields 16 and 17 of the line.
    let f = stat_fields(&stat);
    let hz = clock_ticks();
    (tick(&f, 16) / hz, tick(&f, 17) / hz)
}

/// CPU time (user, system) in seconds of `root` and every live process under it, each with
/// its reaped children's (so processes that came and went under the tree count too).
fn tree_cpu(root: u32) -> (f64, f64) {
    let mut procs: Vec<(u32, u32, [f64; 4])> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let f = stat_fields(&stat);
        let ppid = tick(&f, 4) as u32;
        procs.push((
            pid,
            ppid,
            [tick(&f, 14), tick(&f, 15), tick(&f, 16), tick(&f, 17)],
        ));
    }
    let hz = clock_ticks();
    let (mut user, mut sys) = (0.0, 0.0);
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for (pid, ppid, t) in &procs {
            if *pid == p {
                user += t[0] + t[2];
                sys += t[1] + t[3];
            }
            if *ppid == p {
                todo.push(*pid);
            }
        }
    }
    (user / hz, sys / hz)
}

/// The fields of a /proc/PID/stat line, numbered from 1 as proc(5) does; the command name
/// (field 2, in parentheses, may hold spaces) is left out.
fn stat_fields(stat: &str) -> Vec<&str> {
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // Field 3 onwards; two placeholders keep the numbering.
    let mut f = vec!["", ""];
    f.extend(rest.split_whitespace());
    f
}

fn tick(f: &[&str], field: usize) -> f64 {
    f.get(field - 1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0) as f64
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(100) as f64
}

/// The pid of the Dovecot master: the child of this process named `dovecot`.
fn dovecot_pid() -> u32 {
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat.contains("(dovecot)") && tick(&stat_fields(&stat), 4) as u32 == me {
            return pid;
        }
    }
    0
}

/// The 1-minute load average, as /proc/loadavg gives it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&p),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn uname() -> String {
    Command::new("uname")
        .args(["-sm"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn dur(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn human(b: f64) -> String {
    if b < 1e6 {
        format!("{:.0} KB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else if b < 1e12 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} TB", b / 1e12)
    }
}
