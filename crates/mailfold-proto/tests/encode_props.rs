//! Property tests for the strict encoder: generated commands are encoded and handed to an
//! independent parser (imap-codec's command decoder), which must accept every one of them as
//! valid IMAP syntax (seed N3); and no encoded line ever has two SPs in a row or a TAB
//! outside string contents (seed N4).
//!
//! imap-codec does not parse ESEARCH `RETURN`, the CONDSTORE `MODSEQ` search key, LIST-EXTENDED
//! options, UTF-8 quoted strings or the pre-IMAP4rev1 `RFC822.PEEK`, so those forms are only
//! in the N4 generator; their exact bytes are pinned in `encode_commands.rs`.

use std::num::NonZeroU32;

use imap_codec_v2::decode::Decoder;
use imap_codec_v2::CommandCodec;
use mailfold_proto::command::{
    Append, AppendData, Command, Date, DateTime, FetchItem, FetchItems, FetchModifiers, List,
    ListReturn, ListSelect, Partial, Qresync, Search, SearchKey, SearchReturn, Section,
    SectionText, SelectParams, StatusItem, StoreFlags, StoreMode,
};
use mailfold_proto::core::{Flag, Mailbox, Tag};
use mailfold_proto::encode::{encode, EncodeCaps, EncodeError, Part};
use mailfold_proto::seqset::{NumberSet, SetKind, Star};
use mailfold_sasl::Secret;
use proptest::prelude::*;
use proptest::sample::select;

/// Whether to generate only what imap-codec can parse, or the full command space.
#[derive(Clone, Copy)]
enum Scope {
    Codec,
    Full,
}

fn atom() -> impl Strategy<Value = String> {
    "[A-Za-z0-9$_.\\-+/&~!#=]{1,12}"
}

/// Bytes of every kind a string can hold: atoms, specials, spaces, controls, 8-bit, long.
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => atom().prop_map(String::into_bytes),
        2 => "[ -~]{0,20}".prop_map(String::into_bytes),
        1 => Just(b"NIL".to_vec()),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(1u8..=255, 0..16),
        1 => "[a b]{1000,1100}".prop_map(String::into_bytes),
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    prop_oneof![
        Just(Mailbox::inbox()),
        any::<String>().prop_map(|s| Mailbox::from_utf8(&s)),
        text().prop_map(Mailbox::from_wire),
    ]
}

fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"*".to_vec()),
        Just(b"%".to_vec()),
        "[A-Za-z%*/. ]{0,10}".prop_map(String::into_bytes)
    ]
}

fn set<K: SetKind + 'static>() -> impl Strategy<Value = NumberSet<K>> {
    (proptest::collection::vec(1u32.., 1..8), 0u8..4).prop_map(|(nums, star)| {
        let mut s = NumberSet::<K>::from_numbers(nums).unwrap();
        s.set_star(match star {
            0 => Some(Star::Largest),
            1 => Some(Star::From(3)),
            _ => None,
        });
        s
    })
}

fn plain_set<K: SetKind + 'static>() -> impl Strategy<Value = NumberSet<K>> {
    proptest::collection::vec(1u32..100_000, 1..8)
        .prop_map(|n| NumberSet::<K>::from_numbers(n).unwrap())
}

fn storable_flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        select(vec![
            Flag::Seen,
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Draft
        ]),
        "[A-Za-z$][A-Za-z0-9_]{0,8}".prop_map(|s| Flag::keyword(&s).unwrap()),
        "[A-Z][a-z]{1,8}".prop_map(Flag::Extension),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (1970u16..2100, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| Date::new(y, m, d).unwrap())
}

fn date_time() -> impl Strategy<Value = DateTime> {
    (date(), 0u8..24, 0u8..60, 0u8..60, -720i16..=840)
        .prop_map(|(d, h, m, s, z)| DateTime::new(d, h, m, s, z).unwrap())
}

fn status_items() -> impl Strategy<Value = Vec<StatusItem>> {
    proptest::collection::vec(
        select(vec![
            StatusItem::Messages,
            StatusItem::Recent,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
            StatusItem::HighestModSeq,
            StatusItem::Size,
            StatusItem::Deleted,
        ]),
        1..5,
    )
}

