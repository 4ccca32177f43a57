//! The fleet manifest: many accounts that share defaults, for `mailfold fleet`.
//!
//! ```toml
//! [fleet]
//! max_connections_per_server = 16   # all shards together, per host:port
//! retries = 3                        # transient failures only (see `run`)
//! retry_delay = 5                    # seconds before the first retry, doubled each time
//! accounts_csv = "accounts.csv"      # optional, relative to this file
//!
//! [defaults]                         # any account key of the personal config
//! host = "imap.example.org"
//! local = "/srv/mail/{account}"
//! state = "/var/lib/mailfold/{account}.sqlite"
//! password_file = "/run/secrets/mailfold/{account}"
//!
//! [accounts.alice]
//! user = "alice@example.org"
//! ```
//!
//! Each account is its `[defaults]` table overlaid by its own table (or CSV row), with
//! `{account}` replaced by the account's name in `user`, `local`, `state` and
//! `password_file`; the result is then read and checked by the personal configuration's own
//! code ([`crate::config::Account`], [`Config::validate`]), so both files take the same keys
//! with the same rules and the same error messages. Secrets stay references: a file, an
//! environment variable or a command, never a value in the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{line_of, Account, Config, ConfigError};

/// The keys that name an account's secret: one in an account's own table or row replaces
/// whichever the defaults give (an account with its own password file in a fleet of
/// environment variables, say) instead of being refused as a second secret.
const SECRET_KEYS: [&str; 5] = [
    "password_command",
    "oauth_token_command",
    "password_file",
    "password_env",
    "anonymous",
];

/// The keys in which `{account}` is replaced.
const TEMPLATE_KEYS: [&str; 4] = ["user", "local", "state", "password_file"];

/// The CSV columns (the common ones; the rest comes from `[defaults]`). `account` is required.
pub const CSV_COLUMNS: [&str; 9] = [
    "account",
    "user",
    "host",
    "port",
    "tls",
    "password_file",
    "password_env",
    "local",
    "state",
];

/// The most accounts a manifest may list: far above any real fleet, it bounds what a
/// malformed or hostile file can make us allocate.
pub const MAX_ACCOUNTS: usize = 1_000_000;

/// The `[fleet]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Concurrent connections to one server (host and port), all shards together; unset:
    /// no cap beyond each account's `connections`.
    pub max_connections_per_server: Option<u32>,
    /// How many times a transient failure is retried (default 3, at most 10).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds before the first retry, doubled for each further one (default 5).
    #[serde(default = "default_retry_delay")]
    pub retry_delay: u64,
    /// A CSV file of accounts (columns [`CSV_COLUMNS`]), relative to the manifest.
    pub accounts_csv: Option<PathBuf>,
}

fn default_retries() -> u32 {
    3
}

fn default_retry_delay() -> u64 {
    5
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections_per_server: None,
            retries: default_retries(),
            retry_delay: default_retry_delay(),
            accounts_csv: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    fleet: Settings,
    #[serde(default)]
    defaults: toml::Table,
    #[serde(default)]
    accounts: BTreeMap<String, toml::Table>,
}

/// A loaded, checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its `[fleet]` settings.
    pub settings: Settings,
    /// Every account, by name.
    pub accounts: BTreeMap<String, Account>,
}

impl Manifest {
    /// Reads and checks a manifest (and its CSV file, if it names one).
    pub fn load(path: &Path) -> Result<Manifest, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| error(path, None, None, e))?;
        Manifest::parse(&text, path)
    }

    /// Parses manifest text; `path` locates errors and the CSV file.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            error(path, line, None, e.message())
        })?;
        check_settings(&raw.fleet, path)?;
        let mut accounts = BTreeMap::new();
        let toml_accounts = build(&raw.defaults, raw.accounts, path, |n| {
            find_table_line(text, n)
        })?;
        let mut cfg = Config {
            accounts: toml_accounts,
        };
        cfg.validate(text, path)?;
        accounts.append(&mut cfg.accounts);
        if let Some(csv) = &raw.fleet.accounts_csv {
            let mut csv_accounts = csv_accounts(&raw.defaults, csv, path, &accounts)?;
            accounts.append(&mut csv_accounts);
        }
        if accounts.len() > MAX_ACCOUNTS {
            return Err(error(
                path,
                None,
                None,
                format!("more than {MAX_ACCOUNTS} accounts"),
            ));
        }
        check_distinct_paths(&accounts, path)?;
        Ok(Manifest {
            path: path.to_path_buf(),
            settings: raw.fleet,
            accounts,
        })
    }
}

