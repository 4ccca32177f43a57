//! The man page, mailfold(1), and the one definition of the configuration keys it shares with
//! the README.
//!
//! The page is built from the argument definitions (`cli.rs`, through clap) for the synopsis,
//! the global options and every command with its own options, and from [`CONFIG_KEYS`] and
//! [`crate::exit::TABLE`] for the CONFIGURATION and EXIT STATUS sections. The README's
//! configuration and exit-status tables are the same definitions rendered as Markdown
//! ([`config_table_markdown`], [`exit_table_markdown`]); a test checks that the README holds
//! exactly those, so the two cannot drift apart. The page names no other man page: every
//! command is described here, not in a page of its own.

use std::fmt::Write as _;

use clap::CommandFactory;

/// One configuration key: its name, what it means, its default. Text in backticks is code
/// (bold in the man page). Kept in the order the README shows them.
pub const CONFIG_KEYS: &[(&str, &str, &str)] = &[
    (
        "host",
        "server name or address",
        "required",
    ),
    (
        "port",
        "server port",
        "993 with `tls = \"implicit\"`, 143 otherwise",
    ),
    (
        "tls",
        "`\"implicit\"`, `\"starttls\"` or `\"none\"`",
        "`\"implicit\"`",
    ),
    (
        "user",
        "login name (with `anonymous = true`: the RFC 4505 trace string, e.g. an email address, or empty)",
        "required",
    ),
    (
        "password_command",
        "program printing the password on its first line (argv list, or a string run by `sh -c`); the line is used as soon as it arrives, and whatever the program started is ended shortly after (it runs in its own process group); `sync` starts it as the run begins and waits for the line only when it logs in, so the program's start-up overlaps the connection",
        "—",
    ),
    (
        "oauth_token_command",
        "program printing an OAuth 2 access token (XOAUTH2 / OAUTHBEARER)",
        "—",
    ),
    (
        "password_file",
        "file whose first line is the password (a mounted secret); one secret source per account",
        "—",
    ),
    (
        "password_env",
        "environment variable holding the password",
        "—",
    ),
    (
        "anonymous",
        "authenticate with SASL ANONYMOUS and no secret (no `password_command` or `oauth_token_command` then); such an account syncs pull-only unless `sync` says otherwise",
        "false",
    ),
    (
        "ca_file",
        "extra CA certificates (PEM) to trust for this account",
        "system roots only",
    ),
    (
        "allow_plaintext_password",
        "allow a password over a connection without TLS",
        "false",
    ),
    (
        "mechanisms",
        "SASL mechanisms in order of preference",
        "strongest first",
    ),
    (
        "local",
        "root of the Maildir tree",
        "required",
    ),
    (
        "layout",
        "how folders sit under `local`: `\"nested\"` (`Work/Projects/`, INBOX at `INBOX/`; mbsync's `SubFolders Verbatim`), `\"maildir++\"` (Dovecot/Courier: `local` is INBOX, folders are `.Work.Projects/`, INBOX's children `..Sub/`; mbsync's `SubFolders Maildir++`) or `\"flat\"` (OfflineIMAP's default and mbsync's `Flatten`: `Work.Projects/`, INBOX at `INBOX/`). The one-level layouts (`maildir++`, `flat`) name non-ASCII folders in modified UTF-7 (`&AMk-t&AOk-`), as those tools do; in them a folder renamed on the server renames that one directory; its sub-folders follow one by one",
        "`\"nested\"`",
    ),
    (
        "tunnel",
        "a command (argv list, no shell) that speaks IMAP on its stdin and stdout, already logged in (PREAUTH), e.g. `[\"ssh\", \"-q\", \"mailhost\", \"/usr/lib/dovecot/imap\"]` (mbsync's `Tunnel`, OfflineIMAP's `preauthtunnel`). `host`, `port` and the TLS keys do not apply, no secret is needed or sent (a tunnel whose server does not greet with PREAUTH is refused), the command's stderr goes to the log, and it runs in its own process group, ended with the session",
        "—",
    ),
    (
        "adopt_offlineimap",
        "OfflineIMAP's metadata directory of the server repository (`~/.offlineimap/Repository-NAME`), read by the first sync to bind the UIDs in OfflineIMAP's file names",
        "—",
    ),
    (
        "layout_separator",
        "the separator of the `flat` layout (one ASCII punctuation character, not `/` or `%`; written as `%XX` inside a name)",
        "`\".\"`",
    ),
    (
        "folders",
        "folder patterns (`*`, `%`; `!` excludes)",
        "all folders",
    ),
    (
        "state",
        "state database file",
        "`$XDG_STATE_HOME/mailfold/<account>.sqlite`",
    ),
    (
        "sync",
        "`\"both\"` or `\"pull\"` (server to local only, folders opened with EXAMINE)",
        "`\"both\"`; `\"pull\"` for an anonymous account",
    ),
    (
        "download",
        "`\"full\"` or `\"headers-only\"`",
        "`\"full\"`",
    ),
    (
        "max_message_size",
        "leave larger messages on the server",
        "none",
    ),
    (
        "connections",
        "parallel connections for a sync (1–16)",
        "4",
    ),
    (
        "max_delete_share",
        "share of a folder a run may delete before it asks for `--force`",
        "0.5",
    ),
    (
        "allow_plain_expunge",
        "allow EXPUNGE when the server lacks UIDPLUS",
        "false",
    ),
    (
        "root_folder",
        "the server folder whose subtree is mirrored (its children become the local top level; INBOX stays INBOX). Every command names folders the same way: `Sent` is the server's `INBOX.Sent` under the root `INBOX.`",
        "the personal namespace NAMESPACE reports",
    ),
    (
        "fsync",
        "fsync each message (turn off only for benchmarks)",
        "true",
    ),
    (
        "connect_timeout",
        "seconds for the TCP connect (per address), the TLS handshake and the greeting (1–600)",
        "30 for `sync` and `watch`, 15 for the other commands, 10 for `probe`",
    ),
    (
        "command_timeout",
        "seconds without a byte from the server before a command counts as stalled; a response that has not finished after this long plus its bytes at `min_rate` is a stall too, however slowly bytes keep coming (1–3600)",
        "60",
    ),
    (
        "command_budget",
        "base seconds every command may take; a command also gets 250 ms per message it names and earns time as its data arrives at `min_rate` or faster, while `* OK still here` lines earn nothing (1–86400)",
        "120",
    ),
    (
        "min_rate",
        "the slowest rate, in bytes per second, that still counts as a live server; uploads are allowed their size at this rate (1024–1073741824)",
        "16384",
    ),
    (
        "dangerously_accept_invalid_certs",
        "accept any certificate, for `sync`, `watch` and every command (a warning on stderr on every connection, at any `-v` level)",
        "false",
    ),
    (
        "watch_poll_interval",
        "`watch` on a server without NOTIFY: seconds between polls of the folders IDLE does not watch (1–600)",
        "60",
    ),
    (
        "post_sync_command",
        "program run after every `sync` and `watch` round that changed something, with the counts in its environment (argv list, or a string run by `sh -c`); its failure is a warning",
        "—",
    ),
];

