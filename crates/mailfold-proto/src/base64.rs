//! Standard base64 (RFC 4648 section 4), the one implementation of the crate: the encoder
//! uses it for AUTHENTICATE responses and SASL-IR (RFC 3501 6.2.2, RFC 4959), the engine for
//! the server's challenges.
//!
//! Kept in-crate rather than taken from the `base64` crate: the engine needs about forty
//! lines of it, the crate stays free of dependencies beyond `memchr` (it is fuzzed and meant
//! to be embedded), and both directions are pinned by the RFC 4648 test vectors below.
//! (Modified base64 for mailbox names is a different alphabet and lives in `utf7`.)

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `data` with `=` padding.
pub(crate) fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        // `chunks` never yields an empty slice, so `chunk[0]` exists.
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        out.push(ALPHABET[(n >> 18) as usize & 63]);
        out.push(ALPHABET[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes base64 text. Forgiving where servers differ harmlessly: surrounding spaces and
/// missing trailing padding are accepted. Anything outside the alphabet, `=` before the end,
/// or a length no encoder can produce is refused (`None`). An empty text decodes to nothing
/// (an empty SASL challenge).
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().as_bytes();
    let body_len = t.len() - t.iter().rev().take_while(|&&c| c == b'=').count();
    let (body, pad) = t.split_at(body_len);
    if pad.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in body {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One leftover character carries 6 bits: less than a byte, so no encoder wrote it.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_both_ways() {
        for (plain, coded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), coded.as_bytes());
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn lenient_where_harmless_strict_elsewhere() {
        assert_eq!(decode(" Zm9vYmE ").unwrap(), b"fooba");
        assert!(decode("Zm9v!").is_none());
        assert!(decode("Z").is_none());
        assert!(decode("Zm=9v").is_none());
        assert!(decode("Zg===").is_none());
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        for n in 0..all.len() {
            let coded = String::from_utf8(encode(&all[..n])).unwrap();
            assert_eq!(decode(&coded).unwrap(), &all[..n]);
        }
    }
}
