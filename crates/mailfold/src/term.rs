//! Text for a terminal: what the human output of every command goes through.
//!
//! Subjects, sender names, folder names, message bodies and server texts come from other
//! people. Printed as they are, an escape sequence in a subject could rewrite the screen,
//! retitle the window or fake a line of mailfold's own output, so control characters are
//! replaced before printing (the `--json` output is escaped by the JSON encoder instead).
//! Columns are measured in display cells, not characters: a CJK name takes two cells per
//! character and would otherwise push the rest of its row out of line.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// One line of text: every control character (line breaks included) becomes `?`, and the
/// process's secrets are scrubbed ([`crate::redact`]: a server may echo a password).
pub fn line(s: &str) -> Cow<'_, str> {
    let s = crate::redact::scrub(s);
    if !s.chars().any(char::is_control) {
        return s;
    }
    Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

/// A block of text (a message body): line feeds and tabs stay, other control characters
/// (escape sequences, carriage returns that would overwrite a line, backspaces) become `?`.
/// A CR before LF is dropped, since it is only a line ending. Secrets are scrubbed, as by
/// [`line`].
pub fn block(s: &str) -> Cow<'_, str> {
    let s = crate::redact::scrub(s);
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.chars().any(bad) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        out.push(if bad(c) { '?' } else { c });
    }
    Cow::Owned(out)
}

/// Display width in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` made safe ([`line`]) and cut to at most `max` cells, with `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    let s = line(s);
    if width(&s) <= max {
        return s.into_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        // One cell is kept for the ellipsis.
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// `s` made safe, cut to `cells` and padded with spaces to exactly `cells` cells.
pub fn pad(s: &str, cells: usize) -> String {
    let mut t = fit(s, cells);
    let w = width(&t);
    t.extend(std::iter::repeat_n(' ', cells.saturating_sub(w)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        assert_eq!(line("Hi\x1b]0;owned\x07 there"), "Hi?]0;owned? there");
        assert_eq!(line("a\r\nb"), "a??b");
        assert!(matches!(line("plain"), Cow::Borrowed(_)));
        assert_eq!(
            block("one\r\ntwo\tx\x1b[2J\rthree\n"),
            "one\ntwo\tx?[2J?three\n"
        );
    }

    #[test]
    fn columns_are_counted_in_cells() {
        assert_eq!(width("山田太郎"), 8);
        assert_eq!(pad("山田太郎 <y@example.jp>", 10), "山田太郎 …");
        assert_eq!(width(&pad("山田太郎 <y@example.jp>", 10)), 10);
        assert_eq!(pad("Bob", 5), "Bob  ");
        assert_eq!(fit("Chloé", 5), "Chloé");
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
