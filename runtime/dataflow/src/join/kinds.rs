//! What each kind of join does with an event, and when the watermark passes: interval joins
//! match on arrival and trim by time, window joins pair a window's events when it fires,
//! temporal joins look a left event's key up in the table once every input has passed its time.

use flowlet_manifest::{JoinKind, JoinMode};
use flowlet_types::{Batch, Timestamp};

use super::buffers::{Buffers, KeyRows, Row};
use super::emit;
use crate::DataflowError;
use crate::window::assign::{Assigner, Win, assigner, ms};

pub(crate) enum Kind {
    Interval { lower: Timestamp, upper: Timestamp },
    Window(Box<dyn Assigner>),
    Temporal { ttl: Option<Timestamp> },
}

impl Kind {
    pub fn new(spec: &JoinKind, operator: &str) -> Result<Self, DataflowError> {
        Ok(match spec {
            JoinKind::Interval { lower, upper } => Self::Interval {
                lower: *lower,
                upper: *upper,
            },
            JoinKind::Window(w) => {
                let a = assigner(&w.kind);
                if a.merges() {
                    return Err(DataflowError::Join {
                        operator: operator.into(),
                        message: format!(
                            "a window join cannot use `{}` windows, which merge; use tumbling, sliding or cumulative windows, or an interval join",
                            w.kind.kind
                        ),
                    });
                }
                Self::Window(a)
            }
            JoinKind::Temporal { ttl } => Self::Temporal { ttl: ttl.map(ms) },
        })
    }

    /// When each row of `rows` is due (after a restart).
    pub fn due_of(&self, rows: &KeyRows) -> Vec<Timestamp> {
        let left = rows.left.iter().flat_map(|r| self.due(true, r.ts, r.win));
        let right = rows.right.iter().flat_map(|r| self.due(false, r.ts, r.win));
        left.chain(right).collect()
    }

    /// When a row (at `ts`, in window `win`) needs looking at: it can match nothing more
    /// (interval), its window fires (window), every input passed its time (temporal; a right
    /// row also when its ttl has passed).
    fn due(
        &self,
        left: bool,
        ts: Timestamp,
        win: Option<(Timestamp, Timestamp)>,
    ) -> Vec<Timestamp> {
        match self {
            Self::Interval { upper, .. } if left => vec![ts.saturating_add(*upper)],
            Self::Interval { lower, .. } => vec![ts.saturating_sub(*lower)],
            Self::Window(_) => vec![win.map_or(ts, |(_, end)| end - 1)],
            Self::Temporal { ttl: Some(t) } if !left => vec![ts, ts.saturating_add(*t)],
            Self::Temporal { .. } => vec![ts],
        }
    }

    /// Take in one event (not late) of `key`.
    pub fn add(
        &mut self,
        b: &mut Buffers,
        mode: JoinMode,
        key: &[u8],
        left: bool,
        row: Row,
        out: &mut Batch,
    ) {
        let rows_before = b.keys.get(key).map_or(0, |k| k.left.len() + k.right.len());
        // (time, window) of the rows kept, scheduled by `due` (as a restart schedules them).
        let mut kept = Vec::new();
        {
            // Look the key up before inserting it: no allocation for a key already held.
            if !b.keys.contains_key(key) {
                b.keys.insert(key.into(), KeyRows::default());
            }
            let k = b.keys.get_mut(key).expect("inserted above");
            match self {
                Self::Interval { lower, upper } => {
                    if let Some(r) = interval_add(k, (*lower, *upper), mode, key, left, row, out) {
                        kept.push((r.ts, r.win));
                        k.side(left).push(r);
                    }
                }
                Self::Window(a) => {
                    let mut wins = Vec::new();
                    a.assign(key, row.ts, Timestamp::MIN, 0, &mut wins, &mut Vec::new());
                    for w in wins {
                        let r = Row {
                            win: Some((w.start, w.end)),
                            ..row.clone()
                        };
                        kept.push((r.ts, r.win));
                        k.side(left).push(r);
                    }
                }
                Self::Temporal { .. } => {
                    kept.push((row.ts, row.win));
                    if left {
                        k.left.push(row);
                    } else {
                        // Ordered by time; of two versions at one time, the later arrival wins.
                        let at = k.right.partition_point(|r| r.ts <= row.ts);
                        k.right.insert(at, row);
                    }
                }
            }
        }
        for (ts, win) in kept {
            for at in self.due(left, ts, win) {
                b.due_at(at, key);
            }
        }
        b.touched(key, rows_before);
    }

    /// The watermark is `w`: expire, fire and look up what is due before it.
    pub fn advance(&mut self, b: &mut Buffers, mode: JoinMode, w: Timestamp, out: &mut Batch) {
        for key in b.take_due(w) {
            let Some(k) = b.keys.get_mut(&key) else {
                continue;
            };
            let before = k.left.len() + k.right.len();
            match self {
                Self::Interval { lower, upper } => {
                    interval_expire(k, (*lower, *upper), mode, &key, w, out)
                }
                Self::Window(_) => window_fire(k, mode, &key, w, out),
                Self::Temporal { ttl } => temporal_fire(k, *ttl, mode, &key, w, out),
            }
            b.touched(&key, before);
        }
    }
}

