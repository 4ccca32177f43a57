//! The limit of a re-sync: the least a client that keeps state can do on a CONDSTORE server
//! (RFC 7162). One connection, LOGIN, one `LIST "" "*" RETURN (STATUS (UIDNEXT
//! HIGHESTMODSEQ))` for every folder's state at once, and only for a folder whose
//! HIGHESTMODSEQ moved since the last run: EXAMINE, `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE
//! m)`, and the bodies of the UIDs from the last UIDNEXT on, read and discarded. Its state is
//! a text file of `HIGHESTMODSEQ UIDNEXT folder` lines, rewritten at the end of each run; the
//! first run (no file yet) only records. No Maildir, no database, no fsync: its time is the
//! server's share of a re-sync, the floor for any client on the same server and machine.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::imap::{quote, Conn, Item};

/// What a folder looked like at the end of the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    highestmodseq: u64,
    uidnext: u64,
}

/// What a run did: folders examined, messages whose flags were fetched, bodies read.
#[derive(Debug, Default)]
pub struct Done {
    pub examined: u64,
    pub changed: u64,
    pub bodies: u64,
}

/// One run against `state` (module docs).
pub fn run(addr: &str, user: &str, password: &str, state: &Path) -> io::Result<Done> {
    let before = read_state(state)?;
    let mut conn = Conn::connect(addr)?;
    conn.login(user, password)?;
    let now = list_status(&mut conn)?;
    let mut done = Done::default();
    if let Some(before) = &before {
        for (folder, seen) in &now {
            let Some(old) = before.get(folder) else {
                continue;
            };
            if old.highestmodseq == seen.highestmodseq {
                continue;
            }
            done.examined += 1;
            conn.run(
                &format!("EXAMINE {} (CONDSTORE)", quote(folder)),
                |_| Ok(()),
            )?;
            conn.run(
                &format!(
                    "UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {})",
                    old.highestmodseq
                ),
                |item| {
                    if let Item::Line { text, start: true } = item {
                        if text.starts_with(b"* ") && contains(text, b" FETCH ") {
                            done.changed += 1;
                        }
                    }
                    Ok(())
                },
            )?;
            if seen.uidnext > old.uidnext {
                conn.run(
                    &format!("UID FETCH {}:* (UID BODY.PEEK[])", old.uidnext),
                    |item| {
                        if let Item::Literal { data, .. } = item {
                            done.bodies += 1;
                            io::copy(data, &mut io::sink())?;
                        }
                        Ok(())
                    },
                )?;
            }
        }
    }
    conn.logout();
    write_state(state, &now)?;
    Ok(done)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every folder's UIDNEXT and HIGHESTMODSEQ from one LIST-STATUS (RFC 5819).
fn list_status(conn: &mut Conn) -> io::Result<BTreeMap<String, Seen>> {
    let mut out = BTreeMap::new();
    conn.run(
        "LIST \"\" \"*\" RETURN (STATUS (UIDNEXT HIGHESTMODSEQ))",
        |item| {
            if let Item::Line { text, start: true } = item {
                if let Some((name, seen)) = parse_status(text) {
                    out.insert(name, seen);
                }
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// `* STATUS name (UIDNEXT n HIGHESTMODSEQ m)`, the name an atom or a quoted string.
fn parse_status(line: &[u8]) -> Option<(String, Seen)> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("* STATUS ")?;
    let (name, rest) = match rest.strip_prefix('"') {
        Some(q) => {
            let mut name = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => name.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => name.push(c),
                }
            }
            (name, &q[end?..])
        }
        None => {
            let (n, r) = rest.split_once(' ')?;
            (n.to_owned(), r)
        }
    };
    let items = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut words = items.split_whitespace();
    let (mut uidnext, mut modseq) = (None, None);
    while let (Some(k), Some(v)) = (words.next(), words.next()) {
        match k.to_ascii_uppercase().as_str() {
            "UIDNEXT" => uidnext = v.parse().ok(),
            "HIGHESTMODSEQ" => modseq = v.parse().ok(),
            _ => {}
        }
    }
    Some((
        name,
        Seen {
            highestmodseq: modseq?,
            uidnext: uidnext?,
        },
    ))
}

fn read_state(path: &Path) -> io::Result<Option<BTreeMap<String, Seen>>> {
    let mut text = String::new();
    match fs::File::open(path) {
        Ok(mut f) => f.read_to_string(&mut text)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(m), Some(u), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(highestmodseq), Ok(uidnext)) = (m.parse(), u.parse()) {
            out.insert(
                name.to_owned(),
                Seen {
                    highestmodseq,
                    uidnext,
                },
            );
        }
    }
    Ok(Some(out))
}

fn write_state(path: &Path, now: &BTreeMap<String, Seen>) -> io::Result<()> {
    let mut text = String::new();
    for (name, s) in now {
        text.push_str(&format!("{} {} {name}\n", s.highestmodseq, s.uidnext));
    }
    fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"* STATUS Folder01 (UIDNEXT 2001 HIGHESTMODSEQ 2040)"),
            Some((
                "Folder01".to_owned(),
                Seen {
                    highestmodseq: 2040,
                    uidnext: 2001
                }
            ))
        );
        assert_eq!(
            parse_status(b"* STATUS \"a \\\"b\\\"\" (HIGHESTMODSEQ 7 UIDNEXT 3)")
                .map(|(n, s)| (n, s.uidnext)),
            Some(("a \"b\"".to_owned(), 3))
        );
        assert_eq!(parse_status(b"* LIST () \".\" INBOX"), None);
    }
}
