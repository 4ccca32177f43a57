//! Exact bytes for every command the encoder knows, and the seed IDs about sending.

use std::num::NonZeroU32;

use mailfold_proto::command::{
    Append, AppendData, Command, Date, DateTime, FetchItem, FetchItems, FetchModifiers, List,
    ListReturn, ListSelect, Partial, Qresync, Search, SearchKey, SearchReturn, Section,
    SectionText, SelectParams, StatusItem, StoreFlags, StoreMode,
};
use mailfold_proto::core::{Flag, Mailbox, Tag};
use mailfold_proto::encode::{
    encode, encode_auth_cancel, encode_continuation, encode_done, EncodeCaps, EncodeError,
    LiteralData, LiteralMode, Part,
};
use mailfold_proto::seqset::{SeqSet, UidSet};
use mailfold_sasl::Secret;

fn tag() -> Tag {
    Tag::new("a001").unwrap()
}

fn enc_with(cmd: &Command, caps: &EncodeCaps) -> String {
    let e = encode(&tag(), cmd, caps).unwrap();
    String::from_utf8(e.to_bytes().unwrap()).unwrap()
}

fn enc(cmd: &Command) -> String {
    enc_with(cmd, &EncodeCaps::default())
}

fn err(cmd: &Command) -> EncodeError {
    encode(&tag(), cmd, &EncodeCaps::default()).unwrap_err()
}

fn mb(s: &str) -> Mailbox {
    Mailbox::from_utf8(s)
}

fn uids(s: &str) -> UidSet {
    s.parse().unwrap()
}

fn seqs(s: &str) -> SeqSet {
    s.parse().unwrap()
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn items(v: Vec<FetchItem>) -> FetchItems {
    FetchItems::Items(v)
}

fn section(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.iter().map(|&p| nz(p)).collect(),
        text,
    }
}

fn store(mode: StoreMode, silent: bool, flags: Vec<Flag>) -> StoreFlags {
    StoreFlags {
        mode,
        silent,
        flags,
    }
}

#[test]
fn commands_without_arguments() {
    let cases = [
        (Command::Capability, "a001 CAPABILITY\r\n"),
        (Command::Noop, "a001 NOOP\r\n"),
        (Command::Logout, "a001 LOGOUT\r\n"),
        (Command::StartTls, "a001 STARTTLS\r\n"),
        (Command::Close, "a001 CLOSE\r\n"),
        (Command::Unselect, "a001 UNSELECT\r\n"),
        (Command::Expunge, "a001 EXPUNGE\r\n"),
        (Command::Idle, "a001 IDLE\r\n"),
        (Command::Namespace, "a001 NAMESPACE\r\n"),
        (Command::CompressDeflate, "a001 COMPRESS DEFLATE\r\n"),
    ];
    for (cmd, wire) in cases {
        assert_eq!(enc(&cmd), wire);
    }
    assert_eq!(encode_done().to_bytes().unwrap(), b"DONE\r\n");
    assert_eq!(encode_auth_cancel().to_bytes().unwrap(), b"*\r\n");
}

#[test]
fn v0049_check_is_supported() {
    assert_eq!(enc(&Command::Check), "a001 CHECK\r\n");
}

#[test]
fn login_and_authenticate_are_sensitive() {
    let login = Command::login("fred", Secret::new("s3cr et\"".to_string()));
    let e = encode(&tag(), &login, &EncodeCaps::default()).unwrap();
    assert_eq!(
        e.to_bytes().unwrap(),
        b"a001 LOGIN fred \"s3cr et\\\"\"\r\n"
    );
    assert!(e.is_sensitive());
    let dbg = format!("{e:?} {login:?}");
    assert!(!dbg.contains("s3cr"), "{dbg}");

    let auth = Command::Authenticate {
        mechanism: "PLAIN".into(),
        initial_response: Some(Secret::new(b"\0fred\0pw".to_vec())),
    };
    assert!(matches!(
        encode(&tag(), &auth, &EncodeCaps::default()),
        Err(EncodeError::NeedsCapability {
            capability: "SASL-IR",
            ..
        })
    ));
    let caps = EncodeCaps {
        sasl_ir: true,
        ..EncodeCaps::default()
    };
    assert_eq!(
        enc_with(&auth, &caps),
        "a001 AUTHENTICATE PLAIN AGZyZWQAcHc=\r\n"
    );
    let empty = Command::Authenticate {
        mechanism: "EXTERNAL".into(),
        initial_response: Some(Secret::new(Vec::new())),
    };
    assert_eq!(enc_with(&empty, &caps), "a001 AUTHENTICATE EXTERNAL =\r\n");
    let plain = Command::Authenticate {
        mechanism: "SCRAM-SHA-256".into(),
        initial_response: None,
    };
    assert_eq!(enc(&plain), "a001 AUTHENTICATE SCRAM-SHA-256\r\n");
    let cont = encode_continuation(b"\0fred\0pw");
    assert_eq!(cont.to_bytes().unwrap(), b"AGZyZWQAcHc=\r\n");
    assert!(cont.is_sensitive());
    assert_eq!(encode_continuation(b"").to_bytes().unwrap(), b"\r\n");
}

