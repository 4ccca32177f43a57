//! `mailfold search FOLDER QUERY…` (seed V0051).
//!
//! The query is the RFC 3501 6.4.4 search-key grammar written as words: `from alice unseen`,
//! `or subject report subject invoice`, `not deleted since 2024-01-31`, `( seen flagged )`,
//! `header List-Id rust`, `larger 100000`, `uid 1:100`, `keyword $Junk`. Several keys are
//! ANDed; a word that is not a key searches the whole text (`TEXT`). Dates are `YYYY-MM-DD`
//! or the IMAP form `31-Jan-2024`.
//!
//! Online, the folder is opened with EXAMINE (nothing changes, seed V0040) and the query runs
//! as `UID SEARCH`, with `CHARSET UTF-8` when it holds non-ASCII text (seed V0013) and
//! `RETURN (ALL)` where the server offers ESEARCH (RFC 4731), whose compact UID set keeps a
//! large result small. Offline (or with `--offline`) the same query is evaluated over the
//! mirror: flags from the file names and state, dates from INTERNALDATE and the Date header,
//! text with case-insensitive substring matching as RFC 3501 asks. Keys only the server can
//! answer (`RECENT`, `MODSEQ`, message sequence numbers) are refused offline.

use mailfold_sync::inspect::search::{Date, Flag, SearchKey, SearchOutcome, UidSet};
use serde_json::json;

use super::list::{items, Item};
use super::{print_json, Ctx};
use crate::config::Account;
use crate::exit::usage;
use crate::mime;
use crate::mirror::{FolderRef, Mirror};
use crate::online::{self, Reached};

