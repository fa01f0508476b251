//! Typed handles on the enforcer's maps: the configuration, the block tables
//! (pf's `<virusprot>`), the allow tables and the per-source counts. Opened
//! from a loaded object (the daemon) or from the pins (operator commands), so
//! both work on the same kernel state.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{
        Array, HashMap, Map, MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::clock;
use kms_common::{
    enforce::{Blocked, Config, Reason, SourceKey, SourceState, is_mapped_v4},
    names,
};

type Trie<const N: usize, V> = LpmTrie<MapData, [u8; N], V>;

pub struct Tables {
    config: Array<MapData, Config>,
    sources: HashMap<MapData, SourceKey, SourceState>,
    blocked_v4: Trie<4, Blocked>,
    blocked_v6: Trie<16, Blocked>,
    allowed_v4: Trie<4, u8>,
    allowed_v6: Trie<16, u8>,
}

/// Where a map comes from.
enum Source<'a> {
    Loaded(&'a mut Ebpf),
    Pinned(&'a Path),
}

impl Source<'_> {
    fn map(&mut self, name: &str) -> anyhow::Result<Map> {
        match self {
            Source::Loaded(ebpf) => ebpf
                .take_map(name)
                .ok_or_else(|| anyhow!("the BPF object has no map {name}")),
            Source::Pinned(dir) => {
                let path = dir.join(name);
                let data = MapData::from_pin(&path).map_err(|e| match e {
                    MapError::SyscallError(ref s)
                        if s.io_error.kind() == std::io::ErrorKind::PermissionDenied =>
                    {
                        anyhow!(
                            "opening {}: permission denied (run as root)",
                            path.display()
                        )
                    }
                    other => anyhow::Error::from(other).context(format!(
                        "opening {} (has a daemon with this --pin-dir run?)",
                        path.display()
                    )),
                })?;
                Ok(Map::from_map_data(data)?)
            }
        }
    }
}

impl Tables {
    /// Takes the maps out of a freshly loaded object (the daemon).
    pub fn from_loaded(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Self::open(Source::Loaded(ebpf))
    }

    /// Opens the maps pinned in `dir` (operator commands, second handles).
    pub fn open_pinned(dir: &Path) -> anyhow::Result<Self> {
        Self::open(Source::Pinned(dir))
    }

    fn open(mut source: Source<'_>) -> anyhow::Result<Self> {
        Ok(Tables {
            config: Array::try_from(source.map(names::CONFIG_MAP)?)?,
            sources: HashMap::try_from(source.map(names::SOURCES_MAP)?)?,
            blocked_v4: LpmTrie::try_from(source.map(names::BLOCKED_V4_MAP)?)?,
            blocked_v6: LpmTrie::try_from(source.map(names::BLOCKED_V6_MAP)?)?,
            allowed_v4: LpmTrie::try_from(source.map(names::ALLOWED_V4_MAP)?)?,
            allowed_v6: LpmTrie::try_from(source.map(names::ALLOWED_V6_MAP)?)?,
        })
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        self.config.get(&0, 0).context("reading KMS_CONFIG")
    }

    pub fn set_config(&mut self, config: &Config) -> anyhow::Result<()> {
        self.config.set(0, config, 0).context("writing KMS_CONFIG")
    }

    /// Every block entry, v4 first.
    pub fn blocked(&self) -> anyhow::Result<Vec<(IpNet, Blocked)>> {
        let mut out = Vec::new();
        for item in self.blocked_v4.iter() {
            let (key, value) = item.context("reading KMS_BLOCKED_V4")?;
            out.push((net_v4(&key)?, value));
        }
        for item in self.blocked_v6.iter() {
            let (key, value) = item.context("reading KMS_BLOCKED_V6")?;
            out.push((net_v6(&key)?, value));
        }
        Ok(out)
    }

