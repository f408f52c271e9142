//! WebTransport (`/stream/wt`): what `GET /stream/wt` tells a page, and a session's chunks
//! and control, with wtransport's client against the real server on UDP. Limits, endings
//! and the certificate's life are in `wt_ops.rs`.

use std::time::{Duration, Instant};

use chunkstream::{
    config::{Config, WebTransport},
    transport::wt::Code,
};
use sha2::Digest;
use wtransport::error::ConnectingError;

use crate::{
    helpers::{TestApp, outcome, spawn_app, spawn_app_with, wait_until},
    wt_client::{Closed, Connect, StreamEnd, WtSession},
};

/// `chunkstream_{name}{transport="wt"}`.
async fn wt_metric(app: &TestApp, name: &str) -> f64 {
    app.metric(&format!("chunkstream_{name}"), &[("transport", "wt")])
        .await
}

/// Waits (at most 1 s) for `outcome` to have been counted `n` times.
async fn counted(app: &TestApp, what: &str, n: f64) {
    wait_until(Duration::from_secs(1), what, || async {
        outcome(app, "wt", what).await == n
    })
    .await;
}

#[tokio::test]
async fn get_tells_the_session_url_on_the_udp_port_with_the_checked_parameters() {
    let app = spawn_app().await;
    let udp = app.wt.expect("WebTransport served").port();
    assert_ne!(udp, app.addr.port(), "spawn_app's UDP port is its own");
    // (query, the URL's query)
    for (query, expected) in [
        ("", "count=10&interval_ms=0&start=0"),
        (
            "count=7&start=2&interval_ms=30",
            "count=7&interval_ms=30&start=2",
        ),
        ("start=3", "count=10&interval_ms=0&start=3"),
    ] {
        let connect = Connect::get(&app, query).await;
        let url = format!("https://127.0.0.1:{udp}/stream/wt?{expected}");
        assert_eq!(connect.url, url, "{query}");
    }
    // The host is the one the request named, with the server's UDP port.
    for (host, url_host) in [
        ("localhost:8080", "localhost"),
        ("example.com", "example.com"),
        ("[::1]:3000", "[::1]"),
    ] {
        let resp = app
            .client
            .get(app.url("/stream/wt?count=1"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        let connect: Connect = resp.json().await.unwrap();
        let url = format!("https://{url_host}:{udp}/stream/wt?count=1&interval_ms=0&start=0");
        assert_eq!(connect.url, url, "{host}");
    }
}

#[tokio::test]
async fn get_with_a_bad_parameter_or_host_is_a_400_naming_it() {
    let app = spawn_app().await;
    // (query or Host header, what the error must name)
    let cases = [
        ("count=-1", None, "count"),
        ("count=abc", None, "count"),
        ("count=100000001", None, "count"),
        ("interval_ms=60001", None, "interval_ms"),
        ("count=10&start=11", None, "start"),
        ("start=x", None, "start"),
        ("count=1", Some("user@host:80"), "Host"),
        ("count=1", Some("host:port"), "Host"),
    ];
    for (query, host, names) in cases {
        let mut req = app.client.get(app.url(&format!("/stream/wt?{query}")));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query} {host:?}");
        let body: serde_json::Value = resp.json().await.expect("a JSON error");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains(names), "{query} {host:?}: {error}");
    }
    // Nothing was opened, counted or refused.
    assert_eq!(wt_metric(&app, "open_streams").await, 0.0);
    assert_eq!(outcome(&app, "wt", "rejected").await, 0.0);
}

#[tokio::test]
async fn get_is_a_404_when_webtransport_is_off() {
    let app = spawn_app_with(|c| c.webtransport = WebTransport::Off).await;
    assert_eq!(app.wt, None, "no UDP port bound");
    let resp = app.get("/stream/wt?count=1").await;
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("a JSON error");
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("--webtransport off"), "{error}");
    // The other transports are still served.
    assert_eq!(app.get("/stream/jsonl?count=1").await.status(), 200);
}

