//! `flowlet sdk …`: the WIT contract, C bindings, components from core modules.

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: crate::toolkit::Sdk,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        crate::toolkit::run(self.which)
    }
}
