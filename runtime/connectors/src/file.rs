//! `file`: JSON lines from a file (source) or into one (sink).
//!
//! The source's position is the bytes of the complete lines read. With checkpoints the sink
//! makes its output durable at each barrier (flush + fsync) and saves its length; a resumed run
//! truncates the file to that length, so output written after the last checkpoint — which the
//! replay writes again — appears once.

use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use flowlet_dataflow::{BoxFuture, SinkSetup, SinkWriter, Source, SourceContext};
use flowlet_manifest::fields::FilePath;
use flowlet_manifest::{Guarantee, Resource, Spec};
use flowlet_types::Batch;
use tokio::io::BufReader;

use crate::lines::{Mode, one_line, read};
use crate::{Connector, Env, SinkConnector, SourceConnector};

/// A file of JSON lines, one event per line.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSource {
    /// The file, relative to the manifest.
    pub path: FilePath,
}

impl Spec for FileSource {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::ReadsFile(self.path.0.clone())]
    }
}

impl Connector for FileSource {
    const KIND: &'static str = "file";
}

impl SourceConnector for FileSource {
    fn open(&self, env: &Env<'_>) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(Reader {
            path: env.manifest.resolve(&self.path.0),
        }))
    }
}

struct Reader {
    path: PathBuf,
}

impl Source for Reader {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let f = open_at(&self.path, cx.position().as_u64().unwrap_or(0)).await?;
            read(cx, BufReader::with_capacity(1 << 20, f), Mode::File).await
        })
    }
}

/// Open `path` at byte `offset` (a resumed run), checking that the file still reaches it.
async fn open_at(path: &Path, offset: u64) -> Result<tokio::fs::File, String> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if offset > 0 {
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        if len < offset {
            return Err(format!(
                "{} is {len} bytes, but the last checkpoint had read {offset}: the input was changed (start again with --from-scratch)",
                path.display()
            ));
        }
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
    }
    Ok(f)
}

/// JSON lines into a file (created or truncated; its folder is created).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSink {
    /// The file, relative to the manifest.
    pub path: FilePath,
}

impl Spec for FileSink {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::WritesFile(self.path.0.clone())]
    }
}

impl Connector for FileSink {
    const KIND: &'static str = "file";
}

impl SinkConnector for FileSink {
    fn open(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        let path = setup.manifest.resolve(&self.path.0);
        let restored = setup.restored.and_then(|m| m.get("length")?.as_u64());
        let file = match restored {
            None => create(&path)?,
            Some(len) => resume(&path, len, setup.guarantee, setup.name)?,
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Box::new(Writer {
            w: BufWriter::with_capacity(1 << 20, file),
            len,
            sync: setup.checkpointing,
            unflushed: false,
        }))
    }
}

/// A fresh output file (like `mkdir -p`: a sink into `out/x.jsonl` needs no set-up step).
fn create(path: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    }
    std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The output file of a resumed run, cut back to the `len` bytes of the last checkpoint.
fn resume(
    path: &Path,
    len: u64,
    guarantee: Guarantee,
    sink: &str,
) -> Result<std::fs::File, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot open {} to resume it: {e}; it held {len} bytes at the last checkpoint (start again with --from-scratch)",
                path.display()
            )
        })?;
    let actual = file.metadata().map(|m| m.len()).unwrap_or(0);
    if actual < len {
        return Err(format!(
            "{} is {actual} bytes but held {len} at the last checkpoint: it was changed outside flowlet (start again with --from-scratch)",
            path.display()
        ));
    }
    if guarantee != Guarantee::AtMostOnce {
        // What was written after the checkpoint is about to be written again.
        file.set_len(len)
            .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
        let _ = flowlet_dataflow::fault::hit("file-sink.truncated");
        if actual > len {
            tracing::info!(sink = %sink, "cut {} back from {actual} to {len} bytes (the checkpointed output)", path.display());
        }
    }
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
    Ok(file)
}

struct Writer {
    w: BufWriter<std::fs::File>,
    /// Bytes in the file (what a checkpoint saves).
    len: u64,
    /// fsync at each checkpoint.
    sync: bool,
    /// Written since the last flush.
    unflushed: bool,
}

impl SinkWriter for Writer {
    fn write(&mut self, batch: &Batch, _: Option<&flowlet_dataflow::Epoch>) -> Result<(), String> {
        self.unflushed = true;
        (|| {
            for event in batch.iter() {
                let line = one_line(event.value());
                self.w.write_all(&line)?;
                self.w.write_all(b"\n")?;
                self.len += line.len() as u64 + 1;
            }
            Ok(())
        })()
        .map_err(|e: std::io::Error| format!("write error: {e}"))
    }

    fn durable(&mut self) -> Result<Option<serde_json::Value>, String> {
        self.w.flush().map_err(|e| format!("write error: {e}"))?;
        self.unflushed = false;
        if self.sync {
            self.w
                .get_ref()
                .sync_data()
                .map_err(|e| format!("cannot sync the file: {e}"))?;
        }
        Ok(Some(serde_json::json!({ "length": self.len })))
    }

    /// Flushed whenever nothing more is waiting, so that the file can be followed while the
    /// topology runs.
    fn idle(&mut self) -> Result<(), String> {
        if std::mem::take(&mut self.unflushed) {
            self.w.flush().map_err(|e| format!("write error: {e}"))?;
        }
        Ok(())
    }
}
