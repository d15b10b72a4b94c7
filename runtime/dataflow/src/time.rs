//! An operator's watermark: the minimum over its inputs, leaving out idle and finished ones.

use flowlet_types::Timestamp;

use crate::Message;

/// What a control message changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Nothing,
    /// The operator's watermark advanced to this.
    Watermark(Timestamp),
    /// Every open input is idle: tell the consumers.
    Idle,
}

pub(crate) struct Watermarks {
    marks: Vec<Timestamp>,
    idle: Vec<bool>,
    ended: Vec<bool>,
    open: usize,
    current: Timestamp,
    durable: Timestamp,
    idle_sent: bool,
}

impl Watermarks {
    pub fn new(inputs: usize) -> Self {
        Self {
            marks: vec![Timestamp::MIN; inputs],
            idle: vec![false; inputs],
            ended: vec![false; inputs],
            open: inputs,
            current: Timestamp::MIN,
            durable: Timestamp::MIN,
            idle_sent: false,
        }
    }

    /// Start from a checkpointed watermark.
    pub fn restore(&mut self, w: Timestamp) {
        self.current = self.current.max(w);
        self.durable = self.current;
    }

    /// The watermark a checkpoint saves: the current one, unless it is the end of input
    /// (`MAX`), which a resumed run must not inherit (more input may come).
    pub fn durable(&self) -> Timestamp {
        self.durable
    }

    pub fn current(&self) -> Timestamp {
        self.current
    }

    pub fn open(&self) -> usize {
        self.open
    }

    /// A batch arrived on `input`: it is active again.
    pub fn activity(&mut self, input: usize) -> Change {
        if self.idle.get(input).copied().unwrap_or(false) {
            self.idle[input] = false;
            self.idle_sent = false;
            return self.recompute();
        }
        Change::Nothing
    }

    /// Apply a watermark, idle or end message from `input`.
    pub fn update(&mut self, input: usize, message: &Message) -> Change {
        let Some(slot) = self.marks.get_mut(input) else {
            return Change::Nothing;
        };
        match message {
            Message::Watermark(w) => {
                *slot = (*slot).max(*w);
                self.idle[input] = false;
                self.idle_sent = false;
            }
            Message::Idle => self.idle[input] = true,
            Message::End => {
                if !std::mem::replace(&mut self.ended[input], true) {
                    self.open -= 1;
                }
            }
            Message::Batch(_) => return self.activity(input),
            Message::Tick | Message::Barrier(_) => return Change::Nothing,
        }
        self.recompute()
    }

    fn recompute(&mut self) -> Change {
        let active = (0..self.marks.len()).filter(|&i| !self.ended[i] && !self.idle[i]);
        let min = active.map(|i| self.marks[i]).min();
        match min {
            Some(m) if m > self.current => {
                self.current = m;
                if m < Timestamp::MAX {
                    self.durable = m;
                }
                Change::Watermark(m)
            }
            Some(_) => Change::Nothing,
            None if self.open > 0 && !self.idle_sent => {
                self.idle_sent = true;
                Change::Idle
            }
            None => Change::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_inputs() {
        let mut w = Watermarks::new(2);
        assert_eq!(w.update(0, &Message::Watermark(10)), Change::Nothing);
        assert_eq!(w.update(1, &Message::Watermark(5)), Change::Watermark(5));
        // Input 1 goes idle: input 0 alone decides.
        assert_eq!(w.update(1, &Message::Idle), Change::Watermark(10));
        assert_eq!(w.update(0, &Message::Idle), Change::Idle);
        assert_eq!(w.update(0, &Message::Watermark(20)), Change::Watermark(20));
        // Input 1 is back with an old watermark: the operator's does not go back.
        assert_eq!(w.update(1, &Message::Watermark(7)), Change::Nothing);
        assert_eq!(w.current(), 20);
        assert_eq!(w.update(1, &Message::End), Change::Nothing);
        assert_eq!(w.update(0, &Message::End), Change::Nothing);
        assert_eq!(w.open(), 0);
    }
}
