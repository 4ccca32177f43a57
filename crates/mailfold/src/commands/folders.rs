//! `mailfold folders [ACCOUNT]`: the folder tree with message and unseen counts and
//! special-use marks (seed V0066).
//!
//! Counts come from the local mirror when the last sync of every folder is recent (the mirror
//! is then as good as the server and costs no round trip), and from the server otherwise: one
//! `LIST … RETURN (STATUS (MESSAGES UNSEEN))` where LIST-STATUS (RFC 5819) is offered, else a
//! LIST followed by every STATUS pipelined on this command's own connection, so the overview
//! never waits for one folder at a time (seed V0044). If the server cannot be reached the local
//! counts are shown and the output says so.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use mailfold_store::{FolderName, StateRead};
use mailfold_sync::inspect::{ServerSession, SessionError};
use serde_json::json;

use super::{print_json, Ctx};
use crate::config::Account;
use crate::mirror::Mirror;
use crate::online::{self, Connect};
use crate::term;

/// The mirror counts as fresh when every folder synced within this many seconds.
pub const FRESH_SECS: i64 = 600;

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Name, levels joined by `/`.
    pub name: String,
    /// RFC 6154 special use, e.g. `\Sent`.
    pub special_use: Option<String>,
    /// Messages.
    pub messages: Option<u32>,
    /// Messages without `\Seen`.
    pub unseen: Option<u32>,
    /// Whether the folder can hold messages (`\Noselect` cannot).
    pub selectable: bool,
}

/// Runs the command.
pub fn run(ctx: &Ctx, account: Option<&str>, server: bool, local: bool) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(account)?;
    let mirror = Mirror::open_read(&name, &acct).ok();
    let fresh = mirror.as_ref().is_some_and(is_fresh);
    let use_server = server || (!local && !ctx.offline && !fresh);
    let mut note = None;
    let (source, rows) = if use_server {
        match online::block_on(from_server(&name, &acct))?? {
            Ok(rows) => ("server", rows),
            Err(Connect::Unreachable(why)) if !server => {
                note = Some(format!(
                    "server not reachable ({why}); counts from the local mirror"
                ));
                ("local", local_rows(mirror.as_ref(), &name, &acct)?)
            }
            Err(Connect::Unreachable(why)) => {
                return Err(anyhow::Error::new(crate::exit::ServerError(why)))
            }
            Err(Connect::Failed(e)) => return Err(e),
        }
    } else {
        ("local", local_rows(mirror.as_ref(), &name, &acct)?)
    };
    if let Some(n) = &note {
        eprintln!("mailfold: {n}");
    }
    if ctx.json {
        let folders: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "special_use": r.special_use,
                    "messages": r.messages,
                    "unseen": r.unseen,
                    "selectable": r.selectable,
                })
            })
            .collect();
        print_json(&json!({
            "account": name,
            "source": source,
            "note": note,
            "folders": folders,
        }))?;
    } else {
        print_tree(&rows)?;
    }
    Ok(crate::exit::OK)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_fresh(m: &Mirror) -> bool {
    let Some(db) = &m.db else { return false };
    let Ok(rows) = db.folders() else { return false };
    let limit = now() - FRESH_SECS;
    !rows.is_empty()
        && rows
            .iter()
            .filter(|r| r.uidvalidity.is_some())
            .all(|r| r.last_sync.is_some_and(|t| t >= limit))
}

