//! Operator commands. They work on the pinned BPF state in `--pin-dir`, so they
//! work the same whether or not a daemon is running.

pub mod products;
pub mod status;
pub mod xdp;

use std::path::PathBuf;

use clap::Args;

use crate::config::DEFAULT_PIN_DIR;

/// Where the state of the instance to operate on is pinned.
#[derive(Args, Debug, Clone)]
pub struct PinDirArg {
    /// bpffs directory of the kmsd instance.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}
