//! A guest's stdout and stderr: each line goes to the host's log, tagged with the operator, and
//! the last lines are kept so that a trap can be explained by the panic message before it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_LINE: usize = 4096;
const TAIL_LINES: usize = 8;

#[derive(Default)]
struct State {
    line: Vec<u8>,
    tail: VecDeque<String>,
}

#[derive(Clone)]
pub(crate) struct GuestOutput {
    operator: Arc<str>,
    state: Arc<Mutex<State>>,
}

impl GuestOutput {
    pub fn new(operator: &str) -> Self {
        Self {
            operator: operator.into(),
            state: Arc::default(),
        }
    }

    /// The last lines written (including an unterminated one).
    pub fn tail(&self) -> Vec<String> {
        let s = self.state.lock().expect("guest output lock");
        let mut lines: Vec<String> = s.tail.iter().cloned().collect();
        if !s.line.is_empty() {
            lines.push(String::from_utf8_lossy(&s.line).into_owned());
        }
        lines
    }

    fn write(&self, buf: &[u8]) {
        let mut s = self.state.lock().expect("guest output lock");
        for &b in buf {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&s.line).into_owned();
                s.line.clear();
                tracing::info!(target: "flowlet::guest", operator = %self.operator, "{line}");
                if s.tail.len() == TAIL_LINES {
                    s.tail.pop_front();
                }
                s.tail.push_back(line);
            } else if s.line.len() < MAX_LINE {
                s.line.push(b);
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
