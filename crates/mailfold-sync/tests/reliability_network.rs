//! Network faults: rounds of changes on both sides, each followed by syncs through
//! a [`FaultProxy`] that cuts the connection at a byte offset, stalls it, delays it or splits
//! it into one-byte segments, then by a clean sync that must converge: every message of the
//! expected model on both sides exactly once, with its bytes and its flags, and nothing else.
//! A further clean sync must change nothing.
//!
//! Server-side changes go through doveadm (another agent on the server: delivery, flag
//! changes, expunge); local changes are made on the files as mutt would (see
//! `reliability_common.rs`). In one round a message is changed on one side only, so the model
//! needs no merge rule; across rounds, every message is fair game.
//!
//! CI runs a few rounds (`MAILFOLD_SOAK_ROUNDS`, default 6, with every fault kind in both
//! directions); `bench/soak [ROUNDS] [SEED]` runs hundreds with random faults and prints the
//! counts. A failing round prints its seed and faults, so it can be replayed with
//! `MAILFOLD_SOAK_SEED`.

#[path = "sync_common.rs"]
mod common;
#[path = "reliability_common.rs"]
mod rc;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Env;
use mailfold_sync::{AccountSpec, SyncOptions, SyncReport};
use mailfold_testsupport::{Direction, Fault, FaultPlan, FaultProxy, SplitMix64};
use rc::{Expected, Model, Tally};

const FOLDERS: [&str; 2] = ["INBOX", "Work"];
/// A faulty sync that has not ended after this long is counted as hung (the proxy's faults
/// are all bounded, so only a client that never times out can get here).
const HANG_LIMIT: Duration = Duration::from_secs(150);

/// What the soak did and found.
#[derive(Debug, Default)]
struct Stats {
    rounds: usize,
    faulty_syncs: usize,
    faulty_failed: usize,
    faulty_incomplete: usize,
    faulty_complete: usize,
    hangs: usize,
    panics: usize,
    kinds: BTreeMap<&'static str, usize>,
    server_changes: usize,
    local_changes: usize,
    tally: Tally,
    clean_not_converged: usize,
    longest_faulty: Duration,
}

struct Soak {
    env: Env,
    model: Model,
    rng: SplitMix64,
    next_n: usize,
    stats: Stats,
    seed: u64,
}

fn kind_name(f: &Fault) -> &'static str {
    match f {
        Fault::None => "none",
        Fault::Cut { .. } => "cut",
        Fault::Stall { .. } => "stall",
        Fault::Delay { .. } => "delay",
        Fault::OneByteSegments { .. } => "one-byte-segments",
    }
}

impl Soak {
    fn new(seed: u64) -> Soak {
        let env = Env::with_users(1);
        let mut s = Soak {
            env,
            model: Model::new(),
            rng: SplitMix64::new(seed),
            next_n: 0,
            stats: Stats::default(),
            seed,
        };
        s.env.dovecot.create_mailbox(&s.env.user, "Work");
        for f in FOLDERS {
            s.model.insert(f.to_string(), BTreeMap::new());
            for _ in 0..6 {
                s.deliver(f);
            }
        }
        let r = s.clean_sync();
        assert!(r.changed_anything(), "the first sync downloads");
        let t = s.check();
        assert!(t.is_clean(), "first sync: {:#?}", t.details);
        s
    }

    fn deliver(&mut self, folder: &str) -> String {
        let n = self.next_n;
        self.next_n += 1;
        let (id, body) = rc::make_message(&mut self.rng, "server", n);
        self.env
            .dovecot
            .deliver(&self.env.user, folder, &rc::crlf(&body));
        self.model.entry(folder.to_string()).or_default().insert(
            id.clone(),
            Expected {
                body_hash: rc::body_hash(&body),
                flags: String::new(),
            },
        );
        id
    }

    /// A random message of a folder not yet touched this round.
    fn pick(&mut self, folder: &str, touched: &BTreeSet<String>) -> Option<String> {
        let ids: Vec<&String> = self.model[folder]
            .keys()
            .filter(|id| !touched.contains(*id))
            .collect();
        if ids.is_empty() {
            return None;
        }
        let i = self.rng.below_or_eq(ids.len() as u64 - 1) as usize;
        Some(ids[i].clone())
    }

