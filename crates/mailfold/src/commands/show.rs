//! `mailfold show FOLDER ID [--raw]`: one message, decoded for reading, or its bytes.
//!
//! When the mirror holds only the message's header (`download = "headers-only"`, seed
//! V0010), the body is fetched on demand with `UID FETCH … BODY.PEEK[]`, which does not set
//! `\Seen` (seed V0054); it is shown, not stored, so the partial copy in the mirror and the
//! sync engine's rule that a partial copy never replaces a full one (V0070) are untouched.
//! Bodies stream: `--raw` copies them to stdout chunk by chunk; decoding keeps at most
//! [`MAX_DECODE`] bytes, since a MIME parser needs the whole message in memory.

use std::io::{Read, Write};

use mailfold_net::FetchSink;
use mailfold_proto::command::{FetchItem, FetchItems, FetchModifiers};
use mailfold_proto::response::{BodyValue, Fetch, FetchItem as FetchItemData};
use mailfold_proto::seqset::UidSet;
use mailfold_store::crlf::CrlfToLf;
use serde_json::json;

use super::{print_json, Ctx};
use crate::mime;
use crate::mirror::Mirror;
use crate::online::{self, Connect};
use crate::term;

/// The most bytes of a message decoded for display; larger ones are cut (use `--raw`).
pub const MAX_DECODE: usize = 32 * 1024 * 1024;

/// Runs the command.
pub fn run(ctx: &Ctx, folder: &str, id: &str, raw: bool, html: bool) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mirror = Mirror::open_read(&name, &acct)?;
    let f = mirror.resolve_folder(folder)?;
    let m = mirror.resolve_message(&f, id)?;
    let partial = m.record.as_ref().is_some_and(|r| r.partial);
    let mut source = "local";
    let mut note = None;
    let (bytes, truncated) = if partial && !ctx.offline {
        // The record exists when `partial` is set, so the UID is known.
        let uid = m.record.as_ref().map(|r| r.uid.get()).unwrap_or(0);
        let mailbox = mirror.folder_mailbox(&f, mirror.delimiter())?;
        let fetched = online::block_on(async {
            let mut s = match online::connect(&name, &acct).await {
                Ok(s) => s,
                Err(c) => return Ok(Err(c)),
            };
            let r = fetch_body(&mut s, &mailbox, uid, raw).await;
            online::show_notifications(&mut s, &acct.host);
            online::logout(s, &acct.host).await;
            r.map(Ok).map_err(|e| online::server_error(&acct.host, e))
        })??;
        match fetched {
            Ok(Some(b)) => {
                if raw && b.1 {
                    return Err(anyhow::Error::new(crate::exit::StdoutClosed));
                }
                source = "server";
                b
            }
            Ok(None) => anyhow::bail!("the server no longer has UID {uid} in {}", f.name),
            Err(Connect::Unreachable(why)) => {
                note = Some(format!(
                    "only the header is local and the server is not reachable ({why})"
                ));
                read_local(&m.entry.path, raw)?
            }
            Err(Connect::Failed(e)) => return Err(e),
        }
    } else {
        if partial {
            note = Some("only the header is local (--offline)".to_string());
        }
        read_local(&m.entry.path, raw)?
    };
    if let Some(n) = &note {
        eprintln!("mailfold: {n}");
    }
    if raw {
        // --raw streamed the bytes already when they came from the server.
        if source == "local" {
            std::io::stdout()
                .lock()
                .write_all(&bytes)
                .map_err(crate::exit::stdout_error)?;
        }
        return Ok(crate::exit::OK);
    }
    let r = mime::render(&bytes, html);
    let flags = super::list::flags_of(&m.entry, m.record.as_ref());
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "id": m.record.as_ref().map_or_else(|| m.entry.base.as_str().to_string(), |r| r.uid.get().to_string()),
            "uid": m.record.as_ref().map(|r| r.uid.get()),
            "base": m.entry.base.as_str(),
            "flags": flags,
            "headers": r.headers.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "text_type": r.text_type,
            "text": r.text,
            "attachments": r.attachments.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
            "source": source,
            "truncated": truncated,
            "note": note,
        }))?;
    } else {
        print_human(&r, &flags, truncated).map_err(crate::exit::stdout_error)?;
    }
    Ok(crate::exit::OK)
}

