//! Example tests of the planner rules, one per rule or seed ID, on the in-memory model.

#[path = "plan_model.rs"]
mod model;

use mailfold_plan::{
    plan, Body, Content, DownloadMode, Flag, FlagSet, Intent, IntentId, LocalId, ModSeq, Op,
    PendingKey, PermanentFlags, PlanConfig, RefusalReason, RemoteMessage, RemoteMessages, Side,
    UidRange, Warning,
};
use model::{date_of, flags, fp, mid_of, size_of, uid, LMsg, World};

fn cfg() -> PlanConfig {
    PlanConfig::default()
}

/// Plans, checks the static invariants, applies; returns the plan.
fn run(w: &mut World, config: &PlanConfig) -> mailfold_plan::Plan {
    let input = w.input();
    let p = plan(&input, config);
    mailfold_plan::check::check_plan(&input, config, &p).expect("plan invariants");
    w.apply(&p, None);
    p
}

fn assert_settled(w: &World, config: &PlanConfig) {
    let p = plan(&w.input(), config);
    assert!(p.is_empty(), "plan after apply is not empty: {:#?}", p.ops);
}

fn none() -> FlagSet {
    FlagSet::new()
}

fn two_folders() -> World {
    World::synced(&[
        (
            "INBOX",
            vec![(1, none()), (2, flags(&["\\Seen"])), (3, none())],
        ),
        ("Archive", vec![(4, flags(&["\\Seen"]))]),
    ])
}

#[test]
fn synced_account_plans_nothing() {
    let w = two_folders();
    assert_settled(&w, &cfg());
}

#[test]
fn flags_merge_per_flag_both_ways() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    // Local: \Flagged added on b1. Server: \Seen added on uid 1 and removed on uid 2.
    w.local
        .get_mut(&inbox)
        .unwrap()
        .get_mut(&LocalId::new("b1"))
        .unwrap()
        .flags = flags(&["\\Flagged"]);
    w.remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .get_mut(&1)
        .unwrap()
        .flags = flags(&["\\Seen"]);
    w.remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .get_mut(&2)
        .unwrap()
        .flags = none();
    run(&mut w, &cfg());
    let r = &w.remote[&inbox].msgs;
    let l = &w.local[&inbox];
    assert_eq!(r[&1].flags, flags(&["\\Seen", "\\Flagged"]));
    assert_eq!(
        l[&LocalId::new("b1")].flags,
        flags(&["\\Seen", "\\Flagged"])
    );
    assert_eq!(r[&2].flags, none());
    assert_eq!(l[&LocalId::new("b2")].flags, none());
    assert_settled(&w, &cfg());
}

/// V0056: server stores carry UNCHANGEDSINCE with the message's MODSEQ, so a concurrent change
/// on the server is not overwritten.
#[test]
fn v0056_store_uses_unchangedsince() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.local
        .get_mut(&inbox)
        .unwrap()
        .get_mut(&LocalId::new("b3"))
        .unwrap()
        .flags = flags(&["\\Answered"]);
    let modseq = w.remote[&inbox].msgs[&3].modseq;
    let p = plan(&w.input(), &cfg());
    let store = p
        .ops
        .iter()
        .find_map(|o| match o {
            Op::SyncFlags { update, .. } => update.remote.clone(),
            _ => None,
        })
        .expect("a server store");
    assert_eq!(store.add, flags(&["\\Answered"]));
    assert_eq!(store.unchanged_since, ModSeq::new(modseq));
}

/// V0004: `\Recent` cannot be represented, so it is never stored.
#[test]
fn v0004_recent_is_dropped_and_never_stored() {
    let f = FlagSet::from_imap(["\\Recent", "\\Seen", "\\RECENT", "$Junk"]);
    assert_eq!(f, flags(&["\\Seen", "$Junk"]));
    assert!(Flag::from_imap("\\Recent").is_none());
    // An unknown system-flag extension is kept (N6).
    assert_eq!(
        Flag::from_imap("\\Important"),
        Some(Flag::Extension("Important".into()))
    );
}

/// V0004: the wire flag maps to the planner's by one function; `\Recent` and the PERMANENTFLAGS
/// marker `\*` have no planner flag. Text the wire grammar refuses (a keyword a Maildir keyword
/// file may hold) still parses, so nothing local is dropped.
#[test]
fn v0004_the_wire_flag_maps_to_the_planners_and_text_agrees() {
    use mailfold_proto::core::Flag as WireFlag;
    assert_eq!(Flag::from_wire(WireFlag::Recent), None);
    assert_eq!(Flag::from_wire(WireFlag::MayCreate), None);
    assert_eq!(Flag::from_wire(WireFlag::Draft), Some(Flag::Draft));
    assert_eq!(
        Flag::from_wire(WireFlag::Keyword("$Junk".into())),
        Some(Flag::Keyword("$Junk".into()))
    );
    for text in [
        "\\Seen",
        "\\answered",
        "\\Important",
        "$Junk",
        "\\Recent",
        "\\*",
    ] {
        let wire = WireFlag::parse(text).expect("a wire flag");
        assert_eq!(Flag::from_imap(text), Flag::from_wire(wire), "{text}");
    }
    assert_eq!(Flag::from_imap(""), None);
    assert_eq!(Flag::from_imap("\\"), None);
    assert_eq!(
        Flag::from_imap("caf\u{e9}(1)"),
        Some(Flag::Keyword("caf\u{e9}(1)".into()))
    );
    assert_eq!(
        Flag::from_imap("\\Odd]"),
        Some(Flag::Extension("Odd]".into()))
    );
}

