//! `cargo xtask bench xdp` (needs root):
//!
//! (a) the XDP program under BPF_PROG_TEST_RUN, one million repeats per
//!     packet class, with the block tables holding 10 000 entries per family;
//! (b) drop throughput on a veth pair in native mode: a flood from blocked
//!     sources against kms_xdp, a bare XDP_DROP and an nftables set drop at
//!     prerouting, measured in one run.
//!
//! Writes target/bench/xdp.json and xdp.md. Environment: `KMS_BENCH_REPEAT`
//! (default 1000000) and `KMS_BENCH_FLOOD_SECONDS` (default 5).

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use ipnet::IpNet;
use kms_common::{
    Stat,
    enforce::{Blocked, Reason},
    names,
};
use kms_userspace::edge::{BPF_OBJECT, clock, limits::Limits, stats::StatsReader, tables::Tables};
use serde_json::{Value, json};
use tests::{
    Bpffs, Netns, Testbed,
    netns::enter,
    packet::{self, ACK, SYN},
    unique_name,
};

const XDP_PASS: u32 = 2;
const XDP_DROP: u32 = 1;
const FILL: u32 = 10_000;
const RUNS: usize = 5;
/// Blocked sources the flood cycles through.
const FLOOD_SOURCES: u8 = 250;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let repeat = env_u64("KMS_BENCH_REPEAT", 1_000_000) as u32;
    let flood_seconds = env_u64("KMS_BENCH_FLOOD_SECONDS", 5);
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    fs::create_dir_all(&out_dir)?;

    let test_run = test_run_table(repeat)?;
    let flood = flood_table(flood_seconds)?;
    let report = json!({
        "benchmark": "xdp",
        "kernel": kernel(),
        "test_run": { "repeat": repeat, "block_entries_per_family": FILL, "rows": test_run },
        "flood": { "seconds": flood_seconds, "rows": flood },
    });
    fs::write(
        out_dir.join("xdp.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let md = markdown(&report);
    fs::write(out_dir.join("xdp.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Loads the object with its maps pinned in a private bpffs.
fn load(bpffs: &Bpffs) -> anyhow::Result<Ebpf> {
    Ok(EbpfLoader::new()
        .default_map_pin_directory(&bpffs.dir)
        .load(BPF_OBJECT)?)
}

fn blocked_entry() -> Blocked {
    Blocked {
        added_tai_ns: clock::tai_now_ns(),
        reason: Reason::MaxSrcConn as u32,
        ..Default::default()
    }
}

fn net(text: &str) -> IpNet {
    text.parse().expect("prefix")
}

// ---------------------------------------------------------------- (a)

fn test_run_table(repeat: u32) -> anyhow::Result<Vec<Value>> {
    let bpffs = Bpffs::new(&unique_name("bench"))?;
    let mut ebpf = load(&bpffs)?;
    let mut tables = Tables::from_loaded(&mut ebpf)?;
    tables.set_config(&Limits::default().to_config())?;
    let entry = blocked_entry();
    // Realistic tables: 10 000 unrelated blocks per family around the ones hit.
    for i in 0..FILL {
        let v4 = IpNet::new(IpAddr::V4(Ipv4Addr::from(0xc613_0000 + i)), 32)?;
        let v6 = IpNet::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, i as u16, 0, 0, 0, 0)),
            64,
        )?;
        tables.block(v4, &entry)?;
        tables.block(v6, &entry)?;
    }
    tables.block(net("198.18.0.66/32"), &entry)?;
    tables.block(net("2001:db8:66::/64"), &entry)?;
    tables.allow(net("198.18.77.0/24"))?;
    for i in 0..100u32 {
        tables.allow(IpNet::new(
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))),
            24,
        )?)?;
    }

    let program: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .context("no XDP program")?
        .try_into()?;
    program.load()?;

    let mac = packet::BROADCAST;
    let server4 = Ipv4Addr::new(198, 18, 0, 1);
    let server6: Ipv6Addr = "2001:db8::1".parse()?;
    let unknown4 = Ipv4Addr::new(198, 18, 0, 2);
    let unknown6: Ipv6Addr = "2001:db8::2".parse()?;
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("non-IP (ARP)", packet::arp_frame(), XDP_PASS),
        (
            "IPv4 TCP to another port",
            packet::ipv4_frame(
                mac,
                &packet::ipv4_tcp(unknown4, server4, 40000, 443, ACK, 1),
            ),
            XDP_PASS,
        ),
        (
            "IPv4 SYN to 1688, unknown source",
            packet::ipv4_frame(
                mac,
                &packet::ipv4_tcp(unknown4, server4, 40000, 1688, SYN, 1),
            ),
            XDP_PASS,
        ),
        (
            "IPv6 SYN to 1688, unknown source",
            packet::ipv6_frame(
                mac,
                &packet::ipv6_tcp(unknown6, server6, 40000, 1688, SYN, 1),
            ),
            XDP_PASS,
        ),
        (
            "IPv4 from an overloaded source",
            packet::ipv4_frame(
                mac,
                &packet::ipv4_tcp(Ipv4Addr::new(198, 18, 0, 66), server4, 40000, 1688, SYN, 1),
            ),
            XDP_DROP,
        ),
        (
            "IPv6 from an overloaded /64",
            packet::ipv6_frame(
                mac,
                &packet::ipv6_tcp("2001:db8:66::9".parse()?, server6, 40000, 1688, SYN, 1),
            ),
            XDP_DROP,
        ),
        (
            "IPv4 from an allow-listed source",
            packet::ipv4_frame(
                mac,
                &packet::ipv4_tcp(Ipv4Addr::new(198, 18, 77, 9), server4, 40000, 1688, SYN, 1),
            ),
            XDP_PASS,
        ),
    ];

    let mut rows = Vec::new();
    for (name, frame, expected) in cases {
        let mut samples = Vec::new();
        for _ in 0..RUNS {
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&frame);
            opts.repeat = repeat;
            let result = program.test_run(opts)?;
            if result.return_value != expected {
                bail!(
                    "{name}: verdict {} (expected {expected})",
                    result.return_value
                );
            }
            samples.push(result.duration.as_nanos() as f64);
        }
        samples.sort_by(f64::total_cmp);
        let row = json!({
            "case": name,
            "verdict": if expected == XDP_DROP { "drop" } else { "pass" },
            "ns_per_packet_median": samples[RUNS / 2],
            "ns_per_packet_min": samples[0],
            "ns_per_packet_max": samples[RUNS - 1],
        });
        eprintln!("{row}");
        rows.push(row);
    }
    Ok(rows)
}

