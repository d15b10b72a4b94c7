//! `flowlet validate MANIFEST`: every problem of a manifest at once, without loading Wasm.

use std::path::PathBuf;

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let m = crate::load_manifest(&self.manifest)?;
        println!(
            "{}: ok — {} source(s), {} operator(s), {} sink(s)",
            self.manifest.display(),
            m.sources.len(),
            m.operators.len(),
            m.sinks.len()
        );
        Ok(())
    }
}