/// V0005: keywords sync both ways where PERMANENTFLAGS allows; a keyword the server does not
/// allow stays local, is reported, and is not retried as a change.
#[test]
fn v0005_keywords_sync_only_where_permitted() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    // Server keyword arrives locally.
    w.remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .get_mut(&1)
        .unwrap()
        .flags = flags(&["$Forwarded"]);
    run(&mut w, &cfg());
    assert_eq!(
        w.local[&inbox][&LocalId::new("b1")].flags,
        flags(&["$Forwarded"])
    );

    // Now the server stops allowing new keywords; the user labels b3 and marks it seen.
    w.remote.get_mut(&inbox).unwrap().perm = PermanentFlags {
        flags: flags(&["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]),
        new_keywords: false,
    };
    w.local
        .get_mut(&inbox)
        .unwrap()
        .get_mut(&LocalId::new("b3"))
        .unwrap()
        .flags = flags(&["\\Seen", "work"]);
    let p = run(&mut w, &cfg());
    assert!(p
        .warnings
        .iter()
        .any(|x| matches!(x, Warning::KeywordsNotPermitted { flags, .. }
        if flags.contains(&Flag::Keyword("work".into())))));
    assert_eq!(w.remote[&inbox].msgs[&3].flags, flags(&["\\Seen"]));
    assert_eq!(
        w.local[&inbox][&LocalId::new("b3")].flags,
        flags(&["\\Seen", "work"])
    );
    assert_settled(&w, &cfg());
}

/// V0003: a UIDVALIDITY change: no loss, no duplicate, held messages bound again (not
/// downloaded), local changes made before survive, and a local deletion made before it is
/// carried out on the server instead of being undone.
#[test]
fn v0003_uidvalidity_change_rebinds_without_loss_or_duplicate() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    // An unsynced local change and a local deletion, then the server renumbers everything.
    w.local
        .get_mut(&inbox)
        .unwrap()
        .get_mut(&LocalId::new("b1"))
        .unwrap()
        .flags = flags(&["\\Flagged"]);
    w.local.get_mut(&inbox).unwrap().remove(&LocalId::new("b3"));
    let rf = w.remote.get_mut(&inbox).unwrap();
    let msgs: Vec<_> = std::mem::take(&mut rf.msgs).into_values().collect();
    rf.uidvalidity = Some(999);
    rf.uidnext = 50;
    for m in msgs {
        rf.add(m.body, m.flags);
    }
    let p = run(&mut w, &cfg());
    assert!(p
        .warnings
        .iter()
        .any(|x| matches!(x, Warning::UidValidityChanged { .. })));
    assert!(p.ops.iter().any(|o| matches!(o, Op::SetUidValidity { .. })));
    let binds = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Bind { .. }))
        .count();
    assert_eq!(binds, 2, "b1 and b2 are bound again: {:#?}", p.ops);
    assert!(!p.ops.iter().any(|o| matches!(
        o,
        Op::DeleteLocal { .. } | Op::Upload { .. } | Op::Download { .. }
    )));
    // The message deleted locally before the change does not come back: its remembered row
    // (same content, file gone) proves it was synced, so the deletion reaches the server.
    let expunges = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::ExpungeRemote { .. }))
        .count();
    assert_eq!(expunges, 1, "{:#?}", p.ops);
    assert_eq!(w.remote[&inbox].msgs.len(), 2);
    assert_eq!(w.local[&inbox].len(), 2);
    assert_eq!(w.remote[&inbox].msgs[&50].flags, flags(&["\\Flagged"]));
    assert_settled(&w, &cfg());
}

/// A lost state database: everything is matched by content, nothing deleted or duplicated.
#[test]
fn lost_state_matches_by_content() {
    let mut w = two_folders();
    w.state.clear();
    let p = run(
        &mut w,
        &PlanConfig {
            force: false,
            ..cfg()
        },
    );
    assert_eq!(p.summary.binds, 4);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    assert_settled(&w, &cfg());
}

/// V0039: a read-only folder: no server write, local changes marked pending once, kept, and
/// pushed when the folder becomes writable.
#[test]
fn v0039_read_only_folder_keeps_local_changes_pending() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.remote.get_mut(&inbox).unwrap().read_only = true;
    let l = w.local.get_mut(&inbox).unwrap();
    l.get_mut(&LocalId::new("b1")).unwrap().flags = flags(&["\\Seen"]);
    l.remove(&LocalId::new("b3"));
    l.insert(
        LocalId::new("new1"),
        LMsg {
            body: 77,
            flags: none(),
            partial: false,
        },
    );
    // The server also changed something: it still comes down.
    w.remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .get_mut(&2)
        .unwrap()
        .flags = flags(&["\\Flagged"]);

    let p = run(&mut w, &cfg());
    assert!(!p.ops.iter().any(Op::writes_remote), "{:#?}", p.ops);
    let marks = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::MarkPending { .. }))
        .count();
    assert_eq!(marks, 3);
    assert_eq!(p.summary.pending, 3);
    assert!(p.warnings.contains(&Warning::ReadOnlyPending {
        folder: inbox.clone(),
        count: 3
    }));
    assert_eq!(
        w.local[&inbox][&LocalId::new("b2")].flags,
        flags(&["\\Flagged"])
    );
    // Not retried: the next plan is empty, the change is still reported.
    let again = plan(&w.input(), &cfg());
    assert!(again.is_empty(), "{:#?}", again.ops);
    assert_eq!(again.summary.pending, 3);
    // Writable again: everything goes up and the marks are cleared.
    w.remote.get_mut(&inbox).unwrap().read_only = false;
    let p = run(&mut w, &cfg());
    assert_eq!(p.summary.uploads, 1);
    assert_eq!(p.summary.remote_deletions, 1);
    assert_eq!(p.summary.remote_flag_changes, 1);
    assert!(w.pending_keys(&inbox).is_empty());
    assert_settled(&w, &cfg());
}

