//! The servers chunkstream is compared with, each served by this binary on a given address.
//!
//! - [`axum_app`]: the idiomatic way (one frame per chunk, `Sse`, a WebSocket `send` per
//!   message) — what chunkstream has to beat.
//! - [`floor`]: bare hyper writing the text lines in ≤ 64 KiB frames — how fast `/stream`
//!   can go on this machine without any framework.

pub mod axum_app;
pub mod floor;

use std::time::Duration;

/// The query both baselines accept, as chunkstream's (`count`, `interval_ms`, `start`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default)]
pub struct StreamQuery {
    /// Length of the stream.
    pub count: u64,
    /// Pause between two chunks, in milliseconds.
    pub interval_ms: u64,
    /// Index of the first chunk.
    pub start: u64,
}

impl Default for StreamQuery {
    fn default() -> Self {
        Self {
            count: 10,
            interval_ms: 0,
            start: 0,
        }
    }
}

impl StreamQuery {
    /// Parses `count=…&interval_ms=…&start=…` by hand (the floor has no framework);
    /// unknown keys and unparsable values keep the default.
    pub fn parse(query: Option<&str>) -> Self {
        let mut q = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "count" => q.count = value,
                "interval_ms" => q.interval_ms = value,
                "start" => q.start = value,
                _ => {}
            }
        }
        q
    }

    /// The pause between two chunks, if any.
    pub fn interval(&self) -> Option<Duration> {
        (self.interval_ms > 0).then(|| Duration::from_millis(self.interval_ms))
    }
}
