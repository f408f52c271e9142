//! Who a request comes from: its peer, or, behind a trusted reverse proxy, the client the
//! proxy forwards for.
//!
//! `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` are written by whoever
//! sends the request, so they are believed only from the peers listed with
//! `--trusted-proxy`; from anyone else they are ignored.

use std::net::IpAddr;

use poem::http::HeaderMap;

/// The reverse proxies whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    /// Trusts exactly `proxies`.
    pub fn new(proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        Self(proxies.into_iter().map(|ip| ip.to_canonical()).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The request from `peer` with `headers`, as far as forwarding goes.
    pub fn client<'a>(&self, peer: IpAddr, headers: &'a HeaderMap) -> Client<'a> {
        if !self.trusts(peer) {
            return Client {
                addr: peer.to_canonical(),
                forwarded: None,
            };
        }
        Client {
            addr: self.forwarded_for(headers).unwrap_or(peer).to_canonical(),
            forwarded: Some(headers),
        }
    }

    /// The rightmost address of `X-Forwarded-For` that is not a trusted proxy: each proxy
    /// appends the address it received the request from, so everything left of that is the
    /// client's own say.
    fn forwarded_for(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or_default().rsplit(','));
        for hop in hops.map(str::trim).filter(|hop| !hop.is_empty()) {
            let ip = hop.parse::<IpAddr>().ok()?;
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        None
    }
}

/// A request's client: its address, and the forwarded headers that may be believed.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's address (the peer's, unless a trusted proxy forwarded another).
    pub addr: IpAddr,
    /// The headers, when they came from a trusted proxy.
    forwarded: Option<&'a HeaderMap>,
}

impl Client<'_> {
    /// The first value of a forwarded header (`x-forwarded-host`, `x-forwarded-proto`), if
    /// a trusted proxy sent it.
    pub fn forwarded(&self, name: &str) -> Option<&str> {
        self.forwarded?
            .get(name)?
            .to_str()
            .ok()?
            .split(',')
            .next()
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// The key the client's fair share of streams is counted by.
    pub fn key(&self) -> ClientKey {
        ClientKey::of(self.addr)
    }
}

/// Who counts as one client for the fair share of streams: an IPv4 address, or an IPv6 /64
/// (one site's or one host's addresses, which a single client can rotate through freely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl ClientKey {
    /// The key of the client at `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                ClientKey::V6(prefix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    /// Request headers, as `(name, value)` pairs.
    type Pairs<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Pairs<'_>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::new([ip("127.0.0.1"), ip("10.0.0.2")]);
        // (case, peer, headers, client)
        let cases: &[(&str, &str, Pairs<'_>, &str)] = &[
            ("no header", "127.0.0.1", &[], "127.0.0.1"),
            (
                "untrusted peer",
                "192.0.2.9",
                &[("x-forwarded-for", "198.51.100.1")],
                "192.0.2.9",
            ),
            (
                "one proxy",
                "127.0.0.1",
                &[("x-forwarded-for", "198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "the client's own say is left of the last untrusted hop",
                "127.0.0.1",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "a chain of trusted proxies",
                "127.0.0.1",
                &[("x-forwarded-for", "198.51.100.1, 10.0.0.2")],
                "198.51.100.1",
            ),
            (
                "two headers read as one list",
                "127.0.0.1",
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.1, 10.0.0.2"),
                ],
                "198.51.100.1",
            ),
            (
                "garbage where the client should be",
                "127.0.0.1",
                &[("x-forwarded-for", "198.51.100.1, not-an-ip")],
                "127.0.0.1",
            ),
            (
                "every hop trusted",
                "127.0.0.1",
                &[("x-forwarded-for", "10.0.0.2")],
                "127.0.0.1",
            ),
            (
                "IPv6 client",
                "127.0.0.1",
                &[("x-forwarded-for", "2001:db8::7")],
                "2001:db8::7",
            ),
            (
                "IPv4-mapped peer",
                "::ffff:127.0.0.1",
                &[("x-forwarded-for", "198.51.100.1")],
                "198.51.100.1",
            ),
        ];
        for (case, peer, pairs, client) in cases {
            let headers = headers(pairs);
            let got = trusted.client(ip(peer), &headers).addr;
            assert_eq!(got, ip(client), "{case}");
        }
    }

    #[test]
    fn forwarded_host_and_proto_need_a_trusted_proxy() {
        let trusted = TrustedProxies::new([ip("127.0.0.1")]);
        let headers = headers(&[
            ("x-forwarded-host", "stream.example.com, inner"),
            ("x-forwarded-proto", "https"),
        ]);
        let via_proxy = trusted.client(ip("127.0.0.1"), &headers);
        assert_eq!(
            via_proxy.forwarded("x-forwarded-host"),
            Some("stream.example.com")
        );
        assert_eq!(via_proxy.forwarded("x-forwarded-proto"), Some("https"));
        let direct = trusted.client(ip("192.0.2.9"), &headers);
        assert_eq!(direct.forwarded("x-forwarded-host"), None);
        assert_eq!(direct.forwarded("x-forwarded-proto"), None);
    }

    #[test]
    fn one_client_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(
            ClientKey::of(ip("192.0.2.1")),
            ClientKey::of(ip("::ffff:192.0.2.1"))
        );
        assert_ne!(
            ClientKey::of(ip("192.0.2.1")),
            ClientKey::of(ip("192.0.2.2"))
        );
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
    }
}
