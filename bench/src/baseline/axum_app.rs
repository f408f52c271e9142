//! The idiomatic axum 0.8 server: what a Rust developer writes first, and what chunkstream
//! must beat by a wide margin.
//!
//! Deliberately plain: `Body::from_stream` with one `format!`ed frame per chunk (and, for
//! JSON Lines, one serde-serialised line per chunk), `Sse` with one serde-serialised `Event`
//! per chunk, and a WebSocket `send` (write + flush) per message.
//! Served by `axum::serve`, which is hyper-util's auto (HTTP/1 + HTTP/2) builder; with
//! `--gzip`, behind tower-http's `CompressionLayer` ([`app_with_gzip`]).

use std::{convert::Infallible, net::SocketAddr};

use async_stream::stream;
use axum::{
    Router,
    body::Body,
    extract::{
        Query,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::Stream;
use serde::Serialize;

use super::StreamQuery;

/// A chunk as JSON, the idiomatic way: an owned `String` per chunk.
#[derive(Serialize)]
struct Chunk {
    index: u64,
    text: String,
}

/// The chunk generator, written once: `start..count`, paced by `interval_ms`.
fn chunks(q: StreamQuery) -> impl Stream<Item = Chunk> {
    stream! {
        let interval = q.interval();
        for index in q.start..q.count {
            if index > q.start
                && let Some(pause) = interval
            {
                tokio::time::sleep(pause).await;
            }
            yield Chunk { index, text: format!("Data Chunk {index}") };
        }
    }
}

/// The four stream routes.
pub fn app() -> Router {
    Router::new()
        .route("/stream", get(text))
        .route("/stream/sse", get(sse))
        .route("/stream/ws", get(ws))
        .route("/stream/jsonl", get(jsonl))
}

/// `GET /stream/jsonl`: one serde-serialised line per chunk.
async fn jsonl(Query(q): Query<StreamQuery>) -> Response {
    let lines = futures_util::StreamExt::map(chunks(q), |c| {
        let mut line = serde_json::to_string(&c).expect("a chunk serialises");
        line.push('\n');
        Ok::<_, Infallible>(line)
    });
    (
        [("content-type", "application/jsonl")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `GET /stream`: one `Data Chunk {i}\n` frame per chunk.
async fn text(Query(q): Query<StreamQuery>) -> Response {
    let lines = futures_util::StreamExt::map(chunks(q), |c| Ok::<_, Infallible>(c.text + "\n"));
    (
        [("content-type", "text/plain; charset=utf-8")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `GET /stream/sse`: `retry`, one `chunk` event per chunk, then `end`.
async fn sse(Query(q): Query<StreamQuery>) -> impl IntoResponse {
    let count = q.count;
    let events = stream! {
        yield Ok::<_, Infallible>(Event::default().retry(std::time::Duration::from_secs(1)));
        for await chunk in chunks(q) {
            let event = Event::default()
                .id(chunk.index.to_string())
                .event("chunk")
                .json_data(&chunk)
                .expect("a chunk serialises");
            yield Ok(event);
        }
        yield Ok(Event::default().event("end").data(format!("{{\"count\":{count}}}")));
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// `GET /stream/ws`: one text frame per chunk, sent (and flushed) one by one.
async fn ws(upgrade: WebSocketUpgrade, Query(q): Query<StreamQuery>) -> Response {
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        let mut chunks = std::pin::pin!(chunks(q));
        while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
            let json = serde_json::to_string(&chunk).expect("a chunk serialises");
            if socket.send(Message::Text(json.into())).await.is_err() {
                return;
            }
        }
        let close = CloseFrame {
            code: 1000,
            reason: "done".into(),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
    })
}

/// The same routes with tower-http's `CompressionLayer`, the idiomatic way to compress axum's
/// responses: gzip when `Accept-Encoding` asks (its default level, flate2's default backend).
/// Its default predicate leaves `text/event-stream` alone, so `/stream/sse` stays
/// uncompressed; a WebSocket's `101` has no body to compress.
pub fn app_with_gzip() -> Router {
    app().layer(tower_http::compression::CompressionLayer::new())
}

/// Serves the idiomatic axum app on `addr` until the process is killed; with `gzip`, behind
/// [`app_with_gzip`]'s `CompressionLayer`.
pub async fn serve(addr: SocketAddr, gzip: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = if gzip { app_with_gzip() } else { app() };
    axum::serve(listener, app).await?;
    Ok(())
}
