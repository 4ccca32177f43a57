//! The measuring half of bench/fleet (run it through that script): `mailfold fleet run
//! --jobs J` against a shell loop of `mailfold sync ACCOUNT`, on one private Dovecot with
//! generated accounts, and the per-account costs the docs/fleet.md estimates come from.
//!
//! Usage: fleet_bench MAILFOLD_BINARY ACCOUNTS MESSAGES JOBS OUT.md
//!
//! Both sides start from empty mirrors and state and sync the same accounts over implicit
//! TLS with the same account settings (`fsync = false` for both: the comparison is about
//! running accounts side by side, not about the disk). Wall times come from the clock
//! around each side; CPU times are this process's children's (`/proc/self/stat`, cutime +
//! cstime) before and after; sizes are the files on disk. The result is a Markdown
//! fragment written to OUT.md, which bench/fleet pastes into docs/fleet.md.

#[path = "../tests/fleet_util/mod.rs"]
mod fleet_util;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailfold_testsupport::Dovecot;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: fleet_bench MAILFOLD ACCOUNTS MESSAGES JOBS OUT.md");
        std::process::exit(2);
    }
    let bin = &args[1];
    let accounts: usize = args[2].parse().expect("ACCOUNTS");
    let messages: usize = args[3].parse().expect("MESSAGES");
    let jobs: usize = args[4].parse().expect("JOBS");
    let out_md = Path::new(&args[5]);

    let dovecot = Dovecot::builder()
        .users(accounts)
        .special_use(false)
        .start();
    fleet_util::populate(&dovecot, accounts, &["INBOX"], messages);
    let work = tempfile::tempdir().expect("tempdir");
    let addr = dovecot.imaps_addr();

    // The shell loop: one personal config with every account, `mailfold sync NAME` each.
    let loop_dir = work.path().join("loop");
    let manifest_loop =
        fleet_util::write_manifest(&loop_dir, &dovecot, accounts, addr, "implicit", "", "");
    let mut config = String::new();
    for u in &dovecot.users()[..accounts] {
        let d = loop_dir.display();
        let _ = write!(
            config,
            "[accounts.{n}]\nhost = \"{ip}\"\nport = {port}\nca_file = {ca:?}\nuser = \"{n}\"\n\
             password_file = \"{d}/secrets/{n}\"\nlocal = \"{d}/mirror/{n}\"\n\
             state = \"{d}/state/{n}.sqlite\"\nfsync = false\n\n",
            n = u.name,
            ip = addr.ip(),
            port = addr.port(),
            ca = dovecot.ca_file().display().to_string(),
        );
    }
    let _ = manifest_loop;
    let config_path = loop_dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let names: Vec<String> = dovecot.users()[..accounts]
        .iter()
        .map(|u| u.name.clone())
        .collect();
    let script = format!(
        "for a in {}; do \"$MAILFOLD\" --config \"$CONFIG\" -q sync \"$a\" >/dev/null || exit 1; done",
        names.join(" ")
    );
    let load_start = loadavg();
    let cpu0 = children_cpu();
    let t = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script])
        .env("MAILFOLD", bin)
        .env("CONFIG", &config_path)
        .env("HOME", work.path())
        .status()
        .expect("run the shell loop");
    let loop_wall = t.elapsed();
    let loop_cpu = children_cpu() - cpu0;
    assert!(status.success(), "the shell loop failed");

    // The fleet: a manifest with the same accounts, one process.
    let fleet_dir = work.path().join("fleet");
    let manifest =
        fleet_util::write_manifest(&fleet_dir, &dovecot, accounts, addr, "implicit", "", "");
    let cpu0 = children_cpu();
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["fleet", "run", "-q", "--jobs", &jobs.to_string()])
        .arg(&manifest)
        .env("HOME", work.path())
        .output()
        .expect("run mailfold fleet");
    let fleet_wall = t.elapsed();
    let fleet_cpu = children_cpu() - cpu0;
    assert!(
        out.status.success(),
        "fleet run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = fleet_util::json_lines(&out.stdout);
    let per: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("account").is_some())
        .collect();
    assert_eq!(per.len(), accounts);
    let downloaded: u64 = per.iter().map(|l| l["downloaded"].as_u64().unwrap()).sum();
    assert_eq!(
        downloaded,
        (accounts * messages) as u64,
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
    let median_ms = durations[durations.len() / 2];
    let mirror_bytes = du(&fleet_dir.join("mirror"));
    let state_bytes = du(&fleet_dir.join("state"));

    // A re-run with nothing to do: the periodic (CronJob) cost per account.
    let cpu0 = children_cpu();
    let t = Instant::now();
    let again = Command::new(bin)
        .args(["fleet", "run", "-q", "--jobs", &jobs.to_string()])
        .arg(&manifest)
        .env("HOME", work.path())
        .output()
        .expect("run mailfold fleet again");
    let idle_wall = t.elapsed();
    let idle_cpu = children_cpu() - cpu0;
    assert!(again.status.success());

    let load_end = loadavg();
    let n = accounts as f64;
    let ratio = fleet_wall.as_secs_f64() / loop_wall.as_secs_f64();
    let cpu_per = fleet_cpu.as_secs_f64() / n;
    let idle_cpu_per = idle_cpu.as_secs_f64() / n;
    let wall_per_job = fleet_wall.as_secs_f64() * jobs as f64 / n;
    let idle_wall_per_job = idle_wall.as_secs_f64() * jobs as f64 / n;
    let disk_per = (mirror_bytes + state_bytes) as f64 / n;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured by `bench/fleet` on {cores} cores ({}), mailfold {} ({} build): {accounts} accounts of \
         {messages} messages (about {:.1} KB each) on one private Dovecot over implicit TLS, \
         `fsync = false` on both sides. Load average (1 min) of the machine: {load_start} \
         when the runs started, {load_end} when they ended (other work on the machine \
         competes for the same cores).\n",
        uname(),
        env!("CARGO_PKG_VERSION"),
        std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "unknown".into()),
        bytes as f64 / (n * messages as f64) / 1000.0,
    );
    let _ = writeln!(
        md,
        "| run | wall time | CPU time of the mailfold processes (the server's not counted) |"
    );
    let _ = writeln!(md, "|---|---:|---:|");
    let _ = writeln!(
        md,
        "| shell loop of `mailfold sync ACCOUNT` | {} | {} |",
        secs(loop_wall),
        secs(loop_cpu)
    );
    let _ = writeln!(
        md,
        "| `mailfold fleet run --jobs {jobs}` | {} | {} |",
        secs(fleet_wall),
        secs(fleet_cpu)
    );
    let _ = writeln!(
        md,
        "| `mailfold fleet run --jobs {jobs}`, nothing new | {} | {} |",
        secs(idle_wall),
        secs(idle_cpu)
    );
    let verdict = if ratio <= 0.3 { "met" } else { "not met" };
    let _ = writeln!(
        md,
        "\nFleet wall time / shell loop wall time: **{ratio:.2}x** (target ≤ 0.3x: {verdict}).\n"
    );
    let _ = writeln!(
        md,
        "Per account (from the fleet run's JSON lines and the files):\n"
    );
    let _ = writeln!(md, "| cost | per account |");
    let _ = writeln!(md, "|---|---:|");
    let _ = writeln!(md, "| CPU, first sync | {:.3} s |", cpu_per);
    let _ = writeln!(md, "| CPU, sync with nothing new | {:.3} s |", idle_cpu_per);
    let _ = writeln!(
        md,
        "| wall time, first sync (median) | {:.3} s |",
        median_ms as f64 / 1000.0
    );
    let _ = writeln!(
        md,
        "| bytes from the server | {} |",
        human(bytes as f64 / n)
    );
    let _ = writeln!(
        md,
        "| disk (Maildir + state database) | {} |",
        human(disk_per)
    );
    let _ = writeln!(
        md,
        "| state database alone | {} |",
        human(state_bytes as f64 / n)
    );
    let _ = writeln!(
        md,
        "\nEstimates from these per-account costs (linear in accounts; scale by your mailboxes' \
         size, since these accounts hold {messages} small messages each). `jobs` slots per \
         node and the server cap bound the rate as shown:\n"
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
    std::fs::write(out_md, md).expect("write the result");
    println!(
        "fleet {:.1}s vs loop {:.1}s: {ratio:.2}x; written to {}",
        fleet_wall.as_secs_f64(),
        loop_wall.as_secs_f64(),
        out_md.display()
    );
}

/// CPU time (user + system) of this process's waited-for children so far.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the whole line: 14 and 15 after ')'.
    let ticks: u64 = f.get(13).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(14).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / hz as f64)
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