/// Example command lines with what each does: a first session, in order. The man page's
/// EXAMPLES section and the README's examples block ([`examples_markdown`]) are made from
/// them, and a test runs the README's block line by line against a private Dovecot, so an
/// example that stops working fails the tests. `watch` is left out because it runs until a
/// signal stops it (its own tests run it).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "mailfold probe",
        "diagnose the connection: TLS, certificate, capabilities, login",
    ),
    (
        "mailfold sync --dry-run -v",
        "what the first sync would do, operation by operation, changing nothing",
    ),
    ("mailfold sync", "sync every account"),
    (
        "mailfold folders",
        "the folder tree with message and unseen counts",
    ),
    (
        "mailfold list INBOX --unseen --limit 20",
        "the 20 most recent unseen messages",
    ),
    ("mailfold show INBOX 1", "read message 1"),
    (
        "mailfold flag INBOX 1 2 --set seen,flagged",
        "mark two messages read and flagged",
    ),
    (
        "mailfold search INBOX from alice since 2024-01-01 --json",
        "a search on the server, as JSON",
    ),
    (
        "mailfold move INBOX 2 --to Archive/2024",
        "move a message to another folder",
    ),
    ("mailfold delete INBOX 3", "delete a message on both sides"),
    (
        "mailfold append draft.eml --draft",
        "add a message file to the \\Drafts folder",
    ),
    ("mailfold create-folder Projects", "create a folder"),
    (
        "mailfold rename-folder Projects Projects-2025",
        "rename it (with its sub-folders)",
    ),
    ("mailfold delete-folder Projects-2025", "delete it"),
    (
        "mailfold list INBOX | head -3",
        "a closed pipe is a normal end (status 0)",
    ),
    (
        "mailfold completions zsh > _mailfold",
        "zsh completions (put the file in a directory of `$fpath`)",
    ),
    ("mailfold man | head -5", "this page"),
];

