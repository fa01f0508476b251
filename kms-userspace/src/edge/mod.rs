//! The kernel side as the daemon sees it: the embedded BPF object, where its
//! state is pinned, and how it is loaded, attached and read.

pub mod cgroup;
pub mod clock;
pub mod events;
pub mod limits;
pub mod link;
pub mod loader;
pub mod pins;
pub mod sock_destroy;
pub mod state;
pub mod stats;
pub mod tables;
pub mod upkeep;

/// The BPF object built from `kms-ebpf` by this crate's build script.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/kms-ebpf.o"));

/// SHA-256 of [`BPF_OBJECT`], to tell which object a running daemon carries.
pub const BPF_OBJECT_SHA256: &str = env!("KMS_EBPF_SHA256");
