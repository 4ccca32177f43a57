//! The example session of RFC 3501 section 8, server side, parsed in order through the
//! streaming parser, fed whole and in small pieces; every response is checked by type.

use mailfold_proto::core::Flag;
use mailfold_proto::parse::{Event, ParserConfig, ResponseParser};
use mailfold_proto::response::*;

fn header_block() -> Vec<u8> {
    [
        "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "From: Terry Gray <gray@cac.washington.edu>",
        "Subject: IMAP4rev1 WG mtg summary and minutes",
        "To: imap@cac.washington.edu",
        "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>",
        "Message-Id: <B27397-0100000@cac.washington.edu>",
        "MIME-Version: 1.0",
        "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII",
        "",
        "",
    ]
    .join("\r\n")
    .into_bytes()
}

fn server_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(
        b"* OK IMAP4rev1 Service Ready\r\n\
a001 OK LOGIN completed\r\n\
* 18 EXISTS\r\n\
* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* 2 RECENT\r\n\
* OK [UNSEEN 17] Message 17 is the first unseen message\r\n\
* OK [UIDVALIDITY 3857529045] UIDs valid\r\n\
a002 OK [READ-WRITE] SELECT completed\r\n\
* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" \
RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
\"IMAP4rev1 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")\
(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \
\"<B27397-0100000@cac.washington.edu>\") \
BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n\
a003 OK FETCH completed\r\n",
    );
    let h = header_block();
    s.extend_from_slice(format!("* 12 FETCH (BODY[HEADER] {{{}}}\r\n", h.len()).as_bytes());
    s.extend_from_slice(&h);
    s.extend_from_slice(
        b")\r\n\
a004 OK FETCH completed\r\n\
* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n\
a005 OK +FLAGS completed\r\n\
* BYE IMAP4rev1 server terminating connection\r\n\
a006 OK LOGOUT completed\r\n",
    );
    s
}

fn collect(piece: usize) -> Vec<Response> {
    let mut p = ResponseParser::new(ParserConfig::default());
    let mut out = Vec::new();
    for chunk in server_stream().chunks(piece) {
        p.feed(chunk);
        while let Some(ev) = p.next() {
            match ev.expect("the RFC session parses") {
                Event::Response(r) => out.push(r),
                other => panic!("nothing in this session streams: {other:?}"),
            }
        }
    }
    assert_eq!(p.buffered(), 0);
    out
}

fn tagged(r: &Response, tag: &str, kind: StatusKind) -> Option<Code> {
    match r {
        Response::Status(s) if s.tag.as_ref().map(|t| t.as_str()) == Some(tag) => {
            assert_eq!(s.kind, kind);
            s.code.clone()
        }
        other => panic!("expected tagged {tag}: {other:?}"),
    }
}

#[test]
fn rfc3501_section8_session_in_order() {
    let whole = collect(usize::MAX);
    for piece in [1, 2, 7, 64] {
        assert_eq!(collect(piece), whole, "fed in pieces of {piece}");
    }
    let mut it = whole.iter();
    let mut next = || it.next().expect("another response");

    assert_eq!(
        next(),
        &Response::Greeting(Greeting {
            kind: GreetingKind::Ok,
            code: None,
            text: "IMAP4rev1 Service Ready".into()
        })
    );
    assert_eq!(tagged(next(), "a001", StatusKind::Ok), None);
    assert_eq!(next(), &Response::Exists(18));
    assert_eq!(
        next(),
        &Response::Flags(vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft
        ])
    );
    assert_eq!(next(), &Response::Recent(2));
    match next() {
        Response::Status(s) => {
            assert_eq!(s.tag, None);
            assert_eq!(s.code, Some(Code::Unseen(17)));
            assert_eq!(s.text, "Message 17 is the first unseen message");
        }
        r => panic!("{r:?}"),
    }
    match next() {
        Response::Status(s) => assert_eq!(
            s.code,
            Some(Code::UidValidity(3857529045u32.try_into().unwrap()))
        ),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        tagged(next(), "a002", StatusKind::Ok),
        Some(Code::ReadWrite)
    );

    let Response::Fetch(f) = next() else {
        panic!("FETCH")
    };
    assert_eq!(f.seq, 12);
    assert_eq!(f.flags(), Some(&[Flag::Seen][..]));
    let d = f.internal_date().unwrap();
    assert_eq!(
        (d.year, d.month, d.day, d.offset_minutes),
        (1996, 7, 17, -420)
    );
    assert_eq!(f.rfc822_size(), Some(4286));
    let e = f.envelope().unwrap();
    assert_eq!(
        e.subject.as_deref(),
        Some(&b"IMAP4rev1 WG mtg summary and minutes"[..])
    );
    assert_eq!(e.from[0].name.as_deref(), Some(&b"Terry Gray"[..]));
    assert_eq!(e.cc.len(), 2);
    assert_eq!(e.cc[1].host.as_deref(), Some(&b"MIT.EDU"[..]));
    assert_eq!(e.bcc, vec![]);
    assert_eq!(e.in_reply_to, None);
    assert_eq!(
        e.message_id.as_deref(),
        Some(&b"<B27397-0100000@cac.washington.edu>"[..])
    );
    let BodyStructure::Single(part) = f.body_structure().unwrap() else {
        panic!("single part")
    };
    assert_eq!(part.media_type, "TEXT");
    assert_eq!(part.media_subtype, "PLAIN");
    assert_eq!(
        part.params,
        vec![("CHARSET".into(), Some("US-ASCII".into()))]
    );
    assert_eq!(part.encoding, "7BIT");
    assert_eq!(part.size, 3028);
    assert_eq!(part.kind, SingleKind::Text { lines: 92 });
    assert_eq!(part.ext, None);
    assert_eq!(tagged(next(), "a003", StatusKind::Ok), None);

    let Response::Fetch(f) = next() else {
        panic!("FETCH")
    };
    let header = Section {
        part: vec![],
        spec: SectionSpec::Header,
    };
    assert_eq!(
        f.section(&header).and_then(|v| v.bytes()),
        Some(&header_block()[..])
    );
    assert_eq!(tagged(next(), "a004", StatusKind::Ok), None);

    let Response::Fetch(f) = next() else {
        panic!("FETCH")
    };
    assert_eq!(f.flags(), Some(&[Flag::Seen, Flag::Deleted][..]));
    assert_eq!(tagged(next(), "a005", StatusKind::Ok), None);
    match next() {
        Response::Status(s) => {
            assert_eq!(s.kind, StatusKind::Bye);
            assert_eq!(s.text, "IMAP4rev1 server terminating connection");
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(tagged(next(), "a006", StatusKind::Ok), None);
    assert_eq!(it.next(), None);
}