/// Splits a query given as one quoted argument (`"from alice unseen"`) into words, keeping
/// double-quoted phrases together; several arguments are taken as they are.
pub fn words(args: &[String]) -> Vec<String> {
    if args.len() != 1 || !args[0].contains(char::is_whitespace) {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in args[0].chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parses words into search keys (ANDed at the top level).
pub fn parse(words: &[String]) -> anyhow::Result<Vec<SearchKey>> {
    let mut p = Parser { w: words, i: 0 };
    let mut keys = Vec::new();
    while p.i < p.w.len() {
        keys.push(p.key()?);
    }
    if keys.is_empty() {
        return Err(usage("empty search query"));
    }
    Ok(keys)
}

struct Parser<'a> {
    w: &'a [String],
    i: usize,
}

impl Parser<'_> {
    fn next(&mut self, what: &str) -> anyhow::Result<String> {
        let s = self
            .w
            .get(self.i)
            .cloned()
            .ok_or_else(|| usage(format!("search query ends where {what} was expected")))?;
        self.i += 1;
        Ok(s)
    }

    /// The keys between `(` (already read) and its `)`, ANDed.
    fn group(&mut self) -> anyhow::Result<SearchKey> {
        let mut inner = Vec::new();
        loop {
            match self.w.get(self.i) {
                Some(w) if w == ")" => {
                    self.i += 1;
                    break;
                }
                Some(_) => inner.push(self.key()?),
                None => return Err(usage("search query: '(' without ')'")),
            }
        }
        if inner.is_empty() {
            return Err(usage("search query: empty ( )"));
        }
        Ok(SearchKey::And(inner))
    }

    fn text(&mut self, key: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.next(&format!("the text after {key}"))?.into_bytes())
    }

    fn date(&mut self, key: &str) -> anyhow::Result<Date> {
        let s = self.next(&format!("a date after {key}"))?;
        parse_date(&s)
            .ok_or_else(|| usage(format!("{s:?} is not a date (YYYY-MM-DD or 31-Jan-2024)")))
    }

    fn number(&mut self, key: &str) -> anyhow::Result<u32> {
        let s = self.next(&format!("a number after {key}"))?;
        s.parse()
            .map_err(|_| usage(format!("{s:?} is not a number (after {key})")))
    }

    /// The next search key, with its arguments. One match with an arm per key of RFC 3501
    /// 6.4.4, each taking its own arguments: the grammar reads as a table, split it would not.
    fn key(&mut self) -> anyhow::Result<SearchKey> {
        let word = self.next("a search key")?;
        let k = word.to_ascii_lowercase();
        Ok(match k.as_str() {
            "all" => SearchKey::All,
            "answered" => SearchKey::Answered,
            "deleted" => SearchKey::Deleted,
            "draft" => SearchKey::Draft,
            "flagged" => SearchKey::Flagged,
            "new" => SearchKey::New,
            "old" => SearchKey::Old,
            "recent" => SearchKey::Recent,
            "seen" => SearchKey::Seen,
            "unanswered" => SearchKey::Unanswered,
            "undeleted" => SearchKey::Undeleted,
            "undraft" => SearchKey::Undraft,
            "unflagged" => SearchKey::Unflagged,
            "unseen" => SearchKey::Unseen,
            "bcc" => SearchKey::Bcc(self.text("BCC")?),
            "body" => SearchKey::Body(self.text("BODY")?),
            "cc" => SearchKey::Cc(self.text("CC")?),
            "from" => SearchKey::From(self.text("FROM")?),
            "subject" => SearchKey::Subject(self.text("SUBJECT")?),
            "text" => SearchKey::Text(self.text("TEXT")?),
            "to" => SearchKey::To(self.text("TO")?),
            "before" => SearchKey::Before(self.date("BEFORE")?),
            "on" => SearchKey::On(self.date("ON")?),
            "since" => SearchKey::Since(self.date("SINCE")?),
            "sentbefore" => SearchKey::SentBefore(self.date("SENTBEFORE")?),
            "senton" => SearchKey::SentOn(self.date("SENTON")?),
            "sentsince" => SearchKey::SentSince(self.date("SENTSINCE")?),
            "larger" => SearchKey::Larger(self.number("LARGER")?),
            "smaller" => SearchKey::Smaller(self.number("SMALLER")?),
            "header" => {
                let field = self.text("HEADER")?;
                SearchKey::Header(field, self.text("HEADER field")?)
            }
            "keyword" | "unkeyword" => {
                let s = self.next("a keyword")?;
                let f = Flag::keyword(&s).map_err(|e| usage(format!("{s:?}: {e}")))?;
                if k == "keyword" {
                    SearchKey::Keyword(f)
                } else {
                    SearchKey::Unkeyword(f)
                }
            }
            "not" => SearchKey::Not(Box::new(self.key()?)),
            "or" => {
                let a = self.key()?;
                SearchKey::Or(Box::new(a), Box::new(self.key()?))
            }
            "uid" => {
                let s = self.next("a UID set after UID")?;
                SearchKey::Uid(
                    UidSet::parse(s.as_bytes())
                        .map_err(|e| usage(format!("{s:?} is not a UID set: {e:?}")))?,
                )
            }
            "modseq" => {
                let s = self.next("a number after MODSEQ")?;
                SearchKey::ModSeq(
                    s.parse()
                        .map_err(|_| usage(format!("{s:?} is not a number")))?,
                )
            }
            "(" => self.group()?,
            ")" => return Err(usage("search query: ')' without '('")),
            _ if word
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b':' || b == b',' || b == b'*') =>
            {
                return Err(usage(format!(
                    "{word:?} looks like message numbers; write `uid {word}` to search by UID"
                )))
            }
            _ => SearchKey::Text(word.into_bytes()),
        })
    }
}

/// `YYYY-MM-DD` or `D-Mon-YYYY`.
pub fn parse_date(s: &str) -> Option<Date> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 3 {
        return None;
    }
    if parts[0].len() == 4 {
        let y = parts[0].parse().ok()?;
        let m = parts[1].parse().ok()?;
        let d = parts[2].parse().ok()?;
        return Date::new(y, m, d).ok();
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let d = parts[0].parse().ok()?;
    let m = MONTHS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(parts[1]))?;
    let y = parts[2].parse().ok()?;
    Date::new(y, u8::try_from(m + 1).ok()?, d).ok()
}

