//! Open streams: the limits, the shutdown signal, and a guard that accounts for each stream.
//!
//! A transport opens a [`StreamGuard`] before it answers and moves it into whatever drives
//! the stream (the response body, the WebSocket task). However the stream ends, the guard's
//! `Drop` releases the limits' slots, updates the metrics once, and logs one line.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::{Level, Span};

use crate::{
    client::Share,
    generator::StreamParams,
    metrics::{Metrics, Outcome},
    server::Activity,
    shutdown::Shutdown,
    transport::Transport,
};

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server holds as many streams as it may (503).
    #[error("too many open streams (limit {limit}, --max-streams); retry later")]
    Busy {
        /// The configured limit.
        limit: usize,
    },
    /// This client holds its whole share (429).
    #[error(
        "too many open streams from this client (limit {limit}, --max-streams-per-client); \
         close one or retry later"
    )]
    FairShare {
        /// The configured limit per client.
        limit: usize,
    },
}

/// The limits a new stream must fit in.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open streams at once, over all clients.
    pub streams: usize,
    /// Open streams at once from one client ([`Share`]); 0: no cap.
    pub per_client: usize,
}

/// What every stream shares: the limits, the server's shutdown, and metrics.
#[derive(Clone)]
pub struct Streams {
    permits: Arc<Semaphore>,
    limits: Limits,
    shares: Arc<Shares>,
    shutdown: Shutdown,
    metrics: Metrics,
}

impl Streams {
    /// Room for the streams `limits` allow, until `shutdown`.
    pub fn new(limits: Limits, shutdown: Shutdown, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.streams)),
            limits,
            shares: Arc::default(),
            shutdown,
            metrics,
        }
    }

    /// Opens a stream for the client `share`, or refuses it (counted as `rejected`) when the
    /// client's share or the server's limit is taken. `connection` is the connection the
    /// stream is written to, when it is an HTTP body: if it stalls, the stream counts as
    /// `stalled`.
    pub fn open(
        &self,
        transport: Transport,
        params: &StreamParams,
        share: Share,
        connection: Option<Arc<Activity>>,
        peer: impl fmt::Display,
    ) -> Result<StreamGuard, Refusal> {
        let metrics = self.metrics.transport(transport);
        let refuse = |refusal: Refusal| {
            metrics.ended(Outcome::Rejected).increment(1);
            tracing::warn!(transport = transport.as_str(), %peer, %refusal, "stream rejected");
            refusal
        };
        let slot = match self.limits.per_client {
            0 => None,
            limit => Some(
                ShareSlot::take(&self.shares, share, limit)
                    .ok_or_else(|| refuse(Refusal::FairShare { limit }))?,
            ),
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(refuse(Refusal::Busy {
                limit: self.limits.streams,
            }));
        };
        metrics.open.increment(1.0);
        // The line at the end carries every field itself: at `info` that costs less than a
        // span per stream (BENCHMARKS.md, "Logging"). The span is there for `debug`. The
        // peer's text is kept for that line (the request is gone by then), if it is written.
        let peer = if tracing::enabled!(Level::INFO) {
            peer.to_string()
        } else {
            String::new()
        };
        let span = tracing::debug_span!(
            "stream",
            transport = transport.as_str(),
            count = params.count(),
            start = params.start(),
            interval_ms = params.interval_ms(),
            %peer,
        );
        span.in_scope(|| tracing::debug!("stream opened"));
        Ok(StreamGuard {
            transport,
            params: *params,
            peer,
            metrics: self.metrics.clone(),
            outcome: None,
            sent: 0,
            opened: Instant::now(),
            span,
            connection,
            _permit: permit,
            _share: slot,
        })
    }

    /// What [`Streams::open`] would refuse now for `share`, without opening or counting
    /// anything (a HEAD request's answer).
    pub fn check(&self, share: Share) -> Result<(), Refusal> {
        let limit = self.limits.per_client;
        let open = self.shares.0.lock().unwrap_or_else(|e| e.into_inner());
        if limit > 0 && open.get(&share).is_some_and(|&n| n >= limit) {
            return Err(Refusal::FairShare { limit });
        }
        if self.permits.available_permits() == 0 {
            return Err(Refusal::Busy {
                limit: self.limits.streams,
            });
        }
        Ok(())
    }

    /// The server's shutdown: every generator and WebSocket loop watches it.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Open streams per client, for the fair share. Only clients with open streams have an entry.
#[derive(Default)]
struct Shares(Mutex<HashMap<Share, usize>>);

/// One stream's place in its client's share, given back on drop.
struct ShareSlot {
    shares: Arc<Shares>,
    share: Share,
}

impl ShareSlot {
    /// A place in `share`, unless it already holds `limit` streams.
    fn take(shares: &Arc<Shares>, share: Share, limit: usize) -> Option<Self> {
        let mut open = shares.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(share).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            shares: shares.clone(),
            share,
        })
    }
}

impl Drop for ShareSlot {
    fn drop(&mut self) {
        let mut open = self.shares.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.share) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.share);
            }
        }
    }
}

/// One open stream. Dropping it ends the stream's accounting exactly once.
pub struct StreamGuard {
    transport: Transport,
    params: StreamParams,
    peer: String,
    metrics: Metrics,
    outcome: Option<Outcome>,
    sent: u64,
    opened: Instant,
    span: Span,
    connection: Option<Arc<Activity>>,
    _permit: OwnedSemaphorePermit,
    _share: Option<ShareSlot>,
}

impl StreamGuard {
    /// Records `n` more chunks handed to the transport.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
        self.metrics
            .transport(self.transport)
            .chunks_sent
            .increment(n);
    }

    /// Says how the stream ended; without it, a dropped guard counts as `stalled` if its
    /// connection stalled, else as `client_gone`.
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// The stream's tracing span, for the transport's own events; enabled at `debug`.
    pub fn span(&self) -> &Span {
        &self.span
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let stalled = self.connection.as_ref().is_some_and(|c| c.stalled());
        let outcome = self.outcome.unwrap_or(if stalled {
            Outcome::Stalled
        } else {
            Outcome::ClientGone
        });
        let metrics = self.metrics.transport(self.transport);
        metrics.open.decrement(1.0);
        metrics.ended(outcome).increment(1);
        let elapsed: Duration = self.opened.elapsed();
        tracing::info!(
            parent: &self.span,
            transport = self.transport.as_str(),
            count = self.params.count(),
            start = self.params.start(),
            interval_ms = self.params.interval_ms(),
            peer = %self.peer,
            outcome = outcome.as_str(),
            chunks = self.sent,
            elapsed_ms = elapsed.as_millis() as u64,
            "stream ended"
        );
    }
}
