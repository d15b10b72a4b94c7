//! `flowlet bench …`: the benchmarks of docs/BENCHMARKS.md.

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: flowlet_bench::Bench,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        let runner = std::sync::Arc::new(crate::BenchRunner);
        flowlet_bench::run(self.which, g.host()?, runner).await
    }
}
