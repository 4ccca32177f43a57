//! What one sync run needs to know about an account, as plain data.
//!
//! The CLI turns its TOML configuration into an [`AccountSpec`]; tests build one by hand. Nothing
//! here reads files or the environment: the password is already a [`Secret`], the paths are
//! already resolved.

use std::path::PathBuf;
use std::time::Duration;

use mailfold_sasl::{MechanismName, Secret};

pub use crate::plan::DownloadMode;

/// How the connection is protected (seed N1: 993 implicit TLS by default, 143 with STARTTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// Cleartext greeting, then STARTTLS before anything else (port 143). A server that does not
    /// offer it is refused, never silently used in clear.
    StartTls,
    /// No TLS at all. Passwords are still refused over it unless
    /// [`AccountSpec::allow_plaintext_password`] is set (seed V0031).
    None,
}

/// Which way changes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Two-way mirror.
    #[default]
    Both,
    /// Server to Maildir only: folders are opened with EXAMINE (seed V0040), so the server is never
    /// written; local changes are kept and reported as pending.
    Pull,
}

/// Folder selection: shell-like patterns over the folder's UTF-8 name with `/` between levels.
/// `*` matches anything, `%` anything but `/` (as in LIST, RFC 3501 6.3.8); a pattern starting
/// with `!` excludes. A folder is synced when it matches at least one inclusion (or there are
/// none) and no exclusion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderPatterns {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl FolderPatterns {
    /// Every folder.
    pub fn all() -> FolderPatterns {
        FolderPatterns::default()
    }

    /// Builds the selection from configured patterns (`"*"`, `"Lists/%"`, `"!Trash"`).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(patterns: I) -> FolderPatterns {
        let mut p = FolderPatterns::default();
        for s in patterns {
            let s = s.as_ref();
            match s.strip_prefix('!') {
                Some(ex) => p.exclude.push(ex.to_owned()),
                None => p.include.push(s.to_owned()),
            }
        }
        p
    }

    /// Whether the folder named `name` (levels joined with `/`) is synced.
    pub fn matches(&self, name: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|p| wildcard(p.as_bytes(), name.as_bytes()));
        included
            && !self
                .exclude
                .iter()
                .any(|p| wildcard(p.as_bytes(), name.as_bytes()))
    }
}

/// LIST-style wildcard match, iterative with one backtrack point per star so that a hostile
/// pattern cannot make it exponential.
fn wildcard(pat: &[u8], text: &[u8]) -> bool {
    // Dynamic programming over (pattern position, text position) would be simpler to prove but
    // needs O(n·m) memory; this classic two-pointer form needs O(1) and handles `%` by refusing
    // to let a `%` run swallow a `/`.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize, bool)> = None; // (pattern after wildcard, text, is %)
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t, false));
                p += 1;
            }
            Some(b'%') => {
                star = Some((p + 1, t, true));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st, percent)) if !(percent && text[st] == b'/') => {
                    star = Some((sp, st + 1, percent));
                    p = sp;
                    t = st + 1;
                }
                _ => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*' || c == b'%')
}

/// The secret an account authenticates with.
#[derive(Debug, Clone)]
pub enum AccountSecret {
    /// A password (password mechanisms and the LOGIN command).
    Password(Secret<String>),
    /// An OAuth 2.0 access token (OAUTHBEARER, XOAUTH2).
    OAuthToken(Secret<String>),
    /// No secret: SASL ANONYMOUS only (RFC 4505; seed V0029). The trace string (an email
    /// address or any opaque text, RFC 4505 section 2) is sent as the mechanism's only
    /// message; it is not secret, so it is plain text. Servers usually grant such a login
    /// read access only, so the CLI defaults these accounts to [`Direction::Pull`].
    Anonymous {
        /// The RFC 4505 trace information (at most 255 characters are sent).
        trace: String,
    },
    /// A password or token still being fetched when the run starts ([`PendingSecret`]);
    /// the run waits for it when it authenticates.
    Pending(PendingSecret),
}

impl AccountSecret {
    /// An anonymous login with this trace string (RFC 4505).
    pub fn anonymous(trace: impl Into<String>) -> AccountSecret {
        AccountSecret::Anonymous {
            trace: trace.into(),
        }
    }

