//! `mailfold append FILE [--folder F] [--draft] [--seen]`: adds a message to a folder.
//!
//! The file is written into the folder's Maildir first (streamed through `tmp/`, LF line
//! ends like every file of the mirror), which is what the next sync would upload. When the
//! server is reachable it is uploaded at once by the sync engine's applier
//! ([`mailfold_sync::changes`]), exactly as a sync uploads a new file: a journal entry first,
//! then APPEND streaming the CRLF form with its exact length, its flags and INTERNALDATE
//! (seed V0006); an incomplete draft is accepted as it is (seed V0046). With APPENDUID
//! (UIDPLUS, seed V0048) the new UID goes into the state database, so the next sync neither
//! uploads nor downloads it again; without it the copy is looked up by Message-ID and size,
//! or the next sync pairs the file with the server copy by content. A `[TRYCREATE]` refusal
//! creates the folder and tries once more (seeds V0047, V0058).

use std::fs::File;
use std::io::Read;

use anyhow::Context;
use mailfold_sync::changes::Change;
use mailfold_sync::plan::{Flag, FlagSet, UnixTime};
use serde_json::json;

use super::{print_json, Ctx, Pushed};
use crate::change;
use crate::exit::usage;
use crate::mirror::Mirror;

/// Runs the command.
pub fn run(
    ctx: &Ctx,
    file: &std::path::Path,
    folder: Option<&str>,
    draft: bool,
    seen: bool,
    force: bool,
) -> anyhow::Result<u8> {
    check_file(file, force)?;
    let mut t = change::Target::open(ctx, "append")?;
    let folder_name = match folder {
        Some(f) => f.to_string(),
        None if draft => drafts_folder(&t.mirror)?,
        None => "INBOX".to_string(),
    };
    let f = t.mirror.resolve_folder(&folder_name)?;
    if f.rel.is_none() && f.state.is_none() {
        // Neither in the mirror nor synced: the error names the folder and the account.
        t.mirror.local_folder(&f)?;
    }
    let change = Change::Append {
        folder: f.path(),
        source: file.to_owned(),
        flags: flags_of(draft, seen),
        internaldate: UnixTime(now_unix()),
    };
    let done = t.run(
        ctx,
        change,
        "the message is in the local mirror; the next sync uploads it",
    )?;
    let m = done
        .outcome
        .messages
        .first()
        .ok_or_else(|| anyhow::anyhow!("the append produced no message"))?;
    let base = m.local.0.as_str();
    let new_uid = m.now.map(|u| u.get());
    // A failed push leaves the message queued for the next sync.
    let pushed = match (&done.failure, done.pushed) {
        (Some(_), _) => Pushed::Queued,
        (None, p) => p,
    };
    if ctx.json {
        print_json(&json!({
            "account": t.name,
            "folder": f.name.to_string(),
            "base": base,
            "uid": new_uid,
            "id": new_uid.map_or_else(|| base.to_string(), |u| u.to_string()),
            "size": m.size,
            "pushed": pushed.as_str(),
            "error": done.failure.as_ref().map(|e| format!("{e:#}")),
        }))?;
    } else {
        match (pushed, new_uid) {
            (Pushed::Server, Some(u)) => crate::outln!("appended to {} as UID {u}", f.name)?,
            (Pushed::Server, None) => crate::outln!("appended to {}", f.name)?,
            _ => crate::outln!("added to {} as {} (queued for the next sync)", f.name, base)?,
        }
    }
    change::Done::status(done.failure)
}

/// A usage error unless `file` is a regular file that (without `force`) starts with a
/// header block ([`check_header_block`]).
fn check_file(file: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let meta = std::fs::metadata(file).with_context(|| format!("{}", file.display()))?;
    if !meta.is_file() {
        return Err(usage(format!("{} is not a regular file", file.display())));
    }
    if !force {
        let mut head = Vec::new();
        File::open(file)
            .with_context(|| format!("{}", file.display()))?
            .take(HEAD_CHECKED as u64)
            .read_to_end(&mut head)
            .with_context(|| format!("{}", file.display()))?;
        if let Err(why) = check_header_block(&head) {
            return Err(usage(format!(
                "{} does not look like a message ({why}); a message starts with header \
                 fields such as `Subject: …` (RFC 5322 2.2). Use --force to add it as it is",
                file.display()
            )));
        }
    }
    Ok(())
}

/// The flags of the new message: `\Draft` and `\Seen` for a draft, `\Seen` for `seen`.
fn flags_of(draft: bool, seen: bool) -> FlagSet {
    let mut flags = FlagSet::new();
    if draft {
        flags.insert(Flag::Draft);
        flags.insert(Flag::Seen);
    }
    if seen {
        flags.insert(Flag::Seen);
    }
    flags
}

/// How much of a file's start `append` reads to check its header block.
const HEAD_CHECKED: usize = 64 * 1024;

/// Whether `head` (a file's first bytes) starts with an RFC 5322 header block: at least one
/// header field (`name: value`, the name printable ASCII without `:`, 2.2), then fields and
/// folded continuation lines (starting with a space or tab, 2.2.3) up to an empty line, the
/// end of the file, or the end of what was read. A draft may lack required fields (seed
/// V0046), so which fields are present is not checked.
pub fn check_header_block(head: &[u8]) -> Result<(), String> {
    if head.is_empty() {
        return Err("the file is empty".into());
    }
    let complete = head.len() < HEAD_CHECKED;
    let mut lines = head.split(|&b| b == b'\n').peekable();
    let mut fields = 0usize;
    let mut number = 0usize;
    while let Some(line) = lines.next() {
        number += 1;
        // The last piece of a cut read may be half a line: it is not judged.
        if lines.peek().is_none() && !complete {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if lines.peek().is_none() {
                // The file ended with its line feed.
                break;
            }
            return if fields > 0 {
                Ok(())
            } else {
                Err("it starts with an empty line".into())
            };
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if fields == 0 {
                return Err("its first line is indented".into());
            }
            continue;
        }
        let name_len = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("line {number} is not a header field"))?;
        let name = &line[..name_len];
        if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
            return Err(format!("line {number} is not a header field"));
        }
        fields += 1;
    }
    if fields > 0 {
        Ok(())
    } else {
        Err("it has no header field".into())
    }
}

/// The folder marked `\Drafts` in the state (RFC 6154), else `Drafts`.
fn drafts_folder(m: &Mirror) -> anyhow::Result<String> {
    Ok(m.state_folders()?
        .into_iter()
        .find(|(_, r)| {
            r.special_use
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("\\Drafts"))
        })
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| "Drafts".to_string()))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::check_header_block;

    #[test]
    fn header_blocks() {
        assert!(check_header_block(b"Subject: hi\n\nbody\n").is_ok());
        assert!(check_header_block(b"Subject: hi\r\n\tfolded\r\nTo: a@b\r\n\r\nx").is_ok());
        // A draft of headers only (V0046).
        assert!(check_header_block(b"To: a@b\n").is_ok());
        assert!(check_header_block(b"").is_err());
        assert!(check_header_block(b"just some text\n\nmore\n").is_err());
        assert!(check_header_block(b"\nSubject: late\n").is_err());
        assert!(check_header_block(b"From alice Mon Jan 1\nSubject: x\n\n").is_err());
        assert!(check_header_block(b" indented: x\n").is_err());
    }
}
