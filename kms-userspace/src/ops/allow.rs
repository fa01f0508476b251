//! `kmsd allow`: the allow list (sources never counted or blocked), on the
//! pinned allow tables.

use clap::Subcommand;
use ipnet::IpNet;

use super::{PinDirArg, StateFileArg};

#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// List allow-listed prefixes.
    Show {
        #[command(flatten)]
        pin: PinDirArg,
        /// Print a JSON array instead of one prefix per line.
        #[arg(long)]
        json: bool,
    },
    /// Allow-list prefixes (an address is its own /32 or /128).
    Add {
        #[arg(required = true, value_name = "CIDR", value_parser = parse_net)]
        nets: Vec<IpNet>,
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
    /// Remove prefixes from the allow list.
    Delete {
        #[arg(required = true, value_name = "CIDR", value_parser = parse_net)]
        nets: Vec<IpNet>,
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    super::blocked::Target::from_str_net(text)
}

pub fn run(command: &AllowCommand) -> anyhow::Result<()> {
    match command {
        AllowCommand::Show { pin, json } => {
            let nets = pin.open()?.allowed()?;
            if *json {
                let list: Vec<String> = nets.iter().map(IpNet::to_string).collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for net in &nets {
                    println!("{net}");
                }
                println!("{} entries.", nets.len());
            }
            Ok(())
        }
        AllowCommand::Add { nets, pin, state } => {
            let mut tables = pin.open()?;
            for net in nets {
                tables.allow(*net)?;
                println!("allowed {net}");
            }
            state.save(&tables)
        }
        AllowCommand::Delete { nets, pin, state } => {
            let mut tables = pin.open()?;
            let mut missing = 0;
            for net in nets {
                if tables.disallow(*net)? {
                    println!("deleted {net}");
                } else {
                    eprintln!("kmsd: {net} is not on the allow list");
                    missing += 1;
                }
            }
            state.save(&tables)?;
            if missing > 0 {
                anyhow::bail!("{missing} of the given prefixes were not on the allow list");
            }
            Ok(())
        }
    }
}