#[tokio::test]
async fn the_hash_is_the_sha256_of_the_certificate_sessions_present_and_no_other_is_trusted() {
    let app = spawn_app().await;
    let connect = Connect::get(&app, "count=1").await;
    let digests = connect.digests();
    assert_eq!(digests.len(), 1, "{connect:?}");
    let session = WtSession::connect(&connect.url, &digests)
        .await
        .expect("a session trusting the hash");
    let presented = session
        .connection
        .peer_identity()
        .expect("the server's certificate");
    let der = presented.as_slice()[0].der();
    let sha256: [u8; 32] = sha2::Sha256::digest(der).into();
    assert_eq!(sha256, digests[0]);
    drop(session);
    // Another hash is not the server's: the handshake fails (and no stream is opened).
    let refused = WtSession::connect(&connect.url, &[[0u8; 32]]).await;
    assert!(
        matches!(refused, Err(ConnectingError::ConnectionError(_))),
        "{:?}",
        refused.err()
    );
    wait_until(Duration::from_secs(1), "the first stream", || async {
        wt_metric(&app, "open_streams").await == 0.0
    })
    .await;
    let ended = outcome(&app, "wt", "completed").await + outcome(&app, "wt", "client_gone").await;
    assert_eq!(ended, 1.0, "the first session's stream, and no other");
}

#[tokio::test]
async fn with_a_configured_certificate_the_hash_list_is_empty_and_sessions_present_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let identity = wtransport::Identity::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let pem = identity.certificate_chain().as_slice()[0].to_pem();
    std::fs::write(&cert, &pem).expect("cert");
    std::fs::write(&key, identity.private_key().to_secret_pem()).expect("key");
    let configured = |c: &mut Config| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    };
    let app = spawn_app_with(configured).await;
    let connect = Connect::get(&app, "count=3").await;
    assert!(connect.hashes.is_empty(), "{connect:?}");
    // A client that trusts that certificate (as a browser trusts a real one) streams.
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_no_cert_validation()
        .build();
    let mut session = WtSession::connect_with(config, &connect.url)
        .await
        .expect("a session");
    let presented = session.connection.peer_identity().expect("a certificate");
    assert_eq!(presented.as_slice()[0].to_pem(), pem, "the configured one");
    assert_eq!(session.rest().await, (vec![0, 1, 2], StreamEnd::Finished));
}

#[tokio::test]
async fn a_session_streams_start_to_count_in_order_on_one_stream_then_finishes_it() {
    // A client that stays after the end is closed after the idle timeout (wt_ops.rs).
    let app = spawn_app_with(|c| c.idle_timeout_secs = 1).await;
    // (query, the indexes)
    let cases: [(&str, Vec<u64>); 4] = [
        ("count=300", (0..300).collect()),
        // Resume: a client that received up to 6 asks for 7 on.
        ("count=10&start=7", vec![7, 8, 9]),
        ("count=10&start=10", vec![]),
        ("count=0", vec![]),
    ];
    let mut sent = 0;
    for (i, (query, indexes)) in cases.into_iter().enumerate() {
        let mut session = WtSession::open(&app, query).await.expect("a session");
        assert_eq!(session.rest().await, (indexes.clone(), StreamEnd::Finished));
        // The client that stays is told: done, code 0.
        assert_eq!(session.closed().await, Closed::Server(0, "done".into()));
        sent += indexes.len();
        counted(&app, "completed", (i + 1) as f64).await;
    }
    assert_eq!(wt_metric(&app, "chunks_sent_total").await, sent as f64);
    assert_eq!(wt_metric(&app, "open_streams").await, 0.0);
    assert_eq!(outcome(&app, "wt", "client_gone").await, 0.0);
    // Bytes of the chunk stream are counted, unencoded.
    let bytes = app
        .metric(
            "chunkstream_bytes_sent_total",
            &[("transport", "wt"), ("encoding", "identity")],
        )
        .await;
    let expected: usize = (0..300)
        .chain(7..10)
        .map(|i| format!("{{\"index\":{i},\"text\":\"Data Chunk {i}\"}}\n").len())
        .sum();
    assert_eq!(bytes, expected as f64);
}

#[tokio::test]
async fn a_paced_session_is_open_while_it_streams() {
    let app = spawn_app().await;
    let mut session = WtSession::open(&app, "count=3&interval_ms=100")
        .await
        .expect("a session");
    assert_eq!(session.index().await, Ok(0));
    assert_eq!(wt_metric(&app, "open_streams").await, 1.0);
    assert_eq!(session.rest().await, (vec![1, 2], StreamEnd::Finished));
    drop(session);
    counted(&app, "completed", 1.0).await;
    assert_eq!(wt_metric(&app, "open_streams").await, 0.0);
}

