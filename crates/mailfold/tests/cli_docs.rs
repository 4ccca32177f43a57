//! The documentation agrees with the program: the man page is complete and names no missing
//! page, the README's configuration and exit-status tables are the definitions the man page
//! is made from, every configuration key the parser accepts is documented (and no other),
//! and `--help`, README and docs/cli.md say the same about `watch` and the lock.

use std::path::PathBuf;

use mailfold::man;

fn repo_file(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn man_page() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("man")
        .output()
        .expect("run mailfold man");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("UTF-8 roff")
}

#[test]
fn the_man_page_has_every_section_and_every_command() {
    let page = man_page();
    for s in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH GLOBAL OPTIONS",
        ".SH COMMANDS",
        ".SH CONFIGURATION",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH EXIT STATUS",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(s), "no {s}");
    }
    for cmd in [
        "sync",
        "watch",
        "folders",
        "list",
        "show",
        "flag",
        "move",
        "delete",
        "append",
        "create\\-folder",
        "rename\\-folder",
        "delete\\-folder",
        "search",
        "probe",
        "completions",
        "man",
        "debug parse",
    ] {
        assert!(
            page.contains(&format!("\\fBmailfold {cmd}\\fR")),
            "command {cmd} missing"
        );
    }
    for (key, _, _) in man::CONFIG_KEYS {
        assert!(
            page.contains(&format!(".TP\n\\fB{}\\fR", key.replace('-', "\\-"))),
            "key {key} missing"
        );
    }
    // No reference to a page that does not exist: clap_mangen's per-command pages
    // (mailfold-sync(1)…) are not installed, and the page names none.
    assert!(
        !page.contains("mailfold\\-sync(1)"),
        "a missing page is named"
    );
    assert!(!page.contains("(5)"), "a missing section-5 page is named");
    let refs = page.matches("(1)").count();
    assert_eq!(refs, 0, "the page names other pages: {refs}");
}

#[test]
fn the_readme_tables_are_the_definitions_of_the_man_page() {
    let readme = repo_file("README.md");
    let config = man::config_table_markdown();
    assert!(
        readme.contains(&config),
        "README's configuration table differs from mailfold::man::CONFIG_KEYS; it should read:\n{config}"
    );
    let exit = man::exit_table_markdown();
    assert!(
        readme.contains(&exit),
        "README's exit-status table differs from mailfold::exit::TABLE; it should read:\n{exit}"
    );
    let cli = repo_file("docs/cli.md");
    assert!(
        cli.contains(&exit),
        "docs/cli.md's exit-status table differs from mailfold::exit::TABLE; it should read:\n{exit}"
    );
}

#[test]
fn every_key_the_parser_accepts_is_documented_and_no_other() {
    // serde names every field it accepts when it refuses an unknown one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[accounts.t]\nhost = \"h\"\nno_such_key_here = 1\n").unwrap();
    let err = mailfold::config::Config::load(&path)
        .err()
        .map(|e| e.to_string())
        .expect("an unknown key is refused");
    let expected = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in {err:?}"));
    let mut accepted: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    accepted.sort();
    let mut documented: Vec<String> = man::CONFIG_KEYS
        .iter()
        .map(|(k, _, _)| k.to_string())
        .collect();
    documented.sort();
    assert_eq!(
        documented, accepted,
        "mailfold::man::CONFIG_KEYS (README, man page) and the parser's keys differ"
    );
}

#[test]
fn help_readme_and_cli_reference_agree_on_the_watch_lock() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .args(["watch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("Takes the account's lock only while one of its syncs runs"),
        "{help}"
    );
    let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(repo_file("README.md")).contains("It takes the account lock only while a sync runs")
    );
    let cli = flat(repo_file("docs/cli.md"));
    assert!(cli.contains("`watch` takes the account's lock only while one of its syncs runs"));
    assert!(!cli.contains("holds the account's lock while it runs"));
}
