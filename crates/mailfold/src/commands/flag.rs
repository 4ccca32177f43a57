//! `mailfold flag FOLDER ID… --set FLAG --clear FLAG`.
//!
//! The standard flags live in the Maildir file name (`:2,` letters), so the change is made
//! there first: exactly what a mail reader would do, and what the next sync pushes. When the
//! server is reachable the change is pushed at once by the sync engine's applier
//! ([`mailfold_sync::changes`]) with `UID STORE … ±FLAGS.SILENT` (seed V0056), and the state
//! database records the new synced flags, so the next sync has nothing to redo. The state's base for each flag moves only for the flags this command changed:
//! other differences (a flag changed meanwhile on either side) are still merged by the next
//! sync as usual. Keywords other than `$Forwarded` have no letter and live only in the state
//! database and on the server (seed V0005), so they need the server.

use mailfold_store::MaildirFlags;
use mailfold_sync::changes::{Change, Message};
use mailfold_sync::inspect::search::Flag;
use mailfold_sync::plan::{FlagSet, LocalId};
use serde_json::json;

use super::{print_json, Ctx, Pushed};
use crate::change;
use crate::cli::FlagArgs;
use crate::exit::usage;
use crate::mirror::{id_text, MessageRef};

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
    let (set, clear) = parse_args(a)?;
    let keywords = set.iter().chain(&clear).any(|f| f.letter.is_none());
    if keywords && ctx.offline {
        return Err(usage(
            "keywords other than $Forwarded are kept on the server only; drop --offline",
        ));
    }
    let mut t = change::Target::open(ctx, "flag")?;
    let f = t.mirror.resolve_folder(&a.folder)?;
    let msgs = t.mirror.resolve_messages(&f, &a.ids)?;
    let change = Change::Flags {
        folder: f.path(),
        messages: msgs.iter().map(change_message).collect(),
        add: FlagSet::from_imap(set.iter().map(|x| x.imap.as_str())),
        remove: FlagSet::from_imap(clear.iter().map(|x| x.imap.as_str())),
    };
    let done = t.run(
        ctx,
        change,
        "the flag change was made in the local mirror and the next sync pushes it",
    )?;
    let mut failure = done.failure;
    if done.pushed == Pushed::Queued && keywords {
        failure = Some(anyhow::anyhow!(
            "keyword changes were not applied: the server is not reachable"
        ));
    }
    // The messages as they are now: the file's letters, and the flags the state records
    // (keywords live there).
    let results = msgs
        .iter()
        .map(|m| {
            let id = id_of(m);
            t.mirror
                .resolve_message(&f, &id)
                .map(|now| (now.entry, now.record))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    if ctx.json {
        print_json(&json!({
            "account": t.name,
            "folder": f.name.to_string(),
            "pushed": done.pushed.as_str(),
            "error": failure.as_ref().map(|e| format!("{e:#}")),
            "messages": results.iter().map(|(e, r)| json!({
                "id": id_text(e, r.as_ref()),
                "flags": super::list::flags_of(e, r.as_ref()),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for (e, r) in &results {
            let id = id_text(e, r.as_ref());
            crate::outln!("{id}: {}", super::list::flags_of(e, r.as_ref()).join(" "))?;
        }
    }
    change::Done::status(failure)
}

/// The flags to set and to clear, parsed; a usage error when there are none or one is in
/// both lists.
fn parse_args(a: &FlagArgs) -> anyhow::Result<(Vec<FlagName>, Vec<FlagName>)> {
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
    Ok((set, clear))
}

/// A message the user named, as the change API names it: by UID once synced, else by its
/// file's base name.
pub fn change_message(m: &MessageRef) -> Message {
    match &m.record {
        Some(r) => Message::Uid(r.uid),
        None => Message::Local(LocalId(m.entry.base.as_str().to_owned())),
    }
}

/// The ID a user names a message by: its UID once synced, else its base name.
pub fn id_of(m: &MessageRef) -> String {
    id_text(&m.entry, m.record.as_ref())
}

/// The Maildir letters for IMAP flags (kept for other modules).
pub fn letters_for(flags: &[String]) -> MaildirFlags {
    MaildirFlags::from_imap(flags.iter().map(String::as_str), &MaildirFlags::empty())
}
