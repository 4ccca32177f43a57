//! Partial views plan what complete views plan. The sync engine reads a folder that changed
//! on the server only as a delta: the CONDSTORE/QRESYNC changes, the state rows they name and
//! those rows' files, with the rest left out as in sync ([`StateFolder::omitted`]). For any
//! synced account and any server-side changes (flag changes, expunges, new messages, moves
//! between folders, mass expunges that trip the safety valve), the plan of the partial input
//! must be exactly the plan of the complete one.

#[path = "plan_model.rs"]
mod model;

use std::collections::{BTreeMap, BTreeSet};

use mailfold_plan::{
    plan, Flag, FlagSet, LocalFolder, ModSeq, PlanConfig, RemoteMessages, StateFolder, SyncInput,
    Uid, UidRange,
};
use model::{BodyId, World};
use proptest::prelude::*;

/// How the server's side of a partial view is given.
#[derive(Debug, Clone, Copy)]
enum Delta {
    /// A CONDSTORE/QRESYNC delta: what changed since the state's HIGHESTMODSEQ, and VANISHED.
    Changes,
    /// A server without CONDSTORE: its complete listing merged against the state, given as a
    /// complete view of only the messages whose flags differ and the new ones.
    Merged,
}

/// The partial form of a complete input whose local side equals its state (no local change).
fn partial_of(input: &SyncInput, delta: Delta) -> SyncInput {
    let mut out = input.clone();
    for rf in &mut out.remote {
        let Some(mb) = rf.mailbox.as_mut() else {
            continue;
        };
        let Some(sf) = input.state.iter().find(|s| s.path == rf.path) else {
            continue;
        };
        let RemoteMessages::Complete(msgs) = &mb.messages else {
            continue;
        };
        let since = sf.highestmodseq.expect("a synced folder has HIGHESTMODSEQ");
        let rows: BTreeMap<Uid, &mailfold_plan::StateMessage> = sf
            .messages
            .iter()
            .filter_map(|m| Some((m.uid?, m)))
            .collect();
        let now: BTreeSet<Uid> = msgs.iter().map(|m| m.uid).collect();
        let changed: Vec<_> = msgs
            .iter()
            .filter(|m| match delta {
                // What CONDSTORE reports: every message with a MODSEQ above the state's.
                Delta::Changes => m.modseq.is_some_and(|s| s > since),
                Delta::Merged => rows.get(&m.uid).is_none_or(|r| r.flags != m.flags),
            })
            .cloned()
            .collect();
        let vanished: Vec<UidRange> = rows
            .keys()
            .filter(|u| !now.contains(u))
            .map(|&u| UidRange { first: u, last: u })
            .collect();
        let named: BTreeSet<Uid> = changed
            .iter()
            .map(|m| m.uid)
            .chain(vanished.iter().map(|r| r.first))
            .collect();
        let kept: Vec<_> = sf
            .messages
            .iter()
            .filter(|m| m.uid.is_some_and(|u| named.contains(&u)))
            .cloned()
            .collect();
        let kept_ids: BTreeSet<_> = kept.iter().map(|m| m.local.clone()).collect();
        let omitted = sf.messages.len() - kept.len();
        let st = out
            .state
            .iter_mut()
            .find(|s| s.path == rf.path)
            .expect("state folder");
        *st = StateFolder {
            messages: kept,
            omitted,
            ..st.clone()
        };
        let lf = out
            .local
            .iter_mut()
            .find(|l| l.path == rf.path)
            .expect("local folder");
        *lf = LocalFolder {
            path: lf.path.clone(),
            messages: lf
                .messages
                .iter()
                .filter(|m| kept_ids.contains(&m.id))
                .cloned()
                .collect(),
        };
        mb.messages = match delta {
            Delta::Changes => RemoteMessages::Changes {
                since,
                changed,
                vanished,
            },
            Delta::Merged => RemoteMessages::Complete(changed),
        };
    }
    out
}

/// A server-side change, decoded from bytes.
#[derive(Debug, Clone)]
enum Change {
    Toggle {
        folder: usize,
        pick: usize,
        flag: u8,
    },
    Expunge {
        folder: usize,
        pick: usize,
    },
    Deliver {
        folder: usize,
        body: BodyId,
    },
    Move {
        from: usize,
        pick: usize,
        to: usize,
    },
    ExpungeAll {
        folder: usize,
    },
    /// Expunges all but every `keep`-th message: around the safety valve's threshold.
    ExpungeMost {
        folder: usize,
        keep: usize,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0..3usize, any::<usize>(), 0..3u8)
            .prop_map(|(folder, pick, flag)| Change::Toggle { folder, pick, flag }),
        2 => (0..3usize, any::<usize>()).prop_map(|(folder, pick)| Change::Expunge { folder, pick }),
        2 => (0..3usize, 500..520u32).prop_map(|(folder, body)| Change::Deliver { folder, body }),
        2 => (0..3usize, any::<usize>(), 0..3usize)
            .prop_map(|(from, pick, to)| Change::Move { from, pick, to }),
        1 => (0..3usize).prop_map(|folder| Change::ExpungeAll { folder }),
        2 => (0..3usize, 2..5usize).prop_map(|(folder, keep)| Change::ExpungeMost { folder, keep }),
    ]
}

