//! The maps this object defines. Their names are the contract in
//! `kms_common::names`; all are pinned by name so a restarted daemon adopts them.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use kms_common::Stat;

/// Per-CPU packet counters, indexed by [`Stat`]. Per-CPU so the hot path never
/// contends on a cache line; the daemon sums the CPUs when it reads.
#[map(name = "KMS_STATS")]
pub static KMS_STATS: PerCpuArray<u64> = PerCpuArray::pinned(Stat::SLOTS, 0);

/// Adds one to a counter.
#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(slot) = KMS_STATS.get_ptr_mut(stat.index()) {
        // SAFETY: the slot belongs to this CPU and the program is not reentrant
        // on one CPU, so no one else writes it concurrently.
        unsafe { *slot += 1 };
    }
}
