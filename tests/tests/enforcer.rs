//! The edge enforcer, end to end: pf's `max-src-conn` and `max-src-conn-rate`
//! counted in the kernel on established connections, the overload table
//! dropped at XDP, the flush, the allow list, monitor mode, live limits, the
//! operator verbs and restarts. Every test uses small limits so it runs fast.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4},
    thread::sleep,
    time::{Duration, Instant},
};

use kms_common::Stat;
use tests::{
    CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6, Testbed,
    tcp::{self, Connect, closed_within},
};

const PORT: u16 = 1688;
/// A second client address on the same link: another source.
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// A second address in the client's /64.
const SAME_64_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// How long a connect may take before it counts as dropped.
const DROPPED_AFTER: Duration = Duration::from_millis(800);
/// Generous bound for the daemon to reset flushed connections.
const FLUSH_BOUND: Duration = Duration::from_secs(2);

fn v4() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(SERVER_V4), PORT)
}

fn v6() -> SocketAddr {
    SocketAddr::new(IpAddr::V6(SERVER_V6), PORT)
}

/// kmsd on both server addresses with XDP on the veth and `limits`.
fn start(bed: &mut Testbed, limits: &[&str]) -> anyhow::Result<()> {
    let iface = bed.server_if.clone();
    let listen4 = v4().to_string();
    let listen6 = v6().to_string();
    let mut args = vec![
        "--listen",
        &listen4,
        "--listen",
        &listen6,
        "--xdp-iface",
        &iface,
    ];
    args.extend_from_slice(limits);
    bed.start_kmsd(&args)?;
    bed.kmsd()
        .wait_for_log("edge enforcer ready", Duration::from_secs(10))?;
    Ok(())
}

fn add_client_address(bed: &Testbed, addr: IpAddr) -> anyhow::Result<()> {
    let with_len = match addr {
        IpAddr::V4(a) => format!("{a}/24"),
        IpAddr::V6(a) => format!("{a}/64"),
    };
    let mut args = vec!["addr", "add", &with_len, "dev", &bed.client_if];
    if addr.is_ipv6() {
        args.push("nodad");
    }
    bed.client.exec(&args)
}

fn attempt(bed: &Testbed, src: IpAddr, dst: SocketAddr) -> anyhow::Result<Connect> {
    tcp::attempt(&bed.client, Some(src), dst, DROPPED_AFTER)
}

fn counter(bed: &Testbed, stat: Stat) -> u64 {
    bed.counters().expect("counters")[&stat]
}

