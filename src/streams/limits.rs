//! The room for streams: the server-wide limit and each client's fair share. A stream holds
//! a [`Room`] from both until it ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::ClientKey;

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

/// The room left under the limits: a permit per open stream, and each client's count.
#[derive(Clone)]
pub struct Rooms {
    permits: Arc<Semaphore>,
    limits: Limits,
    per_client: Arc<PerClient>,
}

impl Rooms {
    /// Room for the streams `limits` allow.
    pub fn new(limits: Limits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.streams)),
            limits,
            per_client: Arc::default(),
        }
    }

    /// A room for one more stream of the client `key`, or why there is none.
    pub fn take(&self, key: ClientKey) -> Result<Room, Refusal> {
        let slot = match self.limits.per_client {
            0 => None,
            limit => Some(
                ClientSlot::take(&self.per_client, key, limit)
                    .ok_or(Refusal::FairShare { limit })?,
            ),
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(Refusal::Busy {
                limit: self.limits.streams,
            });
        };
        Ok(Room {
            _permit: permit,
            _slot: slot,
        })
    }

    /// What [`Rooms::take`] would refuse now for `key`, taking nothing.
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
