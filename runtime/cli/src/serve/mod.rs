//! `flowlet serve`: the control plane. An HTTP/JSON API (axum) to store plugins, run pipelines,
//! swap an operator's plugin while it runs, take savepoints, query keyed state, and expose
//! Prometheus metrics and health. See `docs/openapi.json` (also served at `/v1/openapi.json`).
//!
//! Mutating routes need `Authorization: Bearer <token>` when a token is configured; a server
//! on a non-loopback address without one refuses to start. Every error is JSON with a message;
//! details of server-side failures go to the log only.

pub mod error;
mod metrics;
pub mod pipelines;
pub mod registry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use flowlet_dataflow::{Clock, SystemClock};
use flowlet_host::Host;
use serde::Deserialize;
use serde_json::{Value, json};

use error::{ApiError, ApiResult};
use pipelines::{Pipeline, Record};
use registry::Registry;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// The bearer token mutating routes require (`None`: open, loopback only).
    pub token: Option<String>,
    /// Largest plugin upload, in bytes.
    pub max_upload: usize,
    /// How long a client may take to send a request's headers before the connection is
    /// closed (slow or half-sent requests must not hold connections open).
    pub header_timeout: std::time::Duration,
}

/// Largest manifest or JSON request body.
pub const MAX_REQUEST: usize = 1 << 20;

struct Inner {
    host: Host,
    config: ServeConfig,
    registry: Arc<Registry>,
    pipelines: Mutex<BTreeMap<String, Arc<Pipeline>>>,
    ready: AtomicBool,
    /// Serialises pipeline creation and deletion (names are claimed once).
    lifecycle: tokio::sync::Mutex<()>,
}