/// The add time to the second (a restore converts clocks, off by nanoseconds).
fn added(row: &serde_json::Value) -> String {
    row["added"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(19)
        .collect()
}

/// The next connection from `src` is reset, and `source` is in the block
/// table for `reason`.
fn trips(bed: &Testbed, src: IpAddr, dst: SocketAddr, source: &str, reason: &str) {
    assert!(
        tcp::reset_within(&bed.client, Some(src), dst, FLUSH_BOUND).expect("connect"),
        "the connection that trips is reset"
    );
    assert_eq!(reason_of(bed, source).as_deref(), Some(reason));
}

fn reason_of(bed: &Testbed, source: &str) -> Option<String> {
    bed.blocked()
        .expect("blocked show")
        .iter()
        .find(|row| row["source"] == source)
        .map(|row| row["reason"].as_str().unwrap_or_default().to_string())
}

#[test]
fn the_sixth_established_connection_trips_max_src_conn_and_everything_from_the_source_is_dropped()
-> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    add_client_address(&bed, IpAddr::V4(OTHER_V4))?;
    start(
        &mut bed,
        &["--max-src-conn", "5", "--max-src-conn-rate", "off"],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    let other = IpAddr::V4(OTHER_V4);

    let (mut bystander, _) = tcp::open(&bed.client, Some(other), v4(), 1, DROPPED_AFTER)?;
    // The source also talks to another service on the node: `flush global`
    // (the default) kills that connection too.
    let other_service = SocketAddr::new(IpAddr::V4(SERVER_V4), 2222);
    let _listener = tcp::listen(&bed.server, other_service)?;
    let (mut elsewhere, _) = tcp::open(&bed.client, Some(client), other_service, 1, DROPPED_AFTER)?;
    let (mut five, failed) = tcp::open(&bed.client, Some(client), v4(), 5, DROPPED_AFTER)?;
    assert!(
        failed.is_empty(),
        "five connections are allowed: {failed:?}"
    );
    for stream in &mut five {
        assert!(!closed_within(stream, Duration::from_millis(50)));
    }
    assert!(bed.blocked_sources()?.is_empty(), "five do not trip");

    assert!(
        tcp::reset_within(&bed.client, Some(client), v4(), FLUSH_BOUND)?,
        "the sixth is reset"
    );
    for stream in &mut five {
        assert!(
            closed_within(stream, FLUSH_BOUND),
            "every connection of the source is reset"
        );
    }
    assert!(
        closed_within(&mut elsewhere[0], FLUSH_BOUND),
        "flush global resets the source's other connections"
    );
    assert_eq!(
        reason_of(&bed, "198.18.0.2/32").as_deref(),
        Some("max-src-conn")
    );
    let dropped_before = counter(&bed, Stat::DroppedMaxSrcConn);
    assert_eq!(
        attempt(&bed, client, v4())?,
        Connect::TimedOut,
        "XDP drops the SYN"
    );
    assert_eq!(
        attempt(&bed, IpAddr::V6(CLIENT_V6), v6())?,
        Connect::Established,
        "another source (IPv6) is unaffected"
    );
    assert!(counter(&bed, Stat::DroppedMaxSrcConn) > dropped_before);
    assert_eq!(counter(&bed, Stat::OverloadMaxSrcConn), 1);

    assert_eq!(attempt(&bed, other, v4())?, Connect::Established);
    assert!(
        !closed_within(&mut bystander[0], Duration::from_millis(50)),
        "the other source's connection stays up"
    );
    let rows = bed.blocked()?;
    assert_eq!(rows[0]["conns_at_trip"], 6);
    assert!(rows[0]["packets_dropped"].as_u64().unwrap() > 0);
    assert!(rows[0]["bytes_dropped"].as_u64().unwrap() > 0);
    Ok(())
}

#[test]
fn service_scopes_leave_the_sources_other_connections_alone() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &[
            "--max-src-conn",
            "2",
            "--max-src-conn-rate",
            "off",
            "--drop-scope",
            "service",
            "--flush-scope",
            "service",
        ],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    let other_service = SocketAddr::new(IpAddr::V4(SERVER_V4), 2222);
    let _listener = tcp::listen(&bed.server, other_service)?;
    let (mut elsewhere, _) = tcp::open(&bed.client, Some(client), other_service, 1, DROPPED_AFTER)?;
    let (mut two, _) = tcp::open(&bed.client, Some(client), v4(), 2, DROPPED_AFTER)?;
    assert!(tcp::reset_within(
        &bed.client,
        Some(client),
        v4(),
        FLUSH_BOUND
    )?);
    for stream in &mut two {
        assert!(
            closed_within(stream, FLUSH_BOUND),
            "service connections are flushed"
        );
    }
    assert!(
        !closed_within(&mut elsewhere[0], Duration::from_millis(200)),
        "flush (not global) leaves other services' connections"
    );
    assert_eq!(
        attempt(&bed, client, v4())?,
        Connect::TimedOut,
        "the service port is dropped"
    );
    assert_eq!(
        attempt(&bed, client, other_service)?,
        Connect::Established,
        "other ports pass with --drop-scope service"
    );
    Ok(())
}

