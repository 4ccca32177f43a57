//! The one scrubber for secrets in everything mailfold prints.
//!
//! Secrets are kept out of output by construction: they live in `Secret`, whose `Debug`
//! redacts, and the protocol engine never logs the arguments of LOGIN or AUTHENTICATE. But a
//! hostile or careless server can echo what it received (`NO [AUTHENTICATIONFAILED] wrong:
//! <password>`, or the base64 PLAIN blob), and that text is shown to the user in error lines,
//! in `--json` documents and in log records, some of which come from crates mailfold does not
//! control. So each of those three ways out passes through here:
//!
//! - log records: the logger's writer, [`ScrubbedStderr`];
//! - terminal text from elsewhere (server texts, errors): `term::line` and `term::block`,
//!   which every printed foreign string already goes through for control characters;
//! - JSON documents: [`scrub_json`], on every string of the document before it is written.
//!
//! Each secret the process obtained is [`register`]ed when it is read (the output of a
//! password or token command), with the forms in which it leaves the process or can come
//! back: as it is, quoted as an IMAP string (the LOGIN command), base64 alone (the SASL LOGIN
//! mechanism), and inside any base64 text at each of the three byte alignments. Once the
//! user name and server are known, [`register_login`] adds the exact messages of PLAIN,
//! LOGIN, XOAUTH2 and OAUTHBEARER, raw and in base64, so that a whole echoed blob is
//! replaced, user name included.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Mutex;

/// Secrets shorter than this are not scrubbed: a two-letter password would blank out
/// every occurrence of two common letters and make the output unreadable, and such a
/// password offers no protection to lose.
const MIN_LEN: usize = 4;
/// Shortest base64 run scrubbed as part of a longer encoding (see [`base64_cores`]): 36
/// bits, so that a short secret's run does not turn up by chance in other base64 text.
const MIN_CORE: usize = 6;
/// At most this many forms are remembered (a few accounts, about a dozen forms each).
const MAX_FORMS: usize = 512;

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// The registered forms, longest first (so that a whole SASL blob is replaced before the
/// secret inside it).
static FORMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn add(forms: &mut Vec<String>, form: String) {
    if form.len() >= MIN_LEN && !forms.contains(&form) && forms.len() < MAX_FORMS {
        forms.push(form);
    }
}

fn store(new: Vec<String>) {
    if let Ok(mut v) = FORMS.lock() {
        for f in new {
            add(&mut v, f);
        }
        v.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }
}

/// Remembers a secret so that no output shows it, in any of the forms it is sent in.
pub fn register(secret: &str) {
    if secret.len() < MIN_LEN {
        return;
    }
    let mut forms = vec![
        secret.to_owned(),
        imap_quoted(secret),
        base64(secret.as_bytes()),
    ];
    forms.extend(base64_cores(secret.as_bytes()));
    store(forms);
}

/// Remembers the exact SASL messages that carry `secret` for `user` on `host:port` (PLAIN,
/// LOGIN, XOAUTH2, OAUTHBEARER), raw and in base64, built by the mechanisms that send them.
/// Whichever mechanism the secret does not fit (a password is no bearer token) is skipped.
pub fn register_login(user: &str, secret: &str, host: &str, port: u16) {
    register(secret);
    if secret.len() < MIN_LEN {
        return;
    }
    let mut forms = Vec::new();
    for msg in mailfold_sync::inspect::login_messages(user, secret, host, port) {
        forms.push(base64(&msg));
        forms.push(String::from_utf8_lossy(&msg).into_owned());
    }
    store(forms);
}

/// `text` with every registered form of every secret replaced by `<redacted>`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(v) = FORMS.lock() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for s in v.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    out
}

/// A JSON document with every string in it (object keys included) scrubbed. Done on the
/// values rather than on the encoded text, so that a secret that JSON escapes (a quote, a
/// backslash) is still found and a replacement can never break the document's syntax.
pub fn scrub_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(match scrub(&s) {
            Cow::Borrowed(_) => s,
            Cow::Owned(t) => t,
        }),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub_json).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (scrub(&k).into_owned(), scrub_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The secret as an IMAP quoted string's contents (RFC 3501 4.3), as the LOGIN command
/// sends it when it is not a literal.
fn imap_quoted(secret: &str) -> String {
    secret.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Standard base64 with padding (RFC 4648 4), as SASL exchanges use it in IMAP.
fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The runs of base64 characters that any encoding of a text containing `secret` must
/// contain, one per alignment of the secret on the 3-byte groups: the characters made only
/// of the secret's bits. They catch the secret inside SASL messages whose other fields are
/// not known here (an authorization identity, a server's echo of its own making).
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for k in 0..3usize {
        let mut data = vec![0u8; k];
        data.extend_from_slice(secret);
        let enc = base64(&data);
        // Character i holds bits 6i..6i+6 of the data; the secret's bits are 8k..8(k+n).
        let first = (8 * k).div_ceil(6);
        let end = 8 * (k + secret.len()) / 6;
        if end >= first + MIN_CORE {
            cores.push(enc[first..end].to_string());
        }
    }
    cores
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

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn the_secret_is_found_inside_any_base64_text() {
        let secret = "Kq7!quote\"and\\slash";
        register(secret);
        for prefix in [
            "",
            "a",
            "ab",
            "abc",
            "\0someone\0",
            "user=x\x01auth=Bearer ",
        ] {
            for suffix in ["", "\x01\x01", "z"] {
                let enc = base64(format!("{prefix}{secret}{suffix}").as_bytes());
                let shown = scrub(&enc);
                assert!(shown.contains(REDACTED), "{prefix:?}: {enc} -> {shown}");
                // What is left around the replacement cannot hold a whole secret byte run.
                assert!(shown.len() < enc.len(), "{enc}");
            }
        }
        assert_eq!(
            scrub("LOGIN u \"Kq7!quote\\\"and\\\\slash\""),
            "LOGIN u \"<redacted>\""
        );
    }

    #[test]
    fn whole_sasl_messages_are_replaced() {
        register_login(
            "someone@example.org",
            "T0ken-or-password",
            "imap.example.org",
            993,
        );
        let plain = base64(b"\0someone@example.org\0T0ken-or-password");
        assert_eq!(scrub(&format!("echo: {plain} !")), "echo: <redacted> !");
        let xoauth2 = base64(b"user=someone@example.org\x01auth=Bearer T0ken-or-password\x01\x01");
        assert_eq!(scrub(&xoauth2), REDACTED);
        let login = base64(b"T0ken-or-password");
        assert_eq!(scrub(&login), REDACTED);
        let json = scrub_json(serde_json::json!({
            "error": "NO [AUTHENTICATIONFAILED] wrong: T0ken-or-password",
            "list": [plain],
        }));
        assert_eq!(
            json,
            serde_json::json!({
                "error": "NO [AUTHENTICATIONFAILED] wrong: <redacted>",
                "list": ["<redacted>"],
            })
        );
    }
}
