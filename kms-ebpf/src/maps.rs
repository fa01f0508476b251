//! The maps this object defines. Their names are the contract in
//! `kms_common::names`; all are pinned by name so a restarted daemon (and the
//! operator commands) find the same state.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use kms_common::{
    Stat,
    enforce::{
        ALLOWED_CAPACITY, BLOCKED_CAPACITY, Blocked, CONFIG_MAGIC, Config, EVENTS_BYTES,
        SOURCES_CAPACITY, SourceKey, SourceState,
    },
};

/// Per-CPU counters, indexed by [`Stat`]. Per-CPU so the hot path never
/// contends on a cache line; the daemon sums the CPUs when it reads.
#[map(name = "KMS_STATS")]
pub static KMS_STATS: PerCpuArray<u64> = PerCpuArray::pinned(Stat::SLOTS, 0);

/// The live configuration (one element), written by the daemon.
#[map(name = "KMS_CONFIG")]
pub static KMS_CONFIG: Array<Config> = Array::pinned(1, 0);

/// Established connections and the rate estimator per source. LRU so a
/// table full of old sources makes room instead of refusing new ones.
#[map(name = "KMS_SOURCES")]
pub static KMS_SOURCES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::pinned(SOURCES_CAPACITY, 0);

/// The block (overload) tables: pf's `<virusprot>`. LPM tries so an
/// operator can block whole prefixes next to single addresses.
#[map(name = "KMS_BLOCKED_V4")]
pub static KMS_BLOCKED_V4: LpmTrie<[u8; 4], Blocked> = LpmTrie::pinned(BLOCKED_CAPACITY, 0);
#[map(name = "KMS_BLOCKED_V6")]
pub static KMS_BLOCKED_V6: LpmTrie<[u8; 16], Blocked> = LpmTrie::pinned(BLOCKED_CAPACITY, 0);

/// The allow tables: sources in them are never counted or blocked.
#[map(name = "KMS_ALLOWED_V4")]
pub static KMS_ALLOWED_V4: LpmTrie<[u8; 4], u8> = LpmTrie::pinned(ALLOWED_CAPACITY, 0);
#[map(name = "KMS_ALLOWED_V6")]
pub static KMS_ALLOWED_V6: LpmTrie<[u8; 16], u8> = LpmTrie::pinned(ALLOWED_CAPACITY, 0);

/// One event per overload transition, for the daemon to flush connections.
#[map(name = "KMS_EVENTS")]
pub static KMS_EVENTS: RingBuf = RingBuf::pinned(EVENTS_BYTES, 0);

/// Adds one to a counter.
#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(slot) = KMS_STATS.get_ptr_mut(stat.index()) {
        // SAFETY: the slot belongs to this CPU and the program is not reentrant
        // on one CPU, so no one else writes it concurrently.
        unsafe { *slot += 1 };
    }
}

/// The configuration, or `None` until a daemon has written one (the
/// enforcer does nothing before it is configured).
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    match KMS_CONFIG.get(0) {
        Some(config) if config.magic == CONFIG_MAGIC => Some(config),
        _ => None,
    }
}
