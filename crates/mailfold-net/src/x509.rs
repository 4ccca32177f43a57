//! A summary of an X.509 certificate for display (`mailfold probe`): subject, issuer and
//! validity dates, read straight from the DER (RFC 5280 4.1).
//!
//! This is not a verifier — rustls/webpki did that before any of this runs — only a reader of
//! the fields a person wants to see (and the subjectAltName host names a refused host-name
//! check is explained with). It is small enough to own instead of pulling in a
//! general ASN.1 stack: it walks the fixed prefix of `TBSCertificate` and never allocates from
//! a length the certificate declares (each length is checked against the bytes present).
//! Everything it returns came from the server, so text is stripped of control characters
//! before anyone prints it to a terminal.

use std::fmt::Write as _;

use mailfold_proto::response::DateTime;

/// The parts of a certificate worth showing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name, attributes in certificate order, e.g. `CN=imap.example.org, O=Example`.
    pub subject: String,
    /// Issuer distinguished name, same form.
    pub issuer: String,
    /// Start of validity, `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_before: String,
    /// End of validity, `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after: String,
    /// Serial number in hexadecimal.
    pub serial: String,
    /// The certificate itself, for callers that want more than this summary.
    pub der: Vec<u8>,
}

/// One DER element: tag, contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1 to 4 length bytes are plenty for a certificate.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an element with the expected tag.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    (t == tag).then_some((content, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BMP_STRING: u8 = 0x1e;

/// Reads a certificate's summary; `None` when the DER is not a certificate this reader can
/// walk (the caller still has the DER itself).
pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    let t = tbs(der)?;
    let (t1, not_before, after) = tlv(t.validity)?;
    let (t2, not_after, _) = tlv(after)?;
    let mut serial_hex = String::new();
    for b in t.serial {
        let _ = write!(serial_hex, "{b:02x}");
    }
    Some(CertSummary {
        subject: name(t.subject)?,
        issuer: name(t.issuer)?,
        not_before: time(t1, not_before)?,
        not_after: time(t2, not_after)?,
        serial: serial_hex,
        der: der.to_vec(),
    })
}

impl CertSummary {
    /// The host names and IP addresses the certificate is issued for (its subjectAltName
    /// `dNSName` and `iPAddress` entries, RFC 5280 4.2.1.6): what a host-name check
    /// (RFC 7817 / RFC 6125) compares with.
    pub fn subject_alt_names(&self) -> Vec<String> {
        subject_alt_names(&self.der)
    }
}

/// Reads a certificate's summary, or a placeholder with `?` fields (and the DER) when the
/// reader cannot walk it: the caller still learns that a certificate was there.
pub(crate) fn summarize_or_placeholder(der: &[u8]) -> CertSummary {
    summarize(der).unwrap_or_else(|| CertSummary {
        subject: "?".into(),
        issuer: "?".into(),
        not_before: "?".into(),
        not_after: "?".into(),
        serial: "?".into(),
        der: der.to_vec(),
    })
}

/// The fields of `TBSCertificate` after the version (RFC 5280 4.1): serial, signature
/// algorithm, issuer and subject contents, validity, and what follows the subject.
struct Tbs<'a> {
    serial: &'a [u8],
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    rest: &'a [u8],
}

fn tbs(der: &[u8]) -> Option<Tbs<'_>> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, absent for v1 certificates.
    if let Some((0xa0, _, after)) = tlv(rest) {
        rest = after;
    }
    let (serial, rest) = expect(rest, INTEGER)?;
    let (_signature_alg, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, rest) = expect(rest, SEQUENCE)?;
    Some(Tbs {
        serial,
        issuer,
        validity,
        subject,
        rest,
    })
}

/// True when the certificate names itself as its issuer (RFC 5280 6.1: "self-issued"),
/// compared as encoded. A self-issued end-entity certificate that no trust store knows is
/// what people call self-signed.
pub(crate) fn is_self_issued(der: &[u8]) -> bool {
    tbs(der).is_some_and(|t| t.issuer == t.subject)
}

/// The subjectAltName extension's `dNSName` and `iPAddress` entries (RFC 5280 4.2.1.6), in
/// certificate order; empty when there is none or the certificate cannot be read. Other
/// name forms (e-mail, URI, directory names) play no part in a server's host-name check.
pub fn subject_alt_names(der: &[u8]) -> Vec<String> {
    const EXTENSIONS: u8 = 0xa3;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const DNS_NAME: u8 = 0x82;
    const IP_ADDRESS: u8 = 0x87;
    const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    let mut out = Vec::new();
    let Some(t) = tbs(der) else {
        return out;
    };
    // subjectPublicKeyInfo, then optional [1] and [2] unique identifiers, then [3].
    let Some((_spki, mut rest)) = expect(t.rest, SEQUENCE) else {
        return out;
    };
    let mut extensions = None;
    while let Some((tag, content, after)) = tlv(rest) {
        if tag == EXTENSIONS {
            extensions = expect(content, SEQUENCE).map(|(list, _)| list);
            break;
        }
        rest = after;
    }
    let Some(mut list) = extensions else {
        return out;
    };
    while let Some((ext, after)) = expect(list, SEQUENCE) {
        list = after;
        let Some((oid, mut fields)) = expect(ext, OID) else {
            continue;
        };
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if let Some((BOOLEAN, _, after)) = tlv(fields) {
            fields = after;
        }
        let Some((value, _)) = expect(fields, OCTET_STRING) else {
            return out;
        };
        let Some((mut names, _)) = expect(value, SEQUENCE) else {
            return out;
        };
        while let Some((tag, name, after)) = tlv(names) {
            names = after;
            match (tag, name.len()) {
                (DNS_NAME, _) => out.push(string(0x16, name)),
                (IP_ADDRESS, 4) => out.push(format!(
                    "{}",
                    std::net::Ipv4Addr::new(name[0], name[1], name[2], name[3])
                )),
                (IP_ADDRESS, 16) => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(name);
                    out.push(format!("{}", std::net::Ipv6Addr::from(octets)));
                }
                _ => {}
            }
        }
        break;
    }
    out
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar, UTC), the
/// form [`CertSummary`] uses for validity dates.
pub(crate) fn format_unix(secs: u64) -> String {
    // A certificate's dates end at year 9999 (RFC 5280 4.1.2.5), well inside the range.
    match i64::try_from(secs).ok().and_then(DateTime::from_unix_utc) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => "?".into(),
    }
}

