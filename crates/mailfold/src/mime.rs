//! Reading messages for people: header summaries for `list`, and decoded headers plus the
//! readable text part for `show`. MIME and RFC 2047 decoding are `mail-parser`'s; this module
//! only chooses what to show.

use mail_parser::{Address, Message, MessageParser, MimeHeaders};
use mailfold_sync::inspect::DateTime;

/// What `list` shows of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The Date header as Unix seconds.
    pub date: Option<i64>,
    /// The first From address, as `Name <addr>` (or the address alone).
    pub from: String,
    /// The Subject, RFC 2047 decoded.
    pub subject: String,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
}

/// Summarises a message header (the bytes up to the blank line suffice).
pub fn summarize(head: &[u8]) -> Summary {
    let Some(msg) = MessageParser::default().parse_headers(head) else {
        return Summary::default();
    };
    Summary {
        date: msg.date().map(|d| d.to_timestamp()),
        from: msg.from().map(format_address).unwrap_or_default(),
        subject: msg.subject().unwrap_or_default().to_string(),
        message_id: msg.message_id().map(str::to_string),
    }
}

/// `Name <addr>, …` for an address header.
pub fn format_address(a: &Address<'_>) -> String {
    a.iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(ad)) if !n.is_empty() => format!("{n} <{ad}>"),
            (_, Some(ad)) => ad.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A message decoded for reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Decoded header fields shown to the reader, in a fixed order.
    pub headers: Vec<(String, String)>,
    /// The readable text (plain text preferred; HTML with `prefer_html` or when alone).
    pub text: String,
    /// Which part the text came from: `text/plain`, `text/html`, or `none`.
    pub text_type: String,
    /// Attachments: file name (or content type) and size in bytes.
    pub attachments: Vec<(String, usize)>,
}

/// Decodes a whole message for `show`.
pub fn render(raw: &[u8], prefer_html: bool) -> Rendered {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Rendered {
            text: String::from_utf8_lossy(raw).into_owned(),
            text_type: "none".into(),
            ..Rendered::default()
        };
    };
    let mut headers = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            headers.push((k.to_string(), v));
        }
    };
    push("Date", msg.date().map(|d| d.to_rfc822()));
    push("From", msg.from().map(format_address));
    push("To", msg.to().map(format_address));
    push("Cc", msg.cc().map(format_address));
    push("Reply-To", msg.reply_to().map(format_address));
    push("Subject", msg.subject().map(str::to_string));
    push("Message-ID", msg.message_id().map(|m| format!("<{m}>")));
    let (text, text_type) = readable_text(&msg, prefer_html);
    let attachments = msg
        .attachments()
        .map(|p| {
            let name = p
                .attachment_name()
                .map(str::to_string)
                .or_else(|| {
                    p.content_type().map(|ct| match ct.subtype() {
                        Some(s) => format!("{}/{s}", ct.ctype()),
                        None => ct.ctype().to_string(),
                    })
                })
                .unwrap_or_else(|| "attachment".into());
            (name, p.contents().len())
        })
        .collect();
    Rendered {
        headers,
        text,
        text_type,
        attachments,
    }
}

fn readable_text(msg: &Message<'_>, prefer_html: bool) -> (String, String) {
    let plain = msg.text_bodies().find(|p| p.is_text() && !p.is_text_html());
    let html = msg.html_bodies().find(|p| p.is_text_html());
    let pick = if prefer_html {
        html.map(|p| (p, "text/html"))
            .or(plain.map(|p| (p, "text/plain")))
    } else {
        plain
            .map(|p| (p, "text/plain"))
            .or(html.map(|p| (p, "text/html")))
    };
    match pick {
        Some((p, t)) => (p.text_contents().unwrap_or_default().to_string(), t.into()),
        None => (String::new(), "none".into()),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM` in UTC, so output does not depend on a time-zone
/// database; the seconds themselves for a year outside 0–65535.
pub fn format_unix(t: i64) -> String {
    match DateTime::from_unix_utc(t) {
        Some(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            d.year, d.month, d.day, d.hour, d.minute
        ),
        None => t.to_string(),
    }
}

/// Unix seconds as RFC 3339 in UTC, for `--json`; the seconds themselves for a year outside
/// 0–65535.
pub fn rfc3339(t: i64) -> String {
    match DateTime::from_unix_utc(t) {
        Some(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year, d.month, d.day, d.hour, d.minute, d.second
        ),
        None => t.to_string(),
    }
}

/// Days since 1970-01-01 of a calendar date, for search dates.
pub fn days_from_civil(year: u16, month: u8, day: u8) -> i64 {
    DateTime {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        offset_minutes: 0,
    }
    .unix_timestamp()
    .div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_unix(0), "1970-01-01 00:00");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(days_from_civil(2023, 11, 14) * 86_400, 1_699_920_000);
        assert_eq!(
            days_from_civil(2024, 2, 29) - days_from_civil(2024, 2, 28),
            1
        );
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(format_unix(-1), "1969-12-31 23:59");
    }

    #[test]
    fn rfc2047_subject_is_decoded() {
        let s = summarize(
            b"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\n\n",
        );
        assert_eq!(s.subject, "Grüße");
        assert_eq!(s.from, "Jürgen <j@example.org>");
    }

    #[test]
    fn plain_part_is_preferred_in_multipart_alternative() {
        let raw = b"Subject: alt\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nplain words\n--b\nContent-Type: text/html\n\n<p>html words</p>\n--b--\n";
        let r = render(raw, false);
        assert!(r.text.contains("plain words"), "{r:?}");
        assert_eq!(r.text_type, "text/plain");
        let r = render(raw, true);
        assert!(r.text.contains("html words"), "{r:?}");
    }
}
