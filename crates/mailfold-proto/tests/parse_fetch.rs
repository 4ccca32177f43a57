//! FETCH data items: every RFC 3501 item plus MODSEQ, BINARY and vendor items; ENVELOPE
//! and BODYSTRUCTURE in depth (seed V0008/V0072, V0009/V0071, N5); partial bodies (V0053).

use mailfold_proto::core::Flag;
use mailfold_proto::parse::{parse_response, ParseErrorKind, MAX_DEPTH};
use mailfold_proto::response::*;

fn fetch(s: &str) -> Fetch {
    match parse_response(s.as_bytes()) {
        Ok((Response::Fetch(f), n)) => {
            assert_eq!(n, s.len());
            f
        }
        other => panic!("not a FETCH: {other:?}"),
    }
}

#[test]
fn c0003_all_message_attributes_including_modseq() {
    let f = fetch(
        "* 7 FETCH (UID 4827313 FLAGS (\\Seen $Forwarded) INTERNALDATE \"08-Nov-2023 13:45:01 +0100\" \
RFC822.SIZE 5000000000 MODSEQ (624140003) \
ENVELOPE (\"Wed, 8 Nov 2023\" \"hi\" NIL NIL NIL NIL NIL NIL NIL \"<id@x>\") \
BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1))\r\n",
    );
    assert_eq!(f.seq, 7);
    assert_eq!(f.uid(), Some(4827313));
    assert_eq!(
        f.flags(),
        Some(&[Flag::Seen, Flag::Keyword("$Forwarded".into())][..])
    );
    let d = f.internal_date().unwrap();
    assert_eq!(d.to_string(), "08-Nov-2023 13:45:01 +0100");
    assert_eq!(d.unix_timestamp(), 1_699_447_501);
    // RFC822.SIZE is u64: sizes over 4 GiB do not wrap.
    assert_eq!(f.rfc822_size(), Some(5_000_000_000));
    assert_eq!(f.modseq(), Some(624140003));
    assert_eq!(
        f.envelope().unwrap().message_id.as_deref(),
        Some(&b"<id@x>"[..])
    );
    assert!(f.body_structure().is_some());
    // Mod-sequences are 63-bit values: u64, overflow is an error.
    assert_eq!(
        fetch("* 1 FETCH (MODSEQ (18446744073709551615))\r\n").modseq(),
        Some(u64::MAX)
    );
    assert!(parse_response(b"* 1 FETCH (MODSEQ (18446744073709551616))\r\n").is_err());
}

#[test]
fn v0004_recent_flag_parsed() {
    let f = fetch("* 3 FETCH (FLAGS (\\Recent \\Seen))\r\n");
    assert_eq!(f.flags(), Some(&[Flag::Recent, Flag::Seen][..]));
    assert!(!f.flags().unwrap()[0].is_storable());
}

#[test]
fn v0008_envelope_with_groups_and_nil_fields() {
    let f = fetch(
        "* 1 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" {12}\r\nA \"quoted\" s \
((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example.COM\")) NIL NIL \
((NIL NIL \"undisclosed\" NIL)(NIL NIL NIL NIL)) NIL NIL \"<x@y>\" NIL))\r\n",
    );
    let e = f.envelope().unwrap();
    assert_eq!(
        e.date.as_deref(),
        Some(&b"Mon, 7 Feb 1994 21:52:25 -0800 (PST)"[..])
    );
    assert_eq!(e.subject.as_deref(), Some(&b"A \"quoted\" s"[..]));
    assert_eq!(
        e.from,
        vec![Address {
            name: Some("Fred Foobar".into()),
            adl: None,
            mailbox: Some("foobar".into()),
            host: Some("Blurdybloop.example.COM".into())
        }]
    );
    assert!(e.sender.is_empty() && e.reply_to.is_empty());
    // A group: start marker (host NIL) and end marker (mailbox NIL).
    assert_eq!(e.to.len(), 2);
    assert_eq!(e.to[0].mailbox.as_deref(), Some(&b"undisclosed"[..]));
    assert_eq!(e.to[0].host, None);
    assert_eq!(e.to[1], Address::default());
    assert_eq!(e.in_reply_to.as_deref(), Some(&b"<x@y>"[..]));
    assert_eq!(e.message_id, None);
}

