//! The streaming contract: body literals above the inline cap stream in chunks with bounded
//! memory, one malformed response fails alone, caps hold for hostile input, and random bytes
//! never panic.

use mailfold_proto::framing::FramingConfig;
use mailfold_proto::parse::{Event, ParseError, ParseErrorKind, ParserConfig, ResponseParser};
use mailfold_proto::response::*;
use proptest::prelude::*;

#[derive(Debug, PartialEq)]
enum Ev {
    Resp(Response),
    Start(u32, String, u64),
    Bytes(usize),
    End,
    Err(ParseErrorKind, u64),
}

fn parser(max_inline: u64, max_line: usize) -> ResponseParser {
    ResponseParser::new(ParserConfig {
        framing: FramingConfig {
            max_line,
            max_inline_literal: max_inline,
            max_response: 1 << 20,
        },
        expect_greeting: false,
    })
}

/// Feeds `input` in pieces of `piece`, returning events (chunks merged) and the body bytes;
/// asserts the buffer never holds more than `bound` bytes.
fn run(p: &mut ResponseParser, input: &[u8], piece: usize, bound: usize) -> (Vec<Ev>, Vec<u8>) {
    let mut evs = Vec::new();
    let mut body = Vec::new();
    for chunk in input.chunks(piece) {
        p.feed(chunk);
        assert!(p.buffered() <= bound, "buffered {} > {bound}", p.buffered());
        while let Some(ev) = p.next() {
            match ev {
                Ok(Event::Response(r)) => evs.push(Ev::Resp(r)),
                Ok(Event::BodyStart { seq, item, len }) => {
                    evs.push(Ev::Start(seq, format!("{item:?}"), len))
                }
                Ok(Event::BodyChunk(b)) => {
                    body.extend_from_slice(b);
                    match evs.last_mut() {
                        Some(Ev::Bytes(n)) => *n += b.len(),
                        _ => evs.push(Ev::Bytes(b.len())),
                    }
                }
                Ok(Event::BodyEnd) => evs.push(Ev::End),
                Err(ParseError { kind, offset, .. }) => evs.push(Ev::Err(kind, offset)),
            }
        }
    }
    (evs, body)
}

#[test]
fn large_body_streams_in_chunks_with_bounded_memory() {
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = format!("* 12 FETCH (UID 99 BODY[]<0> {{{}}}\r\n", data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b" FLAGS (\\Seen))\r\n* 13 EXISTS\r\n");
    let mut p = parser(64 * 1024, 4096);
    let (evs, body) = run(&mut p, &wire, 4096, 2 * 4096);
    assert_eq!(body, data);
    assert_eq!(evs.len(), 5, "{evs:?}");
    assert_eq!(
        evs[0],
        Ev::Start(
            12,
            "Body { section: Section { part: [], spec: Full }, origin: Some(0) }".into(),
            1_000_000
        )
    );
    assert_eq!(evs[1], Ev::Bytes(1_000_000));
    assert_eq!(evs[2], Ev::End);
    let Ev::Resp(Response::Fetch(f)) = &evs[3] else {
        panic!("{:?}", evs[3])
    };
    assert_eq!(f.uid(), Some(99));
    assert_eq!(
        f.items[1],
        FetchItem::BodySection {
            section: Section::default(),
            origin: Some(0),
            data: BodyValue::Streamed { len: 1_000_000 }
        }
    );
    assert!(f.flags().is_some());
    assert_eq!(evs[4], Ev::Resp(Response::Exists(13)));
}

