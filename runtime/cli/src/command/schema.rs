//! `flowlet schema`: the manifest's JSON Schema (the union of the connectors' and window
//! kinds' schemas), for editors.

use super::Globals;

#[derive(clap::Args)]
pub struct Args {}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let schema = flowlet_manifest::json_schema(&crate::catalog());
        println!("{}", serde_json::to_string_pretty(&schema)?);
        Ok(())
    }
}
