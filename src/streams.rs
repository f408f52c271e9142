//! Open streams: the limit, the shutdown signal, and a guard that accounts for each stream.
//!
//! A transport opens a [`StreamGuard`] before it answers and moves it into whatever drives
//! the stream (the response body, the WebSocket task). However the stream ends, the guard's
//! `Drop` releases the limit's permit, updates the metrics once, and logs one line.

use std::{fmt, sync::Arc, time::Duration};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Span;

use crate::{generator::StreamParams, metrics::Metrics};

/// The wire format a stream is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /stream`: chunked `text/plain`.
    Text,
    /// `GET /stream/sse`: Server-Sent Events.
    Sse,
    /// `GET /stream/ws`: WebSocket.
    Ws,
}

impl Transport {
    /// Every transport, in metric-label order.
    pub const ALL: [Transport; 3] = [Transport::Text, Transport::Sse, Transport::Ws];

    /// The `transport` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Text => "text",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// How a stream ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk was sent.
    Completed,
    /// The client went away first (the default when a guard is dropped unfinished).
    ClientGone,
    /// The server shut down.
    Shutdown,
    /// A WebSocket client sent `stop`.
    Stopped,
    /// Refused: too many open streams (503).
    Rejected,
    /// A WebSocket peer broke the protocol (close 1003/1009) or stopped answering pings.
    ProtocolError,
}

impl Outcome {
    /// Every outcome, in metric-label order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Completed,
        Outcome::ClientGone,
        Outcome::Shutdown,
        Outcome::Stopped,
        Outcome::Rejected,
        Outcome::ProtocolError,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientGone => "client_gone",
            Outcome::Shutdown => "shutdown",
            Outcome::Stopped => "stopped",
            Outcome::Rejected => "rejected",
            Outcome::ProtocolError => "protocol_error",
        }
    }
}

/// The limit on open streams was reached.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many open streams (limit {limit}); retry later")]
pub struct Busy {
    /// The configured limit.
    pub limit: usize,
}

/// What every stream shares: the limit, the shutdown token, the task tracker and metrics.
#[derive(Clone)]
pub struct Streams {
    permits: Arc<Semaphore>,
    limit: usize,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    metrics: Metrics,
}

impl Streams {
    /// Room for `limit` open streams at once.
    pub fn new(limit: usize, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            metrics,
        }
    }

    /// Opens a stream, or refuses it (counted as `rejected`) when the limit is reached.
    pub fn open(
        &self,
        transport: Transport,
        params: &StreamParams,
        peer: impl fmt::Display,
    ) -> Result<StreamGuard, Busy> {
        let metrics = self.metrics.transport(transport);
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            metrics.ended(Outcome::Rejected).increment(1);
            tracing::warn!(transport = transport.as_str(), %peer, "stream rejected: limit reached");
            return Err(Busy { limit: self.limit });
        };
        metrics.open.increment(1.0);
        let span = tracing::info_span!(
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
            metrics: self.metrics.clone(),
            outcome: None,
            sent: 0,
            opened: Instant::now(),
            span,
            _permit: permit,
        })
    }

    /// Cancelled when the server shuts down: every generator and WebSocket loop watches it.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Tracks tasks poem does not (WebSocket connections), so shutdown can wait for them.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// One open stream. Dropping it ends the stream's accounting exactly once.
pub struct StreamGuard {
    transport: Transport,
    metrics: Metrics,
    outcome: Option<Outcome>,
    sent: u64,
    opened: Instant,
    span: Span,
    _permit: OwnedSemaphorePermit,
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

    /// Says how the stream ended; without it, a dropped guard counts as `client_gone`.
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// The stream's tracing span, for the transport's own events.
    pub fn span(&self) -> &Span {
        &self.span
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::ClientGone);
        let metrics = self.metrics.transport(self.transport);
        metrics.open.decrement(1.0);
        metrics.ended(outcome).increment(1);
        let elapsed: Duration = self.opened.elapsed();
        tracing::info!(
            parent: &self.span,
            outcome = outcome.as_str(),
            chunks = self.sent,
            elapsed_ms = elapsed.as_millis() as u64,
            "stream ended"
        );
    }
}
