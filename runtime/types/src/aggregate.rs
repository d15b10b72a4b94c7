//! What crosses the boundary of a window aggregate, column-wise like a [`Batch`](crate::Batch):
//! packed accumulators for `add`, fired windows for `finish` (see `wit/worlds.wit`). Shared by
//! the host, its built-ins and the SDK.

use crate::Timestamp;

/// The part `[ends[i-1], ends[i])` of `bytes` (with `ends[-1] = 0`); `None` when out of range.
fn span<'a>(bytes: &'a [u8], ends: &[u32], i: usize) -> Option<&'a [u8]> {
    let end = *ends.get(i)? as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    bytes.get(start..end)
}

/// Offsets that increase and end at the end of the buffer.
fn well_formed(bytes: &[u8], ends: &[u32]) -> bool {
    ends.windows(2).all(|w| w[0] <= w[1]) && ends.last().map_or(0, |e| *e as usize) == bytes.len()
}

/// Accumulators packed into one buffer: accumulator `i` is `bytes[ends[i-1]..ends[i]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accumulators {
    pub bytes: Vec<u8>,
    pub ends: Vec<u32>,
}

impl Accumulators {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, acc: &[u8]) {
        self.bytes.extend_from_slice(acc);
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        span(&self.bytes, &self.ends, i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// Whether the offsets increase and end at the buffer's end.
    pub fn is_well_formed(&self) -> bool {
        well_formed(&self.bytes, &self.ends)
    }
}

/// Windows that fired: window `i` is `[starts[i], ends[i])` with its key, accumulator and the
/// number of times it fired before.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FiredWindows {
    pub starts: Vec<Timestamp>,
    pub ends: Vec<Timestamp>,
    pub keys: Vec<u8>,
    pub key_ends: Vec<u32>,
    pub accumulators: Vec<u8>,
    pub accumulator_ends: Vec<u32>,
    pub firings: Vec<u32>,
}

/// One fired window, borrowed from [`FiredWindows`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FiredRef<'a> {
    pub start: Timestamp,
    pub end: Timestamp,
    pub key: &'a [u8],
    pub accumulator: &'a [u8],
    pub firing: u32,
}

impl FiredWindows {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn push(&mut self, start: Timestamp, end: Timestamp, key: &[u8], acc: &[u8], firing: u32) {
        self.starts.push(start);
        self.ends.push(end);
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.accumulators.extend_from_slice(acc);
        self.accumulator_ends.push(self.accumulators.len() as u32);
        self.firings.push(firing);
    }

    /// Window `i`; panics when out of range or malformed (check [`Self::is_well_formed`]).
    pub fn get(&self, i: usize) -> FiredRef<'_> {
        FiredRef {
            start: self.starts[i],
            end: self.ends[i],
            key: span(&self.keys, &self.key_ends, i).expect("a well-formed key"),
            accumulator: span(&self.accumulators, &self.accumulator_ends, i)
                .expect("a well-formed accumulator"),
            firing: self.firings[i],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = FiredRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every column has one entry per window and the offsets are well formed (what a guest
    /// checks before reading fired windows it was handed).
    pub fn is_well_formed(&self) -> bool {
        let n = self.starts.len();
        [
            self.ends.len(),
            self.key_ends.len(),
            self.accumulator_ends.len(),
            self.firings.len(),
        ]
        .iter()
        .all(|l| *l == n)
            && well_formed(&self.keys, &self.key_ends)
            && well_formed(&self.accumulators, &self.accumulator_ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trip_and_malformed_offsets() {
        let mut a = Accumulators::default();
        a.push(b"ab");
        a.push(b"");
        a.push(b"cde");
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![&b"ab"[..], b"", b"cde"]);
        assert!(a.is_well_formed());
        a.ends[1] = 9;
        assert!(!a.is_well_formed());

        let mut f = FiredWindows::default();
        f.push(0, 10, b"k", b"acc", 0);
        f.push(10, 20, b"", b"x", 2);
        assert!(f.is_well_formed());
        assert_eq!(f.get(1).firing, 2);
        assert_eq!(f.get(0).key, b"k");
        f.firings.pop();
        assert!(!f.is_well_formed());
    }
}
