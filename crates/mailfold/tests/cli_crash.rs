//! Crash safety of the commands that change mail, end to end through the real binary: each
//! command is cut after its local half (`--offline`) and after every step of the sync's
//! applier that pushes it (`MAILFOLD_TEST_ABORT_AFTER_STEP=N`, which exits like a kill: no
//! destructor, no cleanup, the same hook as the sync's crash tests), then `mailfold sync`
//! resumes. The result must equal the command run uninterrupted and followed by a sync, on
//! the server and in the mirror, with nothing lost or duplicated, and a further sync must
//! change nothing.
//!
//! Each cut gets its own Dovecot user, mirror and state database, prepared identically.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use mailfold_sync::apply::{ABORT_ENV, ABORT_EXIT_CODE};
use mailfold_testsupport::Dovecot;
use serde_json::Value;
use util::{plain, Run};

/// The folders compared by the message commands' tests.
/// (Not a special-use folder: the test Dovecot creates those again on its own.)
const FOLDERS: &[&str] = &["INBOX", "Work"];

/// One folder on one side: `None` when it does not exist, else its messages.
type Held = Option<Vec<(String, String)>>;

/// One user's mirror: a home with a config for Dovecot user `i`.
struct Side {
    home: tempfile::TempDir,
    user: String,
}

impl Side {
    fn new(d: &Dovecot, i: usize) -> Side {
        let u = d.user(i).clone();
        let home = tempfile::tempdir().unwrap();
        let pw = home.path().join("password");
        std::fs::write(&pw, format!("{}\n", u.password)).unwrap();
        let addr = d.imaps_addr();
        let text = format!(
            "[accounts.t]\nhost = {:?}\nport = {}\ntls = \"implicit\"\nuser = {:?}\n\
             password_command = [\"cat\", {:?}]\nca_file = {:?}\nlocal = {:?}\nstate = {:?}\n\
             fsync = false\n",
            addr.ip().to_string(),
            addr.port(),
            u.name,
            pw.display().to_string(),
            d.ca_file().display().to_string(),
            home.path().join("mail").display().to_string(),
            home.path().join("state.sqlite").display().to_string(),
        );
        std::fs::write(home.path().join("config.toml"), text).unwrap();
        Side { home, user: u.name }
    }

    /// Runs `mailfold --config <ours> ARGS`, cut after step `abort` when given.
    fn run(&self, args: &[&str], abort: Option<u64>) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailfold"));
        c.arg("--config")
            .arg(self.home.path().join("config.toml"))
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_STATE_HOME", self.home.path().join("xdg-state"))
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg-config"))
            .env_remove("MAILFOLD_CONFIG")
            .env_remove(ABORT_ENV);
        if let Some(n) = abort {
            c.env(ABORT_ENV, n.to_string());
        }
        c.output().expect("run mailfold").into()
    }

    /// A sync that must complete; returns its JSON report.
    fn sync(&self) -> Value {
        let r = self.run(&["--json", "sync"], None).ok().json();
        assert_eq!(r["accounts"][0]["complete"], true, "{r}");
        r
    }

    /// Every message of `folders` on the server and in the mirror.
    fn state(&self, d: &Dovecot, folders: &[&str]) -> Vec<Held> {
        let server = d.mail_root(&self.user);
        let local = self.home.path().join("mail");
        let mut v = Vec::new();
        for f in folders {
            let s = if *f == "INBOX" {
                server.clone()
            } else {
                server.join(format!(".{f}"))
            };
            v.push(read_maildir(&s));
            v.push(read_maildir(&local.join(f)));
        }
        v
    }
}

/// Whether a sync report changed anything.
fn changed(r: &Value) -> bool {
    r["accounts"][0]["folders"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| {
            [
                "downloaded",
                "uploaded",
                "local_flag_changes",
                "remote_flag_changes",
                "local_deletions",
                "remote_deletions",
                "local_moves",
                "remote_moves",
            ]
            .iter()
            .any(|k| f[*k].as_u64().is_some_and(|n| n > 0))
        })
}

