//! A bare `XDP_DROP`, the floor `cargo xtask bench xdp` compares the real
//! program against. The daemon never attaches it.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn kms_baseline_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}
