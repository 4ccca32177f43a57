//! The deterministic mail corpus: message text from (seed, index) alone, and a Maildir++ tree
//! written straight to disk for Dovecot to index with `doveadm force-resync` (far faster than
//! APPEND for 100,000 messages).
//!
//! The "mixed" mix: mostly 2–20 KB text/plain and multipart/alternative, about 10% with a
//! 50 KB–2 MB base64 attachment, RFC 2047 encoded words in From and Subject, and flags in the
//! proportions a read-mostly mailbox has. The "small" mix leaves out the attachments; the
//! "tiny" mix also shortens the text (0.5–3 KB) so that a million messages fit on one disk
//! twice (the server's copy and one mirror).

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crate::rng::Rng;

/// Which kinds of message a corpus holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Text and alternative, about 10% with attachments.
    Mixed,
    /// Text and alternative only, 2–20 KB.
    Small,
    /// Text and alternative only, 0.5–3 KB of text (about 1.5–4.5 KB with the header).
    Tiny,
}

impl Mix {
    /// Parses `mixed` or `small`.
    pub fn parse(s: &str) -> Option<Mix> {
        match s {
            "mixed" => Some(Mix::Mixed),
            "small" => Some(Mix::Small),
            "tiny" => Some(Mix::Tiny),
            _ => None,
        }
    }
}

/// One generated message: LF line endings (the Maildir convention), its Maildir flag letters
/// (sorted, as the Maildir spec requires) and its date.
#[derive(Debug)]
pub struct Message {
    /// The message, LF line endings.
    pub bytes: Vec<u8>,
    /// Maildir info flags, e.g. `"RS"`.
    pub flags: String,
    /// Seconds since the epoch, also used as the file's mtime (Dovecot's INTERNALDATE).
    pub time: u64,
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "meeting",
    "release",
    "server",
    "folder",
    "message",
    "report",
    "budget",
    "quarter",
    "deadline",
    "review",
    "patch",
    "merge",
    "schedule",
    "invoice",
    "customer",
    "feedback",
    "draft",
    "attached",
    "please",
    "thanks",
    "regards",
    "tomorrow",
    "project",
    "update",
    "question",
    "answer",
    "kernel",
    "backup",
    "network",
    "latency",
    "throughput",
    "benchmark",
    "mailbox",
    "synchronisation",
];

/// Non-ASCII phrases, so that RFC 2047 encoded words carry real UTF-8 and Latin-1 text.
const PHRASES: &[&str] = &[
    "Grüße aus München",
    "Réunion de l'équipe à 14 h",
    "Ça avance, très bien",
    "Año nuevo, señales nuevas",
    "Привет из Москвы",
    "日本語のメール",
    "Zażółć gęślą jaźń",
    "Ελληνικά γράμματα",
    "Smörgåsbord för alla",
];

const NAMES: &[&str] = &[
    "Alice Martin",
    "Bob Stone",
    "Carla Nunes",
    "Dmitri Ivanov",
    "Eve Laurent",
    "Farid Haddad",
    "Grace Kim",
    "Hiro Tanaka",
    "Ines Duarte",
    "Jonas Berg",
];
const UTF8_NAMES: &[&str] = &[
    "Jürgen Müller",
    "Zoë Brontë",
    "Łukasz Żółw",
    "Søren Ærø",
    "José Peña",
    "Ольга Петрова",
    "山田太郎",
];

/// Generates message `index` of the corpus with this seed and mix.
pub fn message(seed: u64, index: u64, mix: Mix) -> Message {
    let mut rng = Rng::derive(seed, index);
    // 2015-01-01 plus about an hour per message, jittered: dates increase with the index, as
    // in a real mailbox.
    let time = 1_420_070_400 + index * 3_600 + rng.range(0, 3_599);
    let kind = rng.unit();
    let attach = mix == Mix::Mixed && kind < 0.10;
    let text_target = match mix {
        Mix::Tiny => rng.range(500, 3_000),
        Mix::Mixed | Mix::Small => rng.range(2_000, 20_000),
    } as usize;
    let attachment = if attach {
        // Log-uniform between 50 KB and 2 MB: many small attachments, a few large ones.
        let lo = (50_000f64).ln();
        let hi = (2_000_000f64).ln();
        Some((lo + rng.unit() * (hi - lo)).exp() as usize)
    } else {
        None
    };
    let alternative = !attach && kind >= 0.55;
    let bytes = render(
        &mut rng,
        seed,
        index,
        time,
        text_target,
        alternative,
        attachment,
    );
    Message {
        bytes,
        flags: flags(&mut rng),
        time,
    }
}

