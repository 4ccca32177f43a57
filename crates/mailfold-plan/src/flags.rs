//! The per-flag three-way merge.
//!
//! For each flag, with `l`, `s`, `r` telling whether the local file, the state (last agreed) and
//! the server hold it:
//!
//! * `l != s`: the local side changed it, so the merged value is `l`. If the server changed it
//!   too (`r != s`), it changed it the same way (`r == l`, there are only two values), so this is
//!   not a conflict.
//! * `l == s`: the local side did not change it, so the merged value is `r` (the server's change,
//!   or no change).
//!
//! With no state row (a fresh database, or a pair found by content), the base is taken as
//! `L ∩ R`, which makes the merge the union: a flag set on either side is kept.
//!
//! The merged set goes to the local side whole. The server receives only the flags its
//! PERMANENTFLAGS allows (seed V0005: we never invent keywords); flags it does not allow keep
//! the server's value, and the state records the server's resulting set, so a local-only keyword
//! stays a local difference that is retried when the server starts allowing it, and is never
//! taken for a server-side removal. On a read-only folder (V0039) the server keeps its set.
//!
//! The merge is idempotent with the same base: `merge(merge(L,S,R), S, R') == merge(L,S,R)` for
//! the `R'` it produces, which is why a crash between the local and the server half of an update
//! is harmless.

use super::ops::{FlagStore, FlagUpdate};
use super::types::{FlagSet, ModSeq, PermanentFlags};

/// The merged flag set of `local`, `base` and `remote`.
pub fn merge(local: &FlagSet, base: &FlagSet, remote: &FlagSet) -> FlagSet {
    let all = local.union(base).union(remote);
    all.iter()
        .filter(|f| {
            let l = local.contains(f);
            if l != base.contains(f) {
                l
            } else {
                remote.contains(f)
            }
        })
        .cloned()
        .collect()
}

/// The result of merging one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// What to do.
    pub update: FlagUpdate,
    /// Flags the local side wants on the server that the server does not allow (V0005).
    pub not_permitted: FlagSet,
    /// Whether a server change was wanted but the folder is read-only (V0039).
    pub blocked_by_read_only: bool,
}

/// Merges and turns the result into a [`FlagUpdate`].
pub fn plan_update(
    local: &FlagSet,
    base: &FlagSet,
    remote: &FlagSet,
    perm: &PermanentFlags,
    read_only: bool,
    unchanged_since: Option<ModSeq>,
) -> Merged {
    let merged = merge(local, base, remote);
    // The server's target: merged on allowed flags, unchanged elsewhere.
    let wanted: FlagSet = merged
        .iter()
        .filter(|f| perm.allows(f))
        .chain(remote.iter().filter(|f| !perm.allows(f)))
        .cloned()
        .collect();
    let not_permitted: FlagSet = merged
        .difference(remote)
        .iter()
        .filter(|f| !perm.allows(f))
        .cloned()
        .collect();
    let add = wanted.difference(remote);
    let remove = remote.difference(&wanted);
    let server_change = !(add.is_empty() && remove.is_empty());
    let (remote_part, record, blocked) = if !server_change {
        (None, remote.clone(), false)
    } else if read_only {
        (None, remote.clone(), true)
    } else {
        (
            Some(FlagStore {
                add,
                remove,
                unchanged_since,
            }),
            wanted,
            false,
        )
    };
    let local_part = if &merged != local { Some(merged) } else { None };
    Merged {
        update: FlagUpdate {
            local: local_part,
            remote: remote_part,
            record,
        },
        not_permitted,
        blocked_by_read_only: blocked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Flag;

    fn fs(names: &[&str]) -> FlagSet {
        FlagSet::from_imap(names.iter().copied())
    }

    #[test]
    fn one_side_change_wins() {
        assert_eq!(merge(&fs(&["\\Seen"]), &fs(&[]), &fs(&[])), fs(&["\\Seen"]));
        assert_eq!(
            merge(&fs(&[]), &fs(&[]), &fs(&["\\Flagged"])),
            fs(&["\\Flagged"])
        );
        assert_eq!(merge(&fs(&[]), &fs(&["\\Seen"]), &fs(&["\\Seen"])), fs(&[]));
    }

    #[test]
    fn both_sides_same_change_is_no_conflict() {
        let m = merge(&fs(&["\\Seen"]), &fs(&[]), &fs(&["\\Seen"]));
        assert_eq!(m, fs(&["\\Seen"]));
    }

    #[test]
    fn independent_changes_combine() {
        let m = merge(
            &fs(&["\\Seen", "$Work"]),
            &fs(&["$Work", "\\Answered"]),
            &fs(&["\\Answered", "\\Flagged", "$Work"]),
        );
        // Seen added locally, Answered removed locally, Flagged added remotely.
        assert_eq!(m, fs(&["\\Seen", "\\Flagged", "$Work"]));
    }

    #[test]
    fn intersection_base_is_union() {
        let l = fs(&["\\Seen", "a"]);
        let r = fs(&["\\Flagged", "a"]);
        assert_eq!(merge(&l, &l.intersection(&r), &r), l.union(&r));
    }

    #[test]
    fn v0005_unpermitted_keyword_stays_local() {
        let perm = PermanentFlags {
            flags: fs(&["\\Seen"]),
            new_keywords: false,
        };
        let m = plan_update(
            &fs(&["\\Seen", "$Label"]),
            &fs(&[]),
            &fs(&[]),
            &perm,
            false,
            None,
        );
        let store = m.update.remote.clone().expect("seen is stored");
        assert_eq!(store.add, fs(&["\\Seen"]));
        assert_eq!(m.update.record, fs(&["\\Seen"]));
        assert_eq!(m.update.local, None);
        assert!(m.not_permitted.contains(&Flag::Keyword("$Label".into())));
    }
}