#[test]
fn login_password_in_a_literal_is_sensitive() {
    let login = Command::Login {
        username: b"fred".to_vec(),
        password: Secret::new(b"p\xc3\xa4ss".to_vec()),
    };
    let e = encode(&tag(), &login, &EncodeCaps::default()).unwrap();
    assert!(e.parts().iter().all(|p| match p {
        Part::Line { sensitive, .. } | Part::Literal { sensitive, .. } => *sensitive,
    }));
    let dbg = format!("{e:?} {login:?}");
    assert!(!dbg.contains("fred") && !dbg.contains("päss"), "{dbg}");
}

#[test]
fn mailbox_commands() {
    assert_eq!(
        enc(&Command::select(Mailbox::from_wire("inbox"))),
        "a001 SELECT INBOX\r\n"
    );
    assert_eq!(
        enc(&Command::examine(mb("Archive/2024"))),
        "a001 EXAMINE Archive/2024\r\n"
    );
    assert_eq!(
        enc(&Command::Create(mb("New Folder"))),
        "a001 CREATE \"New Folder\"\r\n"
    );
    assert_eq!(enc(&Command::Delete(mb("Old"))), "a001 DELETE Old\r\n");
    assert_eq!(
        enc(&Command::Rename {
            from: mb("a"),
            to: mb("b c")
        }),
        "a001 RENAME a \"b c\"\r\n"
    );
    assert_eq!(
        enc(&Command::Subscribe(mb("Lists"))),
        "a001 SUBSCRIBE Lists\r\n"
    );
    assert_eq!(
        enc(&Command::Unsubscribe(mb("Lists"))),
        "a001 UNSUBSCRIBE Lists\r\n"
    );
    assert_eq!(
        enc(&Command::Status {
            mailbox: mb("INBOX"),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::HighestModSeq
            ]
        }),
        "a001 STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n"
    );
    assert_eq!(
        err(&Command::Status {
            mailbox: mb("INBOX"),
            items: vec![]
        }),
        EncodeError::Empty {
            what: "STATUS items"
        }
    );
}

#[test]
fn select_with_condstore_and_qresync() {
    let sel = Command::Select {
        mailbox: mb("INBOX"),
        params: SelectParams::CondStore,
    };
    assert_eq!(enc(&sel), "a001 SELECT INBOX (CONDSTORE)\r\n");
    let q = Qresync {
        uid_validity: nz(67890007),
        modseq: 20050715194045000,
        known_uids: None,
        seq_match: None,
    };
    let sel = Command::Select {
        mailbox: mb("INBOX"),
        params: SelectParams::Qresync(q.clone()),
    };
    assert_eq!(
        enc(&sel),
        "a001 SELECT INBOX (QRESYNC (67890007 20050715194045000))\r\n"
    );
    // RFC 7162 3.2.5.2 example.
    let full = Qresync {
        known_uids: Some(uids("41,43:211,214:541")),
        seq_match: Some((seqs("1:5,7:11"), uids("41,43,45,47,49,51,53,55,57,59"))),
        ..q.clone()
    };
    let ex = Command::Examine {
        mailbox: mb("INBOX"),
        params: SelectParams::Qresync(full),
    };
    assert_eq!(
        enc(&ex),
        "a001 EXAMINE INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:5,7:11 41,43,45,47,49,51,53,55,57,59)))\r\n"
    );
    let bad = Qresync {
        modseq: 0,
        ..q.clone()
    };
    assert!(encode(
        &tag(),
        &Command::Select {
            mailbox: mb("INBOX"),
            params: SelectParams::Qresync(bad)
        },
        &EncodeCaps::default()
    )
    .is_err());
    let star = Qresync {
        known_uids: Some(uids("1:*")),
        ..q
    };
    assert!(encode(
        &tag(),
        &Command::Select {
            mailbox: mb("INBOX"),
            params: SelectParams::Qresync(star)
        },
        &EncodeCaps::default()
    )
    .is_err());
}

#[test]
fn list_and_lsub() {
    assert_eq!(
        enc(&Command::List(List::new(mb(""), "*"))),
        "a001 LIST \"\" *\r\n"
    );
    assert_eq!(
        enc(&Command::List(List::new(mb("~/Mail"), "%"))),
        "a001 LIST ~/Mail %\r\n"
    );
    assert_eq!(
        enc(&Command::Lsub {
            reference: mb(""),
            pattern: b"#news.comp.mail.*".to_vec()
        }),
        "a001 LSUB \"\" #news.comp.mail.*\r\n"
    );
    let ext = List {
        selection: vec![ListSelect::Subscribed, ListSelect::RecursiveMatch],
        reference: mb(""),
        patterns: vec![b"INBOX".to_vec(), b"Drafts/%".to_vec()],
        returns: vec![
            ListReturn::Children,
            ListReturn::SpecialUse,
            ListReturn::Subscribed,
            ListReturn::Status(vec![StatusItem::Messages, StatusItem::Unseen]),
        ],
    };
    assert_eq!(
        enc(&Command::List(ext)),
        "a001 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX Drafts/%) RETURN (CHILDREN SPECIAL-USE SUBSCRIBED STATUS (MESSAGES UNSEEN))\r\n"
    );
    let special = List {
        selection: vec![ListSelect::SpecialUse, ListSelect::Remote],
        ..List::new(mb(""), "*")
    };
    assert_eq!(
        enc(&Command::List(special)),
        "a001 LIST (SPECIAL-USE REMOTE) \"\" *\r\n"
    );
    let alone = List {
        selection: vec![ListSelect::RecursiveMatch],
        ..List::new(mb(""), "*")
    };
    assert!(matches!(
        err(&Command::List(alone)),
        EncodeError::Invalid { .. }
    ));
    let none = List {
        patterns: vec![],
        ..List::new(mb(""), "*")
    };
    assert_eq!(
        err(&Command::List(none)),
        EncodeError::Empty {
            what: "LIST patterns"
        }
    );
}

