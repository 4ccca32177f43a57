//! Waiting on the server: IDLE (RFC 2177), keepalive for a held session (seed V0025), and
//! NOOP polling where IDLE is not offered (seed V0028). No background task: each call drives
//! the connection itself and is made to be raced in `tokio::select!`.

use std::sync::Arc;
use std::time::Duration;

use mailfold_proto::command::Command;
use mailfold_proto::engine::Event;
use tokio::sync::Notify;

use crate::error::Error;

use super::driver::{now, Notification, Session};
use super::outcome::{map_engine_error, outcome_error};

/// Stops an [`Session::idle`] from another task.
#[derive(Clone, Debug, Default)]
pub struct IdleStop(Arc<Notify>);

impl IdleStop {
    /// A new stop handle.
    pub fn new() -> Self {
        IdleStop::default()
    }

    /// Ends the IDLE it was passed to (or the next one, if none is running).
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

impl Session {
    /// IDLE until something changes in the mailbox, `stop` is triggered, or `max` passes;
    /// then DONE. Returns the notifications that arrived (seed V0023, V0028). The engine
    /// re-issues IDLE before 29 minutes on its own.
    pub async fn idle(
        &mut self,
        stop: &IdleStop,
        max: Duration,
    ) -> Result<Vec<Notification>, Error> {
        // Only what arrives from now on ends the IDLE; older notes are just returned too.
        let base = self.notes.len();
        let h = self.submit(Command::Idle);
        let until = tokio::time::Instant::now() + max;
        let mut stopping = false;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(c) = self.done.remove(&h) {
                if let Some(e) = outcome_error(&c.outcome) {
                    return Err(e);
                }
                return Ok(self.take_notifications());
            }
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            let changed = self.notes.iter().skip(base).any(is_change);
            if !stopping && (changed || tokio::time::Instant::now() >= until) {
                stopping = true;
                self.engine.idle_done(h, now());
                continue;
            }
            let deadline = self.engine_deadline();
            tokio::select! {
                r = self.read_once(deadline) => r?,
                _ = stop.0.notified(), if !stopping => {
                    stopping = true;
                    self.engine.idle_done(h, now());
                }
                _ = tokio::time::sleep_until(until), if !stopping => {}
            }
        }
    }

    /// Keeps a session that is held without commands alive (seed V0025): reads and applies
    /// whatever the server sends meanwhile (seed V0024), lets the engine send its keepalive
    /// NOOP when `Config::keepalive` has passed without traffic, and returns once that NOOP
    /// has completed or the server sent something worth reporting, with the notifications
    /// collected so far.
    ///
    /// Made to be raced against the holder's own work in `tokio::select!` (no background
    /// task, so nothing writes behind the caller's back): it is cancel-safe, because a read
    /// in progress consumes nothing until it completes and bytes taken for writing are kept
    /// in the session until written.
    ///
    /// ```no_run
    /// # async fn demo(mut s: mailfold_net::Session, mut jobs: tokio::sync::mpsc::Receiver<()>)
    /// # -> Result<(), mailfold_net::Error> {
    /// loop {
    ///     tokio::select! {
    ///         job = jobs.recv() => match job {
    ///             Some(()) => { s.noop().await?; }
    ///             None => break,
    ///         },
    ///         notes = s.keepalive_tick() => {
    ///             for note in notes? { println!("{note:?}"); }
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn keepalive_tick(&mut self) -> Result<Vec<Notification>, Error> {
        let mut noop_sent = false;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            if !self.engine.is_quiet() {
                // The timer fired and queued the NOOP (or the caller left commands pending,
                // which this drives too).
                noop_sent = true;
            } else if noop_sent || !self.notes.is_empty() {
                return Ok(self.take_notifications());
            }
            let deadline = self.engine_deadline();
            self.read_once(deadline).await?;
        }
    }

    /// Watches the selected mailbox until something changes, `stop` is triggered, or `max`
    /// passes (seed V0028): with IDLE when the server offers it, else by polling with NOOP
    /// every `poll_every` (NOOP also resets the server's autologout timer, seed V0025).
    /// Returns the notifications that arrived.
    pub async fn idle_or_poll(
        &mut self,
        stop: &IdleStop,
        max: Duration,
        poll_every: Duration,
    ) -> Result<Vec<Notification>, Error> {
        if self.caps().has("IDLE") {
            return self.idle(stop, max).await;
        }
        let start = tokio::time::Instant::now();
        let until = start + max;
        let mut next_poll = start + poll_every;
        loop {
            self.flush().await?;
            self.step(&mut None).await?;
            if let Some(e) = &self.closed {
                return Err(map_engine_error(e.clone()));
            }
            if self.notes.iter().any(is_change) {
                return Ok(self.take_notifications());
            }
            let t = tokio::time::Instant::now();
            if t >= until {
                return Ok(self.take_notifications());
            }
            if t >= next_poll {
                self.noop().await?;
                next_poll = tokio::time::Instant::now() + poll_every;
                continue;
            }
            let wake = match self.engine_deadline() {
                Some(d) => d.min(next_poll).min(until),
                None => next_poll.min(until),
            };
            tokio::select! {
                r = self.read_once(Some(wake)) => r?,
                _ = stop.0.notified() => return Ok(self.take_notifications()),
            }
        }
    }
}

/// Whether a notification ends a watch: a mailbox change, another client's flag change, a
/// NOTIFY report about another mailbox, or the server leaving.
fn is_change(n: &Notification) -> bool {
    // NOTIFY's reports (RFC 5465) include the selected mailbox's changes and unsolicited
    // FETCH, so one test covers both kinds of session.
    matches!(n, Event::Bye { .. }) || mailfold_proto::notify::Notice::of(n).is_some()
}
