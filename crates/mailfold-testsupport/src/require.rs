//! Tests that need a program the build does not provide (Cyrus IMAP, Cyrus SASL's tools,
//! notmuch) ask [`require`] first. On a developer machine without the program the test says
//! so on stderr and returns (a skip that is visible, never silent). Where the program must be
//! there, a missing one FAILS the test: under `CI=true`, or when the tool's own variable
//! ([`Tool::env_var`]) is set, which `scripts/test` does for every tool it installed. So the
//! evidence a test stands for cannot vanish from CI because a package went missing.
//!
//! ```no_run
//! use mailfold_testsupport::{require_or_skip, Tool};
//!
//! #[test]
//! fn talks_to_notmuch() {
//!     require_or_skip!(Tool::Notmuch);
//!     // ... run notmuch ...
//! }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cyrus;

/// Set to `true` (or `1`) by CI systems: every [`Tool`] is then required.
pub const CI_ENV: &str = "CI";

/// A program or server some tests need, installed by `scripts/test` (as root on Debian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Cyrus IMAP 3.6 run privately (`scripts/install-cyrus`).
    Cyrus,
    /// Cyrus SASL's `sasl-sample-server` and `saslpasswd2` (Debian package `sasl2-bin`).
    Sasl2Bin,
    /// The `notmuch` mail indexer (Debian package `notmuch`).
    Notmuch,
}

impl Tool {
    /// Every tool, for scripts and for the crate's own tests.
    pub const ALL: [Tool; 3] = [Tool::Cyrus, Tool::Sasl2Bin, Tool::Notmuch];

    /// The variable that, set to a non-empty value other than `0`, makes this tool required.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Cyrus => cyrus::REQUIRE_CYRUS_ENV,
            Tool::Sasl2Bin => "MAILFOLD_REQUIRE_SASL2BIN",
            Tool::Notmuch => "MAILFOLD_REQUIRE_NOTMUCH",
        }
    }

    /// `None` when the tool is installed; otherwise what is missing and how to install it.
    pub fn missing(self) -> Option<String> {
        match self {
            Tool::Cyrus => {
                let parts = cyrus::missing_parts();
                (!parts.is_empty()).then(|| {
                    format!(
                        "Cyrus IMAP is not installed (missing: {}); run scripts/install-cyrus \
                         as root",
                        parts.join(", ")
                    )
                })
            }
            Tool::Sasl2Bin => {
                let missing: Vec<&str> = ["sasl-sample-server", "saslpasswd2"]
                    .into_iter()
                    .filter(|t| find_program(t).is_none())
                    .collect();
                (!missing.is_empty()).then(|| {
                    format!(
                        "sasl2-bin is not installed (missing: {}); apt-get install sasl2-bin",
                        missing.join(", ")
                    )
                })
            }
            Tool::Notmuch => find_program("notmuch")
                .is_none()
                .then(|| "notmuch is not installed; apt-get install notmuch".to_string()),
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Cyrus => "Cyrus IMAP",
            Tool::Sasl2Bin => "sasl2-bin",
            Tool::Notmuch => "notmuch",
        })
    }
}

/// Finds an executable by name in `PATH` and the system directories (`saslpasswd2` lives in
/// `/usr/sbin`, which an ordinary user's `PATH` may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .into_iter()
            .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why the requirement named by `env_var` must be met, or `None` when a test may skip
/// without it. `var` reads the environment (a parameter so the rule is testable without
/// changing the process's).
fn required_by(env_var: &str, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| {
        var(name).is_some_and(|v| {
            let v = v.trim();
            !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
        })
    };
    if set(CI_ENV) {
        Some(format!("{CI_ENV} is set"))
    } else if set(env_var) {
        Some(format!("{env_var} is set (scripts/test provided it)"))
    } else {
        None
    }
}

/// What to do: `Ok(true)` to run, `Ok(false)` to skip with a note, `Err` to fail with it.
fn decide(
    what: &str,
    env_var: &str,
    missing: Option<String>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    let Some(why) = missing else {
        return Ok(true);
    };
    match required_by(env_var, var) {
        Some(because) => Err(format!(
            "{why}. {because}, so a missing {what} fails this test instead of skipping it"
        )),
        None => Ok(false),
    }
}

