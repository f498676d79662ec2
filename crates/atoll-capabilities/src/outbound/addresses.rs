//! Which IP addresses an allowed *name* may resolve to: public unicast only, unless the
//! grant or the operator says otherwise. This is what stops DNS rebinding (a name that
//! resolves to 1.2.3.4, then to 127.0.0.1) and names that point inside the network
//! (one private A record among public ones is enough to refuse).
//!
//! Pure functions, no I/O: [`classify`] names the special-purpose range an address is
//! in (IANA's IPv4 and IPv6 special-purpose registries, plus IPv4 addresses embedded in
//! IPv6 forms), and [`check_resolved`] applies the policy to every address of one
//! lookup. Resolving and connecting are in `send.rs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is not a public unicast one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10` (carrier-grade NAT).
    SharedNat,
    /// `169.254.0.0/16` (including cloud metadata, `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`, and the deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Anything else set aside: `192.0.0.0/24`, `192.88.99.0/24`, `240.0.0.0/4`, and in
    /// IPv6 everything outside `2000::/3` plus `2001::/23`, `100::/64`, local-use NAT64,
    /// IPv4-compatible addresses.
    Reserved,
}

impl NonPublic {
    fn as_str(self) -> &'static str {
        match self {
            NonPublic::Unspecified => "unspecified",
            NonPublic::Loopback => "loopback",
            NonPublic::Private => "private",
            NonPublic::SharedNat => "shared (carrier-grade NAT)",
            NonPublic::LinkLocal => "link-local",
            NonPublic::UniqueLocal => "unique-local",
            NonPublic::Multicast => "multicast",
            NonPublic::Broadcast => "broadcast",
            NonPublic::Documentation => "documentation",
            NonPublic::Benchmarking => "benchmarking",
            NonPublic::Reserved => "reserved",
        }
    }
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `None` for a public unicast address, else the kind of special range it is in. IPv6
/// forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, translated
/// `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:AABB:CCDD::`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: u32, net: [u8; 4], len: u32) -> bool {
    let net = u32::from_be_bytes(net);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == net & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    let n = u32::from(ip);
    let table: &[([u8; 4], u32, NonPublic)] = &[
        ([0, 0, 0, 0], 8, NonPublic::Unspecified),
        ([10, 0, 0, 0], 8, NonPublic::Private),
        ([100, 64, 0, 0], 10, NonPublic::SharedNat),
        ([127, 0, 0, 0], 8, NonPublic::Loopback),
        ([169, 254, 0, 0], 16, NonPublic::LinkLocal),
        ([172, 16, 0, 0], 12, NonPublic::Private),
        ([192, 0, 0, 0], 24, NonPublic::Reserved),
        ([192, 0, 2, 0], 24, NonPublic::Documentation),
        ([192, 88, 99, 0], 24, NonPublic::Reserved),
        ([192, 168, 0, 0], 16, NonPublic::Private),
        ([198, 18, 0, 0], 15, NonPublic::Benchmarking),
        ([198, 51, 100, 0], 24, NonPublic::Documentation),
        ([203, 0, 113, 0], 24, NonPublic::Documentation),
        ([224, 0, 0, 0], 4, NonPublic::Multicast),
        ([255, 255, 255, 255], 32, NonPublic::Broadcast),
        ([240, 0, 0, 0], 4, NonPublic::Reserved),
    ];
    table
        .iter()
        .find(|(net, len, _)| in_v4(n, *net, *len))
        .map(|(_, _, class)| *class)
}

fn in_v6(ip: u128, net: u128, len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    ip & mask == net & mask
}

fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    let n = u128::from(ip);
    let low_v4 = Ipv4Addr::from((n & 0xffff_ffff) as u32);
    if n == 0 {
        return Some(NonPublic::Unspecified);
    }
    if n == 1 {
        return Some(NonPublic::Loopback);
    }
    // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (translated): the IPv4 address is
    // what the kernel connects to.
    if in_v6(n, 0xffff_0000_0000, 96) || in_v6(n, 0xffff_0000_0000_0000, 96) {
        return classify_v4(low_v4);
    }
    // ::a.b.c.d (IPv4-compatible, deprecated): never a public destination.
    if in_v6(n, 0, 96) {
        return Some(classify_v4(low_v4).unwrap_or(NonPublic::Reserved));
    }
    // 64:ff9b::a.b.c.d, the well-known NAT64 prefix: the IPv4 address behind it.
    if in_v6(n, 0x0064_ff9b_u128 << 96, 96) {
        return classify_v4(low_v4);
    }
    // 2002:AABB:CCDD::/48, 6to4: the relay forwards to AA.BB.CC.DD.
    if in_v6(n, 0x2002_u128 << 112, 16) {
        let embedded = Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32);
        return classify_v4(embedded);
    }
    let table: &[(u128, u32, NonPublic)] = &[
        (0x0064_ff9b_0001_u128 << 80, 48, NonPublic::Reserved), // local-use NAT64
        (0x0100_u128 << 112, 64, NonPublic::Reserved),          // discard-only
        (0x2001_0002_u128 << 96, 48, NonPublic::Benchmarking),
        (0x2001_0db8_u128 << 96, 32, NonPublic::Documentation),
        (0x2001_u128 << 112, 23, NonPublic::Reserved), // IETF protocol assignments, Teredo
        (0x3fff_u128 << 112, 20, NonPublic::Documentation),
        (0xfc00_u128 << 112, 7, NonPublic::UniqueLocal),
        (0xfe80_u128 << 112, 10, NonPublic::LinkLocal),
        (0xfec0_u128 << 112, 10, NonPublic::UniqueLocal),
        (0xff00_u128 << 112, 8, NonPublic::Multicast),
    ];
    if let Some((_, _, class)) = table.iter().find(|(net, len, _)| in_v6(n, *net, *len)) {
        return Some(*class);
    }
    // Only 2000::/3 is allocated for global unicast.
    if !in_v6(n, 0x2000_u128 << 112, 3) {
        return Some(NonPublic::Reserved);
    }
    None
}

