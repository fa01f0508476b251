//! `kmsd status`: what is attached where, and the packet counters.

use anyhow::Context as _;
use aya::programs::links::PinnedLink;
use clap::Args;
use serde_json::json;

use super::PinDirArg;
use crate::edge::{pins, stats::StatsReader};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pin: PinDirArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let dir = &args.pin.pin_dir;
    pins::existing(dir)?;
    let mut links = Vec::new();
    for pin in pins::link_pins(dir).with_context(|| format!("reading {}", dir.display()))? {
        let info = PinnedLink::from_pin(&pin.path)
            .map_err(anyhow::Error::from)
            .and_then(|link| Ok(aya::programs::links::FdLink::from(link).info()?));
        let (link_id, program_id) = match info {
            Ok(info) => (Some(info.id()), Some(info.program_id())),
            Err(_) => (None, None),
        };
        links.push((pin, link_id, program_id));
    }
    let counters = StatsReader::open_pinned(dir)?.read()?;

    if args.json {
        let value = json!({
            "pin_dir": dir,
            "xdp": links.iter().map(|(pin, link_id, program_id)| json!({
                "iface": pin.iface, "mode": pin.mode.as_str(), "link_id": link_id, "program_id": program_id,
            })).collect::<Vec<_>>(),
            "counters": counters.iter().map(|(s, v)| (s.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{value}");
        return Ok(());
    }
    println!("pin dir   {}", dir.display());
    if links.is_empty() {
        println!("xdp       not attached");
    }
    for (pin, link_id, program_id) in &links {
        let ids = match (link_id, program_id) {
            (Some(l), Some(p)) => format!("link {l}, program {p}"),
            _ => "stale pin".to_string(),
        };
        println!(
            "xdp       {} ({} mode, {ids})",
            pin.iface,
            pin.mode.as_str()
        );
    }
    println!("counters");
    for (stat, value) in counters {
        println!("  {:<12} {value}", stat.name());
    }
    Ok(())
}
