//! Where a plugin's URL may connect: no server-side request forgery through a source.
//!
//! A URL grant names URLs, but a name resolves to whatever its DNS says — a granted
//! `https://*` would otherwise reach the host's loopback, its private network and the
//! cloud's metadata service (169.254.169.254). So the check is on the *address*, at
//! connect time: the resolver below drops loopback, private, link-local, shared,
//! multicast and reserved addresses unless the operator named that exact host in a
//! grant (`http://127.0.0.1:8000/*`), and never returns the host's own listening
//! addresses (its API, the loopback's control endpoint). The connection is made to
//! the addresses it returns, so a name that re-resolves elsewhere (DNS rebinding)
//! gains nothing; every redirect resolves again.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Whether `ip` is an address a plugin must not reach unless its host is named: not
/// globally routable (loopback, private, link-local, shared, unspecified, multicast,
/// broadcast, reserved, documentation), seen through IPv4-mapped and NAT64 forms too.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96, NAT64: an IPv4 address in its last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return internal_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local (cloud metadata: fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10, the old site-local
                || s[0] == 0x2001 && s[1] == 0x0db8 // 2001:db8::/32, documentation
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || a == 0 // 0.0.0.0/8, "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16: the metadata service lives here
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0.0/24, protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || ip.is_documentation()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240 // 240.0.0.0/4, reserved
}

/// A host as written in a URL, without IPv6 brackets, lowercase.
fn bare(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// The host a URL pattern names literally (`http://127.0.0.1:8000/*` → `127.0.0.1`),
/// or `None` when its host has a wildcard.
pub fn literal_host(pattern: &str) -> Option<String> {
    let rest = pattern.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty() && !host.contains('*')).then(|| bare(host))
}

/// The resolver of a plugin's URL fetches.
#[derive(Debug)]
pub struct GuardedResolver {
    /// Hosts the operator named in a grant: their internal addresses are allowed.
    pub named: Vec<String>,
    /// The host's own listening addresses: never reached, named or not.
    pub own: Vec<SocketAddr>,
    /// `wasmcalls play` on the operator's own command line: internal addresses allowed
    /// (the host's own still not).
    pub any_internal: bool,
}

impl GuardedResolver {
    /// Why `addr` may not be reached from `host`, if it may not.
    fn refusal(&self, host: &str, addr: SocketAddr) -> Option<String> {
        let ip = addr.ip();
        let own = self.own.iter().any(|o| {
            o.port() == addr.port()
                && (o.ip() == ip || o.ip().is_unspecified() || ip.is_loopback() || ip.is_unspecified())
        });
        if own {
            return Some(format!("{addr} is this host's own API or control endpoint, which plugins never reach"));
        }
        if is_internal(ip) && !self.any_internal && !self.named.iter().any(|n| *n == host) {
            return Some(format!(
                "{host} resolves to {ip}, a loopback, private or link-local address; plugins reach such an address \
                 only if the operator names its host in grants.urls (e.g. \"http://{host}/*\")"
            ));
        }
        None
    }
}

/// The error a refused connection becomes; `fetch` names it [`super::SourceError::Forbidden`].
pub fn refused(reason: String) -> ureq::Error {
    ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, reason))
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = bare(uri.host().unwrap_or_default());
        let all = DefaultResolver::default().resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        let mut first_refusal = None;
        for &addr in all.iter() {
            match self.refusal(&host, addr) {
                None => kept.push(addr),
                Some(why) => {
                    first_refusal.get_or_insert(why);
                }
            }
        }
        match (kept.is_empty(), first_refusal) {
            (true, Some(why)) => Err(refused(why)),
            (true, None) => Err(ureq::Error::HostNotFound),
            (false, _) => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_known_in_every_spelling() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "172.32.0.1", "100.128.0.1", "149.154.167.50", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_literal_hosts_are_named() {
        assert_eq!(literal_host("http://127.0.0.1:8000/*").as_deref(), Some("127.0.0.1"));
        assert_eq!(literal_host("https://Radio.Local/live*").as_deref(), Some("radio.local"));
        assert_eq!(literal_host("http://[::1]:80/*").as_deref(), Some("::1"));
        assert_eq!(literal_host("http://user@10.0.0.5/x").as_deref(), Some("10.0.0.5"));
        assert_eq!(literal_host("https://*"), None);
        assert_eq!(literal_host("*"), None);
        assert_eq!(literal_host("http://*.example/*"), None);
    }

    #[test]
    fn the_hosts_own_ports_are_never_reached() {
        let r = GuardedResolver {
            named: vec!["127.0.0.1".into()],
            own: vec!["0.0.0.0:24859".parse().unwrap(), "127.0.0.1:24860".parse().unwrap()],
            any_internal: true,
        };
        assert!(r.refusal("127.0.0.1", "127.0.0.1:24859".parse().unwrap()).is_some());
        assert!(r.refusal("127.0.0.1", "127.0.0.1:24860".parse().unwrap()).is_some());
        assert!(r.refusal("127.0.0.1", "127.0.0.1:8000".parse().unwrap()).is_none(), "named");
        let strict = GuardedResolver { named: vec![], own: vec![], any_internal: false };
        let why = strict.refusal("metadata.internal", "169.254.169.254:80".parse().unwrap()).unwrap();
        assert!(why.contains("169.254.169.254") && why.contains("grants.urls"), "{why}");
        assert!(strict.refusal("example.com", "93.184.216.34:443".parse().unwrap()).is_none());
    }
}
