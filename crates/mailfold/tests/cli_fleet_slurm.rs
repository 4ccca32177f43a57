//! `mailfold fleet emit slurm` under a real Slurm: a private single-node cluster (munged,
//! slurmctld and slurmd from Debian's `munge` and `slurm-wlm`, on loopback, with their own
//! slurm.conf, munge key and socket in a temporary directory, no system service) runs the
//! emitted job array over 200 accounts of 100 messages on a private Dovecot. One array task
//! is cancelled with `scancel` while it runs and resubmitted; afterwards every mirror holds
//! exactly its account's messages and the server holds no duplicate.
//!
//! Under CI (CI=true, or MAILFOLD_REQUIRE_SLURM set by scripts/test) a Slurm that cannot
//! start fails the test; elsewhere, with the programs missing, it is skipped loudly.

mod fleet_util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_util::{assert_mirrors, json_lines, populate, write_manifest};
use mailfold_testsupport::{free_port, Dovecot};

fn mailfold(home: &Path, args: &[&str]) -> std::process::Output {
    fleet_util::mailfold_with(Path::new(env!("CARGO_BIN_EXE_mailfold")), home, args)
}

const ACCOUNTS: usize = 200;
const MESSAGES: usize = 100;
const SHARDS: u32 = 4;

/// How long the cluster may take to come up, and a job to end: generous bounds that only
/// turn a hang into a failure (nothing is asserted about speed).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("MAILFOLD_REQUIRE_SLURM").is_some()
}