/// The `[fleet]` settings' ranges.
fn check_settings(s: &Settings, path: &Path) -> Result<(), ConfigError> {
    if s.max_connections_per_server == Some(0) {
        return Err(error(
            path,
            None,
            Some("fleet.max_connections_per_server"),
            "must be at least 1",
        ));
    }
    if s.retries > 10 {
        return Err(error(
            path,
            None,
            Some("fleet.retries"),
            "must be at most 10",
        ));
    }
    if !(1..=3600).contains(&s.retry_delay) {
        return Err(error(
            path,
            None,
            Some("fleet.retry_delay"),
            "must be between 1 and 3600 seconds",
        ));
    }
    Ok(())
}

/// The accounts of the CSV file `csv` (relative to the manifest at `path`), built on the
/// defaults and checked; a name already in `accounts` or listed twice is refused, and an
/// error points at the account's row.
fn csv_accounts(
    defaults: &toml::Table,
    csv: &Path,
    path: &Path,
    accounts: &BTreeMap<String, Account>,
) -> Result<BTreeMap<String, Account>, ConfigError> {
    let csv_path = path.parent().unwrap_or(Path::new(".")).join(csv);
    let csv_text =
        std::fs::read_to_string(&csv_path).map_err(|e| error(&csv_path, None, None, e))?;
    let rows = parse_csv(&csv_text, &csv_path)?;
    let lines: BTreeMap<String, usize> = rows.iter().map(|(l, n, _)| (n.clone(), *l)).collect();
    let mut tables = BTreeMap::new();
    for (line, name, table) in rows {
        if accounts.contains_key(&name) || tables.contains_key(&name) {
            return Err(error(
                &csv_path,
                Some(line),
                None,
                format!("account {name:?} is listed twice"),
            ));
        }
        tables.insert(name, table);
    }
    let built = build(defaults, tables, &csv_path, |n| lines.get(n).copied())?;
    let mut cfg = Config { accounts: built };
    cfg.validate("", &csv_path).map_err(|mut e| {
        // The key names the account: point at its row.
        e.line = e
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix("accounts."))
            .and_then(|k| lines.get(k.rsplit_once('.').map_or(k, |(a, _)| a)))
            .copied();
        e
    })?;
    Ok(cfg.accounts)
}