fn search_key(scope: Scope) -> impl Strategy<Value = SearchKey> {
    let leaf = prop_oneof![
        select(vec![
            SearchKey::All,
            SearchKey::Answered,
            SearchKey::Deleted,
            SearchKey::Draft,
            SearchKey::Flagged,
            SearchKey::New,
            SearchKey::Old,
            SearchKey::Recent,
            SearchKey::Seen,
            SearchKey::Unanswered,
            SearchKey::Undeleted,
            SearchKey::Undraft,
            SearchKey::Unflagged,
            SearchKey::Unseen,
        ]),
        text().prop_map(SearchKey::Bcc),
        text().prop_map(SearchKey::Body),
        text().prop_map(SearchKey::Cc),
        text().prop_map(SearchKey::From),
        text().prop_map(SearchKey::Subject),
        text().prop_map(SearchKey::Text),
        text().prop_map(SearchKey::To),
        (atom(), text()).prop_map(|(n, v)| SearchKey::Header(n.into_bytes(), v)),
        date().prop_map(SearchKey::Before),
        date().prop_map(SearchKey::On),
        date().prop_map(SearchKey::Since),
        date().prop_map(SearchKey::SentBefore),
        date().prop_map(SearchKey::SentOn),
        date().prop_map(SearchKey::SentSince),
        "[A-Za-z$][a-z]{0,6}".prop_map(|k| SearchKey::Keyword(Flag::keyword(&k).unwrap())),
        "[A-Za-z$][a-z]{0,6}".prop_map(|k| SearchKey::Unkeyword(Flag::keyword(&k).unwrap())),
        any::<u32>().prop_map(SearchKey::Larger),
        any::<u32>().prop_map(SearchKey::Smaller),
        set().prop_map(SearchKey::Uid),
        set().prop_map(SearchKey::SequenceSet),
        (0u64..=i64::MAX as u64).prop_map(SearchKey::ModSeq),
    ];
    leaf.prop_filter("MODSEQ is not parsed by imap-codec", move |k| {
        !(matches!(scope, Scope::Codec) && matches!(k, SearchKey::ModSeq(_)))
    })
    .prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|k| SearchKey::Not(Box::new(k))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| SearchKey::Or(Box::new(a), Box::new(b))),
            proptest::collection::vec(inner, 1..3).prop_map(SearchKey::And),
        ]
    })
}

fn section() -> impl Strategy<Value = Section> {
    let part = proptest::collection::vec(1u32..20, 0..3).prop_map(|v| {
        v.into_iter()
            .filter_map(NonZeroU32::new)
            .collect::<Vec<_>>()
    });
    let names = || proptest::collection::vec(atom().prop_map(String::into_bytes), 1..3);
    let text = prop_oneof![
        Just(None),
        Just(Some(SectionText::Header)),
        Just(Some(SectionText::Text)),
        Just(Some(SectionText::Mime)),
        names().prop_map(|n| Some(SectionText::HeaderFields(n))),
        names().prop_map(|n| Some(SectionText::HeaderFieldsNot(n))),
    ];
    (part, text).prop_map(|(part, text)| {
        // MIME is only valid after a part number.
        let text = if part.is_empty() && text == Some(SectionText::Mime) {
            None
        } else {
            text
        };
        Section { part, text }
    })
}

fn partial() -> impl Strategy<Value = Option<Partial>> {
    proptest::option::of((any::<u32>(), 1u32..).prop_map(|(o, l)| Partial {
        origin: o,
        length: NonZeroU32::new(l).unwrap_or(NonZeroU32::MIN),
    }))
}

