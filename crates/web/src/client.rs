//! Who is on the other end of a request: the TCP peer, or, when that peer is a proxy the
//! operator trusts (`server.trusted_proxies`), the client the proxy says it forwards for.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
pub use ipnet::IpNet;

use crate::AppState;

/// The client's address, as sign-in limits, rate limits and the audit trail count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientAddr(client_address(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// The client's address. A request from a peer that is not a trusted proxy is taken at its
/// word: its `X-Forwarded-For` and `Forwarded` headers are ignored, as anyone can write them.
/// From a trusted proxy, the hops it lists (`X-Forwarded-For`, else the `for=` of
/// `Forwarded`) are walked from the nearest: the first that is not itself a trusted proxy is
/// the client. A hop that cannot be read stops the walk at the last address known.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops a proxy lists, farthest first; `None` for one that is not an address
/// (`unknown`, an obfuscated name, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_hop(value.trim().trim_matches('"')))
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
}

/// Reads `server.trusted_proxies`: CIDR blocks (`10.0.0.0/8`) or single addresses.
pub fn parse_trusted_proxies(items: &[String]) -> Result<Vec<IpNet>, (usize, String)> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item.trim();
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    (
                        i,
                        format!("{item:?} is not a CIDR block (10.0.0.0/8) or an address"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn trusted() -> Vec<IpNet> {
        parse_trusted_proxies(&["10.0.0.0/8".into(), "2001:db8:ffff::1".into()]).unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &h, &trusted()),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &[]),
            ip("10.0.0.5"),
            "no proxy is trusted by default"
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // A client-written first hop is ignored: the load balancer appends the real peer.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &trusted()),
            ip("198.51.100.7")
        );
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7:5123"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &trusted()),
            ip("198.51.100.7")
        );
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &trusted()),
            ip("10.9.9.9"),
            "all trusted: the farthest"
        );
        let h = headers(&[("x-forwarded-for", "198.51.100.7, garbage")]);
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &trusted()),
            ip("10.0.0.5"),
            "an unreadable hop is not skipped"
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &HeaderMap::new(), &trusted()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
        )]);
        assert_eq!(
            client_address(ip("2001:db8:ffff::1"), &h, &trusted()),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_address(ip("10.0.0.5"), &h, &trusted()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn trusted_proxies_are_cidr_blocks_or_addresses() {
        let nets = parse_trusted_proxies(&["10.0.0.0/8".into(), " 192.168.1.1 ".into()]).unwrap();
        assert!(nets[1].contains(&ip("192.168.1.1")));
        assert!(!nets[1].contains(&ip("192.168.1.2")));
        let (i, e) = parse_trusted_proxies(&["10.0.0.0/8".into(), "ten".into()]).unwrap_err();
        assert_eq!(i, 1);
        assert!(e.contains("ten"), "{e}");
    }
}
