//! One test per response type (RFC 3501 section 7 and the extension responses), and the
//! seed-ID tests for status responses, codes, LIST, SEARCH, FLAGS, RECENT and CAPABILITY.

use std::num::NonZeroU32;

use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::parse::{parse_greeting, parse_response, ParseErrorKind};
use mailfold_proto::response::*;

fn one(s: &str) -> Response {
    one_bytes(s.as_bytes())
}

fn one_bytes(s: &[u8]) -> Response {
    let (r, n) = parse_response(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        n,
        s.len(),
        "consumed all of {:?}",
        String::from_utf8_lossy(s)
    );
    r
}

fn status(s: &str) -> StatusResponse {
    match one(s) {
        Response::Status(st) => st,
        r => panic!("not a status: {r:?}"),
    }
}

fn code(s: &str) -> Code {
    status(s).code.expect("a response code")
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[test]
fn greetings_ok_preauth_bye() {
    for (line, kind) in [
        (
            "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n",
            GreetingKind::Ok,
        ),
        ("* PREAUTH welcome back\r\n", GreetingKind::PreAuth),
        ("* BYE too busy\r\n", GreetingKind::Bye),
    ] {
        let (r, _) = parse_greeting(line.as_bytes()).unwrap();
        let Response::Greeting(g) = r else {
            panic!("{r:?}")
        };
        assert_eq!(g.kind, kind);
    }
}

#[test]
fn tagged_status_no_and_bad() {
    let s = status("a2 NO [TRYCREATE] no such mailbox\r\n");
    assert_eq!(s.tag.unwrap().as_str(), "a2");
    assert_eq!(s.kind, StatusKind::No);
    assert_eq!(s.code, Some(Code::TryCreate));
    assert_eq!(status("a3 BAD unknown command\r\n").kind, StatusKind::Bad);
    // PREAUTH and BYE are untagged only.
    assert!(parse_response(b"a1 BYE x\r\n").is_err());
}

#[test]
fn v0062_every_response_code() {
    assert_eq!(code("* OK [ALERT] disk full\r\n"), Code::Alert);
    assert_eq!(code("a1 NO [BADCHARSET] x\r\n"), Code::BadCharset(vec![]));
    assert_eq!(
        code("a1 NO [BADCHARSET (UTF-8 \"US-ASCII\")] x\r\n"),
        Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])
    );
    assert_eq!(
        code("* OK [CAPABILITY IMAP4rev1 auth=PLAIN] x\r\n"),
        Code::Capability(vec!["IMAP4REV1".into(), "AUTH=PLAIN".into()])
    );
    assert_eq!(code("* NO [PARSE] bad header\r\n"), Code::Parse);
    assert_eq!(
        code("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] x\r\n"),
        Code::PermanentFlags(vec![Flag::Deleted, Flag::Seen, Flag::MayCreate])
    );
    assert_eq!(code("a1 OK [READ-ONLY] x\r\n"), Code::ReadOnly);
    assert_eq!(code("a1 OK [READ-WRITE] x\r\n"), Code::ReadWrite);
    assert_eq!(code("a1 NO [TRYCREATE] x\r\n"), Code::TryCreate);
    assert_eq!(code("* OK [UIDNEXT 4392] x\r\n"), Code::UidNext(4392));
    assert_eq!(
        code("* OK [UIDVALIDITY 3857529045] x\r\n"),
        Code::UidValidity(nz(3857529045))
    );
    assert_eq!(code("* OK [UNSEEN 12] x\r\n"), Code::Unseen(12));
    assert_eq!(
        code("a1 OK [APPENDUID 38505 3955] x\r\n"),
        Code::AppendUid {
            uid_validity: nz(38505),
            uids: "3955".parse().unwrap()
        }
    );
    let Code::CopyUid(c) = code("a1 OK [COPYUID 38505 304,319:320 3956:3958] x\r\n") else {
        panic!()
    };
    assert_eq!(c.uid_validity, nz(38505));
    assert_eq!(c.source, vec![(304, 304), (319, 320)]);
    assert_eq!(
        c.pairs().collect::<Vec<_>>(),
        vec![(304, 3956), (319, 3957), (320, 3958)]
    );
    assert_eq!(code("a1 OK [UIDNOTSTICKY] x\r\n"), Code::UidNotSticky);
    assert_eq!(
        code("* OK [HIGHESTMODSEQ 715194045007] x\r\n"),
        Code::HighestModSeq(715194045007)
    );
    assert_eq!(code("* OK [NOMODSEQ] x\r\n"), Code::NoModSeq);
    assert_eq!(
        code("a1 OK [MODIFIED 7,9] x\r\n"),
        Code::Modified("7,9".parse().unwrap())
    );
    assert_eq!(code("* OK [CLOSED] x\r\n"), Code::Closed);
    assert_eq!(
        code("a1 NO [REFERRAL imap://user@host/INBOX] go there\r\n"),
        Code::Referral("imap://user@host/INBOX".into())
    );
    assert_eq!(
        code("* NO [OVERQUOTA] full\r\n"),
        Code::Other {
            name: "OVERQUOTA".into(),
            raw: "".into()
        }
    );
}

