//! The server's open streams: what each is ([`Transport`], [`Outcome`]), the room for them
//! (the server-wide limit and each client's fair share), the one type every transport reads
//! ([`Chunks`]: the generator's chunks for one client, then how the stream ended, counted
//! however it ends), and the [`Metrics`] they are counted in. [`Streams`] opens them.

mod chunks;
mod kind;
mod limits;
mod metrics;

use crate::{client::ClientKey, generator::StreamParams, shutdown::Shutdown};

pub use self::{
    chunks::{Chunks, Next, Peer, Recipient},
    kind::{Encoding, Outcome, Transport},
    limits::{Limits, Refusal, Room, Rooms},
    metrics::{Metrics, TransportMetrics},
};

/// The server's streams: the room left under the limits, the shutdown every stream watches,
/// and the metrics every stream is counted in. Cloning shares them.
#[derive(Clone)]
pub struct Streams {
    rooms: Rooms,
    shutdown: Shutdown,
    metrics: Metrics,
}

impl Streams {
    /// Room for the streams `limits` allow, until `shutdown`.
    pub fn new(limits: Limits, shutdown: Shutdown, metrics: Metrics) -> Self {
        Self {
            rooms: Rooms::new(limits),
            shutdown,
            metrics,
        }
    }

    /// Opens a `transport` stream of `params` for `to`: the generator's chunks, counted from
    /// here to whatever end they meet. Refused (and counted as `rejected`) when the client's
    /// share or the server's limit is taken.
    pub fn open(
        &self,
        transport: Transport,
        params: StreamParams,
        to: Recipient,
    ) -> Result<Chunks, Refusal> {
        let room = self.rooms.take(to.key).inspect_err(|refusal| {
            self.metrics
                .transport(transport)
                .ended(Outcome::Rejected)
                .increment(1);
            let peer = to.peer;
            tracing::warn!(transport = transport.as_str(), %peer, %refusal, "stream rejected");
        })?;
        let shutdown = self.shutdown.token().clone();
        Ok(Chunks::open(
            transport,
            params,
            shutdown,
            self.metrics.clone(),
            room,
            to,
        ))
    }

    /// What [`Streams::open`] would refuse now for `key`, without opening or counting
    /// anything (a HEAD request's answer).
    pub fn check(&self, key: ClientKey) -> Result<(), Refusal> {
        self.rooms.check(key)
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
