//! Where the OAuth client may connect: never to link-local or cloud metadata
//! addresses, whether a URL names them literally or a name resolves to them.
//! A hostile upstream chooses the URLs discovery follows; this keeps those
//! requests (and the client secret) off the instance metadata service and the
//! link-local network.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// Well-known metadata services outside 169.254.0.0/16.
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)]; // Alibaba Cloud
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)]; // AWS

/// True for addresses no OAuth request may reach: link-local (IPv4
/// 169.254.0.0/16, IPv6 fe80::/10, where the cloud metadata services live),
/// known metadata addresses, unspecified, broadcast and multicast (also
/// behind an IPv4-mapped IPv6 address).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || METADATA_V4.contains(&v4)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.is_unspecified()
                || v6.is_multicast()
                || METADATA_V6.contains(&v6)
        }
    }
}

/// True when `url` names a forbidden address literally.
pub fn names_forbidden_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_forbidden(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_forbidden(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => false,
        None => true,
    }
}

/// The system resolver with forbidden addresses taken out: a name that
/// resolves only to them fails to connect.
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| !is_forbidden(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    format!("{host} resolves only to link-local or metadata addresses").into(),
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_forbidden() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::",
            "::ffff:169.254.169.254",
            "ff02::1",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for ok in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.1.1",
            "93.184.216.34",
            "2606:4700::1",
            "fec0::1",
        ] {
            assert!(!is_forbidden(ok.parse().unwrap()), "{ok}");
        }
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(names_forbidden_host(&url("http://169.254.169.254/latest")));
        assert!(names_forbidden_host(&url("https://[fe80::1]/x")));
        assert!(!names_forbidden_host(&url("https://auth.example.com/x")));
    }
}
