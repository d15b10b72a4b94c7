//! `flowlet new NAME --lang L`: an operator project in Rust, C, Python or JavaScript.

use std::path::PathBuf;

use super::Globals;
use crate::new_project::{self, Lang};

#[derive(clap::Args)]
pub struct Args {
    /// The operator's name (also the project's directory).
    name: String,
    /// rust | c | python | js
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to create the project [default: the current directory].
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Rust: the flowlet SDK crate the project depends on [default: the one of the source
    /// tree this flowlet was built from].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

impl Args {
    pub async fn run(self, _: &Globals) -> anyhow::Result<()> {
        let path = new_project::create(&self.name, self.lang, &self.dir, self.sdk.as_deref())?;
        println!("{}", new_project::next_steps(&self.name, self.lang, &path));
        Ok(())
    }
}
