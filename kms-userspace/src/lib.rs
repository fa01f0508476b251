//! kms-edge's userspace half. Read in data-path order: [`serve`] binds the
//! listeners and attaches the XDP program ([`edge`]); [`listener`] accepts
//! connections; [`ops`] holds the operator commands that work on the pinned
//! BPF state with or without a running daemon.

pub mod config;
pub mod edge;
pub mod listener;
pub mod logging;
pub mod netdev;
pub mod ops;
pub mod serve;
pub mod shutdown;
pub mod kms;
pub mod rpc;
pub mod catalog;
pub mod policy;
