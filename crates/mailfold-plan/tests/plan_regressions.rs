//! Regressions found by fuzzing the planner (`fuzz/fuzz_targets/plan.rs`). Each input is kept in
//! the fuzz corpus and decoded here with `check::input_from_bytes`, so the test replays exactly
//! the three-way state the fuzzer built.

#[path = "plan_model.rs"]
mod model;
#[path = "support/scenario.rs"]
mod scenario;

use mailfold_plan::check::{check_plan, fuzz_entry, input_from_bytes};
use mailfold_plan::{plan, FolderPath, Op, RefusalReason, Uid, Warning};

/// Decodes `bytes` and runs the fuzz entry; on a broken invariant shows state and plan.
fn replay(bytes: &[u8]) {
    if let Err(v) = fuzz_entry(bytes) {
        let (input, config) = input_from_bytes(bytes);
        let p = plan(&input, &config);
        panic!("{v}\n\ninput: {input:#?}\nconfig: {config:#?}\nplan: {p:#?}");
    }
}

/// The first long fuzz run: the local `Sent` Maildir is gone, the state proves UIDs 2 and 8
/// synced, and the server view lists UID 2 twice (with two different sizes). A UID names one
/// message (RFC 3501 2.3.1.1), so the server holds two messages; the plan expunges both and
/// then deletes the emptied folder. The checker counted view entries (three) instead of
/// messages and reported "server folder deleted with messages in it".
const SENT_DUP_UID: &[u8] = include_bytes!("../fuzz/corpus/plan/regression_sent_deleted");

#[test]
fn server_folder_with_a_repeated_uid_is_emptied_then_deleted() {
    replay(SENT_DUP_UID);
    let (input, config) = input_from_bytes(SENT_DUP_UID);
    let p = plan(&input, &config);
    let sent = FolderPath::parse("Sent");
    let expunged: Vec<u32> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::ExpungeRemote { folder, uid, .. } if *folder == sent => Some(uid.get()),
            _ => None,
        })
        .collect();
    assert_eq!(expunged, vec![8, 2]);
    let del = p
        .ops
        .iter()
        .position(|o| matches!(o, Op::DeleteRemoteFolder { folder } if *folder == sent))
        .expect("the emptied folder is deleted");
    let last_expunge = p
        .ops
        .iter()
        .rposition(|o| matches!(o, Op::ExpungeRemote { .. }))
        .expect("expunges planned");
    assert!(last_expunge < del, "expunges come before the DELETE");
    assert!(p.warnings.iter().any(|w| matches!(
        w,
        Warning::DuplicateInput { folder, what } if *folder == sent && what == "server UID"
    )));
}

/// The checker's fix must not blind it: the same plan minus the expunge of a distinct UID
/// (so the DELETE would destroy UID 8) is still a violation.
#[test]
fn checker_still_refuses_a_delete_that_leaves_a_distinct_uid_behind() {
    let (input, config) = input_from_bytes(SENT_DUP_UID);
    let mut p = plan(&input, &config);
    let eight = Uid::new(8);
    p.ops
        .retain(|o| !matches!(o, Op::ExpungeRemote { uid, .. } if Some(*uid) == eight));
    let v = check_plan(&input, &config, &p).expect_err("UID 8 would be lost");
    assert_eq!(v.rule, "server folder deleted with messages in it");
}

/// The first 10-minute campaign: the server `Sent` is gone, the local `Sent` holds one file
/// whose state row lost its UID (V0003), and the server holds that message in `Archive/2020`.
/// The planner moved the file to `Archive/2020` and so counted `Sent` as emptied, then the
/// safety valve refused `Archive/2020`, which dropped the move but not `Sent`'s deletion: the
/// local folder would have been deleted with the only local copy in it. Now the refusal
/// spreads to `Sent`, and nothing touches either folder.
const LOCAL_SENT_MOVE_REFUSED: &[u8] =
    include_bytes!("../fuzz/corpus/plan/regression_local_sent_deleted");

#[test]
fn folder_sharing_a_move_with_a_refused_folder_is_refused_too() {
    replay(LOCAL_SENT_MOVE_REFUSED);
    let (input, config) = input_from_bytes(LOCAL_SENT_MOVE_REFUSED);
    let p = plan(&input, &config);
    let sent = FolderPath::parse("Sent");
    let archive = FolderPath::parse("Archive/2020");
    assert!(p.refused.iter().any(|r| r.folder.as_ref() == Some(&archive)
        && matches!(r.reason, RefusalReason::SafetyValve { .. })));
    assert!(p.refused.iter().any(|r| r.folder.as_ref() == Some(&sent)
        && r.reason
            == RefusalReason::LinkedToRefused {
                folder: archive.clone()
            }));
    assert!(
        p.ops
            .iter()
            .all(|o| o.folders().iter().all(|f| **f != sent && **f != archive)),
        "no operation touches either folder: {:?}",
        p.ops
    );
}

/// The scenario "server rename Lists/rust → Lists/go" of the property tests, shrunk by
/// proptest: Lists/rust was read-only on the server before the rename, and a `\Seen` set
/// locally on one of its messages stayed local (pending, V0039) after the rename, as it must.
/// The scenario now carries the read-only mark over to the new name, so the property no
/// longer expects that folder to converge.
#[test]
fn server_folder_rename_keeps_a_local_seen() {
    let data = [
        84, 103, 0, 92, 0, 0, 0, 84, 0, 199, 0, 142, 0, 165, 99, 57, 16, 3, 100, 1, 81, 109, 0, 0,
        0, 62, 0, 89, 0, 156,
    ];
    if let Err(e) = scenario::converges(&data) {
        panic!("{e}");
    }
    if let Err(e) = scenario::kill_at_every_cut(&data) {
        panic!("{e}");
    }
}

