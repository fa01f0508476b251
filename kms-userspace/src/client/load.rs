//! Load mode: C concurrent clients for a duration or a number of activations
//! each, with latency percentiles and the generator's own CPU use (so a
//! benchmark can tell when the generator, not the server, is the limit).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::{ClientArgs, Plan, session::Connection};
use crate::kms::protocol::Ciphers;

#[derive(Default)]
struct TaskResult {
    latencies_us: Vec<u32>,
    failures: u64,
    first_error: Option<String>,
}

pub async fn run(plan: &Plan, args: &ClientArgs) -> anyhow::Result<()> {
    let concurrency = args.concurrency.unwrap_or(1).max(1);
    let deadline = args
        .duration
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let per_task = match (args.requests, deadline) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    };
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let plan = plan.clone();
        tasks.spawn(async move { client_task(plan, per_task, deadline).await });
    }
    let mut all = TaskResult::default();
    while let Some(result) = tasks.join_next().await {
        let r = result?;
        all.latencies_us.extend(r.latencies_us);
        all.failures += r.failures;
        all.first_error = all.first_error.or(r.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu_before;
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, all.latencies_us.len())
            - 1;
        f64::from(all.latencies_us[i]) / 1000.0
    };
    let activations = all.latencies_us.len() as u64;
    let rate = activations as f64 / elapsed.max(1e-9);
    let report = json!({
        "server": plan.addr.to_string(),
        "protocol": plan.version.to_string(),
        "concurrency": concurrency,
        "reconnect": plan.reconnect,
        "activations": activations,
        "failures": all.failures,
        "elapsed_s": elapsed,
        "activations_per_sec": rate,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "client_cpu_percent": 100.0 * cpu / elapsed.max(1e-9),
        "first_error": all.first_error,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{activations} activations, {} failures in {elapsed:.2} s: {rate:.0} activations/s; latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; generator CPU {:.0}%",
            all.failures,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0),
            report["client_cpu_percent"].as_f64().unwrap_or(0.0)
        );
    }
    if all.failures > 0 {
        bail!(
            "{} of {} activations failed; first: {}",
            all.failures,
            activations + all.failures,
            all.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn client_task(plan: Plan, limit: Option<u64>, deadline: Option<Instant>) -> TaskResult {
    let ciphers = Ciphers::new();
    let mut result = TaskResult::default();
    let mut conn: Option<Connection> = None;
    let mut call_id = 2u32;
    let mut done = 0u64;
    loop {
        if limit.is_some_and(|n| done >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
            return result;
        }
        done += 1;
        let started = Instant::now();
        let outcome = async {
            if conn.is_none() || plan.reconnect {
                conn = Some(
                    Connection::open(plan.addr, plan.source, plan.bind, plan.timeout, call_id)
                        .await?,
                );
            }
            let connection = conn.as_mut().expect("opened above");
            connection
                .activate(&ciphers, &plan.request(), call_id)
                .await
        }
        .await;
        call_id = call_id.wrapping_add(1);
        match outcome {
            Ok(_) => result
                .latencies_us
                .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(e) => {
                result.failures += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
                conn = None;
                // Do not spin against a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// User + system CPU seconds of this process.
fn cpu_time() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}
