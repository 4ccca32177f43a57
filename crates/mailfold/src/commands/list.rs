//! `mailfold list FOLDER`: the messages of a folder from the local mirror, with the server
//! UID as the message ID (a message not uploaded yet shows its Maildir base name instead).

use std::io::Write;

use mailfold_store::MessageRecord;
use serde_json::json;

use super::{print_json, Ctx};
use crate::cli::SortKey;
use crate::mime::{self, Summary};
use crate::mirror::{read_head, MessageRef, Mirror};
use crate::term;

/// One listed message.
#[derive(Debug, Clone)]
pub struct Item {
    /// The file and its state row.
    pub msg: MessageRef,
    /// Decoded header summary.
    pub summary: Summary,
    /// IMAP flags: the file's letters plus the state's other keywords.
    pub flags: Vec<String>,
    /// INTERNALDATE (state), else the file's mtime, as Unix seconds.
    pub internaldate: i64,
    /// RFC822.SIZE (state), else the file size.
    pub size: u64,
}

impl Item {
    /// The ID users pass to other commands.
    pub fn id(&self) -> String {
        match &self.msg.record {
            Some(r) => r.uid.get().to_string(),
            None => self.msg.entry.base.as_str().to_string(),
        }
    }

    /// Date header, else INTERNALDATE.
    pub fn date(&self) -> i64 {
        self.summary.date.unwrap_or(self.internaldate)
    }

    /// The JSON object (docs/cli.md, `list`).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id(),
            "uid": self.msg.record.as_ref().map(|r| r.uid.get()),
            "base": self.msg.entry.base.as_str(),
            "date": self.summary.date.map(mime::rfc3339),
            "internaldate": mime::rfc3339(self.internaldate),
            "from": self.summary.from,
            "subject": self.summary.subject,
            "message_id": self.summary.message_id,
            "flags": self.flags,
            "size": self.size,
            "partial": self.msg.record.as_ref().is_some_and(|r| r.partial),
        })
    }
}

/// The IMAP flags of a message as the mirror holds them.
pub fn flags_of(entry: &mailfold_store::MessageEntry, rec: Option<&MessageRecord>) -> Vec<String> {
    let mut v: Vec<String> = entry
        .flags
        .to_imap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(r) = rec {
        for k in &r.keywords {
            if !mailfold_store::MaildirFlags::has_letter_for(k) && !v.contains(k) {
                v.push(k.clone());
            }
        }
    }
    v
}

/// Every message of a folder with its summary (one bounded header read per file).
pub fn items(mirror: &Mirror, folder: &crate::mirror::FolderRef) -> anyhow::Result<Vec<Item>> {
    let dir = mirror.local_folder(folder)?;
    let mut records = mirror.records_by_base(folder)?;
    let mut out = Vec::new();
    for entry in dir.scan()? {
        let record = records.remove(entry.base.as_str());
        let summary = match read_head(&entry.path) {
            Ok(h) => mime::summarize(&h),
            Err(e) => {
                tracing::warn!("{}: {e}", entry.path.display());
                Summary::default()
            }
        };
        let internaldate = record
            .as_ref()
            .and_then(|r| r.internaldate)
            .map(|d| d.unix)
            .unwrap_or_else(|| unix_of(entry.mtime));
        let size = record.as_ref().and_then(|r| r.size).unwrap_or(entry.size);
        let flags = flags_of(&entry, record.as_ref());
        out.push(Item {
            msg: MessageRef { entry, record },
            summary,
            flags,
            internaldate,
            size,
        });
    }
    Ok(out)
}

fn unix_of(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Runs the command.
pub fn run(
    ctx: &Ctx,
    folder: &str,
    unseen: bool,
    limit: Option<usize>,
    sort: SortKey,
    reverse: bool,
) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mirror = Mirror::open_read(&name, &acct)?;
    let f = mirror.resolve_folder(folder)?;
    let mut all = items(&mirror, &f)?;
    if unseen {
        all.retain(|i| !i.flags.iter().any(|f| f == "\\Seen"));
    }
    sort_items(&mut all, sort);
    if reverse {
        all.reverse();
    }
    if let Some(n) = limit {
        // The most recent N in date order: keep the tail of an ascending list.
        if !reverse && sort == SortKey::Date && all.len() > n {
            all.drain(..all.len() - n);
        } else {
            all.truncate(n);
        }
    }
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "messages": all.iter().map(Item::to_json).collect::<Vec<_>>(),
        }))?;
    } else {
        print_table(&all.iter().collect::<Vec<_>>())?;
    }
    Ok(crate::exit::OK)
}

/// Sorts by the key (ties by UID, then base, so the order is stable).
pub fn sort_items(v: &mut [Item], key: SortKey) {
    let uid = |i: &Item| i.msg.record.as_ref().map_or(u32::MAX, |r| r.uid.get());
    v.sort_by(|a, b| {
        let primary = match key {
            SortKey::Date => a.date().cmp(&b.date()),
            SortKey::Uid => uid(a).cmp(&uid(b)),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::From => a
                .summary
                .from
                .to_lowercase()
                .cmp(&b.summary.from.to_lowercase()),
            SortKey::Subject => a
                .summary
                .subject
                .to_lowercase()
                .cmp(&b.summary.subject.to_lowercase()),
        };
        primary
            .then(uid(a).cmp(&uid(b)))
            .then_with(|| a.msg.entry.base.as_str().cmp(b.msg.entry.base.as_str()))
    });
}

/// The flag letters shown in the table: N(ew/unseen) F(lagged) R(eplied) D(raft) T(deleted).
pub fn flag_marks(flags: &[String]) -> String {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut s = String::new();
    s.push(if has("\\Seen") { ' ' } else { 'N' });
    s.push(if has("\\Flagged") { 'F' } else { ' ' });
    s.push(if has("\\Answered") { 'R' } else { ' ' });
    s.push(if has("\\Draft") { 'D' } else { ' ' });
    s.push(if has("\\Deleted") { 'T' } else { ' ' });
    s
}

/// A size as `512`, `4.1K`, `2.3M`.
pub fn human_size(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f < K {
        n.to_string()
    } else if f < K * K {
        format!("{:.1}K", f / K)
    } else {
        format!("{:.1}M", f / (K * K))
    }
}

/// The human table of `list` and `search`: ID, date, flags, sender, size, subject. Sender
/// and subject are mail content: made safe for the terminal and measured in cells.
pub fn print_table(items: &[&Item]) -> anyhow::Result<()> {
    let idw = items.iter().map(|i| i.id().len()).max().unwrap_or(2).max(2);
    let mut out = std::io::stdout().lock();
    for i in items {
        writeln!(
            out,
            "{:>idw$}  {}  {}  {}  {:>6}  {}",
            i.id(),
            mime::format_unix(i.date()),
            flag_marks(&i.flags),
            term::pad(&i.summary.from, 24),
            human_size(i.size),
            term::line(&i.summary.subject)
        )
        .map_err(crate::exit::stdout_error)?;
    }
    Ok(())
}