/// What a request to a *name* may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destinations {
    /// Public unicast addresses only (the default).
    Public,
    /// Loopback only: the grant names `localhost`.
    Loopback,
    /// Anything: the operator set `allow_private_addresses`.
    Any,
}

/// Check every address one lookup returned; the first one that `allowed` refuses is the
/// error, with its class. An empty lookup passes here (and fails to connect).
pub fn check_resolved(
    addrs: &[SocketAddr],
    allowed: Destinations,
) -> Result<(), (SocketAddr, NonPublic)> {
    for addr in addrs {
        let ip = addr.ip();
        let class = classify(ip);
        let ok = match allowed {
            Destinations::Any => true,
            Destinations::Public => class.is_none(),
            Destinations::Loopback => class == Some(NonPublic::Loopback),
        };
        if !ok {
            // A public address where only loopback is allowed is still refused; call it
            // what it is not.
            return Err((*addr, class.unwrap_or(NonPublic::Reserved)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expect: Option<NonPublic>) {
        let parsed: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        assert_eq!(classify(parsed), expect, "{ip}");
    }

    #[test]
    fn ipv4_special_ranges() {
        use NonPublic::*;
        for (ip, class) in [
            ("0.0.0.0", Unspecified),
            ("0.255.255.255", Unspecified),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", SharedNat),
            ("100.127.255.254", SharedNat),
            ("127.0.0.1", Loopback),
            ("127.0.1.1", Loopback),
            ("127.255.255.255", Loopback),
            ("169.254.0.1", LinkLocal),
            ("169.254.169.254", LinkLocal),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.0.0.8", Reserved),
            ("192.0.2.10", Documentation),
            ("192.88.99.1", Reserved),
            ("192.168.0.1", Private),
            ("192.168.255.255", Private),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("254.1.2.3", Reserved),
            ("255.255.255.255", Broadcast),
        ] {
            check(ip, Some(class));
        }
    }

    #[test]
    fn ipv4_public_addresses_and_range_edges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            check(ip, None);
        }
    }

    #[test]
    fn ipv6_special_ranges() {
        use NonPublic::*;
        for (ip, class) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", UniqueLocal),
            ("fd00::1", UniqueLocal),
            ("fdff:ffff::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            // IPv4-compatible 0.0.0.2, judged as that IPv4 address.
            ("::2", Unspecified),
            ("4000::1", Reserved),
            ("1::1", Reserved),
        ] {
            check(ip, Some(class));
        }
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "2001:4860:4860::8888",
            "2001:200::1",
        ] {
            check(ip, None);
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        use NonPublic::*;
        for (ip, class) in [
            // Mapped.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:100.64.0.1", Some(SharedNat)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:255.255.255.255", Some(Broadcast)),
            ("::ffff:8.8.8.8", None),
            // Translated.
            ("::ffff:0:127.0.0.1", Some(Loopback)),
            ("::ffff:0:192.168.1.1", Some(Private)),
            ("::ffff:0:1.1.1.1", None),
            // Compatible (deprecated): never public.
            ("::127.0.0.1", Some(Loopback)),
            ("::10.0.0.1", Some(Private)),
            ("::169.254.169.254", Some(LinkLocal)),
            ("::8.8.8.8", Some(Reserved)),
            // NAT64.
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("64:ff9b::8.8.8.8", None),
            // 6to4.
            ("2002:7f00:1::1", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("2002:a9fe:a9fe::", Some(LinkLocal)),
            ("2002:808:808::1", None),
        ] {
            check(ip, class);
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect()
    }

    #[test]
    fn one_private_record_among_public_ones_is_refused() {
        let mixed = addrs(&["93.184.216.34:443", "[2606:2800::1]:443", "10.0.0.5:443"]);
        assert_eq!(
            check_resolved(&mixed, Destinations::Public),
            Err((mixed[2], NonPublic::Private))
        );
        let mixed = addrs(&["[::ffff:127.0.0.1]:80", "1.1.1.1:80"]);
        assert_eq!(
            check_resolved(&mixed, Destinations::Public),
            Err((mixed[0], NonPublic::Loopback))
        );
        let public = addrs(&["93.184.216.34:443", "[2606:2800::1]:443"]);
        assert_eq!(check_resolved(&public, Destinations::Public), Ok(()));
        assert_eq!(check_resolved(&mixed, Destinations::Any), Ok(()));
    }

    #[test]
    fn localhost_may_resolve_to_loopback_only() {
        let local = addrs(&["127.0.0.1:80", "[::1]:80"]);
        assert_eq!(check_resolved(&local, Destinations::Loopback), Ok(()));
        assert_eq!(
            check_resolved(&local, Destinations::Public),
            Err((local[0], NonPublic::Loopback))
        );
        let rebound = addrs(&["127.0.0.1:80", "192.168.1.10:80"]);
        assert_eq!(
            check_resolved(&rebound, Destinations::Loopback),
            Err((rebound[1], NonPublic::Private))
        );
        let public = addrs(&["8.8.8.8:80"]);
        assert_eq!(
            check_resolved(&public, Destinations::Loopback),
            Err((public[0], NonPublic::Reserved))
        );
    }
}