/// Runs the command.
pub fn run(ctx: &Ctx, folder: &str, query: &[String]) -> anyhow::Result<u8> {
    let words = words(query);
    let keys = parse(&words)?;
    let (name, acct) = ctx.one_account(None)?;
    let mirror = Mirror::open_read(&name, &acct).ok();
    let f = match &mirror {
        Some(m) => Some(m.resolve_folder(folder)?),
        None => None,
    };
    let reached = search_server(
        ctx,
        &name,
        &acct,
        folder,
        mirror.as_ref(),
        f.as_ref(),
        &keys,
    )?;
    let local_items: Vec<Item> = match (&mirror, &f) {
        (Some(m), Some(f)) if f.rel.is_some() => items(m, f)?,
        _ => Vec::new(),
    };
    let (source, esearch, uids, found): (&str, bool, Vec<u32>, Vec<&Item>) = match reached {
        Reached::Done((uids, esearch)) => {
            // By UID through a map: a search matching most of a large folder stays linear.
            let by_uid: std::collections::HashMap<u32, &Item> = local_items
                .iter()
                .filter_map(|i| i.msg.record.as_ref().map(|r| (r.uid.get(), i)))
                .collect();
            let found = uids.iter().filter_map(|u| by_uid.get(u).copied()).collect();
            ("server", esearch, uids, found)
        }
        Reached::Offline(why) => {
            if mirror.is_none() || f.as_ref().is_none_or(|f| f.rel.is_none()) {
                return Err(anyhow::anyhow!(
                    "the server is not reachable ({why}) and folder {folder} is not in the local mirror"
                ));
            }
            if !ctx.json {
                eprintln!("mailfold: server not reachable ({why}); searching the local mirror");
            }
            let found = search_local(&keys, &local_items)?;
            let uids = found
                .iter()
                .filter_map(|i| i.msg.record.as_ref().map(|r| r.uid.get()))
                .collect();
            ("local", false, uids, found)
        }
    };
    let mut found = found;
    found.sort_by_key(|i| i.date());
    if ctx.json {
        print_json(&json!({
            "account": name,
            "folder": folder,
            "source": source,
            "esearch": esearch,
            "query": words,
            "uids": uids,
            "messages": found.iter().map(|i| i.to_json()).collect::<Vec<_>>(),
        }))
    } else {
        print_human(&found, &uids)
    }?;
    Ok(crate::exit::OK)
}

/// Runs the search on the server: the UIDs found and whether ESEARCH answered, or why the
/// server was not reached. A folder the server refuses is a usage error when neither the
/// mirror nor the state knows it, else the server's NO.
fn search_server(
    ctx: &Ctx,
    name: &str,
    acct: &Account,
    folder: &str,
    mirror: Option<&Mirror>,
    f: Option<&FolderRef>,
    keys: &[SearchKey],
) -> anyhow::Result<Reached<(Vec<u32>, bool)>> {
    // With a mirror, the name it knows; without one (nothing synced yet), the name under
    // the root the sync would use, worked out on the session (V0022).
    let known = match (f, mirror) {
        (Some(f), Some(m)) => Some(m.folder_mailbox(f, m.delimiter())?),
        _ => None,
    };
    let typed = crate::mirror::parse_folder_name(folder)?;
    let search_keys = keys.to_vec();
    let reached = online::with_session(ctx.offline, name, acct, async |s| {
        let mailbox = match known {
            Some(m) => m,
            None => s.wire_name_of(acct.root_folder.as_deref(), &typed).await?,
        };
        Ok(match s.search(&mailbox, search_keys).await? {
            SearchOutcome::Found { uids, esearch } => Ok((uids, esearch)),
            // Refused: for a folder neither the mirror nor the state knows, the user named a
            // folder that does not exist (a usage error as in every other command).
            SearchOutcome::NoFolder(text) => Err(text),
        })
    })?;
    let unknown = f.is_none_or(|f| f.rel.is_none() && f.state.is_none());
    match reached {
        Reached::Done(Err(text)) if unknown => Err(crate::exit::usage(format!(
            "no folder {folder} in account {name} (see `mailfold folders`); the server \
             says: {text}"
        ))),
        Reached::Done(Err(text)) => Err(anyhow::anyhow!(crate::exit::with_subject(
            &acct.host,
            &format!("server said NO: {text}")
        ))),
        Reached::Done(Ok(r)) => Ok(Reached::Done(r)),
        Reached::Offline(why) => Ok(Reached::Offline(why)),
    }
}

