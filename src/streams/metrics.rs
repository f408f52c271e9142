//! Prometheus metrics with the contract's names, kept per server (no global recorder).
//!
//! Each server owns its recorder and pre-registers one handle per transport and outcome, so
//! the hot path touches an atomic, never a map, and tests can run many servers side by side.

use std::sync::Arc;

use metrics::{Counter, Gauge, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::kind::{Encoding, Outcome, Transport};

const OPEN_STREAMS: &str = "chunkstream_open_streams";
const CHUNKS_SENT: &str = "chunkstream_chunks_sent_total";
const STREAMS: &str = "chunkstream_streams_total";
const BYTES_SENT: &str = "chunkstream_bytes_sent_total";

/// The handles of one transport.
pub struct TransportMetrics {
    /// `chunkstream_open_streams{transport}`.
    pub open: Gauge,
    /// `chunkstream_chunks_sent_total{transport}`.
    pub chunks_sent: Counter,
    /// `chunkstream_streams_total{transport, outcome}`, indexed by [`Outcome`].
    outcomes: [Counter; Outcome::ALL.len()],
    /// `chunkstream_bytes_sent_total{transport, encoding}`, indexed by [`Encoding`].
    bytes: [Counter; Encoding::ALL.len()],
}

impl TransportMetrics {
    /// The counter of streams that ended with `outcome`.
    pub fn ended(&self, outcome: Outcome) -> &Counter {
        &self.outcomes[outcome as usize]
    }

    /// The counter of stream bytes sent on the wire in `encoding`.
    pub fn bytes_sent(&self, encoding: Encoding) -> &Counter {
        &self.bytes[encoding as usize]
    }
}

/// The server's metrics: handles to update, and a handle to render them. Cloning is one
/// reference count (each stream's guard holds a clone).
#[derive(Clone)]
pub struct Metrics(Arc<Handles>);

struct Handles {
    per_transport: [TransportMetrics; Transport::ALL.len()],
    render: PrometheusHandle,
}

impl Metrics {
    /// A fresh recorder with every series of the contract registered at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let meta = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let per_transport = Transport::ALL.map(|transport| {
            let label = || Label::new("transport", transport.as_str());
            let key = |name: &'static str| Key::from_parts(name, vec![label()]);
            TransportMetrics {
                open: recorder.register_gauge(&key(OPEN_STREAMS), &meta),
                chunks_sent: recorder.register_counter(&key(CHUNKS_SENT), &meta),
                outcomes: Outcome::ALL.map(|outcome| {
                    let labels = vec![label(), Label::new("outcome", outcome.as_str())];
                    recorder.register_counter(&Key::from_parts(STREAMS, labels), &meta)
                }),
                bytes: Encoding::ALL.map(|encoding| {
                    let labels = vec![label(), Label::new("encoding", encoding.as_str())];
                    recorder.register_counter(&Key::from_parts(BYTES_SENT, labels), &meta)
                }),
            }
        });
        for m in &per_transport {
            m.open.set(0.0);
        }
        Self(Arc::new(Handles {
            per_transport,
            render: recorder.handle(),
        }))
    }

    /// The handles for `transport`.
    pub fn transport(&self, transport: Transport) -> &TransportMetrics {
        &self.0.per_transport[transport as usize]
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        self.0.render.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
