//! `/v1/pipelines/{name}/operators/{op}` (hot swap) and `/v1/pipelines/{name}/state/{op}`
//! (keyed state queries): one operator of a running pipeline.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{AppState, MAX_REQUEST, reply};

/// The routes of one operator of a pipeline.
pub(in crate::serve) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pipelines/{name}/operators/{op}", put(swap_operator))
        .route("/v1/pipelines/{name}/state/{op}", get(query_state))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapRequest {
    /// `name@version`, `sha256:…` or `builtin:NAME`.
    plugin: String,
}

async fn swap_operator(
    State(state): State<AppState>,
    UrlPath((name, op)): UrlPath<(String, String)>,
    axum::Json(req): axum::Json<SwapRequest>,
) -> ApiResult<Response> {
    let p = state.pipeline(&name)?;
    let r = flowlet_manifest::PluginRef::parse(&req.plugin);
    if matches!(r, flowlet_manifest::PluginRef::Path(_)) {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a stored plugin; name it `name@version` or `sha256:…` (upload it first)",
            req.plugin
        )));
    }
    let (s, base) = (state.clone(), p.manifest.base_dir.clone());
    let id = tokio::task::spawn_blocking(move || s.0.registry.resolve(&r, &base, &s.0.host))
        .await
        .map_err(|e| ApiError::internal("resolving a plugin panicked", e))??;
    let done = p.swap(&state.0.host, &state.0.registry, &op, &id).await?;
    Ok(reply(StatusCode::OK, done))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn query_state(
    State(state): State<AppState>,
    UrlPath((name, op)): UrlPath<(String, String)>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    let key = q
        .key
        .ok_or_else(|| ApiError::BadRequest("give the key: ?key=K".into()))?;
    let p = state.pipeline(&name)?;
    Ok(reply(StatusCode::OK, p.state(&op, &key).await?))
}