#[test]
fn v0072_envelope_escaped_quotes_and_utf8() {
    let f = fetch(
        "* 2 FETCH (ENVELOPE (NIL \"say \\\"hi\\\" \\\\ caf\u{e9}\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
    );
    assert_eq!(
        f.envelope().unwrap().subject.as_deref(),
        Some("say \"hi\" \\ caf\u{e9}".as_bytes())
    );
}

const NESTED: &str = "* 9 FETCH (BODYSTRUCTURE (\
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"QUOTED-PRINTABLE\" 1315 42 NIL NIL NIL NIL)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 8000 \
(NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
((\"TEXT\" \"HTML\" NIL NIL NIL \"BASE64\" 400 6 \"md5sum\" (\"inline\" NIL) (\"en\" \"de\") \"http://x/loc\" 1 (2 \"three\" (NIL 4)))\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"a.pdf\") \"<cid>\" \"desc\" \"BASE64\" 5000 NIL (\"attachment\" (\"FILENAME\" \"a.pdf\")) NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"inner-b\") NIL NIL NIL (\"x\" 5)) 120 NIL NIL NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"outer-b\") (\"inline\" NIL) \"en\" \"loc\" 99 NIL))\r\n";

#[test]
fn v0009_bodystructure_nested_with_extensions() {
    let f = fetch(NESTED);
    let bs = f.body_structure().unwrap();
    let BodyStructure::Multipart(outer) = bs else {
        panic!()
    };
    assert_eq!(outer.media_subtype, "MIXED");
    assert_eq!(outer.parts.len(), 2);
    let ext = outer.ext.as_ref().unwrap();
    assert_eq!(
        ext.params,
        vec![("BOUNDARY".into(), Some("outer-b".into()))]
    );
    assert_eq!(ext.disposition.as_ref().unwrap().kind, "inline");
    assert_eq!(ext.language, vec![ByteString::from("en")]);
    assert_eq!(ext.location.as_deref(), Some(&b"loc"[..]));
    assert_eq!(
        ext.extensions,
        vec![BodyExtension::Number(99), BodyExtension::Nil]
    );

    let BodyStructure::Single(text) = bs.part(&[1]).unwrap() else {
        panic!()
    };
    assert_eq!(text.kind, SingleKind::Text { lines: 42 });
    assert_eq!(text.encoding, "QUOTED-PRINTABLE");

    let BodyStructure::Single(msg) = bs.part(&[2]).unwrap() else {
        panic!()
    };
    let SingleKind::Message {
        envelope,
        body,
        lines,
    } = &msg.kind
    else {
        panic!()
    };
    assert_eq!(envelope.subject.as_deref(), Some(&b"inner"[..]));
    assert_eq!(*lines, 120);
    let BodyStructure::Multipart(inner) = body else {
        panic!()
    };
    assert_eq!(
        inner.ext.as_ref().unwrap().extensions,
        vec![BodyExtension::List(vec![
            BodyExtension::String("x".into()),
            BodyExtension::Number(5)
        ])]
    );

    // Part 2.1 (inside the message/rfc822): extension fields at depth 3 (seed N5).
    let BodyStructure::Single(html) = bs.part(&[2, 1]).unwrap() else {
        panic!()
    };
    let x = html.ext.as_ref().unwrap();
    assert_eq!(x.md5.as_deref(), Some(&b"md5sum"[..]));
    assert_eq!(x.disposition.as_ref().unwrap().kind, "inline");
    assert_eq!(
        x.language,
        vec![ByteString::from("en"), ByteString::from("de")]
    );
    assert_eq!(x.location.as_deref(), Some(&b"http://x/loc"[..]));
    assert_eq!(
        x.extensions,
        vec![
            BodyExtension::Number(1),
            BodyExtension::List(vec![
                BodyExtension::Number(2),
                BodyExtension::String("three".into()),
                BodyExtension::List(vec![BodyExtension::Nil, BodyExtension::Number(4)])
            ])
        ]
    );
    let BodyStructure::Single(pdf) = bs.part(&[2, 2]).unwrap() else {
        panic!()
    };
    assert_eq!(pdf.id.as_deref(), Some(&b"<cid>"[..]));
    assert_eq!(pdf.description.as_deref(), Some(&b"desc"[..]));
    assert_eq!(pdf.size, 5000);
    let d = pdf.ext.as_ref().unwrap().disposition.as_ref().unwrap();
    assert_eq!(d.params, vec![("FILENAME".into(), Some("a.pdf".into()))]);
    assert!(bs.part(&[3]).is_none());
    assert!(bs.part(&[0]).is_none());
}

#[test]
fn v0071_body_non_extensible_form() {
    let f = fetch(
        "* 1 FETCH (BODY ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)\
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 73) \"MIXED\"))\r\n",
    );
    let FetchItem::Body(b) = &f.items[0] else {
        panic!()
    };
    let BodyStructure::Multipart(m) = b else {
        panic!()
    };
    assert_eq!(m.parts.len(), 2);
    assert_eq!(m.ext, None);
    let BodyStructure::Single(p) = &m.parts[1] else {
        panic!()
    };
    assert_eq!(p.params.len(), 2);
    assert_eq!(p.kind, SingleKind::Text { lines: 73 });
}

#[test]
fn n5_body_extensions_at_any_depth() {
    // Extension data nested 20 lists deep, on a part nested 10 multiparts deep.
    let ext = format!("{}1{}", "(".repeat(20), ")".repeat(20));
    let leaf = format!("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1 NIL NIL NIL NIL {ext})");
    let mut body = leaf;
    for _ in 0..10 {
        body = format!("({body} \"MIXED\" NIL NIL NIL NIL {})", "(2 NIL \"s\")");
    }
    let f = fetch(&format!("* 1 FETCH (BODYSTRUCTURE {body})\r\n"));
    let deep = f.body_structure().unwrap().part(&[1; 10]).unwrap();
    let BodyStructure::Single(p) = deep else {
        panic!()
    };
    let mut e = &p.ext.as_ref().unwrap().extensions[0];
    let mut depth = 0;
    while let BodyExtension::List(v) = e {
        e = &v[0];
        depth += 1;
    }
    assert_eq!((depth, e), (20, &BodyExtension::Number(1)));
    // Beyond MAX_DEPTH it is a clean error, not a stack overflow.
    let too_deep = format!(
        "* 1 FETCH (BODYSTRUCTURE (\"A\" \"B\" NIL NIL NIL \"7BIT\" 1 NIL NIL NIL NIL {}1{}))\r\n",
        "(".repeat(MAX_DEPTH as usize + 5),
        ")".repeat(MAX_DEPTH as usize + 5)
    );
    let e = parse_response(too_deep.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooDeep);
    let bomb = format!("* 1 FETCH (X-FOO {})\r\n", "(".repeat(100_000));
    assert!(parse_response(bomb.as_bytes()).is_err());
}

#[test]
fn v0053_partial_body_with_origin() {
    let f = fetch("* 4 FETCH (BODY[]<0> {5}\r\nabcde UID 9)\r\n");
    assert_eq!(
        f.items[0],
        FetchItem::BodySection {
            section: Section::default(),
            origin: Some(0),
            data: BodyValue::Inline("abcde".into())
        }
    );
    let f = fetch("* 4 FETCH (BODY[1.2.TEXT]<1024> \"xyz\")\r\n");
    assert_eq!(
        f.items[0],
        FetchItem::BodySection {
            section: Section {
                part: vec![1, 2],
                spec: SectionSpec::Text
            },
            origin: Some(1024),
            data: BodyValue::Inline("xyz".into())
        }
    );
}

#[test]
fn section_specifiers() {
    let f = fetch(
        "* 1 FETCH (BODY[HEADER.FIELDS (DATE \"FROM\" Subject)] {2}\r\nab BODY[HEADER.FIELDS.NOT (X-A)] NIL BODY[2.MIME] NIL BODY[3] NIL BODY[TEXT] NIL BODY[HEADER] NIL)\r\n",
    );
    let specs: Vec<_> = f
        .items
        .iter()
        .map(|i| match i {
            FetchItem::BodySection { section, .. } => section.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        specs[0].spec,
        SectionSpec::HeaderFields(vec!["DATE".into(), "FROM".into(), "Subject".into()])
    );
    assert_eq!(
        specs[1].spec,
        SectionSpec::HeaderFieldsNot(vec!["X-A".into()])
    );
    assert_eq!(
        specs[2],
        Section {
            part: vec![2],
            spec: SectionSpec::Mime
        }
    );
    assert_eq!(
        specs[3],
        Section {
            part: vec![3],
            spec: SectionSpec::Full
        }
    );
    assert_eq!(specs[4].spec, SectionSpec::Text);
    assert_eq!(specs[5].spec, SectionSpec::Header);
}

#[test]
fn rfc822_items_and_binary() {
    let f = fetch(
        "* 1 FETCH (RFC822 {3}\r\nabc RFC822.HEADER \"h\" RFC822.TEXT NIL BINARY[1]<5> ~{2}\r\n\x00\x01 BINARY.SIZE[1] 77)\r\n",
    );
    assert_eq!(
        f.items[0],
        FetchItem::Rfc822(BodyValue::Inline("abc".into()))
    );
    assert_eq!(
        f.items[1],
        FetchItem::Rfc822Header(BodyValue::Inline("h".into()))
    );
    assert_eq!(f.items[2], FetchItem::Rfc822Text(BodyValue::Nil));
    assert_eq!(
        f.items[3],
        FetchItem::Binary {
            section: vec![1],
            origin: Some(5),
            data: BodyValue::Inline(ByteString::from(vec![0, 1]))
        }
    );
    assert_eq!(
        f.items[4],
        FetchItem::BinarySize {
            section: vec![1],
            size: 77
        }
    );
}

#[test]
fn vendor_items_kept_raw() {
    let f = fetch(
        "* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \\Sent Important \"Muy Importante\") UID 5)\r\n",
    );
    assert_eq!(
        f.items[0],
        FetchItem::Other {
            name: "X-GM-THRID".into(),
            raw: "1278455344230334865".into()
        }
    );
    assert_eq!(
        f.items[2],
        FetchItem::Other {
            name: "X-GM-LABELS".into(),
            raw: "(\\Inbox \\Sent Important \"Muy Importante\")".into()
        }
    );
    assert_eq!(f.uid(), Some(5));
}

#[test]
fn internaldate_forms() {
    for (s, day) in [
        ("\"17-Jul-1996 02:44:25 -0700\"", 17),
        ("\" 7-Jul-1996 02:44:25 -0700\"", 7),
        ("\"7-jul-1996 02:44:25 -0700\"", 7),
    ] {
        let f = fetch(&format!("* 1 FETCH (INTERNALDATE {s})\r\n"));
        assert_eq!(f.internal_date().unwrap().day, day);
    }
    for bad in [
        "\"32-Jul-1996 02:44:25 -0700\"",
        "\"17-Foo-1996 02:44:25 -0700\"",
        "\"17-Jul-1996 25:44:25 -0700\"",
        "\"17-Jul-1996 02:44:25\"",
    ] {
        assert!(
            parse_response(format!("* 1 FETCH (INTERNALDATE {bad})\r\n").as_bytes()).is_err(),
            "{bad}"
        );
    }
}

/// Long strings share one copy of their response when it is small, and own their bytes
/// when it is large; either way they read back byte-exact, quoted or literal.
#[test]
fn long_strings_from_small_and_large_responses() {
    let subject = "Re: a subject line that is far longer than twenty-two bytes";
    let id = "<0123456789.abcdefghij@mail.example.org>";
    for pad in [0usize, 20_000] {
        let filler = "x".repeat(pad);
        let line = format!(
            "* 1 FETCH (ENVELOPE (NIL \"{subject}\" NIL NIL NIL NIL NIL NIL \
             {{{}}}\r\n{id} \"short\") X-PAD \"{filler}\")\r\n",
            id.len()
        );
        let (r, n) = parse_response(line.as_bytes()).unwrap();
        assert_eq!(n, line.len());
        let Response::Fetch(f) = r else {
            panic!("{r:?}")
        };
        let e = f.envelope().unwrap();
        assert_eq!(e.subject.as_deref(), Some(subject.as_bytes()), "pad {pad}");
        assert_eq!(e.in_reply_to.as_deref(), Some(id.as_bytes()), "pad {pad}");
        assert_eq!(e.message_id.as_deref(), Some(&b"short"[..]));
        // A clone outlives the response it came from.
        let kept = e.subject.clone().unwrap();
        drop(f);
        assert_eq!(kept, subject);
    }
}
