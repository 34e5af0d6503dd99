//! Per-address rate limits on the endpoints anyone may call that write: sign-in, first-run
//! setup and single sign-on. Counted in memory on each node, so a refused request costs no
//! database write.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use opsdesk_domain::rate_limit::{admit, ended, Verdict, Window};

/// Senders tracked at once; past that, new senders share one window (memory stays bounded
/// whatever the number of addresses a flood comes from).
const MAX_TRACKED: usize = 100_000;

/// Requests per minute per client address.
pub struct AddressLimiter {
    limit: u32,
    period: TimeDelta,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl AddressLimiter {
    pub fn per_minute(limit: u32) -> AddressLimiter {
        AddressLimiter {
            limit: limit.max(1),
            period: TimeDelta::minutes(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request from `client` at `now`.
    pub fn check(&self, client: IpAddr, now: DateTime<Utc>) -> Verdict {
        let key = sender(client);
        let Ok(mut windows) = self.windows.lock() else {
            // A panic elsewhere poisoned the map: limiting stops rather than sign-in.
            return Verdict::Admit;
        };
        let key = if windows.contains_key(&key) || windows.len() < MAX_TRACKED {
            key
        } else {
            windows.retain(|_, w| !ended(w, now, self.period));
            if windows.len() < MAX_TRACKED {
                key
            } else {
                IpAddr::from([0, 0, 0, 0])
            }
        };
        let (window, verdict) = admit(windows.get(&key).copied(), now, self.period, self.limit);
        windows.insert(key, window);
        verdict
    }
}

/// Who counts as one sender: an IPv4 address, or the /64 an IPv6 address is in (one
/// machine usually has a whole /64).
fn sender(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::from(std::net::Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_limited_apart_and_ipv6_by_its_64() {
        let limiter = AddressLimiter::per_minute(2);
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(limiter.check(a, now), Verdict::Admit);
        assert_eq!(limiter.check(a, now), Verdict::Admit);
        assert_eq!(limiter.check(a, now), Verdict::Refuse { first: true });
        assert_eq!(limiter.check(b, now), Verdict::Admit);
        assert_eq!(
            limiter.check(a, now + TimeDelta::minutes(1)),
            Verdict::Admit
        );
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        limiter.check(v6("2001:db8::1"), now);
        limiter.check(v6("2001:db8::2"), now);
        assert_eq!(
            limiter.check(v6("2001:db8::ffff:3"), now),
            Verdict::Refuse { first: true }
        );
        assert_eq!(limiter.check(v6("2001:db8:0:1::1"), now), Verdict::Admit);
    }
}
