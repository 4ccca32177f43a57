//! Times [`mailfold_plan::plan`] on the synthetic account of `tests/scale_account.rs` for the
//! re-sync shapes where cross-folder matching could go quadratic (docs/bench.md, gap 1).
//!
//! `cargo run --release -p mailfold-plan --example plan_scale [folders] [per_folder]`
//! (default 50 × 2,000 = 100,000 messages). Prints the best of three runs per shape.

#[path = "../tests/scale_account.rs"]
mod scale_account;

use std::time::{Duration, Instant};

use mailfold_plan::{plan, PlanConfig, SyncInput};

fn best_of_three(input: &SyncInput) -> (Duration, usize) {
    let config = PlanConfig::default();
    let mut best = Duration::MAX;
    let mut ops = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let p = plan(input, &config);
        best = best.min(t.elapsed());
        ops = p.ops.len();
    }
    (best, ops)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let folders: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let per: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let base = scale_account::synced(folders, per);
    type Shape = (&'static str, fn(&mut SyncInput));
    let shapes: [Shape; 7] = [
        ("no change", |_| {}),
        ("100 new on the server", |i| {
            scale_account::new_on_server(i, 100);
        }),
        ("100 new on the server + 100 new local files", |i| {
            scale_account::new_on_server(i, 100);
            scale_account::new_locally(i, 100);
        }),
        ("1,000 new local files", |i| {
            scale_account::new_locally(i, 1_000)
        }),
        ("100 files moved locally", |i| {
            scale_account::moved_locally(i, 100)
        }),
        (
            "UIDVALIDITY reset of one folder",
            scale_account::uidvalidity_reset,
        ),
        ("state of one folder lost", scale_account::state_lost),
    ];
    println!("{folders} folders x {per} messages");
    for (name, change) in shapes {
        let mut input = base.clone();
        change(&mut input);
        let (t, ops) = best_of_three(&input);
        println!("{name:48} {:>10.1} ms  {ops} ops", t.as_secs_f64() * 1e3);
    }
}
