//! `mailfold flag FOLDER ID… --set FLAG --clear FLAG`.
//!
//! The standard flags live in the Maildir file name (`:2,` letters), so the change is made
//! there first: exactly what a mail reader would do, and what the next sync pushes. When the
//! server is reachable the change is pushed at once with `UID STORE … ±FLAGS.SILENT` (seed
//! V0056) and the state database records the new synced flags, so the next sync has nothing
//! to redo. The state's base for each flag moves only for the flags this command changed:
//! other differences (a flag changed meanwhile on either side) are still merged by the next
//! sync as usual. Keywords other than `$Forwarded` have no letter and live only in the state
//! database and on the server (seed V0005), so they need the server.

use mailfold_proto::command::{StoreFlags, StoreMode};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::seqset::UidSet;
use mailfold_store::{FlagUpdate, MaildirFlags, StateDb, StateRead, Uid};
use serde_json::json;

use super::{print_json, say_queued, Ctx, Pushed};
use crate::cli::FlagArgs;
use crate::exit::usage;
use crate::mirror::Mirror;
use crate::online::{self, Reached};

/// One flag a user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagName {
    /// Wire text (`\Seen`, `$Junk`).
    pub imap: String,
    /// The Maildir letter, when the flag has one.
    pub letter: Option<char>,
}

/// The flag names `--set` and `--clear` know, in the order the error lists them.
pub const KNOWN: [&str; 6] = [
    "seen",
    "answered",
    "flagged",
    "deleted",
    "draft",
    "forwarded",
];

/// The prefix that names a keyword without `$` (`keyword:NonJunk`); one starting with `$`
/// (`$Junk`, RFC 5788) needs none.
pub const KEYWORD_PREFIX: &str = "keyword:";

/// Parses `seen`, `\Seen`, `flagged`, `forwarded`, `$Junk`, `keyword:NonJunk`, … . Any other
/// word is an error listing the known names, so a misspelt flag (`flaged`) is never stored
/// as a new keyword. `\Recent` cannot be set (seed V0004).
pub fn parse_flag(s: &str) -> anyhow::Result<FlagName> {
    let keyword = |k: &str| -> anyhow::Result<FlagName> {
        let f = Flag::keyword(k).map_err(|e| usage(format!("{s:?}: {e}")))?;
        Ok(FlagName {
            imap: f.to_string(),
            letter: None,
        })
    };
    if let Some(k) = s.strip_prefix(KEYWORD_PREFIX) {
        return keyword(k);
    }
    let lower = s.trim_start_matches('\\').to_ascii_lowercase();
    let (imap, letter) = match lower.as_str() {
        "seen" => ("\\Seen", 'S'),
        "answered" | "replied" => ("\\Answered", 'R'),
        "flagged" => ("\\Flagged", 'F'),
        "deleted" => ("\\Deleted", 'T'),
        "draft" => ("\\Draft", 'D'),
        "forwarded" | "$forwarded" => ("$Forwarded", 'P'),
        "recent" => return Err(usage("\\Recent is set by the server only (RFC 3501 2.3.2)")),
        _ if s.starts_with('$') => return keyword(s),
        _ => {
            let hint = KNOWN
                .iter()
                .find(|k| edit_distance(k, &lower) <= 2)
                .map_or(String::new(), |k| format!(" (did you mean {k}?)"));
            return Err(usage(format!(
                "{s:?} is not a flag name{hint}; known: {}; a keyword is written $Name or \
                 {KEYWORD_PREFIX}Name",
                KNOWN.join(", ")
            )));
        }
    };
    Ok(FlagName {
        imap: imap.into(),
        letter: Some(letter),
    })
}

