//! Operator commands. They work on the pinned BPF state in `--pin-dir`, so they
//! work the same whether or not a daemon is running.

pub mod allow;
pub mod blocked;
pub mod limits;
pub mod products;
pub mod status;
pub mod xdp;

use std::path::PathBuf;

use clap::Args;

use crate::{
    config::{DEFAULT_PIN_DIR, DEFAULT_STATE_FILE},
    edge::{pins, state, tables::Tables},
};

/// Where the state of the instance to operate on is pinned.
#[derive(Args, Debug, Clone)]
pub struct PinDirArg {
    /// bpffs directory of the kmsd instance.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

impl PinDirArg {
    /// The instance's maps, or a clear error when it has never run.
    pub fn open(&self) -> anyhow::Result<Tables> {
        pins::existing(&self.pin_dir)?;
        Tables::open_pinned(&self.pin_dir)
    }
}

/// The state file a change is also written to, so it survives a reboot even
/// while no daemon runs.
#[derive(Args, Debug, Clone)]
pub struct StateFileArg {
    /// State file of the kmsd instance; `none` leaves it alone.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_STATE_FILE)]
    pub state_file: PathBuf,
}

impl StateFileArg {
    pub fn save(&self, tables: &Tables) -> anyhow::Result<()> {
        match crate::config::state_file(Some(self.state_file.clone())) {
            Some(path) => state::save(&path, &state::snapshot(tables)?),
            None => Ok(()),
        }
    }
}