/// The README's examples block: [`EXAMPLES`] as a shell block, one command a line with its
/// comment.
pub fn examples_markdown() -> String {
    let width = EXAMPLES.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut s = String::from("```sh\n");
    for (cmd, what) in EXAMPLES {
        let _ = writeln!(s, "{cmd:<width$}  # {what}");
    }
    s.push_str("```\n");
    s
}

/// The README's configuration table: [`CONFIG_KEYS`] as Markdown.
pub fn config_table_markdown() -> String {
    let mut s = String::from("| key | meaning | default |\n|---|---|---|\n");
    for (key, meaning, default) in CONFIG_KEYS {
        let _ = writeln!(s, "| `{key}` | {meaning} | {default} |");
    }
    s
}

/// The README's exit-status table: [`crate::exit::TABLE`] as Markdown.
pub fn exit_table_markdown() -> String {
    let mut s = String::from("| status | meaning |\n|---|---|\n");
    for (status, meaning) in crate::exit::TABLE {
        let _ = writeln!(s, "| {status} | {meaning} |");
    }
    s
}

/// Text made safe for roff: backslashes and hyphens escaped, and a line that would start
/// with a control character (`.` or `'`) protected.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`esc`], with Markdown-style `code` spans set in bold.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("\\fB");
            out.push_str(&esc(part));
            out.push_str("\\fR");
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, ".SH {title}");
}

fn para(out: &mut String, text: &str) {
    let _ = writeln!(out, ".PP\n{}", inline(text));
}

fn item(out: &mut String, tag: &str, text: &str) {
    let _ = writeln!(out, ".TP\n{}\n{}", tag, inline(text));
}

/// One argument's tag (`\-\-limit N`, `FOLDER`) in bold and italics.
fn arg_tag(a: &clap::Arg) -> String {
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_ascii_uppercase());
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    if a.is_positional() {
        return format!("\\fI{}\\fR", esc(&value));
    }
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("\\fB\\-{s}\\fR"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", esc(l)));
    }
    for alias in a.get_visible_aliases().unwrap_or_default() {
        names.push(format!("\\fB\\-\\-{}\\fR", esc(alias)));
    }
    let mut tag = names.join(", ");
    if takes_value {
        let _ = write!(tag, " \\fI{}\\fR", esc(&value));
    }
    tag
}

/// The help text of an argument, with its default and choices.
fn arg_help(a: &clap::Arg) -> String {
    let mut text = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    // A switch's `false` or a counter's `0` says nothing.
    if !defaults.is_empty() && !a.is_hide_default_value_set() && a.get_action().takes_values() {
        let _ = write!(text, " [default: {}]", defaults.join(", "));
    }
    let choices: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect();
    if !choices.is_empty() && a.get_long() != Some("help") {
        let _ = write!(text, " [one of: {}]", choices.join(", "));
    }
    text
}

/// Arguments of a command that the page describes (not `--help`, not the global options
/// repeated under every command).
fn own_args(cmd: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
}