fn fetch_item() -> impl Strategy<Value = FetchItem> {
    let part = proptest::collection::vec(1u32..9, 0..3).prop_map(|v| {
        v.into_iter()
            .filter_map(NonZeroU32::new)
            .collect::<Vec<_>>()
    });
    prop_oneof![
        select(vec![
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
            FetchItem::Envelope,
            FetchItem::Body,
            FetchItem::BodyStructure,
            FetchItem::Uid,
            FetchItem::ModSeq,
            FetchItem::Rfc822,
            FetchItem::Rfc822Header,
            FetchItem::Rfc822Text,
        ]),
        (any::<bool>(), section(), partial()).prop_map(|(peek, section, partial)| {
            FetchItem::BodySection {
                peek,
                section,
                partial,
            }
        }),
        (any::<bool>(), part.clone(), partial()).prop_map(|(peek, part, partial)| {
            FetchItem::Binary {
                peek,
                part,
                partial,
            }
        }),
        part.prop_map(|part| FetchItem::BinarySize { part }),
    ]
}

fn fetch_items() -> impl Strategy<Value = FetchItems> {
    prop_oneof![
        Just(FetchItems::All),
        Just(FetchItems::Fast),
        Just(FetchItems::Full),
        proptest::collection::vec(fetch_item(), 1..5).prop_map(FetchItems::Items),
    ]
}

fn modseq() -> impl Strategy<Value = u64> {
    1u64..=i64::MAX as u64
}

fn store_flags() -> impl Strategy<Value = StoreFlags> {
    (
        select(vec![StoreMode::Replace, StoreMode::Add, StoreMode::Remove]),
        any::<bool>(),
        proptest::collection::vec(storable_flag(), 0..4),
    )
        .prop_map(|(mode, silent, flags)| StoreFlags {
            mode,
            silent,
            flags,
        })
}

fn select_params() -> impl Strategy<Value = SelectParams> {
    let qresync = (
        1u32..,
        modseq(),
        proptest::option::of(plain_set()),
        proptest::option::of(1usize..5),
    )
        .prop_map(|(v, m, known, matched)| {
            let seq_match = matched.map(|n| {
                (
                    NumberSet::from_numbers(1..=n as u32).unwrap(),
                    NumberSet::from_numbers((1..=n as u32).map(|x| x * 3)).unwrap(),
                )
            });
            SelectParams::Qresync(Qresync {
                uid_validity: NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN),
                modseq: m,
                known_uids: known,
                seq_match,
            })
        });
    prop_oneof![
        Just(SelectParams::None),
        Just(SelectParams::CondStore),
        qresync
    ]
}

