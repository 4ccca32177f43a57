//! `mailfold append FILE [--folder F] [--draft] [--seen]`: adds a message to a folder.
//!
//! The file is written into the folder's Maildir first (streamed through `tmp/`, LF line
//! ends like every file of the mirror), which is what the next sync would upload. When the
//! server is reachable it is uploaded at once with APPEND, streaming the CRLF form with its
//! exact length, its flags and INTERNALDATE (seed V0006); an incomplete draft is accepted as
//! it is (seed V0046). With APPENDUID (UIDPLUS, seed V0048) the new UID goes into the state
//! database, so the next sync neither uploads nor downloads it again; without it the next
//! sync pairs the file with the server copy by content. A `[TRYCREATE]` refusal creates the
//! folder and tries once more (seeds V0047, V0058).

use std::fs::File;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::Context;
use mailfold_proto::command::{Date, DateTime};
use mailfold_proto::core::Flag;
use mailfold_proto::response::Code;
use mailfold_store::{
    ContentHash, InternalDate, MaildirFlags, MessageRecord, NewMessage, StateRead, Uid,
};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};

use super::{print_json, say_queued, Ctx, Pushed};
use crate::exit::usage;
use crate::mirror::Mirror;
use crate::online::{self, Reached};

/// Runs the command.
pub fn run(
    ctx: &Ctx,
    file: &std::path::Path,
    folder: Option<&str>,
    draft: bool,
    seen: bool,
    force: bool,
) -> anyhow::Result<u8> {
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
    let (name, acct) = ctx.one_account(None)?;
    let mut mirror = Mirror::open_write(&name, &acct, "append", ctx.wait)?;
    let folder_name = match folder {
        Some(f) => f.to_string(),
        None if draft => drafts_folder(&mirror)?,
        None => "INBOX".to_string(),
    };
    let f = mirror.resolve_folder(&folder_name)?;
    let dir = match (&f.rel, &f.state) {
        (Some(_), _) => mirror.local_folder(&f)?,
        // Synced but its directory is gone: recreate it where the state says.
        (None, Some(st)) => mirror.maildir.create_folder_at(&st.local_path)?,
        (None, None) => mirror.local_folder(&f)?,
    };
    let mut letters = MaildirFlags::empty();
    if draft {
        letters.insert('D');
        letters.insert('S');
    }
    if seen {
        letters.insert('S');
    }
    let now = now_unix();
    let mut writer = dir.create_message(NewMessage {
        flags: letters.clone(),
        internaldate: Some(now),
    })?;
    let mut input = File::open(file).with_context(|| format!("{}", file.display()))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        writer.write_chunk(&buf[..n])?;
    }
    let written = writer.commit()?;
    let base = written.entry.base.clone();
    let head = crate::mirror::read_head(&written.entry.path).unwrap_or_default();
    let message_id = crate::mime::summarize(&head).message_id;

    let flags: Vec<Flag> = letters
        .to_imap()
        .iter()
        .filter_map(|f| Flag::parse(f))
        .collect();
    let mailbox = mirror.folder_mailbox(&f, mirror.delimiter())?;
    let date = imap_datetime(now)?;
    let upload = dir.open_upload(&written.entry)?;
    let len = upload.crlf_len;
    let hash = upload.hash;
    let mut failure = None;
    let mut pushed = Pushed::Queued;
    let mut new_uid = None;
    match online::with_session(ctx.offline, &name, &acct, async |s| {
        let r = s
            .append_stream(
                &mailbox,
                &flags,
                Some(date),
                Box::new(Blocking(upload)),
                len,
            )
            .await;
        match r {
            Err(mailfold_net::Error::Command { text, .. }) if text.contains("[TRYCREATE]") => {
                s.create(&mailbox).await?;
                let again = dir.open_upload(&written.entry).map_err(|e| {
                    mailfold_net::Error::Io(
                        "reopening the message".into(),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
                s.append_stream(&mailbox, &flags, Some(date), Box::new(Blocking(again)), len)
                    .await
            }
            other => other,
        }
    }) {
        Ok(Reached::Done(code)) => {
            pushed = Pushed::Server;
            if let Some(Code::AppendUid { uid_validity, uids }) = code {
                new_uid = uids.first();
                if let (Some(uid), Some(st)) = (new_uid.and_then(Uid::new), &f.state) {
                    let db = mirror.db_mut()?;
                    let same = db
                        .folder(st.id)?
                        .and_then(|r| r.uidvalidity)
                        .is_some_and(|v| v.get() == uid_validity.get());
                    if same {
                        let rec = record(
                            uid,
                            &written.entry.base,
                            &letters,
                            len,
                            now,
                            hash,
                            message_id.clone(),
                        );
                        db.write(|tx| tx.upsert_messages(st.id, std::slice::from_ref(&rec)))?;
                    }
                }
            }
        }
        Ok(Reached::Offline(why)) => say_queued(ctx.json, &why),
        Err(e) => {
            failure =
                Some(e.context("the message is in the local mirror; the next sync uploads it"))
        }
    }
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "base": base.as_str(),
            "uid": new_uid,
            "id": new_uid.map_or_else(|| base.as_str().to_string(), |u| u.to_string()),
            "size": len,
            "pushed": pushed.as_str(),
            "error": failure.as_ref().map(|e| format!("{e:#}")),
        }))?;
    } else {
        match (pushed, new_uid) {
            (Pushed::Server, Some(u)) => crate::outln!("appended to {} as UID {u}", f.name)?,
            (Pushed::Server, None) => crate::outln!("appended to {}", f.name)?,
            _ => crate::outln!("added to {} as {} (queued for the next sync)", f.name, base)?,
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(crate::exit::OK),
    }
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

fn record(
    uid: Uid,
    base: &mailfold_store::MessageBase,
    letters: &MaildirFlags,
    size: u64,
    date: i64,
    hash: ContentHash,
    message_id: Option<String>,
) -> MessageRecord {
    let (flags, keywords): (Vec<String>, Vec<String>) = letters
        .to_imap()
        .iter()
        .map(|s| s.to_string())
        .partition(|f| f.starts_with('\\'));
    MessageRecord {
        uid,
        base: base.clone(),
        flags,
        keywords,
        size: Some(size),
        internaldate: Some(InternalDate {
            unix: date,
            offset_minutes: 0,
        }),
        hash: Some(hash),
        message_id,
        partial: false,
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

/// INTERNALDATE for APPEND, in UTC.
pub fn imap_datetime(unix: i64) -> anyhow::Result<DateTime> {
    let (y, m, d, hh, mm, ss) = crate::mime::civil(unix);
    let y = u16::try_from(y).map_err(|_| anyhow::anyhow!("date out of range"))?;
    let date = Date::new(y, m as u8, d as u8).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    DateTime::new(date, hh as u8, mm as u8, ss as u8, 0).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A blocking reader offered as an `AsyncRead`. It reads a local file (the CRLF view of a
/// Maildir message), which does not block long; the command's runtime has nothing else to do
/// meanwhile.
struct Blocking<R>(R);

impl<R: Read + Unpin> AsyncRead for Blocking<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
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
