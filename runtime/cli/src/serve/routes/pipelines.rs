//! `/v1/pipelines`: create (deploy), list, show, delete pipelines, and take savepoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use flowlet_dataflow::{Clock, SystemClock};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::pipelines::{self, Pipeline, Record};
use crate::serve::{AppState, MAX_REQUEST, reply};

/// The pipeline routes.
pub(in crate::serve) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pipelines", get(list_pipelines).post(create_pipeline))
        .route(
            "/v1/pipelines/{name}",
            get(get_pipeline).delete(delete_pipeline),
        )
        .route(
            "/v1/pipelines/{name}/savepoints",
            axum::routing::post(savepoint),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
}

/// `POST /v1/pipelines`: a JSON body, or the manifest itself as YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CreatePipeline {
    manifest: String,
    /// The pipeline's name (default: the manifest's `name:`).
    name: Option<String>,
    /// Where the manifest's relative paths point (default: the pipeline's directory).
    base_dir: Option<PathBuf>,
    /// Plugins by operator, overriding the manifest's (`name@version`, `sha256:…`, a path).
    #[serde(default)]
    plugins: BTreeMap<String, String>,
}

impl CreatePipeline {
    /// The request of `body`: JSON when `headers` say so, else the manifest as text; with its
    /// name and base directory checked.
    fn parse(headers: &HeaderMap, body: &Bytes) -> ApiResult<Self> {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let req = if is_json {
            serde_json::from_slice::<Self>(body)
                .map_err(|e| ApiError::BadRequest(format!("the request is not valid: {e}")))?
        } else {
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::BadRequest("the manifest is not UTF-8 text".into()))?;
            Self {
                manifest: text,
                name: None,
                base_dir: None,
                plugins: BTreeMap::new(),
            }
        };
        if let Some(n) = &req.name
            && !flowlet_manifest::valid_name(n)
        {
            return Err(ApiError::BadRequest(format!(
                "pipeline name `{n}` is not valid: use letters, digits, `.`, `_`, `-`, `+`, starting with a letter or digit"
            )));
        }
        if let Some(b) = &req.base_dir
            && !b.is_absolute()
        {
            return Err(ApiError::BadRequest(
                "`base-dir` must be an absolute path on the server's machine".into(),
            ));
        }
        Ok(req)
    }
}

/// `POST /v1/pipelines`: deploy a pipeline, start it, and answer `201` with its status.
async fn create_pipeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req = CreatePipeline::parse(&headers, &body)?;
    let _guard = state.0.lifecycle.lock().await;
    let data = state.pipelines_dir();
    // The manifest's paths resolve against `base-dir`, else the pipeline's own directory.
    let probe = pipelines::parse_manifest(
        &req.manifest,
        req.base_dir.as_deref().unwrap_or(&data),
        req.name.as_deref(),
        |n| data.join(n),
    )?;
    let name = probe.name.clone();
    if state
        .0
        .pipelines
        .lock()
        .expect("pipelines lock")
        .contains_key(&name)
    {
        return Err(ApiError::Conflict(format!(
            "a pipeline `{name}` exists; delete it first, or swap its operators' plugins"
        )));
    }
    let dir = data.join(&name);
    let base_dir = req.base_dir.clone().unwrap_or_else(|| dir.clone());
    let manifest =
        pipelines::parse_manifest(&req.manifest, &base_dir, Some(&name), |n| data.join(n))?;
    let (s, m, overrides) = (state.clone(), manifest.clone(), req.plugins.clone());
    let (plugins, labels) = tokio::task::spawn_blocking(move || {
        pipelines::pin_plugins(&s.0.host, &s.0.registry, &m, &overrides)
    })
    .await
    .map_err(|e| ApiError::internal("resolving plugins panicked", e))??;
    // A directory left by an earlier pipeline of this name: its state is not this one's.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| ApiError::internal("cannot clear the pipeline directory", e))?;
    }
    let record = Record {
        name: name.clone(),
        manifest: req.manifest,
        base_dir,
        plugins,
        history: BTreeMap::new(),
        labels,
    };
    let p = Pipeline::new(record, manifest, dir.clone());
    p.save()?;
    p.start(state.0.host.clone(), state.0.registry.clone());
    // Report a pipeline that cannot start (a plugin's init fails, a world does not fit its
    // operator) to the caller, and keep nothing of it.
    wait_for_start(&p, &dir, &name).await?;
    state
        .0
        .pipelines
        .lock()
        .expect("pipelines lock")
        .insert(name.clone(), p.clone());
    tracing::info!(pipeline = %name, "pipeline deployed");
    Ok(reply(StatusCode::CREATED, p.status(&state.0.registry)))
}

/// Wait (up to 120 s) for a new pipeline to run or finish; one that fails first instead is
/// stopped, its directory `dir` removed, and the failure returned.
async fn wait_for_start(p: &Pipeline, dir: &Path, name: &str) -> ApiResult<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (phase, error) = p.phase();
        match phase {
            pipelines::Phase::Running | pipelines::Phase::Finished => break,
            pipelines::Phase::Restarting => {
                p.stop(false).await;
                let _ = std::fs::remove_dir_all(dir);
                return Err(ApiError::Unprocessable(format!(
                    "pipeline `{name}` cannot start: {}",
                    error.unwrap_or_default()
                )));
            }
            _ if std::time::Instant::now() > deadline => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    Ok(())
}

async fn list_pipelines(State(state): State<AppState>) -> Response {
    let list: Vec<Value> = state
        .all()
        .iter()
        .map(|p| {
            let (phase, error) = p.phase();
            json!({ "name": p.name, "phase": phase, "error": error })
        })
        .collect();
    reply(StatusCode::OK, json!({ "pipelines": list }))
}

async fn get_pipeline(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let p = state.pipeline(&name)?;
    Ok(reply(StatusCode::OK, p.status(&state.0.registry)))
}

async fn delete_pipeline(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let _guard = state.0.lifecycle.lock().await;
    let p = state.pipeline(&name)?;
    let savepoint = p.stop(true).await;
    state
        .0
        .pipelines
        .lock()
        .expect("pipelines lock")
        .remove(&name);
    // The final savepoint is kept; the rest of the pipeline's directory goes.
    let kept = match savepoint {
        Some(sp) => {
            let dir = state.0.config.data_dir.join("savepoints");
            let to = dir.join(format!("{name}-{}.flowlet", SystemClock.now()));
            let moved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::rename(&sp, &to));
            match moved {
                Ok(()) => Some(to),
                Err(e) => {
                    tracing::warn!(pipeline = %name, "cannot keep the final savepoint: {e}");
                    None
                }
            }
        }
        None => None,
    };
    std::fs::remove_dir_all(&p.dir)
        .map_err(|e| ApiError::internal("cannot remove the pipeline directory", e))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "deleted": name, "savepoint": kept }),
    ))
}

async fn savepoint(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let p = state.pipeline(&name)?;
    if p.manifest.checkpoint.is_none() {
        return Err(ApiError::Conflict(format!(
            "pipeline `{name}` has no `checkpoint:`; savepoints need checkpoints"
        )));
    }
    let h = p
        .handles()
        .filter(|_| p.phase().0 == pipelines::Phase::Running)
        .ok_or_else(|| ApiError::Conflict(format!("pipeline `{name}` is not running")))?;
    let path = h
        .savepoints
        .take(false, None)
        .await
        .map_err(ApiError::Conflict)?;
    Ok(reply(StatusCode::CREATED, json!({ "savepoint": path })))
}
