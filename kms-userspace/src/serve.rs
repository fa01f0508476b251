//! `kmsd serve`: the HTTP endpoint, the XDP front door and the connection
//! counter, the KMS listeners; serve until SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context as _;
use tracing::{debug, info, warn};

use std::sync::{Arc, atomic::AtomicU32};

use aya::maps::RingBuf;
use kms_common::names;
use rand::Rng as _;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};

use crate::{
    activation::KmsService,
    catalog::catalog,
    config::{ServeOptions, Settings, XdpSettings},
    connection::Shared,
    edge::{self, loader::Edge, stats::StatsReader, tables::Tables},
    listener, netdev,
    observe::{
        self, bpf::BpfCollector, http::Endpoint, metrics::Metrics, notify::Notifier,
        ready::Readiness,
    },
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
    let metrics = Arc::new(Metrics::new());
    let interfaces = match &settings.xdp {
        Some(xdp) if xdp.interfaces.is_empty() => vec![netdev::default_route_interface()?],
        Some(xdp) => xdp.interfaces.clone(),
        None => Vec::new(),
    };
    let readiness = Arc::new(Readiness::new(&settings.listen, &interfaces));
    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();

    // The endpoint first, so /readyz can say what is still missing.
    if let Some(addr) = settings.observe.metrics {
        let endpoint = Endpoint {
            registry: metrics.registry.clone(),
            readiness: readiness.clone(),
            keys_json: settings.observe.keys_json,
        };
        tasks.spawn(observe::http::bind(addr, endpoint, shutdown.clone()).await?);
    }
    let notifier = settings.observe.notify.clone().map(|notify| {
        let (notifier, delivery) = Notifier::start(notify, metrics.clone(), shutdown.clone());
        tasks.spawn(delivery);
        notifier
    });
    let shared = Arc::new(kms_service(&settings, metrics.clone(), notifier.clone())?);

    // The connection counter watches the cgroup the listening sockets are
    // created in, so the daemon enters its cgroup before binding.
    let edge = match &settings.xdp {
        Some(xdp) => {
            let cgroup = edge::cgroup::resolve(xdp.cgroup.as_deref())?;
            Some(edge::loader::start(xdp, &cgroup, &interfaces, &readiness)?)
        }
        None => {
            info!("XDP disabled (--no-xdp): serving without the in-kernel enforcer");
            None
        }
    };
    let guard = match &edge {
        Some(edge) => Some(Tables::open_pinned(&edge.pin_dir)?),
        None => None,
    };
    let tracker = Arc::new(Tracker::new(guard));
    let slots = settings.max_clients.map(|n| Arc::new(Semaphore::new(n)));
    for &addr in &settings.listen {
        tasks.spawn(listener::serve(
            addr,
            shared.clone(),
            tracker.clone(),
            slots.clone(),
            readiness.clone(),
            shutdown.clone(),
        ));
    }

    if let (Some(edge), Some(xdp)) = (edge, settings.xdp.clone()) {
        let parts = EdgeTasks {
            metrics: &metrics,
            tracker: &tracker,
            notifier: &notifier,
            readiness: &readiness,
            shutdown: &shutdown,
        };
        parts.spawn(edge, xdp, &settings, &mut tasks)?;
    }

    let signal = shutdown::signalled()
        .await
        .context("installing signal handlers")?;
    if settings.xdp.is_some() {
        info!(
            signal,
            "shutting down: no new connections, idle ones closed; the pinned programs stay attached and keep enforcing"
        );
    } else {
        info!(
            signal,
            "shutting down: no new connections, idle ones closed"
        );
    }
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

/// What the enforcer's background tasks share with the rest of the daemon.
struct EdgeTasks<'a> {
    metrics: &'a Metrics,
    tracker: &'a Arc<Tracker>,
    notifier: &'a Option<Arc<Notifier>>,
    readiness: &'a Arc<Readiness>,
    shutdown: &'a shutdown::Shutdown,
}

impl EdgeTasks<'_> {
    /// The kernel's metrics, then the tasks: overload events (flush and
    /// notify), upkeep (expiry, state file), counter logging, and the owner
    /// of the loaded object that retries refused interfaces.
    fn spawn(
        &self,
        mut edge: Edge,
        xdp: XdpSettings,
        settings: &Settings,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<()> {
        let pin_dir = edge.pin_dir.clone();
        self.metrics.registry.register(Box::new(BpfCollector::new(
            StatsReader::open_pinned(&pin_dir)?,
            Tables::open_pinned(&pin_dir)?,
            settings.observe.top_sources,
        )))?;
        let changed = Arc::new(Notify::new());
        let ring = edge
            .ebpf
            .take_map(names::EVENTS_MAP)
            .context("the BPF object has no event ring")?;
        tasks.spawn(edge::events::run(
            RingBuf::try_from(ring)?,
            Tables::open_pinned(&pin_dir)?,
            self.tracker.clone(),
            self.notifier.clone(),
            changed.clone(),
            self.shutdown.clone(),
        ));
        tasks.spawn(edge::upkeep::run(
            edge.tables,
            StatsReader::open_pinned(&pin_dir)?,
            xdp.state_file.clone(),
            changed,
            self.shutdown.clone(),
        ));
        tasks.spawn(log_counters(
            StatsReader::open_pinned(&pin_dir)?,
            settings.stats_interval,
            self.shutdown.clone(),
        ));
        // Owns the loaded object (keeping its programs' descriptors open)
        // and retries interfaces that refused the program.
        tasks.spawn(edge::loader::keep_attached(
            edge.ebpf,
            xdp,
            edge.pending,
            self.readiness.clone(),
            self.shutdown.clone(),
        ));
        Ok(())
    }
}

/// The KMS service and connection settings every connection shares.
fn kms_service(
    settings: &Settings,
    metrics: Arc<Metrics>,
    notifier: Option<Arc<Notifier>>,
) -> anyhow::Result<Shared> {
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
        metrics,
        probe_classes: settings.observe.probe_classes.clone(),
        notifier,
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
