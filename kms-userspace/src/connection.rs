//! One client connection: socket → PDUs → replies, with the inactivity
//! timeout, optional disconnect after each response, and shutdown.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    activation::{ActivationRecord, KmsService},
    kms::hresult,
    observe::{metrics::Metrics, notify::Notifier, probes::SourceClasses},
    rpc::{
        pdu::{self, MAX_FRAG},
        session::{Action, Call, RpcOptions, SERVER_PDU_TYPES, Session},
    },
    shutdown::Shutdown,
};

/// Settings and state every connection shares.
pub struct Shared {
    pub service: KmsService,
    pub rpc: RpcOptions,
    /// Close a connection that sends nothing for this long.
    pub timeout: Duration,
    /// Close after each response (vlmcsd `-d`).
    pub disconnect_after_response: bool,
    /// Association group ids: random base, +1 per connection (as vlmcsd).
    pub assoc_group: std::sync::atomic::AtomicU32,
    pub metrics: Arc<Metrics>,
    /// Source classes of the probe counter.
    pub probe_classes: SourceClasses,
    pub notifier: Option<Arc<Notifier>>,
}

/// How a connection ended, for the debug log.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("client closed")]
    ClientClosed,
    #[error("inactivity timeout")]
    Timeout,
    #[error("server shutting down")]
    Shutdown,
    #[error("source blocked: connection reset (flush)")]
    Flushed,
    #[error("closed after the response (disconnect-after-response)")]
    AfterResponse,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
    kill: CancellationToken,
) {
    let local_port = stream.local_addr().map_or(0, |a| a.port());
    let group = shared
        .assoc_group
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut session = Session::new(shared.rpc.clone(), group, local_port);
    let mut buf = BytesMut::with_capacity(1024);
    let mut requests = 0u32;
    // Request PDUs of any kind, answered or faulted: none means a probe.
    let mut request_pdus = 0u32;
    shared.metrics.connection_opened();
    let end = loop {
        // Answer every complete PDU already buffered (pipelined input).
        match pdu::frame(&buf, &SERVER_PDU_TYPES) {
            Err(e) => break End::Protocol(e.to_string()),
            Ok(Some(len)) => {
                let frame = buf.split_to(len);
                if frame.get(2) == Some(&pdu::ptype::REQUEST) {
                    request_pdus += 1;
                }
                let mut answered_call = false;
                let action = session.handle(&frame, |call| {
                    answered_call = true;
                    activate(&shared, peer, call)
                });
                match action {
                    Action::Close(reason) => break End::Protocol(reason.to_string()),
                    Action::Reply(reply) => {
                        if let Err(e) = stream.write_all(&reply).await {
                            break End::Io(e);
                        }
                    }
                }
                if answered_call {
                    requests += 1;
                    if shared.disconnect_after_response {
                        break End::AfterResponse;
                    }
                }
                continue;
            }
            Ok(None) => {}
        }
        debug_assert!(buf.len() < MAX_FRAG);
        let read = tokio::select! {
            _ = shutdown.wait() => break End::Shutdown,
            _ = kill.cancelled() => break End::Flushed,
            read = tokio::time::timeout(shared.timeout, stream.read_buf(&mut buf)) => read,
        };
        match read {
            Err(_) => break End::Timeout,
            Ok(Ok(0)) => break End::ClientClosed,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break End::Io(e),
        }
    };
    shared.metrics.connection_closed();
    if request_pdus == 0 {
        let class = shared.probe_classes.classify(peer.ip());
        shared.metrics.probe(class);
        debug!(%peer, class, end = %end, "probe: connection closed without an RPC request");
    } else {
        debug!(%peer, requests, end = %end, "connection closed");
    }
    if matches!(end, End::Flushed) {
        // A reset, as pf's state kill: the socket leaves at once instead of
        // lingering in FIN_WAIT towards a source whose packets XDP drops,
        // and the kernel's count for the source goes down with it.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        return;
    }
    let _ = stream.shutdown().await;
}

fn activate(shared: &Shared, peer: SocketAddr, call: Call<'_>) -> Result<Vec<u8>, u32> {
    let started = Instant::now();
    let (result, record) = match call.payload {
        Ok(payload) => shared.service.activate(payload, &mut rand::rng()),
        Err(e) => {
            debug!(%peer, error = %e, "undecodable NDR stub");
            return Err(hresult::INVALID_DATA);
        }
    };
    let latency = started.elapsed();
    log_activation(peer, &record, call.ndr, latency);
    observe(shared, peer, &record, latency);
    result
}

/// Metrics for every request; a notification for each successful activation.
fn observe(shared: &Shared, peer: SocketAddr, r: &ActivationRecord, latency: Duration) {
    let status = hresult::name(r.hresult);
    let protocol = r
        .version
        .map_or_else(|| "unknown".to_string(), |v| v.major.to_string());
    shared
        .metrics
        .request(&protocol, status, latency.as_secs_f64());
    if r.version.is_none() {
        return;
    }
    // Label values come from the catalogue, never from what a client sent.
    let product = if r.product_known {
        r.product.as_str()
    } else {
        "unknown"
    };
    shared.metrics.activation(product, status);
    if r.hresult == hresult::S_OK
        && let Some(notifier) = &shared.notifier
    {
        notifier.activation(peer.ip(), product, &protocol, &r.workstation);
    }
}

/// The one structured log line per activation.
fn log_activation(
    peer: SocketAddr,
    r: &ActivationRecord,
    ndr: crate::rpc::ndr::Ndr,
    latency: Duration,
) {
    let version = r.version.map(|v| v.to_string()).unwrap_or_default();
    let kms_id = r.kms_id.map(|k| k.to_string()).unwrap_or_default();
    let cmid = r.cmid.map(|c| c.to_string()).unwrap_or_default();
    let result = format!("0x{:08X}", r.hresult);
    if r.integrity_warning {
        warn!(source = %peer.ip(), port = peer.port(), "request integrity check failed (v4 MAC or v5/v6 padding); served anyway, as vlmcsd");
    }
    info!(
        source = %peer.ip(),
        port = peer.port(),
        protocol = %version,
        ndr = %ndr,
        application = %r.application,
        product = %r.product,
        kms_id = %kms_id,
        client_machine_id = %cmid,
        workstation = %r.workstation,
        license_status = r.license_status.unwrap_or_default(),
        result = %result,
        result_name = hresult::name(r.hresult),
        epid = r.epid.as_deref().unwrap_or(""),
        latency_us = latency.as_micros() as u64,
        "activation"
    );
}
