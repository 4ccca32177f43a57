//! The configuration file: `$XDG_CONFIG_HOME/mailfold/config.toml` by default.
//!
//! This is a contract other tools and tests rely on, so the shape is strict: unknown
//! keys are errors, and every error names the file, the line and the key. Secrets never live in
//! the file: `password_command` / `oauth_token_command` name a program whose first line of output
//! is the secret; the program is run directly (argv form, no shell) unless given as one string,
//! in which case `sh -c` runs it — either way the secret never appears in any argv.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Accounts by name (`[accounts.NAME]`).
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
}

/// How the connection is secured (seed N1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 993 by default, RFC 8314).
    #[default]
    Implicit,
    /// Plaintext connection upgraded with STARTTLS (port 143 by default); never downgraded.
    Starttls,
    /// No TLS at all. Passwords are still refused unless `allow_plaintext_password = true`.
    None,
}

impl TlsMode {
    /// The IANA default port for the mode.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 993,
            TlsMode::Starttls | TlsMode::None => 143,
        }
    }
}

/// Which directions a sync runs in (seed V0040).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncDirection {
    /// Two-way mirror.
    #[default]
    Both,
    /// Server to local only; folders are opened with EXAMINE and nothing is written to the server.
    Pull,
}

/// How much of each message is downloaded (seeds V0010, V0070).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DownloadMode {
    /// Whole messages.
    #[default]
    Full,
    /// Headers first; bodies on demand (`mailfold show`) or by a later full sync.
    HeadersOnly,
}

/// How folders are laid out under `local` (the key `layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum LayoutName {
    /// `local/Work/Projects/`, INBOX at `local/INBOX/` (mbsync's `SubFolders Verbatim`).
    #[default]
    #[serde(rename = "nested")]
    Nested,
    /// Dovecot and Courier: `local` is INBOX, folders are `local/.Work.Projects/`
    /// (mbsync's `SubFolders Maildir++`).
    #[serde(rename = "maildir++")]
    MaildirPlusPlus,
    /// OfflineIMAP's default: `local/Work.Projects/`, INBOX at `local/INBOX/`, the separator
    /// set by `layout_separator` (mbsync's `Flatten`).
    #[serde(rename = "flat")]
    Flat,
}

/// A command to run: either one string (run with `sh -c`) or an argv list (run directly).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CommandSpec {
    /// `"pass show mail/work"`, run by `sh -c`.
    Shell(String),
    /// `["pass", "show", "mail/work"]`, run directly.
    Argv(Vec<String>),
}

impl fmt::Debug for CommandSpec {
    // The command itself is not secret, but users sometimes inline one (`echo hunter2`): show
    // only the program name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prog = match self {
            CommandSpec::Shell(s) => s.split_whitespace().next().unwrap_or(""),
            CommandSpec::Argv(v) => v.first().map(String::as_str).unwrap_or(""),
        };
        write!(f, "CommandSpec({prog} …)")
    }
}

