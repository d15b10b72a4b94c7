//! The control socket of a running topology with checkpoints: `<state dir>/control.sock`,
//! one JSON request per connection (`{"savepoint": {"stop": bool, "output": path}}`), one JSON
//! reply (`{"savepoint": path}` or `{"error": message}`). Only the owner of the state
//! directory can reach it; the control plane over HTTP is `flowlet serve`'s job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use flowlet_dataflow::Savepoints;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Removes the socket file when the run ends.
pub struct Control {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    /// Held (shared) by every request being answered; [`Control::close`] takes it whole.
    answering: Arc<tokio::sync::RwLock<()>>,
}

impl Control {
    /// Stop taking requests and let those being answered write their reply (a stopping
    /// savepoint is answered as the run ends: the process must not exit before the reply is
    /// out), for at most a few seconds.
    pub async fn close(self) {
        self.task.abort();
        let answering = self.answering.clone();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), answering.write()).await;
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Listen for savepoint requests while the topology runs (a warning, not an error, when the
/// socket cannot be made: the topology runs without it).
pub fn serve(state_dir: &Path, savepoints: Arc<Savepoints>) -> Option<Control> {
    let path = socket_path(state_dir);
    let _ = std::fs::create_dir_all(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "no control socket at {} ({e}): `flowlet savepoint` cannot reach this run",
                path.display()
            );
            return None;
        }
    };
    let answering = Arc::new(tokio::sync::RwLock::new(()));
    let guard = answering.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let savepoints = savepoints.clone();
            let busy = guard.clone().read_owned().await;
            tokio::spawn(async move {
                if let Err(e) = handle(stream, &savepoints).await {
                    tracing::warn!("control socket: {e:#}");
                }
                drop(busy);
            });
        }
    });
    Some(Control {
        path,
        task,
        answering,
    })
}

async fn handle(stream: UnixStream, savepoints: &Savepoints) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Value>(&line) {
        Ok(req) if req.get("savepoint").is_some() => {
            let sp = &req["savepoint"];
            let stop = sp.get("stop").and_then(Value::as_bool).unwrap_or(false);
            let output = sp.get("output").and_then(Value::as_str).map(PathBuf::from);
            match savepoints.take(stop, output).await {
                Ok(path) => json!({ "savepoint": path }),
                Err(e) => json!({ "error": e }),
            }
        }
        _ => json!({ "error": "unknown request; send {\"savepoint\": {\"stop\": false}}" }),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    Ok(())
}

/// Ask the running topology for a savepoint, or copy the last checkpoint when none runs.
///
/// Whether one runs is told by the lock of the state directory (held by `flowlet run` from its
/// start, before its control socket exists): a topology that is starting is waited for.
pub async fn savepoint(
    state_dir: &Path,
    stop: bool,
    output: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    use flowlet_dataflow::lock::{LockError, StateLock};
    let path = socket_path(state_dir);
    let output = match output {
        Some(o) => Some(
            std::path::absolute(&o).with_context(|| format!("bad output path {}", o.display()))?,
        ),
        None => None,
    };
    if !state_dir.exists() {
        bail!(
            "{} holds no checkpoint yet: run the topology first",
            state_dir.display()
        );
    }
    let deadline = std::time::Instant::now() + SOCKET_WAIT;
    loop {
        if let Ok(stream) = UnixStream::connect(&path).await {
            return ask(stream, &path, stop, output.as_deref()).await;
        }
        let dir = state_dir.to_owned();
        let taken = tokio::task::spawn_blocking(move || {
            StateLock::acquire(&dir, &flowlet_dataflow::lock::this_process())
        })
        .await?;
        match taken {
            // Nothing runs (and nothing can start while this holds the lock).
            Ok(lock) => return copy_last_checkpoint(lock, stop, output).await,
            Err(LockError::Held { holder, .. }) => {
                if std::time::Instant::now() >= deadline {
                    bail!(
                        "{} is held by {holder}, which has not opened its control socket {} within {}s; is it a flowlet of another version?",
                        state_dir.display(),
                        path.display(),
                        SOCKET_WAIT.as_secs()
                    );
                }
                // Starting: its socket comes right after its lock.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(flowlet_dataflow::state::StateError::from(e).into()),
        }
    }
}

/// How long `flowlet savepoint` waits for a starting topology's control socket.
const SOCKET_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A savepoint request over the control socket.
async fn ask(
    stream: UnixStream,
    path: &Path,
    stop: bool,
    output: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let (read, mut write) = stream.into_split();
    let req = json!({ "savepoint": { "stop": stop, "output": output } });
    write.write_all(format!("{req}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply: Value = serde_json::from_str(&line)
        .with_context(|| format!("unexpected reply from {}: {line:?}", path.display()))?;
    match (
        reply.get("savepoint").and_then(Value::as_str),
        reply.get("error"),
    ) {
        (Some(p), _) => Ok(PathBuf::from(p)),
        (_, Some(e)) => bail!(
            "the running topology could not take the savepoint: {}",
            e.as_str().unwrap_or_default()
        ),
        _ => bail!("unexpected reply from {}: {line:?}", path.display()),
    }
}

/// No topology runs on the state directory `lock` holds: copy its last checkpoint.
async fn copy_last_checkpoint(
    lock: flowlet_dataflow::lock::StateLock,
    stop: bool,
    output: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let dir = lock.dir().to_owned();
    if stop {
        bail!(
            "no topology runs on {}, so there is nothing to stop",
            dir.display()
        );
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<PathBuf> {
        let db = flowlet_dataflow::state::StateDb::open(&dir)?;
        let restored = flowlet_dataflow::checkpoint::restore(&db)?;
        let Some(record) = restored.record else {
            bail!(
                "{} holds no checkpoint yet: run the topology first",
                dir.display()
            );
        };
        let out = output.unwrap_or_else(|| {
            dir.join("savepoints")
                .join(format!("savepoint-{}.flowlet", record.id))
        });
        flowlet_dataflow::checkpoint::write_savepoint(&db, &out).map_err(anyhow::Error::msg)?;
        drop(db);
        drop(lock);
        Ok(out)
    })
    .await?
}
