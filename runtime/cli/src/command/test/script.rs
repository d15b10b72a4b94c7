//! The test's source: the input file, one event per line, with lines that move time —
//! `{"@watermark": T}` (event time) and `{"@processing-time": T}` (the virtual clock) — so that
//! windows, timers and TTLs fire at chosen points, the same way on every run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowlet_dataflow::{
    Batch, BoxFuture, Clock, Connect, DataflowError, LiveStats, ManualClock, Prepared, SinkSetup,
    SinkWriter, Timestamp,
    Source, SourceContext, parse_time,
};
use flowlet_manifest::Manifest;


/// The source of `flowlet test` (named `events`, the operator `operator`).
pub(super) struct Script {
    pub path: PathBuf,
    pub clock: Arc<ManualClock>,
    pub live: LiveStats,
    /// Events per batch: the watermark follows the event times after each.
    pub step: usize,
}

/// A line of the input.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    Event(&'a [u8]),
    Watermark(Timestamp),
    ProcessingTime(Timestamp),
}

/// What a line is: an event, or a time step (`{"@watermark": T}`, `{"@processing-time": T}`,
/// with T in milliseconds or RFC 3339).
fn line(text: &[u8]) -> Result<Line<'_>, String> {
    if !text.starts_with(b"{\"@") {
        return Ok(Line::Event(text));
    }
    let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text) else {
        return Ok(Line::Event(text));
    };
    let mut entries = map.iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err("a time step has one field: {\"@watermark\": T} or {\"@processing-time\": T}".into());
    };
    let t = parse_time(&value.to_string())
        .map_err(|e| format!("`{name}`: {e} (milliseconds, or an RFC 3339 time)"))?;
    match name.as_str() {
        "@watermark" => Ok(Line::Watermark(t)),
        "@processing-time" => Ok(Line::ProcessingTime(t)),
        other => Err(format!(
            "unknown time step `{other}` (expected @watermark or @processing-time)"
        )),
    }
}

impl Source for Script {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let text = tokio::fs::read(&self.path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
            let mut batch = Batch::new();
            let (mut watermark, mut now) = (Timestamp::MIN, self.clock.now());
            for (n, raw) in text.split(|b| *b == b'\n').enumerate() {
                let at = |e: String| format!("{}:{}: {e}", self.path.display(), n + 1);
                let raw = raw.trim_ascii();
                if raw.is_empty() {
                    continue;
                }
                let step = line(raw).map_err(at)?;
                if let Line::Event(value) = step {
                    batch.push(b"", value, now);
                    if batch.len() >= self.step && !cx.emit(std::mem::take(&mut batch)).await {
                        return Ok(());
                    }
                    continue;
                }
                if !batch.is_empty() && !cx.emit(std::mem::take(&mut batch)).await {
                    return Ok(());
                }
                match step {
                    Line::Watermark(w) if w < watermark => {
                        return Err(at(format!("the watermark cannot go back (from {watermark} to {w})")));
                    }
                    Line::Watermark(w) => {
                        watermark = w;
                        cx.watermark(w).await;
                    }
                    Line::ProcessingTime(t) if t < now => {
                        return Err(at(format!("processing time cannot go back (from {now} to {t})")));
                    }
                    Line::ProcessingTime(t) => {
                        // Everything sent is handled at the old time before the clock moves.
                        self.drained(cx).await;
                        now = t;
                        self.clock.set(t);
                        cx.tick().await;
                    }
                    Line::Event(_) => unreachable!("handled above"),
                }
            }
            if !batch.is_empty() {
                cx.emit(batch).await;
            }
            Ok(())
        })
    }
}

impl Script {
    /// Wait until the operator has handled every event the source sent (or the run stops).
    async fn drained(&self, cx: &SourceContext) {
        let count = |node: &str, f: fn(&flowlet_dataflow::NodeCounters) -> u64| {
            self.live.counters(node).map_or(0, |c| f(&c))
        };
        use std::sync::atomic::Ordering::Relaxed;
        while count("operator", |c| c.events_in.load(Relaxed))
            < count(cx.name(), |c| c.events_out.load(Relaxed))
            && !cx.stop().is_stopped()
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The connectors of a test run: the catalog's, but the script for the source.
pub(super) struct TestConnect {
    pub inner: Arc<dyn Connect>,
    pub script: Mutex<Option<Script>>,
}

impl Connect for TestConnect {
    fn prepare<'a>(
        &'a self,
        manifest: &'a Manifest,
    ) -> BoxFuture<'a, Result<Prepared, DataflowError>> {
        self.inner.prepare(manifest)
    }

    fn source(&self, name: &str, manifest: &Manifest) -> Result<Box<dyn Source>, String> {
        match self.script.lock().expect("script lock").take() {
            Some(script) => Ok(Box::new(script)),
            None => self.inner.source(name, manifest),
        }
    }

    fn sink(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        self.inner.sink(setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_steps_and_events() {
        assert_eq!(line(b"{\"a\":1}"), Ok(Line::Event(b"{\"a\":1}")));
        assert_eq!(line(b"{\"@watermark\": 5}"), Ok(Line::Watermark(5)));
        assert_eq!(
            line(b"{\"@processing-time\": \"1970-01-01T00:00:01Z\"}"),
            Ok(Line::ProcessingTime(1000))
        );
        assert_eq!(line(b"{\"@wat"), Ok(Line::Event(b"{\"@wat")));
        assert!(line(b"{\"@watermark\": 1, \"x\": 2}").unwrap_err().contains("one field"));
        assert!(line(b"{\"@clock\": 1}").unwrap_err().contains("unknown time step `@clock`"));
        assert!(line(b"{\"@watermark\": \"soon\"}").unwrap_err().contains("RFC 3339"));
        assert!(line(b"{\"@watermark\": null}").is_err());
    }
}