    /// The secret itself: a [`AccountSecret::Pending`] one is waited for (once per run, see
    /// [`PendingSecret`]) and comes back as a password or token; the others as they are.
    pub fn wait(&self) -> Result<AccountSecret, SecretError> {
        match self {
            AccountSecret::Pending(p) => {
                let s = p.wait()?;
                Ok(if p.token {
                    AccountSecret::OAuthToken(s)
                } else {
                    AccountSecret::Password(s)
                })
            }
            other => Ok(other.clone()),
        }
    }

    /// Why a pending secret could not be had (waiting for it if it is still being fetched);
    /// `None` when it arrived or was never pending. A run that fails before it logs in asks
    /// this, so that a failed password command is reported as it was before the command ran
    /// beside the run's start: as the run's only error.
    pub fn failure(&self) -> Option<SecretError> {
        match self {
            AccountSecret::Pending(p) => p.wait().err(),
            _ => None,
        }
    }

    /// Whether the secret is still to come from a [`PendingSecret`].
    pub fn is_pending(&self) -> bool {
        matches!(self, AccountSecret::Pending(_))
    }
}

/// Why a pending secret did not arrive, in the words of whatever fetched it (a password
/// command's failure line, which never shows its output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError(pub String);

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SecretError {}

/// A password or token that is still being fetched (the CLI's `password_command` or
/// `oauth_token_command`), on a thread of its own started with the run, so that the command's
/// start-up (a `pass` or `gpg` call takes tens of milliseconds) overlaps the run's own
/// start: opening the state database, connecting, TLS, the greeting and CAPABILITY. The run
/// waits for it only when it is about to authenticate
/// ([`crate::remote_imap::NetRemote::connect`]).
///
/// Clones share one result: the first [`PendingSecret::wait`] joins the thread and keeps
/// what it returned, every later one (the parallel workers' extra connections, a watch's
/// reconnections) gets that same result, so the command runs once per spec.
#[derive(Clone)]
pub struct PendingSecret {
    /// An OAuth token (the bearer mechanisms) rather than a password.
    token: bool,
    slot: std::sync::Arc<std::sync::Mutex<Slot>>,
}

/// What a fetch function returns: the secret, or one line saying why there is none.
type Fetched = Result<Secret<String>, SecretError>;

enum Slot {
    Running(std::thread::JoinHandle<Fetched>),
    Done(Fetched),
}

impl std::fmt::Debug for PendingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSecret")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl PendingSecret {
    /// Starts `fetch` for a password now, on a thread of its own.
    pub fn password(fetch: impl FnOnce() -> Fetched + Send + 'static) -> PendingSecret {
        PendingSecret::start(false, fetch)
    }

    /// Starts `fetch` for an OAuth 2.0 access token now, on a thread of its own.
    pub fn oauth_token(fetch: impl FnOnce() -> Fetched + Send + 'static) -> PendingSecret {
        PendingSecret::start(true, fetch)
    }

    fn start(token: bool, fetch: impl FnOnce() -> Fetched + Send + 'static) -> PendingSecret {
        // The closure goes into the thread, or, when no thread can be started, is run here:
        // only the overlap is lost.
        let fetch = std::sync::Arc::new(std::sync::Mutex::new(Some(fetch)));
        let run = {
            let fetch = std::sync::Arc::clone(&fetch);
            move || match fetch.lock().ok().and_then(|mut f| f.take()) {
                Some(f) => f(),
                None => Err(SecretError("the secret was not fetched".into())),
            }
        };
        let slot = match std::thread::Builder::new().name("secret".into()).spawn(run) {
            Ok(handle) => Slot::Running(handle),
            Err(_) => Slot::Done(match fetch.lock().ok().and_then(|mut f| f.take()) {
                Some(f) => f(),
                None => Err(SecretError("the secret was not fetched".into())),
            }),
        };
        PendingSecret {
            token,
            slot: std::sync::Arc::new(std::sync::Mutex::new(slot)),
        }
    }

    /// Whether it is an OAuth 2.0 access token rather than a password.
    pub fn is_token(&self) -> bool {
        self.token
    }

    /// The secret, waiting for the fetch when it is still running. Waiters queue on the
    /// slot's lock, so only the first joins the thread.
    pub fn wait(&self) -> Fetched {
        // A waiter that panicked leaves the slot as it found it or done: either is usable.
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let placeholder = Slot::Done(Err(SecretError("the secret was not fetched".into())));
        let done = match std::mem::replace(&mut *slot, placeholder) {
            Slot::Running(handle) => handle.join().unwrap_or_else(|_| {
                Err(SecretError(
                    "the secret could not be fetched (its thread ended unexpectedly)".into(),
                ))
            }),
            Slot::Done(r) => r,
        };
        *slot = Slot::Done(done.clone());
        done
    }
}