    fn folder(&mut self) -> &'static str {
        FOLDERS[self.rng.below_or_eq(1) as usize]
    }

    fn letter(&mut self) -> char {
        ['S', 'F', 'R'][self.rng.below_or_eq(2) as usize]
    }

    /// Changes on the server (another agent) and in the Maildir (a mail reader), on distinct
    /// messages; the model follows.
    fn change_both_sides(&mut self) {
        let mut touched = BTreeSet::new();
        let user = self.env.user.clone();
        // Server: deliveries, flag changes, an expunge.
        for _ in 0..=self.rng.below_or_eq(2) {
            let f = self.folder();
            // Not on the local side yet: no local change may pick it this round.
            let id = self.deliver(f);
            touched.insert(id);
            self.stats.server_changes += 1;
        }
        for _ in 0..=self.rng.below_or_eq(1) {
            let f = self.folder();
            let Some(id) = self.pick(f, &touched) else {
                continue;
            };
            touched.insert(id.clone());
            let letter = self.letter();
            let e = self.model.get_mut(f).and_then(|m| m.get_mut(&id)).unwrap();
            let add = !e.flags.contains(letter);
            e.flags = rc::toggle(&e.flags, letter);
            self.env.dovecot.doveadm(&[
                "flags",
                if add { "add" } else { "remove" },
                "-u",
                &user,
                rc::imap_flag(letter),
                "mailbox",
                f,
                "header",
                "message-id",
                &id,
            ]);
            self.stats.server_changes += 1;
        }
        if self.rng.below_or_eq(1) == 0 {
            let f = self.folder();
            if self.model[f].len() > 4 {
                if let Some(id) = self.pick(f, &touched) {
                    touched.insert(id.clone());
                    self.model.get_mut(f).unwrap().remove(&id);
                    self.env.dovecot.doveadm(&[
                        "expunge",
                        "-u",
                        &user,
                        "mailbox",
                        f,
                        "header",
                        "message-id",
                        &id,
                    ]);
                    self.stats.server_changes += 1;
                }
            }
        }
        // Local: a new file, flag changes by rename, a deletion.
        for _ in 0..=self.rng.below_or_eq(1) {
            let f = self.folder();
            let n = self.next_n;
            self.next_n += 1;
            let (id, body) = rc::make_message(&mut self.rng, "local", n);
            let name = format!("{}.R{}.soak", 1_700_000_000 + n, self.rng.hex(6));
            rc::drop_local(&self.env.local_dir(f), &name, &body).unwrap();
            touched.insert(id.clone());
            self.model.get_mut(f).unwrap().insert(
                id,
                Expected {
                    body_hash: rc::body_hash(&body),
                    flags: String::new(),
                },
            );
            self.stats.local_changes += 1;
        }
        for _ in 0..=self.rng.below_or_eq(1) {
            let f = self.folder();
            let Some(id) = self.pick(f, &touched) else {
                continue;
            };
            touched.insert(id.clone());
            let letter = self.letter();
            let dir = self.env.local_dir(f);
            let path = rc::find_local(&dir, &id).unwrap_or_else(|| panic!("{f}: {id} missing"));
            let e = self.model.get_mut(f).and_then(|m| m.get_mut(&id)).unwrap();
            e.flags = rc::toggle(&e.flags, letter);
            rc::set_local_flags(&path, &e.flags).unwrap();
            self.stats.local_changes += 1;
        }
        if self.rng.below_or_eq(1) == 0 {
            let f = self.folder();
            if self.model[f].len() > 4 {
                if let Some(id) = self.pick(f, &touched) {
                    let dir = self.env.local_dir(f);
                    let path = rc::find_local(&dir, &id).unwrap();
                    std::fs::remove_file(path).unwrap();
                    self.model.get_mut(f).unwrap().remove(&id);
                    self.stats.local_changes += 1;
                }
            }
        }
    }

    /// A fault for the `i`-th faulty sync: the first sixteen walk through every kind in both
    /// directions, later ones are random.
    fn fault(&mut self, i: usize) -> Fault {
        let dir = if i.is_multiple_of(2) {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        // Log-uniform offsets: the TLS handshake, commands and mid-literal cuts all get hit.
        let offset = |rng: &mut SplitMix64| -> u64 {
            let e = rng.below_or_eq(1_000) as f64 / 1_000.0;
            (20_000f64.powf(e)) as u64
        };
        let kind = if i < 16 {
            (i / 2) % 4
        } else {
            self.rng.below_or_eq(3) as usize
        };
        let dir = if i < 16 {
            dir
        } else if self.rng.below_or_eq(1) == 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        match kind {
            0 => Fault::Cut {
                dir,
                after: offset(&mut self.rng),
            },
            1 => Fault::Stall {
                dir,
                after: offset(&mut self.rng),
                pause: Some(Duration::from_millis(self.rng.below_or_eq(1_500))),
            },
            2 => Fault::Delay {
                dir,
                delay: Duration::from_millis(1 + self.rng.below_or_eq(15)),
            },
            _ => Fault::OneByteSegments {
                dir,
                gap: Duration::ZERO,
            },
        }
    }

    /// One sync through a proxy with `fault`. Its outcome is free (it may fail); it must not
    /// panic or hang.
    fn faulty_sync(&mut self, fault: Fault) -> String {
        let proxy = FaultProxy::start(self.env.dovecot.imaps_addr(), FaultPlan::Always(fault));
        let mut a: AccountSpec = self.env.account();
        a.host = "127.0.0.1".into();
        a.port = proxy.addr().port();
        a.fsync = false;
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let worker = std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| {
                mailfold_sync::sync_account(&a, &SyncOptions::default())
            });
            let _ = tx.send(());
            r
        });
        let hung = rx.recv_timeout(HANG_LIMIT).is_err();
        if hung {
            self.stats.hangs += 1;
        }
        drop(proxy);
        let result = worker.join();
        self.stats.longest_faulty = self.stats.longest_faulty.max(started.elapsed());
        self.stats.faulty_syncs += 1;
        *self.stats.kinds.entry(kind_name(&fault)).or_default() += 1;
        match result {
            Ok(Ok(Ok(r))) if r.is_complete() => {
                self.stats.faulty_complete += 1;
                "complete".into()
            }
            Ok(Ok(Ok(r))) => {
                self.stats.faulty_incomplete += 1;
                format!("incomplete: {:?}", r.errors)
            }
            Ok(Ok(Err(e))) => {
                self.stats.faulty_failed += 1;
                format!("failed: {e}")
            }
            Ok(Err(_)) | Err(_) => {
                self.stats.panics += 1;
                "PANICKED".into()
            }
        }
    }

    fn clean_sync(&self) -> SyncReport {
        let mut a = self.env.account();
        a.fsync = false;
        mailfold_sync::sync_account(&a, &SyncOptions::default())
            .unwrap_or_else(|e| panic!("seed {}: clean sync failed: {e}", self.seed))
    }

    fn check(&self) -> Tally {
        let mut t = Tally::default();
        for f in FOLDERS {
            let want = &self.model[f];
            t.add(&rc::compare(
                "server",
                f,
                &rc::read_side(&self.env.server_dir(f)),
                want,
            ));
            t.add(&rc::compare(
                "local",
                f,
                &rc::read_side(&self.env.local_dir(f)),
                want,
            ));
        }
        t
    }

    fn round(&mut self, faulty: usize) {
        self.change_both_sides();
        let mut log = Vec::new();
        for _ in 0..faulty {
            let i = self.stats.faulty_syncs;
            let fault = self.fault(i);
            let outcome = self.faulty_sync(fault);
            log.push(format!("{fault:?} -> {outcome}"));
        }
        let r = self.clean_sync();
        let again = self.clean_sync();
        let t = self.check();
        self.stats.rounds += 1;
        let converged = r.is_complete() && again.is_complete() && !again.changed_anything();
        if !converged {
            self.stats.clean_not_converged += 1;
        }
        let round = self.stats.rounds;
        if !t.is_clean() || !converged || self.stats.panics + self.stats.hangs > 0 {
            eprintln!(
                "seed {} round {round}: faults {log:#?}\nclean run {r:#?}\nsecond run {again:#?}\n{:#?}",
                self.seed, t.details
            );
        }
        self.stats.tally.add(&t);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The soak: `MAILFOLD_SOAK_ROUNDS` rounds (default 6) of changes on both sides, two faulty
/// syncs each, then a clean sync that must converge to the model with nothing lost,
/// duplicated, altered or invented, and a second clean sync that changes nothing.
#[test]
fn faulty_syncs_then_a_clean_sync_converge_with_nothing_lost_or_duplicated() {
    let rounds = env_u64("MAILFOLD_SOAK_ROUNDS").unwrap_or(6) as usize;
    let seed = env_u64("MAILFOLD_SOAK_SEED").unwrap_or(0x5eed_0008);
    let started = Instant::now();
    let mut soak = Soak::new(seed);
    for _ in 0..rounds {
        soak.round(2);
        let s = &soak.stats;
        if !s.tally.is_clean() || s.panics + s.hangs + s.clean_not_converged > 0 {
            break;
        }
    }
    let s = &soak.stats;
    let messages: usize = soak.model.values().map(BTreeMap::len).sum();
    // One line for bench/soak to pick up, and for docs/reliability.md.
    println!(
        "SOAK seed={seed:#x} rounds={} faulty_syncs={} failed={} incomplete={} complete={} \
         kinds={:?} server_changes={} local_changes={} messages_now={messages} {} \
         not_converged={} panics={} hangs={} longest_faulty_ms={} elapsed_s={}",
        s.rounds,
        s.faulty_syncs,
        s.faulty_failed,
        s.faulty_incomplete,
        s.faulty_complete,
        s.kinds,
        s.server_changes,
        s.local_changes,
        s.tally.summary(),
        s.clean_not_converged,
        s.panics,
        s.hangs,
        s.longest_faulty.as_millis(),
        started.elapsed().as_secs()
    );
    assert!(
        s.tally.is_clean(),
        "seed {seed:#x}: {}\n{:#?}",
        s.tally.summary(),
        s.tally.details
    );
    assert_eq!(s.panics, 0, "seed {seed:#x}: a faulty sync panicked");
    assert_eq!(s.hangs, 0, "seed {seed:#x}: a faulty sync hung");
    assert_eq!(
        s.clean_not_converged, 0,
        "seed {seed:#x}: a clean sync after faults did not converge"
    );
    assert_eq!(s.rounds, rounds);
    if rounds >= 4 {
        // Every kind of fault was tried, in both directions (the first sixteen walk them).
        assert_eq!(s.kinds.len(), 4, "{:?}", s.kinds);
    }
}
