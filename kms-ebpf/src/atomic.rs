//! The three atomic instructions the programs need. The bpfel target does not
//! enable `core::sync::atomic`'s read-modify-write methods, but LLVM lowers the
//! intrinsics to BPF's atomic instructions (kernel 5.12+, `--cpu=v3`), which
//! the verifier allows on map values.

use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd, atomic_xchg};

/// `*dst += value` as one atomic add.
///
/// # Safety
/// `dst` must point into a map value (or other memory valid for the call).
#[inline(always)]
pub unsafe fn add(dst: *mut u64, value: u64) {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(dst, value) };
}

/// Sets `*dst` to `new` if it holds `old`; true when it did.
///
/// # Safety
/// As [`add`].
#[inline(always)]
pub unsafe fn compare_exchange(dst: *mut u32, old: u32, new: u32) -> bool {
    unsafe {
        atomic_cxchg::<u32, { AtomicOrdering::Acquire }, { AtomicOrdering::Relaxed }>(dst, old, new)
            .1
    }
}

/// Stores `value` with an atomic exchange (BPF has no release store before
/// kernel 6.15; every atomic exchange orders).
///
/// # Safety
/// As [`add`].
#[inline(always)]
pub unsafe fn exchange(dst: *mut u32, value: u32) {
    unsafe { atomic_xchg::<u32, { AtomicOrdering::Release }>(dst, value) };
}