/// The mirror's messages that match every key.
fn search_local<'a>(keys: &[SearchKey], local_items: &'a [Item]) -> anyhow::Result<Vec<&'a Item>> {
    let mut found = Vec::new();
    for i in local_items {
        if local_match_all(keys, i)? {
            found.push(i);
        }
    }
    Ok(found)
}

/// The human form: the table of the messages found, then how many the server found that
/// the mirror does not have yet, or that nothing matched.
fn print_human(found: &[&Item], uids: &[u32]) -> anyhow::Result<()> {
    super::list::print_table(found)?;
    let missing = uids
        .len()
        .saturating_sub(found.iter().filter(|i| i.msg.record.is_some()).count());
    if missing > 0 {
        crate::outln!(
            "({missing} more on the server, not yet in the mirror: run `mailfold sync`)"
        )?;
    }
    if found.is_empty() && missing == 0 {
        eprintln!("mailfold: no message matches");
    }
    Ok(())
}

// ----- local evaluation -----

/// Lazily loaded message text for the local evaluator.
struct Loaded<'a> {
    item: &'a Item,
    head: Option<Vec<u8>>,
    rendered: Option<mime::Rendered>,
}

impl Loaded<'_> {
    fn head(&mut self) -> &[u8] {
        let path = self.item.msg.entry.path.clone();
        self.head
            .get_or_insert_with(|| crate::mirror::read_head(&path).unwrap_or_default())
    }

    fn rendered(&mut self) -> &mime::Rendered {
        let path = self.item.msg.entry.path.clone();
        self.rendered.get_or_insert_with(|| {
            let mut buf = Vec::new();
            if let Ok(f) = std::fs::File::open(&path) {
                use std::io::Read;
                let _ = f.take(super::show::MAX_DECODE as u64).read_to_end(&mut buf);
            }
            mime::render(&buf, false)
        })
    }

    fn header_values(&mut self, field: &str) -> Vec<String> {
        let head = self.head().to_vec();
        let Some(msg) = mail_parser::MessageParser::default().parse_headers(&head[..]) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in msg.headers_raw() {
            if name.eq_ignore_ascii_case(field) {
                out.push(value.trim().to_string());
            }
        }
        // The decoded forms too, so `from Jürgen` finds an RFC 2047 encoded name.
        let decoded = match field.to_ascii_lowercase().as_str() {
            "from" => msg.from().map(mime::format_address),
            "to" => msg.to().map(mime::format_address),
            "cc" => msg.cc().map(mime::format_address),
            "bcc" => msg.bcc().map(mime::format_address),
            "subject" => msg.subject().map(str::to_string),
            _ => None,
        };
        out.extend(decoded);
        out
    }
}

fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    hay.to_lowercase().contains(&needle)
}

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn date_days(d: Date) -> i64 {
    mime::days_from_civil(d.year(), d.month(), d.day())
}