fn date_time() -> DateTime {
    DateTime::new(Date::new(1994, 2, 7).unwrap(), 21, 52, 25, -8 * 60).unwrap()
}

#[test]
fn append_with_flags_date_and_literal() {
    let msg = b"Subject: hi\r\n\r\nhello\r\n".to_vec();
    let a = Command::Append(Append {
        mailbox: mb("Saved"),
        flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".into())],
        internal_date: Some(date_time()),
        message: AppendData::Inline(msg.clone()),
    });
    let e = encode(&tag(), &a, &EncodeCaps::default()).unwrap();
    assert_eq!(
        e.parts(),
        &[
            Part::Line {
                bytes:
                    b"a001 APPEND Saved (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {22}\r\n"
                        .to_vec(),
                sensitive: false
            },
            Part::Literal {
                mode: LiteralMode::Sync,
                binary: false,
                data: LiteralData::Inline(msg.clone()),
                sensitive: false
            },
            Part::Line {
                bytes: b"\r\n".to_vec(),
                sensitive: false
            },
        ]
    );
    assert!(e.has_sync_literal());
    // LITERAL+ makes it non-synchronizing; streamed data stays with the driver.
    let streamed = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![],
        internal_date: None,
        message: AppendData::Streamed {
            len: 10_000_000,
            binary: false,
        },
    });
    let caps = EncodeCaps {
        literal_plus: true,
        ..EncodeCaps::default()
    };
    let e = encode(&tag(), &streamed, &caps).unwrap();
    assert_eq!(
        e.parts()[0],
        Part::Line {
            bytes: b"a001 APPEND INBOX {10000000+}\r\n".to_vec(),
            sensitive: false
        }
    );
    assert!(matches!(
        e.parts()[1],
        Part::Literal {
            mode: LiteralMode::NonSync,
            data: LiteralData::Driver { len: 10_000_000 },
            ..
        }
    ));
    assert!(e.to_bytes().is_none());
    // LITERAL- only covers literals up to 4096 bytes.
    let minus = EncodeCaps {
        literal_minus: true,
        ..EncodeCaps::default()
    };
    assert!(encode(&tag(), &streamed, &minus)
        .unwrap()
        .has_sync_literal());
    let small = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![],
        internal_date: None,
        message: AppendData::Inline(vec![b'x'; 4096]),
    });
    assert!(enc_with(&small, &minus).starts_with("a001 APPEND INBOX {4096+}\r\n"));
    let too_big = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![],
        internal_date: None,
        message: AppendData::Streamed {
            len: 1 << 32,
            binary: false,
        },
    });
    assert!(matches!(err(&too_big), EncodeError::TooLarge { .. }));
}

#[test]
fn v0004_recent_is_never_stored() {
    let a = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![Flag::Recent],
        internal_date: None,
        message: AppendData::Inline(b"x".to_vec()),
    });
    assert_eq!(err(&a), EncodeError::UnstorableFlag(Flag::Recent));
    let s = Command::UidStore {
        set: uids("1"),
        store: store(StoreMode::Add, false, vec![Flag::Recent]),
        unchanged_since: None,
    };
    assert_eq!(err(&s), EncodeError::UnstorableFlag(Flag::Recent));
    let s = Command::Store {
        set: seqs("1"),
        store: store(StoreMode::Add, false, vec![Flag::MayCreate]),
        unchanged_since: None,
    };
    assert_eq!(err(&s), EncodeError::UnstorableFlag(Flag::MayCreate));
    let bad_kw = Command::Store {
        set: seqs("1"),
        store: store(StoreMode::Add, false, vec![Flag::Keyword("a b".into())]),
        unchanged_since: None,
    };
    assert!(matches!(
        err(&bad_kw),
        EncodeError::Invalid {
            what: "keyword",
            ..
        }
    ));
}

#[test]
fn v0012_empty_string_is_quoted_empty() {
    assert_eq!(
        enc(&Command::Create(Mailbox::from_wire(""))),
        "a001 CREATE \"\"\r\n"
    );
    let s = Command::Search(Search::new(false, vec![SearchKey::Subject(Vec::new())]));
    assert_eq!(enc(&s), "a001 SEARCH SUBJECT \"\"\r\n");
}