/// V0037: no UIDVALIDITY: synced read-only by content, with a warning, no state written.
#[test]
fn v0037_missing_uidvalidity_pulls_by_content_only() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.remote.get_mut(&inbox).unwrap().uidvalidity = None;
    w.remote.get_mut(&inbox).unwrap().add(20, none());
    w.local
        .get_mut(&inbox)
        .unwrap()
        .get_mut(&LocalId::new("b1"))
        .unwrap()
        .flags = flags(&["\\Seen"]);
    let state_before = w.state[&inbox].clone();
    let p = run(&mut w, &cfg());
    assert!(p.warnings.contains(&Warning::NoUidValidity {
        folder: inbox.clone()
    }));
    let inbox_ops: Vec<_> = p
        .ops
        .iter()
        .filter(|o| o.folders().contains(&&inbox))
        .collect();
    assert_eq!(inbox_ops.len(), 1, "{inbox_ops:#?}");
    assert!(matches!(inbox_ops[0], Op::Download { record: false, .. }));
    assert_eq!(w.state[&inbox], state_before);
    assert_settled(&w, &cfg());
}

/// V0046: a draft without the headers RFC 5322 requires (no Message-ID, no Date) is uploaded
/// with its \Draft flag.
#[test]
fn v0046_draft_without_headers_is_uploaded() {
    let mut w = two_folders();
    let drafts = fp("Drafts");
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        LocalId::new("draft1"),
        LMsg {
            body: 40, // 40 % 4 == 0: the model gives it no Message-ID
            flags: flags(&["\\Draft"]),
            partial: false,
        },
    );
    w.local.insert(drafts.clone(), files);
    assert!(mid_of(40).is_none());
    let p = run(&mut w, &cfg());
    assert!(matches!(&p.ops[0], Op::CreateRemoteFolder { folder } if *folder == drafts));
    assert!(p.ops.iter().any(
        |o| matches!(o, Op::Upload { flags: f, message_id: None, .. }
        if f.contains(&Flag::Draft))
    ));
    assert_eq!(w.remote[&drafts].msgs.len(), 1);
    assert_settled(&w, &cfg());
}

/// V0057: a message moved on the server is moved locally, not downloaded again; a file moved
/// locally becomes a server move keeping flags; neither leaves a duplicate.
#[test]
fn v0057_moves_are_moves_both_ways() {
    let mut w = two_folders();
    let (inbox, archive) = (fp("INBOX"), fp("Archive"));
    // Server: uid 1 (body 1) moved INBOX → Archive.
    let m = w.remote.get_mut(&inbox).unwrap().msgs.remove(&1).unwrap();
    w.remote.get_mut(&archive).unwrap().add(m.body, m.flags);
    // Local: b2 moved INBOX → Archive, keeping its name, and flagged on the way.
    let mut f = w
        .local
        .get_mut(&inbox)
        .unwrap()
        .remove(&LocalId::new("b2"))
        .unwrap();
    f.flags.insert(Flag::Flagged);
    w.local
        .get_mut(&archive)
        .unwrap()
        .insert(LocalId::new("b2"), f);

    let p = run(&mut w, &cfg());
    assert_eq!(p.summary.local_moves, 1);
    assert_eq!(p.summary.remote_moves, 1);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    assert_eq!(p.summary.local_deletions + p.summary.remote_deletions, 0);
    let bodies = |v: Vec<u32>| v;
    assert_eq!(
        bodies(w.remote[&archive].msgs.values().map(|m| m.body).collect()),
        vec![4, 1, 2]
    );
    let moved = w.remote[&archive]
        .msgs
        .values()
        .find(|m| m.body == 2)
        .unwrap();
    assert_eq!(moved.flags, flags(&["\\Seen", "\\Flagged"]));
    assert!(w.local[&archive].contains_key(&LocalId::new("b1")));
    assert_eq!(w.snapshot().local, w.snapshot().remote);
    assert_settled(&w, &cfg());
}

