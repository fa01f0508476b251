//! The KMS listeners: bound up front (so a bad address fails the start, not a
//! task later), IPv6 sockets set v6-only so `0.0.0.0:1688` and `[::]:1688`
//! coexist.

use std::net::SocketAddr;

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::shutdown::Shutdown;

const BACKLOG: i32 = 1024;

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
    info!(%addr, "KMS listener bound");
    Ok(listener)
}

/// Accepts until shutdown. Until the KMS protocol is served, a connection is
/// accepted and closed at once.
pub async fn accept_loop(listener: TcpListener, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => handle(stream, peer),
                // Out of descriptors and the like: keep serving the others.
                Err(e) => warn!(error = %e, "accept failed"),
            },
        }
    }
}

fn handle(stream: TcpStream, peer: SocketAddr) {
    debug!(%peer, "connection accepted and closed");
    drop(stream);
}