#[test]
fn max_src_conn_rate_follows_pfs_estimator() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "0", "--max-src-conn-rate", "5/2"],
    )?;
    let client = IpAddr::V4(CLIENT_V4);

    // Exactly 5 per 2 s, for three windows: the estimator approaches 5000
    // from below and never passes it.
    let started = Instant::now();
    for k in 0..15u32 {
        let at = started + Duration::from_millis(400) * k;
        sleep(at.saturating_duration_since(Instant::now()));
        assert_eq!(
            attempt(&bed, client, v4())?,
            Connect::Established,
            "connection {k}"
        );
    }
    assert!(
        bed.blocked_sources()?.is_empty(),
        "a steady N per S does not trip"
    );

    // A whole window without connections resets the estimator: the burst
    // below would trip at once if the steady phase still counted.
    sleep(Duration::from_millis(2100));
    let (burst, failed) = tcp::open(&bed.client, Some(client), v4(), 5, DROPPED_AFTER)?;
    assert!(failed.is_empty());
    assert!(
        bed.blocked_sources()?.is_empty(),
        "a burst of N after a gap does not trip"
    );
    trips(&bed, client, v4(), "198.18.0.2/32", "max-src-conn-rate");
    assert_eq!(attempt(&bed, client, v4())?, Connect::TimedOut);
    assert_eq!(counter(&bed, Stat::OverloadMaxSrcConnRate), 1);
    drop(burst);
    Ok(())
}

#[test]
fn half_open_connections_never_count_and_never_block_anyone() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "3", "--max-src-conn-rate", "3/60"],
    )?;
    let syns_before = counter(&bed, Stat::TcpSyn);
    // 40 SYNs from the client's own address and from five spoofed ones.
    let mut sources = vec![CLIENT_V4];
    sources.extend((50..55).map(|n| Ipv4Addr::new(198, 18, 0, n)));
    tcp::raw_syns(&bed.client, sources, SocketAddrV4::new(SERVER_V4, PORT), 40)?;
    sleep(Duration::from_millis(300));
    assert!(
        counter(&bed, Stat::TcpSyn) >= syns_before + 240,
        "XDP saw the SYNs"
    );
    assert_eq!(counter(&bed, Stat::Established), 0);
    assert!(bed.blocked_sources()?.is_empty());

    // The real client still has its whole allowance.
    let (mut three, failed) = tcp::open(
        &bed.client,
        Some(IpAddr::V4(CLIENT_V4)),
        v4(),
        3,
        DROPPED_AFTER,
    )?;
    assert!(failed.is_empty());
    for stream in &mut three {
        assert!(!closed_within(stream, Duration::from_millis(50)));
    }
    assert!(bed.blocked_sources()?.is_empty());
    Ok(())
}

#[test]
fn allow_listed_sources_are_never_counted_or_blocked() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &[
            "--max-src-conn",
            "5",
            "--max-src-conn-rate",
            "5/60",
            "--allow",
            "198.18.0.2/32",
        ],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    for _ in 0..10 {
        let (open, failed) = tcp::open(&bed.client, Some(client), v4(), 10, DROPPED_AFTER)?;
        assert!(failed.is_empty());
        drop(open);
    }
    assert!(
        bed.blocked_sources()?.is_empty(),
        "100 connections, never blocked"
    );
    assert_eq!(counter(&bed, Stat::Established), 0, "and never counted");
    assert!(counter(&bed, Stat::AllowListed) >= 100);
    assert_eq!(
        bed.op(&["allow", "show", "--json"])?.trim(),
        r#"["198.18.0.2/32"]"#
    );

    // Off the list, the same source is counted again: the sixth open one trips.
    bed.op(&["allow", "delete", "198.18.0.2/32"])?;
    let (five, _) = tcp::open(&bed.client, Some(client), v4(), 5, DROPPED_AFTER)?;
    assert_eq!(five.len(), 5);
    trips(&bed, client, v4(), "198.18.0.2/32", "max-src-conn");
    Ok(())
}

