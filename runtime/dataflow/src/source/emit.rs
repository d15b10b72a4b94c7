//! Emitting a batch: event times read from the events, the `on-error` policy for those that
//! have none, the watermark (per partition when the input has them).

use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::{Guarantee, OnError};
use flowlet_types::{Batch, Timestamp};

use super::{SourceContext, parse_time};
use crate::Message;

/// `{"source", "error", "event": {"key", "value", "timestamp"}}` for `SOURCE.dead-letter`.
fn dead_letter_record(source: &str, error: &str, event: &flowlet_types::EventRef<'_>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        source: &'a str,
        error: &'a str,
        event: crate::policy::EventJson<'a>,
    }
    crate::policy::to_json(&Record {
        source,
        error,
        event: crate::policy::EventJson::new(event),
    })
}

impl SourceContext {
    /// Set event times from the time field (and check JSON values), apply `on-error` to the
    /// events that fail, send the batch, then the watermark if it advanced. `false`: the source
    /// must stop (the run is stopping, or `on-error: fail` met a bad event).
    pub async fn emit(&mut self, mut batch: Batch) -> bool {
        // At-most-once: the position goes to disk before the events go out, so that a crash
        // never reads them again.
        if let Some(ck) = &self.s.ckpt
            && self.s.guarantee == Guarantee::AtMostOnce
            && let Err(e) = ck.note_read(&self.c.meta())
        {
            self.failure = Some(format!(
                "cannot note the read position before sending the events (at-most-once): {e}"
            ));
            return false;
        }
        let bad = self.read_times(&mut batch);
        if !bad.is_empty() {
            match self.set_aside(&batch, &bad).await {
                Some(kept) => batch = kept,
                None => return false,
            }
        }
        let max_seen = self.max_seen(&batch, &bad);
        let counters = &self.s.counters;
        counters.events_out.fetch_add(batch.len() as u64, Relaxed);
        counters.batches.fetch_add(1, Relaxed);
        if !batch.is_empty() && !self.s.out.send(batch).await {
            return false;
        }
        let w = max_seen.saturating_sub(self.c.bound);
        if max_seen > Timestamp::MIN && w > self.c.sent {
            self.c.sent = w;
            self.s.counters.watermark.store(w, Relaxed);
            self.s.out.broadcast(Message::Watermark(w)).await;
        }
        true
    }

    /// Set each event's time from the time field; the events whose time (or JSON) cannot be
    /// read, with why, in order.
    fn read_times(&self, batch: &mut Batch) -> Vec<(usize, String)> {
        let c = &self.c;
        let mut bad = Vec::new();
        if c.field.is_none() && !c.json {
            return bad;
        }
        for i in 0..batch.len() {
            let event = batch.get(i);
            if c.json
                && serde_json::from_slice::<&serde_json::value::RawValue>(event.value()).is_err()
            {
                bad.push((i, "the value is not JSON (the source's format is `json`; use `format: bytes` to pass any bytes)".into()));
                continue;
            }
            let Some(field) = &c.field else { continue };
            let t = match field.find(event.value()) {
                Ok(Some(raw)) => parse_time(raw.get()),
                Ok(None) => Err("the field is missing".to_owned()),
                Err(e) => Err(format!("the value is not JSON ({e})")),
            };
            match t {
                Ok(t) => batch.timestamps[i] = t,
                Err(why) => bad.push((i, format!(
                    "no readable event time at {field}: {why} (expected a number of milliseconds or an RFC 3339 string)"
                ))),
            }
        }
        bad
    }

    /// Apply `on-error` to the `bad` events of `batch`: the batch without them, or `None` when
    /// the source must stop.
    async fn set_aside(&mut self, batch: &Batch, bad: &[(usize, String)]) -> Option<Batch> {
        let mut kept = Batch::with_capacity(batch.len(), batch.values.len());
        let mut dead = Batch::new();
        let mut b = bad.iter().peekable();
        for e in batch.iter() {
            let Some((_, error)) = b.next_if(|(i, _)| *i == e.index()) else {
                kept.push_event(&e);
                continue;
            };
            let preview =
                String::from_utf8_lossy(&e.value()[..e.value().len().min(200)]).into_owned();
            match self.s.on_error {
                OnError::Fail => {
                    self.failure = Some(format!(
                        "{error} in event `{preview}`; the topology stops because the source's on-error policy is `fail` (choose `skip` or `dead-letter` to go on)"
                    ));
                    return None;
                }
                OnError::Skip => {
                    self.s.counters.skipped.fetch_add(1, Relaxed);
                    if self.c.bad_times < 5 {
                        tracing::warn!(source = %self.s.name, "skipping an event: {error}: {preview}");
                    }
                }
                OnError::DeadLetter => {
                    self.s.counters.dead_lettered.fetch_add(1, Relaxed);
                    let record = dead_letter_record(&self.s.name, error, &e);
                    dead.push(e.key().unwrap_or_default(), &record, e.timestamp());
                }
            }
            self.c.bad_times += 1;
        }
        self.s
            .counters
            .rejected
            .fetch_add(bad.len() as u64, Relaxed);
        if !dead.is_empty() && !self.s.dead_letter.send(dead).await {
            return None;
        }
        Some(kept)
    }

    /// The largest event time the watermark may follow after `batch` (the kept events;
    /// `bad` were left out): over all events, or the minimum over the partitions not idle.
    fn max_seen(&mut self, batch: &Batch, bad: &[(usize, String)]) -> Timestamp {
        let c = &mut self.c;
        if let Some(max) = batch.timestamps.iter().copied().max() {
            c.max_seen = c.max_seen.max(max);
        }
        if c.partition_max.is_empty() {
            return c.max_seen;
        }
        let mut bad = bad.iter().map(|(i, _)| *i).peekable();
        let mut kept = 0;
        for (i, p) in c.partition_of.iter().enumerate() {
            if bad.next_if_eq(&i).is_some() {
                continue;
            }
            let t = batch.timestamps[kept];
            kept += 1;
            let m = &mut c.partition_max[*p as usize];
            *m = (*m).max(t);
        }
        c.partition_of.clear();
        c.partition_max
            .iter()
            .zip(&c.partition_idle)
            .filter(|(_, idle)| !**idle)
            .map(|(m, _)| *m)
            .min()
            .unwrap_or(Timestamp::MIN)
    }
}
