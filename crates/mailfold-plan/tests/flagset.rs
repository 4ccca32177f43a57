//! The compact [`FlagSet`] (a bit mask for the system flags, a sorted list for the rest)
//! behaves exactly as an ordered set of flags: membership, insertion, removal, the set
//! operations, iteration order, equality and order.

use std::collections::BTreeSet;

use mailfold_plan::{Flag, FlagSet};
use proptest::prelude::*;

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::Seen),
        Just(Flag::Answered),
        Just(Flag::Flagged),
        Just(Flag::Deleted),
        Just(Flag::Draft),
        "[a-c]{1,2}".prop_map(Flag::Keyword),
        "[xy]".prop_map(Flag::Extension),
    ]
}

fn both(flags: &[Flag]) -> (FlagSet, BTreeSet<Flag>) {
    (
        flags.iter().cloned().collect(),
        flags.iter().cloned().collect(),
    )
}

fn same(a: &FlagSet, m: &BTreeSet<Flag>) -> bool {
    a.iter().eq(m.iter()) && a.len() == m.len() && a.is_empty() == m.is_empty()
}

proptest! {
    #[test]
    fn a_flag_set_is_an_ordered_set_of_flags(
        xs in proptest::collection::vec(flag(), 0..8),
        ys in proptest::collection::vec(flag(), 0..8),
        probe in flag(),
    ) {
        let (a, ma) = both(&xs);
        let (b, mb) = both(&ys);
        prop_assert!(same(&a, &ma));
        prop_assert_eq!(a.contains(&probe), ma.contains(&probe));
        let u = a.union(&b);
        prop_assert!(same(&u, &ma.union(&mb).cloned().collect()));
        prop_assert!(same(&a.intersection(&b), &ma.intersection(&mb).cloned().collect()));
        prop_assert!(same(&a.difference(&b), &ma.difference(&mb).cloned().collect()));
        prop_assert_eq!(a == b, ma == mb);
        prop_assert_eq!(a.cmp(&b), ma.cmp(&mb));
        let mut c = a.clone();
        let mut mc = ma.clone();
        prop_assert_eq!(c.remove(&probe), mc.remove(&probe));
        prop_assert!(same(&c, &mc));
        c.insert(probe.clone());
        mc.insert(probe);
        prop_assert!(same(&c, &mc));
    }
}
