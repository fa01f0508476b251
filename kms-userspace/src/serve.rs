//! `kmsd serve`: bind the listeners, attach the XDP front door, serve until
//! SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context as _;
use tracing::{debug, info, warn};

use std::sync::{Arc, atomic::AtomicU32};

use aya::maps::RingBuf;
use kms_common::names;
use rand::Rng as _;
use tokio::sync::{Notify, Semaphore};

use crate::{
    activation::KmsService,
    catalog::catalog,
    config::{ServeOptions, Settings},
    connection::Shared,
    edge::{self, stats::StatsReader, tables::Tables},
    listener, netdev,
    policy::Policy,
    rpc::{bind::Offer, session::RpcOptions},
    shutdown,
    tracker::Tracker,
};

/// How long in-flight work may take once shutdown has begun.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub fn run(options: ServeOptions) -> anyhow::Result<()> {
    let settings = options.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shared = Arc::new(kms_service(&settings)?);
    // The connection counter watches the cgroup the listening sockets are
    // created in, so the daemon enters its cgroup before binding.
    let cgroup = match &settings.xdp {
        Some(xdp) => Some(edge::cgroup::resolve(xdp.cgroup.as_deref())?),
        None => None,
    };
    let listeners = settings
        .listen
        .iter()
        .map(|&addr| listener::bind(addr))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let edge = match (&settings.xdp, &cgroup) {
        (Some(xdp), Some(cgroup)) => {
            let interfaces = if xdp.interfaces.is_empty() {
                vec![netdev::default_route_interface()?]
            } else {
                xdp.interfaces.clone()
            };
            Some(edge::loader::start(xdp, cgroup, &interfaces)?)
        }
        _ => {
            info!("XDP disabled (--no-xdp): serving without the in-kernel enforcer");
            None
        }
    };

    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = tokio::task::JoinSet::new();
    let guard = match &edge {
        Some(edge) => Some(Tables::open_pinned(&edge.pin_dir)?),
        None => None,
    };
    let tracker = Arc::new(Tracker::new(guard));
    let slots = settings.max_clients.map(|n| Arc::new(Semaphore::new(n)));
    for listener in listeners {
        tasks.spawn(listener::accept_loop(
            listener,
            shared.clone(),
            tracker.clone(),
            slots.clone(),
            shutdown.clone(),
        ));
    }
    // Holding the object keeps the programs' descriptors open while we serve.
    let mut _ebpf = None;
    if let Some(mut edge) = edge {
        let changed = Arc::new(Notify::new());
        let ring = edge
            .ebpf
            .take_map(names::EVENTS_MAP)
            .context("the BPF object has no event ring")?;
        tasks.spawn(edge::events::run(
            RingBuf::try_from(ring)?,
            Tables::open_pinned(&edge.pin_dir)?,
            tracker.clone(),
            changed.clone(),
            shutdown.clone(),
        ));
        let state_file = settings.xdp.as_ref().and_then(|x| x.state_file.clone());
        tasks.spawn(edge::upkeep::run(
            edge.tables,
            state_file,
            changed,
            shutdown.clone(),
        ));
        let stats = edge
            .ebpf
            .take_map(names::STATS_MAP)
            .context("the BPF object has no counter map")?;
        tasks.spawn(log_counters(
            StatsReader::from_map(stats)?,
            settings.stats_interval,
            shutdown.clone(),
        ));
        _ebpf = Some(edge.ebpf);
    }

    let signal = shutdown::signalled()
        .await
        .context("installing signal handlers")?;
    info!(
        signal,
        "shutting down: no new connections, idle ones closed; pinned XDP links stay attached"
    );
    trigger.fire();
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!(grace = ?SHUTDOWN_GRACE, "tasks still running after the grace period; exiting anyway");
    }
    Ok(())
}

/// The KMS service and connection settings every connection shares.
fn kms_service(settings: &Settings) -> anyhow::Result<Shared> {
    let catalog = catalog();
    let mut rng = rand::rng();
    let policy =
        Policy::new(catalog, settings.policy.clone(), &mut rng).map_err(anyhow::Error::msg)?;
    let offer = Offer {
        ndr64: policy.ndr64(),
        btfn: settings.btfn,
    };
    info!(ndr64 = offer.ndr64, btfn = offer.btfn, "KMS service ready");
    Ok(Shared {
        service: KmsService::new(catalog, policy),
        rpc: RpcOptions { offer },
        timeout: settings.timeout,
        disconnect_after_response: settings.disconnect_after_response,
        assoc_group: AtomicU32::new(rng.random()),
    })
}

/// Logs the BPF counters at debug level until shutdown.
async fn log_counters(reader: StatsReader, every: Duration, mut shutdown: shutdown::Shutdown) {
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticker.tick() => match reader.read() {
                Ok(counters) => debug!(counters = %edge::stats::format_line(&counters), "BPF counters"),
                Err(e) => warn!(error = %format!("{e:#}"), "reading BPF counters failed"),
            },
        }
    }
}