/// V0070 and V0010: headers-only downloads are partial; a partial copy is never uploaded and
/// never replaces a full one; a full sync replaces the partial copy in place.
#[test]
fn v0070_partial_copy_never_replaces_a_full_one() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.remote.get_mut(&inbox).unwrap().add(30, none());
    let headers = PlanConfig {
        download: DownloadMode::HeadersOnly,
        ..cfg()
    };
    let p = run(&mut w, &headers);
    let d: Vec<_> = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Download { .. }))
        .collect();
    assert_eq!(
        d.len(),
        1,
        "only the new message; full copies are left alone"
    );
    assert!(matches!(
        d[0],
        Op::Download {
            body: Body::Headers,
            replace: None,
            ..
        }
    ));
    assert_settled(&w, &headers);

    // A full sync later replaces the partial copy under the same name.
    let p = run(&mut w, &cfg());
    let d: Vec<_> = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Download { .. }))
        .collect();
    assert_eq!(d.len(), 1);
    assert!(matches!(
        d[0],
        Op::Download {
            body: Body::Full,
            replace: Some(_),
            ..
        }
    ));
    assert!(w.local[&inbox].values().all(|m| !m.partial));
    assert_settled(&w, &cfg());

    // A partial file nobody knows is kept, reported, never uploaded.
    w.local.get_mut(&inbox).unwrap().insert(
        LocalId::new("stray"),
        LMsg {
            body: 31,
            flags: none(),
            partial: true,
        },
    );
    let p = plan(&w.input(), &cfg());
    assert!(p.is_empty());
    assert!(p
        .warnings
        .iter()
        .any(|x| matches!(x, Warning::UnpairedPartial { .. })));
}

/// Adopting another tool's Maildir (a fresh state, `keep_new_local`): a file matching no
/// server message is reported and kept local-only, never uploaded; matched ones are bound and
/// unknown server messages still come down.
#[test]
fn adoption_keeps_unmatched_local_files_local() {
    let mut w = two_folders();
    w.state.clear();
    let inbox = fp("INBOX");
    w.local.get_mut(&inbox).unwrap().insert(
        LocalId::new("hand-made"),
        LMsg {
            body: 77,
            flags: flags(&["\\Seen"]),
            partial: false,
        },
    );
    let adopting = PlanConfig {
        keep_new_local: true,
        ..cfg()
    };
    let p = run(&mut w, &adopting);
    assert_eq!(p.summary.binds, 4);
    assert_eq!(p.summary.uploads, 0);
    assert!(p.warnings.iter().any(
        |x| matches!(x, Warning::KeptLocal { local, .. } if local == &LocalId::new("hand-made"))
    ));
    assert_eq!(w.remote_count(77), 0);
    assert_eq!(w.local_count(77), 1);
}

/// The safety valve refuses a folder that would lose more than half of more than 20 messages,
/// with a reason naming it; `--force` lets it through.
#[test]
fn safety_valve_refuses_mass_deletion_unless_forced() {
    let msgs: Vec<(u32, FlagSet)> = (1..=30).map(|b| (b, none())).collect();
    let mut w = World::synced(&[("INBOX", msgs), ("Sent", vec![(99, none())])]);
    let inbox = fp("INBOX");
    for u in 1..=16 {
        w.remote.get_mut(&inbox).unwrap().msgs.remove(&u);
    }
    w.remote.get_mut(&fp("Sent")).unwrap().add(100, none());
    let p = plan(&w.input(), &cfg());
    assert_eq!(p.refused.len(), 1);
    let r = &p.refused[0];
    assert_eq!(
        r.reason,
        RefusalReason::SafetyValve {
            side: Side::Local,
            deletions: 16,
            total: 30
        }
    );
    assert!(r.to_string().contains("INBOX") && r.to_string().contains("--force"));
    assert!(p.ops.iter().all(|o| !o.folders().contains(&&inbox)));
    // Other folders still sync.
    assert_eq!(p.summary.downloads, 1);
    let forced = PlanConfig {
        force: true,
        ..cfg()
    };
    run(&mut w, &forced);
    assert_eq!(w.local[&inbox].len(), 14);
}

/// An empty or unmounted Maildir is not a request to delete the whole server.
#[test]
fn missing_local_store_is_refused_not_deleted() {
    let mut w = two_folders();
    w.local.clear();
    let p = plan(&w.input(), &cfg());
    assert!(p.is_empty());
    assert_eq!(
        p.refused[0].reason,
        RefusalReason::SideLooksEmpty { side: Side::Local }
    );
}

/// A journaled APPEND whose copy reached the server is bound, not uploaded again.
#[test]
fn journaled_append_is_found_again() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.local.get_mut(&inbox).unwrap().insert(
        LocalId::new("sent1"),
        LMsg {
            body: 60,
            flags: flags(&["\\Seen"]),
            partial: false,
        },
    );
    w.remote
        .get_mut(&inbox)
        .unwrap()
        .add(60, flags(&["\\Seen"]));
    w.intents.insert(
        IntentId(7),
        Intent::Append {
            id: IntentId(7),
            folder: inbox.clone(),
            local: LocalId::new("sent1"),
            content: Content {
                size: Some(size_of(60)),
                date: Some(date_of(60)),
                message_id: mid_of(60),
                hash: None,
            },
        },
    );
    let p = run(&mut w, &cfg());
    assert_eq!(p.summary.uploads, 0);
    assert_eq!(p.summary.binds, 1);
    assert!(p.ops.contains(&Op::DropIntent { id: IntentId(7) }));
    assert!(w.intents.is_empty());
    assert_settled(&w, &cfg());
}