/// One message of about `total` bytes: a short text part and one base64 attachment, for the
/// single-large-message memory check.
pub fn big_message(seed: u64, total: usize) -> Message {
    let mut rng = Rng::derive(seed, u64::MAX);
    // base64 grows the data by 4/3 plus one LF per 76 characters.
    let raw = total / 77 * 57;
    let bytes = render(
        &mut rng,
        seed,
        u64::MAX,
        1_700_000_000,
        2_000,
        false,
        Some(raw),
    );
    Message {
        bytes,
        flags: "S".into(),
        time: 1_700_000_000,
    }
}

/// A realistic flag mix: three quarters read, some answered or forwarded, some flagged.
fn flags(rng: &mut Rng) -> String {
    let seen = rng.chance(0.75);
    let mut f = String::new();
    if rng.chance(0.08) {
        f.push('F');
    }
    if seen && rng.chance(0.03) {
        f.push('P');
    }
    if seen && rng.chance(0.12) {
        f.push('R');
    }
    if seen {
        f.push('S');
    }
    f
}

fn render(
    rng: &mut Rng,
    seed: u64,
    index: u64,
    time: u64,
    text_target: usize,
    alternative: bool,
    attachment: Option<usize>,
) -> Vec<u8> {
    let mut out = String::with_capacity(text_target + 1_024);
    let date = rfc5322_date(time);
    let from_addr = format!("sender{}@example.net", rng.range(1, 400));
    let from = display_name(rng);
    let subject = subject(rng);
    let _ = write!(
        out,
        "Return-Path: <{from_addr}>\n\
         Delivered-To: bench@example.org\n\
         Received: from mx{mx}.example.net (mx{mx}.example.net [192.0.2.{mx}])\n\
         \tby mail.example.org with ESMTPS id {id:016x}\n\
         \tfor <bench@example.org>; {date}\n\
         Date: {date}\n\
         From: {from} <{from_addr}>\n\
         To: Bench User <bench@example.org>\n\
         Subject: {subject}\n\
         Message-ID: <{seed:x}.{index}@bench.mailfold.invalid>\n\
         MIME-Version: 1.0\n",
        mx = rng.range(1, 254),
        id = rng.next_u64(),
    );
    let boundary = format!("=_mfbench_{:016x}", rng.next_u64());
    if let Some(size) = attachment {
        let _ = write!(
            out,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n\
             This is a multi-part message in MIME format.\n\n--{boundary}\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        );
        text(rng, &mut out, text_target.min(6_000));
        let _ = write!(
            out,
            "\n--{boundary}\nContent-Type: application/octet-stream; name=\"report-{index}.bin\"\n\
             Content-Disposition: attachment; filename=\"report-{index}.bin\"\n\
             Content-Transfer-Encoding: base64\n\n"
        );
        let mut bytes = out.into_bytes();
        base64_random(rng, size, &mut bytes);
        bytes.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
        return bytes;
    }
    if alternative {
        let _ = write!(
            out,
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\n\n--{boundary}\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        );
        let start = out.len();
        text(rng, &mut out, text_target * 2 / 5);
        let plain = out[start..].to_string();
        let _ = write!(
            out,
            "\n--{boundary}\nContent-Type: text/html; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\n<html><body>\n"
        );
        for para in plain.split("\n\n").filter(|p| !p.is_empty()) {
            let _ = writeln!(out, "<p>{}</p>", para.trim_end());
        }
        let _ = write!(out, "</body></html>\n\n--{boundary}--\n");
    } else {
        out.push_str(
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
        );
        text(rng, &mut out, text_target);
    }
    out.into_bytes()
}

/// Paragraphs of words wrapped at 72 columns until `target` bytes were added.
fn text(rng: &mut Rng, out: &mut String, target: usize) {
    let end = out.len() + target;
    while out.len() < end {
        let lines = rng.range(2, 8);
        for _ in 0..lines {
            let mut width = 0;
            while width < 66 {
                let w = WORDS[rng.index(WORDS.len())];
                if width > 0 {
                    out.push(' ');
                    width += 1;
                }
                out.push_str(w);
                width += w.len();
            }
            out.push('\n');
        }
        if rng.chance(0.1) {
            out.push_str(PHRASES[rng.index(PHRASES.len())]);
            out.push('\n');
        }
        out.push('\n');
    }
}

fn display_name(rng: &mut Rng) -> String {
    if rng.chance(0.3) {
        let name = UTF8_NAMES[rng.index(UTF8_NAMES.len())];
        encoded_words(name, rng.chance(0.5))
    } else {
        format!("\"{}\"", NAMES[rng.index(NAMES.len())])
    }
}

