//! Every deviation from RFC 3501 that the parser tolerates (seed N3/N4/N5/N6), one
//! `quirk_…` test each; `docs/quirks.md` lists them with the servers known to send them.

use mailfold_proto::core::Flag;
use mailfold_proto::parse::{parse_response, Event, ParserConfig, ResponseParser};
use mailfold_proto::response::*;

fn one(s: &[u8]) -> Response {
    let (r, n) = parse_response(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        n,
        s.len(),
        "consumed all of {:?}",
        String::from_utf8_lossy(s)
    );
    r
}

fn status(s: &[u8]) -> StatusResponse {
    match one(s) {
        Response::Status(st) => st,
        r => panic!("not a status: {r:?}"),
    }
}

fn fetch(s: &[u8]) -> Fetch {
    match one(s) {
        Response::Fetch(f) => f,
        r => panic!("not a FETCH: {r:?}"),
    }
}

fn single(f: &Fetch) -> &SinglePart {
    match f.body_structure() {
        Some(BodyStructure::Single(p)) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn n3_forgiving_parser_reports_instead_of_crashing() {
    // Tolerated deviations parse; what cannot be parsed is reported with an offset, and
    // the stream goes on.
    let mut p = ResponseParser::new(ParserConfig::default());
    p.feed(
        b"* OK  ready \r\n* 1 FETCH (FLAGS (\\Seen) BODYSTRUCTURE (\"TEXT\"))\r\n* 2 EXISTS\r\n",
    );
    let mut out = Vec::new();
    while let Some(ev) = p.next() {
        out.push(
            ev.map(|e| matches!(e, Event::Response(_)))
                .map_err(|e| e.offset),
        );
    }
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], Ok(true));
    assert!(out[1].is_err());
    assert_eq!(out[2], Ok(true));
}

#[test]
fn n4_extra_spaces_tabs_trailing_space_and_missing_text() {
    let s = status(b"a1  OK\t [READ-WRITE]   done  \r\n");
    assert_eq!((s.code, s.text.as_str()), (Some(Code::ReadWrite), "done"));
    assert_eq!(status(b"* OK\r\n").text, "");
    assert_eq!(status(b"a1 NO\r\n").kind, StatusKind::No);
}

#[test]
fn n6_unknown_flag_extensions_kept() {
    let f = fetch(b"* 1 FETCH (FLAGS (\\Seen \\X-Archived \\MDNSent $Label1))\r\n");
    let flags = f.flags().unwrap();
    assert_eq!(flags[1], Flag::Extension("X-Archived".into()));
    assert_eq!(flags[1].to_string(), "\\X-Archived");
    assert_eq!(flags[2], Flag::Extension("MDNSent".into()));
    assert_eq!(flags[3], Flag::Keyword("$Label1".into()));
}

#[test]
fn quirk_runs_of_spaces_and_tabs_between_tokens() {
    let f = fetch(b"*  1   FETCH\t(UID  5 \t FLAGS ( \\Seen  \\Answered ) )\r\n");
    assert_eq!(f.uid(), Some(5));
    assert_eq!(f.flags().unwrap().len(), 2);
    let Response::List(l) = one(b"* LIST  (\\HasNoChildren)\t\"/\"  INBOX\r\n") else {
        panic!()
    };
    assert!(l.mailbox.is_inbox());
}

#[test]
fn quirk_trailing_spaces() {
    assert_eq!(
        one(b"* SEARCH 1 2 \r\n"),
        Response::Search(Search {
            ids: vec![1, 2],
            modseq: None
        })
    );
    assert_eq!(
        one(b"* CAPABILITY IMAP4rev1 IDLE \r\n"),
        Response::Capability(vec!["IMAP4REV1".into(), "IDLE".into()])
    );
    assert_eq!(one(b"* 4 EXISTS \r\n"), Response::Exists(4));
    assert_eq!(one(b"* ID NIL \r\n"), Response::Id(vec![]));
    assert_eq!(fetch(b"* 1 FETCH (UID 1) \r\n").uid(), Some(1));
}

#[test]
fn quirk_missing_text_after_status() {
    let s = status(b"* OK [UIDVALIDITY 42]\r\n");
    assert_eq!(s.text, "");
    assert!(s.code.is_some());
    assert_eq!(status(b"a1 BAD\r\n").text, "");
    assert_eq!(status(b"* BYE\r\n").kind, StatusKind::Bye);
}

#[test]
fn quirk_bare_plus_continuation() {
    let empty = Response::Continue(Continue {
        code: None,
        text: String::new(),
    });
    assert_eq!(one(b"+\r\n"), empty);
    assert_eq!(one(b"+\n"), empty);
    assert_eq!(one(b"+ \r\n"), empty);
}