/// CONDSTORE/QRESYNC: a view of only the changes since the recorded HIGHESTMODSEQ plus
/// VANISHED is enough; one that does not fit the state is refused.
#[test]
fn incremental_view_is_completed_from_the_state() {
    let w = two_folders();
    let inbox = fp("INBOX");
    let mut input = w.input();
    let since = w.state[&inbox].highestmodseq.unwrap();
    let rf = input.remote.iter_mut().find(|r| r.path == inbox).unwrap();
    let mb = rf.mailbox.as_mut().unwrap();
    mb.highestmodseq = ModSeq::new(since.0.get() + 2);
    mb.messages = RemoteMessages::Changes {
        since,
        changed: vec![RemoteMessage {
            uid: uid(1),
            flags: flags(&["\\Seen"]),
            modseq: ModSeq::new(since.0.get() + 1),
            size: None,
            internaldate: None,
            message_id: None,
        }],
        vanished: vec![UidRange {
            first: uid(3),
            last: uid(3),
        }],
    };
    let p = plan(&input, &cfg());
    assert!(p.refused.is_empty());
    assert!(p
        .ops
        .iter()
        .any(|o| matches!(o, Op::SyncFlags { uid: u, .. } if *u == uid(1))));
    assert!(p
        .ops
        .iter()
        .any(|o| matches!(o, Op::DeleteLocal { uid: u, .. } if *u == uid(3))));
    assert!(!p
        .ops
        .iter()
        .any(|o| matches!(o, Op::Download { .. } | Op::Upload { .. })));

    // A view relative to another modseq cannot be trusted.
    if let RemoteMessages::Changes { since, .. } = &mut input
        .remote
        .iter_mut()
        .find(|r| r.path == inbox)
        .unwrap()
        .mailbox
        .as_mut()
        .unwrap()
        .messages
    {
        *since = ModSeq::new(1).unwrap();
    }
    let p = plan(&input, &cfg());
    assert_eq!(p.refused[0].reason, RefusalReason::NeedsCompleteView);
}

/// Folders new on either side are created on the other; a folder deleted on the server is
/// deleted locally once its synced messages are gone.
#[test]
fn folders_are_created_and_deleted_both_ways() {
    let mut w = two_folders();
    let mut rf = model::RFolder::new(555);
    rf.add(70, none());
    w.remote.insert(fp("Lists/rust"), rf);
    w.local.insert(fp("Notes"), Default::default());
    run(&mut w, &cfg());
    assert!(w.local.contains_key(&fp("Lists/rust")));
    assert!(w.remote.contains_key(&fp("Notes")));
    assert_settled(&w, &cfg());

    w.remote.remove(&fp("Archive"));
    let p = run(&mut w, &cfg());
    assert!(p.ops.contains(&Op::DeleteLocalFolder {
        folder: fp("Archive")
    }));
    assert!(!w.local.contains_key(&fp("Archive")));
    assert!(!w.state.contains_key(&fp("Archive")));
    assert_settled(&w, &cfg());
}

/// A local folder rename: one RENAME on the server, nothing moved message by
/// message, nothing transferred, nothing deleted; the state follows the new name.
#[test]
fn local_folder_rename_is_one_server_rename() {
    let mut w = two_folders();
    let files = w.local.remove(&fp("INBOX")).unwrap();
    w.local.insert(fp("INBOX"), Default::default());
    let archive = w.local.remove(&fp("Archive")).unwrap();
    w.local.insert(fp("Old"), archive);
    w.local.get_mut(&fp("INBOX")).unwrap().extend(files);
    let p = run(&mut w, &cfg());
    assert!(p.ops.contains(&Op::RenameRemoteFolder {
        from: fp("Archive"),
        to: fp("Old")
    }));
    assert_eq!(p.summary.remote_moves + p.summary.local_moves, 0);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    assert_eq!(p.summary.folders_deleted + p.summary.folders_created, 0);
    assert!(w.remote.contains_key(&fp("Old")));
    assert!(!w.remote.contains_key(&fp("Archive")));
    assert!(w.state.contains_key(&fp("Old")));
    assert_settled(&w, &cfg());
}

/// A renamed local folder that also gained a file is no clean rename: its messages move one
/// by one into the new server folder and the emptied old one is deleted; nothing is
/// transferred again but the new file.
#[test]
fn local_folder_rename_with_a_new_file_moves_message_by_message() {
    let mut w = two_folders();
    let mut archive = w.local.remove(&fp("Archive")).unwrap();
    archive.insert(
        LocalId::new("added"),
        LMsg {
            body: 77,
            flags: FlagSet::new(),
            partial: false,
        },
    );
    w.local.insert(fp("Old"), archive);
    let p = run(&mut w, &cfg());
    assert!(!p
        .ops
        .iter()
        .any(|o| matches!(o, Op::RenameRemoteFolder { .. })));
    assert!(p.summary.remote_moves >= 1);
    assert_eq!(p.summary.downloads, 0);
    assert_eq!(p.summary.uploads, 1);
    assert!(p.ops.contains(&Op::DeleteRemoteFolder {
        folder: fp("Archive")
    }));
    assert!(w.remote.contains_key(&fp("Old")));
    assert_settled(&w, &cfg());
}

