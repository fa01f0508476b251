//! The XDP front door attaches, sees every connection attempt, drops nothing,
//! and falls back to SKB mode when native mode is refused.

use std::{net::IpAddr, time::Duration};

use kms_common::Stat;
use tests::{SERVER_V4, SERVER_V6, Testbed, process::exited_cleanly, testbed::server_addr};

const PORT: u16 = 1688;
const CONNECTIONS: usize = 20;

fn listen_args() -> Vec<String> {
    vec![
        "--listen".into(),
        format!("{SERVER_V4}:{PORT}"),
        "--listen".into(),
        format!("[{SERVER_V6}]:{PORT}"),
        "--stats-interval".into(),
        "1".into(),
        // These tests are about attaching; the limits have tests of their own.
        "--max-src-conn".into(),
        "0".into(),
        "--max-src-conn-rate".into(),
        "off".into(),
    ]
}

/// kmsd on both server addresses with [`listen_args`], then `extra`.
fn start(bed: &mut Testbed, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = listen_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bed.start_kmsd(&args)?;
    Ok(())
}

#[test]
fn xdp_counts_every_syn_and_drops_nothing() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    let iface = bed.server_if.clone();
    start(&mut bed, &["--xdp-iface", &iface])?;
    bed.kmsd()
        .wait_for_log("XDP attached", Duration::from_secs(10))?;
    assert!(
        bed.kmsd().log_text().contains("mode=\"native\""),
        "veth takes native XDP:\n{}",
        bed.kmsd().log_text()
    );

    let before = bed.counters()?;
    let v4 = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), CONNECTIONS)?;
    let v6 = bed.connect_from_client(server_addr(IpAddr::V6(SERVER_V6), PORT), CONNECTIONS)?;
    assert_eq!(
        (v4, v6),
        (CONNECTIONS, CONNECTIONS),
        "every connection completes"
    );
    let after = bed.counters()?;

    let delta = |stat| after[&stat] - before[&stat];
    assert!(
        delta(Stat::TcpSyn) >= 2 * CONNECTIONS as u64,
        "SYNs seen: {}",
        delta(Stat::TcpSyn)
    );
    assert!(delta(Stat::Ipv4) >= CONNECTIONS as u64 && delta(Stat::Ipv6) >= CONNECTIONS as u64);
    assert_eq!(
        after[&Stat::Dropped],
        0,
        "the pass-through program drops nothing"
    );
    assert!(delta(Stat::Passed) >= delta(Stat::TcpSyn));

    // The counters are logged at debug level while serving.
    bed.kmsd()
        .wait_for_log("BPF counters", Duration::from_secs(5))?;
    let status = bed.kmsd().stop(Duration::from_secs(10))?;
    assert!(
        exited_cleanly(status),
        "kmsd exits 0 on SIGTERM, got {status}"
    );
    // The link stays pinned on purpose: enforcement outlives the daemon.
    assert!(bed.pin_dir().join(format!("xdp-native-{iface}")).exists());
    Ok(())
}

#[test]
fn native_mode_refused_falls_back_to_skb() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    // veth refuses native XDP (without multi-buffer support) when the peer's
    // MTU does not fit a page; generic XDP has no such limit.
    bed.client
        .exec(&["link", "set", &bed.client_if, "mtu", "9000"])?;
    let iface = bed.server_if.clone();
    start(&mut bed, &["--xdp-iface", &iface])?;
    bed.kmsd()
        .wait_for_log("XDP attached", Duration::from_secs(10))?;
    let log = bed.kmsd().log_text();
    assert!(
        log.contains("native XDP refused; falling back to SKB mode"),
        "{log}"
    );
    assert!(log.contains("mode=\"skb\""), "{log}");
    assert!(bed.pin_dir().join(format!("xdp-skb-{iface}")).exists());

    let before = bed.counters()?[&Stat::TcpSyn];
    let done = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), CONNECTIONS)?;
    assert_eq!(done, CONNECTIONS);
    let after = bed.counters()?;
    assert!(
        after[&Stat::TcpSyn] - before >= CONNECTIONS as u64,
        "generic XDP sees the SYNs too"
    );
    assert_eq!(after[&Stat::Dropped], 0);
    Ok(())
}

#[test]
fn native_only_mode_refused_is_a_clear_error_and_not_ready() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    bed.client
        .exec(&["link", "set", &bed.client_if, "mtu", "9000"])?;
    let iface = bed.server_if.clone();
    start(&mut bed, &["--xdp-iface", &iface, "--xdp-mode", "native"])?;
    bed.kmsd()
        .wait_for_log("XDP not attached; retrying", Duration::from_secs(10))?;
    let text = bed.kmsd().log_text();
    assert!(
        text.contains(&format!("attaching XDP to {iface} in native mode")),
        "{text}"
    );
    let (status, body) = bed.http_get("/readyz")?;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(&format!("XDP on {iface}")) && body.contains("native mode"),
        "{body}"
    );
    assert_eq!(bed.http_get("/healthz")?.0, 200, "alive all the same");

    // Lowering the peer's MTU lets native mode in: the retry attaches it.
    bed.client
        .exec(&["link", "set", &bed.client_if, "mtu", "1500"])?;
    bed.kmsd()
        .wait_for_log("edge enforcer ready", Duration::from_secs(15))?;
    assert_eq!(bed.http_get("/readyz")?, (200, "ready\n".to_string()));
    Ok(())
}

