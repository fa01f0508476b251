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
