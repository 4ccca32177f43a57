//! The planner on arbitrary three-way states: it never panics, and every plan keeps the
//! invariants of `mailfold_plan::check` (no deletion without proof of sync, no pairing twice,
//! no write to a read-only folder, the safety valve, determinism).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = mailfold_plan::check::fuzz_entry(data) {
        panic!("{v}");
    }
});
