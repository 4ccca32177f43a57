//! From the configuration file to what the libraries need: which account a command means,
//! the sync engine's [`AccountSpec`], for a sync, a change or a command's own session.
//! Secrets are fetched here, by running the account's command ([`crate::credential`]), only
//! when a command is about to use the server; for a sync the command is started here and
//! runs beside the run's start ([`sync_spec`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mailfold_sync::account::TimeLimits;
use mailfold_sync::{
    AccountSecret, AccountSpec, Direction, DownloadMode, FolderPatterns, MechanismName,
    PendingSecret, SecretError, TlsMode,
};

use crate::config::{self, Account, CommandSpec, Config, SyncDirection};
use crate::credential::run_secret_command;
use crate::exit::usage;

/// The loaded configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub config: Config,
}

/// Loads `--config FILE`, or the default file.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Loaded> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => config::default_config_path().ok_or_else(|| {
            usage("no configuration file: set --config, MAILFOLD_CONFIG, XDG_CONFIG_HOME or HOME")
        })?,
    };
    let config = Config::load(&path)?;
    Ok(Loaded { path, config })
}

impl Loaded {
    /// The one account a command works on: `name` if given, else the only account.
    pub fn one(&self, name: Option<&str>) -> anyhow::Result<(String, Account)> {
        match name {
            Some(n) => self
                .config
                .accounts
                .get(n)
                .map(|a| (n.to_string(), a.clone()))
                .ok_or_else(|| usage(format!("no account named {n:?} in {}", self.path.display()))),
            None => {
                let mut it = self.config.accounts.iter();
                match (it.next(), it.next()) {
                    (Some((n, a)), None) => Ok((n.clone(), a.clone())),
                    (None, _) => Err(usage(format!(
                        "{} defines no account ([accounts.NAME])",
                        self.path.display()
                    ))),
                    (Some(_), Some(_)) => Err(usage(format!(
                        "{} defines several accounts; name one with --account ({})",
                        self.path.display(),
                        self.config
                            .accounts
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
        }
    }
}

/// The state database file of an account.
pub fn state_path(name: &str, acct: &Account) -> anyhow::Result<PathBuf> {
    match &acct.state {
        Some(p) => Ok(p.clone()),
        None => mailfold_store::StateDb::default_path(name).ok_or_else(|| {
            usage(format!(
                "account {name}: no `state` path configured and neither XDG_STATE_HOME nor HOME is set"
            ))
        }),
    }
}

/// The account's secret: an anonymous login's trace string, or the output of its command.
/// A failing command's error does not name the account: the sync prints each account's
/// errors after its name, and [`credentials`] adds it for the other commands.
pub fn secret(name: &str, acct: &Account) -> anyhow::Result<AccountSecret> {
    if acct.anonymous {
        // RFC 4505: the trace is the configured `user` (an email address, or empty).
        return Ok(AccountSecret::anonymous(acct.user.clone()));
    }
    if let Some(cmd) = &acct.oauth_token_command {
        let s = run_secret_command(cmd, "oauth_token_command")?;
        register_login(acct, s.expose());
        return Ok(AccountSecret::OAuthToken(s));
    }
    if let Some(file) = &acct.password_file {
        let s =
            crate::credential::read_secret_file(file).with_context(|| format!("account {name}"))?;
        return Ok(AccountSecret::Password(s));
    }
    if let Some(var) = &acct.password_env {
        let s =
            crate::credential::read_secret_env(var).with_context(|| format!("account {name}"))?;
        return Ok(AccountSecret::Password(s));
    }
    if let Some(cmd) = &acct.password_command {
        let s = run_secret_command(cmd, "password_command")?;
        register_login(acct, s.expose());
        return Ok(AccountSecret::Password(s));
    }
    if acct.tunnel.is_some() {
        // A tunnel session must be pre-authenticated (mailfold-net refuses one that is not),
        // so no secret is ever sent: the empty password is never used.
        return Ok(AccountSecret::Password(mailfold_sync::Secret::new(
            String::new(),
        )));
    }
    // The config refuses such an account when it is loaded; a hand-built one ends here.
    Err(usage(format!(
        "account {name}: no password_command, oauth_token_command, password_file, password_env \
         or anonymous = true"
    )))
}

/// [`secret`], with a password or token command started now on a thread of its own
/// ([`PendingSecret`]) instead of waited for: the sync waits for its line only when it
/// authenticates, so the command's start-up overlaps opening the state database and
/// connecting. The same line, the same failure text and the same scrubbing as [`secret`]:
/// the secret is registered with [`crate::redact`] on that thread, before the sync can
/// have it, so before anything could send or print it.
pub fn pending_secret(name: &str, acct: &Account) -> anyhow::Result<AccountSecret> {
    if !acct.anonymous {
        if let Some(cmd) = &acct.oauth_token_command {
            let fetch = fetch_command(acct, cmd, "oauth_token_command");
            return Ok(AccountSecret::Pending(PendingSecret::oauth_token(fetch)));
        }
        // A file or a variable comes before the command in `secret`, and costs no process.
        if acct.password_file.is_none() && acct.password_env.is_none() {
            if let Some(cmd) = &acct.password_command {
                let fetch = fetch_command(acct, cmd, "password_command");
                return Ok(AccountSecret::Pending(PendingSecret::password(fetch)));
            }
        }
    }
    secret(name, acct)
}

/// The fetch of a [`PendingSecret`]: runs `cmd` as [`secret`] does. Its failure keeps the
/// command's one line (exit status 3 comes back with it, [`crate::commands::sync`]).
fn fetch_command(
    acct: &Account,
    cmd: &CommandSpec,
    what: &'static str,
) -> impl FnOnce() -> Result<mailfold_sync::Secret<String>, SecretError> + Send + 'static {
    let (acct, cmd) = (acct.clone(), cmd.clone());
    move || {
        let s = run_secret_command(&cmd, what).map_err(|e| SecretError(format!("{e:#}")))?;
        register_login(&acct, s.expose());
        Ok(s)
    }
}

/// Where the account's secret comes from, in words for a refused login's message.
fn secret_origin(name: &str, acct: &Account) -> Option<String> {
    if acct.anonymous {
        None
    } else if acct.oauth_token_command.is_some() {
        Some(format!("oauth_token_command of account {name}"))
    } else if acct.password_command.is_some() {
        Some(format!("password_command of account {name}"))
    } else {
        None
    }
}

/// Lets the output scrubber know the SASL messages that will carry this secret.
fn register_login(acct: &Account, secret: &str) {
    crate::redact::register_login(&acct.user, secret, &acct.host, acct.effective_port());
}

fn mechanisms(name: &str, acct: &Account) -> anyhow::Result<Option<Vec<MechanismName>>> {
    let Some(list) = &acct.mechanisms else {
        return Ok(None);
    };
    list.iter()
        .map(|m| {
            MechanismName::parse(m).ok_or_else(|| {
                usage(format!(
                    "account {name}: `mechanisms`: {m:?} is not a mechanism mailfold implements"
                ))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

/// The sync engine's view of an account for one sync run: a password or token command is
/// started now and waited for when the run authenticates ([`pending_secret`]). Clones of
/// the spec (the run's parallel connections) share the one result.
pub fn sync_spec(name: &str, acct: &Account) -> anyhow::Result<AccountSpec> {
    let mut spec = change_spec(name, acct)?;
    spec.secret = pending_secret(name, acct)?;
    spec.secret_origin = secret_origin(name, acct);
    Ok(spec)
}

/// [`sync_spec`] with the secret fetched before it returns (runs the password command), for
/// `watch`, which fails at its start rather than in its first round when the command does.
pub fn sync_spec_resolved(name: &str, acct: &Account) -> anyhow::Result<AccountSpec> {
    let mut spec = change_spec(name, acct)?;
    spec.secret = secret(name, acct)?;
    spec.secret_origin = secret_origin(name, acct);
    Ok(spec)
}

/// The sync engine's view of an account for a change run over a session the command opened
/// itself ([`crate::online::open_remote`]): everything but the secret, which only connecting
/// needs, so the password command runs once.
pub fn change_spec(name: &str, acct: &Account) -> anyhow::Result<AccountSpec> {
    let mut spec = AccountSpec::new(
        name,
        acct.host.clone(),
        acct.user.clone(),
        // Never sent: the session is already open.
        mailfold_sync::Secret::new(String::new()),
        acct.local.clone(),
        state_path(name, acct)?,
    );
    reach(&mut spec, name, acct)?;
    spec.folders = match &acct.folders {
        Some(p) => FolderPatterns::new(p),
        None => FolderPatterns::all(),
    };
    spec.direction = match acct.direction() {
        SyncDirection::Both => Direction::Both,
        SyncDirection::Pull => Direction::Pull,
    };
    spec.allow_plain_expunge = acct.allow_plain_expunge;
    if let Some(share) = acct.max_delete_share {
        // The config checked 0.0..=1.0, so the product fits a u8.
        spec.max_delete_percent = (share * 100.0).round() as u8;
    }
    spec.fsync = acct.fsync.unwrap_or(true);
    spec.layout = acct.store_layout().unwrap_or_default();
    spec.adopt_offlineimap = acct.adopt_offlineimap.clone();
    spec.connections = acct.connections.unwrap_or(4);
    // Seeds V0010, V0070: headers-only takes every message as a header (a size limit adds
    // nothing to it); otherwise a size limit keeps larger bodies on the server.
    spec.root_folder = acct.root_folder.clone();
    spec.download = match (acct.download, acct.max_message_size) {
        (config::DownloadMode::HeadersOnly, _) => DownloadMode::HeadersOnly,
        (config::DownloadMode::Full, Some(max)) => DownloadMode::MaxSize(max),
        (config::DownloadMode::Full, None) => DownloadMode::Full,
    };
    spec.limits = time_limits(acct, spec.limits.connect_timeout);
    Ok(spec)
}

/// The account's time limits: each configured key, else the driver's and engine's
/// default; `connect_default` is the connect timeout to use when the key is unset (a sync
/// waits longer than a command a user is watching).
pub fn time_limits(acct: &Account, connect_default: Duration) -> TimeLimits {
    let d = TimeLimits::default();
    TimeLimits {
        connect_timeout: acct.connect_timeout().unwrap_or(connect_default),
        command_timeout: acct.command_timeout().unwrap_or(d.command_timeout),
        command_budget: acct.command_budget().unwrap_or(d.command_budget),
        min_rate: acct.min_rate().unwrap_or(d.min_rate),
    }
}

/// Keys of the configuration that this version of the sync engine does not act on; `sync`
/// and `watch` warn about them rather than ignoring them silently. Every key is applied
/// today, so the list is empty; the function stays so that a future key cannot be ignored
/// silently either.
pub fn unsupported_sync_keys(_acct: &Account) -> Vec<&'static str> {
    Vec::new()
}

/// The connect timeout of the commands a user waits on, when `connect_timeout` is unset.
pub const INTERACTIVE_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The account as a session a command opens itself needs it (runs the password command):
/// the server, the secret and the SASL policy that goes with it (an anonymous account gets
/// the ANONYMOUS-only policy with its trace string, V0029), and the account's time limits.
pub fn session_spec(name: &str, acct: &Account) -> anyhow::Result<AccountSpec> {
    let secret = secret(name, acct).with_context(|| format!("account {name}"))?;
    let mut spec = server_spec(name, acct)?;
    spec.secret = secret;
    Ok(spec)
}

/// [`session_spec`] without the secret: how to reach and log in to the server. The Maildir
/// and state paths are not set: a command's own session opens neither through it.
fn server_spec(name: &str, acct: &Account) -> anyhow::Result<AccountSpec> {
    let mut spec = AccountSpec::new(
        name,
        acct.host.clone(),
        acct.user.clone(),
        mailfold_sync::Secret::new(String::new()),
        PathBuf::new(),
        PathBuf::new(),
    );
    reach(&mut spec, name, acct)?;
    // A command-line user waits for the answer: unless the account says otherwise, fail fast
    // when the server is away, so the change is queued instead of hanging.
    spec.limits = time_limits(acct, INTERACTIVE_CONNECT_TIMEOUT);
    spec.secret_origin = secret_origin(name, acct);
    Ok(spec)
}

/// How to reach and log in to the account's server, the same for a sync and for a command's
/// own session: port, TLS, CA file, certificate checking, tunnel, mechanisms and whether a
/// password may cross an unencrypted connection.
fn reach(spec: &mut AccountSpec, name: &str, acct: &Account) -> anyhow::Result<()> {
    spec.port = acct.effective_port();
    spec.tls = match acct.tls {
        config::TlsMode::Implicit => TlsMode::Implicit,
        config::TlsMode::Starttls => TlsMode::StartTls,
        config::TlsMode::None => TlsMode::None,
    };
    spec.ca_file = acct.ca_file.clone();
    spec.dangerously_accept_invalid_certs = acct.dangerously_accept_invalid_certs;
    spec.tunnel = acct.tunnel.clone();
    spec.mechanisms = mechanisms(name, acct)?;
    spec.allow_plaintext_password = acct.allow_plaintext_password;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(extra: &str) -> Account {
        let text = format!(
            "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword_command = \"true\"\n\
             local = \"/tmp/m\"\n{extra}"
        );
        let cfg = Config::parse(&text, Path::new("c.toml")).unwrap();
        cfg.accounts["a"].clone()
    }

    #[test]
    fn unset_keys_keep_todays_limits() {
        let a = account("");
        let d = TimeLimits::default();
        assert_eq!(time_limits(&a, d.connect_timeout), d);
        let (cfg, _) =
            mailfold_sync::remote_imap::connect_config(&server_spec("a", &a).unwrap()).unwrap();
        assert_eq!(cfg.connect_timeout, INTERACTIVE_CONNECT_TIMEOUT);
        assert_eq!(cfg.engine.command_timeout, d.command_timeout);
        assert_eq!(cfg.engine.command_budget, d.command_budget);
        assert_eq!(cfg.engine.min_rate, d.min_rate);
    }

    #[test]
    fn configured_keys_reach_the_driver() {
        let a = account(
            "connect_timeout = 7\ncommand_timeout = 3\ncommand_budget = 6\nmin_rate = 4096\n",
        );
        let (cfg, _) =
            mailfold_sync::remote_imap::connect_config(&server_spec("a", &a).unwrap()).unwrap();
        assert_eq!(cfg.connect_timeout, Duration::from_secs(7));
        assert_eq!(cfg.engine.command_timeout, Duration::from_secs(3));
        assert_eq!(cfg.engine.command_budget, Duration::from_secs(6));
        assert_eq!(cfg.engine.min_rate, 4096);
        let l = time_limits(&a, Duration::from_secs(30));
        assert_eq!(l.connect_timeout, Duration::from_secs(7));
        assert_eq!(l.min_rate, 4096);
    }
}
