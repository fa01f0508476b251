//! Booting real Debian kernels under qemu with kmsd inside: the guest builder
//! (kernel packages through a private apt configuration, vmlinux extraction,
//! an initramfs of busybox, a static kmsd and the virtio modules), and the
//! guest itself (qemu in a network namespace of its own, driven over the
//! serial console). `tests/kernels.rs` runs the scenarios.

pub mod apt;
pub mod cpio;
pub mod guest;
pub mod initramfs;
pub mod kernel;

use std::path::PathBuf;

/// Everything built is cached here (ignored by git), keyed by kernel version.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cache")
}