/// An interval join's new row: its matches emitted; the row to keep (`None`: a semi join's left
/// that matched is done).
fn interval_add(
    k: &mut KeyRows,
    (lower, upper): (Timestamp, Timestamp),
    mode: JoinMode,
    key: &[u8],
    left: bool,
    mut row: Row,
    out: &mut Batch,
) -> Option<Row> {
    let semi = mode == JoinMode::Semi;
    if left {
        let (from, to) = (row.ts.saturating_add(lower), row.ts.saturating_add(upper));
        for r in k.right.iter_mut().filter(|r| from <= r.ts && r.ts <= to) {
            if semi {
                emit(out, key, row.ts, &row, None, true);
                row.matched = true;
                return None;
            }
            emit(out, key, row.ts.max(r.ts), &row, Some(r), false);
            r.matched = true;
            row.matched = true;
        }
    } else {
        let (from, to) = (row.ts.saturating_sub(upper), row.ts.saturating_sub(lower));
        for l in k.left.iter_mut().filter(|l| from <= l.ts && l.ts <= to) {
            if semi {
                if !l.matched {
                    emit(out, key, l.ts, l, None, true);
                }
            } else {
                emit(out, key, l.ts.max(row.ts), l, Some(&row), false);
            }
            l.matched = true;
        }
    }
    Some(row)
}

/// Drop the rows no future event can match; an unmatched left of an outer join goes out alone.
fn interval_expire(
    k: &mut KeyRows,
    (lower, upper): (Timestamp, Timestamp),
    mode: JoinMode,
    key: &[u8],
    w: Timestamp,
    out: &mut Batch,
) {
    k.left.retain(|l| {
        let keep = l.ts.saturating_add(upper) >= w;
        if !keep && mode == JoinMode::LeftOuter && !l.matched {
            emit(out, key, l.ts, l, None, false);
        }
        keep
    });
    k.right.retain(|r| r.ts.saturating_sub(lower) >= w);
}

/// Fire the key's windows that end at or before `w`.
fn window_fire(k: &mut KeyRows, mode: JoinMode, key: &[u8], w: Timestamp, out: &mut Batch) {
    let mut due: Vec<Win> = k
        .left
        .iter()
        .chain(&k.right)
        .filter_map(|r| r.win)
        .filter(|(_, end)| *end <= w)
        .map(|(start, end)| Win { start, end })
        .collect();
    due.sort_unstable();
    due.dedup();
    for win in due {
        let this = Some((win.start, win.end));
        let rights: Vec<&Row> = k.right.iter().filter(|r| r.win == this).collect();
        for l in k.left.iter().filter(|l| l.win == this) {
            match mode {
                JoinMode::Semi if !rights.is_empty() => emit(out, key, win.end - 1, l, None, true),
                JoinMode::Semi => {}
                JoinMode::LeftOuter if rights.is_empty() => {
                    emit(out, key, win.end - 1, l, None, false)
                }
                _ => {
                    for r in &rights {
                        emit(out, key, win.end - 1, l, Some(r), false);
                    }
                }
            }
        }
    }
    let open = |r: &Row| r.win.is_some_and(|(_, end)| end > w);
    k.left.retain(open);
    k.right.retain(open);
}

/// Look up the left rows whose time every input passed, then drop the versions no later left
/// row can see.
fn temporal_fire(
    k: &mut KeyRows,
    ttl: Option<Timestamp>,
    mode: JoinMode,
    key: &[u8],
    w: Timestamp,
    out: &mut Batch,
) {
    let rights = &k.right;
    k.left.retain(|l| {
        if l.ts >= w {
            return true;
        }
        let at = rights.partition_point(|r| r.ts <= l.ts);
        let version = at
            .checked_sub(1)
            .map(|i| &rights[i])
            .filter(|r| ttl.is_none_or(|t| l.ts.saturating_sub(r.ts) <= t));
        match (mode, version) {
            (JoinMode::Semi, Some(_)) => emit(out, key, l.ts, l, None, true),
            (JoinMode::LeftOuter, None) => emit(out, key, l.ts, l, None, false),
            (_, Some(r)) => emit(out, key, l.ts, l, Some(r), false),
            _ => {}
        }
        false
    });
    // The latest version before `w` stays (later left rows may see it), older ones go, and
    // it goes too once its ttl has passed.
    let before = k.right.partition_point(|r| r.ts < w);
    if before > 1 {
        k.right.drain(..before - 1);
    }
    if let (Some(t), Some(first)) = (ttl, k.right.first())
        && first.ts < w
        && first.ts.saturating_add(t) < w
    {
        k.right.remove(0);
    }
}