#[test]
fn quirk_bare_lf_line_ends() {
    let mut p = ResponseParser::new(ParserConfig::default());
    p.feed(b"* OK hi\n* 1 FETCH (BODY[] {3}\nabc)\n* 2 EXISTS\n");
    let mut n = 0;
    while let Some(ev) = p.next() {
        assert!(matches!(ev, Ok(Event::Response(_))));
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn quirk_nil_body_encoding_read_as_empty() {
    let f = fetch(
        b"* 1 FETCH (BODYSTRUCTURE (\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL NIL 10))\r\n",
    );
    assert_eq!(single(&f).encoding, "");
}

#[test]
fn quirk_nil_parameter_value_such_as_boundary() {
    let f = fetch(b"* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" NIL) NIL NIL \"7BIT\" 1 1) \"MIXED\" (\"BOUNDARY\" NIL) NIL NIL NIL))\r\n");
    let Some(BodyStructure::Multipart(m)) = f.body_structure() else {
        panic!()
    };
    assert_eq!(
        m.ext.as_ref().unwrap().params,
        vec![("BOUNDARY".into(), None)]
    );
    let BodyStructure::Single(p) = &m.parts[0] else {
        panic!()
    };
    assert_eq!(p.params, vec![("CHARSET".into(), None)]);
}

#[test]
fn quirk_nil_media_type_and_subtype() {
    let f = fetch(b"* 1 FETCH (BODYSTRUCTURE (NIL NIL NIL NIL NIL \"7BIT\" 10))\r\n");
    assert_eq!(
        (
            single(&f).media_type.as_bytes(),
            single(&f).media_subtype.as_bytes()
        ),
        (&b""[..], &b""[..])
    );
}

#[test]
fn quirk_unknown_flags_kept_as_extension() {
    let Response::Flags(f) = one(b"* FLAGS (\\Seen \\Phishing NonJunk)\r\n") else {
        panic!()
    };
    assert_eq!(f[1], Flag::Extension("Phishing".into()));
    assert_eq!(f[2], Flag::Keyword("NonJunk".into()));
}

#[test]
fn quirk_lower_case_keywords_and_response_names() {
    let f =
        fetch(b"* 1 fetch (uid 7 flags (\\seen) body[header.fields (from)] nil rfc822.size 3)\r\n");
    assert_eq!(f.uid(), Some(7));
    assert_eq!(f.flags(), Some(&[Flag::Seen][..]));
    assert_eq!(f.rfc822_size(), Some(3));
    assert_eq!(
        status(b"a1 ok [read-write] done\r\n").code,
        Some(Code::ReadWrite)
    );
    assert_eq!(one(b"* 3 exists\r\n"), Response::Exists(3));
    assert!(matches!(one(b"* list () nil inbox\r\n"), Response::List(_)));
}

#[test]
fn quirk_raw_utf8_in_quoted_strings() {
    let Response::List(l) = one("* LIST () \"/\" \"Entw\u{fc}rfe\"\r\n".as_bytes()) else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), "Entw\u{fc}rfe".as_bytes());
    let f = fetch(
        "* 1 FETCH (ENVELOPE (NIL \"\u{65e5}\u{672c}\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
            .as_bytes(),
    );
    assert_eq!(
        f.envelope().unwrap().subject.as_deref(),
        Some("\u{65e5}\u{672c}".as_bytes())
    );
}

#[test]
fn quirk_raw_utf8_in_mailbox_atom() {
    let Response::List(l) = one("* LIST () \"/\" Entw\u{fc}rfe\r\n".as_bytes()) else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), "Entw\u{fc}rfe".as_bytes());
}

#[test]
fn quirk_vendor_fetch_items_kept_raw() {
    let f = fetch(b"* 1 FETCH (X-GM-LABELS (\"\\\\Important\" Work) X-GUID 8b1c X-MAILBOX {5}\r\nINBOX UID 1)\r\n");
    assert_eq!(
        f.items[0],
        FetchItem::Other {
            name: "X-GM-LABELS".into(),
            raw: "(\"\\\\Important\" Work)".into()
        }
    );
    assert_eq!(
        f.items[1],
        FetchItem::Other {
            name: "X-GUID".into(),
            raw: "8b1c".into()
        }
    );
    assert_eq!(
        f.items[2],
        FetchItem::Other {
            name: "X-MAILBOX".into(),
            raw: "{5}\r\nINBOX".into()
        }
    );
    assert_eq!(f.uid(), Some(1));
}

#[test]
fn quirk_unknown_response_code_kept_raw() {
    let s = status(b"* OK [UNKNOWN-CODE x y] hello\r\n");
    assert_eq!(
        s.code,
        Some(Code::Other {
            name: "UNKNOWN-CODE".into(),
            raw: "x y".into()
        })
    );
    assert_eq!(s.text, "hello");
}

