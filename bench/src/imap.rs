//! Just enough IMAP (RFC 3501) over a plain `TcpStream` for the benchmark helpers: LOGIN,
//! commands with streamed literals, APPEND. Responses are split into line fragments and
//! literals by the `{n}` at the end of a line and nothing else is parsed, which is what makes
//! the limit client as fast as the server can send.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The longest line fragment accepted; longer means the peer is not the server we started.
const MAX_LINE: usize = 4 << 20;
/// Read buffer: large enough that a literal is copied in few, large writes.
const BUFFER: usize = 256 << 10;

/// What a command's responses contain, handed to the caller one piece at a time.
pub enum Item<'a> {
    /// A line fragment without its CRLF: a whole untagged response, or the text before or
    /// after a literal. `start` says whether it begins a new response.
    Line {
        /// The fragment.
        text: &'a [u8],
        /// True at the start of a response.
        start: bool,
    },
    /// A literal of `len` bytes; the callback may read any part of it from `data` (the rest is
    /// skipped).
    Literal {
        /// Announced length.
        len: u64,
        /// The literal's bytes, buffered so that a consumer can write them in large blocks.
        data: &'a mut dyn BufRead,
    },
}

/// One connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    line: Vec<u8>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The `n` of a line ending in `{n}` or `{n+}` (the CRLF already removed).
fn literal_len(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Quotes a string for a command (RFC 3501 section 4.3).
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

impl Conn {
    /// Connects and reads the greeting.
    pub fn connect(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        let writer = stream.try_clone()?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(BUFFER, stream),
            writer,
            next_tag: 1,
            line: Vec::with_capacity(1024),
        };
        conn.read_line()?;
        if !conn.line.starts_with(b"* OK") {
            return Err(bad(format!(
                "unexpected greeting {:?}",
                String::from_utf8_lossy(&conn.line)
            )));
        }
        Ok(conn)
    }

    /// LOGIN with a quoted user name and password.
    pub fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        let cmd = format!("LOGIN {} {}", quote(user), quote(password));
        self.run(&cmd, |_| Ok(()))
    }

    /// Reads one line into `self.line`, without CRLF.
    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&buf[..i]);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.reader.consume(n);
                }
            }
            if self.line.len() > MAX_LINE {
                return Err(bad(format!("response line longer than {MAX_LINE} bytes")));
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(())
    }

    /// Sends `command` with a fresh tag and hands every response to `on_item` until the
    /// tagged completion; an error unless that is OK.
    pub fn run<F>(&mut self, command: &str, on_item: F) -> io::Result<()>
    where
        F: FnMut(Item<'_>) -> io::Result<()>,
    {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())?;
        self.complete(&tag, on_item)
    }

    fn complete<F>(&mut self, tag: &str, mut on_item: F) -> io::Result<()>
    where
        F: FnMut(Item<'_>) -> io::Result<()>,
    {
        let mut start = true;
        loop {
            self.read_line()?;
            if start
                && self.line.starts_with(tag.as_bytes())
                && self.line.get(tag.len()) == Some(&b' ')
            {
                let status = &self.line[tag.len() + 1..];
                if status.starts_with(b"OK") {
                    return Ok(());
                }
                return Err(bad(format!(
                    "server refused: {}",
                    String::from_utf8_lossy(&self.line)
                )));
            }
            let literal = literal_len(&self.line);
            on_item(Item::Line {
                text: &self.line,
                start,
            })?;
            match literal {
                Some(len) => {
                    let mut data = (&mut self.reader).take(len);
                    on_item(Item::Literal {
                        len,
                        data: &mut data,
                    })?;
                    // Whatever the callback left unread is still part of the literal.
                    io::copy(&mut data, &mut io::sink())?;
                    if data.limit() > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside a literal",
                        ));
                    }
                    start = false;
                }
                None => start = true,
            }
        }
    }

    /// APPEND one message (CRLF line endings) with a synchronizing literal (RFC 3501 section
    /// 6.3.11): wait for the continuation before sending the bytes.
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> io::Result<()> {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        let cmd = format!(
            "{tag} APPEND {} ({flags}) {{{}}}\r\n",
            quote(mailbox),
            message.len()
        );
        self.writer.write_all(cmd.as_bytes())?;
        loop {
            self.read_line()?;
            if self.line.starts_with(b"+") {
                break;
            }
            if self.line.starts_with(tag.as_bytes()) {
                return Err(bad(format!(
                    "APPEND refused: {}",
                    String::from_utf8_lossy(&self.line)
                )));
            }
        }
        self.writer.write_all(message)?;
        self.writer.write_all(b"\r\n")?;
        self.complete(&tag, |_| Ok(()))
    }

    /// The folders LIST "" "*" names, in server order.
    pub fn list(&mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pending_literal = false;
        self.run("LIST \"\" \"*\"", |item| {
            match item {
                Item::Line { text, start } if start && text.starts_with(b"* LIST ") => {
                    if literal_len(text).is_some() {
                        pending_literal = true;
                    } else if let Some(name) = last_astring(text) {
                        names.push(name);
                    }
                }
                Item::Literal { data, .. } if pending_literal => {
                    pending_literal = false;
                    let mut name = Vec::new();
                    data.take(4096).read_to_end(&mut name)?;
                    names.push(String::from_utf8_lossy(&name).into_owned());
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(names)
    }

    /// SELECT (or EXAMINE when `read_only`) and return EXISTS.
    pub fn select(&mut self, mailbox: &str, read_only: bool) -> io::Result<u64> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let mut exists = 0;
        self.run(&format!("{verb} {}", quote(mailbox)), |item| {
            if let Item::Line { text, start: true } = item {
                let s = String::from_utf8_lossy(text);
                let mut parts = s.split(' ');
                if let (Some("*"), Some(n), Some("EXISTS")) =
                    (parts.next(), parts.next(), parts.next())
                {
                    exists = n.parse().unwrap_or(0);
                }
            }
            Ok(())
        })?;
        Ok(exists)
    }

    /// Sends LOGOUT; errors are of no interest at that point.
    pub fn logout(mut self) {
        let _ = self.run("LOGOUT", |_| Ok(()));
    }
}

/// The mailbox name at the end of a LIST line: a quoted string or an atom.
fn last_astring(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if let Some(body) = text.strip_suffix('"') {
        // Walk back to the opening quote, skipping escaped quotes.
        let bytes = body.as_bytes();
        let mut i = bytes.len();
        while i > 0 {
            i -= 1;
            if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
                let inner = &body[i + 1..];
                return Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"));
            }
        }
        None
    } else {
        text.rsplit(' ').next().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_sizes() {
        assert_eq!(literal_len(b"* 1 FETCH (UID 1 BODY[] {1234}"), Some(1234));
        assert_eq!(literal_len(b"a APPEND x {5+}"), Some(5));
        assert_eq!(literal_len(b"* OK {x}"), None);
        assert_eq!(literal_len(b"* OK }"), None);
        assert_eq!(literal_len(b"* OK {99999999999999999999}"), None);
    }

    #[test]
    fn list_names() {
        assert_eq!(
            last_astring(b"* LIST (\\HasNoChildren) \".\" INBOX").as_deref(),
            Some("INBOX")
        );
        assert_eq!(
            last_astring(b"* LIST () \".\" \"a \\\"b\\\"\"").as_deref(),
            Some("a \"b\"")
        );
    }
}