/// The messages of a Maildir (`cur/` and `new/`): each one's text (line ends as LF) and its
/// flag letters, sorted; file names differ from user to user and are left out. `None` when
/// there is no Maildir.
fn read_maildir(dir: &Path) -> Held {
    if !dir.join("cur").is_dir() {
        return None;
    }
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name
                .split_once(":2,")
                .map_or(String::new(), |(_, f)| f.to_owned());
            let text = std::fs::read_to_string(&p).unwrap().replace("\r\n", "\n");
            out.push((text, flags));
        }
    }
    out.sort();
    Some(out)
}

/// Seeds user `i`: three INBOX messages and a folder Work holding two, mirrored by a first sync.
fn prepare(d: &Dovecot, i: usize) -> Side {
    let side = Side::new(d, i);
    d.create_mailbox(&side.user, "Work");
    for (folder, n) in [
        ("INBOX", 0),
        ("INBOX", 1),
        ("INBOX", 2),
        ("Work", 3),
        ("Work", 4),
    ] {
        let m = plain(
            "Carol <carol@example.org>",
            &format!("crash {n}"),
            "some words",
        );
        d.deliver(&side.user, folder, m.replace('\n', "\r\n").as_bytes());
    }
    side.sync();
    side
}

/// The file `append` adds (the same bytes for every user).
fn message_file(side: &Side) -> PathBuf {
    let p = side.home.path().join("new.eml");
    std::fs::write(
        &p,
        plain("Me <user1@example.org>", "appended in a crash test", "body"),
    )
    .unwrap();
    p
}

/// Cuts `command` after its local half (unless `local_cut` is false: a keyword change has no
/// local half, seed V0005) and after every step, resumes each with a sync, and compares with
/// the uninterrupted command followed by a sync; returns how many steps the command's server
/// half had. `args` gets the side, for a path of its own.
fn kill_every_step(
    max_steps: usize,
    local_cut: bool,
    folders: &[&str],
    args: impl Fn(&Side) -> Vec<String>,
) -> usize {
    kill_every_step_with(max_steps, local_cut, Resume::Sync, folders, args)
}

/// How a cut command is resumed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// `mailfold sync`.
    Sync,
    /// The same command again (as its user would), then `mailfold sync`.
    Again,
}

/// [`kill_every_step`], resumed as `resume` says.
fn kill_every_step_with(
    max_steps: usize,
    local_cut: bool,
    resume: Resume,
    folders: &[&str],
    args: impl Fn(&Side) -> Vec<String>,
) -> usize {
    let d = Dovecot::builder().users(max_steps + 2).start();
    let reference = prepare(&d, 0);
    let a = args(&reference);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    reference.run(&a, None).ok();
    let after = reference.sync();
    assert!(
        !changed(&after),
        "the command left work for the next sync: {after}"
    );
    let want = reference.state(&d, folders);
    // Keywords have no letter in the mirror (seed V0005); Dovecot keeps them as lowercase
    // letters of its own, compared between users below.
    let letters = |v: &Held| -> Held {
        v.as_ref().map(|v| {
            v.iter()
                .map(|(t, f)| {
                    (
                        t.clone(),
                        f.chars().filter(char::is_ascii_uppercase).collect(),
                    )
                })
                .collect()
        })
    };
    for (i, f) in folders.iter().enumerate() {
        assert_eq!(
            letters(&want[2 * i]),
            want[2 * i + 1],
            "{f}: the server and the mirror differ"
        );
    }
    // N = 0: only the local half (the server half never ran), as after a kill before it.
    for n in usize::from(!local_cut)..=max_steps {
        let side = prepare(&d, n + 1);
        let a = args(&side);
        let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = if n == 0 {
            a.insert(0, "--offline");
            side.run(&a, None).ok()
        } else {
            side.run(&a, Some(n as u64))
        };
        if n > 0 && r.code == 0 {
            side.sync();
            assert_eq!(side.state(&d, folders), want, "uninterrupted run differs");
            return n - 1;
        }
        if n > 0 {
            assert_eq!(
                r.code, ABORT_EXIT_CODE,
                "stdout:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            );
        }
        if resume == Resume::Again {
            a.retain(|x| *x != "--offline");
            let r = side.run(&a, None);
            // Cut after its last step, nothing is left for the command to find.
            assert!(
                r.code == 0 || (r.code == 2 && r.stderr.contains("no folder")),
                "step {n}: run again: {}{}",
                r.stdout,
                r.stderr
            );
        }
        side.sync();
        let got = side.state(&d, folders);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "cut after step {n}: {} on the {} differs from the uninterrupted run",
                folders[i / 2],
                if i % 2 == 0 { "server" } else { "mirror" },
            );
        }
        let again = side.sync();
        assert!(
            !changed(&again),
            "step {n}: a further sync changed: {again}"
        );
    }
    panic!("the command has more than {max_steps} steps; raise the maximum");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `flag` of two messages (a flag set, one cleared): the file names first, then one batched
