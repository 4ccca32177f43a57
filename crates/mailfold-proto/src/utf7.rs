//! Modified UTF-7 (RFC 3501 5.1.3). (Under construction by its writer; the signatures below
//! are the contract.)

/// An invalid modified UTF-7 name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utf7Error {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for Utf7Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid modified UTF-7 at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for Utf7Error {}

/// Encodes a UTF-8 name to modified UTF-7.
pub fn encode(name: &str) -> String {
    name.replace('&', "&-")
}

/// Decodes a modified UTF-7 name.
pub fn decode(wire: &[u8]) -> Result<String, Utf7Error> {
    String::from_utf8(wire.to_vec()).map_err(|_| Utf7Error { offset: 0, reason: "not ASCII" })
}
