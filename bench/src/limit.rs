//! The limit: the least a sync client can do. One connection, LOGIN, and for every folder
//! SELECT and `UID FETCH 1:* (UID FLAGS BODY.PEEK[])`, each message written to its own file
//! (or discarded, to measure the server and the socket alone). No state, no flags on disk, no
//! fsync: its time is the floor for any client on the same server and machine.

use std::fs;
use std::io::{self, BufRead, Write};
use std::path::Path;

use crate::imap::{Conn, Item};

/// What a limit run moved.
#[derive(Debug, Default)]
pub struct Moved {
    /// Messages received.
    pub messages: u64,
    /// Literal bytes received.
    pub bytes: u64,
}

/// Fetches every message of every folder; writes `out/<folder number>/<n>` unless `out` is
/// `None`.
pub fn run(addr: &str, user: &str, password: &str, out: Option<&Path>) -> io::Result<Moved> {
    let mut conn = Conn::connect(addr)?;
    conn.login(user, password)?;
    let folders = conn.list()?;
    let mut moved = Moved::default();
    for (i, folder) in folders.iter().enumerate() {
        let dir = match out {
            Some(root) => {
                let d = root.join(format!("{i:03}"));
                fs::create_dir_all(&d)?;
                Some(d)
            }
            None => None,
        };
        // EXAMINE: the limit must not change \Recent or anything else on the server.
        if conn.select(folder, true)? == 0 {
            continue;
        }
        conn.run("UID FETCH 1:* (UID FLAGS BODY.PEEK[])", |item| {
            if let Item::Literal { len, data } = item {
                moved.messages += 1;
                moved.bytes += len;
                match &dir {
                    Some(d) => {
                        let file = fs::File::create(d.join(moved.messages.to_string()))?;
                        drain_into(data, Some(file))?;
                    }
                    None => drain_into(data, None::<fs::File>)?,
                }
            }
            Ok(())
        })?;
    }
    conn.logout();
    Ok(moved)
}

/// Copies straight out of the read buffer: one write per buffer fill, no intermediate copy.
fn drain_into<W: Write>(data: &mut dyn BufRead, mut sink: Option<W>) -> io::Result<()> {
    loop {
        let buf = data.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        if let Some(w) = sink.as_mut() {
            w.write_all(buf)?;
        }
        data.consume(n);
    }
}