/// Three synced messages in `Lists/rust`, renamed on the server to `Lists/go` by another
/// client; RENAME keeps UIDs and UIDVALIDITY (as Dovecot does).
fn server_renamed_lists() -> World {
    let mut w = World::synced(&[
        ("INBOX", vec![(1, none())]),
        (
            "Lists/rust",
            vec![
                (2, flags(&["\\Seen"])),
                (3, none()),
                (4, flags(&["\\Flagged", "work"])),
            ],
        ),
    ]);
    let rf = w.remote.remove(&fp("Lists/rust")).unwrap();
    w.remote.insert(fp("Lists/go"), rf);
    w
}

/// A server folder rename: one rename of the Maildir directory, nothing else for
/// either folder — no download, no move, no deletion, no new UIDVALIDITY; the state follows
/// the new name with its rows, and the next plan is empty.
#[test]
fn server_folder_rename_is_one_local_rename() {
    let mut w = server_renamed_lists();
    let files = w.local[&fp("Lists/rust")].clone();
    let rows = w.state[&fp("Lists/rust")].messages.clone();
    let p = run(&mut w, &cfg());
    assert_eq!(
        p.ops,
        vec![Op::RenameLocalFolder {
            from: fp("Lists/rust"),
            to: fp("Lists/go")
        }]
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(w.local.get(&fp("Lists/go")), Some(&files));
    assert!(!w.local.contains_key(&fp("Lists/rust")));
    assert_eq!(w.state[&fp("Lists/go")].messages, rows);
    assert!(!w.state.contains_key(&fp("Lists/rust")));
    assert_settled(&w, &cfg());
}

/// A server that gives the renamed folder a new UIDVALIDITY: still one local rename (the
/// state keeps the old UIDVALIDITY), then the next plan re-binds every row by content to its
/// new UID (V0003) without downloading, uploading or deleting anything.
#[test]
fn v0003_server_folder_rename_with_new_uidvalidity_rebinds_without_download() {
    let mut w = server_renamed_lists();
    let go = fp("Lists/go");
    let old = w.remote[&go].uidvalidity;
    {
        let rf = w.remote.get_mut(&go).unwrap();
        let msgs: Vec<_> = std::mem::take(&mut rf.msgs).into_values().collect();
        rf.uidvalidity = Some(900);
        rf.uidnext = 50;
        for m in msgs {
            rf.add(m.body, m.flags);
        }
    }
    let p = run(&mut w, &cfg());
    assert_eq!(
        p.ops,
        vec![Op::RenameLocalFolder {
            from: fp("Lists/rust"),
            to: go.clone()
        }]
    );
    assert_eq!(w.state[&go].uidvalidity.0.get(), old.unwrap());
    let again = run(&mut w, &cfg());
    assert_eq!(again.summary.binds, 3);
    assert_eq!(again.summary.downloads + again.summary.uploads, 0);
    assert_eq!(
        again.summary.local_deletions + again.summary.remote_deletions,
        0
    );
    assert_eq!(again.summary.local_moves + again.summary.remote_moves, 0);
    assert!(again.ops.iter().all(|o| match o {
        Op::Bind { update, .. } => update.is_noop(),
        Op::SetUidValidity { uidvalidity, .. } => uidvalidity.0.get() == 900,
        Op::SetFolderState { .. } => true,
        other => panic!("unexpected {other:?}"),
    }));
    assert_eq!(w.state[&go].uidvalidity.0.get(), 900);
    assert_settled(&w, &cfg());
}

/// The checker knows a folder rename is a whole-folder operation: with another operation on
/// either folder, or between folders it does not fit, the plan is refused.
#[test]
fn checker_refuses_a_rename_that_is_not_alone() {
    let w = server_renamed_lists();
    let input = w.input();
    let mut p = plan(&input, &cfg());
    p.ops.push(Op::CreateLocalFolder {
        folder: fp("Lists/go"),
    });
    let v = mailfold_plan::check::check_plan(&input, &cfg(), &p).unwrap_err();
    assert_eq!(v.rule, "folder rename with other operations on its folders");
    let mut p = plan(&input, &cfg());
    p.ops = vec![Op::RenameLocalFolder {
        from: fp("INBOX"),
        to: fp("Lists/go"),
    }];
    let v = mailfold_plan::check::check_plan(&input, &cfg(), &p).unwrap_err();
    assert_eq!(v.rule, "folder rename between folders it does not fit");
}

/// A server rename is no clean rename when a file of the old folder changed locally since the
/// last sync: its messages follow the server message by message (moves, no download), the
/// local flag change goes up, and the emptied old folder is deleted.
#[test]
fn server_folder_rename_with_a_local_change_moves_message_by_message() {
    let mut w = server_renamed_lists();
    let rust = fp("Lists/rust");
    let id = w.local[&rust].keys().next().cloned().unwrap();
    w.local
        .get_mut(&rust)
        .unwrap()
        .get_mut(&id)
        .unwrap()
        .flags
        .insert(Flag::Answered);
    let p = run(&mut w, &cfg());
    assert!(!p
        .ops
        .iter()
        .any(|o| matches!(o, Op::RenameLocalFolder { .. })));
    assert_eq!(p.summary.local_moves, 3);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    assert_eq!(p.summary.remote_flag_changes, 1);
    assert!(!w.local.contains_key(&rust));
    assert_eq!(w.local[&fp("Lists/go")].len(), 3);
    assert_settled(&w, &cfg());
}

/// A server rename whose new folder also holds a new message, or whose old name keeps a
/// child folder, is no clean rename either: moves, and a download of the new message only.
#[test]
fn server_folder_rename_with_a_new_message_or_a_child_falls_back_to_moves() {
    let mut w = server_renamed_lists();
    w.remote.get_mut(&fp("Lists/go")).unwrap().add(40, none());
    let p = run(&mut w, &cfg());
    assert!(!p
        .ops
        .iter()
        .any(|o| matches!(o, Op::RenameLocalFolder { .. })));
    assert_eq!((p.summary.local_moves, p.summary.downloads), (3, 1));
    assert_settled(&w, &cfg());

    let mut w = server_renamed_lists();
    let mut child = model::RFolder::new(777);
    child.add(41, none());
    w.remote.insert(fp("Lists/go/sub"), child);
    let p = run(&mut w, &cfg());
    assert!(!p
        .ops
        .iter()
        .any(|o| matches!(o, Op::RenameLocalFolder { .. })));
    assert_eq!(p.summary.local_moves, 3);
    assert_settled(&w, &cfg());
}

/// Kill after every prefix of a plan with changes on both sides, then plan again: the result
/// equals the uninterrupted run, and a further plan is empty.
#[test]
fn kill_after_every_step_converges_to_the_uninterrupted_result() {
    let mut start = two_folders();
    let (inbox, archive) = (fp("INBOX"), fp("Archive"));
    start
        .remote
        .get_mut(&inbox)
        .unwrap()
        .add(10, flags(&["\\Seen"]));
    start
        .remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .get_mut(&2)
        .unwrap()
        .flags = flags(&["\\Seen", "$Junk"]);
    let m = start
        .remote
        .get_mut(&inbox)
        .unwrap()
        .msgs
        .remove(&3)
        .unwrap();
    start.remote.get_mut(&archive).unwrap().add(m.body, m.flags);
    let l = start.local.get_mut(&inbox).unwrap();
    l.get_mut(&LocalId::new("b1")).unwrap().flags = flags(&["\\Answered"]);
    l.insert(
        LocalId::new("new"),
        LMsg {
            body: 11,
            flags: flags(&["\\Seen"]),
            partial: false,
        },
    );
    let b4 = start
        .local
        .get_mut(&archive)
        .unwrap()
        .remove(&LocalId::new("b4"))
        .unwrap();
    start
        .local
        .get_mut(&inbox)
        .unwrap()
        .insert(LocalId::new("b4"), b4);
    start.local.insert(fp("Projects"), Default::default());

    let mut clean = start.clone();
    run(&mut clean, &cfg());
    assert_settled(&clean, &cfg());

    let p = plan(&start.input(), &cfg());
    let total: usize = p.ops.iter().map(|o| start.steps(o)).sum();
    assert!(total > 20, "a plan with work on both sides: {total} steps");
    for cut in 0..=total {
        let mut w = start.clone();
        w.apply(&p, Some(cut));
        run(&mut w, &cfg());
        assert_eq!(w.snapshot(), clean.snapshot(), "after a kill at step {cut}");
        assert_settled(&w, &cfg());
        let held: usize = w.remote.values().map(|f| f.msgs.len()).sum();
        assert_eq!(held, 6, "after a kill at step {cut}: no loss, no duplicate");
    }
}

/// The pending key type names what waits; a plan never marks the same thing twice.
#[test]
fn pending_marks_are_not_repeated() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    w.remote.get_mut(&inbox).unwrap().read_only = true;
    w.local.get_mut(&inbox).unwrap().remove(&LocalId::new("b1"));
    run(&mut w, &cfg());
    assert_eq!(w.pending_keys(&inbox), vec![PendingKey::Expunge(uid(1))]);
    assert_settled(&w, &cfg());
}

