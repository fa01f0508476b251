//! Hand-built frames for tests and benchmarks that need packets the socket
//! API will not send: raw SYNs (half-open, spoofed), VLAN tags, floods.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const BROADCAST: [u8; 6] = [0xff; 6];
const SOURCE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn tcp_header(sport: u16, dport: u16, flags: u8, seq: u32) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp
}

/// A 20-byte TCP header whose checksum covers the pseudo-header of the two
/// addresses (either family: the sum is over their bytes, protocol and length).
fn tcp_segment(src: &[u8], dst: &[u8], sport: u16, dport: u16, flags: u8, seq: u32) -> Vec<u8> {
    let mut tcp = tcp_header(sport, dport, flags, seq);
    let pseudo = sum16(src) + sum16(dst) + 6 + 20;
    let check = fold(pseudo + sum16(&tcp));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    tcp
}

/// An IPv4 packet carrying a 20-byte TCP header, both checksums correct.
pub fn ipv4_tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
) -> Vec<u8> {
    let tcp = tcp_segment(&src.octets(), &dst.octets(), sport, dport, flags, seq);
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let check = fold(sum16(&ip));
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// An IPv6 packet carrying a 20-byte TCP header, checksum correct.
pub fn ipv6_tcp(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
) -> Vec<u8> {
    let tcp = tcp_segment(&src.octets(), &dst.octets(), sport, dport, flags, seq);
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    ip.extend_from_slice(&tcp);
    ip
}

/// An Ethernet frame (padded to the 60-byte minimum) with `vlans` tags,
/// the outer one 802.1ad when there are two.
pub fn ethernet(dst: [u8; 6], vlans: &[u16], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&SOURCE_MAC);
    for (i, vlan) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() > 1 {
            0x88a8
        } else {
            0x8100
        };
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vlan.to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}

pub fn ipv4_frame(dst_mac: [u8; 6], packet: &[u8]) -> Vec<u8> {
    ethernet(dst_mac, &[], 0x0800, packet)
}

pub fn ipv6_frame(dst_mac: [u8; 6], packet: &[u8]) -> Vec<u8> {
    ethernet(dst_mac, &[], 0x86dd, packet)
}

/// An ARP request: the non-IP case.
pub fn arp_frame() -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&SOURCE_MAC);
    arp.extend_from_slice(&[198, 18, 0, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 18, 0, 1]);
    ethernet(BROADCAST, &[], 0x0806, &arp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let p = ipv4_tcp(
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
            1,
            1688,
            SYN,
            7,
        );
        assert_eq!(fold(sum16(&p[..20])), 0);
        let pseudo = sum16(&p[12..20]) + 6 + 20;
        assert_eq!(fold(pseudo + sum16(&p[20..])), 0);
        assert_eq!(ethernet(BROADCAST, &[10], 0x0800, &p).len(), 60, "padded");
        assert_eq!(ethernet(BROADCAST, &[10], 0x0800, &[0; 50]).len(), 18 + 50);
        assert_eq!(arp_frame().len(), 60);
    }
}