#[tokio::test]
async fn pause_holds_the_stream_resume_goes_on_and_stop_finishes_it() {
    let app = spawn_app_with(|c| c.idle_timeout_secs = 1).await;
    let mut session = WtSession::open(&app, "count=100000&interval_ms=10")
        .await
        .expect("a session");
    assert_eq!(session.index().await, Ok(0));
    session.action("pause").await;
    // Paused: chunks_sent stops growing (the same over 20 intervals), within 2 s.
    let paused = Instant::now();
    let mut sent = wt_metric(&app, "chunks_sent_total").await;
    loop {
        assert!(
            paused.elapsed() < Duration::from_secs(2),
            "no pause: {sent}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = wt_metric(&app, "chunks_sent_total").await;
        if std::mem::replace(&mut sent, now) == now {
            break;
        }
    }
    // What was sent before the pause arrives; nothing after it.
    let mut last = 0;
    while last + 1 < sent as u64 {
        last = session
            .index()
            .await
            .expect("a chunk sent before the pause");
    }
    session.action("resume").await;
    assert_eq!(
        session.index().await,
        Ok(last + 1),
        "the next index, none lost"
    );
    // Control lines may come in pieces, with CRLF, blank lines between.
    session.send_control(b"\r\n{\"act").await;
    session.send_control(b"ion\":\"stop\"}\r\n").await;
    let (rest, end) = session.rest().await;
    assert_eq!(end, StreamEnd::Finished, "stop finishes the chunk stream");
    assert!(
        rest.iter()
            .copied()
            .eq(last + 2..last + 2 + rest.len() as u64),
        "in order to the end: {rest:?}"
    );
    assert_eq!(session.closed().await, Closed::Server(0, "stopped".into()));
    counted(&app, "stopped", 1.0).await;
    assert_eq!(outcome(&app, "wt", "completed").await, 0.0);
}

#[tokio::test]
async fn an_invalid_control_line_closes_the_session_with_code_2_and_says_why() {
    let app = spawn_app().await;
    let long = [b'x'; 5000];
    // (what the client writes, words the close reason must hold)
    let cases: [(&[u8], &str); 5] = [
        (b"{\"action\":\"jump\"}\n", "unknown variant `jump`"),
        (b"not json\n", "invalid control message"),
        (b"{\"action\":\"pause\"}\n\xff\xfe\n", "UTF-8"),
        (&long, "4096"),
        // A last line without its line feed is read when the stream finishes.
        (b"[]", "invalid control message"),
    ];
    let protocol_error = Code::ProtocolError.stream().into_inner();
    for (i, (bytes, reason)) in cases.into_iter().enumerate() {
        let mut session = WtSession::open(&app, "count=100000&interval_ms=20")
            .await
            .expect("a session");
        assert_eq!(session.index().await, Ok(0));
        session.send_control(bytes).await;
        session.finish_control().await;
        // Chunks in flight may come first; then the stream is reset with 2.
        let (_, end) = session.rest().await;
        assert_eq!(end, StreamEnd::Reset(protocol_error), "{reason}");
        let Closed::Server(code, why) = session.closed().await else {
            panic!("{reason}: not closed by the server");
        };
        assert_eq!(code, 2, "{reason}");
        assert!(why.contains(reason), "{reason}: {why}");
        counted(&app, "protocol_error", (i + 1) as f64).await;
    }
    assert_eq!(wt_metric(&app, "open_streams").await, 0.0);
}

#[tokio::test]
async fn a_bad_parameter_or_path_refuses_the_session_and_opens_no_stream() {
    let app = spawn_app().await;
    let connect = Connect::get(&app, "count=1").await;
    let digests = connect.digests();
    let base = connect.url.split_once("/stream").expect("a path").0;
    for path in [
        "/stream/wt?count=-1",
        "/stream/wt?count=abc",
        "/stream/wt?count=10&start=11",
        "/stream/wt?interval_ms=60001",
        "/stream/wtx?count=1",
        "/stream?count=1",
        "/",
    ] {
        let refused = WtSession::connect(&format!("{base}{path}"), &digests).await;
        assert!(
            matches!(refused, Err(ConnectingError::SessionRejected)),
            "{path}: {:?}",
            refused.err()
        );
    }
    assert_eq!(wt_metric(&app, "open_streams").await, 0.0);
    assert_eq!(wt_metric(&app, "chunks_sent_total").await, 0.0);
    assert_eq!(outcome(&app, "wt", "rejected").await, 0.0, "not a limit");
    // The endpoint still serves.
    let mut session = WtSession::open(&app, "count=2").await.expect("a session");
    assert_eq!(session.rest().await, (vec![0, 1], StreamEnd::Finished));
}