/// The human form: decoded headers, the text, attachments. Everything shown is the
/// message's own content, so it goes through [`term`] first (no escape sequence of a
/// sender's reaches the terminal).
fn print_human(r: &mime::Rendered, flags: &[String], truncated: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (k, v) in &r.headers {
        writeln!(out, "{k}: {}", term::line(v))?;
    }
    if !flags.is_empty() {
        writeln!(out, "Flags: {}", term::line(&flags.join(" ")))?;
    }
    writeln!(out)?;
    let text = term::block(&r.text);
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    for (n, s) in &r.attachments {
        writeln!(
            out,
            "[attachment: {}, {}]",
            term::line(n),
            super::list::human_size(*s as u64)
        )?;
    }
    if truncated {
        writeln!(
            out,
            "[message cut at {MAX_DECODE} bytes; use --raw for all of it]"
        )?;
    }
    out.flush()
}

/// Reads a local file: all of it for `--raw` (printed at once, so `raw` reads in pieces
/// only to keep the same bound), at most [`MAX_DECODE`] bytes for decoding.
fn read_local(path: &std::path::Path, raw: bool) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut file = std::fs::File::open(path)?;
    if raw {
        // Piece by piece, so only a write error (a closed pipe: quiet end) is an output error.
        let mut piece = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut piece)?;
            if n == 0 {
                break;
            }
            crate::exit::write_bytes(&piece[..n])?;
        }
        // Already printed: the caller prints nothing more.
        return Ok((Vec::new(), false));
    }
    let mut buf = Vec::new();
    (&mut file)
        .take(MAX_DECODE as u64 + 1)
        .read_to_end(&mut buf)?;
    let truncated = buf.len() > MAX_DECODE;
    buf.truncate(MAX_DECODE);
    Ok((buf, truncated))
}

/// Collects (or, for `--raw`, prints) one body, converting CRLF to the LF form the mirror uses.
struct BodySink {
    raw: bool,
    conv: CrlfToLf,
    scratch: Vec<u8>,
    buf: Vec<u8>,
    truncated: bool,
    seen: bool,
    closed: bool,
}

impl BodySink {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.raw {
            // A reader that closed the pipe (`show --raw | head`) wants no more: the rest is
            // dropped and the command ends quietly once the fetch is done.
            if !self.closed {
                if let Err(e) = std::io::stdout().lock().write_all(&self.scratch) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        return Err(e);
                    }
                    self.closed = true;
                }
            }
        } else {
            let room = MAX_DECODE.saturating_sub(self.buf.len());
            if self.scratch.len() > room {
                self.truncated = true;
            }
            let n = self.scratch.len().min(room);
            self.buf.extend_from_slice(&self.scratch[..n]);
        }
        self.scratch.clear();
        Ok(())
    }
}

impl FetchSink for BodySink {
    fn fetch(&mut self, fetch: Fetch) -> std::io::Result<()> {
        // Small bodies arrive inside the FETCH response instead of as chunks.
        for item in &fetch.items {
            if let FetchItemData::BodySection { data, .. } | FetchItemData::Rfc822(data) = item {
                if let Some(bytes) = data.bytes() {
                    self.seen = true;
                    self.conv.push(bytes, &mut self.scratch);
                    self.conv.finish(&mut self.scratch);
                    self.emit()?;
                } else if matches!(data, BodyValue::Streamed { .. }) {
                    self.seen = true;
                }
            }
        }
        Ok(())
    }
    fn body_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.seen = true;
        self.conv.push(data, &mut self.scratch);
        self.emit()
    }
    fn body_end(&mut self) -> std::io::Result<()> {
        self.conv.finish(&mut self.scratch);
        self.emit()
    }
}

/// EXAMINE (read-only, seed V0040) and fetch one body with BODY.PEEK[] (V0054). `None` when
/// the server has no such UID.
async fn fetch_body(
    s: &mut mailfold_net::Session,
    mailbox: &mailfold_proto::core::Mailbox,
    uid: u32,
    raw: bool,
) -> Result<Option<(Vec<u8>, bool)>, mailfold_net::Error> {
    s.examine(mailbox).await?;
    let set = UidSet::single(uid).map_err(|e| mailfold_net::Error::Config(e.to_string()))?;
    let mut sink = BodySink {
        raw,
        conv: CrlfToLf::new(),
        scratch: Vec::new(),
        buf: Vec::new(),
        truncated: false,
        seen: false,
        closed: false,
    };
    s.uid_fetch(
        &set,
        FetchItems::Items(vec![FetchItem::body_peek()]),
        FetchModifiers::default(),
        &mut sink,
    )
    .await?;
    if !sink.seen {
        return Ok(None);
    }
    // With --raw nothing is kept to cut, so the flag says instead whether the reader closed
    // standard output.
    let cut = if raw { sink.closed } else { sink.truncated };
    Ok(Some((sink.buf, cut)))
}