#[test]
fn v0013_eight_bit_text_goes_in_a_literal_unless_utf8_accept() {
    let s = Command::Search(Search {
        charset: Some("UTF-8".into()),
        ..Search::new(false, vec![SearchKey::Subject("Grüße".as_bytes().to_vec())])
    });
    let e = encode(&tag(), &s, &EncodeCaps::default()).unwrap();
    assert_eq!(
        e.to_bytes().unwrap(),
        "a001 SEARCH CHARSET UTF-8 SUBJECT {7}\r\nGrüße\r\n".as_bytes()
    );
    assert!(e.has_sync_literal());
    // No 8-bit byte appears outside a literal.
    match &e.parts()[0] {
        Part::Line { bytes, .. } => assert!(bytes.is_ascii()),
        other => panic!("{other:?}"),
    }
    let utf8 = EncodeCaps {
        utf8_accept: true,
        ..EncodeCaps::default()
    };
    assert_eq!(
        enc_with(&s, &utf8),
        "a001 SEARCH CHARSET UTF-8 SUBJECT \"Grüße\"\r\n"
    );
    // Invalid UTF-8 still goes in a literal even then.
    let raw = Command::Search(Search::new(
        false,
        vec![SearchKey::Subject(b"\xff".to_vec())],
    ));
    let e = encode(&tag(), &raw, &utf8).unwrap();
    // Without UTF8=ACCEPT, 8-bit search text must name its charset.
    assert!(matches!(
        err(&raw),
        EncodeError::Invalid {
            what: "search charset",
            ..
        }
    ));
    assert_eq!(
        e.to_bytes().unwrap(),
        b"a001 SEARCH SUBJECT {1}\r\n\xff\r\n"
    );
}

#[test]
fn v0014_binary_data_only_with_binary_capability() {
    let data = b"MIME\0binary".to_vec();
    let a = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![],
        internal_date: None,
        message: AppendData::Inline(data.clone()),
    });
    assert!(matches!(
        err(&a),
        EncodeError::NeedsCapability {
            capability: "BINARY",
            ..
        }
    ));
    let caps = EncodeCaps {
        binary: true,
        ..EncodeCaps::default()
    };
    let e = encode(&tag(), &a, &caps).unwrap();
    assert_eq!(
        e.to_bytes().unwrap(),
        b"a001 APPEND INBOX ~{11}\r\nMIME\0binary\r\n"
    );
    assert!(matches!(e.parts()[1], Part::Literal { binary: true, .. }));
    // 8-bit text is not binary: a normal literal, unchanged.
    let text = "Subject: é\r\n\r\n".as_bytes().to_vec();
    let a = Command::Append(Append {
        mailbox: mb("INBOX"),
        flags: vec![],
        internal_date: None,
        message: AppendData::Inline(text.clone()),
    });
    let mut expect = b"a001 APPEND INBOX {15}\r\n".to_vec();
    expect.extend_from_slice(&text);
    expect.extend_from_slice(b"\r\n");
    assert_eq!(
        encode(&tag(), &a, &caps).unwrap().to_bytes().unwrap(),
        expect
    );
    // BINARY fetch items need the capability as well.
    let f = Command::UidFetch {
        set: uids("1"),
        items: items(vec![FetchItem::Binary {
            peek: true,
            part: vec![nz(1)],
            partial: None,
        }]),
        modifiers: FetchModifiers::default(),
    };
    assert!(matches!(
        err(&f),
        EncodeError::NeedsCapability {
            capability: "BINARY",
            ..
        }
    ));
    assert_eq!(enc_with(&f, &caps), "a001 UID FETCH 1 BINARY.PEEK[1]\r\n");
}

#[test]
fn v0015_control_characters_pass_byte_exact_in_a_literal() {
    let name = b"a\x01b\tc\x7f".to_vec();
    let cmd = Command::Create(Mailbox::from_wire(name.clone()));
    let e = encode(&tag(), &cmd, &EncodeCaps::default()).unwrap();
    assert_eq!(
        e.parts()[1],
        Part::Literal {
            mode: LiteralMode::Sync,
            binary: false,
            data: LiteralData::Inline(name),
            sensitive: false
        }
    );
    // NUL cannot be carried by any IMAP string.
    let nul = Command::Create(Mailbox::from_wire(b"a\0b".to_vec()));
    assert!(matches!(err(&nul), EncodeError::Invalid { .. }));
}

#[test]
fn v0017_atom_quoted_or_literal_by_content_and_length() {
    assert_eq!(enc(&Command::Create(mb("Plain"))), "a001 CREATE Plain\r\n");
    // `]` is an ASTRING-CHAR, so it may stay bare.
    assert_eq!(enc(&Command::Create(mb("a]b"))), "a001 CREATE a]b\r\n");
    for special in ["a b", "a(b", "a)b", "a{b", "a%b", "a*b", "a\"b", "a\\b"] {
        let wire = enc(&Command::Create(mb(special)));
        let escaped = special.replace('\\', "\\\\").replace('"', "\\\"");
        assert_eq!(wire, format!("a001 CREATE \"{escaped}\"\r\n"));
    }
    // NIL is quoted so that no reader takes it for nil.
    assert_eq!(enc(&Command::Create(mb("nil"))), "a001 CREATE \"nil\"\r\n");
    // A long name with specials becomes a literal.
    let long = "x ".repeat(600);
    let wire = enc(&Command::Create(mb(&long)));
    assert_eq!(wire, format!("a001 CREATE {{1200}}\r\n{long}\r\n"));
    // A long atom-safe name stays an atom.
    let long_atom = "y".repeat(2000);
    assert_eq!(
        enc(&Command::Create(mb(&long_atom))),
        format!("a001 CREATE {long_atom}\r\n")
    );
}

