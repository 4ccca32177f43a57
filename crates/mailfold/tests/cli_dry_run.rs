//! `mailfold sync --dry-run` through the real binary against a private Dovecot: the plan
//! per folder (counts, each operation with `-v`, the safety valve, renames), in text and
//! JSON, and read-only on both sides (EXAMINE only, no state database or Maildir created or
//! changed, the server unchanged).

mod util;

use std::path::Path;

use serde_json::Value;
use util::{plain, Env};

fn folder<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == name)
        .unwrap_or_else(|| panic!("no folder {name} in {v}"))
}

/// Every file under `dir` with its size and mtime: what "nothing changed here" compares.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((
                e.path().display().to_string(),
                if m.is_dir() { 0 } else { m.len() },
                m.modified().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

fn cur_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = ["cur", "new"]
        .iter()
        .filter_map(|s| std::fs::read_dir(dir.join(s)).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect();
    v.sort();
    v
}

#[test]
fn dry_run_before_the_first_sync_plans_every_download_and_creates_nothing() {
    let env = Env::new();
    for i in 0..3 {
        env.deliver(
            "INBOX",
            &plain("a@example.org", &format!("first {i}"), "body"),
        );
    }
    env.dovecot.create_mailbox(&env.user, "Archive");
    env.deliver("Archive", &plain("b@example.org", "old one", "body"));

    let r = env.run(&["sync", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains("account t: plan (dry run, nothing changed)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("INBOX: 3 to download"), "{}", r.stdout);
    assert!(
        r.stdout.contains("  in all: 4 to download, 0 to upload"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Archive: 1 to download, would be created here"),
        "{}",
        r.stdout
    );
    // Nothing was made: no Maildir, no state database, no lock directory.
    assert!(!env.home.maildir().exists(), "the Maildir was created");
    assert!(
        !env.home.path().join("state.sqlite").exists(),
        "the state database was created"
    );

    // Each operation with -v.
    let r = env.run(&["sync", "--dry-run", "-v"]).ok();
    assert!(r.stdout.contains("download UID 1 ("), "{}", r.stdout);
    assert!(r.stdout.contains("download UID 3 ("), "{}", r.stdout);

    // JSON: the counts per folder, the operations, and only EXAMINE on the wire.
    let v = env.run(&["--json", "sync", "--dry-run"]).ok().json();
    let acct = &v["accounts"][0];
    assert_eq!(acct["dry_run"], true, "{v}");
    assert_eq!(folder(&v, "INBOX")["downloaded"], 3, "{v}");
    assert_eq!(folder(&v, "Archive")["created_local"], true, "{v}");
    let planned = acct["planned"].as_array().unwrap();
    assert_eq!(
        planned
            .iter()
            .filter(|p| p["op"].as_str().unwrap().starts_with("download"))
            .count(),
        4,
        "{v}"
    );
    // The planner's totals agree with the per-folder counts.
    assert_eq!(acct["plan_totals"]["downloads"], 4, "{v}");
    let created = acct["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["created_local"] == true)
        .count();
    assert_eq!(acct["plan_totals"]["folders_created"], created, "{v}");
    let commands = &acct["traffic"]["commands"];
    assert!(commands["EXAMINE"].as_u64().unwrap_or(0) >= 2, "{v}");
    assert!(commands.get("SELECT").is_none(), "a dry run selected: {v}");
    assert!(!env.home.maildir().exists());

    // The real run does what the dry run said; then there is nothing left to do.
    let r = env.run(&["sync"]).ok();
    assert!(r.stdout.contains("INBOX: 3 downloaded"), "{}", r.stdout);
    let r = env.run(&["sync", "--dry-run"]).ok();
    assert!(r.stdout.contains("  nothing to do"), "{}", r.stdout);
}

#[test]
fn dry_run_shows_deletions_flags_and_the_safety_valve_and_changes_nothing() {
    let env = Env::new();
    for i in 0..4 {
        env.deliver("INBOX", &plain("a@example.org", &format!("in {i}"), "body"));
    }
    env.dovecot.create_mailbox(&env.user, "Work");
    // More than the valve's 20-message floor.
    for i in 0..22 {
        env.deliver(
            "Work",
            &plain("a@example.org", &format!("work {i}"), "body"),
        );
    }
    env.run(&["sync"]).ok();

    // Locally: one INBOX file deleted, every Work file deleted (the valve trips).
    let inbox = cur_files(&env.home.maildir().join("INBOX"));
    std::fs::remove_file(&inbox[0]).unwrap();
    for f in cur_files(&env.home.maildir().join("Work")) {
        std::fs::remove_file(f).unwrap();
    }
    // On the server: one INBOX message flagged, a new one delivered.
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    env.deliver("INBOX", &plain("c@example.org", "new one", "body"));

    let local_before = snapshot(&env.home.maildir());
    let state_before = snapshot(env.home.path());
    let server_before = env.server("INBOX", "uid flags");

    let r = env.run(&["sync", "--dry-run", "-v"]);
    // The valve would trip: the run would be incomplete, so the status says so.
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("INBOX: 1 to download, 1 flag changes to make here, 1 to delete on server"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("would be refused: folder Work: would delete 22 of 22"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("safety valve"), "{}", r.stdout);
    assert!(
        r.stdout.contains("expunge UID 1 on the server"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("UID 2: flags here become (\\Flagged)"),
        "{}",
        r.stdout
    );

    let v = env.run(&["--json", "sync", "--dry-run"]).json();
    assert_eq!(folder(&v, "INBOX")["remote_deletions"], 1, "{v}");
    assert_eq!(folder(&v, "INBOX")["local_flag_changes"], 1, "{v}");
    assert!(
        v["accounts"][0]["refused"][0]
            .as_str()
            .unwrap()
            .contains("Work"),
        "{v}"
    );

    // Read-only on both sides: no file, directory or state byte changed (the lock file
    // records who held it, which is not state); the server the same.
    assert_eq!(snapshot(&env.home.maildir()), local_before);
    let state_after: Vec<_> = snapshot(env.home.path())
        .into_iter()
        .filter(|(p, _, _)| p.contains("state.sqlite") && !p.ends_with(".lock"))
        .collect();
    let state_before: Vec<_> = state_before
        .into_iter()
        .filter(|(p, _, _)| p.contains("state.sqlite") && !p.ends_with(".lock"))
        .collect();
    assert_eq!(state_after, state_before, "the state database changed");
    assert_eq!(env.server("INBOX", "uid flags"), server_before);
    assert_eq!(env.count("Work"), 22);
}

#[test]
fn renames_are_named_in_the_report_both_ways() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Folder05");
    env.dovecot.create_mailbox(&env.user, "Other");
    for i in 0..3 {
        env.deliver(
            "Folder05",
            &plain("a@example.org", &format!("f {i}"), "body"),
        );
        env.deliver("Other", &plain("a@example.org", &format!("o {i}"), "body"));
    }
    env.run(&["sync"]).ok();

    // Renamed on the server: followed here.
    env.dovecot.doveadm(&[
        "mailbox",
        "rename",
        "-u",
        &env.user,
        "Folder05",
        "Renamed05",
    ]);
    let r = env.run(&["sync", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains("Folder05 → Renamed05: would be renamed here"),
        "{}",
        r.stdout
    );
    let r = env.run(&["sync"]).ok();
    assert!(
        r.stdout.contains("Folder05 → Renamed05: renamed here"),
        "{}",
        r.stdout
    );
    assert!(env.home.maildir().join("Renamed05").is_dir());

    // Renamed here (as a mail reader does): renamed on the server.
    std::fs::rename(
        env.home.maildir().join("Other"),
        env.home.maildir().join("Moved"),
    )
    .unwrap();
    let r = env.run(&["sync"]).ok();
    assert!(
        r.stdout.contains("Other → Moved: renamed on the server"),
        "{}",
        r.stdout
    );
    let v = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(v["accounts"][0]["complete"], true, "{v}");
    assert_eq!(env.count("Moved"), 3);
}
