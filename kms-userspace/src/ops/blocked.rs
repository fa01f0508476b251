//! `kmsd blocked`: pfctl's `-t virusprot -T show|expire|flush|delete|add`,
//! on the pinned block tables (so it works with the daemon stopped).

use std::{net::IpAddr, str::FromStr};

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use ipnet::IpNet;
use kms_common::{
    Stat,
    enforce::{Blocked, Reason},
};
use serde_json::json;

use super::{PinDirArg, StateFileArg};
use crate::edge::{clock, stats::StatsReader, tables::Tables};

#[derive(Subcommand, Debug)]
pub enum BlockedCommand {
    /// List blocked sources: prefix, reason, when added, age, packets and bytes dropped.
    Show {
        #[command(flatten)]
        pin: PinDirArg,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove the entries added more than SECONDS ago (pfctl -T expire).
    Expire {
        seconds: u64,
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
    /// Remove every entry (pfctl -T flush).
    Flush {
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
    /// Remove entries: a prefix removes exactly that entry, an address the
    /// entry that blocks it (pfctl -T delete).
    Delete {
        #[arg(required = true, value_name = "ADDR|PREFIX")]
        targets: Vec<Target>,
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
    /// Block addresses or prefixes (pfctl -T add).
    Add {
        #[arg(required = true, value_name = "ADDR|PREFIX")]
        targets: Vec<Target>,
        /// Reason recorded with the entries.
        #[arg(long, value_enum, default_value = "manual")]
        reason: ReasonArg,
        #[command(flatten)]
        pin: PinDirArg,
        #[command(flatten)]
        state: StateFileArg,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReasonArg {
    Manual,
    MaxSrcConn,
    MaxSrcConnRate,
}

impl From<ReasonArg> for Reason {
    fn from(r: ReasonArg) -> Reason {
        match r {
            ReasonArg::Manual => Reason::Manual,
            ReasonArg::MaxSrcConn => Reason::MaxSrcConn,
            ReasonArg::MaxSrcConnRate => Reason::MaxSrcConnRate,
        }
    }
}

/// An address or a prefix, as operators type them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Addr(IpAddr),
    Net(IpNet),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| {
                format!("{text:?} is not a prefix (e.g. 198.18.5.0/24, 2001:db8:1::/64)")
            })?;
            if net.network() != net.addr() {
                return Err(format!(
                    "{text:?} has host bits set; did you mean {}?",
                    net.trunc()
                ));
            }
            Ok(Target::Net(net))
        } else {
            text.parse()
                .map(Target::Addr)
                .map_err(|_| format!("{text:?} is not an IP address or prefix"))
        }
    }
}

impl Target {
    /// Parses an address or prefix straight to the prefix it stands for.
    pub fn from_str_net(text: &str) -> Result<IpNet, String> {
        text.parse::<Target>().map(Target::net)
    }

    /// The prefix an address stands for: the host itself.
    pub fn net(self) -> IpNet {
        match self {
            Target::Net(net) => net,
            Target::Addr(addr) => IpNet::from(crate::edge::tables::canonical(addr)),
        }
    }
}

pub fn run(command: &BlockedCommand) -> anyhow::Result<()> {
    match command {
        BlockedCommand::Show { pin, json } => show(&pin.open()?, *json),
        BlockedCommand::Expire {
            seconds,
            pin,
            state,
        } => {
            let mut tables = pin.open()?;
            let removed = tables.expire(*seconds)?;
            if !removed.is_empty() {
                StatsReader::open_pinned(&pin.pin_dir)?.add(Stat::Expired, removed.len() as u64)?;
            }
            let total = removed.len() + tables.blocked()?.len();
            for (net, reason) in &removed {
                println!("expired {net} ({reason})");
            }
            println!("{}/{total} entries expired.", removed.len());
            state.save(&tables)
        }
        BlockedCommand::Flush { pin, state } => {
            let mut tables = pin.open()?;
            let entries = tables.blocked()?;
            for (net, _) in &entries {
                tables.unblock(*net)?;
            }
            println!("{} entries deleted.", entries.len());
            state.save(&tables)
        }
        BlockedCommand::Delete {
            targets,
            pin,
            state,
        } => {
            let mut tables = pin.open()?;
            let mut deleted = 0;
            for target in targets {
                let net = match *target {
                    Target::Net(net) => Some(net),
                    // An address names the entry that blocks it, which may
                    // be its /64 or a wider prefix an operator added.
                    Target::Addr(addr) => covering(&tables, addr)?,
                };
                match net {
                    Some(net) if tables.unblock(net)? => {
                        println!("deleted {net}");
                        deleted += 1;
                    }
                    _ => eprintln!("kmsd: {} is not blocked", display(*target)),
                }
            }
            println!("{deleted}/{} entries deleted.", targets.len());
            state.save(&tables)?;
            if deleted < targets.len() {
                bail!(
                    "{} of the given entries were not blocked",
                    targets.len() - deleted
                );
            }
            Ok(())
        }
        BlockedCommand::Add {
            targets,
            reason,
            pin,
            state,
        } => {
            let mut tables = pin.open()?;
            let entry = Blocked {
                added_tai_ns: clock::tai_now_ns(),
                reason: Reason::from(*reason) as u32,
                ..Default::default()
            };
            for target in targets {
                let net = target.net();
                tables.block(net, &entry)?;
                println!("added {net}");
            }
            println!("{}/{} entries added.", targets.len(), targets.len());
            state.save(&tables)
        }
    }
}

fn display(target: Target) -> String {
    match target {
        Target::Addr(a) => a.to_string(),
        Target::Net(n) => n.to_string(),
    }
}

/// The block entry whose prefix covers `addr`, if any.
fn covering(tables: &Tables, addr: IpAddr) -> anyhow::Result<Option<IpNet>> {
    let addr = crate::edge::tables::canonical(addr);
    Ok(tables
        .blocked()?
        .into_iter()
        .map(|(net, _)| net)
        .filter(|net| net.contains(&addr))
        .max_by_key(IpNet::prefix_len))
}

fn show(tables: &Tables, as_json: bool) -> anyhow::Result<()> {
    let entries = tables.blocked()?;
    if as_json {
        let rows: Vec<_> = entries
            .iter()
            .map(|(net, e)| {
                json!({
                    "source": net.to_string(),
                    "reason": reason_name(e),
                    "added": clock::rfc3339(clock::to_system_time(e.added_tai_ns)),
                    "age_seconds": clock::age_seconds(e.added_tai_ns),
                    "packets_dropped": e.packets,
                    "bytes_dropped": e.bytes,
                    "conns_at_trip": e.conns,
                    "rate_at_trip": e.rate_count as f64 / 1000.0,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    println!(
        "{:<44} {:<18} {:<20} {:>8} {:>12} {:>14}",
        "SOURCE", "REASON", "ADDED (UTC)", "AGE", "PACKETS", "BYTES"
    );
    for (net, e) in &entries {
        let added = clock::rfc3339(clock::to_system_time(e.added_tai_ns));
        println!(
            "{:<44} {:<18} {:<20} {:>8} {:>12} {:>14}",
            net.to_string(),
            reason_name(e),
            added.get(..19).unwrap_or(&added),
            age(clock::age_seconds(e.added_tai_ns)),
            e.packets,
            e.bytes
        );
    }
    println!("{} entries.", entries.len());
    Ok(())
}

fn reason_name(entry: &Blocked) -> &'static str {
    Reason::from_u32(entry.reason).map_or("unknown", Reason::name)
}

/// `3d04h`, `2h05m`, `4m09s`, `12s`.
fn age(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_addresses_and_prefixes_and_refuse_the_rest() {
        assert_eq!(
            "198.18.0.2".parse::<Target>().unwrap().net(),
            "198.18.0.2/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            "2001:db8:1::/64".parse::<Target>().unwrap().net(),
            "2001:db8:1::/64".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            "::ffff:198.18.0.2".parse::<Target>().unwrap().net(),
            "198.18.0.2/32".parse::<IpNet>().unwrap()
        );
        let host_bits = "2001:db8::1/64".parse::<Target>().unwrap_err();
        assert!(host_bits.contains("2001:db8::/64"), "{host_bits}");
        assert!("example.com".parse::<Target>().is_err());
        assert!("198.18.0.0/33".parse::<Target>().is_err());
    }

    #[test]
    fn ages_read_like_durations() {
        assert_eq!(age(12), "12s");
        assert_eq!(age(249), "4m09s");
        assert_eq!(age(7500), "2h05m");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3d04h");
    }
}
