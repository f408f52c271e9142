//! The opening handshake of RFC 6455 (§4.1, §4.2.1), checked before anything is opened, so
//! that every malformed upgrade gets a 4xx naming its fault.

use poem::{
    Request,
    http::{HeaderMap, HeaderName, Version, header},
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The one version of the WebSocket protocol this server speaks (RFC 6455).
pub const VERSION: u16 = 13;

/// Why an upgrade request is not a valid opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Malformed (400): what is wrong.
    BadRequest(String),
    /// Another protocol version was asked for (426): what is wrong.
    UpgradeRequired(String),
}

/// Checks the opening handshake `req` (a HEAD if `head`: poem serves HEAD with the GET
/// operation); returns the `Sec-WebSocket-Accept` value, or what is wrong.
pub fn check(req: &Request, head: bool) -> Result<String, Refused> {
    if head {
        return Err(Refused::BadRequest(
            "a WebSocket opening handshake is a GET request, not HEAD (RFC 6455 §4.1)".into(),
        ));
    }
    if req.version() != Version::HTTP_11 {
        return Err(Refused::BadRequest(format!(
            "a WebSocket upgrade needs HTTP/1.1; this request is {:?}",
            req.version()
        )));
    }
    let headers = req.headers();
    if !lists(headers, header::UPGRADE, "websocket") {
        return Err(Refused::BadRequest(format!(
            "{} streams over a WebSocket: connect with a WebSocket client (this request is \
             not a WebSocket upgrade: header `Upgrade` does not name `websocket`)",
            req.uri().path()
        )));
    }
    if !lists(headers, header::CONNECTION, "upgrade") {
        return Err(Refused::BadRequest(
            "header `Connection` must list `Upgrade` for a WebSocket upgrade".into(),
        ));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.is_none_or(|v| v.as_bytes() != VERSION.to_string().as_bytes()) {
        let error = format!(
            "header `Sec-WebSocket-Version` ({}) must be {VERSION}, the only version this \
             server speaks",
            version.map_or("missing", |v| v.to_str().unwrap_or("not text"))
        );
        return Err(Refused::UpgradeRequired(error));
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_key(key.as_bytes()) => key,
        _ => {
            return Err(Refused::BadRequest(
                "header `Sec-WebSocket-Key` must appear once and be 16 bytes in base64 \
                 (RFC 6455 §4.1)"
                    .into(),
            ));
        }
    };
    Ok(derive_accept_key(key.as_bytes()))
}

/// Whether the comma-separated header `name` lists `token`, in any case (RFC 9110 §5.6.1).
fn lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is a `Sec-WebSocket-Key`: 16 bytes in (padded, canonical) base64.
fn is_key(key: &[u8]) -> bool {
    data_encoding::BASE64
        .decode(key)
        .is_ok_and(|nonce| nonce.len() == 16)
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderValue, Method};

    use super::*;

    /// An upgrade request with `headers` over `version`, and whether it is a HEAD.
    fn request(version: Version, head: bool, headers: &[(&'static str, &str)]) -> (Request, bool) {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri_str("/stream/ws")
            .version(version)
            .finish();
        for (name, value) in headers {
            req.headers_mut()
                .append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        (req, head)
    }

    /// The headers of a valid upgrade (RFC 6455's example key), with `name` changed to
    /// `value` (or left out when `value` is `None`).
    fn upgrade_with(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .into_iter()
        .filter_map(|(n, v)| {
            if n == name {
                value.map(|v| (n, v))
            } else {
                Some((n, v))
            }
        })
        .collect()
    }

    #[test]
    fn a_valid_handshake_is_accepted_with_the_rfc_accept_key() {
        let cases = [
            ("as RFC 6455 writes it", upgrade_with("", None)),
            (
                "Upgrade in capitals",
                upgrade_with("upgrade", Some("WEBSOCKET")),
            ),
            (
                "Upgrade capitalised",
                upgrade_with("upgrade", Some("Websocket")),
            ),
            (
                "Upgrade among others",
                upgrade_with("upgrade", Some("h2c, websocket")),
            ),
            (
                "Connection among others (Firefox)",
                upgrade_with("connection", Some("keep-alive, Upgrade")),
            ),
            (
                "Connection in lower case",
                upgrade_with("connection", Some("upgrade")),
            ),
        ];
        for (case, headers) in cases {
            let (req, head) = request(Version::HTTP_11, false, &headers);
            let accept = check(&req, head).unwrap_or_else(|err| panic!("{case}: {err:?}"));
            // RFC 6455 §1.3's worked example.
            assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "{case}");
        }
    }

    #[test]
    fn a_malformed_handshake_is_a_400_naming_the_fault() {
        let headers = upgrade_with("", None);
        // (case, request, a word the error must hold)
        let cases = [
            ("HEAD", request(Version::HTTP_11, true, &headers), "HEAD"),
            (
                "HTTP/1.0",
                request(Version::HTTP_10, false, &headers),
                "HTTP/1.1",
            ),
            (
                "no Upgrade",
                request(Version::HTTP_11, false, &upgrade_with("upgrade", None)),
                "`Upgrade`",
            ),
            (
                "another protocol",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("upgrade", Some("h2c")),
                ),
                "`Upgrade`",
            ),
            (
                "no Connection: Upgrade",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("connection", Some("keep-alive")),
                ),
                "`Connection`",
            ),
            (
                "no key",
                request(
                    Version::HTTP_11,
                    false,
                    &upgrade_with("sec-websocket-key", None),
                ),
                "`Sec-WebSocket-Key`",
            ),
        ];
        let bad_keys = [
            "",
            "not base64!",
            // 15 and 17 bytes.
            "dGhlIHNhbXBsZSBub25j",
            "dGhlIHNhbXBsZSBub25jZSE=",
            // 16 bytes, but unpadded, or with stray bits in the last character.
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZR==",
        ];
        let bad_keys = bad_keys.into_iter().map(|key| {
            let headers = upgrade_with("sec-websocket-key", Some(key));
            (
                key,
                request(Version::HTTP_11, false, &headers),
                "`Sec-WebSocket-Key`",
            )
        });
        let mut two_keys = headers.clone();
        two_keys.push(("sec-websocket-key", "AQIDBAUGBwgJCgsMDQ4PEA=="));
        let two_keys = (
            "two keys",
            request(Version::HTTP_11, false, &two_keys),
            "once",
        );
        for (case, (req, head), needle) in cases.into_iter().chain(bad_keys).chain([two_keys]) {
            match check(&req, head) {
                Err(Refused::BadRequest(error)) => {
                    assert!(error.contains(needle), "{case}: {error}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn another_protocol_version_is_a_426_naming_13() {
        for version in [Some("8"), Some("12"), Some("13, 8"), Some(""), None] {
            let headers = upgrade_with("sec-websocket-version", version);
            let (req, head) = request(Version::HTTP_11, false, &headers);
            match check(&req, head) {
                Err(Refused::UpgradeRequired(error)) => {
                    assert!(
                        error.contains("`Sec-WebSocket-Version`"),
                        "{version:?}: {error}"
                    );
                }
                other => panic!("{version:?}: {other:?}"),
            }
        }
    }
}
