//! `kmsd status`: what is attached where, the limits, how full the maps are,
//! and the counters. Reads only the pins, so it works without the daemon.

use std::path::Path;

use anyhow::Context as _;
use aya::programs::links::{FdLink, PinnedLink};
use clap::Args;
use kms_common::enforce::{ALLOWED_CAPACITY, BLOCKED_CAPACITY, SOURCES_CAPACITY};
use serde_json::json;

use super::PinDirArg;
use crate::edge::{limits::Limits, pins, stats::StatsReader};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pin: PinDirArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// (link id, program id) of a pinned link, `None` for a stale pin.
fn link_ids(path: &Path) -> Option<(u32, u32)> {
    let link = PinnedLink::from_pin(path).ok()?;
    let info = FdLink::from(link).info().ok()?;
    Some((info.id(), info.program_id()))
}

pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let dir = &args.pin.pin_dir;
    let tables = args.pin.open()?;
    let xdp: Vec<_> = pins::link_pins(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .into_iter()
        .map(|pin| {
            let ids = link_ids(&pin.path);
            (pin, ids)
        })
        .collect();
    let sock_ops: Vec<_> = pins::sock_ops_pins(dir)?
        .into_iter()
        .map(|path| {
            let ids = link_ids(&path);
            (path, ids)
        })
        .collect();
    let limits = Limits::from_config(&tables.config()?);
    let blocked = tables.blocked()?;
    let blocked_v4 = blocked.iter().filter(|(n, _)| n.addr().is_ipv4()).count();
    let allowed = tables.allowed()?;
    let allowed_v4 = allowed.iter().filter(|n| n.addr().is_ipv4()).count();
    let sources = tables.sources()?;
    let open: u64 = sources.iter().map(|(_, s)| s.conns as u64).sum();
    let maps = [
        ("blocked_v4", blocked_v4, BLOCKED_CAPACITY),
        ("blocked_v6", blocked.len() - blocked_v4, BLOCKED_CAPACITY),
        ("allowed_v4", allowed_v4, ALLOWED_CAPACITY),
        ("allowed_v6", allowed.len() - allowed_v4, ALLOWED_CAPACITY),
        ("sources", sources.len(), SOURCES_CAPACITY),
    ];
    let counters = StatsReader::open_pinned(dir)?.read()?;

    if args.json {
        let value = json!({
            "pin_dir": dir,
            "xdp": xdp.iter().map(|(pin, ids)| json!({
                "iface": pin.iface, "mode": pin.mode.as_str(),
                "link_id": ids.map(|i| i.0), "program_id": ids.map(|i| i.1),
            })).collect::<Vec<_>>(),
            "sock_ops": sock_ops.iter().map(|(path, ids)| json!({
                "pin": path, "link_id": ids.map(|i| i.0), "program_id": ids.map(|i| i.1),
            })).collect::<Vec<_>>(),
            "limits": limits,
            "open_connections_counted": open,
            "maps": maps.iter().map(|(name, used, cap)| (name.to_string(), json!({"entries": used, "capacity": cap}))).collect::<serde_json::Map<_, _>>(),
            "counters": counters.iter().map(|(s, v)| (s.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{value}");
        return Ok(());
    }
    println!("pin dir    {}", dir.display());
    if xdp.is_empty() {
        println!("xdp        not attached");
    }
    for (pin, ids) in &xdp {
        println!(
            "xdp        {} ({} mode, {})",
            pin.iface,
            pin.mode.as_str(),
            describe(*ids)
        );
    }
    if sock_ops.is_empty() {
        println!("sock_ops   not attached");
    }
    for (path, ids) in &sock_ops {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!("sock_ops   {name} ({})", describe(*ids));
    }
    match &limits {
        Some(limits) => println!("limits     {}", limits.summary()),
        None => println!("limits     not configured"),
    }
    println!("counted    {open} open connections");
    println!("maps");
    for (name, used, cap) in maps {
        println!("  {name:<12} {used:>6} / {cap}");
    }
    println!("counters");
    for (stat, value) in counters {
        println!("  {:<28} {value}", stat.name());
    }
    Ok(())
}

fn describe(ids: Option<(u32, u32)>) -> String {
    match ids {
        Some((link, program)) => format!("link {link}, program {program}"),
        None => "stale pin".to_string(),
    }
}
