//! Session windows: `[t, t + gap)` per event, merged with every session of the key it
//! overlaps (their accumulators are merged with the aggregate's `merge`).

use std::collections::BTreeMap;

use hashbrown::HashMap;

use flowlet_types::Timestamp;

use flowlet_manifest::fields::WindowTime;

use super::assign::Win;
use super::assign::{Absorbed, Assigner, WindowKind, ms};

/// Per key, events closer than `gap` to each other form one window; an event that bridges two
/// sessions merges them.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Session {
    pub gap: WindowTime,
}

flowlet_manifest::spec!(Session);

pub(crate) const KIND: WindowKind = WindowKind {
    kind: flowlet_manifest::Kind::of::<Session>("session"),
    assigner: |spec| {
        let s: &Session = spec.downcast_ref().expect("a session window");
        Box::new(Sessions::new(ms(s.gap.0)))
    },
};

/// Each key's sessions (start → end): disjoint and sorted.
pub(crate) struct Sessions {
    gap: Timestamp,
    sessions: HashMap<Box<[u8]>, BTreeMap<Timestamp, Timestamp>>,
}

impl Sessions {
    pub fn new(gap: Timestamp) -> Self {
        Self {
            gap,
            sessions: HashMap::new(),
        }
    }
}

impl Assigner for Sessions {
    /// The event's own session, merged with the sessions it bridges; pushed as `[ts, ts)` and
    /// settled once the batch is placed (a later event may merge it further).
    fn assign(
        &mut self,
        key: &[u8],
        ts: Timestamp,
        now: Timestamp,
        lateness: Timestamp,
        out: &mut Vec<Win>,
        absorbed: &mut Vec<Absorbed>,
    ) -> bool {
        let (mut start, mut end) = (ts, ts.saturating_add(self.gap));
        let sessions = self.sessions.entry(key.into()).or_default();
        // Sessions are disjoint and sorted, so the ones overlapping [start, end) are the last
        // ones starting before `end` whose end is after `start`.
        let overlapping: Vec<(Timestamp, Timestamp)> = sessions
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in &overlapping {
            start = start.min(*s);
            end = end.max(*e);
        }
        if end.saturating_add(lateness) <= now {
            if sessions.is_empty() {
                self.sessions.remove(key);
            }
            return false;
        }
        for (s, e) in overlapping {
            if (s, e) != (start, end) {
                sessions.remove(&s);
                absorbed.push((key.into(), Win { start: s, end: e }));
            }
        }
        sessions.insert(start, end);
        out.push(Win { start: ts, end: ts });
        true
    }

    /// The key's session that contains `win.start`.
    fn settle(&self, key: &[u8], win: Win) -> Win {
        let (start, end) = self.sessions[key]
            .range(..=win.start)
            .next_back()
            .map(|(s, e)| (*s, *e))
            .expect("the event's session exists");
        Win { start, end }
    }

    fn loaded(&mut self, key: &[u8], win: Win) {
        self.sessions
            .entry(key.into())
            .or_default()
            .insert(win.start, win.end);
    }

    fn expired(&mut self, key: &[u8], win: Win) {
        if let Some(s) = self.sessions.get_mut(key) {
            s.remove(&win.start);
            if s.is_empty() {
                self.sessions.remove(key);
            }
        }
    }

    fn merges(&self) -> bool {
        true
    }

    fn similar_windows(&self) -> bool {
        false
    }
}