#[test]
fn v0021_mailbox_names_are_sent_in_modified_utf7() {
    assert_eq!(enc(&Command::select(mb("a&b"))), "a001 SELECT a&-b\r\n");
    assert_eq!(
        enc(&Command::select(mb("台北"))),
        "a001 SELECT &U,BTFw-\r\n"
    );
}

#[test]
fn fetch_items_and_sections() {
    let f = |it: Vec<FetchItem>| {
        enc(&Command::Fetch {
            set: seqs("1:3"),
            items: items(it),
            modifiers: FetchModifiers::default(),
        })
    };
    assert_eq!(f(vec![FetchItem::Flags]), "a001 FETCH 1:3 FLAGS\r\n");
    assert_eq!(
        f(vec![FetchItem::Uid, FetchItem::Flags, FetchItem::InternalDate, FetchItem::Rfc822Size, FetchItem::Envelope, FetchItem::Body, FetchItem::BodyStructure, FetchItem::ModSeq]),
        "a001 FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE MODSEQ)\r\n"
    );
    assert_eq!(
        f(vec![
            FetchItem::Rfc822,
            FetchItem::Rfc822Header,
            FetchItem::Rfc822Text
        ]),
        "a001 FETCH 1:3 (RFC822 RFC822.HEADER RFC822.TEXT)\r\n"
    );
    let body = |peek, s, partial| FetchItem::BodySection {
        peek,
        section: s,
        partial,
    };
    assert_eq!(
        f(vec![
            body(false, section(&[], None), None),
            body(true, section(&[1, 2], Some(SectionText::Mime)), None),
            body(
                true,
                section(&[3], None),
                Some(Partial {
                    origin: 0,
                    length: nz(1024)
                })
            ),
            body(false, section(&[], Some(SectionText::Text)), None),
        ]),
        "a001 FETCH 1:3 (BODY[] BODY.PEEK[1.2.MIME] BODY.PEEK[3]<0.1024> BODY[TEXT])\r\n"
    );
    assert_eq!(
        f(vec![
            body(true, section(&[], Some(SectionText::HeaderFields(vec![b"From".to_vec(), b"Message-ID".to_vec()]))), None),
            body(true, section(&[2], Some(SectionText::HeaderFieldsNot(vec![b"Received".to_vec()]))), None),
        ]),
        "a001 FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (From Message-ID)] BODY.PEEK[2.HEADER.FIELDS.NOT (Received)])\r\n"
    );
    let caps = EncodeCaps {
        binary: true,
        ..EncodeCaps::default()
    };
    let bin = Command::Fetch {
        set: seqs("1"),
        items: items(vec![
            FetchItem::Binary {
                peek: false,
                part: vec![nz(1), nz(2)],
                partial: Some(Partial {
                    origin: 10,
                    length: nz(20),
                }),
            },
            FetchItem::BinarySize { part: vec![nz(1)] },
            FetchItem::Binary {
                peek: true,
                part: vec![],
                partial: None,
            },
        ]),
        modifiers: FetchModifiers::default(),
    };
    assert_eq!(
        enc_with(&bin, &caps),
        "a001 FETCH 1 (BINARY[1.2]<10.20> BINARY.SIZE[1] BINARY.PEEK[])\r\n"
    );
    let mime = Command::Fetch {
        set: seqs("1"),
        items: items(vec![body(
            true,
            section(&[], Some(SectionText::Mime)),
            None,
        )]),
        modifiers: FetchModifiers::default(),
    };
    assert!(matches!(err(&mime), EncodeError::Invalid { .. }));
    let empty = Command::Fetch {
        set: seqs("1"),
        items: items(vec![]),
        modifiers: FetchModifiers::default(),
    };
    assert_eq!(
        err(&empty),
        EncodeError::Empty {
            what: "FETCH items"
        }
    );
}

#[test]
fn v0052_fetch_macros() {
    let f = |m| {
        enc(&Command::Fetch {
            set: seqs("1:*"),
            items: m,
            modifiers: FetchModifiers::default(),
        })
    };
    assert_eq!(f(FetchItems::All), "a001 FETCH 1:* ALL\r\n");
    assert_eq!(f(FetchItems::Fast), "a001 FETCH 1:* FAST\r\n");
    assert_eq!(f(FetchItems::Full), "a001 FETCH 1:* FULL\r\n");
}

#[test]
fn v0054_body_peek_forms() {
    let f = |it| {
        enc(&Command::UidFetch {
            set: uids("4827313"),
            items: items(vec![FetchItem::Uid, FetchItem::Flags, it]),
            modifiers: FetchModifiers::default(),
        })
    };
    assert_eq!(
        f(FetchItem::body_peek()),
        "a001 UID FETCH 4827313 (UID FLAGS BODY.PEEK[])\r\n"
    );
    assert_eq!(
        f(FetchItem::header_peek()),
        "a001 UID FETCH 4827313 (UID FLAGS BODY.PEEK[HEADER])\r\n"
    );
}

