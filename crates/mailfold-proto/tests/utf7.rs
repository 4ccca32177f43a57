//! Modified UTF-7 (RFC 3501 5.1.3): seed V0021 round trips and strict rejection.

use mailfold_proto::core::Mailbox;
use mailfold_proto::utf7::{decode, encode};
use proptest::prelude::*;

#[test]
fn v0021_ampersand_round_trips() {
    assert_eq!(encode("a&b"), "a&-b");
    assert_eq!(decode(b"a&-b").unwrap(), "a&b");
    assert_eq!(encode("&&"), "&-&-");
    assert_eq!(decode(b"&-&-").unwrap(), "&&");
    // `#` needs no escaping (seed V0021: "`#` unescaped").
    assert_eq!(encode("#news.comp"), "#news.comp");
}

#[test]
fn v0021_rfc_example_and_non_ascii_names() {
    assert_eq!(
        encode("~peter/mail/台北/日本語"),
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    );
    assert_eq!(
        decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
        "~peter/mail/台北/日本語"
    );
    assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
    assert_eq!(decode(b"Entw&APw-rfe").unwrap(), "Entwürfe");
    // Mailbox uses the same encoding.
    assert_eq!(Mailbox::from_utf8("Gelöscht").as_wire(), b"Gel&APY-scht");
    assert_eq!(
        Mailbox::from_wire("Gel&APY-scht").to_utf8().unwrap(),
        "Gelöscht"
    );
}

#[test]
fn v0021_emoji_uses_a_surrogate_pair() {
    assert_eq!(encode("📬 Inbox"), "&2D3c7A- Inbox");
    assert_eq!(decode(b"&2D3c7A- Inbox").unwrap(), "📬 Inbox");
    // Control characters go in base64 too.
    assert_eq!(encode("a\tb"), "a&AAk-b");
    assert_eq!(decode(b"a&AAk-b").unwrap(), "a\tb");
}

#[test]
fn v0021_invalid_encodings_are_errors_with_offsets() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"caf\xc3\xa9", 3, "8-bit byte in a modified UTF-7 name"),
        (b"ab&APw", 2, "shift sequence not terminated by '-'"),
        (
            b"&AP*-",
            3,
            "character outside the modified base64 alphabet",
        ),
        (
            b"&AP/-",
            3,
            "character outside the modified base64 alphabet",
        ),
        (
            b"&APx-",
            4,
            "non-zero padding bits at the end of a shift sequence",
        ),
        (b"&AP-", 3, "shift sequence ends inside a UTF-16 code unit"),
        (b"&AGE-", 3, "printable ASCII must not be base64-encoded"),
        (
            b"&AOk-&AOk-",
            5,
            "shift sequence directly follows another one",
        ),
        (b"&3AA-", 3, "unpaired low surrogate"),
        (b"&2D0-", 3, "unpaired high surrogate"),
        (b"&2D0AYQ-", 3, "unpaired high surrogate"),
        (b"a\nb", 1, "control character must be base64-encoded"),
    ];
    for &(wire, offset, reason) in cases {
        let e = decode(wire).unwrap_err();
        assert_eq!(
            (e.offset, e.reason),
            (offset, reason),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // The merged form of the adjacent shifts is the valid one.
    assert_eq!(decode(b"&AOkA6Q-").unwrap(), "éé");
    assert_eq!(encode("éé"), "&AOkA6Q-");
}

proptest! {
    #[test]
    fn v0021_decode_of_encode_is_identity(s in any::<String>()) {
        let wire = encode(&s);
        prop_assert!(wire.bytes().all(|b| (0x20..0x7f).contains(&b)));
        prop_assert_eq!(decode(wire.as_bytes()).unwrap(), s);
    }

    #[test]
    fn decode_of_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Whatever it returns, a successful decode must re-encode to the same bytes: the
        // decoder accepts only the one canonical form.
        if let Ok(s) = decode(&bytes) {
            let again = encode(&s);
            prop_assert_eq!(again.as_bytes(), &bytes[..]);
        }
    }

    #[test]
    fn decode_of_shift_like_bytes_never_panics(body in "[A-Za-z0-9+,/*-]{0,24}", pre in "[a-z&]{0,3}") {
        let wire = format!("{pre}&{body}");
        if let Ok(s) = decode(wire.as_bytes()) {
            prop_assert_eq!(encode(&s), wire);
        }
    }
}
