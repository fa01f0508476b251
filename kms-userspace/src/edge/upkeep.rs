//! Housekeeping of the block table while the daemon runs: entries past the
//! configured lifetime are expired (pfSense's hourly `expiretable`, but to the
//! second), and the state file is rewritten whenever the tables' membership
//! changes and once more at shutdown.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::Notify;
use tracing::{info, warn};

use kms_common::Stat;

use super::{limits::Limits, state, stats::StatsReader, tables::Tables};
use crate::shutdown::Shutdown;

const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    mut tables: Tables,
    mut stats: StatsReader,
    state_file: Option<PathBuf>,
    changed: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let mut saved: Option<Vec<String>> = None;
    let mut ticker = tokio::time::interval(TICK);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait() => true,
            _ = ticker.tick() => false,
            _ = changed.notified() => false,
        };
        if let Err(e) = expire(&mut tables, &mut stats) {
            warn!(error = %format!("{e:#}"), "expiring blocks failed");
        }
        if let Some(path) = &state_file
            && let Err(e) = save_if_changed(&tables, path, &mut saved, stopping)
        {
            warn!(error = %format!("{e:#}"), file = %path.display(), "saving the state file failed");
        }
        if stopping {
            return;
        }
    }
}

fn expire(tables: &mut Tables, stats: &mut StatsReader) -> anyhow::Result<()> {
    let Some(limits) = Limits::from_config(&tables.config()?) else {
        return Ok(());
    };
    if limits.block_lifetime == 0 {
        return Ok(());
    }
    let expired = tables.expire(limits.block_lifetime as u64)?;
    for (net, reason) in &expired {
        info!(source = %net, reason, lifetime = limits.block_lifetime, "block expired");
    }
    if !expired.is_empty() {
        stats.add(Stat::Expired, expired.len() as u64)?;
    }
    Ok(())
}

/// Saves when the set of entries differs from the last save (counters alone
/// do not count as a change), or always when `force`.
fn save_if_changed(
    tables: &Tables,
    path: &std::path::Path,
    saved: &mut Option<Vec<String>>,
    force: bool,
) -> anyhow::Result<()> {
    let snapshot = state::snapshot(tables)?;
    let membership: Vec<String> = snapshot
        .blocked
        .iter()
        .map(|r| format!("{} {} {}", r.net, r.reason, r.added_unix_ns))
        .chain(snapshot.allowed.iter().map(|n| format!("allow {n}")))
        .collect();
    if force || saved.as_ref() != Some(&membership) {
        state::save(path, &snapshot)?;
        *saved = Some(membership);
    }
    Ok(())
}
