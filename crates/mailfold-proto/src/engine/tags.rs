//! Tag generation (seed C0001): 4 characters from `a-z0-9`, drawn from a caller-seeded
//! generator so transcripts are reproducible, never equal to a tag still in flight.

use crate::core::Tag;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A small deterministic generator (SplitMix64). Tags need to be unpredictable only in the
/// weak sense Outlook's are; the caller seeds it from OS randomness in real use.
#[derive(Clone, Debug)]
pub(crate) struct TagGen {
    state: u64,
}

impl TagGen {
    pub(crate) fn new(seed: u64) -> Self {
        TagGen { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh tag for which `in_use` is false. 36^4 = 1.7 million tags exist and at most a
    /// few hundred are ever in flight, so the loop ends after a draw or two.
    pub(crate) fn fresh(&mut self, in_use: impl Fn(&Tag) -> bool) -> Tag {
        loop {
            let mut x = self.next_u64();
            let mut s = String::with_capacity(4);
            for _ in 0..4 {
                // x % 36 < 36: always a valid index.
                s.push(ALPHABET[(x % 36) as usize] as char);
                x /= 36;
            }
            // Four alphanumerics always form a valid tag.
            let Ok(tag) = Tag::new(s) else { continue };
            if !in_use(&tag) {
                return tag;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_four_lowercase_alphanumerics_and_avoid_in_use() {
        let mut g = TagGen::new(7);
        let first = g.fresh(|_| false);
        let mut g2 = TagGen::new(7);
        let second = g2.fresh(|t| *t == first);
        assert_ne!(first, second);
        for _ in 0..1000 {
            let t = g.fresh(|_| false);
            assert_eq!(t.as_str().len(), 4);
            assert!(t
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }
}
