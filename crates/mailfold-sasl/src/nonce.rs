//! Where client nonces come from. Mechanisms never call the OS themselves: they draw
//! from a [`NonceSource`] the caller passes in, so tests can replay the exact values of
//! the RFC example exchanges and the mechanisms stay deterministic and sans-IO.

use std::collections::VecDeque;

use base64::Engine as _;

use crate::error::SaslError;

/// Supplier of unpredictable values for client nonces and challenges.
pub trait NonceSource {
    /// Fills `buf` with unpredictable bytes (NTLM client challenge).
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), SaslError>;

    /// A printable nonce for text mechanisms (SCRAM `r=`, DIGEST-MD5 `cnonce`).
    ///
    /// The default is 18 random bytes in base64: 144 bits, no padding, and no `,`
    /// or `"` that would need quoting.
    fn text_nonce(&mut self) -> Result<String, SaslError> {
        let mut raw = [0u8; 18];
        self.fill_bytes(&mut raw)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// The operating system's CSPRNG (through `getrandom`): the source for real sessions.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsNonceSource;

impl NonceSource for OsNonceSource {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), SaslError> {
        getrandom::fill(buf).map_err(|e| SaslError::Randomness(e.to_string()))
    }
}

/// Replays fixed values, in order: for tests that reproduce published exchanges.
///
/// Never use it for a real session: the values are predictable by construction.
#[derive(Debug, Default, Clone)]
pub struct FixedNonces {
    texts: VecDeque<String>,
    bytes: VecDeque<Vec<u8>>,
}

impl FixedNonces {
    /// An empty source; every draw fails until values are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a text nonce, returned by the next [`NonceSource::text_nonce`].
    pub fn with_text(mut self, nonce: impl Into<String>) -> Self {
        self.texts.push_back(nonce.into());
        self
    }

    /// Queues bytes, returned by the next [`NonceSource::fill_bytes`] (the length must
    /// match the request).
    pub fn with_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.bytes.push_back(bytes.into());
        self
    }
}

impl NonceSource for FixedNonces {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), SaslError> {
        match self.bytes.pop_front() {
            Some(v) if v.len() == buf.len() => {
                buf.copy_from_slice(&v);
                Ok(())
            }
            Some(v) => Err(SaslError::Randomness(format!(
                "fixed nonce has {} bytes, {} requested",
                v.len(),
                buf.len()
            ))),
            None => Err(SaslError::Randomness("fixed nonces exhausted".into())),
        }
    }

    fn text_nonce(&mut self) -> Result<String, SaslError> {
        self.texts
            .pop_front()
            .ok_or_else(|| SaslError::Randomness("fixed nonces exhausted".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_nonces_are_printable_and_differ() {
        let mut os = OsNonceSource;
        let a = os.text_nonce().unwrap();
        let b = os.text_nonce().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b',' && c != b'"'));
    }

    #[test]
    fn fixed_nonces_replay_then_fail() {
        let mut f = FixedNonces::new().with_text("abc").with_bytes([1u8, 2]);
        assert_eq!(f.text_nonce().unwrap(), "abc");
        let mut two = [0u8; 2];
        f.fill_bytes(&mut two).unwrap();
        assert_eq!(two, [1, 2]);
        assert!(f.text_nonce().is_err());
        assert!(f.fill_bytes(&mut two).is_err());
    }
}