#[test]
fn v0038_read_write_code_recorded() {
    let s = status("a002 OK [READ-WRITE] SELECT completed\r\n");
    assert_eq!(s.code, Some(Code::ReadWrite));
    assert_eq!(s.text, "SELECT completed");
}

#[test]
fn v0065_capability_response_code() {
    let (r, _) =
        parse_greeting(b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n")
            .unwrap();
    let Response::Greeting(g) = r else { panic!() };
    let Some(Code::Capability(caps)) = g.code else {
        panic!()
    };
    assert!(caps.contains(&"STARTTLS".to_string()));
    assert!(caps.contains(&"AUTH=PLAIN".to_string()));
    assert_eq!(caps.len(), 9);
    let s = status("a1 OK [CAPABILITY IMAP4rev1 CONDSTORE QRESYNC] Logged in\r\n");
    assert_eq!(
        s.code,
        Some(Code::Capability(vec![
            "IMAP4REV1".into(),
            "CONDSTORE".into(),
            "QRESYNC".into()
        ]))
    );
}

#[test]
fn capability_response() {
    assert_eq!(
        one("* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n"),
        Response::Capability(vec![
            "IMAP4REV1".into(),
            "STARTTLS".into(),
            "AUTH=GSSAPI".into(),
            "LOGINDISABLED".into()
        ])
    );
}

#[test]
fn v0066_list_attributes() {
    let Response::List(l) = one(
        "* LIST (\\Noinferiors \\Noselect \\Marked \\Unmarked \\HasChildren \\HasNoChildren \\NonExistent \\Subscribed \\Remote \\X-Custom) \"/\" foo\r\n",
    ) else {
        panic!()
    };
    use ListAttribute::*;
    assert_eq!(
        l.attributes,
        vec![
            NoInferiors,
            NoSelect,
            Marked,
            Unmarked,
            HasChildren,
            HasNoChildren,
            NonExistent,
            Subscribed,
            Remote,
            Other("\\X-Custom".into())
        ]
    );
    assert_eq!(l.delimiter, Some('/'));
    assert_eq!(l.mailbox, Mailbox::from_wire("foo"));
    for (attr, want) in [
        ("\\All", All),
        ("\\Archive", Archive),
        ("\\Drafts", Drafts),
        ("\\Flagged", Flagged),
        ("\\Junk", Junk),
        ("\\Sent", Sent),
        ("\\Trash", Trash),
    ] {
        let Response::List(l) = one(&format!(
            "* LIST (\\HasNoChildren {attr}) \".\" \"x y\"\r\n"
        )) else {
            panic!()
        };
        assert_eq!(l.special_use(), Some(&want));
        assert_eq!(l.mailbox.as_wire(), b"x y");
    }
}

#[test]
fn list_nil_delimiter_inbox_and_extended_items() {
    let Response::List(l) = one("* LIST (\\Noselect) NIL \"\"\r\n") else {
        panic!()
    };
    assert_eq!(l.delimiter, None);
    assert_eq!(l.mailbox.as_wire(), b"");
    let Response::List(l) = one("* LIST () \"/\" inbox\r\n") else {
        panic!()
    };
    assert!(l.mailbox.is_inbox());
    let Response::List(l) =
        one("* LIST (\\NonExistent) \"/\" Fruit (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n")
    else {
        panic!()
    };
    assert_eq!(
        l.extended,
        vec![ListExtended::ChildInfo(vec!["SUBSCRIBED".into()])]
    );
    let Response::List(l) =
        one("* LIST () \"/\" NewName (\"OLDNAME\" (\"OldName\") \"X-FOO\" (1 2))\r\n")
    else {
        panic!()
    };
    assert_eq!(
        l.extended[0],
        ListExtended::OldName(Mailbox::from_wire("OldName"))
    );
    assert_eq!(
        l.extended[1],
        ListExtended::Other {
            name: "X-FOO".into(),
            raw: "(1 2)".into()
        }
    );
    let Response::List(l) = one("* LIST () \"\\\\\" Public\r\n") else {
        panic!()
    };
    assert_eq!(l.delimiter, Some('\\'));
}

#[test]
fn lsub_response() {
    let Response::Lsub(l) = one("* LSUB () \".\" #news.comp.mail.misc\r\n") else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), b"#news.comp.mail.misc");
}

