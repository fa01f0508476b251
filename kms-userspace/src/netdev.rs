//! Which interface faces the internet: the one holding the default route.

use std::fs;

use anyhow::{Context as _, bail};

/// The interface of the IPv4 default route, or of the IPv6 one if there is no
/// IPv4 default route.
pub fn default_route_interface() -> anyhow::Result<String> {
    let v4 = fs::read_to_string("/proc/net/route").context("reading /proc/net/route")?;
    if let Some(iface) = default_v4(&v4) {
        return Ok(iface);
    }
    let v6 = fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    if let Some(iface) = default_v6(&v6) {
        return Ok(iface);
    }
    bail!("no default route: name the edge interface with --xdp-iface, or run with --no-xdp")
}

/// `/proc/net/route`: `Iface Destination Gateway Flags ...`, hex fields; the
/// default route has destination and mask 0.
fn default_v4(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (iface, dest, mask) = (fields.first()?, fields.get(1)?, fields.get(7)?);
        (*dest == "00000000" && *mask == "00000000").then(|| iface.to_string())
    })
}

/// `/proc/net/ipv6_route`: `dest plen src plen nexthop metric refcnt use flags iface`.
fn default_v6(table: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (dest, plen, iface) = (fields.first()?, fields.get(1)?, fields.get(9)?);
        let default = dest.chars().all(|c| c == '0') && *plen == "00" && *iface != "lo";
        default.then(|| iface.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ipv4_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t0012A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_v4(table).as_deref(), Some("eth0"));
        assert_eq!(default_v4("Iface\tDestination\n"), None);
    }

    #[test]
    fn finds_the_ipv6_default_route_but_not_loopback() {
        let zero = "00000000000000000000000000000000";
        let table = format!(
            "{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200       lo\n\
             {zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3\n"
        );
        assert_eq!(default_v6(&table).as_deref(), Some("ens3"));
    }
}