#[test]
fn monitor_mode_reports_trips_but_drops_and_closes_nothing() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &[
            "--max-src-conn",
            "2",
            "--max-src-conn-rate",
            "off",
            "--monitor",
        ],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    let (mut three, failed) = tcp::open(&bed.client, Some(client), v4(), 3, DROPPED_AFTER)?;
    assert!(failed.is_empty());
    bed.kmsd()
        .wait_for_log("would block (monitor mode)", Duration::from_secs(5))?;
    for stream in &mut three {
        assert!(
            !closed_within(stream, Duration::from_millis(100)),
            "nothing is closed"
        );
    }
    assert_eq!(
        attempt(&bed, client, v4())?,
        Connect::Established,
        "nothing is dropped"
    );
    assert_eq!(counter(&bed, Stat::WouldOverload), 1);
    assert!(counter(&bed, Stat::WouldDrop) > 0);
    assert_eq!(counter(&bed, Stat::Dropped), 0);
    assert_eq!(counter(&bed, Stat::OverloadMaxSrcConn), 0);

    // Leaving monitor mode enforces the entries already recorded.
    bed.op(&["limits", "set", "--monitor", "false"])?;
    assert_eq!(attempt(&bed, client, v4())?, Connect::TimedOut);
    Ok(())
}

#[test]
fn operator_verbs_add_delete_flush_expire_take_effect_on_traffic() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "0", "--max-src-conn-rate", "off"],
    )?;
    let (c4, c6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));

    bed.op(&["blocked", "add", "198.18.0.2"])?;
    assert_eq!(attempt(&bed, c4, v4())?, Connect::TimedOut);
    assert_eq!(attempt(&bed, c6, v6())?, Connect::Established);
    bed.op(&["blocked", "add", "2001:db8::/64"])?;
    assert_eq!(attempt(&bed, c6, v6())?, Connect::TimedOut);
    assert_eq!(
        bed.blocked_sources()?,
        vec!["198.18.0.2/32".to_string(), "2001:db8::/64".to_string()]
    );
    assert_eq!(reason_of(&bed, "2001:db8::/64").as_deref(), Some("manual"));
    let saved = std::fs::read_to_string(bed.state_file())?;
    assert!(
        saved.contains("2001:db8::/64"),
        "changes reach the state file"
    );

    bed.op(&["blocked", "delete", "198.18.0.2"])?;
    assert_eq!(attempt(&bed, c4, v4())?, Connect::Established);
    // An address names the prefix that blocks it.
    let out = bed.op(&["blocked", "delete", "2001:db8::2"])?;
    assert!(out.contains("deleted 2001:db8::/64"), "{out}");
    assert_eq!(attempt(&bed, c6, v6())?, Connect::Established);

    bed.op(&["blocked", "add", "198.18.0.2", "2001:db8::/64"])?;
    let out = bed.op(&["blocked", "flush"])?;
    assert!(out.contains("2 entries deleted"), "{out}");
    assert_eq!(attempt(&bed, c4, v4())?, Connect::Established);
    assert_eq!(attempt(&bed, c6, v6())?, Connect::Established);

    bed.op(&["blocked", "add", "198.18.0.0/24"])?;
    sleep(Duration::from_millis(1100));
    let out = bed.op(&["blocked", "expire", "3600"])?;
    assert!(out.contains("0/1 entries expired"), "{out}");
    assert_eq!(attempt(&bed, c4, v4())?, Connect::TimedOut);
    let out = bed.op(&["blocked", "expire", "1"])?;
    assert!(out.contains("1/1 entries expired"), "{out}");
    assert_eq!(attempt(&bed, c4, v4())?, Connect::Established);

    // The daemon expires entries past the lifetime by itself.
    bed.op(&["limits", "set", "--block-lifetime", "1"])?;
    bed.op(&["blocked", "add", "198.18.0.2"])?;
    bed.kmsd()
        .wait_for_log("block expired", Duration::from_secs(5))?;
    assert!(bed.blocked_sources()?.is_empty());
    assert_eq!(attempt(&bed, c4, v4())?, Connect::Established);

    // Mistakes are one clear line and a non-zero exit.
    for (args, says) in [
        (
            vec!["blocked", "add", "198.18.0.999"],
            "is not an IP address",
        ),
        (vec!["blocked", "add", "2001:db8::1/64"], "host bits set"),
        (vec!["blocked", "delete", "198.18.0.9"], "not blocked"),
        (
            vec!["limits", "set", "--max-src-conn-rate", "5/0"],
            "SECONDS must be",
        ),
    ] {
        let out = bed.op_output(&args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = std::process::Command::new(tests::process::kmsd_bin())
        .args([
            "blocked",
            "show",
            "--pin-dir",
            "/sys/fs/bpf/kms-edge-test-nothing-here",
        ])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kms-edge state"));
    Ok(())
}

#[test]
fn limits_set_takes_effect_on_the_next_connection() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "50", "--max-src-conn-rate", "off"],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    let (three, _) = tcp::open(&bed.client, Some(client), v4(), 3, DROPPED_AFTER)?;
    assert_eq!(three.len(), 3);
    bed.op(&["limits", "set", "--max-src-conn", "3"])?;
    let shown: serde_json::Value = serde_json::from_str(&bed.op(&["limits", "show", "--json"])?)?;
    assert_eq!(shown["max-src-conn"], 3);
    assert_eq!(shown["max-src-conn-rate"], "off");
    trips(&bed, client, v4(), "198.18.0.2/32", "max-src-conn");
    Ok(())
}