#[test]
fn two_streamed_items_and_an_inline_one_in_one_fetch() {
    let big = vec![b'x'; 300];
    let mut wire = b"* 1 FETCH (BODY[1] {300}\r\n".to_vec();
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b" BODY[2] {3}\r\nabc RFC822.TEXT {300}\r\n");
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b")\r\n");
    for piece in [1, 7, 1000] {
        let mut p = parser(100, 4096);
        let (evs, body) = run(&mut p, &wire, piece, 4096 + 1000);
        assert_eq!(body.len(), 600);
        let starts = evs.iter().filter(|e| matches!(e, Ev::Start(..))).count();
        assert_eq!(starts, 2);
        let Some(Ev::Resp(Response::Fetch(f))) = evs.last() else {
            panic!("{evs:?}")
        };
        assert_eq!(f.items.len(), 3);
        assert_eq!(
            f.items[2],
            FetchItem::Rfc822Text(BodyValue::Streamed { len: 300 })
        );
        assert!(
            matches!(&f.items[1], FetchItem::BodySection { data: BodyValue::Inline(b), .. } if b == &"abc")
        );
    }
}

#[test]
fn malformed_response_fails_alone() {
    let wire = b"* 1 FETCH (UID x)\r\n* 2 EXISTS\r\na1 OK [BOGUS done\r\n* 3 EXISTS\r\n";
    let mut p = parser(100, 4096);
    let (evs, _) = run(&mut p, wire, 3, 4096);
    assert_eq!(
        evs,
        vec![
            Ev::Err(ParseErrorKind::Syntax, 15),
            Ev::Resp(Response::Exists(2)),
            Ev::Err(ParseErrorKind::Syntax, 43),
            Ev::Resp(Response::Exists(3)),
        ]
    );
}

#[test]
fn oversized_literal_outside_a_body_is_skipped_by_count() {
    // The skipped literal contains lines that look like responses: they must not surface.
    let mut wire = b"* LIST () \"/\" {200}\r\n".to_vec();
    wire.extend_from_slice(&b"* 9 EXISTS\r\n".repeat(200 / 12));
    wire.resize(wire.len() + 200 % 12, b'.');
    wire.extend_from_slice(b"\r\n* 4 EXISTS\r\n");
    let mut p = parser(100, 4096);
    let (evs, _) = run(&mut p, &wire, 16, 4096);
    assert_eq!(
        evs,
        vec![
            Ev::Err(ParseErrorKind::LiteralTooLarge, 14),
            Ev::Resp(Response::Exists(4))
        ]
    );
}

#[test]
fn malformed_fetch_before_a_large_literal_reports_the_syntax_error() {
    let mut wire = b"* 7 FETCH (UID x BODY[] {300}\r\n".to_vec();
    wire.extend_from_slice(&[b'*'; 300]);
    wire.extend_from_slice(b")\r\n* 8 EXISTS\r\n");
    let mut p = parser(100, 4096);
    let (evs, body) = run(&mut p, &wire, 64, 4096);
    assert!(body.is_empty());
    assert_eq!(
        evs,
        vec![
            Ev::Err(ParseErrorKind::Syntax, 15),
            Ev::Resp(Response::Exists(8))
        ]
    );
}

#[test]
fn literal_size_overflow_is_a_clean_error() {
    for size in ["4294967295", "4294967296", "99999999999999999999999"] {
        let wire = format!("* 1 FETCH (BODY[] {{{size}}}\r\nabc\r\n* 5 EXISTS\r\n");
        let mut p = parser(100, 4096);
        let (evs, _) = run(&mut p, wire.as_bytes(), 5, 4096);
        assert_eq!(
            evs,
            vec![
                Ev::Err(ParseErrorKind::LiteralSize, 18),
                Ev::Resp(Response::Exists(5))
            ],
            "{size}"
        );
    }
    // Just below the limit is accepted as a (streamed) literal.
    let mut p = parser(100, 4096);
    let (evs, _) = run(&mut p, b"* 1 FETCH (BODY[] {4294967294}\r\nabc", 64, 4096);
    assert_eq!(
        evs[0],
        Ev::Start(
            1,
            "Body { section: Section { part: [], spec: Full }, origin: None }".into(),
            4294967294
        )
    );
}

