//! `flowlet inspect PLUGIN`: a component's world, contract version, exports and imports.

use std::path::PathBuf;

use anyhow::bail;

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    plugin: PathBuf,
    #[arg(long)]
    json: bool,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        let info = g.host()?.inspect(&self.plugin)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
        } else {
            println!("plugin:    {}", self.plugin.display());
            println!("digest:    {}", info.digest);
            let world = info.world.as_deref();
            println!("world:     {}", world.unwrap_or("none (not a flowlet operator)"));
            let contract = info.contract_version.as_deref();
            println!("contract:  {}", contract.unwrap_or("none"));
            println!("exports:");
            for e in &info.exports {
                println!("  {e}");
            }
            println!("imports:");
            for i in &info.imports {
                println!("  {i}");
            }
        }
        if let Some(why) = info.not_an_operator() {
            bail!("{} is not a flowlet operator: {why}", self.plugin.display());
        }
        Ok(())
    }
}