#[test]
fn max_src_conn_rate_holds_over_ipv6_too() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "0", "--max-src-conn-rate", "3/60"],
    )?;
    let client = IpAddr::V6(CLIENT_V6);
    for _ in 0..3 {
        assert_eq!(attempt(&bed, client, v6())?, Connect::Established);
    }
    assert!(
        bed.blocked_sources()?.is_empty(),
        "three in the window are allowed"
    );
    trips(&bed, client, v6(), "2001:db8::/64", "max-src-conn-rate");
    assert_eq!(attempt(&bed, client, v6())?, Connect::TimedOut);
    assert_eq!(
        attempt(&bed, IpAddr::V4(CLIENT_V4), v4())?,
        Connect::Established,
        "the client's IPv4 address is another source"
    );
    Ok(())
}

#[test]
fn ipv6_sources_in_one_prefix_share_a_count() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    add_client_address(&bed, IpAddr::V6(SAME_64_V6))?;
    start(
        &mut bed,
        &["--max-src-conn", "3", "--max-src-conn-rate", "off"],
    )?;
    let (a, b) = (IpAddr::V6(CLIENT_V6), IpAddr::V6(SAME_64_V6));
    let (two, _) = tcp::open(&bed.client, Some(a), v6(), 2, DROPPED_AFTER)?;
    let (one, _) = tcp::open(&bed.client, Some(b), v6(), 1, DROPPED_AFTER)?;
    assert_eq!((two.len(), one.len()), (2, 1));
    assert!(
        bed.blocked_sources()?.is_empty(),
        "three in the /64 are allowed"
    );
    assert!(tcp::reset_within(&bed.client, Some(b), v6(), FLUSH_BOUND)?);
    assert_eq!(bed.blocked_sources()?, vec!["2001:db8::/64".to_string()]);
    assert_eq!(
        attempt(&bed, a, v6())?,
        Connect::TimedOut,
        "the whole /64 is dropped"
    );
    assert_eq!(
        attempt(&bed, IpAddr::V4(CLIENT_V4), v4())?,
        Connect::Established,
        "the client's IPv4 address is another source"
    );
    Ok(())
}

