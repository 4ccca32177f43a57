//! The random scenarios of the property tests (`plan_props.rs`), shared with the replays of
//! inputs they once failed on (`plan_regressions.rs`): bytes decode to a synced account and
//! the changes made on each side since, so proptest shrinks bytes and every byte string is a
//! valid scenario.

use std::collections::BTreeSet;

use mailfold_plan::check::check_plan;
use mailfold_plan::{
    plan, Flag, FlagSet, FolderPath, LocalId, PermanentFlags, PlanConfig, SafetyValve,
};
use proptest::prelude::*;

use crate::model::{self, flags, fp, BodyId, LMsg, World};

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Lists/rust"];

fn flag_pool() -> [Flag; 5] {
    [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Keyword("$Junk".into()),
        Flag::Keyword("work".into()),
    ]
}

fn flags_from(bits: u8) -> FlagSet {
    flag_pool()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, f)| f)
        .collect()
}

fn toggle(f: &FlagSet, bits: u8) -> FlagSet {
    let t = flags_from(bits);
    f.difference(&t).union(&t.difference(f))
}

/// A scenario decoded from bytes (so proptest shrinks bytes, and every byte string is valid).
pub(crate) struct Scenario {
    pub(crate) world: World,
    /// Bodies a side deliberately deleted: they may be gone after the sync.
    pub(crate) deleted: BTreeSet<BodyId>,
    /// Folders whose server side is read-only.
    pub(crate) read_only: BTreeSet<FolderPath>,
}

struct Bytes<'a>(&'a [u8], usize);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b
    }
    fn below(&mut self, n: u8) -> u8 {
        self.next() % n.max(1)
    }
}

pub(crate) fn scenario(data: &[u8]) -> Scenario {
    let mut b = Bytes(data, 0);
    let mut next_body: BodyId = 0;
    let mut spec = Vec::new();
    for name in FOLDERS {
        let n = b.below(6);
        let msgs: Vec<(BodyId, FlagSet)> = (0..n)
            .map(|_| {
                next_body += 1;
                (next_body, flags_from(b.next()))
            })
            .collect();
        spec.push((name, msgs));
    }
    let mut w = World::synced(&spec);
    let mut deleted = BTreeSet::new();
    let mut read_only = BTreeSet::new();
    let paths: Vec<FolderPath> = FOLDERS.iter().map(|s| fp(s)).collect();

    // Per-message changes on each side.
    for (fi, p) in paths.iter().enumerate() {
        let uids: Vec<u32> = w.remote[p].msgs.keys().copied().collect();
        for u in uids {
            let action = b.below(8);
            let Some(m) = w.remote.get(p).and_then(|f| f.msgs.get(&u)).cloned() else {
                continue;
            };
            match action {
                1 | 2 => {
                    let bits = b.next();
                    if let Some(rf) = w.remote.get_mut(p) {
                        rf.hms += 1;
                        let hms = rf.hms;
                        if let Some(mm) = rf.msgs.get_mut(&u) {
                            mm.flags = toggle(&mm.flags, bits);
                            mm.modseq = hms;
                        }
                    }
                }
                3 => {
                    if let Some(rf) = w.remote.get_mut(p) {
                        rf.msgs.remove(&u);
                        rf.hms += 1;
                    }
                    deleted.insert(m.body);
                }
                4 => {
                    let to = &paths[(fi + 1 + usize::from(b.below(2))) % paths.len()];
                    if let Some(rf) = w.remote.get_mut(p) {
                        rf.msgs.remove(&u);
                        rf.hms += 1;
                    }
                    if let Some(t) = w.remote.get_mut(to) {
                        t.add(m.body, m.flags.clone());
                    }
                }
                _ => {}
            }
        }
        let ids: Vec<LocalId> = w.local[p].keys().cloned().collect();
        for id in ids {
            let action = b.below(9);
            let Some(m) = w.local.get(p).and_then(|f| f.get(&id)).cloned() else {
                continue;
            };
            match action {
                1 | 2 => {
                    let bits = b.next();
                    if let Some(mm) = w.local.get_mut(p).and_then(|f| f.get_mut(&id)) {
                        mm.flags = toggle(&mm.flags, bits);
                    }
                }
                3 => {
                    w.local.get_mut(p).map(|f| f.remove(&id));
                    deleted.insert(m.body);
                }
                4 => {
                    // Moved as mutt does: same base name, another folder.
                    let to = paths[(fi + 1 + usize::from(b.below(2))) % paths.len()].clone();
                    w.local.get_mut(p).map(|f| f.remove(&id));
                    w.local.entry(to).or_default().insert(id, m);
                }
                5 => {
                    // Renamed in place (a new base name, as some tools do).
                    let new = w.fresh_id("r");
                    w.local.get_mut(p).map(|f| f.remove(&id));
                    w.local.entry(p.clone()).or_default().insert(new, m);
                }
                _ => {}
            }
        }
        // New messages on each side.
        for _ in 0..b.below(3) {
            next_body += 1;
            let fl = flags_from(b.next());
            if let Some(rf) = w.remote.get_mut(p) {
                rf.add(next_body, fl);
            }
        }
        for _ in 0..b.below(3) {
            next_body += 1;
            let fl = flags_from(b.next());
            let id = w.fresh_id("n");
            w.local.entry(p.clone()).or_default().insert(
                id,
                LMsg {
                    body: next_body,
                    flags: fl,
                    partial: false,
                },
            );
        }
    }
    // Folder-level trouble.
    for p in &paths {
        match b.below(12) {
            0 => {
                // UIDVALIDITY reset: same messages, new UIDs (V0003).
                let v = w.next_uidvalidity;
                w.next_uidvalidity += 1;
                if let Some(rf) = w.remote.get_mut(p) {
                    let msgs: Vec<_> = std::mem::take(&mut rf.msgs).into_values().collect();
                    rf.uidvalidity = Some(v);
                    rf.uidnext = 1;
                    for m in msgs {
                        rf.add(m.body, m.flags);
                    }
                }
            }
            1 => {
                // The state of this folder is lost.
                w.state.remove(p);
            }
            2 => {
                if let Some(rf) = w.remote.get_mut(p) {
                    rf.read_only = true;
                }
                read_only.insert(p.clone());
            }
            3 => {
                if let Some(rf) = w.remote.get_mut(p) {
                    rf.perm = PermanentFlags {
                        flags: flags(&["\\Seen", "\\Answered", "\\Flagged", "\\Deleted"]),
                        new_keywords: false,
                    };
                }
            }
            _ => {}
        }
    }
    if b.below(4) == 0 {
        // The user renames a local folder (Archive → Archive2020).
        if let Some(files) = w.local.remove(&paths[1]) {
            w.local.insert(fp("Archive2020"), files);
        }
    }
    if b.below(4) == 0 {
        // A new server folder with mail.
        let mut rf = model::RFolder::new(w.next_uidvalidity);
        w.next_uidvalidity += 1;
        for _ in 0..b.below(3) {
            next_body += 1;
            rf.add(next_body, flags_from(b.next()));
        }
        w.remote.insert(fp("Drafts"), rf);
    }
    w.no_uidplus = b.below(5) == 0;
    if b.below(4) == 0 {
        // Another client renames a server folder (Lists/rust → Lists/go). RENAME keeps the
        // UIDVALIDITY and the UIDs, as Dovecot does (RFC 3501 6.3.5 leaves it open).
        if let Some(rf) = w.remote.remove(&paths[2]) {
            w.remote.insert(fp("Lists/go"), rf);
        }
        // A read-only folder stays read-only under its new name: its pending local changes
        // (a `\Seen` set locally, V0039) stay local and it is not expected to converge.
        if read_only.remove(&paths[2]) {
            read_only.insert(fp("Lists/go"));
        }
    }
    Scenario {
        world: w,
        deleted,
        read_only,
    }
}

