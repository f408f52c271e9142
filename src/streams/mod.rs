//! The server's open streams: what each is ([`Transport`], [`Outcome`]), the room for them
//! ([`Streams`]: the server-wide limit and each client's fair share), the one type every
//! transport reads ([`Chunks`]: the generator's chunks for one client, then how the stream
//! ended, counted however it ends), and the [`Metrics`] they are counted in.

mod chunks;
mod kind;
mod limits;
mod metrics;

pub use self::{
    chunks::{Chunks, Next, Peer},
    kind::{Outcome, Transport},
    limits::{Limits, Recipient, Refusal, Room, Streams},
    metrics::{Metrics, TransportMetrics},
};
