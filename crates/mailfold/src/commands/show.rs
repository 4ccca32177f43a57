//! `mailfold show FOLDER ID [--raw]`: one message, decoded for reading, or its bytes.
//!
//! When the mirror holds only the message's header (`download = "headers-only"`, seed
//! V0010), the body is fetched on demand over the sync engine's connection
//! ([`mailfold_sync::changes::read_body`]) with `UID FETCH … BODY.PEEK[]`, which does not set
//! `\Seen` (seed V0054); it is shown, not stored, so the partial copy in the mirror and the
//! sync engine's rule that a partial copy never replaces a full one (V0070) are untouched.
//! Bodies stream: `--raw` copies them to stdout chunk by chunk; decoding keeps at most
//! [`MAX_DECODE`] bytes, since a MIME parser needs the whole message in memory.

use std::io::{Read, Write};

use std::num::NonZeroU32;

use mailfold_store::crlf::CrlfToLf;
use mailfold_sync::changes;
use mailfold_sync::plan::Uid;
use mailfold_sync::{NetRemote, SyncError};
use serde_json::json;

use super::{print_json, Ctx};
use crate::config::Account;
use crate::mime;
use crate::mirror::{id_text, FolderRef, MessageRef, Mirror};
use crate::online;
use crate::term;

/// The most bytes of a message decoded for display; larger ones are cut (use `--raw`).
pub const MAX_DECODE: usize = 32 * 1024 * 1024;

/// Runs the command.
pub fn run(ctx: &Ctx, folder: &str, id: &str, raw: bool, html: bool) -> anyhow::Result<u8> {
    let (name, acct) = ctx.one_account(None)?;
    let mirror = Mirror::open_read(&name, &acct)?;
    let f = mirror.resolve_folder(folder)?;
    let m = mirror.resolve_message(&f, id)?;
    let got = read_message(ctx, &name, &acct, &mirror, &f, &m, raw)?;
    if let Some(n) = &got.note {
        eprintln!("mailfold: {n}");
    }
    if raw {
        // --raw streamed the bytes already when they came from the server.
        if got.source == "local" {
            std::io::stdout()
                .lock()
                .write_all(&got.bytes)
                .map_err(crate::exit::stdout_error)?;
        }
        return Ok(crate::exit::OK);
    }
    let r = mime::render(&got.bytes, html);
    let flags = super::list::flags_of(&m.entry, m.record.as_ref());
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": f.name.to_string(),
            "id": id_text(&m.entry, m.record.as_ref()),
            "uid": m.record.as_ref().map(|r| r.uid.get()),
            "base": m.entry.base.as_str(),
            "flags": flags,
            "headers": r.headers.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "text_type": r.text_type,
            "text": r.text,
            "attachments": r.attachments.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
            "source": got.source,
            "truncated": got.truncated,
            "note": got.note,
        }))?;
    } else {
        print_human(&r, &flags, got.truncated).map_err(crate::exit::stdout_error)?;
    }
    Ok(crate::exit::OK)
}

/// A message as read for showing.
struct Got {
    /// Its bytes, at most [`MAX_DECODE`]; none for `--raw` from the mirror, already printed.
    bytes: Vec<u8>,
    /// Whether `bytes` was cut at [`MAX_DECODE`].
    truncated: bool,
    /// Where it came from: "local" or "server".
    source: &'static str,
    /// Why a header-only copy is all there is to show.
    note: Option<String>,
}

/// Reads message `m`: from the mirror, or from the server when the mirror holds only its
/// header and the server is reachable.
fn read_message(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    mirror: &Mirror,
    f: &FolderRef,
    m: &MessageRef,
    raw: bool,
) -> anyhow::Result<Got> {
    let partial = m.record.as_ref().is_some_and(|r| r.partial);
    if !partial || ctx.offline {
        let note = partial.then(|| "only the header is local (--offline)".to_string());
        let (bytes, truncated) = read_local(&m.entry.path, raw)?;
        return Ok(Got {
            bytes,
            truncated,
            source: "local",
            note,
        });
    }
    // The record exists when `partial` is set, so the UID is known.
    let uid = m
        .record
        .as_ref()
        .map(|r| r.uid)
        .unwrap_or(Uid(NonZeroU32::MIN));
    match online::open_remote(false, name, acct)? {
        Ok(remote) => {
            let (bytes, truncated) = read_from_server(remote, name, acct, mirror, f, uid, raw)?;
            Ok(Got {
                bytes,
                truncated,
                source: "server",
                note: None,
            })
        }
        Err(why) => {
            let note = Some(format!(
                "only the header is local and the server is not reachable ({why})"
            ));
            let (bytes, truncated) = read_local(&m.entry.path, raw)?;
            Ok(Got {
                bytes,
                truncated,
                source: "local",
                note,
            })
        }
    }
}

/// Fetches UID `uid` of folder `f` over `remote` (which it logs out of): streamed to stdout
/// for `--raw`, else at most [`MAX_DECODE`] bytes collected, with whether it was cut.
fn read_from_server(
    mut remote: NetRemote,
    name: &str,
    acct: &Account,
    mirror: &Mirror,
    f: &FolderRef,
    uid: Uid,
    raw: bool,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let spec = crate::account::change_spec(name, acct)?;
    let db = mirror
        .db
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the state database is not open"))?;
    let mut sink = BodySink {
        raw,
        conv: CrlfToLf::new(),
        scratch: Vec::new(),
        buf: Vec::new(),
        truncated: false,
        closed: false,
        failed: None,
    };
    let read = changes::read_body(
        &mut remote,
        &spec,
        &mirror.maildir,
        db,
        &f.path(),
        uid,
        &mut |bytes| sink.chunk(bytes),
    );
    online::close_remote(remote, &acct.host);
    let seen = read.map_err(|e| read_error(&acct.host, e))?;
    if let Some(e) = sink.failed.take() {
        return Err(crate::exit::stdout_error(e));
    }
    if !seen {
        anyhow::bail!("the server no longer has UID {uid} in {}", f.name);
    }
    sink.finish().map_err(crate::exit::stdout_error)?;
    // With --raw nothing is kept to cut, so the flag says instead whether the
    // reader closed standard output.
    if raw && sink.closed {
        return Err(anyhow::Error::new(crate::exit::StdoutClosed));
    }
    Ok((sink.buf, sink.truncated))
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
    closed: bool,
    /// Writing to standard output failed (other than a closed pipe): the rest is dropped.
    failed: Option<std::io::Error>,
}

impl BodySink {
    fn chunk(&mut self, data: &[u8]) {
        self.conv.push(data, &mut self.scratch);
        if let Err(e) = self.emit() {
            self.failed.get_or_insert(e);
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.conv.finish(&mut self.scratch);
        self.emit()
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.raw {
            // A reader that closed the pipe (`show --raw | head`) wants no more: the rest is
            // dropped and the command ends quietly once the fetch is done.
            if !self.closed && self.failed.is_none() {
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

/// A fetch that could not be made: a broken session is a server error (exit status 3) with
/// the server's text (seed V0064), a refusal an ordinary failure with it (V0019).
fn read_error(host: &str, e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Remote(r) if r.is_fatal() => anyhow::Error::new(crate::exit::ServerError(
            crate::exit::with_subject(host, &r.to_string()),
        )),
        SyncError::Remote(r) => anyhow::anyhow!(crate::exit::with_subject(host, &r.to_string())),
        other => anyhow::Error::new(other),
    }
}
