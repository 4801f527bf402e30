//! Who the client is on the network: the peer, unless the peer is a proxy the gateway trusts
//! (`TRUSTED_PROXIES`); then the address that proxy forwarded.

use actix_web::HttpRequest;
use std::net::IpAddr;

/// An IP network: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, bits) = match text.split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { address, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The client's address of a request, by [`client_ip`].
pub fn of_request(req: &HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    // Every X-Forwarded-For line, in order: a proxy may add its own line rather than append.
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    client_ip(
        req.peer_addr().map(|a| a.ip()),
        (!forwarded.is_empty()).then_some(forwarded.as_str()),
        trusted,
    )
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// address in `X-Forwarded-For` that is not a trusted proxy (the left part is the client's
/// to write, so it is not believed).
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    if let Some(chain) = forwarded_for {
        for hop in chain.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !is_trusted(client) {
                break;
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_client_address_is_believed_from_trusted_proxies_only() {
        let trusted = vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("::1").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client cannot claim another address.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Behind a trusted proxy: the right-most untrusted hop, not what the client prepended.
        assert_eq!(
            client_ip(
                Some(ip("10.1.2.3")),
                Some("6.6.6.6, 198.51.100.7, 10.9.9.9"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:10.1.2.3")), Some("198.51.100.7"), &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("10.1.2.3")), None, &trusted),
            Some(ip("10.1.2.3"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(
            Cidr::parse("192.168.1.0/24")
                .unwrap()
                .contains(ip("192.168.1.200"))
        );
        assert!(
            !Cidr::parse("192.168.1.0/25")
                .unwrap()
                .contains(ip("192.168.1.200"))
        );
    }
}