/// A mail reader's "save to folder": a new file under a new name in another folder, with the
/// content of a synced message. The server copies its own message (UID COPY) instead of
/// receiving the bytes again, the file is bound to the copy with its own flags, and the next
/// plan is empty.
#[test]
fn a_readers_copy_is_a_server_copy() {
    let mut w = two_folders();
    let copy = LocalId::new("saved-copy");
    w.local.get_mut(&fp("Archive")).unwrap().insert(
        copy.clone(),
        LMsg {
            body: 2,
            flags: flags(&["\\Seen", "\\Flagged"]),
            partial: false,
        },
    );
    let p = run(&mut w, &cfg());
    let copies: Vec<&Op> = p
        .ops
        .iter()
        .filter(|o| matches!(o, Op::CopyRemote { .. }))
        .collect();
    assert_eq!(copies.len(), 1, "{:#?}", p.ops);
    assert!(
        matches!(copies[0], Op::CopyRemote { from, to, local, flags: f, .. }
            if *from == fp("INBOX") && *to == fp("Archive") && *local == copy
                && *f == flags(&["\\Seen", "\\Flagged"])),
        "{:#?}",
        copies[0]
    );
    assert_eq!(p.summary.uploads, 0);
    assert_eq!(p.summary.remote_copies, 1);
    assert_eq!(w.remote_count(2), 2);
    let archive = &w.remote[&fp("Archive")];
    assert!(archive
        .msgs
        .values()
        .any(|m| m.body == 2 && m.flags == flags(&["\\Seen", "\\Flagged"])));
    assert_settled(&w, &cfg());
}