#[test]
fn a_killed_daemon_leaves_enforcement_in_place_and_a_new_one_adopts_it() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "2", "--max-src-conn-rate", "off"],
    )?;
    let client = IpAddr::V4(CLIENT_V4);
    let (two, _) = tcp::open(&bed.client, Some(client), v4(), 2, DROPPED_AFTER)?;
    assert_eq!(two.len(), 2);
    assert!(tcp::reset_within(
        &bed.client,
        Some(client),
        v4(),
        FLUSH_BOUND
    )?);
    bed.op(&["limits", "set", "--block-lifetime", "7200"])?;
    let before = bed.blocked()?;
    assert_eq!(before.len(), 1);

    bed.kmsd().kill9()?;
    let dropped = counter(&bed, Stat::Dropped);
    assert_eq!(
        attempt(&bed, client, v4())?,
        Connect::TimedOut,
        "still dropped with no daemon"
    );
    assert!(counter(&bed, Stat::Dropped) > dropped);

    // The operator commands work on the pins with no daemon at all.
    bed.op(&["blocked", "add", "2001:db8::/64"])?;
    assert_eq!(
        bed.blocked_sources()?,
        vec!["198.18.0.2/32".to_string(), "2001:db8::/64".to_string()]
    );
    assert_eq!(
        attempt(&bed, IpAddr::V6(CLIENT_V6), v6())?,
        Connect::TimedOut,
        "a block added while no daemon runs is enforced"
    );
    bed.op(&["blocked", "delete", "2001:db8::/64"])?;
    let status = bed.op(&["status"])?;
    assert!(status.contains("limits     max-src-conn 2"), "{status}");
    let dropped = counter(&bed, Stat::Dropped);

    // No limit flags this time: the pinned limits are kept.
    start(&mut bed, &[])?;
    bed.kmsd()
        .wait_for_log("adopted the pinned sock_ops link", Duration::from_secs(5))?;
    bed.kmsd()
        .wait_for_log("adopted the pinned XDP link", Duration::from_secs(5))?;
    let after = bed.blocked()?;
    assert_eq!(after[0]["source"], before[0]["source"]);
    assert_eq!(
        added(&after[0]),
        added(&before[0]),
        "the add time is the original"
    );
    assert!(
        counter(&bed, Stat::Dropped) >= dropped,
        "counters are not reset"
    );
    let shown: serde_json::Value = serde_json::from_str(&bed.op(&["limits", "show", "--json"])?)?;
    assert_eq!(shown["max-src-conn"], 2);
    assert_eq!(shown["block-lifetime"], 7200);
    assert_eq!(attempt(&bed, client, v4())?, Connect::TimedOut);

    // A reboot empties bpffs; the state file brings the block back with its
    // original add time.
    bed.kmsd().stop(Duration::from_secs(10))?;
    bed.op(&["xdp", "detach"])?;
    start(&mut bed, &["--max-src-conn", "2"])?;
    bed.kmsd()
        .wait_for_log("restored=1", Duration::from_secs(5))?;
    let restored = bed.blocked()?;
    assert_eq!(restored[0]["source"], before[0]["source"]);
    assert_eq!(added(&restored[0]), added(&before[0]));
    assert_eq!(attempt(&bed, client, v4())?, Connect::TimedOut);
    Ok(())
}

#[test]
fn vlan_tagged_traffic_is_parsed_and_enforced() -> anyhow::Result<()> {
    // This kernel has no 802.1Q devices, so the client writes tagged frames
    // itself (one tag, and two as QinQ); XDP parses them before any VLAN
    // handling would.
    let mut bed = Testbed::new()?;
    start(
        &mut bed,
        &["--max-src-conn", "0", "--max-src-conn-rate", "off"],
    )?;
    let blocked = Ipv4Addr::new(198, 18, 10, 2);
    let free = Ipv4Addr::new(198, 18, 10, 3);
    let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 10, 1), PORT);
    bed.op(&["blocked", "add", "198.18.10.2"])?;

    let before = bed.counters()?;
    let mut frames = Vec::new();
    for seq in 0..10 {
        frames.push(tcp::tagged_syn(&[10], blocked, dst, seq));
        frames.push(tcp::tagged_syn(&[100, 10], blocked, dst, seq));
        frames.push(tcp::tagged_syn(&[10], free, dst, seq));
        frames.push(tcp::tagged_syn(&[100, 10], free, dst, seq));
    }
    let client_if = bed.client_if.clone();
    tcp::send_frames(&bed.client, &client_if, frames)?;
    sleep(Duration::from_millis(200));
    let after = bed.counters()?;
    let delta = |stat: Stat| after[&stat] - before[&stat];
    assert_eq!(
        delta(Stat::DroppedManual),
        20,
        "every tagged frame from the blocked source"
    );
    assert!(delta(Stat::TcpSyn) >= 40, "all 40 parsed down to TCP");
    assert!(delta(Stat::Ipv4) >= 40);
    assert_eq!(bed.blocked()?[0]["packets_dropped"], 20);
    Ok(())
}
