//! SASLprep (RFC 4013) of passwords for SCRAM (RFC 5802 section 2.2, `Normalize`).
//!
//! The profile itself (mapping, NFKC, prohibited output, bidi rules) comes from the
//! `stringprep` crate. What this module decides is the fallback: a password that
//! SASLprep rejects (a control character, say) is used exactly as typed rather than
//! refused. A server that accepted such a password at enrolment can only have
//! hashed the raw bytes, so refusing would lock the user out for no gain; PostgreSQL's
//! SCRAM client makes the same choice.

/// The password as SCRAM hashes it: SASLprep'ed when the profile accepts it, else
/// unchanged.
pub fn saslprep_password(password: &str) -> String {
    // ASCII printable text is its own SASLprep output; skip the tables for it.
    if password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return password.to_owned();
    }
    match stringprep::saslprep(password) {
        Ok(prepared) => prepared.into_owned(),
        Err(_) => password.to_owned(),
    }
}

/// Strict SASLprep as a stored string: `None` when RFC 4013 prohibits the input.
pub fn saslprep_strict(input: &str) -> Option<String> {
    stringprep::saslprep(input).ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4013 section 3, the examples table.
    #[test]
    fn rfc4013_section_3_examples() {
        assert_eq!(saslprep_strict("I\u{00AD}X").as_deref(), Some("IX")); // soft hyphen mapped to nothing
        assert_eq!(saslprep_strict("user").as_deref(), Some("user"));
        assert_eq!(saslprep_strict("USER").as_deref(), Some("USER")); // case preserved
        assert_eq!(saslprep_strict("\u{00AA}").as_deref(), Some("a")); // NFKC
        assert_eq!(saslprep_strict("\u{2168}").as_deref(), Some("IX")); // NFKC
        assert_eq!(saslprep_strict("\u{0007}"), None); // prohibited character
        assert_eq!(saslprep_strict("\u{0627}\u{0031}"), None); // bidi rule
    }

    #[test]
    fn non_ascii_space_maps_to_space() {
        assert_eq!(saslprep_password("a\u{00A0}b"), "a b");
    }

    #[test]
    fn prohibited_password_falls_back_to_raw() {
        assert_eq!(saslprep_password("pass\u{0007}word"), "pass\u{0007}word");
        assert_eq!(saslprep_password("pencil"), "pencil");
    }
}
