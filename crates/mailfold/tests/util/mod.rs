//! Helpers for the CLI tests: run the real binary with a config of its own, against a private
//! Dovecot or a scripted server, and read what it printed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailfold_testsupport::Dovecot;
use serde_json::Value;

/// What one run printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A scratch directory with a config file.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    pub fn maildir(&self) -> PathBuf {
        self.path().join("mail")
    }

    /// Writes an account `t` with these connection settings.
    pub fn write_config(
        &self,
        host: &str,
        port: u16,
        tls: &str,
        password: &str,
        ca: Option<&Path>,
        extra: &str,
    ) {
        let pw = self.path().join("password");
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let ca = ca.map_or(String::new(), |c| {
            format!("ca_file = {:?}\n", c.display().to_string())
        });
        let text = format!(
            "[accounts.t]\nhost = {host:?}\nport = {port}\ntls = {tls:?}\nuser = \"user1\"\n\
             password_command = [\"cat\", {:?}]\n{ca}local = {:?}\nstate = {:?}\nfsync = false\n{extra}",
            pw.display().to_string(),
            self.maildir().display().to_string(),
            self.path().join("state.sqlite").display().to_string(),
        );
        std::fs::write(self.config(), text).unwrap();
    }

    /// Runs `mailfold --config <ours> ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Command::new(env!("CARGO_BIN_EXE_mailfold"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("HOME", self.path())
            .env("XDG_STATE_HOME", self.path().join("xdg-state"))
            .env("XDG_CONFIG_HOME", self.path().join("xdg-config"))
            .env_remove("MAILFOLD_CONFIG")
            .output()
            .expect("run mailfold")
            .into()
    }
}

/// A Dovecot and a home whose account `t` points at it over implicit TLS.
pub struct Env {
    pub dovecot: Dovecot,
    pub home: Home,
    pub user: String,
}

impl Env {
    pub fn new() -> Env {
        Self::with(Dovecot::builder())
    }

    pub fn with(b: mailfold_testsupport::DovecotBuilder) -> Env {
        let dovecot = b.start();
        let u = dovecot.user(0).clone();
        let home = Home::new();
        let addr = dovecot.imaps_addr();
        home.write_config(
            &addr.ip().to_string(),
            addr.port(),
            "implicit",
            &u.password,
            Some(&dovecot.ca_file()),
            "",
        );
        Env {
            dovecot,
            home,
            user: u.name,
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.home.run(args)
    }

    pub fn deliver(&self, folder: &str, msg: &str) {
        self.dovecot
            .deliver(&self.user, folder, msg.replace('\n', "\r\n").as_bytes());
    }

    /// `doveadm fetch` of a field for every message of a folder, one value per line.
    pub fn server(&self, folder: &str, field: &str) -> String {
        self.dovecot
            .doveadm(&["fetch", "-u", &self.user, field, "mailbox", folder])
    }

    /// Number of messages in a server folder.
    pub fn count(&self, folder: &str) -> u32 {
        let s = self.dovecot.status(&self.user, folder, "messages");
        s.rsplit('=')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Points the account at its Dovecot (`true`) or at a loopback port nobody listens on
    /// (`false`: the server "went away"); the mirror and state stay the same.
    pub fn reachable(&self, yes: bool) {
        let addr = self.dovecot.imaps_addr();
        let port = if yes {
            addr.port()
        } else {
            mailfold_testsupport::free_port(addr.ip())
        };
        let pw = self.dovecot.user(0).password.clone();
        self.home.write_config(
            &addr.ip().to_string(),
            port,
            "implicit",
            &pw,
            Some(&self.dovecot.ca_file()),
            "",
        );
    }
}

/// A message with the given subject (plain text).
pub fn plain(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: user1@example.org\nSubject: {subject}\nDate: Mon, 15 Jan 2024 10:00:00 +0000\nMessage-ID: <{}@test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}\n",
        subject.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    )
}
