//! The state file: the block and allow tables saved as JSON on every change
//! and at shutdown, and restored at start, so blocks survive a reboot (which
//! empties bpffs) with their original add times.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context as _;
use ipnet::IpNet;
use kms_common::enforce::{Blocked, Reason};
use serde::{Deserialize, Serialize};

use super::{clock, tables::Tables};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    pub version: u32,
    pub blocked: Vec<BlockedRecord>,
    pub allowed: Vec<IpNet>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockedRecord {
    pub net: IpNet,
    pub reason: String,
    /// RFC 3339, for people reading the file.
    pub added: String,
    /// The same instant, exactly, as Unix nanoseconds.
    pub added_unix_ns: u128,
    pub packets: u64,
    pub bytes: u64,
    pub conns: u32,
    pub rate_count: u64,
}

impl BlockedRecord {
    pub fn new(net: IpNet, entry: &Blocked) -> Self {
        let added = clock::to_system_time(entry.added_tai_ns);
        BlockedRecord {
            net,
            reason: Reason::from_u32(entry.reason)
                .map_or("unknown", Reason::name)
                .to_string(),
            added: clock::rfc3339(added),
            added_unix_ns: added
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            packets: entry.packets,
            bytes: entry.bytes,
            conns: entry.conns,
            rate_count: entry.rate_count,
        }
    }

    fn entry(&self) -> Blocked {
        let added = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_nanos(self.added_unix_ns.min(u64::MAX as u128) as u64);
        let reason = Reason::ALL
            .into_iter()
            .find(|r| r.name() == self.reason)
            .unwrap_or(Reason::Manual);
        Blocked {
            added_tai_ns: clock::from_system_time(added),
            packets: self.packets,
            bytes: self.bytes,
            reason: reason as u32,
            conns: self.conns,
            rate_count: self.rate_count,
        }
    }
}

/// A snapshot of the tables, in a stable order.
pub fn snapshot(tables: &Tables) -> anyhow::Result<StateFile> {
    let mut blocked: Vec<BlockedRecord> = tables
        .blocked()?
        .iter()
        .map(|(net, entry)| BlockedRecord::new(*net, entry))
        .collect();
    blocked.sort_by_key(|r| r.net);
    let mut allowed = tables.allowed()?;
    allowed.sort();
    Ok(StateFile {
        version: VERSION,
        blocked,
        allowed,
    })
}

pub fn save(path: &Path, state: &StateFile) -> anyhow::Result<()> {
    write_atomically(path, &serde_json::to_vec_pretty(state)?)
}

/// Writes a temporary file and renames it over `path` (so a crash leaves the
/// old file or the new one, never half of one), creating the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The saved state, or `None` if there is no file yet.
pub fn load(path: &Path) -> anyhow::Result<Option<StateFile>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let state: StateFile = serde_json::from_slice(&text)
        .with_context(|| format!("parsing state file {}", path.display()))?;
    anyhow::ensure!(
        state.version == VERSION,
        "state file {} has version {}, this kmsd reads {VERSION}",
        path.display(),
        state.version
    );
    Ok(Some(state))
}

/// Puts saved entries missing from the tables back, with their add times;
/// entries past `lifetime_seconds` (0: none) are not restored. Returns how
/// many block entries were restored.
pub fn restore(
    tables: &mut Tables,
    state: &StateFile,
    lifetime_seconds: u32,
) -> anyhow::Result<usize> {
    let present: Vec<IpNet> = tables.blocked()?.into_iter().map(|(net, _)| net).collect();
    let mut restored = 0;
    for record in &state.blocked {
        if present.contains(&record.net) {
            continue;
        }
        let entry = record.entry();
        if lifetime_seconds != 0
            && clock::age_seconds(entry.added_tai_ns) >= lifetime_seconds as u64
        {
            continue;
        }
        tables.block(record.net, &entry)?;
        restored += 1;
    }
    for net in &state.allowed {
        tables.allow(*net)?;
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_add_time_and_reason() {
        let entry = Blocked {
            added_tai_ns: clock::tai_now_ns() - 90_000_000_000,
            packets: 7,
            bytes: 420,
            reason: Reason::MaxSrcConnRate as u32,
            conns: 3,
            rate_count: 6000,
        };
        let net: IpNet = "2001:db8:1::/64".parse().unwrap();
        let record = BlockedRecord::new(net, &entry);
        assert_eq!(record.reason, "max-src-conn-rate");
        let back = record.entry();
        assert_eq!(back.reason, entry.reason);
        assert_eq!((back.packets, back.bytes, back.conns), (7, 420, 3));
        let drift = back.added_tai_ns.abs_diff(entry.added_tai_ns);
        assert!(drift < 5_000_000, "{drift}");
    }

    #[test]
    fn save_and_load_round_trip_and_reject_garbage() {
        let dir = std::env::temp_dir().join(format!("kmsd-state-{}", std::process::id()));
        let path = dir.join("state.json");
        let state = StateFile {
            version: VERSION,
            blocked: vec![],
            allowed: vec!["198.18.0.0/15".parse().unwrap()],
        };
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        fs::write(&path, b"{not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("parsing state file"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