/// The COMMANDS section: every command (and sub-command) with its usage, description and
/// options.
fn commands(out: &mut String, root: &mut clap::Command) {
    section(out, "COMMANDS");
    let mut list: Vec<(String, clap::Command)> = Vec::new();
    for sub in root.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        if sub.has_subcommands() {
            for inner in sub.get_subcommands() {
                if inner.get_name() != "help" {
                    list.push((
                        format!("{} {}", sub.get_name(), inner.get_name()),
                        inner.clone(),
                    ));
                }
            }
        } else {
            list.push((sub.get_name().to_string(), sub.clone()));
        }
    }
    for (name, mut cmd) in list {
        let usage = cmd.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").trim();
        let rest = usage
            .strip_prefix(&format!("mailfold {name}"))
            .unwrap_or(usage)
            .trim();
        let _ = writeln!(out, ".TP\n\\fBmailfold {}\\fR {}", esc(&name), esc(rest));
        let about = cmd
            .get_long_about()
            .or(cmd.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        let mut paras = about.split("\n\n");
        if let Some(first) = paras.next() {
            let _ = writeln!(out, "{}", inline(first.trim()));
        }
        for p in paras {
            let _ = writeln!(out, ".IP\n{}", inline(p.trim()));
        }
        let args: Vec<&clap::Arg> = own_args(&cmd).collect();
        if !args.is_empty() {
            let _ = writeln!(out, ".RS");
            for a in args {
                item(out, &arg_tag(a), &arg_help(a));
            }
            let _ = writeln!(out, ".RE");
        }
    }
}

/// The whole page as roff, one section after another.
pub fn render() -> anyhow::Result<Vec<u8>> {
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or("").to_string();
    let mut out = String::new();
    title_and_description(&mut out, &version);
    global_options(&mut out, &cmd);
    commands(&mut out, &mut cmd);
    configuration(&mut out);
    files_and_environment(&mut out);
    exit_status(&mut out);
    examples(&mut out);
    Ok(out.into_bytes())
}

/// The title line, NAME, SYNOPSIS and DESCRIPTION.
fn title_and_description(out: &mut String, version: &str) {
    let _ = writeln!(
        out,
        ".TH MAILFOLD 1 \"\" \"mailfold {}\" \"User Commands\"",
        esc(version)
    );
    section(out, "NAME");
    let _ = writeln!(
        out,
        "mailfold \\- a two\\-way mirror of IMAP folders in a local Maildir, and a mail command line"
    );
    section(out, "SYNOPSIS");
    let _ = writeln!(
        out,
        "\\fBmailfold\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]"
    );
    section(out, "DESCRIPTION");
    para(
        out,
        "mailfold keeps a two-way mirror of the folders of an IMAP server in a local Maildir tree, \
         readable as it is by mutt, neomutt, aerc and notmuch, with a crash-safe state database \
         beside it (`mailfold sync`, `mailfold watch`), and gives a command line over the mirror \
         and the live server (`list`, `show`, `flag`, `move`, `delete`, `append`, `search`, the \
         folder commands).",
    );
    para(
        out,
        "Folder names are written with `/` between levels (`Archive/2024`) whatever the server's \
         hierarchy delimiter is. Message IDs are the server UIDs `list` shows; a message not \
         uploaded yet is named by its Maildir base name. Changes are made in the mirror first, \
         then pushed to the server at once; when the server is not reachable they are queued \
         for the next `mailfold sync`. Options may come anywhere on the command line; `--` ends \
         them.",
    );
}

/// GLOBAL OPTIONS: the global arguments, then `--help` and `--version`.
fn global_options(out: &mut String, cmd: &clap::Command) {
    section(out, "GLOBAL OPTIONS");
    for a in cmd.get_arguments().filter(|a| a.is_global_set()) {
        item(out, &arg_tag(a), &arg_help(a));
    }
    item(
        out,
        "\\fB\\-h\\fR, \\fB\\-\\-help\\fR",
        "Print help (of a command after its name).",
    );
    item(
        out,
        "\\fB\\-V\\fR, \\fB\\-\\-version\\fR",
        "Print the version.",
    );
}