#[test]
fn status_response_items_and_unknown_kept() {
    let Response::MailboxStatus(s) = one(
        "* STATUS blurdybloop (MESSAGES 231 RECENT 1 UIDNEXT 44292 UIDVALIDITY 7 UNSEEN 3 DELETED 2 HIGHESTMODSEQ 9000000000 SIZE 123456789012 X-GUID abc)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(s.mailbox.as_wire(), b"blurdybloop");
    assert_eq!(s.messages(), Some(231));
    assert_eq!(s.uid_next(), Some(44292));
    assert_eq!(s.uid_validity(), Some(nz(7)));
    assert_eq!(s.highest_modseq(), Some(9_000_000_000));
    assert!(s.items.contains(&StatusItem::Size(123_456_789_012)));
    assert!(s.items.contains(&StatusItem::Recent(1)));
    assert!(s.items.contains(&StatusItem::Unseen(3)));
    assert!(s.items.contains(&StatusItem::Deleted(2)));
    assert_eq!(
        s.items.last(),
        Some(&StatusItem::Other {
            name: "X-GUID".into(),
            raw: "abc".into()
        })
    );
}

#[test]
fn v0067_search_response() {
    assert_eq!(
        one("* SEARCH 2 84 882\r\n"),
        Response::Search(Search {
            ids: vec![2, 84, 882],
            modseq: None
        })
    );
    assert_eq!(one("* SEARCH\r\n"), Response::Search(Search::default()));
    assert_eq!(
        one("* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"),
        Response::Search(Search {
            ids: vec![2, 5, 6, 7, 11, 12, 18, 19, 20, 23],
            modseq: Some(917162500)
        })
    );
    // A number over 32 bits is an error, not a wrap.
    let e = parse_response(b"* SEARCH 1 4294967296\r\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(e.offset, 11);
}

#[test]
fn esearch_response() {
    let Response::Esearch(e) = one("* ESEARCH (TAG \"a567\") UID COUNT 5 ALL 4:19,21,28 MIN 4 MAX 28 MODSEQ 1234 X-FOO (a b)\r\n")
    else {
        panic!()
    };
    assert_eq!(e.tag.unwrap().as_str(), "a567");
    assert!(e.uid);
    assert_eq!(e.items[0], EsearchItem::Count(5));
    assert_eq!(e.items[1], EsearchItem::All("4:19,21,28".parse().unwrap()));
    assert_eq!(e.items[1].all_as_uids().unwrap().len(), 18);
    assert_eq!(e.items[2], EsearchItem::Min(4));
    assert_eq!(e.items[3], EsearchItem::Max(28));
    assert_eq!(e.items[4], EsearchItem::ModSeq(1234));
    assert_eq!(
        e.items[5],
        EsearchItem::Other {
            name: "X-FOO".into(),
            raw: "(a b)".into()
        }
    );
    let Response::Esearch(e) = one("* ESEARCH\r\n") else {
        panic!()
    };
    assert_eq!((e.tag, e.uid, e.items.len()), (None, false, 0));
}

#[test]
fn v0068_flags_response() {
    assert_eq!(
        one("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded Junk \\X-Ext)\r\n"),
        Response::Flags(vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
            Flag::Keyword("$Forwarded".into()),
            Flag::Keyword("Junk".into()),
            Flag::Extension("X-Ext".into()),
        ])
    );
}

#[test]
fn v0069_recent_response() {
    assert_eq!(one("* 5 RECENT\r\n"), Response::Recent(5));
    assert_eq!(one("* 0 RECENT\r\n"), Response::Recent(0));
}

#[test]
fn exists_and_expunge() {
    assert_eq!(one("* 23 EXISTS\r\n"), Response::Exists(23));
    assert_eq!(one("* 3 EXPUNGE\r\n"), Response::Expunge(3));
    assert!(parse_response(b"* 99999999999 EXISTS\r\n").is_err());
}

#[test]
fn enabled_id_namespace_vanished() {
    assert_eq!(
        one("* ENABLED CONDSTORE QRESYNC\r\n"),
        Response::Enabled(vec!["CONDSTORE".into(), "QRESYNC".into()])
    );
    assert_eq!(one("* ENABLED\r\n"), Response::Enabled(vec![]));
    assert_eq!(
        one("* ID (\"name\" \"Cyrus\" \"version\" \"1.5\" \"os\" NIL)\r\n"),
        Response::Id(vec![
            ("name".into(), Some("Cyrus".into())),
            ("version".into(), Some("1.5".into())),
            ("os".into(), None),
        ])
    );
    assert_eq!(one("* ID NIL\r\n"), Response::Id(vec![]));
    let Response::Namespace(ns) = one(
        "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\" \"X-PARAM\" (\"FLAG1\" \"FLAG2\"))(\"#public/\" NIL))\r\n",
    ) else {
        panic!()
    };
    assert_eq!(ns.personal[0].prefix, "");
    assert_eq!(ns.personal[0].delimiter, Some('/'));
    assert_eq!(ns.other[0].prefix, "~");
    assert_eq!(ns.shared.len(), 2);
    assert_eq!(
        ns.shared[0].extensions,
        vec![("X-PARAM".into(), vec!["FLAG1".into(), "FLAG2".into()])]
    );
    assert_eq!(ns.shared[1].delimiter, None);
    let Response::Namespace(ns) = one("* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n") else {
        panic!()
    };
    assert!(ns.other.is_empty() && ns.shared.is_empty());
    assert_eq!(
        one("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"),
        Response::Vanished(Vanished {
            earlier: true,
            uids: "41,43:116,118,120:211,214:540".parse().unwrap()
        })
    );
    assert_eq!(
        one("* VANISHED 405,407,410,425\r\n"),
        Response::Vanished(Vanished {
            earlier: false,
            uids: "405,407,410,425".parse().unwrap()
        })
    );
}

#[test]
fn continuation_requests() {
    assert_eq!(
        one("+ Ready for additional command text\r\n"),
        Response::Continue(Continue {
            code: None,
            text: "Ready for additional command text".into()
        })
    );
    assert_eq!(
        one("+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzmeTxuO=\r\n"),
        Response::Continue(Continue {
            code: None,
            text: "YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzmeTxuO=".into()
        })
    );
    assert_eq!(
        one("+ [ALERT] go on\r\n"),
        Response::Continue(Continue {
            code: Some(Code::Alert),
            text: "go on".into()
        })
    );
}

#[test]
fn unknown_untagged_response_kept_raw() {
    assert_eq!(
        one("* XLIST (\\Inbox) \"/\" Inbox\r\n"),
        Response::Other(OtherResponse {
            number: None,
            name: "XLIST".into(),
            raw: "(\\Inbox) \"/\" Inbox".into()
        })
    );
    assert_eq!(
        one("* 3 XCOUNT 7\r\n"),
        Response::Other(OtherResponse {
            number: Some(3),
            name: "XCOUNT".into(),
            raw: "7".into()
        })
    );
}

#[test]
fn v0017_atom_quoted_and_literal_all_accepted() {
    for wire in [
        &b"* LIST () \"/\" Sent\r\n"[..],
        b"* LIST () \"/\" \"Sent\"\r\n",
        b"* LIST () \"/\" {4}\r\nSent\r\n",
        b"* LIST () \"/\" ~{4}\r\nSent\r\n",
    ] {
        let Response::List(l) = one_bytes(wire) else {
            panic!()
        };
        assert_eq!(l.mailbox.as_wire(), b"Sent");
    }
}

#[test]
fn v0012_empty_quoted_and_empty_literal() {
    for wire in [
        &b"* STATUS \"\" (MESSAGES 1)\r\n"[..],
        b"* STATUS {0}\r\n (MESSAGES 1)\r\n",
    ] {
        let Response::MailboxStatus(s) = one_bytes(wire) else {
            panic!()
        };
        assert_eq!(s.mailbox.as_wire(), b"");
    }
    let Response::Fetch(f) = one_bytes(
        b"* 1 FETCH (BODY[1] {0}\r\n ENVELOPE (\"\" {0}\r\n NIL NIL NIL NIL NIL NIL \"\" NIL))\r\n",
    ) else {
        panic!()
    };
    assert_eq!(
        f.items[0],
        FetchItem::BodySection {
            section: Section {
                part: vec![1],
                spec: SectionSpec::Full
            },
            origin: None,
            data: BodyValue::Inline("".into()),
        }
    );
    let e = f.envelope().unwrap();
    assert_eq!(e.date.as_deref(), Some(&b""[..]));
    assert_eq!(e.subject.as_deref(), Some(&b""[..]));
}

#[test]
fn v0015_ctl_bytes_in_literal_kept_byte_exact() {
    let data: Vec<u8> = (0u8..=255).collect();
    let mut wire = format!("* 1 FETCH (BODY[] {{{}}}\r\n", data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b")\r\n");
    let Response::Fetch(f) = one_bytes(&wire) else {
        panic!()
    };
    let FetchItem::BodySection {
        data: BodyValue::Inline(got),
        ..
    } = &f.items[0]
    else {
        panic!()
    };
    assert_eq!(got.as_bytes(), &data[..]);
    // Also in a mailbox name.
    let Response::List(l) = one_bytes(b"* LIST () \"/\" {5}\r\na\x01\r\x7fb\r\n") else {
        panic!()
    };
    assert_eq!(l.mailbox.as_wire(), b"a\x01\r\x7fb");
}

#[test]
fn errors_name_offset_and_expectation() {
    let e = parse_response(b"* 1 FETCH (UID x)\r\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(e.offset, 15);
    assert_eq!(e.expected, "a number");
    assert!(e.excerpt.starts_with("x)"));
    assert!(e.to_string().contains("byte 15"));
    assert!(parse_response(b"* OK incomplete")
        .unwrap_err()
        .is_incomplete());
    let e = parse_response(b"* LIST () \"/\" {4294967295}\r\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::LiteralSize);
}