/// No valve: the random scenarios delete freely (the valve has its own property), and a
/// scenario may leave every state folder missing on one side.
pub(crate) fn no_valve() -> PlanConfig {
    PlanConfig {
        force: true,
        valve: SafetyValve {
            min_messages: usize::MAX,
            max_percent: 50,
        },
        ..PlanConfig::default()
    }
}

/// Plans and applies until the plan is empty (at most `rounds` times); returns the rounds used.
pub(crate) fn settle(
    w: &mut World,
    config: &PlanConfig,
    rounds: usize,
) -> Result<usize, TestCaseError> {
    for r in 0..rounds {
        let input = w.input();
        let p = plan(&input, config);
        check_plan(&input, config, &p).map_err(|v| TestCaseError::fail(v.to_string()))?;
        if p.is_empty() {
            return Ok(r);
        }
        w.apply(&p, None);
    }
    Err(TestCaseError::fail("plan did not settle"))
}

/// No loss, no duplicate, convergence and idempotence for the scenario `data` decodes to.
pub(crate) fn converges(data: &[u8]) -> Result<(), TestCaseError> {
    converges_from(&scenario(data))
}

/// [`converges`] for a scenario built otherwise.
pub(crate) fn converges_from(sc: &Scenario) -> Result<(), TestCaseError> {
    let before = sc.world.bodies();
    let mut w = sc.world.clone();
    let config = no_valve();
    let input = w.input();
    let p = plan(&input, &config);
    check_plan(&input, &config, &p).map_err(|v| TestCaseError::fail(v.to_string()))?;
    prop_assert!(p.refused.is_empty(), "refused: {:?}", p.refused);
    w.apply(&p, None);

    // Idempotence: with UIDPLUS one pass suffices; without it, binds of uploads and moved
    // copies by content need exactly one more pass.
    let again = plan(&w.input(), &config);
    // A server rename that also changed the UIDVALIDITY is one Maildir rename that keeps the
    // old UIDVALIDITY; the next plan re-binds by content (V0003), downloading nothing.
    let rebinding: BTreeSet<FolderPath> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            mailfold_plan::Op::RenameLocalFolder { from, to } => {
                let old = input.state.iter().find(|s| s.path == *from)?.uidvalidity;
                let new = input
                    .remote
                    .iter()
                    .find(|r| r.path == *to)?
                    .mailbox
                    .as_ref()?
                    .uidvalidity;
                (new != Some(old)).then(|| to.clone())
            }
            _ => None,
        })
        .collect();
    if !rebinding.is_empty() {
        prop_assert!(
            again.ops.iter().all(|o| match o {
                // Without UIDPLUS, uploads and moved copies are bound by content too.
                mailfold_plan::Op::Bind { folder, update, .. } => {
                    (rebinding.contains(folder) || w.no_uidplus) && update.is_noop()
                }
                mailfold_plan::Op::SetUidValidity { folder, .. } => rebinding.contains(folder),
                mailfold_plan::Op::SetFolderState { .. } => true,
                _ => false,
            }),
            "second plan after a rename with a new UIDVALIDITY: {:#?}",
            again.ops
        );
        w.apply(&again, None);
        prop_assert!(plan(&w.input(), &config).is_empty());
    } else if !w.no_uidplus {
        prop_assert!(again.is_empty(), "second plan not empty: {:#?}", again.ops);
    } else {
        // A server copy's flags can only be set once COPYUID names it: without UIDPLUS the
        // journal entry of the copy stays, and the next plan binds the copy by it, storing
        // the file's flags, and drops the entry.
        let copied: BTreeSet<(&FolderPath, &mailfold_plan::LocalId)> = p
            .ops
            .iter()
            .filter_map(|o| match o {
                mailfold_plan::Op::CopyRemote { to, local, .. } => Some((to, local)),
                _ => None,
            })
            .collect();
        prop_assert!(
            again.ops.iter().all(|o| matches!(o,
        mailfold_plan::Op::Bind { update, .. } if update.is_noop())
                || matches!(o, mailfold_plan::Op::Bind { folder, local, update, .. }
                    if update.local.is_none() && copied.contains(&(folder, local)))
                || (matches!(o, mailfold_plan::Op::DropIntent { .. }) && !copied.is_empty())
                || matches!(o, mailfold_plan::Op::SetFolderState { .. })),
            "second plan without UIDPLUS: {:#?}",
            again.ops
        );
        w.apply(&again, None);
        prop_assert!(plan(&w.input(), &config).is_empty());
    }

    // No loss.
    let after = w.bodies();
    for b in before.difference(&after) {
        prop_assert!(sc.deleted.contains(b), "body {b} lost");
    }
    // No duplicates (read-only folders keep pending local copies apart).
    for b in &after {
        let remote: usize = w
            .remote
            .iter()
            .filter(|(p, _)| !sc.read_only.contains(*p))
            .map(|(_, f)| f.msgs.values().filter(|m| m.body == *b).count())
            .sum();
        let local: usize = w
            .local
            .iter()
            .filter(|(p, _)| !sc.read_only.contains(*p))
            .map(|(_, f)| f.values().filter(|m| m.body == *b).count())
            .sum();
        prop_assert!(
            remote <= 1 && local <= 1,
            "body {b}: {remote} on the server, {local} locally"
        );
    }
    // Convergence: every writable folder is the same on both sides.
    let snap = w.snapshot();
    for (p, remote) in &snap.remote {
        if sc.read_only.contains(p) {
            continue;
        }
        prop_assert_eq!(Some(remote), snap.local.get(p), "folder {}", p);
    }
    for p in snap.local.keys() {
        prop_assert!(
            snap.remote.contains_key(p),
            "local folder {} not on the server",
            p
        );
    }
    Ok(())
}

/// Runs the kill-after-any-prefix property for one scenario at every cut point.
pub(crate) fn kill_at_every_cut(data: &[u8]) -> Result<(), String> {
    kill_at_every_cut_from(&scenario(data))
}

/// [`kill_at_every_cut`] for a scenario built otherwise.
pub(crate) fn kill_at_every_cut_from(sc: &Scenario) -> Result<(), String> {
    let config = no_valve();
    let mut clean = sc.world.clone();
    settle(&mut clean, &config, 4).map_err(|e| format!("clean run: {e}"))?;
    let p = plan(&sc.world.input(), &config);
    let total: usize = {
        let w = sc.world.clone();
        p.ops.iter().map(|o| w.steps(o)).sum()
    };
    for budget in 0..total.max(1) {
        let mut crashed = sc.world.clone();
        crashed.apply(&p, Some(budget));
        settle(&mut crashed, &config, 4).map_err(|e| format!("cut {budget}/{total}: {e}"))?;
        if crashed.snapshot() != clean.snapshot() {
            return Err(format!(
                "cut {budget}/{total}: crashed {:#?}\nclean {:#?}",
                crashed.snapshot(),
                clean.snapshot()
            ));
        }
    }
    Ok(())
}
