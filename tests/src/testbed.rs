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

use crate::{Bpffs, Kmsd, Netns, TestCgroup, in_netns, ip, unique_name};

pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// Fields drop in declaration order: kmsd dies before its pins and
/// namespaces go away.
pub struct Testbed {
    pub kmsd: Option<Kmsd>,
    pub cgroup: TestCgroup,
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
        let cgroup = TestCgroup::new(&id)?;
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
            // kmsd's HTTP endpoint listens on 127.0.0.1 in the server namespace.
            ns.exec(&["link", "set", "lo", "up"])?;
        }
        Ok(Testbed {
            kmsd: None,
            cgroup,
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

    pub fn state_file(&self) -> PathBuf {
        self.workdir.0.join("state.json")
    }

    /// The arguments that keep a kmsd to this testbed's own state: pin
    /// directory, cgroup and state file.
    pub fn own_state_args(&self) -> Vec<String> {
        [
            ("--pin-dir", self.pin_dir()),
            ("--cgroup", self.cgroup.path.clone()),
            ("--state-file", self.state_file()),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    }

    /// Starts `kmsd serve` in the server namespace with this testbed's own
    /// state, then `extra` arguments; waits until every listener is bound
    /// (each binds on its own task; two, 0.0.0.0 and [::], when none is given).
    pub fn start_kmsd(&mut self, extra: &[&str]) -> anyhow::Result<&mut Kmsd> {
        let listeners = match extra.iter().filter(|a| **a == "--listen").count() {
            0 => 2,
            n => n,
        };
        self.start_kmsd_with_bound(extra, listeners)
    }

    /// [`Self::start_kmsd`], waiting for `bound` listeners only (for a test
    /// whose other listeners cannot bind yet).
    pub fn start_kmsd_with_bound(
        &mut self,
        extra: &[&str],
        bound: usize,
    ) -> anyhow::Result<&mut Kmsd> {
        let own = self.own_state_args();
        let mut args: Vec<&str> = own.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let log = self.workdir.0.join(format!("kmsd-{}.log", unique_name("")));
        let mut kmsd = Kmsd::serve(&self.server, &args, log)?;
        kmsd.wait_for_log_count("KMS listener bound", bound, Duration::from_secs(10))?;
        Ok(self.kmsd.insert(kmsd))
    }

    /// Runs an operator command (`kmsd blocked show`, ...) on this testbed's
    /// pins (and state file, for the verbs that change something).
    pub fn op_output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut cmd = std::process::Command::new(crate::process::kmsd_bin());
        cmd.args(args).arg("--pin-dir").arg(self.pin_dir());
        let changes = matches!(
            args,
            ["blocked", "expire" | "flush" | "delete" | "add", ..]
                | ["allow", "add" | "delete", ..]
        );
        if changes {
            cmd.arg("--state-file").arg(self.state_file());
        }
        Ok(cmd.output()?)
    }

    /// [`Self::op_output`], failing unless it succeeds; returns stdout.
    pub fn op(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.op_output(args)?;
        anyhow::ensure!(
            out.status.success(),
            "kmsd {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `kmsd blocked show --json`, as (source, reason) pairs and the full rows.
    pub fn blocked(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let text = self.op(&["blocked", "show", "--json"])?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The sources in the block table.
    pub fn blocked_sources(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .blocked()?
            .iter()
            .map(|row| row["source"].as_str().unwrap_or_default().to_string())
            .collect())
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

    /// `GET path` from kmsd's HTTP endpoint (127.0.0.1:9101 in the server
    /// namespace): status code and body.
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::http::get(&self.server, "127.0.0.1:9101".parse()?, path)
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
