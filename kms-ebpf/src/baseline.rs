//! Programs for `cargo xtask bench xdp` only; the daemon never attaches them:
//! a bare `XDP_DROP` (with a counter), the floor the real program is compared against, and a
//! frame generator.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use kms_common::Stat;

use crate::maps::count;

/// `XDP_DROP` and one per-CPU counter increment, so the benchmark counts its
/// drops the same way as the real program's.
#[xdp]
pub fn kms_baseline_drop(_ctx: XdpContext) -> u32 {
    count(Stat::Dropped);
    xdp_action::XDP_DROP
}

/// Sends every frame back out of the interface it came in on. Run with
/// BPF_PROG_TEST_RUN in live-frames mode on one end of a veth pair, it is a
/// packet generator whose frames reach the other end as XDP frames, as a
/// NIC's would (an AF_PACKET flood arrives as socket buffers instead, which
/// veth must copy before native XDP sees them).
#[xdp]
pub fn kms_bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// `XDP_DROP` after reading the source address, with one counter: the bare
/// drop plus the one thing every filter must do, touch the packet. The
/// benchmark uses it to tell the cost of reading the frame from the cost of
/// the lookups.
#[xdp]
pub fn kms_baseline_read_drop(ctx: XdpContext) -> u32 {
    // Ethernet (14 bytes), then the IPv4 source at offset 12 of its header.
    let at = ctx.data() + 14 + 12;
    if at + 4 <= ctx.data_end() {
        // SAFETY: bounds checked against data_end just above.
        let src = unsafe { core::ptr::read_unaligned(at as *const u32) };
        if src != 0 {
            count(Stat::Dropped);
            return xdp_action::XDP_DROP;
        }
    }
    count(Stat::Dropped);
    xdp_action::XDP_DROP
}
