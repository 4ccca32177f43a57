//! Changes made on the server between re-syncs, over IMAP like a second mail client would:
//! flag a share of the unflagged messages, or deliver new messages.

use std::io;

use crate::corpus::{self, Mix};
use crate::imap::{Conn, Item};
use crate::rng::Rng;

/// Adds \Flagged to `share` of each folder's messages, chosen at random (fixed by `seed`)
/// among those without it, so that exactly that many messages change. Returns the count.
pub fn flag_share(
    addr: &str,
    user: &str,
    password: &str,
    share: f64,
    seed: u64,
) -> io::Result<u64> {
    let mut conn = Conn::connect(addr)?;
    conn.login(user, password)?;
    let mut rng = Rng::new(seed);
    let mut changed = 0;
    for folder in conn.list()? {
        let exists = conn.select(&folder, false)?;
        let want = (exists as f64 * share).round() as usize;
        if want == 0 {
            continue;
        }
        let mut uids: Vec<u32> = Vec::new();
        conn.run("UID SEARCH UNFLAGGED", |item| {
            if let Item::Line { text, start: true } = item {
                if let Some(rest) = text.strip_prefix(b"* SEARCH") {
                    uids.extend(
                        String::from_utf8_lossy(rest)
                            .split_ascii_whitespace()
                            .filter_map(|n| n.parse::<u32>().ok()),
                    );
                }
            }
            Ok(())
        })?;
        // Partial Fisher-Yates: the first `want` entries become a uniform random sample.
        let want = want.min(uids.len());
        for i in 0..want {
            let j = i + rng.index(uids.len() - i);
            uids.swap(i, j);
        }
        if want == 0 {
            continue;
        }
        let set: Vec<String> = uids[..want].iter().map(u32::to_string).collect();
        conn.run(
            &format!("UID STORE {} +FLAGS.SILENT (\\Flagged)", set.join(",")),
            |_| Ok(()),
        )?;
        changed += want as u64;
    }
    conn.logout();
    Ok(changed)
}

/// Appends `count` new messages of the mix to `mailbox`, generated from `seed` at indexes far
/// above any corpus (so Message-IDs are new).
pub fn deliver(
    addr: &str,
    user: &str,
    password: &str,
    mailbox: &str,
    count: u64,
    seed: u64,
    mix: Mix,
) -> io::Result<u64> {
    let mut conn = Conn::connect(addr)?;
    conn.login(user, password)?;
    let base = 1 << 40;
    for i in 0..count {
        let m = corpus::message(seed, base + i, mix);
        conn.append(mailbox, "", &corpus::crlf(&m.bytes))?;
    }
    conn.logout();
    Ok(count)
}
