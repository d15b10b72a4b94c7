//! The plugin registry: components stored content-addressed (`blobs/<sha256>.wasm`), and an
//! index of the names and versions they were uploaded under (`index.json`). A component is
//! validated — a component of a flowlet world and a compatible contract version, compiled
//! into the cache — before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flowlet_dataflow::{Clock, SystemClock};
use flowlet_host::Host;
use flowlet_manifest::{PluginRef, valid_name};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};

/// One uploaded version of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PluginEntry {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// The flowlet world it implements.
    pub world: String,
    pub contract: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub uploaded_at: i64,
}

pub struct Registry {
    dir: PathBuf,
    index: Mutex<Vec<PluginEntry>>,
}

/// Write `bytes` to `path` atomically (a temporary file renamed over it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Registry {
    /// The registry under `dir` (created if needed).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("blobs"))?;
        let index_path = dir.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!(
                    "{} is damaged ({e}); restore it from a backup or remove it (the uploaded components stay in blobs/)",
                    index_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            dir: dir.to_owned(),
            index: Mutex::new(index),
        })
    }

    /// Where the component with `sha256:<hex>` `digest` is stored.
    pub fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs").join(format!("{hex}.wasm"))
    }

    fn save(&self, index: &[PluginEntry]) -> ApiResult<()> {
        let bytes = serde_json::to_vec_pretty(index).expect("entries are JSON");
        write_atomic(&self.dir.join("index.json"), &bytes)
            .map_err(|e| ApiError::internal("cannot write the plugin index", e))
    }

    pub fn list(&self) -> Vec<PluginEntry> {
        self.index.lock().expect("registry lock").clone()
    }

    /// The first entry `pick` accepts, without copying the index.
    fn first(&self, pick: impl Fn(&PluginEntry) -> bool) -> Option<PluginEntry> {
        self.index
            .lock()
            .expect("registry lock")
            .iter()
            .find(|e| pick(e))
            .cloned()
    }

    pub fn versions(&self, name: &str) -> Vec<PluginEntry> {
        let index = self.index.lock().expect("registry lock");
        index.iter().filter(|e| e.name == name).cloned().collect()
    }

    pub fn find(&self, name: &str, version: &str) -> Option<PluginEntry> {
        self.first(|e| e.name == name && e.version == version)
    }

    /// `name@version` of a digest, for status pages (the first upload under it).
    pub fn label(&self, digest: &str) -> Option<String> {
        self.first(|e| e.digest == digest)
            .map(|e| format!("{}@{}", e.name, e.version))
    }

    /// Validate and store a component; an identical re-upload is accepted (`false`: it
    /// existed already).
    pub fn upload(
        &self,
        host: &Host,
        name: &str,
        version: &str,
        bytes: &[u8],
    ) -> ApiResult<(PluginEntry, bool)> {
        for (what, v) in [("name", name), ("version", version)] {
            if !valid_name(v) {
                return Err(ApiError::BadRequest(format!(
                    "plugin {what} `{v}` is not valid: use 1–128 letters, digits, `.`, `_`, `-`, `+`, starting with a letter or digit"
                )));
            }
        }
        let label = PathBuf::from(format!("{name}@{version}"));
        let plugin = host
            .load_bytes(&label, bytes)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let entry = PluginEntry {
            name: name.to_owned(),
            version: version.to_owned(),
            digest: plugin.digest.clone(),
            world: plugin.kind.to_string(),
            contract: flowlet_host::CONTRACT_VERSION.to_owned(),
            size: bytes.len() as u64,
            uploaded_at: SystemClock.now(),
        };
        let mut index = self.index.lock().expect("registry lock");
        if let Some(e) = index
            .iter()
            .find(|e| e.name == name && e.version == version)
        {
            if e.digest == entry.digest {
                return Ok((e.clone(), false));
            }
            return Err(ApiError::Conflict(format!(
                "{name}@{version} exists with another component ({}); versions are immutable: upload under a new version",
                e.digest
            )));
        }
        self.store_blob(bytes, &entry.digest)?;
        index.push(entry.clone());
        self.save(&index)?;
        tracing::info!(plugin = %label.display(), digest = %entry.digest, "plugin stored");
        Ok((entry, true))
    }

    /// Store a validated component's bytes under its digest (pipelines pin the components they
    /// were deployed with, named or not).
    pub fn store_blob(&self, bytes: &[u8], digest: &str) -> ApiResult<()> {
        let path = self.blob(digest);
        if !path.exists() {
            write_atomic(&path, bytes)
                .map_err(|e| ApiError::internal("cannot store the component", e))?;
        }
        Ok(())
    }

    /// Remove `name@version` from the index; `in_use` says whether a pipeline pins a digest.
    pub fn delete(
        &self,
        name: &str,
        version: &str,
        in_use: impl Fn(&str) -> Option<String>,
    ) -> ApiResult<PluginEntry> {
        let mut index = self.index.lock().expect("registry lock");
        let at = index
            .iter()
            .position(|e| e.name == name && e.version == version)
            .ok_or_else(|| ApiError::NotFound(format!("there is no plugin {name}@{version}")))?;
        let digest = index[at].digest.clone();
        if let Some(pipeline) = in_use(&digest) {
            return Err(ApiError::Conflict(format!(
                "{name}@{version} is used by pipeline `{pipeline}` (running, or kept for a rollback); swap it out or delete the pipeline first"
            )));
        }
        let entry = index.remove(at);
        self.save(&index)?;
        if !index.iter().any(|e| e.digest == digest) {
            let _ = std::fs::remove_file(self.blob(&digest));
        }
        Ok(entry)
    }

    /// The digest a manifest's plugin reference names (`builtin:` ones are returned as is).
    pub fn resolve(&self, r: &PluginRef, base: &Path, host: &Host) -> ApiResult<String> {
        match r {
            PluginRef::Builtin(b) => Ok(format!("builtin:{b}")),
            PluginRef::Registry { name, version } => self
                .find(name, version)
                .map(|e| e.digest)
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "there is no plugin {name}@{version}; upload it first (POST /v1/plugins?name={name}&version={version})"
                    ))
                }),
            PluginRef::Digest(hex) => {
                let digest = format!("sha256:{hex}");
                if self.blob(&digest).is_file() {
                    Ok(digest)
                } else {
                    Err(ApiError::Unprocessable(format!(
                        "no stored component has digest {digest}; upload it first (POST /v1/plugins)"
                    )))
                }
            }
            PluginRef::Path(p) => {
                let path = base.join(p);
                let bytes = std::fs::read(&path).map_err(|e| {
                    ApiError::Unprocessable(format!(
                        "cannot read plugin file {}: {e}; the server reads plugin paths on its own machine (upload the component and name it `name@version` instead)",
                        path.display()
                    ))
                })?;
                let plugin = host
                    .load_bytes(&path, &bytes)
                    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
                self.store_blob(&bytes, &plugin.digest)?;
                Ok(plugin.digest)
            }
        }
    }
}

/// The plugins each operator of a pipeline has run, newest last (for rollbacks and for
/// refusing to delete what a pipeline may come back to).
pub type History = BTreeMap<String, Vec<String>>;
