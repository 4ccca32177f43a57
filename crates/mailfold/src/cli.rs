//! Argument definitions. Kept apart from `main.rs` so the man page and shell completions are
//! generated from the same definitions (`mailfold man`, `mailfold completions SHELL`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mailfold: a two-way mirror of IMAP folders into local Maildir, and a mail command line.
#[derive(Debug, Parser)]
#[command(name = "mailfold", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/mailfold/config.toml]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "MAILFOLD_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Machine-readable output: one JSON document on stdout (schemas in docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars, even on a terminal.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Account to use when the configuration has more than one.
    #[arg(short, long, global = true, value_name = "NAME")]
    pub account: Option<String>,
    /// Do not contact the server: changes are made to the local mirror and queued for the
    /// next sync; searches run over the mirror.
    #[arg(long, global = true)]
    pub offline: bool,
    /// When another mailfold process is syncing or changing the account, wait for it to end
    /// instead of failing with exit status 4.
    #[arg(long, global = true)]
    pub wait: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Two-way sync of the given accounts (all when none is named).
    ///
    /// Exit status 0 only when every folder of every account synced.
    Sync {
        /// Accounts to sync.
        #[arg(value_name = "ACCOUNT")]
        accounts: Vec<String>,
        /// Apply plans the safety valve refused (a run deleting more than the configured
        /// share of a folder).
        #[arg(long)]
        force: bool,
        /// Plan and report, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Upload the local files that the first sync into an mbsync or OfflineIMAP Maildir
        /// kept local-only because they matched no server message.
        #[arg(long)]
        upload_unmatched: bool,
    },
    /// Keep accounts in sync continuously, until SIGINT or SIGTERM.
    ///
    /// Waits with IDLE on the watched folders (NOOP polling where the server lacks IDLE), and
    /// syncs when the server reports a change, when a file in the Maildir changes (as a mail
    /// reader changes it), and at every full-check interval. Reconnects with backoff after a
    /// network loss. Takes the account's lock only while one of its syncs runs, so `flag`,
    /// `move` or `append` work beside it (during one of its syncs they report the account
    /// busy, or wait for it with --wait).
    Watch {
        /// Accounts to watch.
        #[arg(value_name = "ACCOUNT")]
        accounts: Vec<String>,
        /// A folder to IDLE on (repeatable; default INBOX). Other folders are checked at every
        /// sync.
        #[arg(long = "idle", value_name = "FOLDER")]
        idle: Vec<String>,
        /// Minutes between full checks of every folder.
        #[arg(long, value_name = "MINUTES", default_value_t = 15)]
        full_check_every: u64,
        /// Seconds between NOOP polls on a server without IDLE.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        poll_every: u64,
    },
    /// The folder tree with message and unseen counts and special-use marks.
    Folders {
        /// The account (default: the only one, or --account).
        #[arg(value_name = "ACCOUNT")]
        account_name: Option<String>,
        /// Always ask the server for counts.
        #[arg(long, conflicts_with = "local")]
        server: bool,
        /// Never ask the server: counts from the local mirror.
        #[arg(long)]
        local: bool,
    },
    /// Messages of a folder from the local mirror.
    List {
        /// The folder, levels separated by `/` (e.g. `INBOX`, `Archive/2024`).
        folder: String,
        /// Only messages without \Seen.
        #[arg(long)]
        unseen: bool,
        /// At most this many messages (after sorting).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Sort key.
        #[arg(long, value_enum, default_value_t = SortKey::Date)]
        sort: SortKey,
        /// Reverse the order (newest first for dates).
        #[arg(long, short)]
        reverse: bool,
    },
    /// One message: decoded headers and its readable text part.
    Show {
        /// The folder.
        folder: String,
        /// The message: its UID (as `list` shows it) or its Maildir base name.
        id: String,
        /// Print the message bytes as stored.
        #[arg(long)]
        raw: bool,
        /// Prefer the HTML part (printed as is) over the plain-text one.
        #[arg(long)]
        html: bool,
    },
    /// Set or clear flags on messages.
    Flag(FlagArgs),
    /// Move messages to another folder.
    Move {
        /// The source folder.
        folder: String,
        /// Messages (UIDs or base names).
        #[arg(required = true)]
        ids: Vec<String>,
        /// The destination folder.
        #[arg(long, short = 't', value_name = "FOLDER")]
        to: String,
    },
    /// Delete messages (expunged from the server with UID EXPUNGE).
    Delete {
        /// The folder.
        folder: String,
        /// Messages (UIDs or base names).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Add a message file to a folder (uploaded with its flags and date).
    Append {
        /// The message file (RFC 5322; a draft may lack required headers).
        file: PathBuf,
        /// The folder [default: the \Drafts folder with --draft, else INBOX].
        #[arg(long)]
        folder: Option<String>,
        /// Mark it \Draft (and \Seen).
        #[arg(long)]
        draft: bool,
        /// Mark it \Seen.
        #[arg(long)]
        seen: bool,
        /// Add the file even when it does not start with a header block.
        #[arg(long)]
        force: bool,
    },
    /// Create a folder.
    CreateFolder {
        /// The new folder, levels separated by `/`.
        name: String,
    },
    /// Rename a folder (with its sub-folders).
    RenameFolder {
        /// The folder.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Delete a folder.
    DeleteFolder {
        /// The folder.
        name: String,
        /// Delete it even if it holds messages.
        #[arg(long)]
        force: bool,
    },
    /// Search a folder on the server (UID SEARCH), or the mirror when offline.
    ///
    /// QUERY is RFC 3501 search keys, one per argument or quoted: `from alice unseen`,
    /// `or subject report subject invoice`, `since 2024-01-31 not deleted`,
    /// `header X-Mailer mutt`, `larger 100000`, `uid 1:100`. Several keys are ANDed; a
    /// word that is not a key searches the whole text.
    Search {
        /// The folder.
        folder: String,
        /// The search keys.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
    },
    /// Diagnose a server: TLS and its certificate, capabilities, authentication.
    ///
    /// With an account, logs in as sync would and reports the mechanism used; with --host,
    /// stops before login. A refused certificate is explained (not trusted, wrong host,
    /// expired) with the chain the server presented. Exit status 3 when a step fails.
    Probe(ProbeArgs),
    /// Many accounts from a manifest: run them here, or write Slurm or Kubernetes jobs.
    #[command(subcommand)]
    Fleet(crate::fleet::FleetCommand),
    /// Print the mailfold accounts equivalent to an mbsync or OfflineIMAP configuration.
    ///
    /// Reads ~/.mbsyncrc or ~/.offlineimaprc (or any FILE in either format) and prints TOML
    /// for the config file, with a comment for every setting it could not carry over. Then
    /// `mailfold sync` adopts the existing Maildir without downloading it again.
    ImportConfig {
        /// The mbsync or OfflineIMAP configuration file.
        file: std::path::PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Tools for diagnosing servers.
    #[command(subcommand)]
    Debug(DebugCommand),
}

/// Sort keys of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// The Date header (INTERNALDATE when missing).
    Date,
    /// Server UID (messages not uploaded yet last).
    Uid,
    /// Size.
    Size,
    /// Sender.
    From,
    /// Subject.
    Subject,
}

/// `mailfold flag …`
#[derive(Debug, Args)]
pub struct FlagArgs {
    /// The folder.
    pub folder: String,
    /// Messages (UIDs or base names).
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Flags to set: seen, answered, flagged, deleted, draft, forwarded, or a keyword
    /// written `$Name` (`$Junk`) or `keyword:Name` (`keyword:NonJunk`); keywords need the
    /// server. Any other name is an error.
    #[arg(long = "set", short = 's', value_name = "FLAG", value_delimiter = ',')]
    pub set: Vec<String>,
    /// Flags to clear (same names as --set).
    #[arg(
        long = "clear",
        visible_alias = "unset",
        short = 'c',
        value_name = "FLAG",
        value_delimiter = ','
    )]
    pub clear: Vec<String>,
}

/// TLS mode on the command line of `probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsArg {
    /// TLS from the first byte (993).
    Implicit,
    /// STARTTLS (143).
    Starttls,
    /// No TLS.
    None,
}

/// `mailfold probe …`
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The account to probe (its host, port, TLS mode and credentials).
    #[arg(value_name = "ACCOUNT")]
    pub account_name: Option<String>,
    /// Probe this host instead of an account's (no login: shows TLS and capabilities).
    #[arg(long, conflicts_with = "account_name")]
    pub host: Option<String>,
    /// Port [default: by --tls, or the account's].
    #[arg(long)]
    pub port: Option<u16>,
    /// TLS mode for --host.
    #[arg(long, value_enum, default_value_t = TlsArg::Implicit, requires = "host")]
    pub tls: TlsArg,
    /// Extra CA certificates (PEM) trusted for --host.
    #[arg(long, value_name = "FILE", requires = "host")]
    pub ca_file: Option<PathBuf>,
}

/// `mailfold debug …`
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Parse a raw server byte stream from stdin; print one JSON object per response.
    ///
    /// Exit status 0 only when every response parsed.
    Parse {
        /// The stream does not start with a greeting (captured mid-session).
        #[arg(long)]
        no_greeting: bool,
    },
}
