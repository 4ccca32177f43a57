//! Listing keys: what a folder's directory listing must look like for its state rows to
//! describe it exactly, as one 64-bit key per file (schema v4).
//!
//! A file's key hashes its base and the IMAP meaning of its standard flag letters; a row's
//! key hashes its base and the letters its synced flags and keywords imply. The two agree
//! exactly when the sync engine's scan would describe the file as the row says: same base,
//! same flags (letters in the name, keywords without a letter in the row, seed V0005), and
//! the size a `,S=`/`,W=` field names equal to the row's. A row the file system cannot mirror
//! that way (a system flag without a letter, a lettered keyword in another spelling, a size
//! that disagrees with its own name) gets a key no file can have, so such a folder is never
//! taken as matching by its digest and falls back to the row-by-row comparison.
//!
//! Non-standard letters (Dovecot's `a`–`z` keywords, other tools' own) are left out of the
//! file key, as the engine's scan ignores them.

use sha2::{Digest, Sha256};

use super::types::MessageRecord;
use crate::flags::MaildirFlags;
use crate::message::MessageBase;

/// Separator after the base in a key that a file can have.
const MIRRORED: u8 = 0;
/// Separator after the base in a key that no file can have.
const UNMIRRORABLE: u8 = 1;

fn key(base: &str, mark: u8, flags: &[&str]) -> i64 {
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    h.update([mark]);
    for f in flags {
        h.update(f.as_bytes());
        h.update(b" ");
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_le_bytes(first)
}

/// The key of a file in `new/` or `cur/`: its base and its standard letters' IMAP flags.
pub fn listing_key_of_file(base: &MessageBase, flags: &MaildirFlags) -> i64 {
    key(base.as_str(), MIRRORED, &flags.to_imap())
}

/// The key of a state row: the key of the file a complete run leaves for it, or a key no
/// file can have when no file name can carry what the row records.
pub fn listing_key_of_row(r: &MessageRecord) -> i64 {
    listing_key_of(&r.base, &r.flags, &r.keywords, r.size)
}

/// [`listing_key_of_row`] from a row's parts.
pub fn listing_key_of(
    base: &MessageBase,
    flags: &[String],
    keywords: &[String],
    size: Option<u64>,
) -> i64 {
    let letters = MaildirFlags::from_imap(
        flags.iter().chain(keywords).map(String::as_str),
        &MaildirFlags::empty(),
    );
    let implied = letters.to_imap();
    // System flags compare without regard to case (as IMAP flag names do); every one must
    // have a letter. A keyword with a letter must be spelt as the letter reads back, or the
    // scan would see another keyword; keywords without a letter live in the row alone.
    let flags_ok = flags
        .iter()
        .all(|f| implied.iter().any(|i| i.eq_ignore_ascii_case(f)));
    let keywords_ok = keywords
        .iter()
        .all(|k| !MaildirFlags::has_letter_for(k) || implied.contains(&k.as_str()));
    let size_ok = base.crlf_size_field().is_none_or(|s| size == Some(s));
    if flags_ok && keywords_ok && size_ok {
        key(base.as_str(), MIRRORED, &implied)
    } else {
        key(base.as_str(), UNMIRRORABLE, &implied)
    }
}

/// Folds keys into a digest (XOR: order-free, and a key removed is a key folded in again).
pub fn fold_listing_keys(keys: impl IntoIterator<Item = i64>) -> i64 {
    keys.into_iter().fold(0, |d, k| d ^ k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::types::Uid;

    fn row(base: &str, flags: &[&str], keywords: &[&str], size: Option<u64>) -> MessageRecord {
        MessageRecord {
            uid: Uid::new(1).unwrap(),
            base: MessageBase::new(base).unwrap(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            size,
            internaldate: None,
            hash: None,
            message_id: None,
            partial: false,
        }
    }

    #[test]
    fn a_row_and_the_file_it_implies_share_a_key() {
        let r = row(
            "1.a.host,S=10,W=10",
            &["\\Seen", "\\Flagged"],
            &["$Forwarded", "work"],
            Some(10),
        );
        let (base, flags) = MessageBase::parse_file_name("1.a.host,S=10,W=10:2,FPSa").unwrap();
        assert_eq!(listing_key_of_row(&r), listing_key_of_file(&base, &flags));
        let (_, other) = MessageBase::parse_file_name("1.a.host,S=10,W=10:2,FS").unwrap();
        assert_ne!(listing_key_of_row(&r), listing_key_of_file(&base, &other));
    }

    #[test]
    fn rows_no_file_can_mirror_match_no_file() {
        let base = MessageBase::new("1.a.host,S=10,W=10").unwrap();
        for r in [
            row("1.a.host,S=10,W=10", &["\\Seen"], &[], Some(11)),
            row("1.a.host,S=10,W=10", &["\\Seen", "\\Custom"], &[], Some(10)),
            row("1.a.host,S=10,W=10", &[], &["$forwarded"], Some(10)),
        ] {
            for letters in ["", "S", "P", "PS"] {
                let flags = MaildirFlags::parse(letters);
                assert_ne!(listing_key_of_row(&r), listing_key_of_file(&base, &flags));
            }
        }
    }

    #[test]
    fn the_digest_ignores_order_and_forgets_removed_keys() {
        let keys = [3_i64, -7, 1 << 62, i64::MIN];
        let d = fold_listing_keys(keys);
        assert_eq!(d, fold_listing_keys(keys.iter().rev().copied()));
        assert_eq!(
            fold_listing_keys([d, keys[1]]),
            fold_listing_keys([3, 1 << 62, i64::MIN])
        );
    }
}
