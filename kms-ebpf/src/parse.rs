//! Header parsing for the XDP program: Ethernet with up to two VLAN tags, IPv4
//! (options honoured, fragments recognised), IPv6 (bounded walk of extension
//! headers), and the TCP fields the edge needs. Every access is bounds-checked
//! against `data_end`, which is also what the verifier demands.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use network_types::{eth::EthHdr, ip::Ipv4Hdr, ip::Ipv6Hdr, vlan::VlanHdr};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const MAX_VLAN_TAGS: usize = 2;

const IPPROTO_TCP: u8 = 6;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// Real traffic rarely carries more than two extension headers; the bound keeps
/// the verifier's work finite.
const MAX_IPV6_EXT_HEADERS: usize = 6;

const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;

/// A packet's source address, in network byte order.
#[derive(Clone, Copy)]
pub enum Source {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// What the edge needs from a TCP header.
#[derive(Clone, Copy)]
pub struct Tcp {
    pub dst_port: u16,
    pub flags: u8,
}

impl Tcp {
    /// A connection attempt: SYN without ACK.
    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN
    }
}

/// An IP packet's source and, when this packet carries it, its TCP header.
/// Non-first fragments and non-TCP packets have `tcp == None`.
#[derive(Clone, Copy)]
pub struct IpPacket {
    pub src: Source,
    pub tcp: Option<Tcp>,
}

pub enum Parsed {
    /// Neither IPv4 nor IPv6.
    NotIp,
    /// An IP packet whose headers are cut short or inconsistent.
    Malformed,
    Ip(IpPacket),
}

/// A pointer to a `T` at `offset` bytes into the packet, or `None` if the
/// packet is too short to hold it.
#[inline(always)]
fn header<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some(eth) = header::<EthHdr>(ctx, 0) else {
        return Parsed::NotIp;
    };
    // SAFETY: `header` checked that the whole struct lies inside the packet.
    let mut ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let mut offset = EthHdr::LEN;

    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let Some(vlan) = header::<VlanHdr>(ctx, offset) else {
            return Parsed::NotIp;
        };
        // SAFETY: bounds checked by `header`.
        ether_type = u16::from_be(unsafe { (*vlan).ether_type });
        offset += VlanHdr::LEN;
    }

    match ether_type {
        ETH_P_IPV4 => parse_ipv4(ctx, offset),
        ETH_P_IPV6 => parse_ipv6(ctx, offset),
        _ => Parsed::NotIp,
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, offset: usize) -> Parsed {
    let Some(ip) = header::<Ipv4Hdr>(ctx, offset) else {
        return Parsed::Malformed;
    };
    // SAFETY: bounds checked by `header`.
    let (vihl, proto, frags, src) =
        unsafe { ((*ip).vihl, (*ip).proto, (*ip).frags, (*ip).src_addr) };
    let header_len = ((vihl & 0x0f) as usize) * 4;
    if vihl >> 4 != 4 || header_len < Ipv4Hdr::LEN {
        return Parsed::Malformed;
    }
    let src = Source::V4(src);
    // A non-first fragment has no TCP header; it still has a source.
    let later_fragment = u16::from_be_bytes(frags) & 0x1fff != 0;
    if proto != IPPROTO_TCP || later_fragment {
        return Parsed::Ip(IpPacket { src, tcp: None });
    }
    with_tcp(ctx, src, offset + header_len)
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, offset: usize) -> Parsed {
    let Some(ip) = header::<Ipv6Hdr>(ctx, offset) else {
        return Parsed::Malformed;
    };
    // SAFETY: bounds checked by `header`.
    let (vcf0, mut next, src) = unsafe { ((*ip).vcf[0], (*ip).next_hdr, (*ip).src_addr) };
    if vcf0 >> 4 != 6 {
        return Parsed::Malformed;
    }
    let src = Source::V6(src);
    let mut offset = offset + Ipv6Hdr::LEN;

    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let ext_len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS | IPV6_AUTH | IPV6_FRAGMENT => {
                let Some(ext) = header::<[u8; 8]>(ctx, offset) else {
                    return Parsed::Malformed;
                };
                // SAFETY: bounds checked by `header`.
                let ext = unsafe { *ext };
                if next == IPV6_FRAGMENT && u16::from_be_bytes([ext[2], ext[3]]) >> 3 != 0 {
                    // Non-first fragment: no upper-layer header here.
                    return Parsed::Ip(IpPacket { src, tcp: None });
                }
                let len = match next {
                    IPV6_FRAGMENT => 8,
                    IPV6_AUTH => (ext[1] as usize + 2) * 4,
                    _ => (ext[1] as usize + 1) * 8,
                };
                next = ext[0];
                len
            }
            _ => break,
        };
        offset += ext_len;
    }

    if next != IPPROTO_TCP {
        return Parsed::Ip(IpPacket { src, tcp: None });
    }
    with_tcp(ctx, src, offset)
}

#[inline(always)]
fn with_tcp(ctx: &XdpContext, src: Source, offset: usize) -> Parsed {
    match parse_tcp(ctx, offset) {
        Some(tcp) => Parsed::Ip(IpPacket {
            src,
            tcp: Some(tcp),
        }),
        None => Parsed::Malformed,
    }
}

/// The first 14 bytes of a TCP header: ports, sequence numbers, offset, flags.
#[inline(always)]
fn parse_tcp(ctx: &XdpContext, offset: usize) -> Option<Tcp> {
    let head = header::<[u8; 14]>(ctx, offset)?;
    // SAFETY: bounds checked by `header`.
    let head = unsafe { *head };
    Some(Tcp {
        dst_port: u16::from_be_bytes([head[2], head[3]]),
        flags: head[13],
    })
}