/// `Name ::= SEQUENCE OF SET OF AttributeTypeAndValue`, as `KEY=value, …`.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, SET)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = expect(atvs, SEQUENCE)?;
            atvs = rest;
            let (oid, value) = expect(atv, OID)?;
            let (tag, text, _) = tlv(value)?;
            parts.push(format!("{}={}", attribute_name(oid), string(tag, text)));
        }
    }
    Some(parts.join(", "))
}

/// Short names for the usual attributes (RFC 4514 2.3), dotted form for the rest.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        _ => dotted(oid),
    }
}

/// An OBJECT IDENTIFIER in dotted decimal (X.690 8.19).
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut acc: u64 = 0;
    let mut first = true;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if acc > u64::from(u32::MAX) {
            return "?".into();
        }
        if b & 0x80 == 0 {
            if first {
                let (a, b) = if acc < 80 {
                    (acc / 40, acc % 40)
                } else {
                    (2, acc - 80)
                };
                let _ = write!(out, "{a}.{b}");
                first = false;
            } else {
                let _ = write!(out, ".{acc}");
            }
            acc = 0;
        }
    }
    out
}

/// A directory string as text: BMPString is UTF-16BE, the others are taken as UTF-8 (which
/// covers PrintableString and IA5String). Control characters become `?`.
fn string(tag: u8, bytes: &[u8]) -> String {
    let text = if tag == BMP_STRING {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049 per RFC 5280 4.1.2.5.1) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as `YYYY-MM-DDTHH:MM:SSZ`.
fn time(tag: u8, bytes: &[u8]) -> Option<String> {
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let (year, rest) = match tag {
        UTC_TIME if bytes.len() == 13 && digits(&bytes[..12]) => {
            let yy = u32::from(bytes[0] - b'0') * 10 + u32::from(bytes[1] - b'0');
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &bytes[2..])
        }
        GENERALIZED_TIME if bytes.len() == 15 && digits(&bytes[..14]) => {
            let y = bytes[..4]
                .iter()
                .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
            (y, &bytes[4..])
        }
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let two = |i: usize| -> &str { std::str::from_utf8(&rest[i..i + 2]).unwrap_or("??") };
    Some(format!(
        "{year:04}-{}-{}T{}:{}:{}Z",
        two(0),
        two(2),
        two(4),
        two(6),
        two(8)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_and_times() {
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
        assert_eq!(dotted(&[0x55, 0x1d, 0x11]), "2.5.29.17");
        assert_eq!(
            time(UTC_TIME, b"250131120000Z").as_deref(),
            Some("2025-01-31T12:00:00Z")
        );
        assert_eq!(
            time(UTC_TIME, b"991231235959Z").as_deref(),
            Some("1999-12-31T23:59:59Z")
        );
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z").as_deref(),
            Some("2050-01-01T00:00:00Z")
        );
        assert_eq!(time(UTC_TIME, b"2501311200Z"), None);
    }

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(978_307_200), "2001-01-01T00:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(format_unix(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn der_of(
        kind: mailfold_testsupport::CertKind,
        pki: &mailfold_testsupport::TestPki,
    ) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(pki.cert_file(kind))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn subject_alt_names_and_self_issued() {
        use mailfold_testsupport::{CertKind, TestPki};
        let pki = TestPki::generate();
        let valid = der_of(CertKind::Valid, &pki);
        assert_eq!(
            subject_alt_names(&valid),
            vec!["127.0.0.1", "::1", "localhost"]
        );
        assert!(!is_self_issued(&valid));
        let wrong = der_of(CertKind::WrongHost, &pki);
        assert_eq!(subject_alt_names(&wrong), vec!["wrong.host.invalid"]);
        assert!(is_self_issued(&der_of(CertKind::SelfSigned, &pki)));
        // The CA has no subjectAltName; a truncated certificate yields nothing, no panic.
        assert!(subject_alt_names(pki.ca_der()).is_empty());
        for cut in 0..valid.len() {
            let _ = subject_alt_names(&valid[..cut]);
            let _ = is_self_issued(&valid[..cut]);
        }
    }

    #[test]
    fn control_characters_are_not_passed_to_terminals() {
        assert_eq!(string(0x0c, b"evil\x1b[2Jname"), "evil?[2Jname");
    }

    #[test]
    fn truncated_or_garbage_input_is_refused_without_panic() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(summarize(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = summarize(&junk);
        }
    }
}
