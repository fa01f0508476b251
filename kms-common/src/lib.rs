//! The contract between kms-edge's BPF programs (`kms-ebpf`) and its daemon
//! (`kms-userspace`): map names, keys, values and counter indices.
//!
//! Everything here is `#[repr(C)]` and `no_std` so both halves compile the same
//! layout; the `user` feature adds `aya::Pod` so the daemon can read the maps.
#![cfg_attr(not(test), no_std)]

pub mod stats;

pub use stats::Stat;

/// Names of the maps and programs in the BPF object. The daemon looks them up by
/// these names and pins maps under them, so renaming one is a format change (bump
/// [`PIN_LAYOUT_VERSION`]).
pub mod names {
    /// The XDP program attached to every edge interface.
    pub const XDP_PROGRAM: &str = "kms_xdp";
    /// Per-CPU packet counters indexed by [`crate::Stat`].
    pub const STATS_MAP: &str = "KMS_STATS";
}

/// Pins live under `<pin-dir>` whose default ends in `v<PIN_LAYOUT_VERSION>`:
/// aya reuses whatever is pinned at a path without checking its layout, so a
/// daemon with a different layout must never find an old pin.
pub const PIN_LAYOUT_VERSION: u32 = 1;
