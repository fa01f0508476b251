//! `kmsd client` ↔ `kmsd serve` over real TCP: every product in the
//! catalogue once, and the protocol × NDR × BTFN × multiplex × reconnect cross
//! product on one product per application, against two server flavours.

use std::{process::Output, sync::Mutex, time::Duration};

use serde_json::Value;
use tests::{SERVER_V4, SERVER_V6, Testbed, process::kmsd_in};

const PARALLEL: usize = 8;

/// Runs `kmsd client ARGS` from the client namespace for every argument list,
/// `PARALLEL` at a time; returns the failures (args, output).
fn run_clients(bed: &Testbed, runs: Vec<Vec<String>>) -> Vec<(Vec<String>, String)> {
    let queue = Mutex::new(runs);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let Some(args) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let out: Output = kmsd_in(&bed.client)
                        .unwrap()
                        .arg("client")
                        .args(&args)
                        .args(["--timeout", "5", "--json"])
                        .output()
                        .unwrap();
                    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
                    let ok = out.status.success()
                        && serde_json::from_str::<Value>(stdout.lines().last().unwrap_or(""))
                            .is_ok_and(|v| {
                                v["failures"] == 0 && v["activations"].as_u64() >= Some(1)
                            });
                    if !ok {
                        let err = String::from_utf8_lossy(&out.stderr).to_string();
                        failures
                            .lock()
                            .unwrap()
                            .push((args, format!("{}\n{stdout}{err}", out.status)));
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

fn products() -> Vec<String> {
    let out = std::process::Command::new(tests::process::kmsd_bin())
        .args(["products", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_catalogue_product_activates() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    bed.start_kmsd(&["--no-xdp", "--listen", &format!("{SERVER_V4}:1688")])?;
    let skus = products();
    assert!(skus.len() > 300, "the whole catalogue: {}", skus.len());
    let runs = skus
        .iter()
        .map(|sku| vec![format!("{SERVER_V4}:1688"), "--product".into(), sku.clone()])
        .collect();
    let failures = run_clients(&bed, runs);
    assert!(
        failures.is_empty(),
        "{} products failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    let log = bed.kmsd().log_text();
    assert!(
        log.matches("result=0x00000000").count() >= skus.len(),
        "one activation log line per product"
    );
    Ok(())
}

#[test]
fn cross_product_of_client_options_against_two_server_flavours() -> anyhow::Result<()> {
    for server_flags in [&[][..], &["--ndr64", "false", "--btfn", "false"][..]] {
        let mut bed = Testbed::new()?;
        let mut args = vec![
            "--no-xdp",
            "--listen",
            "198.18.0.1:1688",
            "--listen",
            "[2001:db8::1]:1688",
        ];
        args.extend_from_slice(server_flags);
        bed.start_kmsd(&args)?;
        let mut runs = Vec::new();
        for product in [
            "Windows 10 Professional",
            "Office Professional Plus 2010",
            "Office Professional Plus 2019",
        ] {
            for protocol in ["4", "5", "6"] {
                for ndr64 in ["true", "false"] {
                    for btfn in ["true", "false"] {
                        for multiplex in [true, false] {
                            for reconnect in [true, false] {
                                let target = if reconnect {
                                    format!("[{SERVER_V6}]:1688")
                                } else {
                                    format!("{SERVER_V4}:1688")
                                };
                                let mut a: Vec<String> = vec![
                                    target,
                                    "--product".into(),
                                    product.into(),
                                    "--protocol".into(),
                                    protocol.into(),
                                    "--ndr64".into(),
                                    ndr64.into(),
                                    "--btfn".into(),
                                    btfn.into(),
                                    "--requests".into(),
                                    "3".into(),
                                ];
                                if !multiplex {
                                    a.push("--no-multiplex".into());
                                }
                                if reconnect {
                                    a.push("--reconnect".into());
                                }
                                runs.push(a);
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(runs.len(), 144);
        let failures = run_clients(&bed, runs);
        assert!(
            failures.is_empty(),
            "server {server_flags:?}: {} runs failed, e.g. {:?}",
            failures.len(),
            failures.first()
        );
    }
    Ok(())
}

#[test]
fn refusals_come_back_as_hresults_and_the_client_exits_non_zero() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    bed.start_kmsd(&[
        "--no-xdp",
        "--listen",
        &format!("{SERVER_V4}:1688"),
        "--whitelist",
        "3",
    ])?;
    let run = |extra: &[&str]| {
        kmsd_in(&bed.client)
            .unwrap()
            .arg("client")
            .arg(format!("{SERVER_V4}:1688"))
            .args(extra)
            .output()
            .unwrap()
    };
    // N policy over 1000: 0x8007000D, as vlmcsd.
    let out = run(&["--required-clients", "1001"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0x8007000D"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A retail KMS id (Windows 10 Home) under whitelisting level 3: 0xC004F042.
    let out = run(&["--product", "Windows 10 Home"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0xC004F042"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A known volume product still activates.
    assert!(run(&[]).status.success());
    Ok(())
}

#[test]
fn serve_options_disconnect_max_clients_and_graceful_shutdown() -> anyhow::Result<()> {
    let mut bed = Testbed::new()?;
    bed.start_kmsd(&[
        "--no-xdp",
        "--listen",
        &format!("{SERVER_V4}:1688"),
        "--disconnect-after-response",
        "--max-clients",
        "2",
    ])?;
    // Disconnect after each response: a second request on the same
    // connection fails, one per connection works.
    let target = format!("{SERVER_V4}:1688");
    let out = kmsd_in(&bed.client)?
        .args(["client", &target, "--requests", "2"])
        .output()?;
    assert!(
        !out.status.success(),
        "the server closed after the first response"
    );
    let out = kmsd_in(&bed.client)?
        .args(["client", &target, "--requests", "2", "--reconnect"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Two idle connections take both slots: a third is closed at once.
    let addr = std::net::SocketAddr::from((SERVER_V4, 1688));
    let third_closed = tests::in_netns(&bed.client, move || {
        use std::io::Read;
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        matches!(c.read(&mut [0u8; 16]), Ok(0) | Err(_))
    })?;
    assert!(third_closed, "over-limit connection closed at once");

    // SIGTERM with an idle client connected: exits 0 promptly.
    let idle = tests::in_netns(&bed.client, move || {
        std::net::TcpStream::connect(addr).unwrap()
    })?;
    let started = std::time::Instant::now();
    let status = bed.kmsd().stop(Duration::from_secs(10))?;
    assert!(tests::process::exited_cleanly(status), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
    Ok(())
}
