//! The contract between kms-edge's BPF programs (`kms-ebpf`) and its daemon
//! (`kms-userspace`): map names, keys, values and counter indices.
//!
//! Everything here is `#[repr(C)]` and `no_std` so both halves compile the same
//! layout; the `user` feature adds `aya::Pod` so the daemon can read the maps.
#![cfg_attr(not(test), no_std)]

pub mod enforce;
pub mod stats;

pub use stats::Stat;

/// Names of the maps and programs in the BPF object. The daemon looks them up by
/// these names and pins maps under them, so renaming one is a format change (bump
/// [`PIN_LAYOUT_VERSION`]).
pub mod names {
    /// The XDP program attached to every edge interface.
    pub const XDP_PROGRAM: &str = "kms_xdp";
    /// A bare XDP_DROP, the benchmark's baseline; never attached by the daemon.
    pub const BASELINE_PROGRAM: &str = "kms_baseline_drop";
    /// XDP_DROP after reading the source address: the benchmark's second floor.
    pub const BASELINE_READ_PROGRAM: &str = "kms_baseline_read_drop";
    /// Returns XDP_TX: the benchmark's frame generator (live-frames test runs).
    pub const BENCH_TX_PROGRAM: &str = "kms_bench_tx";
    /// The sock_ops program that counts established connections per source.
    pub const SOCK_OPS_PROGRAM: &str = "kms_sock_ops";
    /// Per-CPU packet counters indexed by [`crate::Stat`].
    pub const STATS_MAP: &str = "KMS_STATS";
    /// The live [`crate::enforce::Config`], one element.
    pub const CONFIG_MAP: &str = "KMS_CONFIG";
    /// Per-source connection state (LRU hash of [`crate::enforce::SourceState`]).
    pub const SOURCES_MAP: &str = "KMS_SOURCES";
    /// The block (overload) tables, LPM tries of [`crate::enforce::Blocked`].
    pub const BLOCKED_V4_MAP: &str = "KMS_BLOCKED_V4";
    pub const BLOCKED_V6_MAP: &str = "KMS_BLOCKED_V6";
    /// The allow tables, LPM tries of `u8` (the value is unused).
    pub const ALLOWED_V4_MAP: &str = "KMS_ALLOWED_V4";
    pub const ALLOWED_V6_MAP: &str = "KMS_ALLOWED_V6";
    /// Overload events, a ring buffer of [`crate::enforce::OverloadEvent`].
    pub const EVENTS_MAP: &str = "KMS_EVENTS";
}

/// Pins live under `<pin-dir>` whose default ends in `v<PIN_LAYOUT_VERSION>`:
/// aya reuses whatever is pinned at a path without checking its layout, so a
/// daemon with a different layout must never find an old pin.
pub const PIN_LAYOUT_VERSION: u32 = 1;
