//! JSON lines (files, standard input and output): in, one event per non-empty line,
//! timestamped with the time it is read (or its time field); out, one line per event.

use std::time::Duration;

use flowlet_dataflow::SourceContext;
use flowlet_types::Batch;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// How a line reader behaves.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// A file: the position is the bytes of the complete lines read (where a resumed run
    /// starts).
    File,
    /// Standard input: a batch goes out as soon as no more input is buffered, so that typed
    /// lines come out at once; no position.
    Interactive,
}

/// Read `reader` to its end (or a stop), emitting batches and passing on barriers.
pub(crate) async fn read<R: AsyncRead + Unpin>(
    cx: &mut SourceContext,
    mut reader: BufReader<R>,
    mode: Mode,
) -> Result<(), String> {
    let positioned = matches!(mode, Mode::File);
    let mut s = Lines {
        batch: Batch::new(),
        consumed: cx.position().as_u64().unwrap_or(0),
        positioned,
    };
    let mut line = Vec::new();
    // One timer for the idle timeout, moved lazily: a line only notes the time it arrived,
    // and when the timer fires it is pushed back if a line came since.
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut last_line = tokio::time::Instant::now();
    let idle_timeout = cx.idle_timeout();
    let idle_timer = tokio::time::sleep_until(idle_timeout.map_or_else(far, |t| last_line + t));
    tokio::pin!(idle_timer);
    let mut idle = false;
    let mut checkpoints = cx.checkpoints();
    let stop = cx.stop().clone();
    loop {
        // `read_until` keeps what it read when another branch wins, so a line interrupted
        // by the idle timer is completed by the next call.
        let read = tokio::select! {
            r = reader.read_until(b'\n', &mut line) => r.map_err(|e| format!("read error: {e}"))?,
            _ = stop.stopped() => 0,
            id = checkpoints.next() => {
                if !s.flush(cx).await {
                    return Ok(());
                }
                cx.barrier(id).await;
                continue;
            }
            _ = &mut idle_timer, if !idle && idle_timeout.is_some() => {
                let due = last_line + idle_timeout.expect("checked by the branch");
                if due > tokio::time::Instant::now() {
                    idle_timer.as_mut().reset(due);
                    continue;
                }
                if !s.flush(cx).await {
                    return Ok(());
                }
                idle = true;
                cx.idle().await;
                continue;
            }
        };
        last_line = tokio::time::Instant::now();
        if std::mem::replace(&mut idle, false) {
            let t = idle_timeout.expect("only a source with a timeout goes idle");
            idle_timer.as_mut().reset(last_line + t);
        }
        if read == 0 {
            break;
        }
        s.consumed += line.len() as u64;
        let text = line.trim_ascii();
        if text.is_empty() {
            cx.blank_line();
        } else {
            s.batch.push(b"", text, cx.now());
        }
        line.clear();
        let drained = matches!(mode, Mode::Interactive) && reader.buffer().is_empty();
        let due = s.batch.len() >= cx.batch_size() || (drained && !s.batch.is_empty());
        if due && !s.flush(cx).await {
            return Ok(());
        }
    }
    s.flush(cx).await;
    Ok(())
}

/// The batch being filled and where the reader is.
struct Lines {
    batch: Batch,
    /// Bytes of the complete lines read.
    consumed: u64,
    positioned: bool,
}

impl Lines {
    /// Note the position and emit what is batched (if anything); `false`: stop reading.
    async fn flush(&mut self, cx: &mut SourceContext) -> bool {
        if self.positioned {
            cx.progress(json!(self.consumed));
        }
        self.batch.is_empty() || cx.emit(std::mem::take(&mut self.batch)).await
    }
}

/// An event as one line of a JSON-lines output: as it is when it has no line break (nearly
/// always); JSON text with its line breaks (whitespace between tokens) made spaces; other text
/// as a JSON string of it. A value with a line break — a pretty-printed Kafka record, say —
/// would otherwise become two lines, two broken events for whoever reads the file.
pub(crate) fn one_line(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    // `contains` on bytes is a memchr: two passes over a ~100-byte value, no per-byte branch.
    if !value.contains(&b'\n') && !value.contains(&b'\r') {
        return Cow::Borrowed(value);
    }
    if serde_json::from_slice::<&serde_json::value::RawValue>(value).is_ok() {
        // In valid JSON a line break can only be whitespace between tokens.
        let mut v = value.to_vec();
        v.iter_mut()
            .filter(|b| matches!(b, b'\n' | b'\r'))
            .for_each(|b| *b = b' ');
        return Cow::Owned(v);
    }
    Cow::Owned(serde_json::to_vec(&String::from_utf8_lossy(value)).expect("a string serializes"))
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn every_event_is_one_line() {
        assert_eq!(&*one_line(b"{\"a\":1}"), b"{\"a\":1}");
        assert_eq!(&*one_line(b"{\n  \"a\": 1\r\n}"), b"{   \"a\": 1  }");
        assert_eq!(&*one_line(b"two\nlines"), b"\"two\\nlines\"");
        for v in [&b"{\n\"a\":\"x\"}"[..], b"a\rb", b"\n", b"\xff\n"] {
            assert!(!one_line(v).contains(&b'\n') && !one_line(v).contains(&b'\r'));
        }
    }
}
