//! One test's private network: a server namespace (where kmsd runs, XDP on its
//! veth end) and a client namespace, joined by a veth pair.
//!
//! ```text
//!  client ns                      server ns
//!  <client_if> 198.18.0.2/24 ---- <server_if> 198.18.0.1/24   kmsd, XDP
//!              2001:db8::2/64                 2001:db8::1/64
//! ```
//! Both ends live in namespaces of their own, so every test can use the same
//! addresses without seeing another test's traffic.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use kms_common::{Stat, names};

use crate::{Bpffs, Kmsd, Netns, in_netns, ip, unique_name};

pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// Fields drop in declaration order: kmsd dies before its pins and
/// namespaces go away.
pub struct Testbed {
    pub kmsd: Option<Kmsd>,
    pub bpffs: Bpffs,
    pub client: Netns,
    pub server: Netns,
    pub workdir: WorkDir,
    pub server_if: String,
    pub client_if: String,
}

impl Testbed {
    pub fn new() -> anyhow::Result<Self> {
        let id = unique_name("");
        let workdir = WorkDir::new(&id)?;
        let server = Netns::new(format!("kms-edge-test-{id}-s"))?;
        let client = Netns::new(format!("kms-edge-test-{id}-c"))?;
        let bpffs = Bpffs::new(&id)?;
        let server_if = format!("ke{id}s");
        let client_if = format!("ke{id}c");
        ip(&[
            "link",
            "add",
            &server_if,
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            &client.name,
        ])?;
        for (ns, iface, v4, v6) in [
            (&server, &server_if, SERVER_V4, SERVER_V6),
            (&client, &client_if, CLIENT_V4, CLIENT_V6),
        ] {
            ns.exec(&["addr", "add", &format!("{v4}/24"), "dev", iface])?;
            ns.exec(&["addr", "add", &format!("{v6}/64"), "dev", iface, "nodad"])?;
            ns.exec(&["link", "set", iface, "up"])?;
        }
        Ok(Testbed {
            kmsd: None,
            bpffs,
            client,
            server,
            workdir,
            server_if,
            client_if,
        })
    }

    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.dir.join("v1")
    }

    /// Starts `kmsd serve` in the server namespace with this testbed's pin
    /// directory, then `extra` arguments; waits until its listeners are bound.
    pub fn start_kmsd(&mut self, extra: &[&str]) -> anyhow::Result<&mut Kmsd> {
        let pin_dir = self.pin_dir();
        let mut args = vec!["--pin-dir", pin_dir.to_str().context("utf-8 path")?];
        args.extend_from_slice(extra);
        let log = self.workdir.0.join(format!("kmsd-{}.log", unique_name("")));
        let mut kmsd = Kmsd::serve(&self.server, &args, log)?;
        kmsd.wait_for_log("KMS listener bound", Duration::from_secs(10))?;
        Ok(self.kmsd.insert(kmsd))
    }

    pub fn kmsd(&mut self) -> &mut Kmsd {
        self.kmsd.as_mut().expect("kmsd started")
    }

    /// Opens `n` TCP connections from the client namespace to `addr` and
    /// returns how many completed the handshake (each within 2 s).
    pub fn connect_from_client(&self, addr: SocketAddr, n: usize) -> anyhow::Result<usize> {
        in_netns(&self.client, move || {
            (0..n)
                .filter(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
                .count()
        })
    }

    /// The XDP counters, read through the pinned map, summed over CPUs.
    pub fn counters(&self) -> anyhow::Result<HashMap<Stat, u64>> {
        let path = self.pin_dir().join(names::STATS_MAP);
        let map = Map::from_map_data(
            MapData::from_pin(&path).with_context(|| format!("{}", path.display()))?,
        )?;
        let array: PerCpuArray<MapData, u64> = PerCpuArray::try_from(map)?;
        Stat::ALL
            .iter()
            .map(|&stat| Ok((stat, array.get(&stat.index(), 0)?.iter().sum())))
            .collect()
    }
}

pub fn server_addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A scratch directory for logs, removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    fn new(id: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kms-edge-test-work-{id}"));
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
