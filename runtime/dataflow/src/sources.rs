//! Sources: the generator, JSON-lines files and standard input.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use flowlet_manifest::{EventTime, Guarantee, OnError, SourceKind};
use flowlet_types::{Batch, Timestamp};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::checkpoint::TaskCheckpoints;
use crate::edge::Outputs;
use crate::{DataflowError, Message, NodeCounters, Stop, generator};

pub(crate) struct SourceTask {
    pub name: String,
    pub kind: SourceKind,
    pub event_time: Option<EventTime>,
    pub stdin: Arc<std::sync::Mutex<Option<Box<dyn AsyncRead + Send + Unpin>>>>,
    pub path: Option<PathBuf>,
    pub batch_size: usize,
    pub out: Outputs,
    pub counters: Arc<NodeCounters>,
    pub stop: Arc<Stop>,
    pub clock: Arc<dyn crate::Clock>,
    /// What happens to events whose event time cannot be read.
    pub on_error: OnError,
    pub dead_letter: Outputs,
    /// Why the source stopped the topology (`on-error: fail`).
    pub failure: Option<String>,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: Guarantee,
    /// The topology's name (the default Kafka consumer group).
    pub topology: String,
}

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

/// Event time and watermarks of one source.
pub(crate) struct Clocking {
    pub field: Option<flowlet_manifest::Pointer>,
    pub bound: Timestamp,
    pub idle_timeout: Option<Duration>,
    pub max_seen: Timestamp,
    pub sent: Timestamp,
    /// Events dropped because their time field was missing or unreadable.
    pub bad_times: u64,
    /// Blank lines of a file or standard input (skipped: they are not events).
    pub blank_lines: u64,
    /// Values must be JSON (Kafka `format: json`).
    pub json: bool,
    /// Kafka: the partition (index) of each event of the batch being emitted, and each
    /// partition's largest event time and idleness. The watermark is then the minimum over
    /// the partitions that are not idle.
    pub partition_of: Vec<u16>,
    pub partition_max: Vec<Timestamp>,
    pub partition_idle: Vec<bool>,
    /// Where the source is: what it resumes from (a file's bytes, a generator's events, Kafka
    /// offsets); set by the reader after each batch.
    pub position: Value,
}

impl Clocking {
    /// What a checkpoint saves of a source.
    fn meta(&self) -> Value {
        json!({"position": self.position, "max_seen": self.max_seen, "sent": self.sent})
    }

    fn restore(&mut self, meta: &Value) {
        self.position = meta.get("position").cloned().unwrap_or(Value::Null);
        if let Some(m) = meta.get("max_seen").and_then(Value::as_i64) {
            self.max_seen = m;
        }
        if let Some(s) = meta.get("sent").and_then(Value::as_i64) {
            self.sent = s;
        }
    }
}

/// An event time from the JSON text `raw` of a field: a number of milliseconds since the Unix
/// epoch (an integer, read exactly, or a decimal, rounded down), or an RFC 3339 string (any
/// offset, any number of fraction digits — rounded down to the millisecond —, `T`/`t` or a
/// space between date and time, `Z`/`z`, and leap seconds as the last millisecond of their
/// minute). Err says why it is not one.
pub(crate) fn parse_time(raw: &str) -> Result<Timestamp, String> {
    use ::time::format_description::well_known::Rfc3339;
    let t: i128 = if raw.starts_with('"') {
        // A JSON string: unescaped first (`\u0054` is a `T`).
        let s: String =
            serde_json::from_str(raw).map_err(|e| format!("{raw} is not a string: {e}"))?;
        let t = ::time::OffsetDateTime::parse(&s, &Rfc3339)
            .map_err(|e| format!("`{s}` is not an RFC 3339 date-time ({e})"))?;
        t.unix_timestamp_nanos().div_euclid(1_000_000)
    } else if let Ok(n) = raw.parse::<i64>() {
        n.into()
    } else {
        match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                let f = f.floor();
                // Beyond i128 is beyond the range anyway.
                if f.abs() > 1e30 { i128::MAX } else { f as i128 }
            }
            Ok(_) => i128::MAX,
            Err(_) => {
                return Err(format!(
                    "{} is neither a number nor a string",
                    preview_text(raw)
                ));
            }
        }
    };
    i64::try_from(t)
        .ok()
        .filter(|t| flowlet_types::event_time_in_range(*t))
        .ok_or_else(|| {
            format!(
                "{} is out of range (event times lie within about 146 million years of 1970, {}..={} ms)",
                preview_text(raw),
                flowlet_types::MIN_EVENT_TIME,
                flowlet_types::MAX_EVENT_TIME
            )
        })
}