fn local_match_all(keys: &[SearchKey], item: &Item) -> anyhow::Result<bool> {
    let mut l = Loaded {
        item,
        head: None,
        rendered: None,
    };
    for k in keys {
        if !local_match(k, &mut l)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn local_match(k: &SearchKey, l: &mut Loaded<'_>) -> anyhow::Result<bool> {
    let item = l.item;
    let has = |f: &str| item.flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let header = |l: &mut Loaded<'_>, field: &str, t: &[u8]| {
        l.header_values(field).iter().any(|v| contains_ci(v, t))
    };
    let sent = item.summary.date.unwrap_or(item.internaldate);
    Ok(match k {
        SearchKey::All => true,
        SearchKey::Answered => has("\\Answered"),
        SearchKey::Deleted => has("\\Deleted"),
        SearchKey::Draft => has("\\Draft"),
        SearchKey::Flagged => has("\\Flagged"),
        SearchKey::Seen => has("\\Seen"),
        SearchKey::Unanswered => !has("\\Answered"),
        SearchKey::Undeleted => !has("\\Deleted"),
        SearchKey::Undraft => !has("\\Draft"),
        SearchKey::Unflagged => !has("\\Flagged"),
        SearchKey::Unseen => !has("\\Seen"),
        // \Recent is a session flag the mirror cannot know; OLD (not recent) is every message.
        SearchKey::Old => true,
        SearchKey::Keyword(f) => has(&f.to_string()),
        SearchKey::Unkeyword(f) => !has(&f.to_string()),
        SearchKey::From(t) => header(l, "from", t),
        SearchKey::To(t) => header(l, "to", t),
        SearchKey::Cc(t) => header(l, "cc", t),
        SearchKey::Bcc(t) => header(l, "bcc", t),
        SearchKey::Subject(t) => header(l, "subject", t),
        SearchKey::Header(field, t) => {
            let field = String::from_utf8_lossy(field).into_owned();
            // RFC 3501: an empty string matches every message that has the field.
            let vals = l.header_values(&field);
            !vals.is_empty() && vals.iter().any(|v| contains_ci(v, t))
        }
        SearchKey::Body(t) => contains_ci(&l.rendered().text, t),
        SearchKey::Text(t) => {
            let head = String::from_utf8_lossy(l.head()).into_owned();
            contains_ci(&head, t)
                || header(l, "subject", t)
                || header(l, "from", t)
                || contains_ci(&l.rendered().text, t)
        }
        SearchKey::Before(d) => day_of(item.internaldate) < date_days(*d),
        SearchKey::On(d) => day_of(item.internaldate) == date_days(*d),
        SearchKey::Since(d) => day_of(item.internaldate) >= date_days(*d),
        SearchKey::SentBefore(d) => day_of(sent) < date_days(*d),
        SearchKey::SentOn(d) => day_of(sent) == date_days(*d),
        SearchKey::SentSince(d) => day_of(sent) >= date_days(*d),
        SearchKey::Larger(n) => item.size > u64::from(*n),
        SearchKey::Smaller(n) => item.size < u64::from(*n),
        SearchKey::Uid(set) => item
            .msg
            .record
            .as_ref()
            .is_some_and(|r| set.contains(r.uid.get())),
        SearchKey::Not(a) => !local_match(a, l)?,
        SearchKey::Or(a, b) => local_match(a, l)? || local_match(b, l)?,
        SearchKey::And(v) => {
            for x in v {
                if !local_match(x, l)? {
                    return Ok(false);
                }
            }
            true
        }
        SearchKey::Recent | SearchKey::New | SearchKey::ModSeq(_) | SearchKey::SequenceSet(_) => {
            return Err(usage(
                "RECENT, NEW, MODSEQ and message numbers need the server; the local mirror cannot answer them",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailfold_sync::inspect::search::needs_utf8;

    fn p(s: &str) -> Vec<SearchKey> {
        parse(&words(&[s.to_string()])).unwrap()
    }

    #[test]
    fn v0051_query_words_become_rfc3501_keys() {
        assert_eq!(
            p("from alice unseen"),
            vec![SearchKey::From(b"alice".to_vec()), SearchKey::Unseen]
        );
        assert_eq!(
            p("or subject \"weekly report\" not seen"),
            vec![SearchKey::Or(
                Box::new(SearchKey::Subject(b"weekly report".to_vec())),
                Box::new(SearchKey::Not(Box::new(SearchKey::Seen)))
            )]
        );
        let since = Date::new(2024, 1, 31).unwrap();
        assert_eq!(p("since 2024-01-31"), vec![SearchKey::Since(since)]);
        assert_eq!(p("SINCE 31-Jan-2024"), vec![SearchKey::Since(since)]);
        assert_eq!(
            p("( seen flagged ) larger 10"),
            vec![
                SearchKey::And(vec![SearchKey::Seen, SearchKey::Flagged]),
                SearchKey::Larger(10)
            ]
        );
        assert!(parse(&["12:14".to_string()]).is_err());
        assert!(parse(&["since".to_string()]).is_err());
        assert!(needs_utf8(&p("subject Grüße")));
        assert!(!needs_utf8(&p("subject hello")));
    }
}
