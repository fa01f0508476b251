//! `cargo xtask bench kms`: kmsd serve (release, no XDP) driven by
//! `kmsd client --concurrency 64` on loopback, keep-alive and with a new
//! connection per activation, with activation logging at info (to a file,
//! as in production) and at warn. Writes target/bench/kms.json and kms.md.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{build, workspace};

const CONCURRENCY: &str = "64";

pub fn kms(duration_s: u64) -> Result<()> {
    let kmsd = build::kmsd(true)?;
    let out_dir = workspace::root().join("target/bench");
    fs::create_dir_all(&out_dir)?;
    let mut rows = Vec::new();
    for (port, level) in [(18688u16, "info"), (18689, "warn")] {
        let log = out_dir.join(format!("kmsd-{level}.log"));
        let mut server = Server::start(&kmsd, port, level, &log)?;
        let idle_rss_kb = rss_kb(server.pid())?;
        for reconnect in [false, true] {
            let cpu_before = cpu_ticks(server.pid())?;
            let started = Instant::now();
            let mut cmd = Command::new(&kmsd);
            cmd.args([
                "client",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                CONCURRENCY,
            ])
            .args(["--duration", &duration_s.to_string(), "--json"]);
            if reconnect {
                cmd.arg("--reconnect");
            }
            let output = cmd.output().context("running kmsd client")?;
            let wall = started.elapsed().as_secs_f64();
            let server_cpu =
                (cpu_ticks(server.pid())? - cpu_before) as f64 / clock_ticks() / wall * 100.0;
            let last = String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            let mut result: Value = serde_json::from_str(&last).with_context(|| {
                format!(
                    "client output: {last}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
            result["log_level"] = json!(level);
            result["server_cpu_percent"] = json!(server_cpu);
            result["server_idle_rss_kb"] = json!(idle_rss_kb);
            result["server_rss_after_kb"] = json!(rss_kb(server.pid())?);
            eprintln!("{result}");
            rows.push(result);
        }
        server.stop();
    }
    let report =
        json!({ "benchmark": "kms", "concurrency": 64, "duration_s": duration_s, "runs": rows });
    fs::write(
        out_dir.join("kms.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let mut md = String::from(
        "| logging | connections | activations/s | p50 ms | p90 ms | p99 ms | max ms | server CPU % | client CPU % | idle RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.1} |\n",
            r["log_level"].as_str().unwrap_or(""),
            if r["reconnect"].as_bool() == Some(true) {
                "new per activation"
            } else {
                "keep-alive"
            },
            r["activations_per_sec"].as_f64().unwrap_or(0.0),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p90_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["max_ms"].as_f64().unwrap_or(0.0),
            r["server_cpu_percent"].as_f64().unwrap_or(0.0),
            r["client_cpu_percent"].as_f64().unwrap_or(0.0),
            r["server_idle_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        ));
    }
    fs::write(out_dir.join("kms.md"), &md)?;
    println!("{md}\nwritten to {}", out_dir.display());
    Ok(())
}

struct Server(Child);

impl Server {
    fn start(kmsd: &Path, port: u16, level: &str, log: &Path) -> Result<Self> {
        let file = fs::File::create(log)?;
        let child = Command::new(kmsd)
            .args([
                "--log-level",
                level,
                "serve",
                "--no-xdp",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()?;
        let server = Server(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "kmsd did not listen on {port} within 10 s (log: {})",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the probe connection's teardown settle before sampling RSS.
        std::thread::sleep(Duration::from_millis(200));
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// `cargo xtask bench xdp`: runs the `xdp` bench of the tests crate (root:
/// it loads BPF and builds namespaces), installing nftables for the
/// comparison when `nft` is missing.
pub fn xdp(flood_seconds: u64, repeat: u32) -> Result<()> {
    if !Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("xtask: nft not found; installing the nftables package for the comparison");
        workspace::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "nftables"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("installing nftables (needed for the nftables row)")?;
    }
    workspace::run(
        workspace::cargo()
            .args(["bench", "-p", "tests", "--bench", "xdp"])
            .env("KMS_BENCH_FLOOD_SECONDS", flood_seconds.to_string())
            .env("KMS_BENCH_REPEAT", repeat.to_string()),
    )?;
    println!(
        "written to {}",
        workspace::root().join("target/bench/xdp.md").display()
    );
    Ok(())
}
