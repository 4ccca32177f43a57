//! The last line of defence for secrets in log output.
//!
//! Secrets are kept out of logs by construction: they live in `Secret`, whose `Debug`
//! redacts, and the protocol engine never logs the arguments of LOGIN or AUTHENTICATE. But
//! the log also carries records from crates mailfold does not control (rustls and others log
//! through the `log` crate, bridged into `tracing` by `main.rs`), so every line written to
//! stderr by the logger goes through [`scrub`] first: each secret the process obtained
//! ([`register`], called when a password or token command's output is read) is replaced by
//! `<redacted>`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Mutex;

/// Secrets shorter than this are not scrubbed: a two-letter password would blank out
/// every occurrence of two common letters and make the log unreadable, and such a password
/// offers no protection to lose.
const MIN_LEN: usize = 4;
/// At most this many secrets are remembered (one process handles a few accounts).
const MAX_SECRETS: usize = 32;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a secret so that log output never shows it.
pub fn register(secret: &str) {
    if secret.len() < MIN_LEN {
        return;
    }
    if let Ok(mut v) = SECRETS.lock() {
        if !v.iter().any(|s| s == secret) && v.len() < MAX_SECRETS {
            v.push(secret.to_owned());
        }
    }
}

/// `text` with every registered secret replaced by `<redacted>`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(v) = SECRETS.lock() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for s in v.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), "<redacted>"));
        }
    }
    out
}

/// The logger's writer: stderr, scrubbed. The `fmt` subscriber formats each event into one
/// buffer and writes it with one call, so a secret is never split across two writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed_short_ones_ignored() {
        register("hunter2-long-secret");
        register("ab");
        assert_eq!(
            scrub("PASS hunter2-long-secret and hunter2-long-secret"),
            "PASS <redacted> and <redacted>"
        );
        assert_eq!(scrub("about ab"), "about ab");
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
    }
}