/// Found by the same scenario with more cases: the server renamed Lists/rust to Lists/go and
/// removed `\Seen` from a message there, while the user renamed that message's file in place
/// (`b4` → `r2`). Pass 3 (both sides moved) did not look for the file in the row's own folder,
/// because that folder's server side was gone; pass 6b then paired file and message with the
/// intersection of their flags as the base, so the local `\Seen` counted as a local addition
/// and went back to the server. A run cut after the move found the file bound and ended without
/// `\Seen`: two end states for one input. Now pass 3 finds the file and merges against the
/// row: the server's removal wins on both sides.
#[test]
fn server_rename_with_a_file_renamed_in_it_merges_against_the_row() {
    let data = [
        206, 0, 0, 223, 0, 223, 5, 13, 45, 181, 1, 123, 97, 0, 112, 0, 213, 22, 126, 24, 9, 177,
        147, 190, 0, 203, 15, 28, 0, 111, 3, 3, 0, 1, 0, 32,
    ];
    let sc = scenario::scenario(&data);
    let p = plan(&sc.world.input(), &scenario::no_valve());
    let go = FolderPath::parse("Lists/go");
    let moved = p
        .ops
        .iter()
        .find_map(|o| match o {
            Op::MoveLocal { to, update, .. } if *to == go => Some(update),
            _ => None,
        })
        .expect("the renamed file follows the server's rename");
    assert!(moved.remote.is_none(), "nothing goes back up: {moved:?}");
    assert!(!moved.record.contains(&mailfold_plan::Flag::Seen));
    if let Err(e) = scenario::converges(&data) {
        panic!("{e}");
    }
    if let Err(e) = scenario::kill_at_every_cut(&data) {
        panic!("{e}");
    }
}

/// A fuzz seed for a server-side folder rename (kept in the corpus so the fuzzer mutates
/// around a clean rename): `Archive` synced with two messages, then renamed on the server to
/// `Renamed` with a new UIDVALIDITY (the decoder records no UIDNEXT in the state, so only
/// content can prove the rename). The plan is that one Maildir rename.
const SERVER_RENAME: &[u8] = include_bytes!("../fuzz/corpus/plan/server_rename");

#[test]
fn fuzz_seed_server_rename_is_one_local_rename() {
    replay(SERVER_RENAME);
    let (input, config) = input_from_bytes(SERVER_RENAME);
    let p = plan(&input, &config);
    assert_eq!(
        p.ops,
        vec![Op::RenameLocalFolder {
            from: FolderPath::parse("Archive"),
            to: FolderPath::parse("Renamed"),
        }]
    );
}

/// Found by the rename scenario: the server renamed Lists/rust after another client had
/// touched it without a net change (HIGHESTMODSEQ moved on). The Maildir rename carried the
/// old HIGHESTMODSEQ over, so the plan after it still had a folder state to record. A rename
/// with the UIDs kept now also needs UIDNEXT and HIGHESTMODSEQ unchanged, as pass 0 does;
/// otherwise the messages follow one by one and the plan records the new values.
#[test]
fn server_rename_after_a_touch_without_net_change_settles_in_one_plan() {
    let data = [
        45, 0, 0, 0, 87, 0, 0, 0, 223, 0, 0, 0, 4, 84, 0, 0, 0, 0, 11, 0, 0, 60, 20, 145, 0, 37, 0,
        10, 0, 0, 77, 229, 0, 2, 0, 0, 5, 28, 0, 33, 54, 9, 0, 0, 26, 0, 53, 1, 144,
    ];
    if let Err(e) = scenario::converges(&data) {
        panic!("{e}");
    }
    if let Err(e) = scenario::kill_at_every_cut(&data) {
        panic!("{e}");
    }
}

/// Found by the long fuzz campaign: `Archive` is gone from the server and `Renamed` is new,
/// but `Archive`'s state repeats UID 6 (two rows, one file) and `Renamed`'s listing repeats
/// UID 6 too (two different messages). Taking the first of each, the two folders looked
/// like a clean server-side rename, and the plan carried both rows over with the Maildir;
/// the checker, counting what the input holds, saw two rows for one file. An input that
/// repeats a UID or a file is not one a complete run leaves: no folder rename is inferred
/// from it, and each side is planned message by message instead.
const RENAME_WITH_DUPLICATES: &[u8] =
    include_bytes!("../fuzz/corpus/plan/regression_rename_with_duplicates");

#[test]
fn no_folder_rename_is_inferred_from_repeated_uids() {
    replay(RENAME_WITH_DUPLICATES);
    let (input, config) = input_from_bytes(RENAME_WITH_DUPLICATES);
    let p = plan(&input, &config);
    assert!(
        !p.ops.iter().any(|o| matches!(
            o,
            Op::RenameLocalFolder { .. } | Op::RenameRemoteFolder { .. }
        )),
        "{:#?}",
        p.ops
    );
    for what in ["state row", "server UID"] {
        assert!(
            p.warnings
                .iter()
                .any(|w| matches!(w, Warning::DuplicateInput { what: w, .. } if w == what)),
            "{what}: {:#?}",
            p.warnings
        );
    }
}
