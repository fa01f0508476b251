//! `kmsd limits`: show or change the enforcer's limits live. The kernel reads
//! them on the next connection and packet; no restart.

use clap::Subcommand;

use super::PinDirArg;
use crate::edge::limits::{LimitOptions, Limits};

#[derive(Subcommand, Debug)]
pub enum LimitsCommand {
    /// Print the limits in force.
    Show {
        #[command(flatten)]
        pin: PinDirArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Change some limits; the others keep their values.
    Set {
        #[command(flatten)]
        options: LimitOptions,
        #[command(flatten)]
        pin: PinDirArg,
    },
}

pub fn run(command: &LimitsCommand) -> anyhow::Result<()> {
    match command {
        LimitsCommand::Show { pin, json } => {
            let limits = current(&pin.open()?)?;
            if *json {
                println!("{}", serde_json::to_string(&limits)?);
            } else {
                println!("{}", limits.summary());
            }
            Ok(())
        }
        LimitsCommand::Set { options, pin } => {
            if options.is_empty() {
                anyhow::bail!(
                    "nothing to set: give at least one limit (see `kmsd limits set --help`)"
                );
            }
            let mut tables = pin.open()?;
            let old = current(&tables)?;
            let new = options.apply(&old)?;
            tables.set_config(&new.to_config())?;
            if new.ipv6_prefix != old.ipv6_prefix {
                // Counts were kept per old prefix; they would never match again.
                let forgotten = tables.clear_sources()?;
                println!("IPv6 prefix changed: forgot the counts of {forgotten} sources");
            }
            println!("{}", new.summary());
            Ok(())
        }
    }
}

fn current(tables: &crate::edge::tables::Tables) -> anyhow::Result<Limits> {
    Limits::from_config(&tables.config()?).ok_or_else(|| {
        anyhow::anyhow!("no limits written yet: start `kmsd serve` with this --pin-dir once")
    })
}