fn subject(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.chance(0.2) {
        s.push_str("Re: ");
    }
    let words = rng.range(3, 9);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.index(WORDS.len())]);
    }
    if rng.chance(0.3) {
        let phrase = PHRASES[rng.index(PHRASES.len())];
        // RFC 2047 section 2: lines with encoded words are folded, each word at most 75
        // characters; the words are separated by folding white space.
        format!("{s}\n {}", encoded_words(phrase, rng.chance(0.5)))
    } else {
        s
    }
}

/// RFC 2047 encoded words (B or Q encoding, UTF-8), each at most 75 characters, separated by
/// folding white space; a multi-byte character is never split across words (section 5).
fn encoded_words(text: &str, b_encoding: bool) -> String {
    // With the 12 characters of `=?UTF-8?X??=`, 45 bytes make 60 base64 characters and 21
    // bytes make at most 63 Q characters: both within the 75-character limit.
    let max = if b_encoding { 45 } else { 21 };
    let mut words = Vec::new();
    let mut chunk = String::new();
    for ch in text.chars() {
        if chunk.len() + ch.len_utf8() > max {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(ch);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    let encoded: Vec<String> = words
        .iter()
        .map(|w| {
            if b_encoding {
                let mut b = Vec::new();
                base64(w.as_bytes(), &mut b, false);
                format!("=?UTF-8?B?{}?=", String::from_utf8_lossy(&b))
            } else {
                let mut q = String::new();
                for &byte in w.as_bytes() {
                    match byte {
                        b' ' => q.push('_'),
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => q.push(char::from(byte)),
                        _ => {
                            let _ = write!(q, "={byte:02X}");
                        }
                    }
                }
                format!("=?UTF-8?Q?{q}?=")
            }
        })
        .collect();
    encoded.join("\n ")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 section 4), optionally in 76-character lines (RFC 2045 section
/// 6.8).
fn base64(input: &[u8], out: &mut Vec<u8>, wrap: bool) {
    let mut col = 0;
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        });
        col += 4;
        if wrap && col == 76 {
            out.push(b'\n');
            col = 0;
        }
    }
    if wrap && col > 0 {
        out.push(b'\n');
    }
}

/// `size` random bytes (incompressible, like the photos and PDFs real attachments are),
/// base64 encoded in 76-character lines.
fn base64_random(rng: &mut Rng, size: usize, out: &mut Vec<u8>) {
    out.reserve(size / 57 * 77 + 80);
    // Whole 57-byte groups make exactly one 76-character line each, so chunks join cleanly.
    let mut block = [0u8; 57 * 64];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        for word in block[..n].chunks_mut(8) {
            let r = rng.next_u64().to_le_bytes();
            let len = word.len();
            word.copy_from_slice(&r[..len]);
        }
        base64(&block[..n], out, true);
        left -= n;
    }
}

/// RFC 5322 section 3.3 date-time in UTC.
fn rfc5322_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian calendar
/// (the well-known era-based conversion: 400-year eras of 146,097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The Maildir++ directory of a folder: the root for INBOX, `.Name` for the others.
fn folder_dir(root: &Path, folder: &str) -> PathBuf {
    if folder == "INBOX" {
        root.to_path_buf()
    } else {
        root.join(format!(".{folder}"))
    }
}

/// Folder names of a corpus with `count` folders: INBOX, then `Folder02`, `Folder03`, ...
pub fn folder_names(count: usize) -> Vec<String> {
    (1..=count.max(1))
        .map(|i| {
            if i == 1 {
                "INBOX".to_string()
            } else {
                format!("Folder{i:02}")
            }
        })
        .collect()
}

/// Totals of what [`write_maildir`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// Messages written.
    pub messages: u64,
    /// Bytes written (LF line endings).
    pub bytes: u64,
}

/// Writes `messages` messages spread evenly over `folders` folders into the Maildir++ tree at
/// `root` (created). Message indexes start at `first_index`, so two corpora with the same seed
/// but different offsets do not share Message-IDs. Folders are written by one thread per CPU:
/// a message depends only on (seed, index), so the bytes are the same whatever the order, and
/// a million files take minutes instead of a quarter hour.
pub fn write_maildir(
    root: &Path,
    folders: usize,
    messages: u64,
    mix: Mix,
    seed: u64,
    first_index: u64,
) -> io::Result<Written> {
    let names = folder_names(folders);
    let per = messages / names.len() as u64;
    let extra = messages % names.len() as u64;
    let mut jobs = Vec::with_capacity(names.len());
    let mut index = first_index;
    let mut subscriptions = String::new();
    for (i, name) in names.iter().enumerate() {
        let dir = folder_dir(root, name);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        if name != "INBOX" {
            // Marks a Maildir++ subfolder (what Dovecot and Courier create).
            fs::write(dir.join("maildirfolder"), b"")?;
            subscriptions.push_str(name);
            subscriptions.push('\n');
        }
        let count = per + u64::from((i as u64) < extra);
        jobs.push((dir, index, count));
        index += count;
    }
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<io::Result<Written>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(jobs.len()).max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut written = Written::default();
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        let Some((dir, first, count)) = jobs.get(job) else {
                            return Ok(written);
                        };
                        for index in *first..first + count {
                            let m = message(seed, index, mix);
                            store(dir, &m, index)?;
                            written.messages += 1;
                            written.bytes += m.bytes.len() as u64;
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a corpus writer thread panicked")))
            })
            .collect()
    });
    let mut written = Written::default();
    for r in results {
        let w = r?;
        written.messages += w.messages;
        written.bytes += w.bytes;
    }
    fs::write(root.join("subscriptions"), subscriptions)?;
    Ok(written)
}

