//! A minimal blocking IMAP client for setting up a private Cyrus: log in over implicit TLS,
//! run commands, APPEND a message. It is harness plumbing, not the client under test, so it
//! knows only what setup needs: tagged completion, continuation requests, and the
//! APPENDUID code (RFC 4315 section 3).
//!
//! Every read has a timeout and every line a size cap, so a misbehaving server fails the
//! setup instead of hanging it or filling memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// Longest response line accepted (Cyrus' longest setup answer is its CAPABILITY list).
const MAX_LINE: usize = 1 << 20;
/// Bound on connecting, and on each read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// How a command ended: its tagged status and the untagged lines before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Every line received for the command, the tagged one last, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// The tagged line.
    fn tagged(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }

    /// Whether the tagged status is OK.
    pub fn is_ok(&self) -> bool {
        self.tagged().split(' ').nth(1) == Some("OK")
    }

    /// `Ok(self)` for a tagged OK, otherwise the tagged line as the error.
    pub fn ok(self) -> Result<Reply, String> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(self.tagged().to_string())
        }
    }

    /// The UID from an `[APPENDUID validity uid]` code in the tagged line, if any.
    pub fn append_uid(&self) -> Option<u32> {
        let tagged = self.tagged();
        let start = tagged.find("[APPENDUID ")? + "[APPENDUID ".len();
        let rest = &tagged[start..];
        let end = rest.find(']')?;
        rest[..end].split(' ').nth(1)?.parse().ok()
    }
}

/// A logged-in (or about to log in) connection over implicit TLS.
pub(crate) struct Client {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
    next_tag: u32,
}

impl Client {
    /// Connects to the implicit-TLS listener, verifying the certificate for 127.0.0.1
    /// against `config`'s roots, and reads the greeting.
    pub fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Client, String> {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| format!("socket timeouts: {e}"))?;
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        let mut client = Client {
            stream: rustls::StreamOwned::new(conn, tcp),
            buf: Vec::new(),
            next_tag: 0,
        };
        let greeting = client
            .line()
            .map_err(|e| format!("greeting from {addr}: {e}"))?;
        if !greeting.starts_with("* OK") {
            return Err(format!("unexpected greeting: {greeting}"));
        }
        Ok(client)
    }

    /// Connects and logs in with the LOGIN command.
    pub fn login(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        user: &str,
        password: &str,
    ) -> Result<Client, String> {
        let mut client = Client::connect(addr, config)?;
        let command = format!("LOGIN {} {}", quote(user)?, quote(password)?);
        client
            .command(&command)?
            .ok()
            .map_err(|e| format!("LOGIN as {user}: {e}"))?;
        Ok(client)
    }

    /// Sends one command line (without tag and CRLF) and reads its reply.
    pub fn command(&mut self, text: &str) -> Result<Reply, String> {
        let tag = self.tag();
        self.write(format!("{tag} {text}\r\n").as_bytes())?;
        let verb = text.split(' ').next().unwrap_or_default();
        self.until_tagged(&tag).map_err(|e| format!("{verb}: {e}"))
    }

    /// APPENDs `message` to `mailbox` (quoted here), waiting for
    /// the continuation request rather than relying on LITERAL+, so that a server that refuses
    /// the command early is heard.
    pub fn append(&mut self, mailbox: &str, message: &[u8]) -> Result<Reply, String> {
        let tag = self.tag();
        self.write(
            format!("{tag} APPEND {} {{{}}}\r\n", quote(mailbox)?, message.len()).as_bytes(),
        )?;
        let first = self.line()?;
        if !first.starts_with('+') {
            // Refused before the literal (e.g. the mailbox does not exist).
            if first.starts_with(&format!("{tag} ")) {
                return Ok(Reply { lines: vec![first] });
            }
            let mut reply = self.until_tagged(&tag)?;
            reply.lines.insert(0, first);
            return Ok(reply);
        }
        self.write(message)?;
        self.write(b"\r\n")?;
        self.until_tagged(&tag)
    }

    /// Sends LOGOUT and reads its reply; errors are ignored (the server may close first).
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("s{}", self.next_tag)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))
    }

    fn until_tagged(&mut self, tag: &str) -> Result<Reply, String> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            let done = line.starts_with(&prefix);
            lines.push(line);
            if done {
                return Ok(Reply { lines });
            }
        }
    }

    /// One response line without CRLF. Literals in responses are not interpreted: setup
    /// commands do not fetch message data.
    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("response line longer than {MAX_LINE} bytes"));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "connection closed; partial line: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An IMAP quoted string (RFC 3501 section 4.3). Names that need a literal (CR, LF, NUL or
/// 8-bit bytes) are refused: pass non-ASCII mailbox names in modified UTF-7.
pub(crate) fn quote(text: &str) -> Result<String, String> {
    if let Some(c) = text
        .chars()
        .find(|&c| !c.is_ascii() || c == '\r' || c == '\n' || c == '\0')
    {
        return Err(format!(
            "{text:?}: {c:?} cannot be sent as a quoted string (use modified UTF-7 for names)"
        ));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_refuses_what_needs_a_literal() {
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("caf\u{e9}").is_err());
        assert!(quote("a\r\nb").is_err());
    }

    #[test]
    fn append_uid_is_read_from_the_tagged_line() {
        let reply = Reply {
            lines: vec!["s3 OK [APPENDUID 1700000000 42] Completed".into()],
        };
        assert!(reply.is_ok());
        assert_eq!(reply.append_uid(), Some(42));
        let no = Reply {
            lines: vec!["s3 NO Message contains invalid header".into()],
        };
        assert!(!no.is_ok());
        assert_eq!(no.append_uid(), None);
        assert_eq!(
            no.ok().unwrap_err(),
            "s3 NO Message contains invalid header"
        );
    }
}
