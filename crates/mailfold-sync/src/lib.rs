//! mailfold-sync: the sync planner and applier.
#![forbid(unsafe_code)]

pub mod plan;