/// One account, as the sync engine needs it.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    /// A name for messages and the report.
    pub name: String,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection protection.
    pub tls: TlsMode,
    /// Extra CA certificate (PEM) trusted for this account, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (the config key `dangerously_accept_invalid_certs`).
    /// Off by default. With it on, `mailfold-net` logs a warning on every connection; the
    /// handshake signature is still checked, but anyone on the path can impersonate the
    /// server, so this is for laboratories only.
    pub dangerously_accept_invalid_certs: bool,
    /// Login name.
    pub user: String,
    /// Password or token.
    pub secret: AccountSecret,
    /// Where the secret came from, for the message of a refused login
    /// ([`mailfold_sasl::Credentials::origin`]); `None` says nothing.
    pub secret_origin: Option<String>,
    /// SASL mechanisms in preference order; `None` is the library's strongest-first default.
    pub mechanisms: Option<Vec<MechanismName>>,
    /// Allow a password over a connection without TLS (seed V0031). Off by default.
    pub allow_plaintext_password: bool,
    /// The Maildir root.
    pub maildir: PathBuf,
    /// The state database file (outside the Maildir, so no mail indexer sees it).
    pub state_db: PathBuf,
    /// Which folders take part.
    pub folders: FolderPatterns,
    /// Two-way or pull-only.
    pub direction: Direction,
    /// Allow a bare EXPUNGE when the server lacks UIDPLUS. A bare EXPUNGE also removes messages
    /// other clients flagged `\Deleted`, so it is off by default.
    pub allow_plain_expunge: bool,
    /// Refuse a folder's plan when it deletes more than this percentage of a side holding more
    /// than 20 messages (default 50).
    pub max_delete_percent: u8,
    /// fsync message files and directories (on by default; off only for benchmarks).
    pub fsync: bool,
    /// How folder names map to directories under `maildir` (nested by default).
    pub layout: mailfold_store::Layout,
    /// OfflineIMAP's repository metadata directory (`~/.offlineimap/Repository-NAME`), whose
    /// `FolderValidity` files let the first sync bind the UIDs in OfflineIMAP's file names
    /// ([`crate::adopt`]).
    pub adopt_offlineimap: Option<PathBuf>,
    /// A command speaking IMAP on its stdin and stdout, pre-authenticated (argv, no shell):
    /// used instead of `host`/`port`/`tls`, and no secret is sent (mailfold-net's tunnel).
    pub tunnel: Option<Vec<String>>,
    /// Connections a run may use (at least 1): folders with enough work to pay for a login
    /// are shared out over the extra ones ([`crate::parallel`]).
    pub connections: u8,
    /// The most messages of a folder new to an empty mirror that are read, planned and
    /// applied at once; a larger folder goes window by window
    /// ([`crate::gather::FreshWindows`]). Default [`FRESH_WINDOW`]; tests
    /// lower it to cut small folders into several windows.
    pub fresh_window: usize,
    /// What a download fetches (seeds V0010, V0070): whole messages (the default), headers
    /// only, or whole messages up to a size and headers beyond it. The CLI maps its config
    /// keys `download` and `max_message_size` onto this. A partial copy never replaces a full
    /// one and is never uploaded.
    pub download: DownloadMode,
    /// The server folder the mirror lives under (seed V0022), as the server names it
    /// (`INBOX.` or `INBOX` on servers that nest every folder under INBOX): its children are
    /// the local top-level folders, INBOX stays INBOX, folders outside it take no part. `None`:
    /// the first personal namespace NAMESPACE reports (usually the whole account). The CLI
    /// maps its config key `root_folder` onto this.
    pub root_folder: Option<String>,
    /// Network time limits of every connection the run opens. The CLI maps its
    /// config keys `connect_timeout`, `command_timeout`, `command_budget` and `min_rate`
    /// onto this; the default is the driver's and the engine's own.
    pub limits: TimeLimits,
}