fn command(scope: Scope) -> impl Strategy<Value = Command> {
    let simple = select(vec![
        Command::Capability,
        Command::Noop,
        Command::Logout,
        Command::StartTls,
        Command::Check,
        Command::Close,
        Command::Unselect,
        Command::Expunge,
        Command::Idle,
        Command::Namespace,
        Command::CompressDeflate,
    ]);
    let list = (mailbox(), pattern()).prop_map(|(r, p)| Command::List(List::new(r, p)));
    let list_ext = (
        proptest::collection::vec(
            select(vec![
                ListSelect::Subscribed,
                ListSelect::Remote,
                ListSelect::SpecialUse,
                ListSelect::RecursiveMatch,
            ]),
            0..3,
        )
        .prop_filter("RECURSIVEMATCH never alone", |s| {
            !s.iter().all(|x| *x == ListSelect::RecursiveMatch) || s.is_empty()
        }),
        mailbox(),
        proptest::collection::vec(pattern(), 1..3),
        proptest::collection::vec(
            prop_oneof![
                Just(ListReturn::Children),
                Just(ListReturn::Subscribed),
                Just(ListReturn::SpecialUse),
                status_items().prop_map(ListReturn::Status)
            ],
            0..3,
        ),
    )
        .prop_map(|(selection, reference, patterns, returns)| {
            Command::List(List {
                selection,
                reference,
                patterns,
                returns,
            })
        });
    let search_returns = match scope {
        Scope::Codec => Just(None).boxed(),
        Scope::Full => proptest::option::of(proptest::collection::vec(
            select(vec![
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::All,
                SearchReturn::Count,
                SearchReturn::Save,
            ]),
            0..4,
        ))
        .boxed(),
    };
    let search = (
        any::<bool>(),
        proptest::option::of(select(vec!["UTF-8".to_string(), "US-ASCII".into()])),
        proptest::collection::vec(search_key(scope), 1..4),
        search_returns,
    )
        .prop_map(|(uid, charset, criteria, returns)| {
            Command::Search(Search {
                uid,
                charset,
                criteria,
                returns,
            })
        });
    let mut arms: Vec<BoxedStrategy<Command>> = vec![
        simple.boxed(),
        (
            atom(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        )
            .prop_map(|(m, ir)| Command::Authenticate {
                mechanism: m.to_uppercase(),
                initial_response: ir.map(Secret::new),
            })
            .boxed(),
        (text(), text())
            .prop_map(|(u, p)| Command::Login {
                username: u,
                password: Secret::new(p),
            })
            .boxed(),
        (mailbox(), select_params())
            .prop_map(|(mailbox, params)| Command::Select { mailbox, params })
            .boxed(),
        (mailbox(), select_params())
            .prop_map(|(mailbox, params)| Command::Examine { mailbox, params })
            .boxed(),
        mailbox().prop_map(Command::Create).boxed(),
        mailbox().prop_map(Command::Delete).boxed(),
        mailbox().prop_map(Command::Subscribe).boxed(),
        mailbox().prop_map(Command::Unsubscribe).boxed(),
        (mailbox(), mailbox())
            .prop_map(|(from, to)| Command::Rename { from, to })
            .boxed(),
        list.boxed(),
        (mailbox(), pattern())
            .prop_map(|(reference, pattern)| Command::Lsub { reference, pattern })
            .boxed(),
        (mailbox(), status_items())
            .prop_map(|(mailbox, items)| Command::Status { mailbox, items })
            .boxed(),
        (
            mailbox(),
            proptest::collection::vec(storable_flag(), 0..4),
            proptest::option::of(date_time()),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(mailbox, flags, internal_date, message)| {
                Command::Append(Append {
                    mailbox,
                    flags,
                    internal_date,
                    message: AppendData::Inline(message),
                })
            })
            .boxed(),
        plain_set().prop_map(Command::UidExpunge).boxed(),
        search.boxed(),
        (set(), fetch_items(), proptest::option::of(modseq()))
            .prop_map(|(set, items, cs)| Command::Fetch {
                set,
                items,
                modifiers: FetchModifiers {
                    changed_since: cs,
                    vanished: false,
                },
            })
            .boxed(),
        (
            set(),
            fetch_items(),
            proptest::option::of(modseq()),
            any::<bool>(),
        )
            .prop_map(|(set, items, cs, v)| Command::UidFetch {
                set,
                items,
                modifiers: FetchModifiers {
                    changed_since: cs,
                    vanished: v && cs.is_some(),
                },
            })
            .boxed(),
        (
            set(),
            store_flags(),
            proptest::option::of(0u64..=i64::MAX as u64),
        )
            .prop_map(|(set, store, unchanged_since)| Command::Store {
                set,
                store,
                unchanged_since,
            })
            .boxed(),
        (
            set(),
            store_flags(),
            proptest::option::of(0u64..=i64::MAX as u64),
        )
            .prop_map(|(set, store, unchanged_since)| Command::UidStore {
                set,
                store,
                unchanged_since,
            })
            .boxed(),
        (set(), mailbox())
            .prop_map(|(set, mailbox)| Command::Copy { set, mailbox })
            .boxed(),
        (set(), mailbox())
            .prop_map(|(set, mailbox)| Command::UidCopy { set, mailbox })
            .boxed(),
        (set(), mailbox())
            .prop_map(|(set, mailbox)| Command::Move { set, mailbox })
            .boxed(),
        (set(), mailbox())
            .prop_map(|(set, mailbox)| Command::UidMove { set, mailbox })
            .boxed(),
        proptest::collection::vec(
            select(vec![
                "CONDSTORE".to_string(),
                "QRESYNC".into(),
                "UTF8=ACCEPT".into(),
                "X-FOO".into(),
            ]),
            1..4,
        )
        .prop_map(Command::Enable)
        .boxed(),
        proptest::option::of(proptest::collection::vec(
            ("[a-z-]{1,30}", proptest::option::of("[ -~]{0,40}")),
            1..5,
        ))
        .prop_map(Command::Id)
        .boxed(),
    ];
    if let Scope::Full = scope {
        arms.push(list_ext.boxed());
        arms.push(
            "X[A-Z]{1,8}( [A-Z0-9*]{1,5}| \\(\\)| \"a b\"){0,3}"
                .prop_map(|s| Command::Raw(s.into_bytes()))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(arms)
}

fn caps(scope: Scope) -> impl Strategy<Value = EncodeCaps> {
    let utf8 = matches!(scope, Scope::Full);
    let old = matches!(scope, Scope::Full);
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(p, m, u, r)| {
        EncodeCaps {
            imap4rev1: r || !old,
            literal_plus: p,
            literal_minus: m,
            utf8_accept: u && utf8,
            binary: true,
            sasl_ir: true,
        }
    })
}

fn tag() -> impl Strategy<Value = Tag> {
    "[a-z0-9]{4}".prop_map(|t| Tag::new(t).unwrap())
}

/// The one refusal generated commands may meet: 8-bit search text without CHARSET (V0013).
fn is_charset_refusal(r: &Result<mailfold_proto::encode::Encoded, EncodeError>) -> bool {
    matches!(
        r,
        Err(EncodeError::Invalid {
            what: "search charset",
            ..
        })
    )
}

/// Checks N4 on the line parts: no TAB, no two SPs in a row, outside quoted-string content.
fn assert_single_spaces(parts: &[Part]) {
    for p in parts {
        let Part::Line { bytes, .. } = p else {
            continue;
        };
        let mut in_quote = false;
        let mut escaped = false;
        let mut prev_space = false;
        for &b in bytes {
            if in_quote {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_quote = false,
                    _ => {}
                }
                prev_space = false;
                continue;
            }
            assert_ne!(b, b'\t', "TAB in {:?}", String::from_utf8_lossy(bytes));
            assert!(
                !(prev_space && b == b' '),
                "double SP in {:?}",
                String::from_utf8_lossy(bytes)
            );
            prev_space = b == b' ';
            in_quote = b == b'"';
        }
        assert!(
            !in_quote,
            "unterminated quoted string in {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(bytes.ends_with(b"\r\n"), "line part must end in CRLF");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Seed N3: every encoded command is accepted by an independent RFC 3501/9051 parser,
    /// consumes the whole buffer, and is the same command.
    #[test]
    fn n3_encoded_commands_parse_with_imap_codec(tag in tag(), cmd in command(Scope::Codec), caps in caps(Scope::Codec)) {
        let encoded = encode(&tag, &cmd, &caps);
        prop_assume!(!is_charset_refusal(&encoded));
        let wire = encoded.unwrap().to_bytes().unwrap();
        match CommandCodec::default().decode(&wire) {
            Ok((rest, parsed)) => {
                prop_assert!(rest.is_empty(), "trailing bytes {:?}", String::from_utf8_lossy(rest));
                prop_assert_eq!(parsed.tag.inner(), tag.as_str());
                let ours = cmd.name();
                let ours = ours.strip_prefix("UID ").unwrap_or(ours);
                prop_assert_eq!(parsed.name(), ours);
            }
            Err(e) => prop_assert!(false, "imap-codec rejected {:?}: {:?}", String::from_utf8_lossy(&wire), e),
        }
    }

    /// Seed N4: never more than one SP between tokens, never a TAB, CRLF line ends.
    #[test]
    fn n4_never_more_than_one_space(tag in tag(), cmd in command(Scope::Full), caps in caps(Scope::Full)) {
        let encoded = encode(&tag, &cmd, &caps);
        prop_assume!(!is_charset_refusal(&encoded));
        assert_single_spaces(encoded.unwrap().parts());
    }

    /// Flags survive a decode→encode→decode round trip (seed N6).
    #[test]
    fn flags_round_trip(f in prop_oneof![storable_flag(), Just(Flag::Recent), Just(Flag::MayCreate)]) {
        let wire = f.to_string();
        let back = Flag::parse(&wire).unwrap();
        prop_assert_eq!(&back, &f);
        prop_assert_eq!(back.to_string(), wire);
    }
}