#[test]
fn skb_mode_on_request() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    let iface = bed.server_if.clone();
    start(&mut bed, &["--xdp-iface", &iface, "--xdp-mode", "skb"])?;
    bed.kmsd()
        .wait_for_log("XDP attached", Duration::from_secs(10))?;
    assert!(bed.kmsd().log_text().contains("mode=\"skb\""));
    let done = bed.connect_from_client(server_addr(IpAddr::V6(SERVER_V6), PORT), 5)?;
    assert_eq!(done, 5);
    assert!(bed.counters()?[&Stat::TcpSyn] >= 5);
    Ok(())
}

#[test]
fn a_restarted_daemon_adopts_the_pinned_link_and_keeps_the_counters() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    let iface = bed.server_if.clone();
    let listen = format!("{SERVER_V4}:{PORT}");
    let args = [
        "--listen",
        listen.as_str(),
        "--xdp-iface",
        iface.as_str(),
        "--max-src-conn-rate",
        "off",
    ];
    bed.start_kmsd(&args)?;
    bed.kmsd()
        .wait_for_log("XDP attached", Duration::from_secs(10))?;
    let done = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), 10)?;
    assert_eq!(done, 10);
    let before = bed.counters()?[&Stat::TcpSyn];
    let status = bed.kmsd().stop(Duration::from_secs(10))?;
    assert!(exited_cleanly(status));

    // While no daemon runs, the pinned program still sees (refused) SYNs.
    let refused = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), 5)?;
    assert_eq!(refused, 0, "nothing listens while the daemon is down");
    let between = bed.counters()?[&Stat::TcpSyn];
    assert!(
        between >= before + 5,
        "XDP kept counting: {before} -> {between}"
    );
    bed.start_kmsd(&args)?;
    bed.kmsd()
        .wait_for_log("adopted the pinned XDP link", Duration::from_secs(10))?;
    let done = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), 10)?;
    assert_eq!(done, 10);
    let after = bed.counters()?[&Stat::TcpSyn];
    assert!(
        after >= between + 10,
        "counters survive the restart: {between} -> {after}"
    );
    assert!(bed.pin_dir().join(format!("xdp-native-{iface}")).exists());
    Ok(())
}

#[test]
fn several_interfaces_each_get_their_best_mode() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    // A second veth pair whose peer MTU refuses native mode.
    let (second_s, second_c) = (format!("{}2", bed.server_if), format!("{}2", bed.client_if));
    tests::ip(&[
        "link",
        "add",
        &second_s,
        "netns",
        &bed.server.name,
        "type",
        "veth",
        "peer",
        "name",
        &second_c,
        "netns",
        &bed.client.name,
    ])?;
    bed.client
        .exec(&["link", "set", &second_c, "mtu", "9000"])?;
    for (ns, iface, addr) in [
        (&bed.server, &second_s, "198.18.1.1/24"),
        (&bed.client, &second_c, "198.18.1.2/24"),
    ] {
        ns.exec(&["addr", "add", addr, "dev", iface])?;
        ns.exec(&["link", "set", iface, "up"])?;
    }
    let first = bed.server_if.clone();
    start(
        &mut bed,
        &[
            "--listen",
            &format!("198.18.1.1:{PORT}"),
            "--xdp-iface",
            &first,
            "--xdp-iface",
            &second_s,
        ],
    )?;
    bed.kmsd()
        .wait_for_log("edge enforcer ready", Duration::from_secs(10))?;
    assert!(bed.pin_dir().join(format!("xdp-native-{first}")).exists());
    assert!(bed.pin_dir().join(format!("xdp-skb-{second_s}")).exists());
    let status = bed.op(&["status"])?;
    assert!(
        status.contains(&format!("xdp        {first} (native mode")),
        "{status}"
    );
    assert!(
        status.contains(&format!("xdp        {second_s} (skb mode")),
        "{status}"
    );

    let before = bed.counters()?[&Stat::TcpSyn];
    let via_first = bed.connect_from_client(server_addr(IpAddr::V4(SERVER_V4), PORT), 5)?;
    let via_second = bed.connect_from_client("198.18.1.1:1688".parse()?, 5)?;
    assert_eq!((via_first, via_second), (5, 5));
    assert!(
        bed.counters()?[&Stat::TcpSyn] >= before + 10,
        "both interfaces are watched"
    );
    Ok(())
}

#[test]
fn an_interface_that_takes_no_mode_is_a_clear_error_and_not_ready() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(&mut bed, &["--xdp-iface", "kmsnosuchif0"])?;
    bed.kmsd()
        .wait_for_log("XDP not attached; retrying", Duration::from_secs(10))?;
    let text = bed.kmsd().log_text();
    assert!(
        text.contains("cannot attach XDP to kmsnosuchif0: native mode:")
            && text.contains("SKB mode:"),
        "{text}"
    );
    let (status, body) = bed.http_get("/readyz")?;
    assert_eq!(status, 503);
    assert!(
        body.starts_with("XDP on kmsnosuchif0: cannot attach"),
        "{body}"
    );
    Ok(())
}