#[test]
fn hundred_megabyte_line_is_an_error_with_bounded_memory() {
    let cap = 1 << 20;
    let mut p = parser(100, cap);
    let piece = vec![b'a'; 64 * 1024];
    let mut errors = Vec::new();
    p.feed(b"* OK ");
    for _ in 0..(100 * 1024 * 1024 / piece.len()) {
        p.feed(&piece);
        assert!(
            p.buffered() <= cap + 2 * piece.len(),
            "buffered {}",
            p.buffered()
        );
        while let Some(ev) = p.next() {
            errors.push(ev.unwrap_err().kind);
        }
    }
    p.feed(b"\r\nnot a response\r\n* 1 EXISTS\r\n");
    let mut rest = Vec::new();
    while let Some(ev) = p.next() {
        rest.push(ev.map(|e| format!("{e:?}")));
    }
    assert_eq!(errors, vec![ParseErrorKind::LineTooLong]);
    assert_eq!(rest, vec![Ok("Response(Exists(1))".to_string())]);
}

#[test]
fn response_cap_holds_for_many_small_literals() {
    let mut p = ResponseParser::new(ParserConfig {
        framing: FramingConfig {
            max_line: 1024,
            max_inline_literal: 100,
            max_response: 4096,
        },
        expect_greeting: false,
    });
    let mut wire = b"* 1 FETCH (X-A (".to_vec();
    for _ in 0..1000 {
        wire.extend_from_slice(b"{50}\r\n");
        wire.extend_from_slice(&[b'z'; 50]);
    }
    wire.extend_from_slice(b"))\r\n* 2 EXISTS\r\n");
    let (evs, _) = run(&mut p, &wire, 512, 4096 + 1024 + 512);
    assert!(
        matches!(evs[0], Ev::Err(ParseErrorKind::ResponseTooLarge, _)),
        "{evs:?}"
    );
    assert_eq!(evs.last(), Some(&Ev::Resp(Response::Exists(2))));
}

#[test]
fn greeting_only_for_the_first_response_and_offsets_are_stream_wide() {
    let mut p = ResponseParser::new(ParserConfig::default());
    p.feed(b"* OK hi\r\n* OK [ALERT] again\r\n* BAD(\r\n");
    assert!(matches!(
        p.next(),
        Some(Ok(Event::Response(Response::Greeting(_))))
    ));
    assert!(matches!(
        p.next(),
        Some(Ok(Event::Response(Response::Status(_))))
    ));
    // `* BAD(` is a fine status with text "(": nothing to report.
    assert!(matches!(
        p.next(),
        Some(Ok(Event::Response(Response::Status(_))))
    ));
    p.feed(b"* 1 FETCH (FLAGS (\\Seen) UID)\r\n");
    let e = p.next().unwrap().unwrap_err();
    assert_eq!(e.offset, 37 + 28);
    assert!(p.next().is_none());
    assert_eq!(p.offset(), 37 + 31);
}

#[cfg(feature = "serde")]
#[test]
fn serde_renders_bytes_as_text() {
    let (r, _) = mailfold_proto::parse::parse_response(
        b"* 1 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")\r\n",
    )
    .unwrap();
    let j = serde_json::to_string(&r).unwrap();
    assert!(j.contains("\"Inline\":\"abc\""), "{j}");
    assert!(j.contains("\"\\\\Seen\""), "{j}");
    assert!(j.contains("17-Jul-1996 02:44:25 -0700"), "{j}");
}

