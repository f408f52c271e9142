//! Web origins (`scheme://host[:port]`), and the check against cross-site WebSocket hijacking.
//!
//! One normalisation serves both sides of the comparison: the `--allowed-origin` values when
//! the configuration is parsed, and a browser's `Origin` header and the server's own origin
//! when an upgrade is checked. So `https://Example.com:443/` and `https://example.com` are
//! the same origin wherever they are written.

use std::fmt;

use poem::http::{HeaderMap, header};

/// An origin in canonical form: lower-case, no trailing slash, no default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

/// Why a text is not an origin; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOrigin {
    /// Neither `http://` nor `https://`.
    #[error("`{0}` is not an origin: it must start with http:// or https://")]
    Scheme(String),
    /// No host, or something after `host[:port]` (a path, a query, user info).
    #[error("`{0}` is not an origin: expected scheme://host[:port], nothing after")]
    Shape(String),
    /// A port that is not a number from 1 to 65535.
    #[error("`{0}` is not an origin: its port must be a number from 1 to 65535")]
    Port(String),
}

impl Origin {
    /// Parses `raw` as browsers send it in `Origin` (a trailing slash is tolerated, as
    /// people write it in configuration).
    pub fn parse(raw: &str) -> Result<Self, BadOrigin> {
        let origin = raw.trim().to_ascii_lowercase();
        let (scheme, authority) = origin
            .split_once("://")
            .ok_or_else(|| BadOrigin::Scheme(raw.to_owned()))?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(BadOrigin::Scheme(raw.to_owned())),
        };
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(BadOrigin::Shape(raw.to_owned()));
        }
        let (host, port) = split_port(authority);
        if host.is_empty() {
            return Err(BadOrigin::Shape(raw.to_owned()));
        }
        let Some(port) = port else {
            return Ok(Self(format!("{scheme}://{host}")));
        };
        let number = match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => number,
            _ => return Err(BadOrigin::Port(raw.to_owned())),
        };
        if number == default_port {
            Ok(Self(format!("{scheme}://{host}")))
        } else {
            Ok(Self(format!("{scheme}://{host}:{number}")))
        }
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host` and `port` of `host[:port]`; an IPv6 literal keeps its brackets (`[::1]:3000`).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':') {
        Some(colon) => {
            let colon = host_end + colon;
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        None => (authority, None),
    }
}

/// What a trusted reverse proxy says the browser saw (`X-Forwarded-Host`,
/// `X-Forwarded-Proto`); empty when the request did not come through one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forwarded<'a> {
    /// `X-Forwarded-Host`.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Proto`.
    pub proto: Option<&'a str>,
}

