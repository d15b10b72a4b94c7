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
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use flowlet_host::Host;
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
    Router::new()
        .merge(routes::plugins::routes(max_upload))
        .merge(routes::pipelines::routes())
        .merge(routes::operators::routes())
        .merge(routes::health::routes())
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

/// A JSON response.
fn reply(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
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
