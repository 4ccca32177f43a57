//! Maildir flag letters (the `:2,` info suffix) and their IMAP meaning.
//!
//! The Maildir specification defines `D` (draft), `F` (flagged), `P`
//! (passed), `R` (replied), `S` (seen) and `T` (trashed), always written in
//! ASCII order. Other letters (Dovecot uses `a`–`z` for keywords, other tools
//! invent their own) are kept untouched when mailfold renames a file, so it
//! never destroys another program's information.
//!
//! IMAP mapping: `D` `\Draft`, `F` `\Flagged`, `R` `\Answered`, `S` `\Seen`,
//! `T` `\Deleted`, and `P` the keyword `$Forwarded` (RFC 5788 registry; the
//! same choice isync makes). Other keywords live only in the state database
//! (seed V0005), not in the file name.

use std::fmt;

/// The flags of one message file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MaildirFlags {
    /// Bit set of the six standard letters, see the `*_BIT` order below.
    std: u8,
    /// Other letters, sorted and de-duplicated.
    other: String,
}

/// The six standard letters in ASCII order, with their IMAP meaning.
const STANDARD: [(char, &str); 6] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

impl MaildirFlags {
    /// No flags.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the letters after `:2,`. Characters that are not ASCII
    /// letters are dropped (no spec allows them).
    pub fn parse(letters: &str) -> Self {
        let mut f = Self::default();
        for ch in letters.chars() {
            f.insert(ch);
        }
        f
    }

    /// Adds a letter; non-letters are ignored.
    pub fn insert(&mut self, letter: char) {
        if let Some(i) = STANDARD.iter().position(|(c, _)| *c == letter) {
            self.std |= 1 << i;
        } else if letter.is_ascii_alphabetic() && !self.other.contains(letter) {
            let mut v: Vec<char> = self.other.chars().collect();
            v.push(letter);
            v.sort_unstable();
            self.other = v.into_iter().collect();
        }
    }

    /// Removes a letter.
    pub fn remove(&mut self, letter: char) {
        if let Some(i) = STANDARD.iter().position(|(c, _)| *c == letter) {
            self.std &= !(1 << i);
        } else {
            self.other.retain(|c| c != letter);
        }
    }

    /// True if the letter is set.
    pub fn contains(&self, letter: char) -> bool {
        match STANDARD.iter().position(|(c, _)| *c == letter) {
            Some(i) => self.std & (1 << i) != 0,
            None => self.other.contains(letter),
        }
    }

    /// True when no letter is set.
    pub fn is_empty(&self) -> bool {
        self.std == 0 && self.other.is_empty()
    }

    /// Builds the standard letters from IMAP flags and keywords, keeping any
    /// non-standard letters of `keep_other_from` (the file's current flags).
    /// Flags without a letter (other keywords, `\Recent`) are ignored here;
    /// they belong in the state database.
    pub fn from_imap<'a, I>(flags: I, keep_other_from: &MaildirFlags) -> Self
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut f = MaildirFlags {
            std: 0,
            other: keep_other_from.other.clone(),
        };
        for flag in flags {
            if let Some(i) = STANDARD
                .iter()
                .position(|(_, imap)| imap.eq_ignore_ascii_case(flag))
            {
                f.std |= 1 << i;
            }
        }
        f
    }

    /// The IMAP flags (and the keyword `$Forwarded`) the standard letters mean.
    pub fn to_imap(&self) -> Vec<&'static str> {
        STANDARD
            .iter()
            .enumerate()
            .filter(|(i, _)| self.std & (1 << i) != 0)
            .map(|(_, (_, imap))| *imap)
            .collect()
    }

    /// True if `flag` (an IMAP flag or keyword) is one a letter represents,
    /// and so is carried by the file name rather than the state database.
    pub fn has_letter_for(flag: &str) -> bool {
        STANDARD
            .iter()
            .any(|(_, imap)| imap.eq_ignore_ascii_case(flag))
    }
}

impl fmt::Display for MaildirFlags {
    /// The letters in ASCII order, as the Maildir specification requires.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut all: Vec<char> = STANDARD
            .iter()
            .enumerate()
            .filter(|(i, _)| self.std & (1 << i) != 0)
            .map(|(_, (c, _))| *c)
            .chain(self.other.chars())
            .collect();
        all.sort_unstable();
        for c in all {
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_sorted_in_ascii_order_with_unknown_kept() {
        let f = MaildirFlags::parse("TSaRFD");
        assert_eq!(f.to_string(), "DFRSTa");
        let g = MaildirFlags::from_imap(["\\Seen", "$Forwarded", "$Junk"], &f);
        assert_eq!(g.to_string(), "PSa");
        assert_eq!(g.to_imap(), ["$Forwarded", "\\Seen"]);
    }

    #[test]
    fn insert_remove_contains() {
        let mut f = MaildirFlags::empty();
        f.insert('S');
        f.insert('x');
        f.insert('1');
        assert!(f.contains('S') && f.contains('x') && !f.contains('1'));
        f.remove('S');
        f.remove('x');
        assert!(f.is_empty());
    }
}
