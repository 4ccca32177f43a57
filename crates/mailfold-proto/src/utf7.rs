//! Modified UTF-7 for mailbox names (RFC 3501 5.1.3, seed V0021), both directions.
//!
//! Printable US-ASCII except `&` stands for itself, `&` is written `&-`, and every other
//! character (controls and all non-ASCII) goes in a shift sequence: `&`, the UTF-16BE code
//! units in base64 with `,` in place of `/` and no `=` padding, then `-`.
//!
//! The encoding has exactly one valid form per name (that was the point of modifying UTF-7,
//! RFC 3501 5.1.3 problem 5), and the decoder insists on it: a name from a server that is
//! not in that form is reported with the byte offset of the fault, never guessed at and never
//! a panic. Rejected: bytes above 0x7F or raw controls, an unterminated `&`, characters
//! outside the modified base64 alphabet, non-zero padding bits, a dangling half code unit,
//! unpaired surrogates, a shift that encodes printable ASCII, and a shift that directly
//! follows another (`&AGE-&AGE-` must be `&AGEAYQ-`).

use std::fmt;

/// An invalid modified UTF-7 name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utf7Error {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for Utf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid modified UTF-7 at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for Utf7Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: u32) -> bool {
    (0x20..=0x7e).contains(&c)
}

fn b64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

/// Encodes a UTF-8 name to modified UTF-7. Total: every string has an encoding.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut units: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(u32::from(c)) {
            flush_shift(&mut out, &mut units);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_shift(&mut out, &mut units);
    out
}

/// Writes pending UTF-16 units as one `&...-` shift sequence.
fn flush_shift(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &u in units.iter() {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // Pad the last sextet with zero bits (RFC 2152: the decoder rejects non-zero ones).
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
    units.clear();
}

/// Decodes a modified UTF-7 name, strictly (see the module docs).
pub fn decode(wire: &[u8]) -> Result<String, Utf7Error> {
    let err = |offset, reason| Err(Utf7Error { offset, reason });
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // End offset of the last base64 shift, to catch a shift starting right after it.
    let mut last_shift_end: Option<usize> = None;
    while let Some(&b) = wire.get(i) {
        match b {
            b'&' if wire.get(i + 1) == Some(&b'-') => {
                out.push('&');
                i += 2;
            }
            b'&' => {
                if last_shift_end == Some(i) {
                    return err(i, "shift sequence directly follows another one");
                }
                i = decode_shift(wire, i, &mut out)?;
                last_shift_end = Some(i);
            }
            0x20..=0x7e => {
                out.push(char::from(b));
                i += 1;
            }
            0x80..=0xff => return err(i, "8-bit byte in a modified UTF-7 name"),
            _ => return err(i, "control character must be base64-encoded"),
        }
    }
    Ok(out)
}

/// Decodes the shift starting at `start` (the `&`) into `out`; returns the offset after `-`.
fn decode_shift(wire: &[u8], start: usize, out: &mut String) -> Result<usize, Utf7Error> {
    let err = |offset, reason| Err(Utf7Error { offset, reason });
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut high: Option<(u16, usize)> = None;
    let mut i = start + 1;
    loop {
        let Some(&b) = wire.get(i) else {
            return err(start, "shift sequence not terminated by '-'");
        };
        if b == b'-' {
            break;
        }
        let Some(v) = b64_value(b) else {
            return err(i, "character outside the modified base64 alphabet");
        };
        acc = ((acc << 6) | v) & 0x3f_ffff;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            let unit = ((acc >> bits) & 0xffff) as u16;
            match (high.take(), unit) {
                (None, 0xd800..=0xdbff) => high = Some((unit, i)),
                (None, 0xdc00..=0xdfff) => return err(i, "unpaired low surrogate"),
                (None, u) => push_char(out, u32::from(u), i)?,
                (Some((h, _)), 0xdc00..=0xdfff) => {
                    let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(unit) - 0xdc00);
                    push_char(out, c, i)?;
                }
                (Some((_, at)), _) => return err(at, "unpaired high surrogate"),
            }
        }
        i += 1;
    }
    if let Some((_, at)) = high {
        return err(at, "unpaired high surrogate");
    }
    if bits >= 6 {
        // At least a whole sextet that is not part of a 16-bit unit: an odd byte count.
        return err(i, "shift sequence ends inside a UTF-16 code unit");
    }
    if acc & ((1 << bits) - 1) != 0 {
        return err(i, "non-zero padding bits at the end of a shift sequence");
    }
    if i == start + 1 {
        // Unreachable through decode (which handles "&-"), kept so the helper is total.
        out.push('&');
    }
    Ok(i + 1)
}

fn push_char(out: &mut String, c: u32, at: usize) -> Result<(), Utf7Error> {
    if is_direct(c) {
        return Err(Utf7Error {
            offset: at,
            reason: "printable ASCII must not be base64-encoded",
        });
    }
    // Surrogates were paired above, so every value here is a valid scalar; map defensively.
    let ch = char::from_u32(c).ok_or(Utf7Error {
        offset: at,
        reason: "invalid code point",
    })?;
    out.push(ch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_round_trips() {
        let name = "~peter/mail/台北/日本語";
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(name), wire);
        assert_eq!(decode(wire.as_bytes()).unwrap(), name);
    }

    #[test]
    fn strictness() {
        assert_eq!(
            decode(b"&AGE-").unwrap_err().reason,
            "printable ASCII must not be base64-encoded"
        );
        assert!(decode(b"&AOk-&AOk-").is_err());
        assert_eq!(decode(b"&AOk-&AOk-").unwrap_err().offset, 5);
        assert_eq!(decode(b"&AOkA6Q-").unwrap(), "éé");
        assert!(decode(b"&AOl-").is_err());
        assert!(decode(b"&AO-").is_err());
        assert!(decode(b"&AOk").is_err());
        assert_eq!(decode(b"&2D3eAA-").unwrap(), "\u{1F600}");
        assert_eq!(
            decode(b"&2D0-").unwrap_err().reason,
            "unpaired high surrogate"
        );
        assert!(decode("é".as_bytes()).is_err());
        assert!(decode(b"a\tb").is_err());
    }
}
