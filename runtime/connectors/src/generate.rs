//! Synthetic sources (`generator`, `nexmark`): events made from their index, as fast as the
//! topology goes or paced to a rate; the position is the index of the next event.

use std::time::Duration;

use flowlet_dataflow::SourceContext;
use flowlet_types::Batch;
use serde_json::json;

/// Events `push(batch, n)` for n = 0, 1, … (up to `count`), at `rate` per second.
pub(crate) async fn generate(
    cx: &mut SourceContext,
    count: Option<u64>,
    rate: Option<f64>,
    push: impl Fn(&mut Batch, u64),
) {
    // With a rate, batches hold at most 50 ms of events so that output stays smooth.
    let batch_size = match rate {
        Some(r) => cx.batch_size().min((r / 20.0).ceil().max(1.0) as usize),
        None => cx.batch_size(),
    };
    let start = tokio::time::Instant::now();
    let mut n = cx.position().as_u64().unwrap_or(0);
    let first = n;
    let mut batch = Batch::with_capacity(batch_size, batch_size * 128);
    while count.is_none_or(|c| n < c) && !cx.stop().is_stopped() {
        let end = count.map_or(n + batch_size as u64, |c| c.min(n + batch_size as u64));
        for i in n..end {
            push(&mut batch, i);
        }
        n = end;
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64((n - first) as f64 / r);
            wait_until(cx, due).await;
        }
        let full = std::mem::replace(
            &mut batch,
            Batch::with_capacity(batch_size, batch_size * 128),
        );
        cx.progress(json!(n));
        if !cx.emit(full).await {
            return;
        }
        if let Some(id) = cx.triggered() {
            cx.barrier(id).await;
        }
    }
}

/// Sleep until `due` (or a stop), telling the consumers when the source goes idle.
async fn wait_until(cx: &mut SourceContext, due: tokio::time::Instant) {
    let stop = cx.stop().clone();
    let idle_at = cx.idle_timeout().map(|t| tokio::time::Instant::now() + t);
    if let Some(idle_at) = idle_at.filter(|i| *i < due) {
        tokio::select! {
            _ = tokio::time::sleep_until(idle_at) => {}
            _ = stop.stopped() => return,
        }
        cx.idle().await;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(due) => {}
        _ = stop.stopped() => {}
    }
}