#[test]
fn v0055_rfc822_forms_for_servers_without_imap4rev1() {
    let old = EncodeCaps {
        imap4rev1: false,
        ..EncodeCaps::default()
    };
    let f = |v: Vec<FetchItem>, caps: &EncodeCaps| {
        enc_with(
            &Command::UidFetch {
                set: uids("1:*"),
                items: items(v),
                modifiers: FetchModifiers::default(),
            },
            caps,
        )
    };
    let header = vec![
        FetchItem::Uid,
        FetchItem::Flags,
        FetchItem::Rfc822Size,
        FetchItem::header_peek(),
        FetchItem::InternalDate,
    ];
    assert_eq!(
        f(header.clone(), &old),
        "a001 UID FETCH 1:* (UID FLAGS RFC822.SIZE RFC822.HEADER INTERNALDATE)\r\n"
    );
    assert_eq!(
        f(header, &EncodeCaps::default()),
        "a001 UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] INTERNALDATE)\r\n"
    );
    assert_eq!(
        f(
            vec![FetchItem::Uid, FetchItem::Flags, FetchItem::body_peek()],
            &old
        ),
        "a001 UID FETCH 1:* (UID FLAGS RFC822.PEEK)\r\n"
    );
    let body = FetchItem::BodySection {
        peek: false,
        section: Section::default(),
        partial: None,
    };
    assert_eq!(
        f(vec![FetchItem::Uid, FetchItem::Flags, body], &old),
        "a001 UID FETCH 1:* (UID FLAGS RFC822)\r\n"
    );
    let text = FetchItem::BodySection {
        peek: false,
        section: section(&[], Some(SectionText::Text)),
        partial: None,
    };
    assert_eq!(f(vec![text], &old), "a001 UID FETCH 1:* RFC822.TEXT\r\n");
    assert_eq!(f(vec![FetchItem::Uid], &old), "a001 UID FETCH 1:* UID\r\n");
    assert_eq!(
        f(vec![FetchItem::Uid, FetchItem::Flags], &old),
        "a001 UID FETCH 1:* (UID FLAGS)\r\n"
    );
}

#[test]
fn fetch_modifiers_changedsince_and_vanished() {
    let m = FetchModifiers {
        changed_since: Some(12345),
        vanished: true,
    };
    let f = Command::UidFetch {
        set: uids("300:500"),
        items: items(vec![FetchItem::Flags]),
        modifiers: m,
    };
    assert_eq!(
        enc(&f),
        "a001 UID FETCH 300:500 FLAGS (CHANGEDSINCE 12345 VANISHED)\r\n"
    );
    let f = Command::Fetch {
        set: seqs("1:*"),
        items: items(vec![FetchItem::Flags]),
        modifiers: FetchModifiers {
            changed_since: Some(7),
            vanished: false,
        },
    };
    assert_eq!(enc(&f), "a001 FETCH 1:* FLAGS (CHANGEDSINCE 7)\r\n");
    let f = Command::Fetch {
        set: seqs("1"),
        items: items(vec![FetchItem::Flags]),
        modifiers: m,
    };
    assert!(matches!(err(&f), EncodeError::Invalid { .. }));
    let f = Command::UidFetch {
        set: uids("1"),
        items: items(vec![FetchItem::Flags]),
        modifiers: FetchModifiers {
            changed_since: None,
            vanished: true,
        },
    };
    assert!(matches!(err(&f), EncodeError::Invalid { .. }));
}

#[test]
fn v0056_store_forms() {
    let s = |mode, silent, flags| {
        enc(&Command::Store {
            set: seqs("2:4"),
            store: store(mode, silent, flags),
            unchanged_since: None,
        })
    };
    assert_eq!(
        s(
            StoreMode::Replace,
            false,
            vec![
                Flag::Seen,
                Flag::Draft,
                Flag::Flagged,
                Flag::Answered,
                Flag::Deleted
            ]
        ),
        "a001 STORE 2:4 FLAGS (\\Seen \\Draft \\Flagged \\Answered \\Deleted)\r\n"
    );
    assert_eq!(
        s(StoreMode::Add, false, vec![Flag::Deleted, Flag::Seen]),
        "a001 STORE 2:4 +FLAGS (\\Deleted \\Seen)\r\n"
    );
    assert_eq!(
        s(StoreMode::Remove, false, vec![Flag::Deleted]),
        "a001 STORE 2:4 -FLAGS (\\Deleted)\r\n"
    );
    assert_eq!(
        s(StoreMode::Add, true, vec![Flag::Flagged]),
        "a001 STORE 2:4 +FLAGS.SILENT (\\Flagged)\r\n"
    );
    assert_eq!(
        s(StoreMode::Remove, true, vec![Flag::Seen]),
        "a001 STORE 2:4 -FLAGS.SILENT (\\Seen)\r\n"
    );
    assert_eq!(
        s(StoreMode::Replace, true, vec![]),
        "a001 STORE 2:4 FLAGS.SILENT ()\r\n"
    );
    // Unknown \Flag extensions round-trip (seed N6); UNCHANGEDSINCE precedes the flags.
    let u = Command::UidStore {
        set: uids("7,9"),
        store: store(
            StoreMode::Add,
            true,
            vec![
                Flag::Extension("Important".into()),
                Flag::Keyword("$Junk".into()),
            ],
        ),
        unchanged_since: Some(200),
    };
    assert_eq!(
        enc(&u),
        "a001 UID STORE 7,9 (UNCHANGEDSINCE 200) +FLAGS.SILENT (\\Important $Junk)\r\n"
    );
}