/// Refuses a browser upgrade from a foreign site; the error says which origin and why.
///
/// A request without `Origin` is not from a browser and passes. Otherwise the origin must
/// be the server's own (the request's scheme and `Host`; behind a trusted reverse proxy,
/// its `X-Forwarded-Proto` and `X-Forwarded-Host`, what the browser saw) or one of
/// `allowed`.
pub fn check(
    headers: &HeaderMap,
    forwarded: Forwarded<'_>,
    allowed: &[String],
) -> Result<(), String> {
    let Some(raw) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let refused = || {
        format!(
            "header `Origin` ({}) is not this server's origin nor an allowed origin",
            raw.to_str().unwrap_or("not text")
        )
    };
    let origin = raw
        .to_str()
        .ok()
        .and_then(|raw| Origin::parse(raw).ok())
        .ok_or_else(refused)?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = [
        host.map(|host| ("http", host)),
        forwarded
            .host
            .or(host)
            .map(|host| (forwarded.proto.unwrap_or("http"), host)),
    ];
    let same = |raw: &str| Origin::parse(raw).is_ok_and(|other| other == origin);
    let is_own = own
        .into_iter()
        .flatten()
        .any(|(scheme, host)| same(&format!("{scheme}://{host}")));
    // The configuration holds canonical origins, but one built in code may not: compare
    // canonical forms.
    let is_allowed = || allowed.iter().any(|allowed| same(allowed));
    if is_own || is_allowed() {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    /// Request headers, as `(name, value)` pairs.
    type Pairs<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Pairs<'_>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    #[test]
    fn origins_are_normalised_to_one_form() {
        let cases = [
            ("http://localhost:3000", "http://localhost:3000"),
            ("HTTPS://Example.COM/", "https://example.com"),
            ("https://example.com:443", "https://example.com"),
            ("http://example.com:80", "http://example.com"),
            ("http://example.com:443", "http://example.com:443"),
            ("https://example.com:80", "https://example.com:80"),
            ("  http://a.example  ", "http://a.example"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://[::1]:80", "http://[::1]"),
            ("http://[::1]", "http://[::1]"),
            ("http://example.com:0080", "http://example.com"),
            ("http://example.com:08080", "http://example.com:8080"),
        ];
        for (raw, canonical) in cases {
            let origin = Origin::parse(raw).unwrap_or_else(|err| panic!("{raw}: {err}"));
            assert_eq!(origin.as_str(), canonical, "{raw}");
        }
    }

    #[test]
    fn what_is_not_an_origin_is_refused_with_a_reason() {
        let cases = [
            ("example.com", "http:// or https://"),
            ("ftp://a.com", "http:// or https://"),
            ("null", "http:// or https://"),
            ("", "http:// or https://"),
            ("https://", "nothing after"),
            ("https://a.com/path", "nothing after"),
            ("https://a.com?q", "nothing after"),
            ("https://a.com//", "nothing after"),
            ("https://user@a.com", "nothing after"),
            ("https://:443", "nothing after"),
            ("http://a.com:", "port"),
            ("http://a.com:0", "port"),
            ("http://a.com:65536", "port"),
            ("http://a.com:+80", "port"),
            ("http://a.com:http", "port"),
        ];
        for (raw, reason) in cases {
            let err = Origin::parse(raw).expect_err(raw).to_string();
            assert!(
                err.contains(reason) && err.contains(&format!("`{raw}`")),
                "{raw}: {err}"
            );
        }
    }

    #[test]
    fn origins_are_checked() {
        let allowed = [
            "https://app.example.com".to_owned(),
            // Not canonical, as a configuration built in code may hold it.
            "HTTPS://Other.example.com:443/".to_owned(),
        ];
        // (case, headers, allowed?)
        let cases: &[(&str, Pairs<'_>, bool)] = &[
            ("no origin", &[("host", "localhost:3000")], true),
            (
                "same origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://localhost:3000"),
                ],
                true,
            ),
            (
                "same origin, upper case",
                &[
                    ("host", "LocalHost:3000"),
                    ("origin", "HTTP://localhost:3000"),
                ],
                true,
            ),
            (
                "default port in Host",
                &[("host", "example.com:80"), ("origin", "http://example.com")],
                true,
            ),
            (
                "default port in Origin",
                &[("host", "example.com"), ("origin", "http://example.com:80")],
                true,
            ),
            (
                "allowed origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://app.example.com"),
                ],
                true,
            ),
            (
                "allowed origin, configured in another form",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://other.example.com"),
                ],
                true,
            ),
            (
                "behind a TLS proxy",
                &[
                    ("host", "10.0.0.5:3000"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "stream.example.com"),
                    ("origin", "https://stream.example.com"),
                ],
                true,
            ),
            (
                "behind a TLS proxy, default port in the forwarded host",
                &[
                    ("host", "10.0.0.5:3000"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "stream.example.com:443"),
                    ("origin", "https://stream.example.com"),
                ],
                true,
            ),
            (
                "proxy keeps the host",
                &[
                    ("host", "stream.example.com"),
                    ("x-forwarded-proto", "https"),
                    ("origin", "https://stream.example.com"),
                ],
                true,
            ),
            (
                "foreign origin",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://evil.example"),
                ],
                false,
            ),
            (
                "other port",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://localhost:8080"),
                ],
                false,
            ),
            (
                "other scheme",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://localhost:3000"),
                ],
                false,
            ),
            (
                "null origin",
                &[("host", "localhost:3000"), ("origin", "null")],
                false,
            ),
            (
                "empty origin",
                &[("host", "localhost:3000"), ("origin", "")],
                false,
            ),
            (
                "an origin with a path",
                &[
                    ("host", "localhost:3000"),
                    ("origin", "http://localhost:3000/page"),
                ],
                false,
            ),
            ("no host", &[("origin", "http://localhost:3000")], false),
        ];
        for (case, pairs, ok) in cases {
            // As if every request came through a trusted proxy: its forwarded headers count.
            let headers = headers(pairs);
            let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let forwarded = Forwarded {
                host: value("x-forwarded-host"),
                proto: value("x-forwarded-proto"),
            };
            let result = check(&headers, forwarded, &allowed);
            assert_eq!(result.is_ok(), *ok, "{case}: {result:?}");
            if let Err(error) = result {
                let origin = value("origin").unwrap_or_default();
                assert!(error.contains("`Origin`"), "{case}: {error}");
                assert!(error.contains(&format!("({origin})")), "{case}: {error}");
            }
        }
    }

    #[test]
    fn forwarded_headers_count_only_through_a_trusted_proxy() {
        let headers = headers(&[
            ("host", "10.0.0.5:3000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "stream.example.com"),
            ("origin", "https://stream.example.com"),
        ]);
        // From an untrusted peer the api passes no forwarded values.
        let result = check(&headers, Forwarded::default(), &[]);
        assert!(result.is_err(), "{result:?}");
    }
}
