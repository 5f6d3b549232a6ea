//! The HTTP admin port: fault controls and a stock view.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::faults::{FaultControl, FaultSettings};
use crate::store::Store;

#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    pub(crate) faults: FaultControl,
    pub(crate) store: Store,
}

pub(crate) fn router(state: AdminState, metrics: Option<PrometheusHandle>) -> Router {
    let router = match metrics {
        Some(handle) => Router::new().route("/metrics", get(move || render(handle.clone()))),
        None => Router::new(),
    };
    router
        .route(
            "/admin/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/admin/stock", get(get_stock))
        .with_state(state)
}

/// The Prometheus exposition of every metric recorded in this process.
pub(crate) async fn render(handle: PrometheusHandle) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

fn faults_body(faults: &FaultControl) -> Json<serde_json::Value> {
    let s = faults.get();
    Json(json!({
        "error_rate": s.error_rate,
        "latency_ms": s.latency_ms,
        "injected_errors": faults.injected(),
    }))
}

fn bad_request(detail: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/problem+json")],
        Json(json!({ "title": "invalid fault settings", "status": 400, "detail": detail })),
    )
        .into_response()
}

async fn get_faults(State(s): State<AdminState>) -> Json<serde_json::Value> {
    faults_body(&s.faults)
}

async fn put_faults(
    State(s): State<AdminState>,
    body: Result<Json<FaultSettings>, JsonRejection>,
) -> Response {
    let settings = match body {
        Ok(Json(settings)) => settings,
        Err(e) => return bad_request(e.body_text()),
    };
    match s.faults.set(settings) {
        Ok(()) => faults_body(&s.faults).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn clear_faults(State(s): State<AdminState>) -> Json<serde_json::Value> {
    // Default settings are always valid.
    let _ = s.faults.set(FaultSettings::default());
    faults_body(&s.faults)
}

async fn get_stock(State(s): State<AdminState>) -> Response {
    match crate::audit::read(s.store.pool()).await {
        Ok(snap) => Json(json!({
            "stock": snap.stock,
            "active_reservations": snap.active.len(),
            "released_reservations": snap.released,
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading stock");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}
