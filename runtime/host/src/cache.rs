//! The on-disk cache of precompiled components.
//!
//! Compiling a component takes from milliseconds (a small Rust operator) to many seconds (a
//! Python or JavaScript one), so each component is compiled once per engine. Files are keyed by
//! the engine's compatibility hash (wasmtime version and configuration) and the component's
//! sha256, and each is stored with a checksum that covers its bytes *and* what it is the
//! compiled form of (the engine hash and the component's sha256): deserializing precompiled
//! code is `unsafe`, so flowlet only loads files it wrote for this very component and engine
//! and that are intact. (A copy of another component's files under this one's name does not
//! match; the checksum is not a secret, so this guards against mix-ups and damage, not against
//! someone who can write the cache directory — they could replace flowlet itself.)

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    /// The engine's compatibility hash, as the directory name has it.
    engine: String,
}

impl ComponentCache {
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine = format!("{:016x}", h.finish());
        Self {
            dir: root.join("components").join(&engine),
            engine,
        }
    }

    /// The checksum stored beside the compiled code of component `digest`: it binds the code to
    /// the component and the engine it was compiled for.
    fn checksum(&self, digest: &str, code: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(b"flowlet-cwasm-2\0");
        h.update(self.engine.as_bytes());
        h.update(b"\0");
        h.update(digest.as_bytes());
        h.update(b"\0");
        h.update(code);
        hex::encode(h.finalize())
    }

    /// The component with sha256 `digest` and content `bytes`: from the cache when an intact
    /// precompiled copy is there, else compiled now and stored.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<Component, String> {
        let file = self.dir.join(format!("{digest}.cwasm"));
        let check = self.dir.join(format!("{digest}.cwasm.sha256"));
        if let (Ok(code), Ok(expected)) = (std::fs::read(&file), std::fs::read_to_string(&check))
            && self.checksum(digest, &code) == expected.trim()
        {
            // SAFETY: the file was written by `store` below for this engine configuration, and
            // its checksum matches what was written then.
            match unsafe { Component::deserialize(engine, &code) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!("ignoring unusable cached component {}: {e}", file.display())
                }
            }
        }
        let code = engine
            .precompile_component(bytes)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = self.store(&file, &check, &self.checksum(digest, &code), &code) {
            tracing::warn!(
                "cannot cache the compiled component in {}: {e}",
                self.dir.display()
            );
        }
        // SAFETY: `code` was just produced by `precompile_component` on this engine.
        unsafe { Component::deserialize(engine, &code) }.map_err(|e| format!("{e:#}"))
    }

    fn store(&self, file: &Path, check: &Path, sum: &str, code: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Unique per process and call: tests compile the same component from several threads.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = file.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, code)?;
        std::fs::rename(&tmp, file)?;
        std::fs::write(check, sum)
    }
}