/// Writes one message into `dir/cur` under a Maildir name carrying its sizes (`S=` physical,
/// `W=` with CRLF line endings, which Dovecot reads instead of scanning the file).
pub fn store(dir: &Path, m: &Message, unique: u64) -> io::Result<()> {
    let lf = m.bytes.iter().filter(|&&b| b == b'\n').count();
    let size = m.bytes.len();
    let name = format!(
        "{}.M{unique}P1.mfbench,S={size},W={}:2,{}",
        m.time,
        size + lf,
        m.flags
    );
    let path = dir.join("cur").join(name);
    let file = fs::File::create(&path)?;
    io::Write::write_all(&mut &file, &m.bytes)?;
    file.set_modified(UNIX_EPOCH + Duration::from_secs(m.time))?;
    Ok(())
}

/// The message with CRLF line endings, as IMAP APPEND wants it (RFC 3501 section 6.3.11).
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_corpus() {
        for i in 0..50 {
            assert_eq!(
                message(9, i, Mix::Mixed).bytes,
                message(9, i, Mix::Mixed).bytes
            );
        }
        assert_ne!(
            message(9, 1, Mix::Mixed).bytes,
            message(10, 1, Mix::Mixed).bytes
        );
    }

    #[test]
    fn sizes_follow_the_mix() {
        let mut attachments = 0;
        for i in 0..2_000 {
            let m = message(1, i, Mix::Mixed);
            let len = m.bytes.len();
            assert!(len >= 2_000, "message {i} has {len} bytes");
            if len > 40_000 {
                attachments += 1;
                assert!(len <= 2_000_000 * 4 / 3 + 60_000);
            }
            let s = message(1, i, Mix::Small);
            assert!(s.bytes.len() < 30_000);
            let t = message(1, i, Mix::Tiny);
            assert!(
                t.bytes.len() < 8_000,
                "tiny message {i} has {} bytes",
                t.bytes.len()
            );
        }
        // About 10% carry an attachment.
        assert!((150..=250).contains(&attachments), "{attachments}");
    }

    #[test]
    fn threaded_writer_writes_every_message_once() {
        let root = std::env::temp_dir().join(format!("mfbench-corpus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let w = write_maildir(&root, 7, 100, Mix::Tiny, 5, 0).unwrap();
        assert_eq!(w.messages, 100);
        let mut files = 0;
        let mut bytes = 0;
        for name in folder_names(7) {
            for entry in fs::read_dir(folder_dir(&root, &name).join("cur")).unwrap() {
                files += 1;
                bytes += entry.unwrap().metadata().unwrap().len();
            }
        }
        assert_eq!((files, bytes), (100, w.bytes));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn headers_are_ascii_with_encoded_words() {
        let mut encoded = 0;
        for i in 0..200 {
            let m = message(3, i, Mix::Small);
            let text = String::from_utf8(m.bytes).unwrap_or_default();
            let (head, _) = text.split_once("\n\n").unwrap_or_default();
            assert!(head.is_ascii(), "message {i} header is not ASCII");
            encoded += usize::from(head.contains("=?UTF-8?"));
            for line in head.lines() {
                assert!(line.len() <= 998);
                for word in line.split(' ').filter(|w| w.starts_with("=?")) {
                    assert!(word.len() <= 75, "{word}");
                }
            }
        }
        assert!(encoded > 50);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 section 10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64(plain.as_bytes(), &mut out, false);
            assert_eq!(out, enc.as_bytes());
        }
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_420_070_400),
            "Thu, 1 Jan 2015 00:00:00 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn big_message_has_the_requested_size() {
        let m = big_message(1, 5_000_000);
        let len = m.bytes.len() as f64;
        assert!((len - 5e6).abs() < 5e4, "{len}");
    }
}
