//! mailfold-sync: the sync planner and applier.
