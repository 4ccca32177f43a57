//! The planner at account scale (docs/bench.md gap 1): 20 folders × 1,000 messages with the
//! re-sync shapes of `bench/compare`. These assert the plan, not the time; they exist so that a
//! return of cross-folder matching that walks every message per unknown message shows up as a
//! test run that takes minutes instead of a second (`examples/plan_scale.rs` measures it).

#[path = "scale_account.rs"]
mod scale_account;

use mailfold_plan::check::check_plan;
use mailfold_plan::{plan, Op, PlanConfig, SyncInput};

const FOLDERS: usize = 20;
const PER_FOLDER: usize = 1_000;

fn planned(input: &SyncInput) -> mailfold_plan::Plan {
    let config = PlanConfig::default();
    let p = plan(input, &config);
    if let Err(v) = check_plan(input, &config, &p) {
        panic!("{v}");
    }
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    p
}

#[test]
fn synced_account_plans_nothing() {
    let input = scale_account::synced(FOLDERS, PER_FOLDER);
    assert!(planned(&input).is_empty());
}

#[test]
fn hundred_new_server_messages_are_downloaded_and_nothing_else() {
    let mut input = scale_account::synced(FOLDERS, PER_FOLDER);
    let added = scale_account::new_on_server(&mut input, 100);
    let p = planned(&input);
    assert_eq!(p.summary.downloads, 100);
    let mut ids: Vec<String> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::Download { message_id, .. } => message_id.clone(),
            Op::SetFolderState { .. } => None,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut want: Vec<String> = added
        .iter()
        .map(|n| format!("<m{n}@example.org>"))
        .collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn new_files_on_both_sides_are_transferred_once() {
    let mut input = scale_account::synced(FOLDERS, PER_FOLDER);
    scale_account::new_on_server(&mut input, 100);
    scale_account::new_locally(&mut input, 100);
    let p = planned(&input);
    assert_eq!((p.summary.downloads, p.summary.uploads), (100, 100));
    assert_eq!(p.summary.local_moves + p.summary.remote_moves, 0);
}

#[test]
fn hundred_files_moved_locally_become_server_moves() {
    let mut input = scale_account::synced(FOLDERS, PER_FOLDER);
    scale_account::moved_locally(&mut input, 100);
    let p = planned(&input);
    assert_eq!(p.summary.remote_moves, 100);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    let from = scale_account::folder_name(1);
    let to = scale_account::folder_name(2);
    assert!(p.ops.iter().all(|o| match o {
        Op::MoveRemote { from: f, to: t, .. } => *f == from && *t == to,
        _ => true,
    }));
}

#[test]
fn v0003_uidvalidity_reset_at_scale_rebinds_without_download() {
    let mut input = scale_account::synced(FOLDERS, PER_FOLDER);
    scale_account::uidvalidity_reset(&mut input);
    let p = planned(&input);
    assert_eq!(p.summary.binds, PER_FOLDER);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
    assert_eq!(p.summary.local_deletions + p.summary.remote_deletions, 0);
}

#[test]
fn lost_state_of_a_folder_rebinds_without_transfer() {
    let mut input = scale_account::synced(FOLDERS, PER_FOLDER);
    scale_account::state_lost(&mut input);
    let p = planned(&input);
    assert_eq!(p.summary.binds, PER_FOLDER);
    assert_eq!(p.summary.downloads + p.summary.uploads, 0);
}
