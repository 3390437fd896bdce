//! `--listen`: `/metrics` (OpenMetrics text, which Prometheus scrapes), `/healthz`
//! (the process is alive) and `/readyz` (the first pass is done and Cloud Run answers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::metrics::{Health, Metrics};

#[derive(Debug, Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds `listen` and serves until the process ends; returns the bound address.
pub(crate) async fn start(
    listen: &str,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<std::net::SocketAddr, String> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let router = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Shared { metrics, health });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the /metrics server stopped: {e}");
        }
    });
    Ok(addr)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text
/// format.
async fn metrics_page(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.encode_prometheus())
            .into_response()
    }
}

async fn ready(State(s): State<Shared>) -> Response {
    match s.health.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}