fn local_rows(mirror: Option<&Mirror>, name: &str, acct: &Account) -> anyhow::Result<Vec<Row>> {
    let owned;
    let mirror = match mirror {
        Some(m) => m,
        None => {
            owned = Mirror::open_read(name, acct)?;
            &owned
        }
    };
    let mut by_name: BTreeMap<FolderName, Row> = BTreeMap::new();
    let special: BTreeMap<FolderName, Option<String>> = mirror
        .state_folders()?
        .into_iter()
        .map(|(n, r)| (n, r.special_use))
        .collect();
    let listing = mirror.maildir.list_folders(mirror.aliases().as_ref())?;
    for lf in listing.folders {
        let (messages, unseen) = if lf.is_maildir {
            let files = mirror.maildir.folder(&lf.rel)?.scan()?;
            let unseen = files.iter().filter(|e| !e.flags.contains('S')).count();
            (Some(count(files.len())), Some(count(unseen)))
        } else {
            (None, None)
        };
        by_name.insert(
            lf.name.clone(),
            Row {
                name: lf.name.to_string(),
                special_use: special.get(&lf.name).cloned().flatten(),
                messages,
                unseen,
                selectable: lf.is_maildir,
            },
        );
    }
    Ok(sorted(by_name.into_values().collect()))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// INBOX first, then by name level by level (so a folder's children follow it directly, as
/// in `Work`, `Work/2025`, `Work 2`), with every missing parent added as a non-selectable
/// row: a server may list `Work/2025` without `Work` (RFC 3501 6.3.8 lets it), and without
/// the parent the tree would show `2025` under whatever row came before it.
fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    let known: std::collections::BTreeSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    let mut missing = std::collections::BTreeSet::new();
    for r in &rows {
        let mut prefix = String::new();
        let levels: Vec<&str> = r.name.split('/').collect();
        for level in &levels[..levels.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(level);
            if !known.contains(&prefix) {
                missing.insert(prefix.clone());
            }
        }
    }
    rows.extend(missing.into_iter().map(|name| Row {
        name,
        special_use: None,
        messages: None,
        unseen: None,
        selectable: false,
    }));
    let key = |r: &Row| {
        (
            !(r.name == "INBOX" || r.name.starts_with("INBOX/")),
            r.name.split('/').map(str::to_string).collect::<Vec<_>>(),
        )
    };
    rows.sort_by_key(key);
    rows
}

async fn from_server(name: &str, acct: &Account) -> anyhow::Result<Result<Vec<Row>, Connect>> {
    let mut s = match online::connect(name, acct).await {
        Ok(s) => s,
        Err(c) => return Ok(Err(c)),
    };
    let r = server_rows(&mut s, acct).await;
    online::show_notifications(&mut s, &acct.host);
    let r = r.map_err(|e| online::server_error(&acct.host, e));
    online::logout(s, &acct.host).await;
    Ok(Ok(r?))
}

/// The server's folders under the account's root, named as the sync names them locally
/// (seed V0022): `INBOX.Sent` under the root `INBOX.` is `Sent`; folders outside the root
/// and in other users' or shared namespaces are not listed.
async fn server_rows(s: &mut ServerSession, acct: &Account) -> Result<Vec<Row>, SessionError> {
    let folders = s.folders(acct.root_folder.as_deref()).await?;
    Ok(sorted(
        folders
            .into_iter()
            .map(|f| Row {
                name: f.name,
                special_use: f.special_use,
                messages: f.messages,
                unseen: f.unseen,
                selectable: f.selectable,
            })
            .collect(),
    ))
}

fn print_tree(rows: &[Row]) -> anyhow::Result<()> {
    // Folder names come from the server: made safe, and measured in terminal cells.
    let label = |r: &Row| {
        let depth = r.name.matches('/').count();
        let leaf = r.name.rsplit('/').next().unwrap_or("");
        format!("{}{}", "  ".repeat(depth), term::line(leaf))
    };
    let width = rows
        .iter()
        .map(|r| term::width(&label(r)))
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  SPECIAL",
        "FOLDER", "MESSAGES", "UNSEEN"
    )
    .map_err(crate::exit::stdout_error)?;
    for r in rows {
        let num = |n: Option<u32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        // A parent that cannot hold messages is marked, so its `-` counts are not read as
        // "unknown".
        let mark = if r.selectable {
            r.special_use.as_deref().unwrap_or("")
        } else {
            "(parent only, holds no messages)"
        };
        writeln!(
            out,
            "{}  {:>8}  {:>8}  {}",
            term::pad(&label(r), width),
            num(r.messages),
            num(r.unseen),
            mark
        )
        .map_err(crate::exit::stdout_error)?;
    }
    Ok(())
}
