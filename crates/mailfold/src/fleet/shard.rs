//! Sharding and the per-server connection budget.
//!
//! `--shard I/N` keeps the accounts whose rendezvous (highest-random-weight) winner among
//! the `N` shards is `I`. An account's shard depends on its name and `N` only, so adding or
//! removing accounts never moves another account, and changing `N` moves only the accounts
//! the new shard wins; every task of a job array computes the same split without talking
//! to the others. The hash is spelled out (FNV-1a then a SplitMix64 finaliser) rather than
//! taken from `std`, whose hasher may change between Rust releases: a changed split would
//! hand an account to two tasks at once during an upgrade.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// Which part of the fleet this process runs: shard `index` of `count` (0-based, as
/// `SLURM_ARRAY_TASK_ID` and `JOB_COMPLETION_INDEX` count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

impl Shard {
    /// The whole fleet as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected I/N, e.g. 0/4"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {i:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s:?}: I must be between 0 and N-1, and N at least 1"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether `account` belongs to this shard.
    pub fn owns(&self, account: &str) -> bool {
        shard_of(account, self.count) == self.index
    }

    /// This shard's part of a budget of `total` connections: an even split, the remainder
    /// going to the lowest indexes, so the parts of all shards add up to `total` exactly.
    pub fn share(&self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }
}

/// The shard (`0..count`) that owns `account`.
pub fn shard_of(account: &str, count: u32) -> u32 {
    (0..count.max(1))
        .max_by_key(|&i| weight(account, i))
        .unwrap_or(0)
}

/// The rendezvous weight of `account` for shard `i`.
fn weight(account: &str, i: u32) -> u64 {
    // FNV-1a 64 over the name and the shard number.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in account.bytes().chain(i.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser: FNV alone spreads short, similar names poorly.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Counting semaphores, one per server (`host:port`), each sized to this shard's share of
/// `max_connections_per_server`. An account takes all the connections it may open at once
/// before it starts and gives them back when its sync has logged out, so the connections
/// open to one server never exceed the share, whatever the accounts do inside their run.
#[derive(Debug, Default)]
pub struct ServerBudget {
    limit: Option<u32>,
    servers: Mutex<HashMap<String, Arc<Pool>>>,
}

#[derive(Debug)]
struct Pool {
    free: Mutex<u32>,
    freed: Condvar,
}

/// Connections taken from a server's pool; given back on drop.
#[derive(Debug)]
pub struct Permit {
    pool: Option<Arc<Pool>>,
    n: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut free = pool.free.lock().unwrap_or_else(|p| p.into_inner());
            *free += self.n;
            pool.freed.notify_all();
        }
    }
}

impl ServerBudget {
    /// A budget of `limit` connections per server (`None`: no cap).
    pub fn new(limit: Option<u32>) -> ServerBudget {
        ServerBudget {
            limit,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// The most connections one account may use: its own wish capped by the budget.
    pub fn cap(&self, wanted: u32) -> u32 {
        self.limit.map_or(wanted, |l| wanted.min(l)).max(1)
    }

    /// Waits until `n` connections to `server` are free and takes them (all at once, so two
    /// accounts each holding part of what they need cannot wait on each other forever).
    pub fn take(&self, server: &str, n: u32) -> Permit {
        let Some(limit) = self.limit else {
            return Permit { pool: None, n };
        };
        let n = n.min(limit);
        let pool = {
            let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(servers.entry(server.to_string()).or_insert_with(|| {
                Arc::new(Pool {
                    free: Mutex::new(limit),
                    freed: Condvar::new(),
                })
            }))
        };
        let mut free = pool.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free < n {
            free = pool.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= n;
        drop(free);
        Permit {
            pool: Some(pool),
            n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_fleet_and_stay_put_when_accounts_are_added() {
        let names: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
        let mut sizes = [0usize; 4];
        for n in &names {
            let owners: Vec<u32> = (0..4)
                .filter(|&i| Shard { index: i, count: 4 }.owns(n))
                .collect();
            assert_eq!(owners.len(), 1, "{n}: {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        // Roughly even: each shard within 20% of a quarter.
        for s in sizes {
            assert!((200..=300).contains(&s), "{sizes:?}");
        }
        // Going from 4 to 5 shards moves only accounts to the new shard.
        for n in &names {
            let (a, b) = (shard_of(n, 4), shard_of(n, 5));
            assert!(a == b || b == 4, "{n}: {a} -> {b}");
        }
        // Fixed values: the split must not change between releases (module docs).
        assert_eq!(
            (0..8)
                .map(|i| shard_of(&format!("user{i}"), 4))
                .collect::<Vec<_>>(),
            FIXED
        );
    }

    // Pinned at first release; see the test above.
    const FIXED: [u32; 8] = [3, 0, 0, 2, 2, 2, 3, 0];

    #[test]
    fn parse_and_share() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1", "a/4", "0/0", "-1/4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let shares: Vec<u32> = (0..4)
            .map(|i| Shard { index: i, count: 4 }.share(10))
            .collect();
        assert_eq!(shares, [3, 3, 2, 2]);
        assert_eq!(shares.iter().sum::<u32>(), 10);
    }

    #[test]
    fn the_budget_never_hands_out_more_than_the_limit() {
        let budget = Arc::new(ServerBudget::new(Some(3)));
        assert_eq!(budget.cap(4), 3);
        let peak = Arc::new(Mutex::new((0u32, 0u32)));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (budget, peak) = (Arc::clone(&budget), Arc::clone(&peak));
                std::thread::spawn(move || {
                    let n = 1 + i % 3;
                    let _p = budget.take("h:993", n);
                    {
                        let mut g = peak.lock().unwrap();
                        g.0 += n;
                        g.1 = g.1.max(g.0);
                    }
                    std::thread::yield_now();
                    peak.lock().unwrap().0 -= n;
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.lock().unwrap().1 <= 3);
    }
}
