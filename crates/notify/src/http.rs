//! The one HTTP client for requests to URLs that users configure (webhooks).
//!
//! A webhook URL is chosen by whoever may edit channels, so without a guard it reaches
//! whatever the server can: the instance metadata service (169.254.169.254, with the
//! instance role's credentials), databases on the private network, admin ports on loopback.
//! The guard refuses every address that is not public, in two places:
//!
//! - a URL whose host is a literal IP address is checked before anything is sent
//!   ([`HttpClient::check_url`]): the resolver is not asked about literal addresses;
//! - a host name is resolved by [`GuardedResolver`], which fails if any address it resolves
//!   to is not public, so the connection is made to an address that was checked (no gap
//!   for a DNS answer to change between check and connect).
//!
//! Redirects are not followed (a public URL could redirect to a private one), proxies from
//! the environment are not used (the proxy would resolve the name, unchecked), and every
//! request has a 5 s connect and 10 s total timeout. `allow_private = true` (the setting
//! `notify.allow_private_addresses`) turns the guard off, for tests and for receivers on
//! the private network.

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Url};

/// Time to set up a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, response body included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A request refused because its host is, or resolves to, an address that is not public.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused: {host} resolves to a private address (set notify.allow_private_addresses to allow)"
)]
pub struct Refused {
    pub host: String,
    /// The address that is not public.
    pub address: IpAddr,
}

/// Why a request was not sent.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// The SSRF-guarded HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpClient {
    /// A client that refuses addresses that are not public, unless `allow_private`.
    pub fn new(allow_private: bool) -> Result<HttpClient, HttpError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("opsdesk/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder
            .build()
            .map_err(|e| HttpError::Build(e.to_string()))?;
        Ok(HttpClient {
            client,
            allow_private,
        })
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks what can be checked before sending: an http(s) URL with a host, and a literal
    /// IP host that is public (unless private addresses are allowed).
    pub fn check_url(&self, url: &Url) -> Result<(), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::BadUrl(format!(
                "not an http(s) URL: scheme {}",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            None => return Err(HttpError::BadUrl("the URL has no host".to_owned())),
            Some(url::Host::Domain(_)) => return Ok(()),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        if self.allow_private || is_public(ip) {
            return Ok(());
        }
        Err(HttpError::Refused(Refused {
            host: url.host_str().unwrap_or_default().to_owned(),
            address: ip,
        }))
    }

    /// A request to `url`, once [`HttpClient::check_url`] passed.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, HttpError> {
        let url = Url::parse(url).map_err(|e| HttpError::BadUrl(format!("not a URL: {e}")))?;
        self.check_url(&url)?;
        Ok(self.client.request(method, url))
    }

    /// A POST to `url`, once [`HttpClient::check_url`] passed.
    pub fn post(&self, url: &str) -> Result<RequestBuilder, HttpError> {
        self.request(Method::POST, url)
    }
}

/// The refusal that made a request fail, if the guard refused it while connecting.
pub fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

/// Resolves host names with the system resolver and fails if any address is not public.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl GuardedResolver {
    /// The addresses of `host`, all public, or why not.
    pub async fn lookup(
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if let Some(private) = addrs.iter().map(SocketAddr::ip).find(|ip| !is_public(*ip)) {
            return Err(Box::new(Refused {
                host: host.to_owned(),
                address: private,
            }));
        }
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address").into());
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = GuardedResolver::lookup(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918), shared
/// (CGNAT, RFC 6598), link-local (the metadata service among them), unique-local IPv6,
/// unspecified, multicast, broadcast or otherwise reserved. IPv4 addresses inside IPv6
/// (mapped, compatible, NAT64) are judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = ip.is_unspecified()
        || a == 0 // "this network", 0.0.0.0/8
        || ip.is_loopback() // 127.0.0.0/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16: instance metadata
        || (a == 100 && (64..128).contains(&b)) // 100.64/10: CGNAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24: IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15: benchmarking
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || ip.is_multicast() // 224/4
        || a >= 240; // 240/4 reserved, and 255.255.255.255 broadcast
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // ::a.b.c.d (deprecated IPv4-compatible) and 64:ff9b::a.b.c.d (NAT64).
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified()
        || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast() // ff00::/8
        || (segments[0] & 0xfe00) == 0xfc00 // fc00::/7: unique local
        || (segments[0] & 0xffc0) == 0xfe80 // fe80::/10: link local
        || (segments[0] & 0xffc0) == 0xfec0 // fec0::/10: site local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // 2001:db8::/32: documentation
        || segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]; // 100::/64: discard
    !reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_private_range_is_refused() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
        ] {
            assert!(!is_public(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "52.94.76.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "2600:1f18::1",
            "2a00:1450:4001::200e",
            "::ffff:52.94.76.1",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} must be allowed");
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn literal_ip_urls_are_checked_before_sending() {
        let guarded = HttpClient::new(false).unwrap();
        for s in [
            "http://127.0.0.1:8080/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.1/",
            "https://10.0.0.5/",
        ] {
            let err = guarded.check_url(&url(s)).unwrap_err();
            assert!(matches!(err, HttpError::Refused(_)), "{s}: {err}");
            assert!(
                err.to_string().ends_with(
                    "resolves to a private address (set notify.allow_private_addresses to allow)"
                ),
                "{err}"
            );
        }
        let err = guarded
            .check_url(&url("http://169.254.169.254/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused: 169.254.169.254 resolves to a private address \
             (set notify.allow_private_addresses to allow)"
        );
        assert!(guarded.check_url(&url("https://52.94.76.1/hook")).is_ok());
        assert!(guarded
            .check_url(&url("https://hooks.example.com/"))
            .is_ok());
        assert!(matches!(
            guarded.check_url(&url("file:///etc/passwd")),
            Err(HttpError::BadUrl(_))
        ));
        assert!(matches!(
            guarded.post("not a url"),
            Err(HttpError::BadUrl(_))
        ));
    }

    #[test]
    fn allow_private_turns_the_guard_off() {
        let open = HttpClient::new(true).unwrap();
        assert!(open.allows_private());
        assert!(open.check_url(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(open.check_url(&url("http://169.254.169.254/")).is_ok());
        assert!(open.post("http://[::1]:9/").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let err = GuardedResolver::lookup("localhost").await.unwrap_err();
        let refused = err.downcast_ref::<Refused>().unwrap();
        assert_eq!(refused.host, "localhost");
        assert!(refused.address.is_loopback());
    }

    #[tokio::test]
    async fn a_request_by_name_is_refused_while_connecting() {
        // Nothing listens there and nothing is sent: the resolver refuses before connecting.
        let guarded = HttpClient::new(false).unwrap();
        let e = guarded
            .post("http://localhost:9/hook")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&e).unwrap();
        assert_eq!(refused.host, "localhost");
        assert!(e.is_connect(), "{e:?}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use axum::response::Redirect;
        use axum::routing::post;
        let app = axum::Router::new()
            .route(
                "/hook",
                post(|| async { Redirect::temporary("/elsewhere") }),
            )
            .route("/elsewhere", post(|| async { "followed" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let open = HttpClient::new(true).unwrap();
        let r = open
            .post(&format!("http://{addr}/hook"))
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
    }
}