/// One `[accounts.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Server host name or IP address (not needed with `tunnel`).
    #[serde(default)]
    pub host: String,
    /// Port; defaults by `tls` (993 implicit, 143 otherwise).
    pub port: Option<u16>,
    /// TLS mode.
    #[serde(default)]
    pub tls: TlsMode,
    /// Login name (not needed with `tunnel`).
    #[serde(default)]
    pub user: String,
    /// Program printing the password on its first line of output.
    pub password_command: Option<CommandSpec>,
    /// Program printing an OAuth 2 access token (XOAUTH2 / OAUTHBEARER).
    pub oauth_token_command: Option<CommandSpec>,
    /// A file whose first line is the password (a mounted secret, a systemd credential).
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password (a scheduler's injected secret).
    pub password_env: Option<String>,
    /// Extra CA certificates (PEM) trusted for this account, for self-hosted servers.
    pub ca_file: Option<PathBuf>,
    /// Allow sending a password over a connection without TLS (seed V0031). Default false.
    #[serde(default)]
    pub allow_plaintext_password: bool,
    /// Ordered SASL mechanism preference; default is strongest first.
    pub mechanisms: Option<Vec<String>>,
    /// Use ANONYMOUS authentication (seed V0029, RFC 4505); `user` is then the trace string
    /// (an email address or empty), and no secret is configured.
    #[serde(default)]
    pub anonymous: bool,
    /// Root of the local Maildir tree.
    pub local: PathBuf,
    /// How folders are laid out under `local`.
    #[serde(default)]
    pub layout: LayoutName,
    /// The separator of the flat layout (one character, default `.`).
    pub layout_separator: Option<String>,
    /// OfflineIMAP's metadata directory of the server repository
    /// (`~/.offlineimap/Repository-NAME`): its `FolderValidity` files let the first sync bind
    /// the `,U=` UIDs in OfflineIMAP's file names.
    pub adopt_offlineimap: Option<PathBuf>,
    /// A command (argv, no shell) that speaks IMAP on its stdin and stdout, already logged in
    /// (PREAUTH), e.g. `["ssh", "-q", "mailhost", "/usr/lib/dovecot/imap"]`; replaces `host`,
    /// `port` and the TLS settings, and no secret is needed.
    pub tunnel: Option<Vec<String>>,
    /// Folder patterns (`*` and `%` wildcards as in LIST; a leading `!` excludes). Default: all.
    pub folders: Option<Vec<String>>,
    /// State database file; default `$XDG_STATE_HOME/mailfold/<account>.sqlite`.
    pub state: Option<PathBuf>,
    /// Sync direction; unset means [`Account::direction`]'s default.
    pub sync: Option<SyncDirection>,
    /// Download mode.
    #[serde(default)]
    pub download: DownloadMode,
    /// Messages larger than this many bytes are left on the server with a placeholder.
    pub max_message_size: Option<u64>,
    /// Parallel connections for a sync (default 4, at most 16).
    pub connections: Option<u8>,
    /// Share of a folder (0.0–1.0) a run may delete before it stops and asks for `--force`.
    pub max_delete_share: Option<f64>,
    /// Allow a plain EXPUNGE when the server lacks UIDPLUS (it also removes other clients'
    /// `\Deleted` messages). Default false.
    #[serde(default)]
    pub allow_plain_expunge: bool,
    /// Path prefix of the server folders to mirror (seed V0022), e.g. `INBOX.` on some servers.
    pub root_folder: Option<String>,
    /// fsync every message and directory (default true). Turning it off is for benchmarks.
    pub fsync: Option<bool>,
    /// Accept any TLS certificate for this account. Never use this outside a laboratory: it
    /// lets anyone on the network read the password.
    #[serde(default)]
    pub dangerously_accept_invalid_certs: bool,
    /// Seconds allowed for the TCP connect (per address), the TLS handshake and the greeting.
    /// Unset: 30 s for a sync, 15 s for the commands a user waits on. See [`LIMITS`].
    pub connect_timeout: Option<i64>,
    /// Seconds without a byte from the server before a command counts as stalled (the
    /// engine's silence and unfinished-response clocks). Unset: the engine's 60 s.
    pub command_timeout: Option<i64>,
    /// Base seconds every command may take before the allowances for the messages it names
    /// and the data it receives (the engine's budget clock). Unset: the engine's 2 minutes.
    pub command_budget: Option<i64>,
    /// The slowest data rate, in bytes per second, that still counts as a live server; also
    /// the rate an upload is allowed. Unset: the engine's 16 KiB/s (16384).
    pub min_rate: Option<i64>,
    /// `watch` on a server without NOTIFY: seconds between polls of the folders IDLE does not
    /// watch (see [`WATCH_POLL_RANGE`]). Unset: 60.
    pub watch_poll_interval: Option<i64>,
    /// Program run after every `sync` and every `watch` round that changed something (the
    /// mbsync-then-`notmuch new` habit), with the counts in its environment. Never given a
    /// secret; its failure is a warning.
    pub post_sync_command: Option<CommandSpec>,
}