/// The user-settable time limits of a connection: how long to wait for the server
/// to answer at all, and how long a command may take. The engine's rules for them are in
/// `mailfold_proto::engine::Config` (the budget module docs); [`crate::remote_imap::connect_config`]
/// copies them into the driver's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimits {
    /// TCP connect (per address), TLS handshake and greeting.
    pub connect_timeout: Duration,
    /// Silence before a command counts as stalled; also the base of the unfinished-response
    /// clock (the engine's `command_timeout`).
    pub command_timeout: Duration,
    /// Base time of every command before its per-message and per-byte allowances (the
    /// engine's `command_budget`).
    pub command_budget: Duration,
    /// The slowest data rate, in bytes per second, that still counts as a live server (the
    /// engine's `min_rate`).
    pub min_rate: u32,
}

impl Default for TimeLimits {
    /// Exactly what `mailfold_net::ConnectConfig::new` sets, so that an account without the
    /// keys behaves as before they existed.
    fn default() -> Self {
        let cfg = mailfold_net::ConnectConfig::new(String::new());
        TimeLimits {
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.engine.command_timeout,
            command_budget: cfg.engine.command_budget,
            min_rate: cfg.engine.min_rate,
        }
    }
}

impl TimeLimits {
    /// Copies the limits into a driver configuration; every other setting is left alone.
    pub fn apply(&self, cfg: &mut mailfold_net::ConnectConfig) {
        cfg.connect_timeout = self.connect_timeout;
        cfg.engine.command_timeout = self.command_timeout;
        cfg.engine.command_budget = self.command_budget;
        cfg.engine.min_rate = self.min_rate;
    }
}

/// The default [`AccountSpec::fresh_window`]: the most messages of a fresh folder read,
/// planned and applied at once. A larger folder (a decade of mail in one folder, a Gmail
/// "All Mail") goes window by window, so that the run's memory follows the window, not the
/// folder (four bytes a message remain, for its UID). Every connection holds a window at once
/// (its listing, details, plan and rows waiting for their commit), so the window sets most of
/// an initial sync's heap; windows of 2,000 took no more time than larger ones in the
/// million-message bench (`bench/compare --huge`), where each window costs a few round trips.
pub const FRESH_WINDOW: usize = 2_000;

impl AccountSpec {
    /// An account with every setting but the essentials at its default.
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        user: impl Into<String>,
        password: Secret<String>,
        maildir: PathBuf,
        state_db: PathBuf,
    ) -> AccountSpec {
        AccountSpec {
            name: name.into(),
            host: host.into(),
            port: 993,
            tls: TlsMode::Implicit,
            ca_file: None,
            dangerously_accept_invalid_certs: false,
            user: user.into(),
            secret: AccountSecret::Password(password),
            secret_origin: None,
            mechanisms: None,
            allow_plaintext_password: false,
            maildir,
            state_db,
            folders: FolderPatterns::all(),
            direction: Direction::Both,
            allow_plain_expunge: false,
            max_delete_percent: 50,
            fsync: true,
            layout: mailfold_store::Layout::Nested,
            adopt_offlineimap: None,
            tunnel: None,
            connections: 1,
            fresh_window: FRESH_WINDOW,
            download: DownloadMode::Full,
            root_folder: None,
            limits: TimeLimits::default(),
        }
    }
}

/// Where an account's mirrored folders live on the server (seed V0022): the configured
/// `root_folder` when set, else the first personal namespace NAMESPACE reported (`INBOX.` on
/// Courier or Cyrus, usually empty), with other users' and shared namespaces never mirrored.
/// `delimiter` is the server's hierarchy delimiter, used where a namespace does not name its
/// own. This is the one rule the sync and every CLI command map folder names by.
pub fn folder_root(
    root_folder: Option<&str>,
    namespace: Option<&crate::remote::NamespaceInfo>,
    delimiter: Option<char>,
) -> crate::folder_root::FolderRoot {
    use crate::folder_root::FolderRoot;
    let split = |name: &str, d: Option<char>| FolderRoot::from_name(name, d).prefix;
    let mut root = match (root_folder, namespace) {
        (Some(name), _) => FolderRoot::from_name(name, delimiter),
        (None, Some(ns)) => ns
            .personal
            .first()
            .map(|(p, d)| FolderRoot::from_name(p, d.or(delimiter)))
            .unwrap_or_default(),
        (None, None) => FolderRoot::default(),
    };
    if let Some(ns) = namespace {
        root.foreign = ns
            .foreign
            .iter()
            .map(|(p, d)| split(p, d.or(delimiter)))
            .filter(|l| !l.is_empty())
            .collect();
    }
    root
}

