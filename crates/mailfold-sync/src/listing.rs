//! The server's folder list as the sync may use it: only names whose hierarchy delimiter can
//! be used, and one server name per local folder.
//!
//! LIST gives every name its own delimiter (RFC 3501 7.2.2), so one answer can hold `a.b`
//! with delimiter `.` and `a/b` with delimiter `/`: two server folders that split into the
//! same levels, hence the same local folder. Kept both, each command for that folder could
//! go to either name (a message fetched from one and recorded under the other). So
//! [`one_per_folder`] keeps one of them, chosen by the LIST answer alone (not by its order):
//! the name whose delimiter is the account's (the one INBOX has), then a selectable one, then
//! the smaller name in wire bytes; every other is skipped with a warning naming both.
//!
//! A delimiter must be a printable ASCII character other than space (RFC 3501 `QUOTED-CHAR`
//! is 7-bit and never CR or LF; a NUL, a control character or anything outside ASCII would
//! end up inside every nested folder name the sync creates, and cannot be stored as the
//! state database's one-character delimiter). [`screen`] skips a folder listed with any
//! other delimiter, with a warning, on every run: nothing about it reaches the state
//! database. INBOX is the exception, since it exists whatever LIST says (RFC 3501 5.1) and
//! its name has no levels: it is kept with the delimiter the other folders use.

use std::collections::BTreeMap;

use mailfold_proto::core::Mailbox;

use crate::plan::FolderPath;
use crate::remote::ListEntry;

/// Whether a hierarchy delimiter can be used (module docs).
pub fn usable_delimiter(d: char) -> bool {
    d.is_ascii_graphic()
}

/// A wire name as a user reads it in a warning: decoded from modified UTF-7 where it can be,
/// quoted with control characters escaped.
fn shown(wire: &Mailbox) -> String {
    let text = wire
        .to_utf8()
        .unwrap_or_else(|_| String::from_utf8_lossy(wire.as_wire()).into_owned());
    format!("{text:?}")
}

fn shown_delimiter(d: Option<char>) -> String {
    match d {
        Some(c) if usable_delimiter(c) => format!("'{c}'"),
        Some(c) => format!("U+{:04X}", u32::from(c)),
        None => "none".to_owned(),
    }
}

/// The LIST entries whose delimiter can be used; each other one is skipped with a warning
/// (INBOX kept with the others' delimiter). See the module docs.
pub fn screen(entries: Vec<ListEntry>, warnings: &mut Vec<String>) -> Vec<ListEntry> {
    let usable = |e: &ListEntry| e.delimiter.is_none_or(usable_delimiter);
    // The delimiter for an INBOX listed with an unusable one: the first usable delimiter of
    // another entry, in wire order so the choice does not depend on the answer's order.
    let fallback = entries
        .iter()
        .filter(|e| usable(e))
        .filter_map(|e| e.delimiter.map(|d| (e.wire.as_wire(), d)))
        .min()
        .map(|(_, d)| d);
    let mut out = Vec::with_capacity(entries.len());
    for mut e in entries {
        if usable(&e) {
            out.push(e);
        } else if e.wire.is_inbox() {
            warnings.push(format!(
                "the server listed INBOX with the hierarchy delimiter {}, which cannot be \
                 used; INBOX is synced with the delimiter {}",
                shown_delimiter(e.delimiter),
                shown_delimiter(fallback)
            ));
            e.delimiter = fallback;
            out.push(e);
        } else {
            warnings.push(format!(
                "server folder {} skipped: its hierarchy delimiter {} cannot be used",
                shown(&e.wire),
                shown_delimiter(e.delimiter)
            ));
        }
    }
    out
}

/// One server name per local folder path (module docs): the entries kept, in their order.
/// `delimiter` is the account's hierarchy delimiter.
pub fn one_per_folder(
    folders: Vec<(FolderPath, ListEntry)>,
    delimiter: Option<char>,
    warnings: &mut Vec<String>,
) -> Vec<(FolderPath, ListEntry)> {
    // The rank of an entry among those of its path: lower is preferred, and two entries of
    // one path never rank equal (their wire names differ: LIST answers are keyed by name).
    let rank = |e: &ListEntry| (e.delimiter != delimiter, e.noselect, e.wire.clone());
    let mut best: BTreeMap<&FolderPath, &ListEntry> = BTreeMap::new();
    for (p, e) in &folders {
        best.entry(p)
            .and_modify(|b| {
                if rank(e) < rank(b) {
                    *b = e;
                }
            })
            .or_insert(e);
    }
    let chosen: BTreeMap<FolderPath, Mailbox> = best
        .into_iter()
        .map(|(p, e)| (p.clone(), e.wire.clone()))
        .collect();
    let mut out = Vec::with_capacity(chosen.len());
    for (p, e) in folders {
        let Some(keep) = chosen.get(&p) else { continue };
        if *keep == e.wire {
            out.push((p, e));
            continue;
        }
        warnings.push(format!(
            "server folders {} (delimiter {}) and {} are the same local folder {p}; {} is \
             synced, {} skipped",
            shown(&e.wire),
            shown_delimiter(e.delimiter),
            shown(keep),
            shown(keep),
            shown(&e.wire),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(wire: &str, delimiter: Option<char>) -> ListEntry {
        ListEntry {
            wire: Mailbox::from_wire(wire.as_bytes()),
            delimiter,
            noselect: false,
            nonexistent: false,
            special_use: None,
            subscribed: false,
            status: None,
        }
    }

    fn path(levels: &[&str]) -> FolderPath {
        FolderPath(levels.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_choice_between_conflicting_names_does_not_depend_on_their_order() {
        let ab = path(&["a", "b"]);
        let dot = (ab.clone(), entry("a.b", Some('.')));
        let slash = (ab.clone(), entry("a/b", Some('/')));
        for (delim, kept) in [(Some('/'), "a/b"), (Some('.'), "a.b"), (None, "a.b")] {
            for order in [
                vec![dot.clone(), slash.clone()],
                vec![slash.clone(), dot.clone()],
            ] {
                let mut w = Vec::new();
                let out = one_per_folder(order, delim, &mut w);
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].1.wire.as_wire(), kept.as_bytes());
                assert_eq!(w.len(), 1, "{w:?}");
                assert!(
                    w[0].contains("\"a.b\"") && w[0].contains("\"a/b\""),
                    "{w:?}"
                );
            }
        }
    }

    #[test]
    fn unusable_delimiters_skip_the_folder_but_never_inbox() {
        let mut w = Vec::new();
        let out = screen(
            vec![
                entry("INBOX", Some('\0')),
                entry("nul", Some('\0')),
                entry("ctl", Some('\u{1}')),
                entry("space", Some(' ')),
                entry("accent", Some('é')),
                entry("flat", None),
                entry("fine", Some('/')),
            ],
            &mut w,
        );
        let kept: Vec<(&[u8], Option<char>)> = out
            .iter()
            .map(|e| (e.wire.as_wire(), e.delimiter))
            .collect();
        assert_eq!(
            kept,
            [
                (&b"INBOX"[..], Some('/')),
                (&b"flat"[..], None),
                (&b"fine"[..], Some('/'))
            ]
        );
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w.iter().all(|l| !l.contains('\0') && !l.contains('\u{1}')));
    }
}