// ---------------------------------------------------------------- (b)

/// Runs `f` inside `ns` on a scoped thread (aya attaches by interface name
/// in the caller's namespace).
fn inside<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let file = ns.open()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&file)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread panicked"))?
    })
}

fn ip_json(ns: &Netns, iface: &str) -> anyhow::Result<Value> {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-s", "-j", "link", "show", "dev", iface])
        .output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v[0].clone())
}

fn mac_of(ns: &Netns, iface: &str) -> anyhow::Result<[u8; 6]> {
    let text = ip_json(ns, iface)?["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad MAC {text}"))
}

fn nft(ns: &Netns, script: &str) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", script])
        .output()
        .context("running nft (install the nftables package)")?;
    if !out.status.success() {
        bail!(
            "nft {script}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends `frames` round-robin from `threads` threads through AF_PACKET
/// sockets on `iface` in `ns` for `seconds`; returns frames sent.
fn flood(ns: &Netns, iface: &str, frames: &[Vec<u8>], seconds: u64) -> anyhow::Result<u64> {
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let file = ns.open()?;
    let iface_c = std::ffi::CString::new(iface)?;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        for t in 0..threads {
            let (sent, stop, file, iface_c) = (&sent, &stop, &file, &iface_c);
            workers.push(s.spawn(move || -> anyhow::Result<()> {
                enter(file)?;
                // SAFETY: plain socket calls with valid arguments; the fd is
                // closed at the end of the closure.
                unsafe {
                    let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                    anyhow::ensure!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
                    let one: libc::c_int = 1;
                    // Straight to the driver: the qdisc is not what is measured.
                    libc::setsockopt(fd, libc::SOL_PACKET, 20, (&raw const one).cast(), 4);
                    let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                    addr.sll_family = libc::AF_PACKET as u16;
                    addr.sll_ifindex = libc::if_nametoindex(iface_c.as_ptr()) as i32;
                    libc::bind(
                        fd,
                        (&raw const addr).cast(),
                        size_of::<libc::sockaddr_ll>() as u32,
                    );
                    let mut i = t;
                    let mut local = 0u64;
                    // Bounded by time (checked every 256 frames) and count.
                    while !stop.load(Ordering::Relaxed) && local < 2_000_000_000 {
                        for _ in 0..256 {
                            let frame = &frames[i % frames.len()];
                            if libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) > 0 {
                                local += 1;
                            }
                            i += threads;
                        }
                    }
                    libc::close(fd);
                    sent.fetch_add(local, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(sent.load(Ordering::Relaxed))
}

fn flood_sources() -> Vec<Ipv4Addr> {
    (1..=FLOOD_SOURCES)
        .map(|n| Ipv4Addr::new(198, 18, 200, n))
        .collect()
}

/// How the flood is generated.
#[derive(Clone, Copy)]
enum Generator {
    /// BPF_PROG_TEST_RUN live frames with XDP_TX on the client end: frames
    /// reach the server end as XDP frames, as from a NIC.
    XdpFrames,
    /// AF_PACKET sockets: frames reach the server end as socket buffers.
    Sockets,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::XdpFrames => "XDP frames (live TEST_RUN, XDP_TX)",
            Generator::Sockets => "socket buffers (AF_PACKET)",
        }
    }
}

/// What drops the flood on the server end.
#[derive(Clone, Copy)]
enum Filter {
    Kms,
    Bare,
    /// The bare drop after reading the packet's source address.
    ReadDrop,
    Nft,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Filter::Kms => "kms_xdp (native)",
            Filter::Bare => "bare XDP_DROP (native)",
            Filter::ReadDrop => "XDP_DROP after reading the source (native)",
            Filter::Nft => "nftables set drop (prerouting)",
        }
    }
}

/// Turns GRO on for a veth end, which gives it a NAPI receive queue even
/// without an XDP program (so XDP frames can be sent to it, as to a NIC).
fn enable_gro(ns: &Netns, iface: &str) -> anyhow::Result<()> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_SGRO: u32 = 0x2c;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let name = iface.to_string();
    inside(ns, move || -> anyhow::Result<()> {
        let mut value = EthtoolValue {
            cmd: ETHTOOL_SGRO,
            data: 1,
        };
        // SAFETY: a zeroed ifreq with the name and a pointer to `value`, both
        // alive for the ioctl; the socket is closed right after.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *dst = src as libc::c_char;
            }
            req.ifr_ifru.ifru_data = (&raw mut value).cast();
            let rc = libc::ioctl(fd, SIOCETHTOOL, &raw mut req);
            libc::close(fd);
            anyhow::ensure!(
                rc == 0,
                "ETHTOOL_SGRO on {name}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    })?
}

fn flood_table(seconds: u64) -> anyhow::Result<Vec<Value>> {
    // The tests' two namespaces and veth pair: 198.18.0.1 (server) and .2.
    let p = Testbed::new()?;
    enable_gro(&p.server, &p.server_if)?;
    let mac = mac_of(&p.server, &p.server_if)?;
    let frames: Vec<Vec<u8>> = flood_sources()
        .iter()
        .enumerate()
        .map(|(i, src)| {
            packet::ipv4_frame(
                mac,
                &packet::ipv4_tcp(
                    *src,
                    Ipv4Addr::new(198, 18, 0, 1),
                    30000 + i as u16,
                    1688,
                    SYN,
                    1,
                ),
            )
        })
        .collect();
    // The generator program, loaded once.
    let gen_fs = Bpffs::new(&unique_name("bgen"))?;
    let mut gen_ebpf = load(&gen_fs)?;
    let tx: &mut Xdp = gen_ebpf
        .program_mut(names::BENCH_TX_PROGRAM)
        .context("no generator program")?
        .try_into()?;
    tx.load()?;
    let client_ifindex = inside(&p.client, || {
        let name = std::ffi::CString::new(p.client_if.as_str()).expect("name");
        // SAFETY: a NUL-terminated name.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    })?;

    let mut rows = Vec::new();
    for generator in [Generator::XdpFrames, Generator::Sockets] {
        for filter in [Filter::Kms, Filter::Bare, Filter::ReadDrop, Filter::Nft] {
            let generate = |p: &Testbed| -> anyhow::Result<u64> {
                match generator {
                    Generator::XdpFrames => {
                        live_flood(&p.client, tx, client_ifindex, &frames, seconds)
                    }
                    Generator::Sockets => flood(&p.client, &p.client_if, &frames, seconds),
                }
            };
            let row = run_filter(&p, filter, seconds, generate)?;
            let mut row = row;
            row["generator"] = json!(generator.name());
            eprintln!("{row}");
            rows.push(row);
        }
    }
    Ok(rows)
}

fn rx_stats(ns: &Netns, iface: &str) -> anyhow::Result<(u64, u64)> {
    let v = ip_json(ns, iface)?;
    let rx = &v["stats64"]["rx"];
    Ok((
        rx["packets"].as_u64().unwrap_or(0),
        rx["dropped"].as_u64().unwrap_or(0),
    ))
}

/// One flood against one filter; the drop count comes from the filter's own
/// counter (the per-CPU array for both XDP programs, the rule's for nft).
fn run_filter(
    p: &Testbed,
    filter: Filter,
    seconds: u64,
    generate: impl Fn(&Testbed) -> anyhow::Result<u64>,
) -> anyhow::Result<Value> {
    let (rx_before, _) = rx_stats(&p.server, &p.server_if)?;
    let mut program_ns = None;
    let (sent, dropped) = match filter {
        Filter::Kms | Filter::Bare | Filter::ReadDrop => {
            let bpffs = Bpffs::new(&unique_name("bflood"))?;
            let mut ebpf = load(&bpffs)?;
            // The tables hold the map descriptors the program is loaded
            // against, so they live until the run is over.
            let mut tables = Tables::from_loaded(&mut ebpf)?;
            let name = match filter {
                Filter::Kms => {
                    tables.set_config(&Limits::default().to_config())?;
                    for src in flood_sources() {
                        tables.block(IpNet::new(IpAddr::V4(src), 32)?, &blocked_entry())?;
                    }
                    names::XDP_PROGRAM
                }
                Filter::ReadDrop => names::BASELINE_READ_PROGRAM,
                _ => names::BASELINE_PROGRAM,
            };
            let stats = StatsReader::open_pinned(&bpffs.dir)?;
            let program: &mut Xdp = ebpf.program_mut(name).context("no program")?.try_into()?;
            program.load()?;
            let iface = p.server_if.clone();
            let link = inside(&p.server, || program.attach(&iface, XdpMode::Driver))??;
            let before = count(&stats, Stat::Dropped)?;
            let sent = generate(p)?;
            let counted = count(&stats, Stat::Dropped)? - before;
            // A second run with the kernel's run-time statistics on (they
            // cost two clock reads per packet, so not during the first):
            // the program's own time per packet under the flood.
            {
                let _enabled = aya::sys::enable_stats(aya::sys::Stats::RunTime)?;
                let start = program.info()?;
                generate(p)?;
                let end = program.info()?;
                let runs = end.run_count().saturating_sub(start.run_count());
                let time = end.run_time().saturating_sub(start.run_time());
                if runs > 0 {
                    program_ns = Some(time.as_nanos() as f64 / runs as f64);
                }
            }
            program.detach(link)?;
            drop(tables);
            (sent, counted)
        }
        Filter::Nft => {
            let elements: Vec<String> = flood_sources().iter().map(Ipv4Addr::to_string).collect();
            nft(&p.server, "add table ip kmsbench")?;
            nft(&p.server, "add set ip kmsbench blocked { type ipv4_addr; }")?;
            nft(
                &p.server,
                &format!(
                    "add element ip kmsbench blocked {{ {} }}",
                    elements.join(", ")
                ),
            )?;
            nft(
                &p.server,
                "add chain ip kmsbench pre { type filter hook prerouting priority -300; }",
            )?;
            nft(
                &p.server,
                "add rule ip kmsbench pre ip saddr @blocked counter drop",
            )?;
            let sent = generate(p)?;
            let listing = nft(&p.server, "list chain ip kmsbench pre")?;
            nft(&p.server, "delete table ip kmsbench")?;
            let dropped = listing
                .split("counter packets ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .context("reading the nft counter")?;
            (sent, dropped)
        }
    };
    let (rx_after, _) = rx_stats(&p.server, &p.server_if)?;
    Ok(json!({
        "variant": filter.name(),
        "frames_sent": sent,
        "sent_pps": sent as f64 / seconds as f64,
        "dropped_by_filter": dropped,
        "drop_pps": dropped as f64 / seconds as f64,
        "server_rx_packets": rx_after - rx_before,
        "program_ns_per_packet": program_ns,
    }))
}

/// The live-frames generator: every CPU runs the XDP_TX program in
/// live-frames mode on the client end, a million frames per call, cycling
/// through `frames` call by call, for `seconds`.
fn live_flood(
    ns: &Netns,
    tx: &Xdp,
    ifindex: u32,
    frames: &[Vec<u8>],
    seconds: u64,
) -> anyhow::Result<u64> {
    const PER_CALL: u32 = 1_000_000;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let sent = AtomicU64::new(0);
    let file = ns.open()?;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (sent, file) = (&sent, &file);
                s.spawn(move || -> anyhow::Result<()> {
                    enter(file)?;
                    let mut call = t;
                    // Bounded by time and by a call count far beyond it.
                    while std::time::Instant::now() < deadline && call < 100_000 {
                        let frame = &frames[call % frames.len()];
                        // struct xdp_md: data, data_end, data_meta,
                        // ingress_ifindex, rx_queue_index, egress_ifindex.
                        let mut ctx = [0u8; 24];
                        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
                        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
                        let mut opts = TestRunOptions::new();
                        opts.data_in = Some(frame);
                        opts.ctx_in = Some(&ctx);
                        opts.repeat = PER_CALL;
                        opts.attrs = TestRunAttrs::new().xdp_live_frames(64);
                        tx.test_run(opts)?;
                        sent.fetch_add(u64::from(PER_CALL), Ordering::Relaxed);
                        call += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(sent.load(Ordering::Relaxed))
}

fn count(stats: &StatsReader, stat: Stat) -> anyhow::Result<u64> {
    Ok(stats
        .read()?
        .into_iter()
        .find(|(s, _)| *s == stat)
        .map_or(0, |(_, v)| v))
}

fn markdown(report: &Value) -> String {
    let mut md = format!(
        "Kernel {}. (a) BPF_PROG_TEST_RUN, repeat {}, block tables holding {} entries per family; median of {RUNS} runs.\n\n| packet | verdict | ns/packet (median) | min | max |\n|---|---|---|---|---|\n",
        report["kernel"].as_str().unwrap_or(""),
        report["test_run"]["repeat"],
        report["test_run"]["block_entries_per_family"],
    );
    for r in report["test_run"]["rows"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |\n",
            r["case"].as_str().unwrap_or(""),
            r["verdict"].as_str().unwrap_or(""),
            r["ns_per_packet_median"].as_f64().unwrap_or(0.0),
            r["ns_per_packet_min"].as_f64().unwrap_or(0.0),
            r["ns_per_packet_max"].as_f64().unwrap_or(0.0),
        ));
    }
    let rows = report["flood"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    md.push_str(&format!(
        "\n(b) Flood of 64-byte SYNs from {FLOOD_SOURCES} blocked sources over a veth pair (server end with GRO on), {} s per run, generator on the same CPUs.\n\n| generator | filter | sent pps | dropped pps | vs bare XDP_DROP | vs nftables | program ns/packet |\n|---|---|---|---|---|---|---|\n",
        report["flood"]["seconds"]
    ));
    for r in &rows {
        let pps = r["drop_pps"].as_f64().unwrap_or(0.0);
        let same = |prefix: &str| {
            rows.iter()
                .find(|o| {
                    o["generator"] == r["generator"]
                        && o["variant"].as_str().unwrap_or("").starts_with(prefix)
                })
                .and_then(|o| o["drop_pps"].as_f64())
                .unwrap_or(0.0)
        };
        let (base, nft) = (same("bare"), same("nftables"));
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |\n",
            r["generator"].as_str().unwrap_or(""),
            r["variant"].as_str().unwrap_or(""),
            r["sent_pps"].as_f64().unwrap_or(0.0),
            pps,
            if base > 0.0 { pps / base } else { 0.0 },
            if nft > 0.0 { pps / nft } else { 0.0 },
            r["program_ns_per_packet"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |ns| format!("{ns:.0}")),
        ));
    }
    md
}