/// `true` when `tool` is installed. When it is not: `false` after a note on stderr (the test
/// should return), or a panic (a test failure) when CI or `scripts/test` requires the tool.
///
/// # Panics
/// When `tool` is missing and `CI` or [`Tool::env_var`] is set.
#[track_caller]
pub fn require(tool: Tool) -> bool {
    require_that(&tool.to_string(), tool.env_var(), tool.missing())
}

/// The same rule for a requirement that is not a [`Tool`] (say, being allowed to mount a
/// tmpfs): `missing` is `None` when it is met, else why not; `env_var` is the variable that
/// `scripts/test` sets when it made sure the requirement holds.
///
/// # Panics
/// When `missing` is `Some` and `CI` or `env_var` is set.
#[track_caller]
pub fn require_that(what: &str, env_var: &str, missing: Option<String>) -> bool {
    match decide(what, env_var, missing.clone(), |n| std::env::var(n).ok()) {
        Ok(true) => true,
        Ok(false) => {
            eprintln!(
                "skipped: {} (set {env_var} or {CI_ENV}=true to make this a failure)",
                missing.unwrap_or_default()
            );
            false
        }
        Err(msg) => panic!("{msg}"),
    }
}

/// Returns from the calling test when `tool` is missing and not required (see [`require`]);
/// fails the test when it is required.
/// With three arguments, [`require_that`]`(what, env_var, missing)`.
#[macro_export]
macro_rules! require_or_skip {
    ($tool:expr) => {
        if !$crate::require($tool) {
            return;
        }
    };
    ($what:expr, $env_var:expr, $missing:expr) => {
        if !$crate::require_that($what, $env_var, $missing) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn an_installed_tool_runs_whatever_the_environment() {
        for t in Tool::ALL {
            assert_eq!(
                decide(&t.to_string(), t.env_var(), None, env(&[("CI", "true")])),
                Ok(true)
            );
            assert_eq!(
                decide(&t.to_string(), t.env_var(), None, env(&[])),
                Ok(true)
            );
        }
    }

    #[test]
    fn a_missing_tool_skips_only_outside_ci_and_scripts_test() {
        let gone = || Some("x is not installed".to_string());
        for t in Tool::ALL {
            assert_eq!(
                decide(&t.to_string(), t.env_var(), gone(), env(&[])),
                Ok(false)
            );
            assert_eq!(
                decide(&t.to_string(), t.env_var(), gone(), env(&[("CI", "false")])),
                Ok(false)
            );
            assert_eq!(
                decide(&t.to_string(), t.env_var(), gone(), env(&[("CI", "")])),
                Ok(false)
            );
            let e =
                decide(&t.to_string(), t.env_var(), gone(), env(&[("CI", "true")])).unwrap_err();
            assert!(
                e.contains("x is not installed") && e.contains("CI is set"),
                "{e}"
            );
            assert!(e.contains("fails this test"), "{e}");
        }
        let e = decide(
            &Tool::Notmuch.to_string(),
            Tool::Notmuch.env_var(),
            gone(),
            env(&[("MAILFOLD_REQUIRE_NOTMUCH", "1")]),
        )
        .unwrap_err();
        assert!(e.contains("MAILFOLD_REQUIRE_NOTMUCH is set"), "{e}");
        // One tool's variable does not require another tool.
        assert_eq!(
            decide(
                &Tool::Cyrus.to_string(),
                Tool::Cyrus.env_var(),
                gone(),
                env(&[("MAILFOLD_REQUIRE_NOTMUCH", "1")])
            ),
            Ok(false)
        );
        assert!(decide(
            &Tool::Cyrus.to_string(),
            Tool::Cyrus.env_var(),
            gone(),
            env(&[("MAILFOLD_REQUIRE_CYRUS", "yes")])
        )
        .is_err());
        assert_eq!(
            decide(
                &Tool::Sasl2Bin.to_string(),
                Tool::Sasl2Bin.env_var(),
                gone(),
                env(&[("MAILFOLD_REQUIRE_SASL2BIN", "0")])
            ),
            Ok(false)
        );
    }

    #[test]
    fn variables_are_distinct() {
        let mut vars: Vec<_> = Tool::ALL.iter().map(|t| t.env_var()).collect();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(vars.len(), Tool::ALL.len());
    }
}
