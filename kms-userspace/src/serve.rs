//! `kmsd serve`: bind the listeners, attach the XDP front door, serve until
//! SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context as _;
use tracing::{debug, info, warn};

use std::sync::{Arc, atomic::AtomicU32};

use rand::Rng as _;
use tokio::sync::Semaphore;

use crate::{
    activation::KmsService,
    catalog::catalog,
    config::{ServeOptions, Settings},
    connection::Shared,
    edge::{self, loader::Edge, stats::StatsReader},
    listener, netdev,
    policy::Policy,
    rpc::{bind::Offer, session::RpcOptions},
    shutdown,
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
    let listeners = settings
        .listen
        .iter()
        .map(|&addr| listener::bind(addr))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let edge = match &settings.xdp {
        Some(xdp) => {
            let interfaces = if xdp.interfaces.is_empty() {
                vec![netdev::default_route_interface()?]
            } else {
                xdp.interfaces.clone()
            };
            Some(edge::loader::start(xdp, &interfaces)?)
        }
        None => {
            info!("XDP disabled (--no-xdp): serving without the in-kernel enforcer");
            None
        }
    };

    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = tokio::task::JoinSet::new();
    let slots = settings.max_clients.map(|n| Arc::new(Semaphore::new(n)));
    for listener in listeners {
        tasks.spawn(listener::accept_loop(
            listener,
            shared.clone(),
            slots.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(edge) = edge {
        tasks.spawn(log_counters(
            edge,
            settings.stats_interval,
            shutdown.clone(),
        ));
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

/// Logs the XDP counters at debug level until shutdown. Holding `edge` here
/// also keeps the loaded object alive for as long as the daemon serves.
async fn log_counters(mut edge: Edge, every: Duration, mut shutdown: shutdown::Shutdown) {
    let reader = match edge
        .ebpf
        .take_map(kms_common::names::STATS_MAP)
        .map(StatsReader::from_map)
    {
        Some(Ok(reader)) => reader,
        Some(Err(e)) => return warn!(error = %format!("{e:#}"), "cannot read XDP counters"),
        None => return warn!("the BPF object has no counter map"),
    };
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticker.tick() => match reader.read() {
                Ok(counters) => debug!(counters = %edge::stats::format_line(&counters), "XDP counters"),
                Err(e) => warn!(error = %format!("{e:#}"), "reading XDP counters failed"),
            },
        }
    }
}