#[test]
fn quirk_known_code_with_bad_arguments_kept_raw() {
    // UIDVALIDITY 0 is not an nz-number: the code is kept raw, the status still parses.
    let s = status(b"* OK [UIDVALIDITY 0] x\r\n");
    assert_eq!(
        s.code,
        Some(Code::Other {
            name: "UIDVALIDITY".into(),
            raw: "0".into()
        })
    );
    let s = status(b"a1 OK [COPYUID 5 1:*] x\r\n");
    assert!(matches!(s.code, Some(Code::Other { .. })));
}

#[test]
fn quirk_fetch_without_space_before_list() {
    let f = fetch(b"* 1 FETCH(FLAGS ())\r\n");
    assert_eq!(f.flags(), Some(&[][..]));
}

#[test]
fn quirk_empty_flag_list() {
    assert_eq!(one(b"* FLAGS ()\r\n"), Response::Flags(vec![]));
    assert_eq!(
        status(b"* OK [PERMANENTFLAGS ()] none\r\n").code,
        Some(Code::PermanentFlags(vec![]))
    );
}

#[test]
fn quirk_body_section_nil() {
    let f = fetch(b"* 1 FETCH (BODY[] NIL UID 3)\r\n");
    assert_eq!(
        f.items[0],
        FetchItem::BodySection {
            section: Section::default(),
            origin: None,
            data: BodyValue::Nil
        }
    );
}

#[test]
fn quirk_spaces_between_addresses_and_parts() {
    let f = fetch(b"* 1 FETCH (ENVELOPE (NIL NIL ((\"A\" NIL \"a\" \"x\") (\"B\" NIL \"b\" \"x\")) NIL NIL NIL NIL NIL NIL NIL))\r\n");
    assert_eq!(f.envelope().unwrap().from.len(), 2);
    let f = fetch(b"* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1) (\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 1 1) \"ALTERNATIVE\"))\r\n");
    let Some(BodyStructure::Multipart(m)) = f.body_structure() else {
        panic!()
    };
    assert_eq!(m.parts.len(), 2);
}

#[test]
fn quirk_text_part_without_line_count() {
    let f = fetch(b"* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10))\r\n");
    assert_eq!(single(&f).kind, SingleKind::Text { lines: 0 });
}

#[test]
fn quirk_disposition_as_bare_string() {
    let f = fetch(b"* 1 FETCH (BODYSTRUCTURE (\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 10 NIL \"inline\" NIL NIL))\r\n");
    let d = single(&f)
        .ext
        .as_ref()
        .unwrap()
        .disposition
        .as_ref()
        .unwrap();
    assert_eq!((d.kind.as_bytes(), d.params.len()), (&b"inline"[..], 0));
}

#[test]
fn quirk_message_rfc822_without_envelope() {
    // Some servers describe message/rfc822 parts as basic parts.
    let f = fetch(b"* 1 FETCH (BODYSTRUCTURE (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 10 NIL NIL NIL NIL))\r\n");
    assert_eq!(single(&f).kind, SingleKind::Basic);
}

#[test]
fn quirk_internaldate_unpadded_day() {
    let f = fetch(b"* 1 FETCH (INTERNALDATE \"1-Feb-2024 00:00:00 +0000\")\r\n");
    assert_eq!(f.internal_date().unwrap().day, 1);
}

#[test]
fn quirk_missing_space_before_response_code() {
    let s = status(b"* OK[ALERT] mind the gap\r\n");
    assert_eq!(
        (s.code, s.text.as_str()),
        (Some(Code::Alert), "mind the gap")
    );
}

#[test]
fn quirk_non_synchronizing_literal_from_server() {
    let Response::List(l) = one(b"* LIST () \"/\" {4+}\r\nSent\r\n") else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), b"Sent");
}

#[test]
fn quirk_invalid_escape_in_quoted_string_kept() {
    let Response::List(l) = one(b"* LIST () \"\\\\\" \"a\\b\"\r\n") else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), b"a\\b");
}

#[test]
fn quirk_unknown_untagged_response_kept_raw() {
    let r = one(b"* XAPPLEPUSHSERVICE aps-version 2\r\n");
    assert!(
        matches!(r, Response::Other(OtherResponse { ref name, .. }) if name == "XAPPLEPUSHSERVICE")
    );
}

#[test]
fn quirk_esearch_correlator_with_extra_fields() {
    let Response::Esearch(e) =
        one(b"* ESEARCH (TAG \"a1\" MAILBOX \"INBOX\" UIDVALIDITY 7) UID COUNT 0\r\n")
    else {
        panic!()
    };
    assert_eq!(e.tag.unwrap().as_str(), "a1");
    assert_eq!(e.items, vec![EsearchItem::Count(0)]);
}
