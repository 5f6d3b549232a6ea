//! The HTTP API: `POST /orders`, `GET /orders/{id}`, errors as `application/problem+json`
//! (RFC 9457).

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use inventory_api::Reason;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::client::CallError;
use crate::model::{NewOrder, check_key, normalize};
use crate::orders::{Orders, PlaceError, Placed};

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024;

/// The API; `middleware: false` (the benchmark baseline) leaves out the trace layer.
pub(crate) fn router(
    orders: Orders,
    metrics: Option<PrometheusHandle>,
    middleware: bool,
) -> Router {
    let mut api = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order));
    if middleware {
        // A SERVER span per API request (continuing the caller's trace) and RED metrics;
        // as a route layer it sees the matched route, and `/metrics` below is not traced.
        api = api.route_layer(example_telemetry::ServerTraceLayer::http());
    }
    let api = api
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(orders);
    match metrics {
        Some(handle) => api.route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        ),
        None => api,
    }
}

/// An RFC 9457 problem response.
pub(crate) fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    problem_with(status, code, detail, |_| {})
}

fn problem_with(
    status: StatusCode,
    code: &str,
    detail: impl Into<String>,
    extend: impl FnOnce(&mut serde_json::Value),
) -> Response {
    let mut body = json!({
        "type": format!("https://palisade.example/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail.into(),
    });
    extend(&mut body);
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

fn with_retry_after(mut res: Response, secs: u64) -> Response {
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

async fn create_order(
    State(orders): State<Orders>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Response {
    let outcomes = orders.outcomes.clone();
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match check_key(v.as_bytes()) {
            Ok(k) => Some(k.to_owned()),
            Err(e) => {
                outcomes.invalid.increment(1);
                return problem(StatusCode::BAD_REQUEST, "invalid_idempotency_key", e);
            }
        },
    };
    let order = match body {
        Ok(Json(order)) => order,
        Err(e) => {
            outcomes.invalid.increment(1);
            return problem(e.status(), "invalid_body", e.body_text());
        }
    };
    let lines = match normalize(order.items) {
        Ok(lines) => lines,
        Err(e) => {
            outcomes.invalid.increment(1);
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_order", e);
        }
    };
    let counter = |e: &PlaceError| match e {
        PlaceError::KeyReused | PlaceError::InProgress => &outcomes.conflict,
        PlaceError::Rejected(_) => &outcomes.refused,
        PlaceError::Unavailable {
            breaker_open: true, ..
        } => &outcomes.circuit_open,
        PlaceError::Unavailable { .. } => &outcomes.unavailable,
        PlaceError::Internal(_) => &outcomes.error,
    };
    match orders.place(key, lines).await {
        Ok(Placed::Created(order)) => {
            outcomes.created.increment(1);
            created(&order, false)
        }
        Ok(Placed::Replayed(order)) => {
            outcomes.replayed.increment(1);
            created(&order, true)
        }
        Err(e) => {
            counter(&e).increment(1);
            place_error(e)
        }
    }
}

fn created(order: &crate::model::Order, replayed: bool) -> Response {
    let mut res = (StatusCode::CREATED, Json(order)).into_response();
    if let Ok(location) = HeaderValue::try_from(format!("/orders/{}", order.id)) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

fn place_error(e: PlaceError) -> Response {
    match e {
        PlaceError::KeyReused => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        ),
        PlaceError::InProgress => with_retry_after(
            problem(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed",
            ),
            1,
        ),
        PlaceError::Rejected(CallError::Rejected {
            reason,
            message,
            sku,
        }) => {
            let (status, code) = match reason {
                Some(Reason::InsufficientStock) => (StatusCode::CONFLICT, "insufficient_stock"),
                Some(Reason::UnknownSku) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            };
            problem_with(status, code, message, |body| {
                if let Some(sku) = sku {
                    body["sku"] = sku.into();
                }
            })
        }
        PlaceError::Rejected(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "unexpected rejection",
        ),
        PlaceError::Unavailable {
            retry_after,
            breaker_open,
            detail,
        } => {
            let code = if breaker_open {
                "inventory_circuit_open"
            } else {
                "inventory_unavailable"
            };
            // Round up, so a client retrying on time finds the breaker half-open.
            let secs = retry_after.as_millis().div_ceil(1000);
            with_retry_after(
                problem(StatusCode::SERVICE_UNAVAILABLE, code, detail),
                u64::try_from(secs).unwrap_or(u64::MAX),
            )
        }
        PlaceError::Internal(detail) => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
        }
    }
}

async fn get_order(State(orders): State<Orders>, Path(id): Path<String>) -> Response {
    match orders.store.get(&id).await {
        Ok(Some(order)) => Json(order).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", format!("no order {id}")),
        Err(e) => {
            tracing::error!(error = %e, "reading an order");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "try again later",
            )
        }
    }
}
