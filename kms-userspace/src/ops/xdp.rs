//! `kmsd xdp detach`: the one way the programs leave their interfaces and cgroup.

use std::fs;

use anyhow::Context as _;
use clap::Subcommand;

use super::PinDirArg;
use crate::edge::pins;

#[derive(Subcommand, Debug)]
pub enum XdpCommand {
    /// Detach the XDP program from every interface and the connection counter
    /// from its cgroup, and remove all pins of this instance (maps included:
    /// block lists and counters are lost; the state file is kept).
    Detach(PinDirArg),
}

pub fn run(command: &XdpCommand) -> anyhow::Result<()> {
    match command {
        XdpCommand::Detach(pin) => detach(pin),
    }
}

fn detach(pin: &PinDirArg) -> anyhow::Result<()> {
    let dir = &pin.pin_dir;
    pins::existing(dir)?;
    // Removing a link's last pin (no process holds it) detaches the program.
    for link in pins::link_pins(dir)? {
        fs::remove_file(&link.path)
            .with_context(|| format!("unpinning {}", link.path.display()))?;
        println!("detached {} ({} mode)", link.iface, link.mode.as_str());
    }
    for pin in pins::sock_ops_pins(dir)? {
        fs::remove_file(&pin).with_context(|| format!("unpinning {}", pin.display()))?;
        println!(
            "detached the connection counter ({})",
            pin.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    println!("removed {}", dir.display());
    Ok(())
}
