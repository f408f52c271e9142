//! What a connection and the requests on it tell each other: [`Activity`].
//!
//! The server's deadlines (`server/deadlines.rs`) learn from it what the connection is doing
//! (waiting for a head, serving, idle, upgraded) and record in it that the client stalled; a
//! stream written to the connection reads that when it ends, so that it counts as `stalled`
//! rather than `client_gone`. It lives down here, below both, because both need it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// What a connection is doing, as its deadlines see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request head (the connection's first, or a later one's after its first
    /// byte).
    Head,
    /// A request is being served.
    Busy,
    /// A response has ended; no new request has begun.
    Idle,
    /// The connection was handed to a WebSocket.
    Upgraded,
}

/// Bits of [`Seen`] that hold the phase; the rest count the changes.
const PHASE_BITS: u32 = 2;

/// A connection's activity, shared by its socket and the requests it serves.
#[derive(Debug, Default)]
pub struct Activity {
    /// `changes << PHASE_BITS | phase`: the count of changes lets the socket notice a change
    /// even when the phase reads the same as before.
    state: AtomicU32,
    stalled: AtomicBool,
}

/// One reading of an [`Activity`]: two readings differ whenever the phase was set between
/// them, even to the phase it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen(u32);

impl Seen {
    /// The phase at this reading.
    pub fn phase(self) -> Phase {
        match self.0 & ((1 << PHASE_BITS) - 1) {
            0 => Phase::Head,
            1 => Phase::Busy,
            2 => Phase::Idle,
            _ => Phase::Upgraded,
        }
    }
}

impl Activity {
    /// A request's head is complete and the service is answering it.
    pub fn request_began(&self) {
        self.set(Phase::Busy);
    }

    /// The response has been written (or dropped): the connection waits for the next request.
    pub fn response_ended(&self) {
        self.set(Phase::Idle);
    }

    /// The connection was handed to a WebSocket.
    pub fn upgraded(&self) {
        self.set(Phase::Upgraded);
    }

    /// The first byte of a later request arrived on a kept-alive connection.
    pub fn head_began(&self) {
        self.set(Phase::Head);
    }

    /// The connection is being closed because its client stopped accepting bytes.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::Relaxed);
    }

    /// Whether the connection was closed because its client stopped accepting bytes.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// What the connection is doing now.
    pub fn seen(&self) -> Seen {
        Seen(self.state.load(Ordering::Relaxed))
    }

    fn set(&self, phase: Phase) {
        let changes = (self.state.load(Ordering::Relaxed) >> PHASE_BITS).wrapping_add(1);
        self.state
            .store(changes << PHASE_BITS | phase as u32, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_changes_with_every_change_even_to_the_same_phase() {
        let activity = Activity::default();
        let first = activity.seen();
        assert_eq!(first.phase(), Phase::Head);
        activity.request_began();
        let busy = activity.seen();
        assert_eq!(busy.phase(), Phase::Busy);
        activity.request_began();
        assert_ne!(activity.seen(), busy);
        assert_eq!(activity.seen().phase(), Phase::Busy);
        for (set, phase) in [
            (Activity::response_ended as fn(&Activity), Phase::Idle),
            (Activity::head_began, Phase::Head),
            (Activity::upgraded, Phase::Upgraded),
        ] {
            set(&activity);
            assert_eq!(activity.seen().phase(), phase);
        }
        assert!(!activity.stalled());
        activity.stall();
        assert!(activity.stalled());
    }
}
