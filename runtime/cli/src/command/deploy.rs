//! `flowlet deploy MANIFEST`: upload the manifest's plugin files, then the pipeline.

use std::path::PathBuf;

use super::{Globals, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
    /// The pipeline's name [default: the manifest's].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let Self {
            manifest,
            name,
            server,
        } = self;
        server
            .print(move |c| c.deploy(&manifest, name.as_deref()))
            .await
    }
}
