//! The KMS listeners: IPv6 sockets set v6-only so `0.0.0.0:1688` and
//! `[::]:1688` coexist; a listener that cannot bind yet is retried and shown
//! in /readyz. Each accepted connection runs in its own task.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tracing::{debug, error, info, warn};

use crate::{
    connection::{self, Shared},
    observe::ready::Readiness,
    shutdown::Shutdown,
    tracker::Tracker,
};

const BACKLOG: i32 = 1024;
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {addr}"))?;
    let listener = TcpListener::from_std(socket.into())?;
    info!(addr = %listener.local_addr()?, "KMS listener bound");
    Ok(listener)
}

/// Binds `addr` (retrying each second while it fails, e.g. before the address
/// is configured at boot, with /readyz saying why) and serves it.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    slots: Option<Arc<Semaphore>>,
    readiness: Arc<Readiness>,
    mut shutdown: Shutdown,
) {
    let mut last_error = String::new();
    let listener = loop {
        match bind(addr) {
            Ok(listener) => {
                readiness.listener(addr, Ok(()));
                break listener;
            }
            Err(e) => {
                let error = format!("{e:#}");
                if error != last_error {
                    error!(%addr, error, "cannot bind the KMS listener; retrying every second");
                    last_error.clone_from(&error);
                }
                readiness.listener(addr, Err(error));
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(BIND_RETRY) => {}
                }
            }
        }
    };
    accept_loop(listener, shared, tracker, slots, shutdown).await;
}

/// Accepts until shutdown, then waits for this listener's connections.
/// `slots` bounds simultaneous clients across all listeners (None: unlimited);
/// a connection over the limit is closed at once.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    slots: Option<Arc<Semaphore>>,
    mut shutdown: Shutdown,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
            // Reap finished tasks so the set does not grow with history.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: keep serving the others.
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let Some(admission) = tracker.admit(peer.ip()) else {
            debug!(%peer, "source is blocked; connection reset");
            let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
            continue;
        };
        let permit = match &slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    debug!(%peer, "maximum number of clients reached; connection closed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        connections.spawn(async move {
            connection::serve(stream, peer, shared, shutdown, admission.kill.clone()).await;
            drop((permit, admission));
        });
    }
    while connections.join_next().await.is_some() {}
}