/// Accepted `watch_poll_interval` seconds (inclusive): each poll also keeps the polling
/// connection alive, so the ceiling stays well under the 30-minute autologout (RFC 3501
/// 5.4) and seed V0025's 10 minutes.
pub const WATCH_POLL_RANGE: (i64, i64) = (1, 600);

/// The time-limit keys with their accepted ranges (inclusive) and unit, as `(key, min, max,
/// unit)`. The floors keep a typo from making every command fail at once (0 s, or a
/// 10 B/s "live" rate that would let a trickling server hold a session for days); the
/// ceilings keep one from disabling the limit in practice.
pub const LIMITS: [(&str, i64, i64, &str); 4] = [
    // Ten minutes is far beyond any real handshake.
    ("connect_timeout", 1, 600, "seconds"),
    // One hour of silence is already a dead connection.
    ("command_timeout", 1, 3600, "seconds"),
    // A day: a larger base budget means no budget.
    ("command_budget", 1, 86_400, "seconds"),
    // 1 KiB/s floor (a slower "live" rate lets a hostile server crawl); 1 GiB/s
    // ceiling, and it fits the engine's u32.
    ("min_rate", 1024, 1 << 30, "bytes per second"),
];

impl Account {
    /// The store's layout for the keys `layout` and `layout_separator`, or why they do not fit.
    pub fn store_layout(&self) -> Result<mailfold_store::Layout, String> {
        use mailfold_store::Layout;
        match (self.layout, &self.layout_separator) {
            (LayoutName::Nested, None) => Ok(Layout::Nested),
            (LayoutName::MaildirPlusPlus, None) => Ok(Layout::MaildirPlusPlus),
            (LayoutName::Flat, None) => Layout::flat('.').map_err(|e| e.to_string()),
            (LayoutName::Flat, Some(s)) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Layout::flat(c).map_err(|_| {
                        format!(
                            "{s:?} is not one ASCII punctuation character other than '/' and '%'"
                        )
                    }),
                    _ => Err(format!("{s:?} is not one character")),
                }
            }
            (_, Some(_)) => Err("only the flat layout takes a separator".into()),
        }
    }

    /// The sync direction: the configured one, else pull-only for an anonymous account
    /// (servers grant anonymous logins read access at most, so a two-way sync would only
    /// collect refusals) and two-way for everything else.
    pub fn direction(&self) -> SyncDirection {
        self.sync.unwrap_or(if self.anonymous {
            SyncDirection::Pull
        } else {
            SyncDirection::Both
        })
    }

    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }

    /// `connect_timeout`, if set (validated by [`Config::parse`]).
    pub fn connect_timeout(&self) -> Option<Duration> {
        secs(self.connect_timeout)
    }

    /// `command_timeout`, if set (validated by [`Config::parse`]).
    pub fn command_timeout(&self) -> Option<Duration> {
        secs(self.command_timeout)
    }

    /// `command_budget`, if set (validated by [`Config::parse`]).
    pub fn command_budget(&self) -> Option<Duration> {
        secs(self.command_budget)
    }

    /// `watch_poll_interval` (validated by [`Config::parse`]), else 60 s.
    pub fn watch_poll_interval(&self) -> Duration {
        secs(self.watch_poll_interval).unwrap_or(Duration::from_secs(60))
    }

    /// `min_rate` in bytes per second, if set (validated by [`Config::parse`]).
    pub fn min_rate(&self) -> Option<u32> {
        self.min_rate.and_then(|r| u32::try_from(r).ok())
    }

    fn limit_value(&self, key: &str) -> Option<i64> {
        match key {
            "connect_timeout" => self.connect_timeout,
            "command_timeout" => self.command_timeout,
            "command_budget" => self.command_budget,
            "min_rate" => self.min_rate,
            _ => None,
        }
    }
}

/// A whole number of seconds as a duration; `None` for unset or (unvalidated) negative.
fn secs(v: Option<i64>) -> Option<Duration> {
    v.and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

/// A configuration error that names where it is.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key (dotted path), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The default config file path: `$XDG_CONFIG_HOME/mailfold/config.toml`, or
/// `~/.config/mailfold/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("mailfold").join("config.toml"))
}

