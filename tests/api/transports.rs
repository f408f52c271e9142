//! What every transport does alike. Each test iterates `Transport::ALL`, the one list of
//! transports: a client that leaves stops its generator, shutdown ends every stream and
//! counts it once, and past a limit every transport is refused the same way.

use std::time::{Duration, Instant};

use chunkstream::{config::Config, streams::Transport, transport::wt::Code};

use crate::{
    clients::{Ended, StreamClient},
    helpers::{TestApp, outcome, series, spawn_app, spawn_app_with, wait_until},
    wt_client::StreamEnd,
};

/// `chunkstream_open_streams{transport}`.
async fn open_streams(app: &TestApp, transport: Transport) -> f64 {
    let labels = [("transport", transport.as_str())];
    app.metric("chunkstream_open_streams", &labels).await
}

#[tokio::test]
async fn a_client_that_leaves_stops_its_generator_on_every_transport() {
    let app = spawn_app().await;
    for transport in Transport::ALL {
        let name = transport.as_str();
        let labels = [("transport", name)];
        // A paced stream (the generator waits between chunks) and a flat-out one (it never
        // waits: only the client going away can stop it).
        for query in ["count=100000&interval_ms=20", "count=100000000"] {
            let mut client = StreamClient::open(&app, transport, query)
                .await
                .unwrap_or_else(|refused| panic!("{name}: {refused:?}"));
            client.first().await;
            assert_eq!(open_streams(&app, transport).await, 1.0, "{name} {query}");
            let left = Instant::now();
            drop(client);
            wait_until(Duration::from_secs(1), "the stream to close", || async {
                open_streams(&app, transport).await == 0.0
            })
            .await;
            assert!(left.elapsed() < Duration::from_secs(1));
            let sent = app.metric("chunkstream_chunks_sent_total", &labels).await;
            // Long enough for the paced generator to make ten more chunks, were it alive.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let later = app.metric("chunkstream_chunks_sent_total", &labels).await;
            assert_eq!(later, sent, "{name} {query}: chunks still being sent");
        }
        assert_eq!(outcome(&app, name, "client_gone").await, 2.0, "{name}");
    }
}

#[tokio::test]
async fn shutdown_ends_every_open_stream_at_once_and_counts_each_once() {
    let app = spawn_app().await;
    let per_transport = 40;
    let mut clients = Vec::new();
    for transport in Transport::ALL {
        for _ in 0..per_transport {
            let mut client = StreamClient::open(&app, transport, "count=1000&interval_ms=1000")
                .await
                .unwrap_or_else(|refused| panic!("{transport:?}: {refused:?}"));
            client.first().await;
            clients.push((transport, client));
        }
        let open = open_streams(&app, transport).await;
        assert_eq!(open, per_transport as f64, "{transport:?} streams opened");
    }

    let recorder = app.recorder.clone();
    let asked = Instant::now();
    let server = tokio::spawn(app.shutdown());
    for (transport, client) in clients {
        match (transport, client.end().await) {
            // 1001: going away; a client may reconnect elsewhere.
            (Transport::Ws, ended) => assert_eq!(ended, Ended::Closed(Some(1001))),
            // The chunk stream reset with 1, going away (HTTP/3-encoded on the wire).
            (Transport::Wt, ended) => {
                let going_away = Code::GoingAway.stream().into_inner();
                assert_eq!(ended, Ended::Session(StreamEnd::Reset(going_away)));
            }
            // No SSE `end`: a resuming client must not think the stream complete.
            (_, Ended::Body(rest)) => {
                let rest = String::from_utf8_lossy(&rest);
                assert!(!rest.contains("end"), "{transport:?}: {rest:?}");
            }
            (_, ended) => panic!("{transport:?}: {ended:?}"),
        }
    }
    server.await.unwrap().expect("clean stop");
    let elapsed = asked.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    // Each stream counted once, as shut down; the outcomes add up to the streams opened.
    let all = series(&recorder.render());
    for transport in Transport::ALL {
        let t = transport.as_str();
        let of_transport = format!("chunkstream_streams_total{{transport=\"{t}\",");
        let ended: f64 = all
            .iter()
            .filter(|(key, _)| key.starts_with(&of_transport))
            .map(|(_, value)| value)
            .sum();
        let shutdown = format!("{of_transport}outcome=\"shutdown\"}}");
        assert_eq!(all[&shutdown], per_transport as f64, "{t}: {all:?}");
        assert_eq!(ended, per_transport as f64, "{t}: {all:?}");
        assert_eq!(
            all[&format!("chunkstream_open_streams{{transport=\"{t}\"}}")],
            0.0
        );
    }
}

#[tokio::test]
async fn past_a_limit_every_transport_is_refused_with_retry_after_until_room_is_back() {
    // (limit, configuration, status, the flag the error names)
    type Case = (&'static str, fn(&mut Config), u16, &'static str);
    let cases: [Case; 2] = [
        ("the server's", |c| c.max_streams = 2, 503, "--max-streams)"),
        (
            "the client's share",
            |c| c.max_streams_per_client = 2,
            429,
            "--max-streams-per-client)",
        ),
    ];
    for (limit, configure, status, flag) in cases {
        let app = spawn_app_with(configure).await;
        let mut held = Vec::new();
        for transport in [Transport::Text, Transport::Ws] {
            let query = "count=100&interval_ms=1000";
            let mut client = StreamClient::open(&app, transport, query).await.unwrap();
            client.first().await;
            held.push(client);
        }
        for transport in Transport::ALL {
            let name = transport.as_str();
            let refused = match StreamClient::open(&app, transport, "count=1").await {
                Err(refused) => refused,
                Ok(_) => panic!("{limit}: {name} was let in"),
            };
            assert_eq!(refused.status, status, "{limit}: {name}");
            assert_eq!(refused.retry_after.as_deref(), Some("1"), "{limit}: {name}");
            assert!(
                refused.error.contains(flag),
                "{limit}: {name}: {}",
                refused.error
            );
            assert_eq!(
                outcome(&app, name, "rejected").await,
                1.0,
                "{limit}: {name}"
            );
        }
        // Health and metrics are not streams: they still answer.
        assert_eq!(app.get("/healthz").await.status(), 200);
        // Closing one stream gives its room back, to any transport.
        held.pop();
        wait_until(Duration::from_secs(1), "room for a stream", || async {
            app.get("/stream/jsonl?count=1").await.status() == 200
        })
        .await;
    }
}