/// The JSON shape `mailfold debug parse` prints for the core types (flags, tags, mailbox
/// names, UID and sequence sets): plain strings, in wire form.
#[cfg(feature = "serde")]
#[test]
fn serde_renders_core_types_as_wire_strings() {
    let json = |s: &[u8]| {
        let (r, _) = mailfold_proto::parse::parse_response(s).unwrap();
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(
        json(b"* FLAGS (\\Seen $Junk \\X)\r\n"),
        r#"{"Flags":["\\Seen","$Junk","\\X"]}"#
    );
    assert_eq!(
        json(b"a1 OK [APPENDUID 7 3:5,9] done\r\n"),
        r#"{"Status":{"tag":"a1","kind":"Ok","code":{"AppendUid":{"uid_validity":7,"uids":"3:5,9"}},"text":"done"}}"#
    );
    assert_eq!(
        json(b"* OK [MODIFIED 2,4:6] x\r\n"),
        r#"{"Status":{"tag":null,"kind":"Ok","code":{"Modified":"2,4:6"},"text":"x"}}"#
    );
    assert_eq!(
        json(b"* OK [PERMANENTFLAGS (\\Deleted \\*)] x\r\n"),
        r#"{"Status":{"tag":null,"kind":"Ok","code":{"PermanentFlags":["\\Deleted","\\*"]},"text":"x"}}"#
    );
    assert_eq!(
        json(b"* LIST (\\HasNoChildren) \"/\" inbox (OLDNAME (Old&AOQ-))\r\n"),
        r#"{"List":{"attributes":["HasNoChildren"],"delimiter":"/","mailbox":"INBOX","extended":[{"OldName":"Old&AOQ-"}]}}"#
    );
    assert_eq!(
        json(b"* STATUS \"a b\" (MESSAGES 2)\r\n"),
        r#"{"MailboxStatus":{"mailbox":"a b","items":[{"Messages":2}]}}"#
    );
    assert_eq!(
        json(b"* ESEARCH (TAG \"t1\") UID ALL 1:3\r\n"),
        r#"{"Esearch":{"tag":"t1","uid":true,"items":[{"All":"1:3"}]}}"#
    );
    assert_eq!(
        json(b"* VANISHED (EARLIER) 5,7:8\r\n"),
        r#"{"Vanished":{"earlier":true,"uids":"5,7:8"}}"#
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_and_memory_stays_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        piece in 1usize..300,
    ) {
        let mut p = parser(64, 256);
        let (_evs, _) = run(&mut p, &data, piece, 2048 + 256 + 300);
    }

    #[test]
    fn mutated_responses_never_panic(
        idx in any::<prop::sample::Index>(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        const SAMPLES: &[&[u8]] = &[
            b"* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE (\"d\" \"s\" ((\"T\" NIL \"g\" \"c\")) NIL NIL NIL NIL NIL NIL \"<i>\") BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n",
            b"* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1 NIL (\"inline\" NIL) NIL NIL (1 (2)))(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 5 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"A\" \"B\" NIL NIL NIL \"7BIT\" 1) 1) \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL))\r\n",
            b"a1 OK [COPYUID 38505 304,319:320 3956:3958] done\r\n",
            b"* LIST (\\HasNoChildren) \"/\" {4}\r\nSent (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
            b"* ESEARCH (TAG \"a\") UID ALL 1:5,7 MODSEQ 9\r\n",
            b"* NAMESPACE ((\"\" \"/\")) NIL ((\"#s/\" \"/\" \"X\" (\"a\")))\r\n",
            b"* STATUS x (MESSAGES 1 X-Y (1 2))\r\n",
            b"* 3 FETCH (BODY[HEADER.FIELDS (A B)]<3> {2}\r\nab BINARY[1] ~{1}\r\n\x00 MODSEQ (5))\r\n",
        ];
        let s = SAMPLES[idx.index(SAMPLES.len())];
        let mut m = s.to_vec();
        let i = pos.index(m.len());
        m[i] = byte;
        let c = cut.index(m.len() + 1);
        let _ = mailfold_proto::parse::parse_response(&m[..c]);
        let _ = mailfold_proto::parse::parse_response(&m);
        let mut p = parser(8, 256);
        let _ = run(&mut p, &m, 5, 4096);
    }
}

#[test]
fn debug_output_does_not_dump_buffered_bytes() {
    let mut p = parser(100, 4096);
    p.feed(b"* 1 FETCH (BODY[] {20}\r\nsecret-body-bytes");
    while p.next().is_some() {}
    let shown = format!("{p:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("buffered"));
}