#[test]
fn v0059_all_uid_forms() {
    let set = uids("4:7,9");
    let m = mb("Archive");
    let cases = [
        (
            Command::UidFetch {
                set: set.clone(),
                items: items(vec![FetchItem::Flags]),
                modifiers: FetchModifiers::default(),
            },
            "a001 UID FETCH 4:7,9 FLAGS\r\n",
        ),
        (
            Command::UidStore {
                set: set.clone(),
                store: store(StoreMode::Add, true, vec![Flag::Seen]),
                unchanged_since: None,
            },
            "a001 UID STORE 4:7,9 +FLAGS.SILENT (\\Seen)\r\n",
        ),
        (
            Command::UidCopy {
                set: set.clone(),
                mailbox: m.clone(),
            },
            "a001 UID COPY 4:7,9 Archive\r\n",
        ),
        (
            Command::UidMove {
                set: set.clone(),
                mailbox: m.clone(),
            },
            "a001 UID MOVE 4:7,9 Archive\r\n",
        ),
        (
            Command::UidExpunge(set.clone()),
            "a001 UID EXPUNGE 4:7,9\r\n",
        ),
        (
            Command::Search(Search::new(
                true,
                vec![SearchKey::Uid(set.clone()), SearchKey::Unseen],
            )),
            "a001 UID SEARCH UID 4:7,9 UNSEEN\r\n",
        ),
        (
            Command::Copy {
                set: seqs("1:2"),
                mailbox: m.clone(),
            },
            "a001 COPY 1:2 Archive\r\n",
        ),
        (
            Command::Move {
                set: seqs("1:2"),
                mailbox: m,
            },
            "a001 MOVE 1:2 Archive\r\n",
        ),
    ];
    for (cmd, wire) in cases {
        assert_eq!(enc(&cmd), wire);
    }
}

#[test]
fn v0060_uid_commands_use_compact_ranges() {
    let set = UidSet::from_numbers([1, 2, 3, 4, 5, 7, 9, 10, 11, 12]).unwrap();
    let cmd = Command::UidStore {
        set,
        store: store(StoreMode::Add, true, vec![Flag::Deleted]),
        unchanged_since: None,
    };
    assert_eq!(
        enc(&cmd),
        "a001 UID STORE 1:5,7,9:12 +FLAGS.SILENT (\\Deleted)\r\n"
    );
    let cmd = Command::UidExpunge(UidSet::new());
    assert_eq!(
        err(&cmd),
        EncodeError::Empty {
            what: "UID EXPUNGE set"
        }
    );
}

#[test]
fn v0061_raw_command_is_sent_verbatim_and_checked_for_line_breaks() {
    let raw = Command::Raw(b"XLIST \"\" *".to_vec());
    assert_eq!(enc(&raw), "a001 XLIST \"\" *\r\n");
    assert_eq!(raw.name(), "XLIST");
    for bad in [&b"X\r\nY"[..], b"X\nY", b"X\rY", b"X\0", b""] {
        assert!(encode(&tag(), &Command::Raw(bad.to_vec()), &EncodeCaps::default()).is_err());
    }
}

