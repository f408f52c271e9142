//! The heartbeat: a peer silent for a period is pinged, and one that has not answered by the
//! next tick is given up on, so a vanished client never holds a stream open.

use std::time::Duration;

use tokio::time::{self, Instant, Interval, MissedTickBehavior};

/// Payload of the server's heartbeat pings.
pub const PING_PAYLOAD: &[u8] = b"chunkstream";

/// What a heartbeat tick calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The peer was heard from lately: nothing to do.
    Quiet,
    /// The peer was silent for a whole period: ping it.
    Ping,
    /// The peer did not answer the last ping by this tick: it is gone.
    Unanswered,
}

/// One connection's heartbeat.
pub struct Heartbeat {
    ticker: Interval,
    period: Duration,
    last_heard: Instant,
    /// When the unanswered ping went out, if one did.
    pinged: Option<Instant>,
}

impl Heartbeat {
    /// A heartbeat that ticks every `period`.
    pub fn new(period: Duration) -> Self {
        let mut ticker = time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticker,
            period,
            last_heard: Instant::now(),
            pinged: None,
        }
    }

    /// The peer sent something: it is there.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next tick and says what it calls for. Cancel-safe: nothing changes
    /// until the tick has come.
    pub async fn tick(&mut self) -> Beat {
        let tick = self.ticker.tick().await;
        if self
            .pinged
            .take()
            .is_some_and(|ping| self.last_heard < ping)
        {
            return Beat::Unanswered;
        }
        if self.last_heard + self.period <= tick {
            self.pinged = Some(tick);
            return Beat::Ping;
        }
        Beat::Quiet
    }
}