/// `UID STORE` per change, the rows recorded after it.
#[test]
fn flag_survives_a_kill_after_every_step() {
    let steps = kill_every_step(4, true, FOLDERS, |_| {
        strings(&[
            "flag", "INBOX", "1", "2", "--set", "flagged", "--set", "seen", "--clear", "draft",
        ])
    });
    assert!(steps >= 2, "two messages are two steps, had {steps}");
}

/// `flag` with a keyword, which lives on the server and in the state only (seed V0005).
#[test]
fn keyword_flag_survives_a_kill_after_every_step() {
    let steps = kill_every_step(4, false, FOLDERS, |_| {
        strings(&[
            "flag", "INBOX", "1", "3", "--set", "$Junk", "--set", "flagged",
        ])
    });
    assert!(steps >= 2, "two messages are two steps, had {steps}");
}

/// `move` of two messages: each a `UID MOVE` whose COPYUID takes the row to its new UID.
#[test]
fn move_survives_a_kill_after_every_step() {
    let steps = kill_every_step(4, true, FOLDERS, |_| {
        strings(&["move", "INBOX", "1", "3", "--to", "Work"])
    });
    assert!(steps >= 2, "two messages are two steps, had {steps}");
}

/// `delete` of two messages: `\Deleted` and `UID EXPUNGE` of exactly those UIDs each.
#[test]
fn delete_survives_a_kill_after_every_step() {
    let steps = kill_every_step(4, true, FOLDERS, |_| {
        strings(&["delete", "INBOX", "2", "3"])
    });
    assert!(steps >= 2, "two messages are two steps, had {steps}");
}

/// `append`: the journaled APPEND (its intent committed before APPEND leaves), APPENDUID
/// recorded with the intent's removal.
#[test]
fn append_survives_a_kill_after_every_step() {
    let steps = kill_every_step(3, true, FOLDERS, |side| {
        let f = message_file(side);
        vec![
            "append".to_owned(),
            "--seen".to_owned(),
            f.display().to_string(),
            "--folder".to_owned(),
            "Work".to_owned(),
        ]
    });
    assert!(steps >= 1, "one message is one step, had {steps}");
}

/// `create-folder`: the Maildir, then CREATE and the state's record of its UIDVALIDITY.
#[test]
fn create_folder_survives_a_kill_after_every_step() {
    let steps = kill_every_step(3, true, &["INBOX", "Work", "Projects"], |_| {
        strings(&["create-folder", "Projects"])
    });
    assert!(steps >= 1, "a CREATE is one step, had {steps}");
}

/// `rename-folder` of a folder holding messages: the directory, then RENAME and the state's
/// folder row, which keeps its messages' rows.
#[test]
fn rename_folder_survives_a_kill_after_every_step() {
    let steps = kill_every_step(3, true, &["INBOX", "Work", "Old"], |_| {
        strings(&["rename-folder", "Work", "Old"])
    });
    assert!(steps >= 1, "a RENAME is one step, had {steps}");
}

/// `delete-folder --force` of a folder holding messages: the Maildir, then each message
/// expunged by UID, DELETE once empty, and the state's rows forgotten. Resumed by running the
/// command again: a sync alone expunges what is left but keeps the emptied server folder of
/// a folder deleted locally (the planner deletes a server folder only from a complete view of
/// it, and a CONDSTORE server's folder is read from its delta).
#[test]
fn delete_folder_survives_a_kill_after_every_step() {
    let steps = kill_every_step_with(6, true, Resume::Again, FOLDERS, |_| {
        strings(&["delete-folder", "--force", "Work"])
    });
    assert!(
        steps >= 4,
        "two expunges, DELETE and the state, had {steps}"
    );
}
