//! `flowlet savepoint MANIFEST`: a savepoint of the running topology (through its control
//! socket), or of its last checkpoint when none runs.

use std::path::PathBuf;

use anyhow::bail;

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
    /// Stop the running topology once the savepoint is taken.
    #[arg(long)]
    stop: bool,
    /// Where to write it [default: <state dir>/savepoints/savepoint-<checkpoint>.flowlet].
    #[arg(long, short)]
    output: Option<PathBuf>,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let m = crate::load_manifest(&self.manifest)?;
        if m.checkpoint.is_none() {
            bail!(
                "{} has no `checkpoint:`; savepoints need checkpoints (add `checkpoint: {{interval: 5s}}`)",
                self.manifest.display()
            );
        }
        let path = crate::control::savepoint(&m.state_dir(), self.stop, self.output).await?;
        println!("{}", path.display());
        Ok(())
    }
}
