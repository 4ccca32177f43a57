//! Counters of commands and bytes, so tests of "no needless work" can count SELECTs and the
//! CLI can report traffic. Cloning a [`Stats`] shares the counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    commands: BTreeMap<String, u64>,
    bytes_sent: u64,
    bytes_received: u64,
}

/// Shared traffic counters of one session.
#[derive(Clone, Debug, Default)]
pub struct Stats(Arc<Mutex<Inner>>);

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means a panic elsewhere while counting; the counts stay usable.
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub(crate) fn command(&self, name: &str) {
        let word = name.to_ascii_uppercase();
        self.with(|i| *i.commands.entry(word).or_default() += 1);
    }

    pub(crate) fn sent(&self, n: u64) {
        self.with(|i| i.bytes_sent += n);
    }

    pub(crate) fn received(&self, n: u64) {
        self.with(|i| i.bytes_received += n);
    }

    /// How many commands named `name` (e.g. `"SELECT"`, `"UID FETCH"`) were submitted.
    pub fn commands(&self, name: &str) -> u64 {
        let key = name.to_ascii_uppercase();
        self.with(|i| i.commands.get(&key).copied().unwrap_or(0))
    }

    /// All command counts by name.
    pub fn all_commands(&self) -> BTreeMap<String, u64> {
        self.with(|i| i.commands.clone())
    }

    /// Bytes written to the server.
    pub fn bytes_sent(&self) -> u64 {
        self.with(|i| i.bytes_sent)
    }

    /// Bytes read from the server.
    pub fn bytes_received(&self) -> u64 {
        self.with(|i| i.bytes_received)
    }
}
