//! `mailfold fleet` on the real binary: shards run as separate processes against one private
//! Dovecot stay under the per-server connection cap together (counted by a proxy), every
//! mirror equals its account, transient failures are retried and refused logins are not, a
//! lock left by another host is reported and kept, and the Kubernetes objects pass the
//! Kubernetes schemas offline.

mod fleet_util;

use std::path::Path;
use std::process::Command;

use fleet_util::{assert_mirrors, json_lines, populate, write_manifest, CountingProxy};
use mailfold_testsupport::Dovecot;
use serde_json::Value;

fn mailfold(home: &Path, args: &[&str]) -> std::process::Output {
    fleet_util::mailfold_with(Path::new(env!("CARGO_BIN_EXE_mailfold")), home, args)
}

fn by_account(lines: &[Value]) -> std::collections::BTreeMap<String, Value> {
    lines
        .iter()
        .filter(|l| l.get("account").is_some())
        .map(|l| (l["account"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

#[test]
fn two_shards_together_stay_under_the_server_cap_and_mirror_every_account() {
    let dovecot = Dovecot::builder().users(8).special_use(false).start();
    // Three folders of 60 messages: enough for an account to want extra sessions
    // (mailfold-sync's parallel apply), so the cap has something to hold back.
    let written = populate(&dovecot, 8, &["INBOX", "Archive", "Work"], 60);
    let proxy = CountingProxy::start(dovecot.imap_addr());
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &dovecot,
        8,
        proxy.addr(),
        "none",
        "max_connections_per_server = 4",
        "connections = 3\n",
    );
    let m = manifest.to_str().unwrap();
    // Both shards at once, as two array tasks would run: each gets 2 of the 4 connections.
    let spawn = |shard: &str| {
        Command::new(env!("CARGO_BIN_EXE_mailfold"))
            .args(["fleet", "run", "--jobs", "4", "--shard", shard, m])
            .env("HOME", dir.path())
            .env_remove("MAILFOLD_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("0/2"), spawn("1/2"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut accounts = 0;
    for out in [&a, &b] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
        let lines = json_lines(&out.stdout);
        let summary = &lines.last().unwrap()["summary"];
        assert_eq!(summary["exit_status"], 0, "{summary}");
        assert_eq!(summary["ok"], summary["accounts"], "{summary}");
        for (name, l) in by_account(&lines) {
            assert_eq!(l["status"], "ok", "{name}: {l}");
            assert_eq!(l["exit_status"], 0, "{name}: {l}");
            assert_eq!(l["attempts"], 1, "{name}: {l}");
            // Capped by the shard's share of the server's 4.
            assert_eq!(l["connections"], 2, "{name}: {l}");
            assert_eq!(l["downloaded"], 180, "{name}: {l}");
            assert!(l["bytes_received"].as_u64().unwrap() > 180 * 300, "{l}");
            accounts += 1;
        }
    }
    assert_eq!(accounts, 8, "the shards partition the fleet");
    assert!(
        proxy.peak() <= 4,
        "the server saw {} sessions at once (cap 4)",
        proxy.peak()
    );
    assert!(proxy.total() >= 8, "{} sessions", proxy.total());
    assert_mirrors(&dovecot, dir.path(), &written);

    // A second run finds nothing to do and still mirrors everything.
    let again = mailfold(dir.path(), &["fleet", "run", "--jobs", "8", m]);
    assert_eq!(again.status.code(), Some(0));
    let lines = json_lines(&again.stdout);
    assert_eq!(lines.last().unwrap()["summary"]["downloaded"], 0);
    assert!(proxy.peak() <= 4, "peak {}", proxy.peak());
    assert_mirrors(&dovecot, dir.path(), &written);
}

#[test]
fn transient_failures_are_retried_refused_logins_are_not_and_a_foreign_lock_is_kept() {
    let dovecot = Dovecot::builder().users(3).special_use(false).start();
    let written = populate(&dovecot, 3, &["INBOX"], 5);
    let dir = tempfile::tempdir().unwrap();
    let nobody = mailfold_testsupport::free_port("127.0.0.1".parse().unwrap());
    let manifest = write_manifest(
        dir.path(),
        &dovecot,
        3,
        dovecot.imaps_addr(),
        "implicit",
        "retries = 2\nretry_delay = 1",
        "",
    );
    // An account whose server is down (nothing listens on its port).
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[accounts.gone]\nport = {nobody}\nuser = \"user1\"\n"
    ));
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(dir.path().join("secrets/gone"), "whatever\n").unwrap();
    // user2's password is wrong: the server refuses the login.
    std::fs::write(dir.path().join("secrets/user2"), "not-the-password\n").unwrap();
    // user3's lock was left by a process on another host.
    let lock = dir.path().join("state/user3.sqlite.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "4242 fleet node-elsewhere\n").unwrap();

    let out = mailfold(
        dir.path(),
        &["fleet", "run", "--jobs", "4", manifest.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&out.stdout);
    let acc = by_account(&lines);
    assert_eq!(acc["user1"]["status"], "ok", "{stderr}");
    assert_eq!(acc["user2"]["status"], "failed");
    assert_eq!(
        acc["user2"]["attempts"], 1,
        "a refused login is not retried"
    );
    assert_eq!(acc["user2"]["exit_status"], 3);
    assert!(
        acc["user2"]["error"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{}",
        acc["user2"]
    );
    assert_eq!(acc["gone"]["status"], "failed");
    assert_eq!(acc["gone"]["attempts"], 3, "two retries: {}", acc["gone"]);
    assert_eq!(acc["gone"]["exit_status"], 3);
    assert_eq!(acc["user3"]["status"], "busy");
    assert_eq!(acc["user3"]["exit_status"], 4);
    assert!(
        acc["user3"]["error"]
            .as_str()
            .unwrap()
            .contains("host node-elsewhere"),
        "{}",
        acc["user3"]
    );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        "4242 fleet node-elsewhere\n",
        "another host's lock is reported, not broken"
    );
    // No secret reaches the output.
    let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    for u in dovecot.users() {
        assert!(!all.contains(&u.password), "a password was printed");
    }
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["ok"], 1, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(summary["busy"], 1, "{summary}");
    assert_eq!(out.status.code(), Some(3), "the worst account's status");
    let only_user1: fleet_util::Written =
        written.into_iter().filter(|(u, _)| u == "user1").collect();
    assert_mirrors(&dovecot, dir.path(), &only_user1);
}

/// Whether a missing tool must fail the test (CI, or scripts/test installed it).
fn required(var: &str) -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var_os(var).is_some()
}

#[test]
fn kubernetes_objects_pass_the_schemas_and_the_slurm_script_parses() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fleet.toml");
    std::fs::write(
        &manifest,
        "[fleet]\nmax_connections_per_server = 8\naccounts_csv = \"accounts.csv\"\n\
         [defaults]\nhost = \"imap.example.org\"\nlocal = \"/srv/mail/{account}\"\n\
         state = \"/var/lib/mailfold/{account}.sqlite\"\n\
         password_file = \"/run/secrets/mailfold/{account}\"\n\
         [accounts.alice]\nuser = \"alice@example.org\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("accounts.csv"),
        "account,user\nbob,bob@example.org\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let out = mailfold(
        dir.path(),
        &[
            "fleet",
            "emit",
            "kubernetes",
            m,
            "--shards",
            "4",
            "--image",
            "registry.example/mailfold:1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "completionMode: Indexed",
        "kind: CronJob",
        "$(JOB_COMPLETION_INDEX)/4",
        "secretName: mailfold-fleet-secrets",
        "accounts.csv",
    ] {
        assert!(yaml.contains(needle), "{needle} missing:\n{yaml}");
    }
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, &yaml).unwrap();
    match Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .arg(&file)
        .output()
    {
        Ok(v) => assert!(
            v.status.success(),
            "kubernetes-validate refused the objects:\n{}{}\n{yaml}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        ),
        Err(e) if !required("MAILFOLD_REQUIRE_K8S_VALIDATE") => {
            eprintln!(
                "SKIPPED: kubernetes-validate not runnable ({e}); pip install kubernetes-validate"
            );
        }
        Err(e) => panic!("kubernetes-validate is required here but cannot run: {e}"),
    }

    // A secret command cannot work inside a pod: refused with a reason.
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest).unwrap().replace(
            "password_file = \"/run/secrets/mailfold/{account}\"",
            "password_command = \"pass show x\"",
        ),
    )
    .unwrap();
    let out = mailfold(dir.path(), &["fleet", "emit", "kubernetes", m]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password store"));

    let out = mailfold(
        dir.path(),
        &[
            "fleet",
            "emit",
            "slurm",
            m,
            "--shards",
            "3",
            "--program",
            "/usr/bin/mailfold",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let script = dir.path().join("fleet.sbatch");
    std::fs::write(&script, &out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("#SBATCH --array=0-2"), "{text}");
    assert!(
        text.contains("--shard \"${SLURM_ARRAY_TASK_ID}/3\""),
        "{text}"
    );
    let sh = Command::new("sh").arg("-n").arg(&script).status().unwrap();
    assert!(sh.success(), "the script does not parse:\n{text}");
    // More shards than the cap has connections is refused before anything runs.
    let out = mailfold(dir.path(), &["fleet", "emit", "slurm", m, "--shards", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(Path::new(m).exists());
}