    /// Adds (or replaces) a block entry.
    pub fn block(&mut self, net: IpNet, entry: &Blocked) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.blocked_v4.insert(&key_v4(n), entry, 0),
            IpNet::V6(n) => self.blocked_v6.insert(&key_v6(n), entry, 0),
        }
        .with_context(|| format!("blocking {net} (is the block table full?)"))
    }

    /// Removes the entry for exactly `net`; false if there was none.
    pub fn unblock(&mut self, net: IpNet) -> anyhow::Result<bool> {
        let result = match net {
            IpNet::V4(n) => self.blocked_v4.remove(&key_v4(n)),
            IpNet::V6(n) => self.blocked_v6.remove(&key_v6(n)),
        };
        absent_is_false(result).with_context(|| format!("unblocking {net}"))
    }

    /// The block entry covering `addr` (longest prefix), if any.
    pub fn blocking(&self, addr: IpAddr) -> Option<Blocked> {
        match canonical(addr) {
            IpAddr::V4(a) => self.blocked_v4.get(&Key::new(32, a.octets()), 0).ok(),
            IpAddr::V6(a) => self.blocked_v6.get(&Key::new(128, a.octets()), 0).ok(),
        }
    }

    /// Removes the entries added more than `seconds` ago (pfctl's
    /// `-T expire`); returns each removed prefix with its reason.
    pub fn expire(&mut self, seconds: u64) -> anyhow::Result<Vec<(IpNet, &'static str)>> {
        let mut removed = Vec::new();
        for (net, entry) in self.blocked()? {
            if clock::age_seconds(entry.added_tai_ns) >= seconds && self.unblock(net)? {
                removed.push((
                    net,
                    Reason::from_u32(entry.reason).map_or("unknown", Reason::name),
                ));
            }
        }
        Ok(removed)
    }

    pub fn allowed(&self) -> anyhow::Result<Vec<IpNet>> {
        let mut out = Vec::new();
        for key in self.allowed_v4.keys() {
            out.push(net_v4(&key.context("reading KMS_ALLOWED_V4")?)?);
        }
        for key in self.allowed_v6.keys() {
            out.push(net_v6(&key.context("reading KMS_ALLOWED_V6")?)?);
        }
        Ok(out)
    }

    pub fn allow(&mut self, net: IpNet) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.allowed_v4.insert(&key_v4(n), 1, 0),
            IpNet::V6(n) => self.allowed_v6.insert(&key_v6(n), 1, 0),
        }
        .with_context(|| format!("allowing {net} (is the allow table full?)"))
    }

    pub fn disallow(&mut self, net: IpNet) -> anyhow::Result<bool> {
        let result = match net {
            IpNet::V4(n) => self.allowed_v4.remove(&key_v4(n)),
            IpNet::V6(n) => self.allowed_v6.remove(&key_v6(n)),
        };
        absent_is_false(result).with_context(|| format!("removing {net} from the allow list"))
    }

    /// Per-source state: open connections and the rate estimator.
    pub fn sources(&self) -> anyhow::Result<Vec<(IpAddr, SourceState)>> {
        let mut out = Vec::new();
        for item in self.sources.iter() {
            let (key, state) = item.context("reading KMS_SOURCES")?;
            out.push((source_addr(&key), state));
        }
        Ok(out)
    }

    /// Forgets every source's counts (after the IPv6 prefix changed, the old
    /// keys no longer match). Connections already open are not re-counted.
    pub fn clear_sources(&mut self) -> anyhow::Result<usize> {
        let keys: Vec<SourceKey> = self.sources.keys().filter_map(Result::ok).collect();
        for key in &keys {
            let _ = self.sources.remove(key);
        }
        Ok(keys.len())
    }
}

/// A map removal that found nothing is not an error to an operator.
fn absent_is_false(result: Result<(), MapError>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

fn key_v4(net: Ipv4Net) -> Key<[u8; 4]> {
    Key::new(net.prefix_len() as u32, net.network().octets())
}

fn key_v6(net: Ipv6Net) -> Key<[u8; 16]> {
    Key::new(net.prefix_len() as u32, net.network().octets())
}

fn net_v4(key: &Key<[u8; 4]>) -> anyhow::Result<IpNet> {
    let (len, data) = (key.prefix_len(), key.data());
    Ok(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(data), len as u8)?))
}

fn net_v6(key: &Key<[u8; 16]>) -> anyhow::Result<IpNet> {
    let (len, data) = (key.prefix_len(), key.data());
    Ok(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(data), len as u8)?))
}

fn source_addr(key: &SourceKey) -> IpAddr {
    if is_mapped_v4(&key.addr) {
        IpAddr::V4(Ipv4Addr::new(
            key.addr[12],
            key.addr[13],
            key.addr[14],
            key.addr[15],
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(key.addr))
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 sources.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    }
}
