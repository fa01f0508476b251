//! Reading the XDP program's per-CPU counters.

use std::path::Path;

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray, PerCpuValues};
use kms_common::{Stat, names};

/// A handle on the `KMS_STATS` map, from a loaded object or from its pin.
pub struct StatsReader {
    map: PerCpuArray<MapData, u64>,
}

impl StatsReader {
    pub fn from_map(map: Map) -> anyhow::Result<Self> {
        Ok(StatsReader {
            map: PerCpuArray::try_from(map).context("KMS_STATS is not a per-CPU array")?,
        })
    }

    pub fn open_pinned(pin_dir: &Path) -> anyhow::Result<Self> {
        let path = pin_dir.join(names::STATS_MAP);
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        Self::from_map(Map::from_map_data(data)?)
    }

    /// Adds `n` to a counter kept by userspace (the first CPU's slot; no BPF
    /// program writes those, so nothing races with this).
    pub fn add(&mut self, stat: Stat, n: u64) -> anyhow::Result<()> {
        let mut values: Vec<u64> = self.map.get(&stat.index(), 0)?.iter().copied().collect();
        if let Some(first) = values.first_mut() {
            *first += n;
        }
        self.map
            .set(stat.index(), PerCpuValues::try_from(values)?, 0)
            .with_context(|| format!("updating counter {}", stat.name()))
    }

    /// Every counter, summed over the CPUs.
    pub fn read(&self) -> anyhow::Result<Vec<(Stat, u64)>> {
        Stat::ALL
            .iter()
            .map(|&stat| {
                let per_cpu = self
                    .map
                    .get(&stat.index(), 0)
                    .with_context(|| format!("reading counter {}", stat.name()))?;
                Ok((stat, per_cpu.iter().sum()))
            })
            .collect()
    }
}

/// `name=value` pairs on one line, for logs.
pub fn format_line(counters: &[(Stat, u64)]) -> String {
    counters
        .iter()
        .map(|(s, v)| format!("{}={v}", s.name()))
        .collect::<Vec<_>>()
        .join(" ")
}