/// The original gone in the same run (the reader saved and expunged): the existing local-move
/// pass makes it one UID MOVE, no copy and no upload.
#[test]
fn a_readers_save_and_delete_is_a_server_move() {
    let mut w = two_folders();
    let inbox = fp("INBOX");
    let original = w.local[&inbox]
        .iter()
        .find(|(_, m)| m.body == 2)
        .map(|(id, _)| id.clone())
        .unwrap();
    let m = w.local.get_mut(&inbox).unwrap().remove(&original).unwrap();
    w.local
        .get_mut(&fp("Archive"))
        .unwrap()
        .insert(LocalId::new("saved-elsewhere"), m);
    let p = run(&mut w, &cfg());
    assert_eq!(p.summary.remote_moves, 1, "{:#?}", p.ops);
    assert_eq!(
        p.summary.remote_copies + p.summary.uploads,
        0,
        "{:#?}",
        p.ops
    );
    assert_eq!(w.remote_count(2), 1);
    assert_settled(&w, &cfg());
}

/// A source message expunged on the server in the meantime is not copied: the file is
/// uploaded as before. One the plan itself removes (the original deleted locally) is a move.
#[test]
fn a_copy_whose_source_is_gone_is_uploaded() {
    for server_side in [true, false] {
        let mut w = two_folders();
        let inbox = fp("INBOX");
        w.local.get_mut(&fp("Archive")).unwrap().insert(
            LocalId::new("saved-copy"),
            LMsg {
                body: 2,
                flags: none(),
                partial: false,
            },
        );
        let u = *w.remote[&inbox]
            .msgs
            .iter()
            .find(|(_, m)| m.body == 2)
            .unwrap()
            .0;
        if server_side {
            w.remote.get_mut(&inbox).unwrap().msgs.remove(&u);
        } else {
            // The original deleted locally: the local-move pass takes the pair (a UID MOVE),
            // so nothing copies a message the plan removes.
            let id = w.local[&inbox]
                .iter()
                .find(|(_, m)| m.body == 2)
                .map(|(id, _)| id.clone())
                .unwrap();
            w.local.get_mut(&inbox).unwrap().remove(&id);
        }
        let input = w.input();
        let p = plan(&input, &cfg());
        mailfold_plan::check::check_plan(&input, &cfg(), &p).expect("plan invariants");
        assert_eq!(p.summary.remote_copies, 0, "{:#?}", p.ops);
        w.apply(&p, None);
        let p2 = plan(&w.input(), &cfg());
        w.apply(&p2, None);
        assert_settled(&w, &cfg());
        assert_eq!(w.local_count(2), 1);
        assert_eq!(w.remote_count(2), 1);
    }
}

/// Pull only (V0040): no copy either; the file waits like any local change.
#[test]
fn v0040_no_copy_in_a_pull_only_account() {
    let mut w = two_folders();
    w.local.get_mut(&fp("Archive")).unwrap().insert(
        LocalId::new("saved-copy"),
        LMsg {
            body: 1,
            flags: none(),
            partial: false,
        },
    );
    let config = PlanConfig {
        pull: true,
        ..cfg()
    };
    let input = w.input();
    let p = plan(&input, &config);
    mailfold_plan::check::check_plan(&input, &config, &p).expect("plan invariants");
    assert!(p.ops.iter().all(|o| !o.writes_remote()), "{:#?}", p.ops);
}

/// A copy from a source folder the view leaves out (skipped as unchanged: no server view, no
/// rows) is trusted as the state's hash index describes it; with COPYUID missing the journal
/// entry stays and the next plan binds the copy by its content, the file's flags winning.
#[test]
fn a_copy_from_a_skipped_folder_and_without_copyuid() {
    for no_uidplus in [false, true] {
        let mut w = two_folders();
        w.no_uidplus = no_uidplus;
        w.local.get_mut(&fp("Archive")).unwrap().insert(
            LocalId::new("saved-copy"),
            LMsg {
                body: 3,
                flags: flags(&["\\Answered"]),
                partial: false,
            },
        );
        let mut input = w.input();
        // INBOX skipped as unchanged: present, unexamined, no rows, no files.
        for r in &mut input.remote {
            if r.path == fp("INBOX") {
                r.mailbox = None;
            }
        }
        for s in &mut input.state {
            if s.path == fp("INBOX") {
                s.messages.clear();
            }
        }
        for l in &mut input.local {
            if l.path == fp("INBOX") {
                l.messages.clear();
            }
        }
        let p = plan(&input, &cfg());
        mailfold_plan::check::check_plan(&input, &cfg(), &p).expect("plan invariants");
        assert_eq!(p.summary.remote_copies, 1, "{:#?}", p.ops);
        w.apply(&p, None);
        let p2 = plan(&w.input(), &cfg());
        if no_uidplus {
            assert!(
                p2.ops.iter().all(|o| matches!(
                    o,
                    Op::Bind { .. } | Op::DropIntent { .. } | Op::SetFolderState { .. }
                )),
                "{:#?}",
                p2.ops
            );
        }
        w.apply(&p2, None);
        assert_settled(&w, &cfg());
        assert_eq!(w.remote_count(3), 2);
        assert!(w.remote[&fp("Archive")]
            .msgs
            .values()
            .any(|m| m.body == 3 && m.flags == flags(&["\\Answered"])));
    }
}
