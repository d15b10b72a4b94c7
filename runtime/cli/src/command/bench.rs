//! `flowlet bench …`: the benchmarks of docs/BENCHMARKS.md.

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: crate::bench::Bench,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        crate::bench::run(self.which, g.host()?).await
    }
}
