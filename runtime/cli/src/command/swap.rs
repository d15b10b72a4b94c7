//! `flowlet swap PIPELINE OPERATOR PLUGIN`: hot-swap an operator's plugin on a server.

use super::{Globals, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    pipeline: String,
    operator: String,
    plugin: String,
    #[command(flatten)]
    server: ServerArgs,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let Self {
            pipeline,
            operator,
            plugin,
            server,
        } = self;
        server
            .print(move |c| c.swap(&pipeline, &operator, &plugin))
            .await
    }
}
