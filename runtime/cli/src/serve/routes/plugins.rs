//! `/v1/plugins`: store, list, show and delete plugin versions.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::{AppState, MAX_REQUEST, reply};

/// The plugin routes (uploads may be as large as `--max-upload`).
pub(in crate::serve) fn routes(max_upload: usize) -> Router<AppState> {
    let upload = Router::new()
        .route("/v1/plugins", get(list_plugins).post(upload_plugin))
        .layer(DefaultBodyLimit::max(max_upload));
    Router::new()
        .route("/v1/plugins/{name}", get(plugin_versions))
        .route(
            "/v1/plugins/{name}/{version}",
            get(plugin_version).delete(delete_plugin),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .merge(upload)
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
    version: Option<String>,
}

async fn upload_plugin(
    State(state): State<AppState>,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let (Some(name), Some(version)) = (q.name, q.version) else {
        return Err(ApiError::BadRequest(
            "say what the plugin is: POST /v1/plugins?name=NAME&version=VERSION with the component as the body".into(),
        ));
    };
    if body.len() > state.0.config.max_upload {
        return Err(ApiError::TooLarge {
            size: body.len(),
            limit: state.0.config.max_upload,
        });
    }
    if body.is_empty() {
        return Err(ApiError::Unprocessable(
            "the body is empty; send the component's bytes".into(),
        ));
    }
    let s = state.clone();
    let (entry, created) =
        tokio::task::spawn_blocking(move || s.0.registry.upload(&s.0.host, &name, &version, &body))
            .await
            .map_err(|e| ApiError::internal("the upload panicked", e))??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, serde_json::to_value(entry).expect("JSON")))
}

async fn list_plugins(State(state): State<AppState>) -> Response {
    reply(
        StatusCode::OK,
        json!({ "plugins": state.0.registry.list() }),
    )
}

async fn plugin_versions(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let v = state.0.registry.versions(&name);
    if v.is_empty() {
        return Err(ApiError::NotFound(format!("there is no plugin `{name}`")));
    }
    Ok(reply(
        StatusCode::OK,
        json!({ "name": name, "versions": v }),
    ))
}

async fn plugin_version(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let e = state
        .0
        .registry
        .find(&name, &version)
        .ok_or_else(|| ApiError::NotFound(format!("there is no plugin {name}@{version}")))?;
    Ok(reply(
        StatusCode::OK,
        serde_json::to_value(e).expect("JSON"),
    ))
}

async fn delete_plugin(
    State(state): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let pipelines = state.all();
    let e = state.0.registry.delete(&name, &version, |digest| {
        pipelines
            .iter()
            .find(|p| p.uses(digest))
            .map(|p| p.name.clone())
    })?;
    Ok(reply(StatusCode::OK, json!({ "deleted": e })))
}
