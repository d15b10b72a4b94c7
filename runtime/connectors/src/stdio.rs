//! `stdin`: JSON lines from standard input (source); `stdout`: JSON lines on standard output
//! (sink). Standard input cannot be read again after a crash; what went to standard output
//! cannot be taken back.

use std::io::Write;

use flowlet_dataflow::{BoxFuture, SinkSetup, SinkWriter, Source, SourceContext};
use flowlet_manifest::{Resource, Spec};
use flowlet_types::Batch;
use tokio::io::BufReader;

use crate::lines::{Mode, one_line, read};
use crate::{Connector, Env, SinkConnector, SourceConnector};

/// JSON lines from standard input.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Stdin {}

impl Spec for Stdin {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::Stdin]
    }
    fn replayable(&self) -> bool {
        false
    }
}

impl Connector for Stdin {
    const KIND: &'static str = "stdin";
}

impl SourceConnector for Stdin {
    fn open(&self, env: &Env<'_>) -> Result<Box<dyn Source>, String> {
        let injected = env.stdin.lock().expect("stdin lock").take();
        Ok(Box::new(Reader { injected }))
    }
}

struct Reader {
    injected: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
}

impl Source for Reader {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match self.injected {
                Some(r) => read(cx, BufReader::new(r), Mode::Interactive).await,
                None => read(cx, BufReader::new(tokio::io::stdin()), Mode::Interactive).await,
            }
        })
    }
}

/// JSON lines on standard output (one line per event; several `stdout` sinks never
/// interleave within a line).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Stdout {}

impl Spec for Stdout {
    fn takes_back(&self) -> bool {
        false
    }
}

impl Connector for Stdout {
    const KIND: &'static str = "stdout";
}

impl SinkConnector for Stdout {
    fn open(&self, _: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        Ok(Box::new(Writer(Vec::with_capacity(1 << 16))))
    }
}

/// A batch is formatted here, then written to standard output under its lock in one go: the
/// lock is never held while the sink waits for input (several `stdout` sinks share it), and
/// lines of different sinks never interleave.
struct Writer(Vec<u8>);

impl SinkWriter for Writer {
    fn write(&mut self, batch: &Batch, _: Option<&flowlet_dataflow::Epoch>) -> Result<(), String> {
        let buf = &mut self.0;
        buf.clear();
        for event in batch.iter() {
            buf.extend_from_slice(&one_line(event.value()));
            buf.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(buf)
            .and_then(|()| out.flush())
            .map_err(|e| format!("write error: {e}"))
    }

    fn durable(&mut self) -> Result<Option<serde_json::Value>, String> {
        std::io::stdout()
            .lock()
            .flush()
            .map_err(|e| format!("write error: {e}"))?;
        Ok(None)
    }
}