/// The default state directory: `$XDG_STATE_HOME/mailfold`, or `~/.local/state/mailfold`.
pub fn default_state_dir() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state").map(|d| d.join("mailfold"))
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        // The XDG spec says relative values are invalid and must be ignored.
        Some(v) if Path::new(&v).is_absolute() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)),
    }
}

/// Expands a leading `~/` to `$HOME`.
pub fn expand_home(p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    p.to_path_buf()
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError {
                path: path.to_path_buf(),
                line,
                key: line.and_then(|l| key_at_line(text, l)),
                message: e.message().to_string(),
            }
        })?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    /// Checks every account and expands `~/` in its paths; `text` and `path` locate errors.
    /// [`Config::parse`] calls it; `mailfold fleet` calls it on the accounts a manifest
    /// builds, so both files take the same keys with the same rules.
    pub fn validate(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        for (name, acct) in self.accounts.iter_mut() {
            check_account(name, acct).map_err(|(key, message)| ConfigError {
                path: path.to_path_buf(),
                line: find_key_line(text, name, key),
                key: Some(format!("accounts.{name}.{key}")),
                message,
            })?;
        }
        Ok(())
    }

    /// The accounts selected by name (all when `names` is empty), or an error naming an unknown one.
    pub fn select<'a>(&'a self, names: &[String]) -> Result<Vec<(&'a str, &'a Account)>, String> {
        if names.is_empty() {
            return Ok(self.accounts.iter().map(|(n, a)| (n.as_str(), a)).collect());
        }
        names
            .iter()
            .map(|n| {
                self.accounts
                    .get_key_value(n)
                    .map(|(k, a)| (k.as_str(), a))
                    .ok_or_else(|| format!("no account named {n:?} in the configuration"))
            })
            .collect()
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key assigned on 1-based `line` (`accounts.work.min_rate`), for errors the TOML
/// parser reports with a position only (a value of the wrong type, say). Best effort: only
/// `key = value` lines under a `[table]` header are named.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (key, _) = lines.get(line.checked_sub(1)?)?.trim().split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("[["))?;
    let table = table.trim_start_matches('[').split(']').next()?.trim();
    Some(format!("{table}.{key}"))
}

/// A key of an account and what is wrong with its value.
type BadKey = (&'static str, String);

/// Checks one account and expands `~/` in its paths, in the order the keys are reported:
/// the name and the connection, the secret, the paths, then the limits and lists.
fn check_account(name: &str, acct: &mut Account) -> Result<(), BadKey> {
    check_connection(name, acct)?;
    check_secret(acct)?;
    check_paths(acct)?;
    check_tuning(acct)
}

/// The account's name, tunnel, host, port and user. A tunnel without a host gets the host
/// name "tunnel", for messages only: a tunnel connects nowhere itself.
fn check_connection(name: &str, acct: &mut Account) -> Result<(), BadKey> {
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
        return Err((
            "",
            "account names must be non-empty, without '/' or control characters".into(),
        ));
    }
    if let Some(t) = &acct.tunnel {
        if t.first().is_none_or(|p| p.is_empty()) {
            return Err(("tunnel", "must name a program".into()));
        }
        if acct.host.trim().is_empty() {
            // Only a name for messages: a tunnel connects nowhere itself.
            acct.host = "tunnel".into();
        }
    }
    if acct.host.trim().is_empty() {
        return Err(("host", "must not be empty".into()));
    }
    if acct.port == Some(0) {
        return Err(("port", "must be between 1 and 65535".into()));
    }
    if acct.user.is_empty() && !acct.anonymous && acct.tunnel.is_none() {
        return Err(("user", "must not be empty".into()));
    }
    Ok(())
}

