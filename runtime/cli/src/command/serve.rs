//! `flowlet serve`: the control plane (docs/CONTROL-PLANE.md).

use std::path::PathBuf;

use super::Globals;
use crate::serve::{self, ServeConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen; a non-loopback address needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Where plugins, pipelines and their state are kept.
    #[arg(long, default_value = ".flowlet/server")]
    data_dir: PathBuf,
    /// A file whose first line is the bearer token mutating requests must carry.
    #[arg(long, env = "FLOWLET_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Largest plugin upload (interpreted-language components are 12–18 MB).
    #[arg(long, default_value = "64MiB")]
    max_upload: bytesize::ByteSize,
    /// How long a client may take to send a request's headers; slower connections are closed.
    #[arg(long, default_value = "10s")]
    header_timeout: humantime::Duration,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        let token = self
            .token_file
            .as_deref()
            .map(serve::read_token)
            .transpose()?;
        let config = ServeConfig {
            data_dir: self.data_dir,
            token,
            max_upload: self.max_upload.as_u64() as usize,
            header_timeout: self.header_timeout.into(),
        };
        serve::serve(g.host()?, self.listen, config).await
    }
}