fn flag_of(n: u8) -> Flag {
    match n {
        0 => Flag::Seen,
        1 => Flag::Flagged,
        _ => Flag::Keyword("work".into()),
    }
}

fn apply(w: &mut World, c: &Change) {
    let paths: Vec<_> = w.remote.keys().cloned().collect();
    let pick = |f: &model::RFolder, n: usize| f.msgs.keys().nth(n % f.msgs.len().max(1)).copied();
    match c {
        Change::Toggle {
            folder,
            pick: n,
            flag,
        } => {
            let f = w.remote.get_mut(&paths[folder % paths.len()]).unwrap();
            let Some(u) = pick(f, *n) else { return };
            f.hms += 1;
            let hms = f.hms;
            let m = f.msgs.get_mut(&u).unwrap();
            let flag = flag_of(*flag);
            if !m.flags.remove(&flag) {
                m.flags.insert(flag);
            }
            m.modseq = hms;
        }
        Change::Expunge { folder, pick: n } => {
            let f = w.remote.get_mut(&paths[folder % paths.len()]).unwrap();
            let Some(u) = pick(f, *n) else { return };
            f.msgs.remove(&u);
            f.hms += 1;
        }
        Change::Deliver { folder, body } => {
            let f = w.remote.get_mut(&paths[folder % paths.len()]).unwrap();
            f.add(*body, FlagSet::new());
        }
        Change::Move { from, pick: n, to } => {
            let (a, b) = (&paths[from % paths.len()], &paths[to % paths.len()]);
            if a == b {
                return;
            }
            let f = w.remote.get_mut(a).unwrap();
            let Some(u) = pick(f, *n) else { return };
            let m = f.msgs.remove(&u).unwrap();
            f.hms += 1;
            w.remote.get_mut(b).unwrap().add(m.body, m.flags);
        }
        Change::ExpungeMost { folder, keep } => {
            let f = w.remote.get_mut(&paths[folder % paths.len()]).unwrap();
            let before = f.msgs.len();
            let mut i = 0;
            f.msgs.retain(|_, _| {
                i += 1;
                i % keep == 0
            });
            if f.msgs.len() != before {
                f.hms += 1;
            }
        }
        Change::ExpungeAll { folder } => {
            let f = w.remote.get_mut(&paths[folder % paths.len()]).unwrap();
            if !f.msgs.is_empty() {
                f.msgs.clear();
                f.hms += 1;
            }
        }
    }
}

fn account(sizes: &[(usize, u8)]) -> World {
    let names = ["INBOX", "Archive", "Lists/rust"];
    let mut body = 0;
    let folders: Vec<(&str, Vec<(BodyId, FlagSet)>)> = sizes
        .iter()
        .zip(names)
        .map(|(&(n, seed), name)| {
            let msgs = (0..n)
                .map(|i| {
                    body += 1;
                    let mut fl = FlagSet::new();
                    if (i as u8).wrapping_add(seed) % 3 == 0 {
                        fl.insert(Flag::Seen);
                    }
                    if (i as u8).wrapping_mul(seed) % 7 == 1 {
                        fl.insert(Flag::Keyword("work".into()));
                    }
                    (body, fl)
                })
                .collect();
            (name, msgs)
        })
        .collect();
    World::synced(&folders)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_partial_view_plans_what_the_complete_view_plans(
        sizes in proptest::collection::vec((0..60usize, any::<u8>()), 3),
        changes in proptest::collection::vec(change(), 0..12),
        force in any::<bool>(),
    ) {
        let mut w = account(&sizes);
        for c in &changes {
            apply(&mut w, c);
        }
        let complete = w.input();
        let config = PlanConfig { force, ..PlanConfig::default() };
        let a = plan(&complete, &config);
        for delta in [Delta::Changes, Delta::Merged] {
            let b = plan(&partial_of(&complete, delta), &config);
            prop_assert_eq!(&a.ops, &b.ops, "{:?}", delta);
            prop_assert_eq!(&a.refused, &b.refused, "{:?}", delta);
        }
    }
}

/// The delta of an untouched account names nothing and plans nothing.
#[test]
fn an_empty_delta_plans_nothing() {
    let w = account(&[(5, 1), (3, 2), (0, 3)]);
    for delta in [Delta::Changes, Delta::Merged] {
        let p = plan(&partial_of(&w.input(), delta), &PlanConfig::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
    }
    assert!(ModSeq::new(1).is_some());
}