/// Per-run switches (command-line level, as opposed to the account's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncOptions {
    /// `--force`: apply plans the safety valve refused.
    pub force: bool,
    /// `--dry-run`: gather and plan, report what would happen, change nothing.
    pub dry_run: bool,
    /// `--upload-unmatched`: upload the local files kept local-only when a Maildir another
    /// tool made was adopted ([`crate::adopt`]), and do not keep new ones.
    pub upload_unmatched: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_list_wildcards() {
        let p = FolderPatterns::new(["*", "!Trash", "!Lists/%"]);
        assert!(p.matches("INBOX"));
        assert!(p.matches("Archive/2024"));
        assert!(!p.matches("Trash"));
        assert!(!p.matches("Lists/rust"));
        assert!(p.matches("Lists/rust/old"), "% stops at a level");
        let q = FolderPatterns::new(["INBOX", "Work/*"]);
        assert!(q.matches("INBOX"));
        assert!(q.matches("Work/a/b"));
        assert!(!q.matches("Work"));
        assert!(!q.matches("Other"));
        assert!(FolderPatterns::all().matches("anything/at/all"));
    }

    #[test]
    fn v0022_root_comes_from_config_else_the_first_personal_namespace() {
        let ns = crate::remote::NamespaceInfo {
            personal: vec![("INBOX.".into(), Some('.'))],
            foreign: vec![("#shared.".into(), Some('.')), ("".into(), None)],
        };
        let from_ns = folder_root(None, Some(&ns), Some('/'));
        assert_eq!(from_ns.prefix, ["INBOX"]);
        assert_eq!(from_ns.foreign, [vec!["#shared".to_string()]]);
        let configured = folder_root(Some("Mail/Archive"), Some(&ns), Some('.'));
        assert_eq!(configured.prefix, ["Mail", "Archive"]);
        assert_eq!(
            configured.foreign.len(),
            1,
            "foreign namespaces stay excluded"
        );
        assert_eq!(folder_root(None, None, Some('.')), Default::default());
    }

    #[test]
    fn time_limits_default_to_the_drivers_and_apply_only_themselves() {
        let stock = mailfold_net::ConnectConfig::new("h");
        let d = TimeLimits::default();
        assert_eq!(d.connect_timeout, stock.connect_timeout);
        assert_eq!(d.command_timeout, stock.engine.command_timeout);
        assert_eq!(d.command_budget, stock.engine.command_budget);
        assert_eq!(d.min_rate, stock.engine.min_rate);
        let limits = TimeLimits {
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(3),
            command_budget: Duration::from_secs(6),
            min_rate: 2048,
        };
        let mut cfg = mailfold_net::ConnectConfig::new("h");
        limits.apply(&mut cfg);
        assert_eq!(cfg.connect_timeout, Duration::from_secs(2));
        assert_eq!(cfg.engine.command_timeout, Duration::from_secs(3));
        assert_eq!(cfg.engine.command_budget, Duration::from_secs(6));
        assert_eq!(cfg.engine.min_rate, 2048);
        // The limits the keys do not cover keep their defaults.
        assert_eq!(cfg.engine.per_message, stock.engine.per_message);
        assert_eq!(cfg.engine.keepalive, stock.engine.keepalive);
        assert_eq!(cfg.engine.logout_timeout, stock.engine.logout_timeout);
    }

    #[test]
    fn a_pending_secret_is_fetched_once_for_every_clone() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&fetches);
        let p = PendingSecret::password(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Secret::new("pw".to_string()))
        });
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || p.wait().map(|s| s.expose().clone()))
            })
            .collect();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok("pw".to_string()));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let token = AccountSecret::Pending(PendingSecret::oauth_token(|| {
            Ok(Secret::new("t".to_string()))
        }));
        assert!(matches!(token.wait(), Ok(AccountSecret::OAuthToken(_))));
        assert_eq!(token.failure(), None);
        let failed = AccountSecret::Pending(PendingSecret::password(|| {
            Err(SecretError(
                "password_command (x) failed (exit status 1)".into(),
            ))
        }));
        assert_eq!(
            failed.failure().map(|e| e.to_string()).as_deref(),
            Some("password_command (x) failed (exit status 1)")
        );
        assert!(!format!("{failed:?}").contains("pw"));
    }

    #[test]
    fn wildcard_is_not_exponential() {
        let pat = "*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(5000);
        assert!(!wildcard(pat.as_bytes(), text.as_bytes()));
    }
}