/// The account's one source of a secret (none for an anonymous login) and its commands.
fn check_secret(acct: &Account) -> Result<(), BadKey> {
    let sources = [
        ("password_command", acct.password_command.is_some()),
        ("oauth_token_command", acct.oauth_token_command.is_some()),
        ("password_file", acct.password_file.is_some()),
        ("password_env", acct.password_env.is_some()),
    ];
    if !sources.iter().any(|(_, set)| *set) && !acct.anonymous && acct.tunnel.is_none() {
        return Err((
            "password_command",
            "an account needs password_command, oauth_token_command, password_file, \
                 password_env or anonymous = true"
                .into(),
        ));
    }
    // One secret per account: a second would be silently unused.
    if let Some((second, _)) = sources.iter().filter(|(_, set)| *set).nth(1) {
        return Err((
            *second,
            "an account takes one of password_command, oauth_token_command, \
                 password_file and password_env"
                .into(),
        ));
    }
    if let Some(v) = &acct.password_env {
        if v.is_empty()
            || v.starts_with(|c: char| c.is_ascii_digit())
            || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err((
                "password_env",
                format!("{v:?} is not an environment variable name"),
            ));
        }
    }
    if acct
        .password_file
        .as_ref()
        .is_some_and(|f| f.as_os_str().is_empty())
    {
        return Err(("password_file", "must name a file".into()));
    }
    if acct.anonymous {
        // An anonymous login sends no secret (RFC 4505): a configured one would be
        // silently unused, which hides a mistake.
        for (key, set) in sources {
            if set {
                return Err((key, "an anonymous account takes no secret".into()));
            }
        }
    }
    for (key, cmd) in [
        ("password_command", &acct.password_command),
        ("oauth_token_command", &acct.oauth_token_command),
        ("post_sync_command", &acct.post_sync_command),
    ] {
        match cmd {
            Some(CommandSpec::Shell(s)) if s.trim().is_empty() => {
                return Err((key, "must not be empty".into()))
            }
            Some(CommandSpec::Argv(v)) if v.is_empty() || v[0].is_empty() => {
                return Err((key, "must name a program".into()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The Maildir root, then `~/` expanded in every path.
fn check_paths(acct: &mut Account) -> Result<(), BadKey> {
    if acct.local.as_os_str().is_empty() {
        return Err(("local", "must name the Maildir root".into()));
    }
    acct.local = expand_home(&acct.local);
    acct.ca_file = acct.ca_file.as_deref().map(expand_home);
    acct.state = acct.state.as_deref().map(expand_home);
    acct.password_file = acct.password_file.as_deref().map(expand_home);
    acct.adopt_offlineimap = acct.adopt_offlineimap.as_deref().map(expand_home);
    Ok(())
}

/// The layout, the connection count, the numeric limits and the mechanism and folder lists.
fn check_tuning(acct: &Account) -> Result<(), BadKey> {
    if let Err(message) = acct.store_layout() {
        return Err(("layout_separator", message));
    }
    if let Some(c) = acct.connections {
        if c == 0 || c > 16 {
            return Err(("connections", "must be between 1 and 16".into()));
        }
    }
    for (key, min, max, unit) in LIMITS {
        if let Some(v) = acct.limit_value(key) {
            if !(min..=max).contains(&v) {
                return Err((
                    key,
                    format!("must be between {min} and {max} {unit}, not {v}"),
                ));
            }
        }
    }
    if let Some(v) = acct.watch_poll_interval {
        let (min, max) = WATCH_POLL_RANGE;
        if !(min..=max).contains(&v) {
            return Err((
                "watch_poll_interval",
                format!("must be between {min} and {max} seconds, not {v}"),
            ));
        }
    }
    if let Some(s) = acct.max_delete_share {
        if !(0.0..=1.0).contains(&s) {
            return Err(("max_delete_share", "must be between 0.0 and 1.0".into()));
        }
    }
    if let Some(m) = &acct.mechanisms {
        if let Some(bad) = m.iter().find(|m| {
            m.is_empty()
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            return Err((
                "mechanisms",
                format!("{bad:?} is not a SASL mechanism name"),
            ));
        }
    }
    if let Some(f) = &acct.folders {
        if let Some(bad) = f
            .iter()
            .find(|p| p.is_empty() || p.chars().any(char::is_control))
        {
            return Err(("folders", format!("invalid folder pattern {bad:?}")));
        }
    }
    Ok(())
}

/// Finds the line of `key` inside `[accounts.NAME]` (best effort, for error messages after
/// deserialisation, when spans are gone).
fn find_key_line(text: &str, account: &str, key: &str) -> Option<usize> {
    let header = format!("[accounts.{account}]");
    let quoted = format!("[accounts.\"{account}\"]");
    let mut in_table = false;
    let mut table_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t == header || t == quoted;
            if in_table {
                table_line = Some(i + 1);
            }
            continue;
        }
        if in_table && !key.is_empty() {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(i + 1);
                }
            }
        }
    }
    table_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[accounts.work]
host = "imap.example.com"
user = "me@example.com"
password_command = ["pass", "show", "mail/work"]
local = "/tmp/mail/work"
"#;

    #[test]
    fn minimal_account_gets_defaults() {
        let cfg = Config::parse(GOOD, Path::new("c.toml")).unwrap();
        let a = &cfg.accounts["work"];
        assert_eq!(a.tls, TlsMode::Implicit);
        assert_eq!(a.effective_port(), 993);
        assert!(!a.allow_plaintext_password);
        assert_eq!(a.direction(), SyncDirection::Both);
    }

    #[test]
    fn watch_and_post_sync_keys_are_read_and_checked() {
        let text = GOOD.replace(
            "local",
            "watch_poll_interval = 30\npost_sync_command = \"notmuch new\"\nlocal",
        );
        let cfg = Config::parse(&text, Path::new("c.toml")).unwrap();
        let a = &cfg.accounts["work"];
        assert_eq!(a.watch_poll_interval(), Duration::from_secs(30));
        assert_eq!(
            a.post_sync_command,
            Some(CommandSpec::Shell("notmuch new".into()))
        );
        let a = &Config::parse(GOOD, Path::new("c.toml")).unwrap().accounts["work"];
        assert_eq!(a.watch_poll_interval(), Duration::from_secs(60));
        assert!(a.post_sync_command.is_none());
        for bad in ["watch_poll_interval = 0", "watch_poll_interval = 601"] {
            let text = GOOD.replace("local", &format!("{bad}\nlocal"));
            let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("accounts.work.watch_poll_interval"));
        }
        let text = GOOD.replace("local", "post_sync_command = []\nlocal");
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("accounts.work.post_sync_command"));
    }

    #[test]
    fn n1_port_defaults_follow_tls_mode() {
        let text = GOOD.replace("local", "tls = \"starttls\"\nlocal");
        let cfg = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(cfg.accounts["work"].effective_port(), 143);
        let text = GOOD.replace("local", "port = 10993\nlocal");
        let cfg = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(cfg.accounts["work"].effective_port(), 10993);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("local", "hots = \"x\"\nlocal");
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("c.toml:6"), "{s}");
        assert!(s.contains("hots"), "{s}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let text = GOOD.replace("local", "connections = 0\nlocal");
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("accounts.work.connections"));
        assert_eq!(e.line, Some(6));
        let text = GOOD.replace("local", "tls = \"ssl\"\nlocal");
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
    }

    #[test]
    fn account_without_credentials_source_is_refused() {
        let text = GOOD.replace(
            "password_command = [\"pass\", \"show\", \"mail/work\"]\n",
            "",
        );
        let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("accounts.work.password_command"));
    }

    #[test]
    fn time_limits_parse_and_default_to_unset() {
        let cfg = Config::parse(GOOD, Path::new("c.toml")).unwrap();
        let a = &cfg.accounts["work"];
        assert_eq!(a.connect_timeout(), None);
        assert_eq!(a.command_timeout(), None);
        assert_eq!(a.command_budget(), None);
        assert_eq!(a.min_rate(), None);
        let text = GOOD.replace(
            "local",
            "connect_timeout = 10\ncommand_timeout = 90\ncommand_budget = 300\n\
             min_rate = 16384\nlocal",
        );
        let cfg = Config::parse(&text, Path::new("c.toml")).unwrap();
        let a = &cfg.accounts["work"];
        assert_eq!(a.connect_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(a.command_timeout(), Some(Duration::from_secs(90)));
        assert_eq!(a.command_budget(), Some(Duration::from_secs(300)));
        assert_eq!(a.min_rate(), Some(16384));
        // The bounds themselves are accepted.
        for (key, min, max, _) in LIMITS {
            for v in [min, max] {
                let text = GOOD.replace("local", &format!("{key} = {v}\nlocal"));
                let cfg = Config::parse(&text, Path::new("c.toml"))
                    .unwrap_or_else(|e| panic!("{key} = {v}: {e}"));
                assert_eq!(cfg.accounts["work"].limit_value(key), Some(v));
            }
        }
    }

    #[test]
    fn time_limits_out_of_range_are_refused_naming_the_key() {
        let cases: &[(&str, &str)] = &[
            ("connect_timeout", "0"),
            ("connect_timeout", "-5"),
            ("connect_timeout", "601"),
            ("command_timeout", "0"),
            ("command_timeout", "-1"),
            ("command_timeout", "3601"),
            ("command_budget", "0"),
            ("command_budget", "86401"),
            ("min_rate", "0"),
            ("min_rate", "1023"),
            ("min_rate", "-16384"),
            ("min_rate", "1073741825"),
        ];
        for (key, value) in cases {
            let text = GOOD.replace("local", &format!("{key} = {value}\nlocal"));
            let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
            let full = format!("accounts.work.{key}");
            assert_eq!(
                e.key.as_deref(),
                Some(full.as_str()),
                "{key} = {value}: {e}"
            );
            assert_eq!(e.line, Some(6), "{e}");
            let s = e.to_string();
            assert!(s.contains("must be between"), "{s}");
            assert!(s.contains(value), "the message repeats the value: {s}");
        }
        let e = Config::parse(
            &GOOD.replace("local", "min_rate = 100\nlocal"),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("1024"), "the floor is named: {e}");
    }

    #[test]
    fn time_limits_of_the_wrong_type_are_refused_naming_the_key() {
        for (key, value) in [
            ("command_timeout", "2.5"),
            ("command_budget", "\"2m\""),
            ("min_rate", "\"16 KiB\""),
            ("connect_timeout", "true"),
        ] {
            let text = GOOD.replace("local", &format!("{key} = {value}\nlocal"));
            let e = Config::parse(&text, Path::new("c.toml")).unwrap_err();
            let full = format!("accounts.work.{key}");
            assert_eq!(
                e.key.as_deref(),
                Some(full.as_str()),
                "{key} = {value}: {e}"
            );
            assert_eq!(e.line, Some(6), "{e}");
        }
    }

    #[test]
    fn layout_keys_parse_and_a_bad_separator_is_refused() {
        let base =
            "[accounts.a]\nhost = \"h\"\nuser = \"u\"\npassword_command = \"x\"\nlocal = \"/m\"\n";
        let ok = |extra: &str| {
            Config::parse(&format!("{base}{extra}"), Path::new("c.toml"))
                .map(|c| c.accounts["a"].store_layout().unwrap())
        };
        assert_eq!(ok("").unwrap(), mailfold_store::Layout::Nested);
        assert_eq!(
            ok("layout = \"maildir++\"\n").unwrap(),
            mailfold_store::Layout::MaildirPlusPlus
        );
        assert_eq!(
            ok("layout = \"flat\"\nlayout_separator = \"_\"\n").unwrap(),
            mailfold_store::Layout::Flat { separator: '_' }
        );
        for bad in [
            "layout = \"flat\"\nlayout_separator = \"/\"\n",
            "layout = \"flat\"\nlayout_separator = \"..\"\n",
            "layout_separator = \".\"\n",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(
                e.key.as_deref(),
                Some("accounts.a.layout_separator"),
                "{bad}"
            );
        }
    }

    #[test]
    fn command_debug_hides_arguments() {
        let c = CommandSpec::Shell("echo hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
