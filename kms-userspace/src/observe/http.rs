//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process
//! answers), `/readyz` (listeners bound, XDP attached) and `/keys.json` (the
//! GVLK table, for client scripts; can be turned off).

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::{
    Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus::{Encoder as _, Registry, TextEncoder};
use tracing::info;

use super::ready::Readiness;
use crate::shutdown::Shutdown;

pub struct Endpoint {
    pub registry: Registry,
    pub readiness: Arc<Readiness>,
    pub keys_json: bool,
}

async fn metrics(registry: Registry) -> impl IntoResponse {
    // Reading the BPF maps is a handful of syscalls; keep it off the reactor.
    let body = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .map(|()| out)
    })
    .await;
    match body {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            body,
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

fn router(endpoint: Endpoint) -> Router {
    let registry = endpoint.registry.clone();
    let readiness = endpoint.readiness.clone();
    let mut router = Router::new()
        .route("/metrics", get(move || metrics(registry.clone())))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    match readiness.check() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
                    }
                }
            }),
        );
    if endpoint.keys_json {
        router = router.route(
            "/keys.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    crate::ops::products::products_json().to_string(),
                )
            }),
        );
    }
    router
}

/// Binds now (a bad address fails the start) and serves until shutdown.
pub async fn bind(
    addr: SocketAddr,
    endpoint: Endpoint,
    mut shutdown: Shutdown,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    info!(addr = %listener.local_addr()?, "metrics endpoint bound (/metrics /healthz /readyz)");
    let app = router(endpoint);
    Ok(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
    })
}
