//! The page under a path prefix: nginx mounts a server at `/demo/` (a config this test
//! writes, not `deploy/`'s), and the page at `/demo/` streams on every transport, its
//! relative URLs resolving under the prefix.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use super::TRANSPORTS;
use super::harness::{Options, SOON, free_port, with_browser_at};
use crate::helpers::{Process, needs, spawn_app, wait_until};
use crate::scaleout::nginx_binary;

/// nginx on `port`, passing `/demo/…` to `upstream` as `/…`, as a site that mounts the demo
/// among other things would. `Host` is the browser's, so that the WebSocket Origin check
/// sees a same-origin upgrade.
fn config(port: u16, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log logs/access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 404; }}
        location /demo/ {{
            proxy_pass http://{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

/// nginx mounting a server at `/demo/`, on a free port, in its own folder.
pub struct PrefixProxy {
    /// `http://127.0.0.1:port/demo/`.
    pub base: String,
    /// nginx's folder (its `logs/access.log` says what the browser asked for).
    pub dir: PathBuf,
    _nginx: Process,
}

impl PrefixProxy {
    /// nginx in the folder `name` passing `/demo/…` to `upstream`, once it does; `None` (the
    /// test skipped, saying why) without nginx, unless `CI` is set.
    pub async fn start(name: &str, upstream: std::net::SocketAddr) -> Option<Self> {
        let installed = Command::new(nginx_binary())
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !needs("nginx", installed) {
            return None;
        }
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("nginx's folders");
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(port, upstream)).expect("write the config");
        let nginx = Process(
            Command::new(nginx_binary())
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .args(["-e", "stderr", "-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx"),
        );
        let base = format!("http://127.0.0.1:{port}/demo/");
        let health = format!("{base}healthz");
        wait_until(
            Duration::from_secs(10),
            "nginx to pass /demo/ on",
            || async { reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) },
        )
        .await;
        Some(Self {
            base,
            dir,
            _nginx: nginx,
        })
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/access.log")).expect("nginx's log")
    }
}

#[tokio::test]
async fn the_page_under_a_path_prefix_streams_on_every_transport_in_the_browser() {
    let app = spawn_app().await;
    let Some(proxy) = PrefixProxy::start("nginx-prefix", app.addr).await else {
        return;
    };
    let base = proxy.base.clone();

    let ran = with_browser_at(&base, "prefix", Options::default(), async |b| {
        b.open_page().await;
        // Each transport alone, then all at once.
        let count = 20;
        for mode in TRANSPORTS.iter().copied().chain(["race"]) {
            b.choose(mode, count, 20).await;
            b.click("#start").await;
            for transport in TRANSPORTS.iter().filter(|&&t| mode == "race" || mode == t) {
                b.wait_done(transport, count, SOON).await;
            }
        }
        b.screenshot("prefix").await;
        // The links resolve under the prefix too.
        let hrefs = b
            .js(r#"return [...document.querySelectorAll("nav a")].map((a) => a.href);"#)
            .await;
        assert_eq!(
            hrefs,
            serde_json::json!([format!("{base}docs"), format!("{base}openapi.json")])
        );
        b.assert_no_console_errors("streaming under /demo/").await;
    })
    .await;
    if !ran {
        // What follows checks what the browser's streams did.
        return;
    }

    // Every stream reached the server through the prefix: two of each transport (alone,
    // then in the race), all completed.
    for transport in TRANSPORTS {
        let completed = crate::helpers::outcome(&app, transport, "completed").await;
        assert_eq!(completed, 2.0, "{transport}");
    }
    let log = proxy.access_log();
    for route in [
        "/demo/stream?",
        "/demo/stream/sse?",
        "/demo/stream/ws?",
        "/demo/stream/jsonl?",
    ] {
        assert!(log.contains(route), "no {route} in nginx's log:\n{log}");
    }
}