/// One writer per account also means one account per mirror and per database: two
/// accounts whose templates expand to the same path would overwrite each other.
fn check_distinct_paths(
    accounts: &BTreeMap<String, Account>,
    path: &Path,
) -> Result<(), ConfigError> {
    for key in ["local", "state"] {
        let mut seen = BTreeMap::new();
        for (name, a) in accounts {
            let p = if key == "local" {
                Some(&a.local)
            } else {
                a.state.as_ref()
            };
            if let Some(p) = p {
                if let Some(other) = seen.insert(p.clone(), name.clone()) {
                    return Err(error(
                        path,
                        None,
                        Some(&format!("accounts.{name}.{key}")),
                        format!(
                            "{} is also account {other:?}'s; use {{account}} in the template",
                            p.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Overlays each account's table on the defaults, expands the templates and reads the
/// result as a personal-config account (unknown keys and wrong types are refused here).
fn build(
    defaults: &toml::Table,
    tables: BTreeMap<String, toml::Table>,
    path: &Path,
    line: impl Fn(&str) -> Option<usize>,
) -> Result<BTreeMap<String, Account>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, table) in tables {
        let mut merged = defaults.clone();
        if SECRET_KEYS.iter().any(|k| table.contains_key(*k)) {
            merged.retain(|k, _| !SECRET_KEYS.contains(&k));
        }
        merged.extend(table);
        for key in TEMPLATE_KEYS {
            if let Some(toml::Value::String(s)) = merged.get_mut(key) {
                *s = expand(s, &name).map_err(|m| {
                    error(
                        path,
                        line(&name),
                        Some(&format!("accounts.{name}.{key}")),
                        m,
                    )
                })?;
            }
        }
        let acct: Account = merged.try_into().map_err(|e: toml::de::Error| {
            error(
                path,
                line(&name),
                Some(&format!("accounts.{name}")),
                e.message(),
            )
        })?;
        out.insert(name, acct);
    }
    Ok(out)
}

/// Replaces `{account}` in a template; any other `{…}` is a mistake (a typo such as
/// `{acount}` would otherwise give every account the same path).
pub fn expand(template: &str, account: &str) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + account.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("{account}") {
            out.push_str(account);
            rest = r;
        } else {
            let end = rest.find('}').map_or(rest.len(), |e| e + 1);
            return Err(format!(
                "unknown placeholder {:?} (only {{account}} is replaced)",
                &rest[..end]
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the CSV file: a header row naming columns of [`CSV_COLUMNS`] (any order, `account`
/// required), then one account per row; an empty cell leaves the key to `[defaults]`. Fields
/// may be quoted (RFC 4180, `""` for a quote inside). Returns (line, name, table) per row.
fn parse_csv(text: &str, path: &Path) -> Result<Vec<(usize, String, toml::Table)>, ConfigError> {
    let mut rows = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let cells = split_csv_line(raw_line).map_err(|m| error(path, Some(line_no), None, m))?;
        let Some(cols) = &header else {
            let cols: Vec<String> = cells.iter().map(|c| c.trim().to_string()).collect();
            let mut seen = BTreeSet::new();
            for c in &cols {
                if !CSV_COLUMNS.contains(&c.as_str()) {
                    return Err(error(
                        path,
                        Some(line_no),
                        Some(c),
                        format!("unknown column (known: {})", CSV_COLUMNS.join(", ")),
                    ));
                }
                if !seen.insert(c.clone()) {
                    return Err(error(path, Some(line_no), Some(c), "column given twice"));
                }
            }
            if !seen.contains("account") {
                return Err(error(
                    path,
                    Some(line_no),
                    None,
                    "the header row needs an `account` column",
                ));
            }
            header = Some(cols);
            continue;
        };
        if cells.len() != cols.len() {
            return Err(error(
                path,
                Some(line_no),
                None,
                format!("{} cells for {} columns", cells.len(), cols.len()),
            ));
        }
        let mut name = String::new();
        let mut table = toml::Table::new();
        for (col, cell) in cols.iter().zip(cells) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match col.as_str() {
                "account" => name = cell.to_string(),
                "port" => {
                    let p: i64 = cell.parse().map_err(|_| {
                        error(path, Some(line_no), Some("port"), "must be a number")
                    })?;
                    table.insert(col.clone(), toml::Value::Integer(p));
                }
                _ => {
                    table.insert(col.clone(), toml::Value::String(cell.to_string()));
                }
            }
        }
        if name.is_empty() {
            return Err(error(
                path,
                Some(line_no),
                Some("account"),
                "every row needs an account name",
            ));
        }
        rows.push((line_no, name, table));
        if rows.len() > MAX_ACCOUNTS {
            return Err(error(
                path,
                Some(line_no),
                None,
                format!("more than {MAX_ACCOUNTS} accounts"),
            ));
        }
    }
    Ok(rows)
}

/// One CSV line into cells (quotes per RFC 4180; a quoted field cannot span lines here).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.trim().is_empty() && !was_quoted => {
                cell.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted cell".into()),
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted cell".into());
    }
    cells.push(cell);
    Ok(cells)
}

fn error(
    path: &Path,
    line: Option<usize>,
    key: Option<&str>,
    message: impl ToString,
) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        line,
        key: key.map(str::to_string),
        message: message.to_string(),
    }
}

/// The line of `[accounts.NAME]` (best effort, for errors found after parsing).
fn find_table_line(text: &str, name: &str) -> Option<usize> {
    let plain = format!("[accounts.{name}]");
    let quoted = format!("[accounts.\"{name}\"]");
    text.lines()
        .position(|l| {
            let t = l.trim();
            t == plain || t == quoted
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = r#"
[fleet]
max_connections_per_server = 8

[defaults]
host = "imap.example.org"
local = "/srv/mail/{account}"
state = "/var/lib/mailfold/{account}.sqlite"
password_file = "/run/secrets/mailfold/{account}"
connections = 2

[accounts.alice]
user = "alice@example.org"

[accounts.bob]
user = "{account}"
password_env = "BOB_PW"
password_file = "/ignored"
"#;

    #[test]
    fn defaults_templates_and_overrides() {
        let text = M.replace("password_file = \"/ignored\"\n", "");
        let text = text.replace(
            "password_env = \"BOB_PW\"",
            "connections = 3\nstate = \"/x/{account}.db\"",
        );
        let m = Manifest::parse(&text, Path::new("m.toml")).unwrap();
        let a = &m.accounts["alice"];
        assert_eq!(a.local, PathBuf::from("/srv/mail/alice"));
        assert_eq!(
            a.state.as_deref(),
            Some(Path::new("/var/lib/mailfold/alice.sqlite"))
        );
        assert_eq!(
            a.password_file.as_deref(),
            Some(Path::new("/run/secrets/mailfold/alice"))
        );
        assert_eq!(a.connections, Some(2));
        let b = &m.accounts["bob"];
        assert_eq!(b.user, "bob");
        assert_eq!(b.connections, Some(3));
        assert_eq!(b.state.as_deref(), Some(Path::new("/x/bob.db")));
        assert_eq!(m.settings.max_connections_per_server, Some(8));
        assert_eq!(m.settings.retries, 3);
    }

    #[test]
    fn the_personal_configs_rules_apply() {
        // Two secrets for bob: refused by the shared validation, naming the key.
        let e = Manifest::parse(M, Path::new("m.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("accounts.bob.password_env"), "{e}");
        // Unknown keys, in defaults or an account, name the account and its table's line.
        let text = M.replace("password_file = \"/ignored\"\n", "hots = \"x\"\n");
        let e = Manifest::parse(&text, Path::new("m.toml")).unwrap_err();
        assert!(e.to_string().contains("hots"), "{e}");
        assert_eq!(e.line, Some(15), "{e}");
        let text = M.replace("connections = 2", "connections = 0");
        let e = Manifest::parse(&text, Path::new("m.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("accounts.alice.connections"), "{e}");
        let text = M.replace("[fleet]", "[fleet]\nretries = 11");
        let e = Manifest::parse(&text, Path::new("m.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("fleet.retries"), "{e}");
        let e = Manifest::parse("[fleet]\njobs = 3\n", Path::new("m.toml")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn templates_must_make_paths_distinct_and_placeholders_known() {
        let text = M
            .replace("/srv/mail/{account}", "/srv/mail/all")
            .replace("password_file = \"/ignored\"\n", "");
        let e = Manifest::parse(&text, Path::new("m.toml")).unwrap_err();
        assert!(e.to_string().contains("also account"), "{e}");
        assert_eq!(expand("/a/{account}/b", "x").unwrap(), "/a/x/b");
        assert!(expand("/a/{acount}", "x").unwrap_err().contains("{acount}"));
        assert!(expand("/a/}", "x").is_err());
    }

    #[test]
    fn csv_rows_take_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("accounts.csv");
        std::fs::write(
            &csv,
            "account,user,port,password_env\n\
             # a comment\n\
             carol,\"carol@example.org\",0,CAROL_PW\n\
             \"dave, jr\",dave,,\n",
        )
        .unwrap();
        let text = "[fleet]\naccounts_csv = \"accounts.csv\"\n[defaults]\nhost = \"h\"\n\
                    local = \"/m/{account}\"\npassword_file = \"/s/{account}\"\n";
        let e = Manifest::parse(text, &dir.path().join("m.toml")).unwrap_err();
        // carol's port 0 is refused by the shared rules, pointing at her row.
        assert_eq!(e.key.as_deref(), Some("accounts.carol.port"), "{e}");
        assert_eq!(e.path, csv);
        assert_eq!(e.line, Some(3), "{e}");
        std::fs::write(
            &csv,
            "account,user,port,password_env\ncarol,carol@example.org,1993,CAROL_PW\n\
             \"dave, jr\",dave,,\n",
        )
        .unwrap();
        let m = Manifest::parse(text, &dir.path().join("m.toml")).unwrap();
        assert_eq!(m.accounts["carol"].port, Some(1993));
        assert_eq!(m.accounts["dave, jr"].local, PathBuf::from("/m/dave, jr"));
        // carol's own secret replaces the defaults'; dave keeps the defaults'.
        assert_eq!(
            m.accounts["carol"].password_env.as_deref(),
            Some("CAROL_PW")
        );
        assert_eq!(m.accounts["carol"].password_file, None);
        assert_eq!(
            m.accounts["dave, jr"].password_file.as_deref(),
            Some(Path::new("/s/dave, jr"))
        );
        std::fs::write(&csv, "account,colour\nx,red\n").unwrap();
        let e = Manifest::parse(text, &dir.path().join("m.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("colour"), "{e}");
        std::fs::write(&csv, "account,user\nx,\"unterminated\n").unwrap();
        let e = Manifest::parse(text, &dir.path().join("m.toml")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
