//! The XDP program: parse, check the allow and block tables, count, decide.
//! No logging here: this runs for every packet on the edge interface.

use aya_ebpf::{bindings::xdp_action, macros::xdp, maps::lpm_trie::Key, programs::XdpContext};
use kms_common::{
    Stat,
    enforce::{Blocked, Reason, drop_scope},
};

use crate::{
    atomic,
    maps::{KMS_ALLOWED_V4, KMS_ALLOWED_V6, KMS_BLOCKED_V4, KMS_BLOCKED_V6, config, count},
    parse::{IpPacket, Parsed, Source, parse},
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
    if let Some(tcp) = packet.tcp
        && tcp.is_syn()
    {
        count(Stat::TcpSyn);
    }

    // Allow-listed sources win over any block entry, even a manual one.
    let blocked = match packet.src {
        Source::V4(addr) => {
            count(Stat::Ipv4);
            let key = Key::new(32, addr);
            if KMS_ALLOWED_V4.get(&key).is_some() {
                count(Stat::AllowListed);
                return xdp_action::XDP_PASS;
            }
            KMS_BLOCKED_V4.get(&key)
        }
        Source::V6(addr) => {
            count(Stat::Ipv6);
            let key = Key::new(128, addr);
            if KMS_ALLOWED_V6.get(&key).is_some() {
                count(Stat::AllowListed);
                return xdp_action::XDP_PASS;
            }
            KMS_BLOCKED_V6.get(&key)
        }
    };
    match blocked {
        Some(entry) => on_blocked(ctx, &packet, entry),
        None => xdp_action::XDP_PASS,
    }
}

/// A packet from a source in the block table.
#[inline(always)]
fn on_blocked(ctx: &XdpContext, packet: &IpPacket, entry: &Blocked) -> u32 {
    let Some(config) = config() else {
        return xdp_action::XDP_PASS;
    };
    if config.drop_scope == drop_scope::SERVICE {
        // Only TCP to a service port. A later fragment carries no port; it is
        // useless without its first fragment, which is dropped if it matters.
        match packet.tcp {
            Some(tcp) if config.is_service_port(tcp.dst_port) => {}
            _ => return xdp_action::XDP_PASS,
        }
    }
    // SAFETY: the entry lives in the map's memory; CPUs dropping packets from
    // one source at once share it through atomic adds.
    unsafe {
        let entry = core::ptr::from_ref(entry).cast_mut();
        atomic::add(&raw mut (*entry).packets, 1);
        atomic::add(
            &raw mut (*entry).bytes,
            (ctx.data_end() - ctx.data()) as u64,
        );
    }

    if config.monitor != 0 {
        count(Stat::WouldDrop);
        return xdp_action::XDP_PASS;
    }
    count(match Reason::from_u32(entry.reason) {
        Some(Reason::MaxSrcConn) => Stat::DroppedMaxSrcConn,
        Some(Reason::MaxSrcConnRate) => Stat::DroppedMaxSrcConnRate,
        _ => Stat::DroppedManual,
    });
    xdp_action::XDP_DROP
}
