//! Choosing loopback ports that a child process (Dovecot) will bind a moment later.
//!
//! A port from the kernel's ephemeral range could be taken in the meantime by any outgoing
//! connection of the parallel tests, so candidates are drawn below that range (20000..32000,
//! under Linux's default 32768) and checked by binding them briefly. A small race remains with
//! other processes; the caller retries startup when the bind fails.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Mutex;

use crate::rng::SplitMix64;

const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

/// Returns a port on `ip` that was free when checked, and never the same port twice from this
/// process (a process-wide generator walks the range pseudo-randomly).
///
/// # Panics
/// If no free port was found after many attempts (the range is exhausted).
pub fn free_port(ip: IpAddr) -> u16 {
    static RNG: Mutex<Option<SplitMix64>> = Mutex::new(None);
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..1000 {
        let candidate = {
            // A poisoned lock only means another test panicked while holding it; the generator
            // state is still usable.
            let mut rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
            let rng = rng.get_or_insert_with(SplitMix64::from_entropy);
            LOW + (rng.below_or_eq(u64::from(HIGH - LOW - 1)) as u16)
        };
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.len() > usize::from(HIGH - LOW) / 2 {
            // Ports handed out long ago belong to instances that are gone by now; forgetting
            // them keeps the walk from running dry in a long soak run.
            given.clear();
        }
        if given.contains(&candidate) {
            continue;
        }
        if TcpListener::bind(SocketAddr::new(ip, candidate)).is_ok() {
            given.push(candidate);
            return candidate;
        }
    }
    panic!("no free loopback port found in {LOW}..{HIGH} on {ip}");
}
