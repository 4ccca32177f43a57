//! The README's examples block, run line by line, in order, against a private Dovecot through
//! the real binary (each line through `bash -o pipefail`, so `mailfold … | head` must end with
//! status 0 too). The block must also be exactly the man page's EXAMPLES definitions, so the
//! README, `mailfold man` and the program cannot drift apart. `watch` is not in the block: it
//! runs until a signal stops it (crates/mailfold/tests/cli_watch.rs runs it).

mod util;

use std::path::PathBuf;
use std::process::Command;

use util::{plain, Env};

/// The first ```sh block after `### Examples` in the README.
fn readme_examples() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&p).unwrap();
    let at = readme
        .find("### Examples")
        .expect("README has an Examples section");
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("an sh block");
    let end = rest[start + 6..].find("```\n").expect("the block ends") + start + 6;
    rest[start..end + 4].to_string()
}

#[test]
fn the_readme_examples_run_against_a_private_dovecot() {
    let block = readme_examples();
    assert_eq!(
        block,
        mailfold::man::examples_markdown(),
        "README's examples differ from mailfold::man::EXAMPLES"
    );

    let env = Env::new();
    for i in 1..=4 {
        env.deliver(
            "INBOX",
            &plain("Alice <alice@example.org>", &format!("note {i}"), "words"),
        );
    }
    let d = env.dovecot.delimiter().to_string();
    env.dovecot
        .create_mailbox(&env.user, &format!("Archive{d}2024"));
    let dir = env.home.path();
    std::fs::write(
        dir.join("draft.eml"),
        "To: bob@example.org\nSubject: later\n\nto be finished\n",
    )
    .unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mailfold"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let lines: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("mailfold "))
        .collect();
    assert!(lines.len() >= 10, "{block}");
    for line in lines {
        let cmd = line.split("  # ").next().unwrap().trim();
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", cmd])
            .current_dir(dir)
            .env("PATH", &path)
            .env("MAILFOLD_CONFIG", env.home.config())
            .env("HOME", dir)
            .env("XDG_STATE_HOME", dir.join("xdg-state"))
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "README example `{cmd}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.stdout.is_empty() || cmd.contains('>'),
            "`{cmd}` printed nothing"
        );
    }
    // What the session did, on the server.
    assert_eq!(env.count("INBOX"), 2, "one moved, one deleted");
    assert_eq!(env.count(&format!("Archive{d}2024")), 1);
    assert!(env.server("INBOX", "flags").contains("\\Flagged"));
    assert!(dir.join("_mailfold").metadata().unwrap().len() > 0);
}