/// The server's state, shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Open the data directory: the plugin registry and the pipelines saved there, which are
    /// started again.
    pub fn open(host: Host, config: ServeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(config.data_dir.join("pipelines"))?;
        let registry = Arc::new(Registry::open(&config.data_dir.join("plugins"))?);
        let state = Self(Arc::new(Inner {
            host,
            config,
            registry,
            pipelines: Mutex::default(),
            ready: AtomicBool::new(false),
            lifecycle: tokio::sync::Mutex::new(()),
        }));
        Ok(state)
    }

    fn pipelines_dir(&self) -> PathBuf {
        self.0.config.data_dir.join("pipelines")
    }

    /// Start the pipelines saved in the data directory (after a restart of the server).
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.pipelines_dir())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("pipeline.json").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let record: Record = match std::fs::read(dir.join("pipeline.json"))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("cannot resume the pipeline in {}: {e}", dir.display());
                    continue;
                }
            };
            let data = self.pipelines_dir();
            let m = match pipelines::parse_manifest(
                &record.manifest,
                &record.base_dir,
                Some(&record.name),
                |n| data.join(n),
            ) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(pipeline = %record.name, "cannot resume: {e}");
                    continue;
                }
            };
            tracing::info!(pipeline = %record.name, "resuming the pipeline from its last checkpoint");
            let p = Pipeline::new(record, m, dir);
            p.start(self.0.host.clone(), self.0.registry.clone());
            self.0
                .pipelines
                .lock()
                .expect("pipelines lock")
                .insert(p.name.clone(), p);
        }
        self.0.ready.store(true, Relaxed);
        Ok(())
    }

    fn pipeline(&self, name: &str) -> ApiResult<Arc<Pipeline>> {
        self.0
            .pipelines
            .lock()
            .expect("pipelines lock")
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("there is no pipeline `{name}`")))
    }

    fn all(&self) -> Vec<Arc<Pipeline>> {
        self.0
            .pipelines
            .lock()
            .expect("pipelines lock")
            .values()
            .cloned()
            .collect()
    }

    /// Stop every pipeline after a final checkpoint (server shutdown); they resume at the
    /// next start.
    pub async fn shutdown(&self) {
        for p in self.all() {
            p.stop(false).await;
        }
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let max_upload = state.0.config.max_upload;
    let plugins = Router::new()
        .route("/v1/plugins", get(list_plugins).post(upload_plugin))
        .layer(DefaultBodyLimit::max(max_upload));
    Router::new()
        .route("/v1/plugins/{name}", get(plugin_versions))
        .route(
            "/v1/plugins/{name}/{version}",
            get(plugin_version).delete(delete_plugin),
        )
        .route("/v1/pipelines", get(list_pipelines).post(create_pipeline))
        .route(
            "/v1/pipelines/{name}",
            get(get_pipeline).delete(delete_pipeline),
        )
        .route("/v1/pipelines/{name}/operators/{op}", put(swap_operator))
        .route(
            "/v1/pipelines/{name}/savepoints",
            axum::routing::post(savepoint),
        )
        .route("/v1/pipelines/{name}/state/{op}", get(query_state))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .merge(plugins)
        .fallback(|| async { ApiError::NotFound("no such route; see /v1/openapi.json".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Mutating routes need the bearer token, when one is configured.
async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let (true, Some(token)) = (mutating, &state.0.config.token) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            // Read (and drop) the body, up to the upload limit, so that a client still sending
            // it hears the 401 instead of a connection reset.
            let limit = state.0.config.max_upload.max(MAX_REQUEST);
            let _ = axum::body::to_bytes(req.into_body(), limit).await;
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// axum's own rejections (bad JSON, bad path, body too large, wrong method) are plain text:
/// every error the API returns is JSON with a message.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is larger than this server accepts (plugins: flowlet serve --max-upload; other requests: 1 MiB)".to_owned()
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    let mut out = (status, axum::Json(json!({ "error": message }))).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

fn json(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
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
    Ok(json(status, serde_json::to_value(entry).expect("JSON")))
}

async fn list_plugins(State(state): State<AppState>) -> Response {
    json(
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
    Ok(json(StatusCode::OK, json!({ "name": name, "versions": v })))
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
    Ok(json(StatusCode::OK, serde_json::to_value(e).expect("JSON")))
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
    Ok(json(StatusCode::OK, json!({ "deleted": e })))
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

async fn create_pipeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let req = if is_json {
        serde_json::from_slice::<CreatePipeline>(&body)
            .map_err(|e| ApiError::BadRequest(format!("the request is not valid: {e}")))?
    } else {
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("the manifest is not UTF-8 text".into()))?;
        CreatePipeline {
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (phase, error) = p.phase();
        match phase {
            pipelines::Phase::Running | pipelines::Phase::Finished => break,
            pipelines::Phase::Restarting => {
                p.stop(false).await;
                let _ = std::fs::remove_dir_all(&dir);
                return Err(ApiError::Unprocessable(format!(
                    "pipeline `{name}` cannot start: {}",
                    error.unwrap_or_default()
                )));
            }
            _ if std::time::Instant::now() > deadline => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    state
        .0
        .pipelines
        .lock()
        .expect("pipelines lock")
        .insert(name.clone(), p.clone());
    tracing::info!(pipeline = %name, "pipeline deployed");
    Ok(json(StatusCode::CREATED, p.status(&state.0.registry)))
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
    json(StatusCode::OK, json!({ "pipelines": list }))
}

async fn get_pipeline(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let p = state.pipeline(&name)?;
    Ok(json(StatusCode::OK, p.status(&state.0.registry)))
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
    Ok(json(
        StatusCode::OK,
        json!({ "deleted": name, "savepoint": kept }),
    ))
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
    Ok(json(StatusCode::OK, done))
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
    Ok(json(StatusCode::OK, p.state(&op, &key).await?))
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
    Ok(json(StatusCode::CREATED, json!({ "savepoint": path })))
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

/// Run the server on `listen` until Ctrl-C; pipelines stop after a final checkpoint and
/// resume at the next start.
pub async fn serve(host: Host, listen: SocketAddr, config: ServeConfig) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && config.token.is_none() {
        anyhow::bail!(
            "refusing to listen on {listen} without a token: anyone who reaches it could run code; give --token-file FILE, or listen on 127.0.0.1"
        );
    }
    let state = AppState::open(host, config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(
        "flowlet serve: listening on http://{}",
        listener.local_addr()?
    );
    state.resume()?;
    let app = router(state.clone());
    let header_timeout = state.0.config.header_timeout;
    serve_http(listener, app, header_timeout, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping: every pipeline takes a final checkpoint");
    })
    .await;
    state.shutdown().await;
    Ok(())
}

/// Serve `app` on `listener` (HTTP/1.1) until `shutdown`, then let open connections finish
/// (for up to 30 s). Unlike `axum::serve`, a connection whose request headers do not arrive
/// within `header_timeout` is closed: half-sent requests cannot pile up.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = closing_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s are closed");
    }
}

/// Read a token file: its first line, trimmed; an empty one is an error.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}
