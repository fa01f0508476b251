//! kmsd on real Debian kernels: for each kernel (in parallel), boot a guest
//! and, in native then SKB mode, check that the BPF programs load (the
//! verifier's log is the failure otherwise), that activations from the host
//! pass, that max-src-conn trips and the host is dropped at XDP, and that
//! `kmsd blocked show` and `flush` work inside the guest.
//!
//! Environment (set by `cargo xtask vm-test` and `cargo xtask test`):
//! `KMS_VM_KMSD` the static kmsd for the guest, `KMSD_BIN` the host's kmsd,
//! `KMS_VM_KERNELS` (default `6.1,6.12,newest`), `KMS_VM_ACCEL` (`tcg`).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use tests::{
    process::kmsd_in,
    tcp::{self, Connect},
};
use vm_tests::{
    apt::Apt,
    cache_dir,
    guest::{Accel, Guest},
    initramfs,
    kernel::{self, Kernel, Spec},
};

const MODES: [&str; 2] = ["native", "skb"];
/// Guest commands run under emulation: generous bounds.
const GUEST_STEP: Duration = Duration::from_secs(60);

struct Report {
    release: String,
    boot: Duration,
    modes: Vec<(&'static str, Duration)>,
}

#[test]
fn kmsd_and_its_xdp_program_work_on_real_debian_kernels() -> anyhow::Result<()> {
    let guest_kmsd = PathBuf::from(std::env::var_os("KMS_VM_KMSD").context(
        "KMS_VM_KMSD is not set: run the VM tests with `cargo xtask vm-test` or `cargo xtask test` (they build the static kmsd)",
    )?);
    let specs: Vec<Spec> = match std::env::var("KMS_VM_KERNELS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(Spec::parse).collect(),
        _ => Spec::defaults(),
    };
    let accel = Accel::parse(&std::env::var("KMS_VM_ACCEL").unwrap_or_else(|_| "tcg".into()))?;

    let started = Instant::now();
    let cache = cache_dir();
    let apt = Apt::update(&cache.join("apt"))?;
    let busybox = initramfs::busybox(&apt, &cache)?;
    let kernels = specs
        .iter()
        .map(|spec| {
            kernel::fetch(&apt, &cache, spec).with_context(|| format!("fetching kernel {spec:?}"))
        })
        .collect::<anyhow::Result<Vec<Kernel>>>()?;
    let prepared = started.elapsed();

    let results: Vec<anyhow::Result<Report>> = std::thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .enumerate()
            .map(|(i, kernel)| {
                let (busybox, guest_kmsd, cache) = (&busybox, &guest_kmsd, &cache);
                s.spawn(move || run_kernel(kernel, 64 + i as u8, accel, busybox, guest_kmsd, cache))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("kernel thread panicked")))
            })
            .collect()
    });

    let mut summary = vec![format!(
        "VM tests: kernels fetched and prepared in {:.1} s",
        prepared.as_secs_f64()
    )];
    let mut failures = Vec::new();
    for (kernel, result) in kernels.iter().zip(results) {
        match result {
            Ok(r) => summary.push(format!(
                "VM tests: {}: boot {:.1} s, {}",
                r.release,
                r.boot.as_secs_f64(),
                r.modes
                    .iter()
                    .map(|(m, d)| format!("{m} {:.1} s", d.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => failures.push(format!("{}: {e:#}", kernel.release)),
        }
    }
    summary.push(format!(
        "VM tests: total {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    // The test harness hides a passing test's output: the summary also goes
    // to a file that `cargo xtask` prints after the run.
    let text = summary.join("\n");
    eprintln!("{text}");
    std::fs::write(cache.join("last-run.txt"), format!("{text}\n"))?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n\n"));
    }
    Ok(())
}

fn run_kernel(
    kernel: &Kernel,
    subnet: u8,
    accel: Accel,
    busybox: &std::path::Path,
    guest_kmsd: &std::path::Path,
    cache: &std::path::Path,
) -> anyhow::Result<Report> {
    let initramfs = cache.join(format!("initramfs-{}.cpio", kernel.release));
    initramfs::build(kernel, busybox, guest_kmsd, &initramfs)?;
    let logs = cache.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{}.log", kernel.release));
    let mut guest = Guest::boot(kernel, &initramfs, accel, subnet, &log)?;
    let mut modes = Vec::new();
    for mode in MODES {
        let started = Instant::now();
        if let Err(e) = scenario(&mut guest, mode) {
            // What the guest's kmsd saw, if the guest still answers; then the
            // serial log's tail (the log itself is kept).
            let daemon = guest
                .run(
                    "tail -n 30 /tmp/kmsd.log; kmsd status",
                    Duration::from_secs(30),
                )
                .map(|(_, out)| out)
                .unwrap_or_default();
            return Err(e.context(format!(
                "{mode} mode; kmsd in the guest:\n{daemon}\nserial log kept at {}; its tail:\n{}",
                log.display(),
                guest.tail(40)
            )));
        }
        modes.push((mode, started.elapsed()));
    }
    let boot = guest.boot_time;
    guest.shutdown()?;
    Ok(Report {
        release: kernel.release.clone(),
        boot,
        modes,
    })
}

fn scenario(guest: &mut Guest, mode: &str) -> anyhow::Result<()> {
    let kms = SocketAddr::new(IpAddr::V4(guest.guest_addr), 1688);
    let host = IpAddr::V4(guest.host_addr);
    guest.ok(
        &format!(
            "kmsd serve --listen {kms} --xdp-iface eth0 --xdp-mode {mode} --max-src-conn 3 --max-src-conn-rate off --state-file none --no-metrics > /tmp/kmsd.log 2>&1 &"
        ),
        GUEST_STEP,
    )?;
    // Ready, or the daemon's own words (the verifier log, if a program was
    // rejected by this kernel).
    let (status, output) = guest.run(
        "i=0; while ! grep -q 'edge enforcer ready' /tmp/kmsd.log || ! grep -q 'KMS listener bound' /tmp/kmsd.log; do \
           if ! pidof kmsd > /dev/null; then echo 'kmsd exited:'; cat /tmp/kmsd.log; exit 1; fi; \
           i=$((i + 1)); if [ $i -gt 600 ]; then echo 'kmsd not ready after 60 s:'; cat /tmp/kmsd.log; exit 2; fi; \
           sleep 0.1; done; grep 'XDP attached' /tmp/kmsd.log",
        Duration::from_secs(90),
    )?;
    ensure!(status == 0, "kmsd did not start in {mode} mode:\n{output}");
    ensure!(
        output.contains(&format!("mode=\"{mode}\"")),
        "attached in another mode:\n{output}"
    );

    for product in ["Windows 10 Professional", "Office Professional Plus 2019"] {
        let out = kmsd_in(&guest.netns)?
            .args([
                "client",
                &kms.to_string(),
                "--product",
                product,
                "--timeout",
                "30",
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "activation of {product} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The activations' sockets still count until they reach CLOSED (pf's
    // states do too); under emulation that takes a moment.
    let mut open = u64::MAX;
    for _ in 0..100 {
        let status: serde_json::Value =
            serde_json::from_str(guest.ok("kmsd status --json", GUEST_STEP)?.trim())?;
        open = status["open_connections_counted"]
            .as_u64()
            .unwrap_or(u64::MAX);
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        open == 0,
        "the activations' connections are still counted: {open}"
    );
    let (held, failed) = tcp::open(&guest.netns, Some(host), kms, 3, Duration::from_secs(10))?;
    ensure!(held.len() == 3, "three connections allowed: {failed:?}");
    ensure!(
        tcp::reset_within(&guest.netns, Some(host), kms, Duration::from_secs(10))?,
        "the fourth connection trips max-src-conn and is reset"
    );
    let got = tcp::attempt(&guest.netns, Some(host), kms, Duration::from_secs(2))?;
    ensure!(
        got == Connect::TimedOut,
        "the blocked host is dropped at XDP, got {got:?}"
    );
    drop(held);

    let shown = guest.ok("kmsd blocked show --json", GUEST_STEP)?;
    let rows: serde_json::Value = serde_json::from_str(shown.trim())
        .with_context(|| format!("blocked show --json: {shown}"))?;
    ensure!(
        rows[0]["source"] == format!("{host}/32") && rows[0]["reason"] == "max-src-conn",
        "blocked show: {shown}"
    );
    let status: serde_json::Value =
        serde_json::from_str(guest.ok("kmsd status --json", GUEST_STEP)?.trim())?;
    ensure!(
        status["counters"]["dropped_max_src_conn"].as_u64() > Some(0),
        "drops counted: {status}"
    );
    guest.ok("kmsd blocked flush", GUEST_STEP)?;
    let got = tcp::attempt(&guest.netns, Some(host), kms, Duration::from_secs(10))?;
    ensure!(
        got == Connect::Established,
        "after flush the host connects, got {got:?}"
    );

    // Stop and detach, so the next mode starts from nothing.
    guest.ok(
        "kill $(pidof kmsd); i=0; while pidof kmsd > /dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; kmsd xdp detach",
        GUEST_STEP,
    )?;
    Ok(())
}
