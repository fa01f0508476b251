//! Observability end to end: the metrics match what happened (activations of
//! two products, probes from two classes, blocks by reason) and pass
//! `promtool check metrics`; a real Prometheus scrapes them; the webhook
//! notifier deduplicates (across a restart), skips probes, reports blocks and
//! never holds up an activation; /readyz tracks the listeners.

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use tests::{
    SERVER_V4, Testbed,
    http::{Behaviour, Receiver},
    process::kmsd_in,
    tcp::{self, Connect},
};

const WINDOWS: &str = "Windows 10 Professional";
const OFFICE: &str = "Office Professional Plus 2019";
const LAB: &str = "198.18.0.2";
const OFFICE_NET: &str = "198.18.0.20";
const OUTSIDE: &str = "198.18.0.40";
const TRIPPER: &str = "198.18.0.50";

fn kms() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(SERVER_V4), 1688)
}

/// kmsd with XDP, max-src-conn 6 (closing sockets still count for the round
/// trip it takes them to close, as pf's states do, so quick sequential probes
/// need headroom), two probe classes and `extra`; the client end gets the
/// extra source addresses used below.
fn start(bed: &mut Testbed, extra: &[&str]) -> anyhow::Result<()> {
    for addr in [OFFICE_NET, OUTSIDE, TRIPPER] {
        bed.client
            .exec(&["addr", "add", &format!("{addr}/24"), "dev", &bed.client_if])?;
    }
    let iface = bed.server_if.clone();
    let listen = kms().to_string();
    let mut args = vec![
        "--listen",
        &listen,
        "--xdp-iface",
        &iface,
        "--max-src-conn",
        "6",
        "--max-src-conn-rate",
        "off",
        "--probe-class",
        "lab=198.18.0.0/28",
        "--probe-class",
        "office=198.18.0.16/28",
        // The source that trips a limit gets a class of its own: how many of
        // its reset connections the daemon had accepted is a matter of timing.
        "--probe-class",
        "tripper=198.18.0.48/28",
    ];
    args.extend_from_slice(extra);
    bed.start_kmsd(&args)?;
    bed.kmsd()
        .wait_for_log("edge enforcer ready", Duration::from_secs(10))?;
    Ok(())
}