/// CONFIGURATION: the file, every account key with its default, and an example.
fn configuration(out: &mut String) {
    section(out, "CONFIGURATION");
    para(
        out,
        "The configuration is a TOML file: `$XDG_CONFIG_HOME/mailfold/config.toml` (usually \
         `~/.config/mailfold/config.toml`), or the file given with `--config` or \
         `MAILFOLD_CONFIG`. Each account is a table `[accounts.NAME]` with the keys below. \
         Unknown keys are errors; every error names the file, the line and the key. Secrets are \
         never written in the file: they come from `password_command` or \
         `oauth_token_command`.",
    );
    for (key, meaning, default) in CONFIG_KEYS {
        let text = match *default {
            "required" => format!("{meaning}. Required."),
            "—" => format!("{meaning}."),
            d => format!("{meaning}. Default: {d}."),
        };
        item(out, &format!("\\fB{}\\fR", esc(key)), &text);
    }
    let _ = writeln!(out, ".PP\nAn example:\n.PP\n.nf\n.RS");
    for l in [
        "[accounts.personal]",
        "host = \"imap.example.org\"",
        "user = \"me@example.org\"",
        "password_command = [\"pass\", \"show\", \"mail/personal\"]",
        "local = \"~/Mail/personal\"",
    ] {
        let _ = writeln!(out, "{}", esc(l));
    }
    let _ = writeln!(out, ".RE\n.fi");
}

/// FILES and ENVIRONMENT.
fn files_and_environment(out: &mut String) {
    section(out, "FILES");
    item(
        out,
        "\\fI$XDG_CONFIG_HOME/mailfold/config.toml\\fR",
        "The configuration (`~/.config/mailfold/config.toml` when `XDG_CONFIG_HOME` is unset).",
    );
    item(
        out,
        "\\fI$XDG_STATE_HOME/mailfold/ACCOUNT.sqlite\\fR",
        "An account's state database, unless `state` names another file \
         (`~/.local/state/mailfold/` when `XDG_STATE_HOME` is unset). Never delete it to \"fix\" \
         a sync: a missing state database makes the next run match every message again by \
         content, and never turns into deletions.",
    );
    item(
        out,
        "\\fISTATE.lock\\fR",
        "Beside the state database: the account's lock, held by `sync` (and by `watch` while one \
         of its syncs runs) and by every command that changes the mirror. The operating system \
         releases it when the process ends; the file stays on purpose.",
    );
    item(
        out,
        "\\fILOCAL/FOLDER/{cur,new,tmp}\\fR",
        "The mirror: one Maildir per folder under the account's `local` directory, sub-folders \
         as sub-directories.",
    );

    section(out, "ENVIRONMENT");
    item(
        out,
        "\\fBMAILFOLD_CONFIG\\fR",
        "The configuration file, when `--config` is not given.",
    );
    item(
        out,
        "\\fBXDG_CONFIG_HOME\\fR, \\fBXDG_STATE_HOME\\fR, \\fBHOME\\fR",
        "Where the configuration and the state databases are found by default.",
    );
}

/// EXIT STATUS: the statuses and how several accounts combine.
fn exit_status(out: &mut String) {
    section(out, "EXIT STATUS");
    for (status, meaning) in crate::exit::TABLE {
        item(out, &status.to_string(), meaning);
    }
    para(
        out,
        "When `sync` runs over several accounts, the status is the most serious of theirs. With \
         `--json`, an error that ends a command is printed on stdout as \
         `{\"error\": {\"message\": …, \"kind\": …, \"status\": …}}`.",
    );
}

/// EXAMPLES: a first session, in order.
fn examples(out: &mut String) {
    section(out, "EXAMPLES");
    para(
        out,
        "A first session, in order (message 1 is the oldest message of INBOX):",
    );
    for (cmdline, what) in EXAMPLES {
        let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", esc(cmdline), inline(what));
    }
}
