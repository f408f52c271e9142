//! The room for streams: the server-wide limit, each client's fair share, and [`Streams`],
//! which opens a stream only when both have room.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    chunks::{Chunks, Peer},
    kind::{Outcome, Transport},
    metrics::Metrics,
};
use crate::{client::ClientKey, connection::Activity, generator::StreamParams, shutdown::Shutdown};

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
    /// Open streams at once from one client ([`ClientKey`]); 0: no cap.
    pub per_client: usize,
}

/// The server's streams: the room left under the limits, the shutdown every stream watches,
/// and the metrics every stream is counted in. Cloning shares them.
#[derive(Clone)]
pub struct Streams {
    permits: Arc<Semaphore>,
    limits: Limits,
    per_client: Arc<PerClient>,
    shutdown: Shutdown,
    metrics: Metrics,
}

/// Who a stream is for, and where it is written: what [`Streams::open`] needs of a request.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The key the client's fair share is counted by.
    pub key: ClientKey,
    /// The peer's address, for the log.
    pub peer: Peer,
    /// The connection the stream is written to, which tells it if the client stalled.
    pub connection: Option<Arc<Activity>>,
}

impl Streams {
    /// Room for the streams `limits` allow, until `shutdown`.
    pub fn new(limits: Limits, shutdown: Shutdown, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.streams)),
            limits,
            per_client: Arc::default(),
            shutdown,
            metrics,
        }
    }

    /// Opens a `transport` stream of `params` for `client`: the generator's chunks, counted
    /// from here to whatever end they meet. Refused (and counted as `rejected`) when the
    /// client's share or the server's limit is taken.
    pub fn open(
        &self,
        transport: Transport,
        params: StreamParams,
        to: Recipient,
    ) -> Result<Chunks, Refusal> {
        let refuse = |refusal: Refusal| {
            self.metrics
                .transport(transport)
                .ended(Outcome::Rejected)
                .increment(1);
            let peer = to.peer;
            tracing::warn!(transport = transport.as_str(), %peer, %refusal, "stream rejected");
            refusal
        };
        let slot = match self.limits.per_client {
            0 => None,
            limit => Some(
                ClientSlot::take(&self.per_client, to.key, limit)
                    .ok_or_else(|| refuse(Refusal::FairShare { limit }))?,
            ),
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(refuse(Refusal::Busy {
                limit: self.limits.streams,
            }));
        };
        Ok(Chunks::open(
            transport,
            params,
            self.shutdown.token().clone(),
            self.metrics.clone(),
            Room {
                _permit: permit,
                _slot: slot,
            },
            to,
        ))
    }

    /// What [`Streams::open`] would refuse now for `key`, without opening or counting
    /// anything (a HEAD request's answer).
    pub fn check(&self, key: ClientKey) -> Result<(), Refusal> {
        let limit = self.limits.per_client;
        if limit > 0
            && self
                .per_client
                .lock()
                .get(&key)
                .is_some_and(|&n| n >= limit)
        {
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

/// One open stream's room under the limits, given back when it is dropped.
pub struct Room {
    _permit: OwnedSemaphorePermit,
    _slot: Option<ClientSlot>,
}

/// Open streams per client, for the fair share. Only clients with open streams have an entry.
#[derive(Default)]
struct PerClient(Mutex<HashMap<ClientKey, usize>>);

impl PerClient {
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One stream's place in its client's share, given back on drop.
struct ClientSlot {
    per_client: Arc<PerClient>,
    key: ClientKey,
}

impl ClientSlot {
    /// A place in `key`'s share, unless it already holds `limit` streams.
    fn take(per_client: &Arc<PerClient>, key: ClientKey, limit: usize) -> Option<Self> {
        let mut open = per_client.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            per_client: per_client.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.per_client.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}
