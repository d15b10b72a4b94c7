//! `flowlet status [PIPELINE]`: a pipeline's status from a server, or the list of pipelines.

use super::{Globals, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    pipeline: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let path = match &self.pipeline {
            Some(p) => format!("/v1/pipelines/{p}"),
            None => "/v1/pipelines".to_owned(),
        };
        self.server.print(move |c| c.get(&path)).await
    }
}