/// One verified activation with `kmsd client` from `source`.
fn activate(bed: &Testbed, source: &str, product: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = kmsd_in(&bed.client)?
        .args(["client", &SERVER_V4.to_string(), "--source", source])
        .args(["--product", product, "--timeout", "5"])
        .output()?;
    ensure!(
        out.status.success(),
        "activation of {product} from {source} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed())
}

/// A bare TCP open and close: what an uptime monitor does.
fn probe(bed: &Testbed, source: &str) -> anyhow::Result<()> {
    let got = tcp::attempt(
        &bed.client,
        Some(source.parse()?),
        kms(),
        Duration::from_secs(2),
    )?;
    ensure!(got == Connect::Established, "probe from {source}: {got:?}");
    Ok(())
}

/// Trips max-src-conn 6 from `source`: six held connections, a seventh.
fn trip(bed: &Testbed, source: &str) -> anyhow::Result<()> {
    let src: IpAddr = source.parse()?;
    let (held, _) = tcp::open(&bed.client, Some(src), kms(), 6, Duration::from_secs(2))?;
    ensure!(held.len() == 6);
    ensure!(tcp::reset_within(
        &bed.client,
        Some(src),
        kms(),
        Duration::from_secs(2)
    )?);
    Ok(())
}

/// The value of the sample whose name and labels start with `selector`.
fn value(scrape: &str, selector: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(selector) && l[selector.len()..].starts_with([' ', '{', ',']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until every `(selector, value)` holds (bounded), returning the scrape.
fn scrape_until(bed: &Testbed, expected: &[(&str, f64)]) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = bed.http_get("/metrics")?;
        ensure!(status == 200, "/metrics: {status}");
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(sel, v)| value(&body, sel) != Some(*v))
            .map(|(sel, v)| format!("{sel} = {:?}, expected {v}", value(&body, sel)))
            .collect();
        if wrong.is_empty() {
            return Ok(body);
        }
        if Instant::now() > deadline {
            bail!("metrics did not settle: {wrong:#?}\n{body}");
        }
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn metric_values_match_what_happened_and_pass_promtool() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(&mut bed, &["--no-keys-json"])?;
    for _ in 0..3 {
        activate(&bed, LAB, WINDOWS)?;
    }
    for _ in 0..2 {
        activate(&bed, OFFICE_NET, OFFICE)?;
    }
    for _ in 0..4 {
        probe(&bed, LAB)?;
    }
    for _ in 0..2 {
        probe(&bed, OFFICE_NET)?;
    }
    probe(&bed, OUTSIDE)?;
    trip(&bed, TRIPPER)?;
    bed.op(&["blocked", "add", "198.18.9.9", "2001:db8:9::/64"])?;

    let scrape = scrape_until(
        &bed,
        &[
            (
                &format!("kms_activations_total{{product=\"{WINDOWS}\",status=\"ok\"}}"),
                3.0,
            ),
            (
                &format!("kms_activations_total{{product=\"{OFFICE}\",status=\"ok\"}}"),
                2.0,
            ),
            ("kms_requests_total{protocol=\"6\",result=\"ok\"}", 5.0),
            ("kms_request_duration_seconds_count", 5.0),
            ("kms_connection_probes_total{source=\"lab\"}", 4.0),
            ("kms_connection_probes_total{source=\"office\"}", 2.0),
            ("kms_connection_probes_total{source=\"external\"}", 1.0),
            ("kms_blocked_sources{reason=\"manual\"}", 2.0),
            ("kms_blocked_sources{reason=\"max-src-conn\"}", 1.0),
            ("kms_blocked_sources{reason=\"max-src-conn-rate\"}", 0.0),
            ("kms_overloads_total{reason=\"max-src-conn\"}", 1.0),
            ("kms_bpf_map_entries{map=\"blocked_v4\"}", 2.0),
            ("kms_bpf_map_entries{map=\"blocked_v6\"}", 1.0),
            ("kms_bpf_map_capacity{map=\"blocked_v4\"}", 65536.0),
            ("kms_connections_open", 0.0),
        ],
    )?;
    assert!(value(&scrape, "kms_connections_total").unwrap() >= 12.0);
    assert!(value(&scrape, "kms_xdp_packets_total{verdict=\"pass\"}").unwrap() > 0.0);
    assert!(
        value(
            &scrape,
            "kms_counted_connections_total{event=\"established\"}"
        )
        .unwrap()
            >= 15.0
    );
    assert!(
        scrape.contains("kms_build_info{bpf_object_sha=\""),
        "{scrape}"
    );

    // Drops by blocked source, with the source as a label.
    let dst = std::net::SocketAddrV4::new(SERVER_V4, 1688);
    let frames = (0..5)
        .map(|seq| tcp::tagged_syn(&[], "198.18.9.9".parse().unwrap(), dst, seq))
        .collect();
    let client_if = bed.client_if.clone();
    tcp::send_frames(&bed.client, &client_if, frames)?;
    let scrape = scrape_until(
        &bed,
        &[(
            "kms_blocked_source_dropped_packets{reason=\"manual\",source=\"198.18.9.9/32\"}",
            5.0,
        )],
    )?;

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool (install Debian's prometheus package)")?;
    promtool
        .stdin
        .take()
        .context("stdin")?
        .write_all(scrape.as_bytes())?;
    let out = promtool.wait_with_output()?;
    let lint = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && lint.trim().is_empty(),
        "promtool: {lint}"
    );

    assert_eq!(bed.http_get("/keys.json")?.0, 404, "--no-keys-json");
    monitoring_files_use_only_exported_metrics(&scrape)?;
    Ok(())
}

/// The example dashboard and alerts name only metrics kmsd exports, and the
/// alert rules load.
fn monitoring_files_use_only_exported_metrics(scrape: &str) -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
    let exported: Vec<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(dir.join(file))?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("kms_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                exported.contains(&base),
                "{file} uses {name}, which kmsd does not export"
            );
        }
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(dir.join("alerts.yml"))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A Prometheus server in the server namespace, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_series() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    start(&mut bed, &[])?;
    let dir = bed.workdir.0.join("prometheus");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kmsd\n    static_configs:\n      - targets: ['127.0.0.1:9101']\n",
    )?;
    let file = bed.server.open()?;
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log"))?);
    // SAFETY: setns is async-signal-safe; `file` outlives the fork.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || tests::netns::enter(&file));
    }
    let _prometheus = Prometheus(cmd.spawn().context("starting prometheus")?);

    activate(&bed, LAB, WINDOWS)?;
    activate(&bed, LAB, OFFICE)?;
    probe(&bed, OFFICE_NET)?;
    trip(&bed, TRIPPER)?;

    let api: SocketAddr = "127.0.0.1:9090".parse()?;
    let query = |q: &str| -> anyhow::Result<Option<f64>> {
        let (status, body) =
            tests::http::get(&bed.server, api, &format!("/api/v1/query?query={q}"))?;
        if status != 200 {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok()))
    };
    let expectations = [
        ("sum(kms_activations_total{status=\"ok\"})", 2.0),
        ("kms_connection_probes_total{source=\"office\"}", 1.0),
        ("kms_blocked_sources{reason=\"max-src-conn\"}", 1.0),
        ("up{job=\"kmsd\"}", 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for (q, want) in expectations {
        let encoded = q
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
            .replace('(', "%28")
            .replace(')', "%29");
        loop {
            // Prometheus may still be starting: a refused connection is "not yet".
            let got = query(&encoded).unwrap_or(None);
            if got == Some(want) {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                bail!("Prometheus has {q} = {got:?}, expected {want}\n{log}");
            }
            sleep(Duration::from_millis(250));
        }
    }
    Ok(())
}

#[test]
fn the_notifier_dedups_across_restarts_skips_probes_and_never_holds_up_activations()
-> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    let receiver = Receiver::start(&bed.server, "127.0.0.1:18080".parse()?)?;
    let state = bed.workdir.0.join("notify.json");
    let state_arg = state.display().to_string();
    let notify_args = [
        "--notify-url",
        "http://127.0.0.1:18080/hook",
        "--notify-state-file",
        state_arg.as_str(),
    ];
    start(&mut bed, &notify_args)?;

    activate(&bed, LAB, WINDOWS)?;
    activate(&bed, LAB, WINDOWS)?;
    activate(&bed, LAB, OFFICE)?;
    activate(&bed, OFFICE_NET, WINDOWS)?;
    probe(&bed, LAB)?;
    probe(&bed, OUTSIDE)?;
    trip(&bed, TRIPPER)?;
    let wait_for = |n: usize| -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let bodies = receiver.bodies();
            if bodies.len() >= n || Instant::now() > deadline {
                return Ok(bodies);
            }
            sleep(Duration::from_millis(50));
        }
    };
    let bodies = wait_for(4)?;
    sleep(Duration::from_millis(500));
    let bodies_after = receiver.bodies();
    assert_eq!(bodies_after.len(), 4, "{bodies_after:#?}");
    let texts: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).expect("JSON body")["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let has = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(has(&format!("{WINDOWS} from {LAB} (")), 1, "{texts:#?}");
    assert_eq!(has(&format!("{OFFICE} from {LAB} (")), 1, "{texts:#?}");
    assert_eq!(
        has(&format!("{WINDOWS} from {OFFICE_NET} (")),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        has(&format!("blocked {TRIPPER}/32: max-src-conn")),
        1,
        "{texts:#?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains(OUTSIDE)),
        "probes are never posted"
    );
    let log = bed.kmsd().log_text();
    assert!(
        !log.contains("18080/hook"),
        "the webhook URL is never logged"
    );

    // A restart keeps the dedup state.
    bed.kmsd().stop(Duration::from_secs(10))?;
    start_again(&mut bed, &notify_args)?;
    activate(&bed, LAB, WINDOWS)?;
    sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.bodies().len(),
        4,
        "no second post after the restart"
    );
    scrape_until(
        &bed,
        &[("kms_notifications_total{result=\"deduplicated\"}", 1.0)],
    )?;

    // A receiver that hangs or fails holds up nothing.
    receiver.set(Behaviour::Hang);
    for product in [
        "Windows Server 2019 Datacenter",
        "Windows Server 2019 Standard",
    ] {
        let took = activate(&bed, LAB, product)?;
        assert!(
            took < Duration::from_secs(3),
            "activation took {took:?} with a hanging webhook"
        );
    }
    receiver.set(Behaviour::Fail);
    activate(&bed, OFFICE_NET, OFFICE)?;
    scrape_until(
        &bed,
        &[(
            &format!("kms_activations_total{{product=\"{OFFICE}\",status=\"ok\"}}"),
            1.0,
        )],
    )?;
    Ok(())
}

/// Starts kmsd again on a testbed whose addresses are already set up.
fn start_again(bed: &mut Testbed, extra: &[&str]) -> anyhow::Result<()> {
    let iface = bed.server_if.clone();
    let listen = kms().to_string();
    let mut args = vec!["--listen", &listen, "--xdp-iface", &iface];
    args.extend_from_slice(extra);
    bed.start_kmsd(&args)?;
    bed.kmsd()
        .wait_for_log("edge enforcer ready", Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn readyz_waits_for_every_listener_and_keys_json_serves_the_catalogue() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    let iface = bed.server_if.clone();
    bed.start_kmsd_with_bound(
        &[
            "--listen",
            "198.18.0.1:1688",
            "--listen",
            "198.18.0.9:1688",
            "--xdp-iface",
            &iface,
        ],
        1,
    )?;
    bed.kmsd()
        .wait_for_log("cannot bind the KMS listener", Duration::from_secs(10))?;
    let (status, body) = bed.http_get("/readyz")?;
    assert_eq!(status, 503);
    assert!(body.starts_with("KMS listener 198.18.0.9:1688: "), "{body}");
    assert_eq!(bed.http_get("/healthz")?, (200, "ok\n".to_string()));

    // The address arrives (as DHCP would): the listener binds, kmsd is ready.
    bed.server
        .exec(&["addr", "add", "198.18.0.9/24", "dev", &iface])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed.http_get("/readyz")?.0 != 200 {
        ensure!(
            Instant::now() < deadline,
            "never ready: {:?}",
            bed.http_get("/readyz")?
        );
        sleep(Duration::from_millis(100));
    }
    let (status, keys) = bed.http_get("/keys.json")?;
    assert_eq!(status, 200);
    let keys: serde_json::Value = serde_json::from_str(&keys)?;
    assert_eq!(
        keys["gvlk_by_name"][WINDOWS],
        "W269N-WFGWX-YVC9B-4J6C9-T83GX"
    );
    Ok(())
}
