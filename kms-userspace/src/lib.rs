//! kms-edge's userspace half. Read in data-path order: [`serve`] binds the
//! listeners and attaches the XDP program ([`edge`]); [`listener`] accepts;
//! [`connection`] cuts the byte stream into RPC PDUs ([`rpc`]) and hands each
//! KMS call to [`activation`], which decodes it ([`kms`]), asks [`policy`]
//! and the product [`catalog`], and encodes the answer. [`client`] is the
//! verifying client and load generator; [`ops`] holds the operator commands
//! that work on the pinned BPF state with or without a running daemon.

pub mod activation;
pub mod catalog;
pub mod client;
pub mod config;
pub mod connection;
pub mod edge;
pub mod kms;
pub mod listener;
pub mod logging;
pub mod netdev;
pub mod observe;
pub mod ops;
pub mod policy;
pub mod rpc;
pub mod serve;
pub mod shutdown;
pub mod tracker;
