//! The XDP program: parse, classify, count, decide.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use kms_common::Stat;

use crate::{
    maps::count,
    parse::{Family, Parsed, parse},
};

#[xdp]
pub fn kms_xdp(ctx: XdpContext) -> u32 {
    let verdict = verdict(&ctx);
    count(if verdict == xdp_action::XDP_DROP {
        Stat::Dropped
    } else {
        Stat::Passed
    });
    verdict
}

#[inline(always)]
fn verdict(ctx: &XdpContext) -> u32 {
    let packet = match parse(ctx) {
        Parsed::NotIp => {
            count(Stat::NotIp);
            return xdp_action::XDP_PASS;
        }
        Parsed::Malformed => {
            // The stack's own checks decide about broken headers.
            count(Stat::Malformed);
            return xdp_action::XDP_PASS;
        }
        Parsed::Ip(packet) => packet,
    };
    count(match packet.family {
        Family::V4 => Stat::Ipv4,
        Family::V6 => Stat::Ipv6,
    });
    if let Some(tcp) = packet.tcp
        && tcp.is_syn()
    {
        count(Stat::TcpSyn);
    }
    xdp_action::XDP_PASS
}