/// At most 60 characters of `s`, for messages.
fn preview_text(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Open `path` at byte `offset` (a resumed run), checking that the file still reaches it.
async fn open_at(path: &std::path::Path, offset: u64) -> Result<tokio::fs::File, String> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if offset > 0 {
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        if len < offset {
            return Err(format!(
                "{} is {len} bytes, but the last checkpoint had read {offset}: the input was changed (start again with --from-scratch)",
                path.display()
            ));
        }
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
    }
    Ok(f)
}

impl SourceTask {
    pub async fn run(mut self) -> Result<(), DataflowError> {
        let et = self.event_time.clone().unwrap_or_default();
        let mut clocking = Clocking {
            field: et.field,
            bound: et.max_out_of_orderness.as_millis() as Timestamp,
            idle_timeout: et.idle_timeout,
            max_seen: Timestamp::MIN,
            sent: Timestamp::MIN,
            bad_times: 0,
            blank_lines: 0,
            json: false,
            partition_of: Vec::new(),
            partition_max: Vec::new(),
            partition_idle: Vec::new(),
            position: Value::Null,
        };
        if let Some(meta) = self.ckpt.as_ref().and_then(|c| c.resume_at()) {
            clocking.restore(meta);
        }
        let result = match self.kind.clone() {
            SourceKind::Generator { count, rate, seed } => {
                self.generate(count, rate, &mut clocking, |b, n| {
                    generator::push_event(b, seed, n)
                })
                .await;
                Ok(())
            }
            SourceKind::Nexmark { events, rate } => {
                self.generate(events, rate, &mut clocking, crate::nexmark::push_event)
                    .await;
                Ok(())
            }
            SourceKind::File { .. } => {
                let path = self.path.clone().expect("file sources have a path");
                match open_at(&path, clocking.position.as_u64().unwrap_or(0)).await {
                    Ok(f) => {
                        self.lines(BufReader::with_capacity(1 << 20, f), false, &mut clocking)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            SourceKind::Kafka(spec) => self.kafka(&spec, &mut clocking).await,
            SourceKind::Stdin => {
                let injected = self.stdin.lock().expect("stdin lock").take();
                match injected {
                    Some(r) => self.lines(BufReader::new(r), true, &mut clocking).await,
                    None => {
                        self.lines(BufReader::new(tokio::io::stdin()), true, &mut clocking)
                            .await
                    }
                }
            }
        };
        let result = match self.failure.take() {
            Some(message) => Err(message),
            None => result,
        };
        if clocking.blank_lines > 0 {
            tracing::info!(source = %self.name, "skipped {} blank line(s) (counted as skipped)", clocking.blank_lines);
        }
        if clocking.bad_times > 0 {
            tracing::warn!(
                source = %self.name,
                "{} event(s) had no readable event time in {} and were {}",
                clocking.bad_times,
                clocking.field.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                match self.on_error {
                    OnError::DeadLetter => format!("sent to `{}.dead-letter`", self.name),
                    _ => "skipped".into(),
                }
            );
        }
        // A bounded input that ended (not stopped) is complete: every window may fire.
        if result.is_ok() && !self.stop.is_stopped() {
            self.out.broadcast(Message::Watermark(Timestamp::MAX)).await;
        }
        // End the stream even after an error, so that everything downstream flushes.
        self.out.broadcast(Message::End).await;
        self.dead_letter.broadcast(Message::End).await;
        if let (Some(c), Ok(())) = (&self.ckpt, &result) {
            c.finished(Vec::new(), Some(clocking.meta()));
        }
        result.map_err(|message| DataflowError::Source {
            source_name: self.name.clone(),
            message,
        })
    }

    /// Set event times from the time field (and check JSON values), apply `on-error` to the
    /// events that fail, send the batch, then the watermark if it advanced.
    pub(crate) async fn emit(&mut self, mut batch: Batch, c: &mut Clocking) -> bool {
        // At-most-once: the position goes to disk before the events go out, so that a crash
        // never reads them again.
        if let Some(ck) = &self.ckpt
            && self.guarantee == Guarantee::AtMostOnce
            && let Err(e) = ck.note_read(&c.meta())
        {
            self.failure = Some(format!(
                "cannot note the read position before sending the events (at-most-once): {e}"
            ));
            return false;
        }
        let mut bad_indexes = Vec::new();
        if c.field.is_some() || c.json {
            let mut bad: Vec<(usize, String)> = Vec::new();
            for i in 0..batch.len() {
                let event = batch.get(i);
                if c.json
                    && serde_json::from_slice::<&serde_json::value::RawValue>(event.value())
                        .is_err()
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
            bad_indexes = bad.iter().map(|(i, _)| *i).collect();
            if !bad.is_empty() {
                let mut kept = Batch::with_capacity(batch.len(), batch.values.len());
                let mut dead = Batch::new();
                let mut b = bad.iter().peekable();
                for e in batch.iter() {
                    let Some((_, error)) = b.next_if(|(i, _)| *i == e.index()) else {
                        kept.push_event(&e);
                        continue;
                    };
                    let preview = String::from_utf8_lossy(&e.value()[..e.value().len().min(200)])
                        .into_owned();
                    match self.on_error {
                        OnError::Fail => {
                            self.failure = Some(format!(
                                "{error} in event `{preview}`; the topology stops because the source's on-error policy is `fail` (choose `skip` or `dead-letter` to go on)"
                            ));
                            return false;
                        }
                        OnError::Skip => {
                            self.counters.skipped.fetch_add(1, Relaxed);
                            if c.bad_times < 5 {
                                tracing::warn!(source = %self.name, "skipping an event: {error}: {preview}");
                            }
                        }
                        OnError::DeadLetter => {
                            self.counters.dead_lettered.fetch_add(1, Relaxed);
                            let record = dead_letter_record(&self.name, error, &e);
                            dead.push(e.key().unwrap_or_default(), &record, e.timestamp());
                        }
                    }
                    c.bad_times += 1;
                }
                self.counters.rejected.fetch_add(bad.len() as u64, Relaxed);
                if !dead.is_empty() && !self.dead_letter.send(dead).await {
                    return false;
                }
                batch = kept;
            }
        }
        if let Some(max) = batch.timestamps.iter().copied().max() {
            c.max_seen = c.max_seen.max(max);
        }
        let max_seen = if c.partition_max.is_empty() {
            c.max_seen
        } else {
            // Per partition (the events of each, bad ones left out).
            let bad: std::collections::HashSet<usize> = bad_indexes.iter().copied().collect();
            let mut kept = 0;
            for (i, p) in c.partition_of.iter().enumerate() {
                if bad.contains(&i) {
                    continue;
                }
                let t = batch.timestamps[kept];
                kept += 1;
                let m = &mut c.partition_max[*p as usize];
                *m = (*m).max(t);
            }
            c.partition_max
                .iter()
                .zip(&c.partition_idle)
                .filter(|(_, idle)| !**idle)
                .map(|(m, _)| *m)
                .min()
                .unwrap_or(Timestamp::MIN)
        };
        self.counters
            .events_out
            .fetch_add(batch.len() as u64, Relaxed);
        self.counters.batches.fetch_add(1, Relaxed);
        if !batch.is_empty() && !self.out.send(batch).await {
            return false;
        }
        let w = max_seen.saturating_sub(c.bound);
        if max_seen > Timestamp::MIN && w > c.sent {
            c.sent = w;
            self.counters.watermark.store(w, Relaxed);
            self.out.broadcast(Message::Watermark(w)).await;
        }
        true
    }

    /// The reader is at `position` once the batch about to be emitted (if any) is sent.
    pub(crate) fn progress(&self, position: Value, c: &mut Clocking) {
        c.position = position;
    }

    /// A checkpoint asked for since the last look, if any.
    pub(crate) fn triggered(&mut self) -> Option<u64> {
        let ck = self.ckpt.as_mut()?;
        if ck.trigger.has_changed().unwrap_or(false) {
            return Some(*ck.trigger.borrow_and_update());
        }
        None
    }

    /// Send barrier `id` and report this source's position for it.
    pub(crate) async fn barrier(&mut self, id: u64, c: &Clocking) {
        self.out.broadcast(Message::Barrier(id)).await;
        self.dead_letter.broadcast(Message::Barrier(id)).await;
        if let Some(ck) = &self.ckpt {
            ck.snapshot(id, Vec::new(), Some(c.meta()));
        }
    }

    /// Wait for the next checkpoint request (forever without checkpoints).
    pub(crate) async fn next_trigger(
        trigger: &mut Option<tokio::sync::watch::Receiver<u64>>,
    ) -> u64 {
        match trigger {
            Some(t) => match t.changed().await {
                Ok(()) => *t.borrow_and_update(),
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Events `push(batch, n)` for n = 0, 1, … (up to `count`), at `rate` per second.
    async fn generate(
        &mut self,
        count: Option<u64>,
        rate: Option<f64>,
        c: &mut Clocking,
        push: impl Fn(&mut Batch, u64),
    ) {
        // With a rate, batches hold at most 50 ms of events so that output stays smooth.
        let batch_size = match rate {
            Some(r) => self.batch_size.min((r / 20.0).ceil().max(1.0) as usize),
            None => self.batch_size,
        };
        let start = tokio::time::Instant::now();
        let mut n = c.position.as_u64().unwrap_or(0);
        let first = n;
        let mut batch = Batch::with_capacity(batch_size, batch_size * 128);
        while count.is_none_or(|c| n < c) && !self.stop.is_stopped() {
            let end = count.map_or(n + batch_size as u64, |c| c.min(n + batch_size as u64));
            for i in n..end {
                push(&mut batch, i);
            }
            n = end;
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64((n - first) as f64 / r);
                self.wait_until(due, c).await;
            }
            let full = std::mem::replace(
                &mut batch,
                Batch::with_capacity(batch_size, batch_size * 128),
            );
            self.progress(json!(n), c);
            if !self.emit(full, c).await {
                return;
            }
            if let Some(id) = self.triggered() {
                self.barrier(id, c).await;
            }
        }
    }

    /// Sleep until `due` (or a stop), telling the consumers when the source goes idle.
    async fn wait_until(&mut self, due: tokio::time::Instant, c: &Clocking) {
        let idle_at = c.idle_timeout.map(|t| tokio::time::Instant::now() + t);
        match idle_at {
            Some(idle_at) if idle_at < due => {
                tokio::select! {
                    _ = tokio::time::sleep_until(idle_at) => {}
                    _ = self.stop.stopped() => return,
                }
                self.out.broadcast(Message::Idle).await;
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.stop.stopped() => {}
                }
            }
            _ => {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.stop.stopped() => {}
                }
            }
        }
    }

    /// One event per non-empty line, timestamped with processing time (or its time field).
    /// With `interactive`, a batch is sent as soon as no more input is buffered, so typed lines
    /// come out at once.
    async fn lines<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: BufReader<R>,
        interactive: bool,
        c: &mut Clocking,
    ) -> Result<(), String> {
        let mut batch = Batch::new();
        let mut line = Vec::new();
        // One timer for the idle timeout, moved lazily: a line only notes the time it arrived,
        // and when the timer fires it is pushed back if a line came since.
        let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut last_line = tokio::time::Instant::now();
        let idle_timer =
            tokio::time::sleep_until(c.idle_timeout.map_or_else(far, |t| last_line + t));
        tokio::pin!(idle_timer);
        let mut idle = false;
        // Bytes of the complete lines read: where a resumed run starts.
        let mut consumed = c.position.as_u64().unwrap_or(0);
        let positioned = !interactive;
        let mut trigger = self.ckpt.as_ref().map(|ck| ck.trigger.clone());
        if let Some(t) = &mut trigger {
            t.mark_unchanged();
        }
        loop {
            // `read_until` keeps what it read when another branch wins, so a line interrupted
            // by the idle timer is completed by the next call.
            let read = tokio::select! {
                r = reader.read_until(b'\n', &mut line) => r.map_err(|e| format!("read error: {e}"))?,
                _ = self.stop.stopped() => 0,
                id = Self::next_trigger(&mut trigger) => {
                    if positioned {
                        self.progress(json!(consumed), c);
                    }
                    if !batch.is_empty() && !self.emit(std::mem::take(&mut batch), c).await {
                        return Ok(());
                    }
                    self.barrier(id, c).await;
                    continue;
                }
                _ = &mut idle_timer, if !idle && c.idle_timeout.is_some() => {
                    let due = last_line + c.idle_timeout.expect("checked by the branch");
                    if due > tokio::time::Instant::now() {
                        idle_timer.as_mut().reset(due);
                        continue;
                    }
                    if positioned {
                        self.progress(json!(consumed), c);
                    }
                    if !batch.is_empty() && !self.emit(std::mem::take(&mut batch), c).await {
                        return Ok(());
                    }
                    idle = true;
                    self.out.broadcast(Message::Idle).await;
                    continue;
                }
            };
            last_line = tokio::time::Instant::now();
            if std::mem::replace(&mut idle, false) {
                let t = c
                    .idle_timeout
                    .expect("only a source with a timeout goes idle");
                idle_timer.as_mut().reset(last_line + t);
            }
            if read == 0 {
                break;
            }
            consumed += line.len() as u64;
            let text = line.trim_ascii();
            if text.is_empty() {
                // Not an event; counted as skipped so that lines in = events + skipped.
                c.blank_lines += 1;
                self.counters.skipped.fetch_add(1, Relaxed);
            } else {
                batch.push(b"", text, self.clock.now());
            }
            line.clear();
            let drained = interactive && reader.buffer().is_empty();
            let due = batch.len() >= self.batch_size || (drained && !batch.is_empty());
            if due {
                if positioned {
                    self.progress(json!(consumed), c);
                }
                if !self.emit(std::mem::take(&mut batch), c).await {
                    return Ok(());
                }
            }
        }
        if positioned {
            self.progress(json!(consumed), c);
        }
        if !batch.is_empty() && !self.emit(batch, c).await {
            return Ok(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;
    use proptest::prelude::*;

    fn text(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm): the
    /// tests' own calendar, independent of the parser's.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn rfc3339_corners() {
        for (s, ms) in [
            // The offset applies with and without a fraction, either sign, half hours.
            ("2024-05-01T12:00:00.250+02:00", 1_714_557_600_250),
            ("2024-05-01T12:00:00+02:00", 1_714_557_600_000),
            ("2024-05-01T12:00:00-04:30", 1_714_581_000_000),
            ("2024-05-01T12:00:00-00:00", 1_714_564_800_000),
            // Lowercase, and a space as the separator (RFC 3339 §5.6 allows it).
            ("2024-05-01t12:00:00z", 1_714_564_800_000),
            ("2024-05-01 12:00:00Z", 1_714_564_800_000),
            // Before 1970: rounded down, like every fraction.
            ("1969-12-31T23:59:59.999Z", -1),
            ("1969-12-31T23:59:59.9999Z", -1),
            ("1969-12-31T23:59:59.0001Z", -1_000),
            // The ends of the grammar's years; any number of fraction digits.
            ("0000-01-01T00:00:00Z", -62_167_219_200_000),
            ("9999-12-31T23:59:59.999999999Z", 253_402_300_799_999),
            ("2024-05-01T12:00:00.123456789123Z", 1_714_564_800_123),
            // A leap second is the last millisecond of its minute.
            ("2016-12-31T23:59:60Z", 1_483_228_799_999),
            ("2017-01-01T00:59:60+01:00", 1_483_228_799_999),
        ] {
            assert_eq!(parse_time(&text(s)), Ok(ms), "{s}");
        }
        // Escapes in the JSON string are undone first.
        assert_eq!(
            parse_time(r#""\u0032024-05-01T12:00:00Z""#),
            Ok(1_714_564_800_000)
        );
        for bad in [
            "2024-05-01T12:00:00",       // no offset
            "2024-05-01T12:00Z",         // no seconds
            "2024-02-30T00:00:00Z",      // no such day
            "2024-05-01T24:00:00Z",      // no such hour
            "2024-05-01T12:00:00+24:00", // no such offset
            "2024-05-01T12:00:00.Z",     // an empty fraction
            "2024-05-01T12:00:60Z",      // not a leap second
            " 2024-05-01T12:00:00Z",
            "",
            "yesterday",
        ] {
            let err = parse_time(&text(bad)).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn milliseconds_are_exact_and_bounded() {
        for (raw, ms) in [
            ("1700000000000", Ok(1_700_000_000_000)),
            // Above 2^53: read as an integer, not through a float.
            ("9007199254740993", Ok(9_007_199_254_740_993)),
            ("-1", Ok(-1)),
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("1.9", Ok(1)),
            ("-1.5", Ok(-2)),
            ("1e3", Ok(1000)),
            ("4611686018427387903", Ok(flowlet_types::MAX_EVENT_TIME)),
            ("-4611686018427387904", Ok(flowlet_types::MIN_EVENT_TIME)),
        ] {
            assert_eq!(parse_time(raw), ms, "{raw}");
        }
        for raw in [
            "4611686018427387904",
            "-9223372036854775808",
            "9223372036854775807",
            "18446744073709551616",
            "1e400",
            "-1e400",
            "1e19",
            "true",
            "null",
            "[1]",
            "{}",
        ] {
            assert!(parse_time(raw).is_err(), "{raw}");
        }
    }

    proptest! {
        /// Every RFC 3339 form the grammar allows, against the tests' own calendar.
        #[test]
        fn any_rfc3339_time_is_read_exactly(
            y in 0i64..=9999, m in 1i64..=12, d in 1i64..=28, h in 0i64..24, mi in 0i64..60,
            s in 0i64..60, frac in proptest::collection::vec(0u8..10, 0..12),
            off in -(23 * 60 + 59)..=(23 * 60 + 59i64), zulu in any::<bool>(),
            lower in any::<bool>(), space in any::<bool>(),
        ) {
            let sep = if space { " " } else if lower { "t" } else { "T" };
            let fraction: String = frac.iter().map(|d| char::from(b'0' + d)).collect();
            let zone = if zulu {
                if lower { "z".to_owned() } else { "Z".to_owned() }
            } else {
                let sign = if off < 0 { '-' } else { '+' };
                format!("{sign}{:02}:{:02}", off.abs() / 60, off.abs() % 60)
            };
            let dot = if frac.is_empty() { "" } else { "." };
            let t = format!("{y:04}-{m:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{dot}{fraction}{zone}");
            let ms_of_fraction = frac.iter().chain([0, 0, 0].iter()).take(3).fold(0, |a, d| a * 10 + i64::from(*d));
            let offset = if zulu { 0 } else { off };
            let expected = (days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s - offset * 60) * 1000
                + ms_of_fraction;
            prop_assert_eq!(parse_time(&text(&t)), Ok(expected), "{}", t);
        }

        /// Any text at all: an answer, never a panic; numbers within the range are exact.
        #[test]
        fn any_text_is_answered(raw in ".{0,60}", n in any::<i64>()) {
            let _ = parse_time(&raw);
            let _ = parse_time(&text(&raw));
            let got = parse_time(&n.to_string());
            prop_assert_eq!(got.is_ok(), flowlet_types::event_time_in_range(n));
            if let Ok(t) = got {
                prop_assert_eq!(t, n);
            }
        }
    }
}
