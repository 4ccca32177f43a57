//! Server-side search (RFC 3501 6.4.4) on a [`ServerSession`], and the query's vocabulary.
//!
//! The query types are the protocol engine's own, re-exported as plain values: the CLI
//! builds a query from words with them and evaluates the same query over the mirror when
//! the server is away, so one type serves both and nothing is translated twice.

pub use mailfold_proto::command::{Date, SearchKey};
pub use mailfold_proto::core::Flag;
pub use mailfold_proto::seqset::UidSet;

use mailfold_proto::command::{Search, SearchReturn};
use mailfold_proto::core::Mailbox;

use super::session::{ServerSession, SessionError};

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchOutcome {
    /// The folder was examined and searched.
    Found {
        /// The matching UIDs, ascending, each once.
        uids: Vec<u32>,
        /// The server answered with ESEARCH (RFC 4731).
        esearch: bool,
    },
    /// The server refused to open the folder (a tagged NO to EXAMINE): its text.
    NoFolder(String),
}

/// True when the query holds non-ASCII text, which needs `CHARSET UTF-8` (seed V0013).
pub fn needs_utf8(keys: &[SearchKey]) -> bool {
    fn k8(k: &SearchKey) -> bool {
        match k {
            SearchKey::Bcc(t)
            | SearchKey::Body(t)
            | SearchKey::Cc(t)
            | SearchKey::From(t)
            | SearchKey::Subject(t)
            | SearchKey::Text(t)
            | SearchKey::To(t) => !t.is_ascii(),
            SearchKey::Header(a, b) => !a.is_ascii() || !b.is_ascii(),
            SearchKey::Not(a) => k8(a),
            SearchKey::Or(a, b) => k8(a) || k8(b),
            SearchKey::And(v) => v.iter().any(k8),
            _ => false,
        }
    }
    keys.iter().any(k8)
}

impl ServerSession {
    /// Opens the folder `wire` (its name on the wire) with EXAMINE, so nothing changes
    /// (seed V0040), and runs `keys` (ANDed) as `UID SEARCH`: with `CHARSET UTF-8` when the
    /// query holds non-ASCII text (seed V0013), and `RETURN (ALL)` where the server offers
    /// ESEARCH (RFC 4731), whose compact UID set keeps a large result small.
    pub async fn search(
        &mut self,
        wire: &[u8],
        keys: Vec<SearchKey>,
    ) -> Result<SearchOutcome, SessionError> {
        let mailbox = Mailbox::from_wire(wire.to_vec());
        if let Err(e) = self.session.examine(&mailbox).await {
            let e = SessionError(e);
            return match e.refusal() {
                Some(text) => Ok(SearchOutcome::NoFolder(text.to_owned())),
                None => Err(e),
            };
        }
        let esearch = self.has_capability("ESEARCH");
        let mut q = Search::new(true, keys);
        if needs_utf8(&q.criteria) {
            q.charset = Some("UTF-8".into());
        }
        if esearch {
            q.returns = Some(vec![SearchReturn::All]);
        }
        let r = self.session.search(q).await?;
        let mut uids = r.ids.clone();
        if let Some(es) = &r.esearch {
            for item in &es.items {
                if let Some(set) = item.all_as_uids() {
                    uids.extend(set.iter());
                }
            }
        }
        uids.sort_unstable();
        uids.dedup();
        Ok(SearchOutcome::Found { uids, esearch })
    }
}
