//! The server itself: its OpenAPI document, Prometheus metrics, liveness and readiness.

use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::pipelines::{self};
use crate::serve::{AppState, MAX_REQUEST, OPENAPI, metrics};

/// The server's own routes.
pub(in crate::serve) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let text = metrics::render(&state.all(), state.0.registry.list().len());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> ApiResult<Response> {
    if !state.0.ready.load(Relaxed) {
        return Err(ApiError::Unavailable("resuming pipelines".into()));
    }
    let starting: Vec<String> = state
        .all()
        .iter()
        .filter(|p| p.phase().0 == pipelines::Phase::Starting)
        .map(|p| p.name.clone())
        .collect();
    if !starting.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "pipelines starting: {}",
            starting.join(", ")
        )));
    }
    Ok("ready\n".into_response())
}