fn installed() -> bool {
    [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
        && which("sbatch")
}

fn which(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A private cluster of one node; every daemon is a child of this process, killed on drop.
struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Slurm {
    fn start() -> Result<Slurm, String> {
        let dir = tempfile::Builder::new()
            .prefix("mailfold-slurm")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().to_path_buf();
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        // munged insists on a private key file (0400) in a directory only we can write.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("munge"), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let key: Vec<u8> = {
            let mut rng = mailfold_testsupport::SplitMix64::from_entropy();
            (0..1024).map(|_| rng.next_u64() as u8).collect()
        };
        let key_file = d.join("munge/munge.key");
        std::fs::write(&key_file, key).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400))
            .map_err(|e| e.to_string())?;
        let socket = d.join("munge/munge.sock");
        let mut slurm = Slurm {
            dir,
            daemons: Vec::new(),
        };
        slurm.spawn(
            Command::new("munged")
                .arg("-F")
                .arg("-f")
                .arg(format!("--key-file={}", key_file.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    d.join("munge/munged.pid").display()
                ))
                .arg(format!("--log-file={}", d.join("log/munged.log").display()))
                .arg(format!("--seed-file={}", d.join("munge/seed").display())),
        )?;
        wait_for(|| socket.exists(), "munged's socket")?;
        let node = Command::new("hostname")
            .arg("-s")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .map_err(|e| e.to_string())?;
        let lo = "127.0.0.1".parse().unwrap();
        let (ctld_port, slurmd_port) = (free_port(lo), free_port(lo));
        let user = if nix_is_root() {
            "root".to_string()
        } else {
            whoami()
        };
        let conf = format!(
            "ClusterName=mailfoldtest\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser={user}\n\
             SlurmdUser={user}\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             SchedulerType=sched/builtin\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SlurmdParameters=config_overrides\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs={SHARDS} State=UNKNOWN\n\
             PartitionName=fleet Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display(),
            d = d.display(),
        );
        std::fs::write(slurm.conf(), conf).map_err(|e| e.to_string())?;
        let conf = slurm.conf();
        slurm.spawn(
            Command::new("slurmctld")
                .args(["-D", "-i", "-f"])
                .arg(&conf),
        )?;
        slurm.spawn(Command::new("slurmd").args(["-D", "-f"]).arg(&conf))?;
        wait_for(
            || {
                slurm
                    .cmd("sinfo")
                    .args(["-h", "-o", "%t"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
            },
            "the node to be idle",
        )
        .map_err(|e| format!("{e}\n{}", slurm.logs()))?;
        Ok(slurm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn spawn(&mut self, cmd: &mut Command) -> Result<(), String> {
        let child = cmd
            .env("SLURM_CONF", self.conf())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        self.daemons.push(child);
        Ok(())
    }

    /// A Slurm client command talking to this cluster.
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", self.conf());
        c
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["munged.log", "slurmctld.log", "slurmd.log"] {
            let text =
                std::fs::read_to_string(self.dir.path().join("log").join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s.push_str(&format!("== {f}\n"));
            for l in tail.iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    fn sbatch(&self, args: &[&str], script: &Path) -> String {
        let out = self
            .cmd("sbatch")
            .arg("--parsable")
            .args(args)
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sbatch: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        id.split(';').next().unwrap().to_string()
    }

    /// Array tasks of `job` still queued or running.
    fn pending(&self, job: &str) -> usize {
        let out = self
            .cmd("squeue")
            .args(["-h", "-r", "-j", job, "-o", "%i"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn wait_job(&self, job: &str) {
        let deadline = Instant::now() + JOB_TIMEOUT;
        while self.pending(job) > 0 {
            assert!(
                Instant::now() < deadline,
                "job {job} did not end\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Daemons in reverse order of start; each is ours (a child), killed by its own pid.
        for child in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn whoami() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The account lines and the summary (if the task reached its end) of a task's output.
fn task_output(path: &Path) -> (usize, Option<serde_json::Value>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    // A task killed mid-write may leave a partial last line: count whole lines only.
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &bytes[..0],
    };
    let lines = json_lines(whole);
    let summary = lines.iter().find_map(|l| l.get("summary").cloned());
    let accounts = lines.iter().filter(|l| l.get("account").is_some()).count();
    (accounts, summary)
}

#[test]
fn a_slurm_job_array_mirrors_every_account_and_a_cancelled_task_resumes() {
    if !installed() {
        assert!(
            !required(),
            "Slurm (slurm-wlm, munge) is required here but not installed"
        );
        eprintln!(
            "SKIPPED: slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)"
        );
        return;
    }
    let t0 = Instant::now();
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(e) if required() => panic!("Slurm did not start: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: Slurm did not start here: {e}");
            return;
        }
    };
    let dovecot = Dovecot::builder()
        .users(ACCOUNTS)
        .special_use(false)
        .start();
    eprintln!("[{:?}] cluster and server up", t0.elapsed());
    let written = populate(&dovecot, ACCOUNTS, &["INBOX"], MESSAGES);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &dovecot,
        ACCOUNTS,
        dovecot.imaps_addr(),
        "implicit",
        "",
        "",
    );
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Two accounts at a time per task: a task lasts long enough to be cancelled mid-run.
    let emitted = mailfold(
        dir.path(),
        &[
            "fleet",
            "emit",
            "slurm",
            manifest.to_str().unwrap(),
            "--shards",
            &SHARDS.to_string(),
            "--jobs",
            "2",
            "--name",
            "fleet",
            "--output-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(emitted.status.code(), Some(0));
    let script = dir.path().join("fleet.sbatch");
    std::fs::write(&script, &emitted.stdout).unwrap();

    eprintln!(
        "[{:?}] cluster, server and {ACCOUNTS} accounts ready",
        t0.elapsed()
    );
    let job = slurm.sbatch(&[], &script);
    let task = |job: &str, i: u32| out_dir.join(format!("fleet-{job}_{i}.jsonl"));
    // Cancel task 2 once it has finished some accounts (and so is in the middle of others).
    let victim = task(&job, 2);
    let deadline = Instant::now() + JOB_TIMEOUT;
    while task_output(&victim).0 < 2 {
        assert!(
            Instant::now() < deadline,
            "task 2 never started\n{}",
            slurm.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancel = slurm
        .cmd("scancel")
        .arg(format!("{job}_2"))
        .status()
        .unwrap();
    assert!(cancel.success());
    slurm.wait_job(&job);
    let (done_before, summary) = task_output(&victim);
    assert!(
        summary.is_none(),
        "task 2 ended before it was cancelled ({done_before} accounts): nothing was tested"
    );
    let shard_size = |i: u32| {
        (1..=ACCOUNTS)
            .filter(|n| mailfold::fleet::shard::shard_of(&format!("user{n}"), SHARDS) == i)
            .count()
    };
    assert!(done_before < shard_size(2), "{done_before}");
    for i in [0, 1, 3] {
        let (n, summary) = task_output(&task(&job, i));
        let summary = summary.unwrap_or_else(|| panic!("task {i} has no summary"));
        assert_eq!(summary["exit_status"], 0, "task {i}: {summary}");
        assert_eq!(n, shard_size(i), "task {i}");
    }

    eprintln!("[{:?}] job {job} ended (task 2 cancelled)", t0.elapsed());
    // Resubmit the cancelled task alone: it resumes and completes.
    let again = slurm.sbatch(&["--array=2"], &script);
    slurm.wait_job(&again);
    let (n, summary) = task_output(&task(&again, 2));
    let summary = summary.unwrap_or_else(|| {
        panic!(
            "the resubmitted task did not finish: {}",
            std::fs::read_to_string(out_dir.join(format!("fleet-{again}_2.err")))
                .unwrap_or_default()
        )
    });
    assert_eq!(summary["exit_status"], 0, "{summary}");
    assert_eq!(n, shard_size(2));
    eprintln!(
        "[{:?}] task 2 resubmitted as {again} and ended",
        t0.elapsed()
    );
    assert_mirrors(&dovecot, dir.path(), &written);
    eprintln!("[{:?}] every mirror checked", t0.elapsed());
    drop(slurm);
    eprintln!("[{:?}] cluster stopped", t0.elapsed());
    drop(dovecot);
    eprintln!("[{:?}] server stopped and removed", t0.elapsed());
    drop(dir);
    eprintln!("[{:?}] mirrors removed", t0.elapsed());
}
