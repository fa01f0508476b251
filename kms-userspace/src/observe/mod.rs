//! What the daemon tells the outside world: Prometheus metrics (its own and
//! the kernel's), readiness, the probe filter's source classes, and the
//! webhook notifier.

pub mod bpf;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod probes;
pub mod ready;
