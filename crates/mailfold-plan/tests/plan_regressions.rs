//! Regressions found by fuzzing the planner (`fuzz/fuzz_targets/plan.rs`). Each input is kept in
//! the fuzz corpus and decoded here with `check::input_from_bytes`, so the test replays exactly
//! the three-way state the fuzzer built.

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