#[test]
fn search_keys_full_grammar() {
    let d = Date::new(2024, 2, 1).unwrap();
    let keys = vec![
        SearchKey::All,
        SearchKey::Answered,
        SearchKey::Bcc(b"x".to_vec()),
        SearchKey::Before(d),
        SearchKey::Body(b"hello world".to_vec()),
        SearchKey::Cc(b"c".to_vec()),
        SearchKey::Deleted,
        SearchKey::Draft,
        SearchKey::Flagged,
        SearchKey::From(b"fred@example.org".to_vec()),
        SearchKey::Header(b"List-Id".to_vec(), b"".to_vec()),
        SearchKey::Keyword(Flag::Keyword("$Junk".into())),
        SearchKey::Larger(1000),
        SearchKey::New,
        SearchKey::Not(Box::new(SearchKey::Seen)),
        SearchKey::Old,
        SearchKey::On(d),
        SearchKey::Or(Box::new(SearchKey::Recent), Box::new(SearchKey::Seen)),
        SearchKey::SentBefore(d),
        SearchKey::SentOn(d),
        SearchKey::SentSince(d),
        SearchKey::Since(d),
        SearchKey::Smaller(5),
        SearchKey::Subject(b"s".to_vec()),
        SearchKey::Text(b"t".to_vec()),
        SearchKey::To(b"u".to_vec()),
        SearchKey::Uid(uids("1:*")),
        SearchKey::Unanswered,
        SearchKey::Undeleted,
        SearchKey::Undraft,
        SearchKey::Unflagged,
        SearchKey::Unkeyword(Flag::Keyword("Work".into())),
        SearchKey::Unseen,
        SearchKey::SequenceSet(seqs("2,4:5")),
        SearchKey::ModSeq(0),
        SearchKey::And(vec![SearchKey::Seen, SearchKey::Flagged]),
    ];
    let cmd = Command::Search(Search {
        charset: Some("UTF-8".into()),
        ..Search::new(false, keys)
    });
    assert_eq!(
        enc(&cmd),
        "a001 SEARCH CHARSET UTF-8 ALL ANSWERED BCC x BEFORE 1-Feb-2024 BODY \"hello world\" CC c DELETED DRAFT FLAGGED FROM fred@example.org HEADER List-Id \"\" KEYWORD $Junk LARGER 1000 NEW NOT SEEN OLD ON 1-Feb-2024 OR RECENT SEEN SENTBEFORE 1-Feb-2024 SENTON 1-Feb-2024 SENTSINCE 1-Feb-2024 SINCE 1-Feb-2024 SMALLER 5 SUBJECT s TEXT t TO u UID 1:* UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD Work UNSEEN 2,4:5 MODSEQ 0 (SEEN FLAGGED)\r\n"
    );
    let ret = Command::Search(Search {
        returns: Some(vec![
            SearchReturn::Min,
            SearchReturn::Max,
            SearchReturn::All,
            SearchReturn::Count,
            SearchReturn::Save,
        ]),
        ..Search::new(true, vec![SearchKey::Unseen])
    });
    assert_eq!(
        enc(&ret),
        "a001 UID SEARCH RETURN (MIN MAX ALL COUNT SAVE) UNSEEN\r\n"
    );
    let ret = Command::Search(Search {
        returns: Some(vec![]),
        ..Search::new(false, vec![SearchKey::All])
    });
    assert_eq!(enc(&ret), "a001 SEARCH RETURN () ALL\r\n");
    assert!(
        err(&Command::Search(Search::new(false, vec![])))
            == EncodeError::Empty {
                what: "search criteria"
            }
    );
    assert!(matches!(
        err(&Command::Search(Search::new(
            false,
            vec![SearchKey::Keyword(Flag::Seen)]
        ))),
        EncodeError::Invalid { .. }
    ));
    let mut deep = SearchKey::All;
    for _ in 0..100 {
        deep = SearchKey::Not(Box::new(deep));
    }
    assert!(matches!(
        err(&Command::Search(Search::new(false, vec![deep]))),
        EncodeError::TooLarge { .. }
    ));
}

#[test]
fn enable_id_and_extensions() {
    assert_eq!(
        enc(&Command::Enable(vec![
            "CONDSTORE".into(),
            "QRESYNC".into(),
            "UTF8=ACCEPT".into()
        ])),
        "a001 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n"
    );
    assert_eq!(
        err(&Command::Enable(vec![])),
        EncodeError::Empty {
            what: "ENABLE capability list"
        }
    );
    assert!(matches!(
        err(&Command::Enable(vec!["A B".into()])),
        EncodeError::Invalid { .. }
    ));
    assert_eq!(enc(&Command::Id(None)), "a001 ID NIL\r\n");
    assert_eq!(
        enc(&Command::Id(Some(vec![
            ("name".into(), Some("mailfold".into())),
            ("version".into(), Some("0.1".into())),
            ("os".into(), None)
        ]))),
        "a001 ID (\"name\" \"mailfold\" \"version\" \"0.1\" \"os\" NIL)\r\n"
    );
}

#[test]
fn dates_are_validated() {
    assert!(Date::new(2024, 2, 29).is_ok());
    assert!(Date::new(2023, 2, 29).is_err());
    assert!(Date::new(2024, 13, 1).is_err());
    assert!(Date::new(2024, 4, 31).is_err());
    assert!(Date::new(0, 1, 1).is_err());
    let d = Date::new(2024, 12, 25).unwrap();
    assert_eq!(d.to_string(), "25-Dec-2024");
    assert_eq!(
        DateTime::new(d, 0, 0, 0, 330).unwrap().to_string(),
        "25-Dec-2024 00:00:00 +0530"
    );
    assert!(DateTime::new(d, 24, 0, 0, 0).is_err());
    assert!(DateTime::new(d, 0, 0, 0, 100 * 60).is_err());
}

#[test]
fn literal_plus_and_minus_choose_the_literal_mode() {
    let cmd = Command::Create(Mailbox::from_wire(b"caf\xc3\xa9".to_vec()));
    let plus = EncodeCaps {
        literal_plus: true,
        ..EncodeCaps::default()
    };
    assert_eq!(
        encode(&tag(), &cmd, &plus).unwrap().to_bytes().unwrap(),
        b"a001 CREATE {5+}\r\ncaf\xc3\xa9\r\n"
    );
    let minus = EncodeCaps {
        literal_minus: true,
        ..EncodeCaps::default()
    };
    assert!(!encode(&tag(), &cmd, &minus).unwrap().has_sync_literal());
    assert!(encode(&tag(), &cmd, &EncodeCaps::default())
        .unwrap()
        .has_sync_literal());
}