/// Levenshtein distance between two short words (flag names), for the "did you mean" hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Runs the command.
pub fn run(ctx: &Ctx, a: &FlagArgs) -> anyhow::Result<u8> {
    if a.set.is_empty() && a.clear.is_empty() {
        return Err(usage("nothing to do: give --set FLAG and/or --clear FLAG"));
    }
    let set: Vec<FlagName> = a
        .set
        .iter()
        .map(|s| parse_flag(s))
        .collect::<Result<_, _>>()?;
    let clear: Vec<FlagName> = a
        .clear
        .iter()
        .map(|s| parse_flag(s))
        .collect::<Result<_, _>>()?;
    if let Some(f) = set.iter().find(|f| clear.contains(f)) {
        return Err(usage(format!("{} is both set and cleared", f.imap)));
    }
    let keywords = set.iter().chain(&clear).any(|f| f.letter.is_none());
    if keywords && ctx.offline {
        return Err(usage(
            "keywords other than $Forwarded are kept on the server only; drop --offline",
        ));
    }
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "flag", ctx.wait)?;
    let f = mirror.resolve_folder(&a.folder)?;
    let dir = mirror.local_folder(&f)?;
    let msgs = a
        .ids
        .iter()
        .map(|id| mirror.resolve_message(&f, id))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // 1. The mirror.
    let mut results = Vec::new();
    for m in &msgs {
        let mut letters = m.entry.flags.clone();
        for x in &set {
            if let Some(l) = x.letter {
                letters.insert(l);
            }
        }
        for x in &clear {
            if let Some(l) = x.letter {
                letters.remove(l);
            }
        }
        let entry = if letters != m.entry.flags {
            dir.set_flags(&m.entry, &letters)?
        } else {
            m.entry.clone()
        };
        results.push((entry, m.record.clone()));
    }

    // 2. The server, for messages it has.
    let uids: Vec<u32> = msgs
        .iter()
        .filter_map(|m| m.record.as_ref().map(|r| r.uid.get()))
        .collect();
    let mut pushed = Pushed::LocalOnly;
    let mut failure = None;
    if !uids.is_empty() {
        let mailbox = mirror.folder_mailbox(&f, mirror.delimiter())?;
        let add: Vec<Flag> = set.iter().filter_map(|x| Flag::parse(&x.imap)).collect();
        let remove: Vec<Flag> = clear.iter().filter_map(|x| Flag::parse(&x.imap)).collect();
        let reached = online::with_session(ctx.offline, &name, &acct, async |s| {
            store(s, &mailbox, &uids, add, remove).await
        });
        match reached {
            Ok(Reached::Done(())) => {
                pushed = Pushed::Server;
                if let Some(st) = &f.state {
                    let db = mirror.db_mut()?;
                    record_pushed(db, st.id, &msgs, &set, &clear)?;
                    // Show the flags as now recorded (keywords live in the state).
                    for (_, rec) in results.iter_mut() {
                        if let Some(r) = rec {
                            if let Some(now) = db.message(st.id, r.uid)? {
                                *r = now;
                            }
                        }
                    }
                }
            }
            Ok(Reached::Offline(why)) => {
                pushed = Pushed::Queued;
                say_queued(ctx.json, &why);
                if keywords {
                    failure = Some(anyhow::anyhow!(
                        "keyword changes were not applied: the server is not reachable"
                    ));
                }
            }
            Err(e) => {
                failure = Some(e.context(
                    "the flag change was made in the local mirror and the next sync pushes it",
                ))
            }
        }
    }

    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "pushed": pushed.as_str(),
            "error": failure.as_ref().map(|e| format!("{e:#}")),
            "messages": results.iter().map(|(e, r)| json!({
                "id": r.as_ref().map_or_else(|| e.base.as_str().to_string(), |r| r.uid.get().to_string()),
                "flags": super::list::flags_of(e, r.as_ref()),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for (e, r) in &results {
            let id = r
                .as_ref()
                .map_or_else(|| e.base.as_str().to_string(), |r| r.uid.get().to_string());
            crate::outln!("{id}: {}", super::list::flags_of(e, r.as_ref()).join(" "))?;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(crate::exit::OK),
    }
}

/// SELECT and `UID STORE ±FLAGS.SILENT` (seed V0056).
async fn store(
    s: &mut mailfold_net::Session,
    mailbox: &Mailbox,
    uids: &[u32],
    add: Vec<Flag>,
    remove: Vec<Flag>,
) -> Result<(), mailfold_net::Error> {
    s.select(mailbox, mailfold_net::SelectOptions::default())
        .await?;
    let set = UidSet::from_numbers(uids.iter().copied())
        .map_err(|e| mailfold_net::Error::Config(e.to_string()))?;
    for (mode, flags) in [(StoreMode::Add, add), (StoreMode::Remove, remove)] {
        if flags.is_empty() {
            continue;
        }
        s.uid_store(
            &set,
            StoreFlags {
                mode,
                silent: true,
                flags,
            },
            None,
        )
        .await?;
    }
    Ok(())
}

/// Records in the state that both sides now agree on the changed flags.
fn record_pushed(
    db: &mut StateDb,
    folder: mailfold_store::FolderId,
    msgs: &[crate::mirror::MessageRef],
    set: &[FlagName],
    clear: &[FlagName],
) -> anyhow::Result<()> {
    let mut updates = Vec::new();
    for m in msgs {
        let Some(r) = &m.record else { continue };
        let mut all: Vec<String> = r.flags.iter().chain(&r.keywords).cloned().collect();
        for x in set {
            if !all.iter().any(|f| f.eq_ignore_ascii_case(&x.imap)) {
                all.push(x.imap.clone());
            }
        }
        all.retain(|f| !clear.iter().any(|x| x.imap.eq_ignore_ascii_case(f)));
        let (flags, keywords): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|f| f.starts_with('\\'));
        updates.push(FlagUpdate {
            uid: Uid(r.uid.0),
            flags,
            keywords,
        });
    }
    db.write(|tx| tx.update_flags(folder, &updates))?;
    Ok(())
}

/// The Maildir letters for IMAP flags (kept for other modules).
pub fn letters_for(flags: &[String]) -> MaildirFlags {
    MaildirFlags::from_imap(flags.iter().map(String::as_str), &MaildirFlags::empty())
}
