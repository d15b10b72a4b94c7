//! A map from key bytes to values whose keys live in one arena: no allocation per key, and the
//! hash table holds 4-byte indexes. Window contents are maps of (often) a million short keys
//! that are created together and dropped together; this is what keeps a window's key cheap.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

pub(crate) struct KeyMap<V> {
    table: HashTable<u32>,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    /// `None`: removed (its key bytes stay in the arena until the map is dropped).
    values: Vec<Option<V>>,
    live: usize,
    hasher: DefaultHashBuilder,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            keys: Vec::new(),
            key_ends: Vec::new(),
            values: Vec::new(),
            live: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

fn key_at<'a>(keys: &'a [u8], ends: &[u32], i: u32) -> &'a [u8] {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &keys[start..ends[i] as usize]
}

impl<V> KeyMap<V> {
    /// A map sized for `keys` keys of about `key_bytes` bytes each.
    pub fn with_capacity(keys: usize, key_bytes: usize) -> Self {
        Self {
            table: HashTable::with_capacity(keys),
            keys: Vec::with_capacity(keys * key_bytes),
            key_ends: Vec::with_capacity(keys),
            values: Vec::with_capacity(keys),
            ..Self::default()
        }
    }

    /// Bytes of key per key, on average.
    pub fn key_bytes(&self) -> usize {
        self.keys.len() / self.values.len().max(1)
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The index of `key`'s value, valid until the key is removed.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| key_at(&self.keys, &self.key_ends, i) == key)
            .copied()
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.find(key)
            .and_then(|i| self.values[i as usize].as_ref())
    }

    pub fn at(&self, i: u32) -> Option<&V> {
        self.values.get(i as usize)?.as_ref()
    }

    pub fn at_mut(&mut self, i: u32) -> Option<&mut V> {
        self.values.get_mut(i as usize)?.as_mut()
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let i = self.find(key)?;
        self.values[i as usize].as_mut()
    }

    /// Insert or replace.
    pub fn insert(&mut self, key: &[u8], value: V) {
        if let Some(i) = self.find(key) {
            self.values[i as usize] = Some(value);
            return;
        }
        let i = self.values.len() as u32;
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.values.push(Some(value));
        self.live += 1;
        let hash = self.hasher.hash_one(key);
        let (keys, ends, hasher) = (&self.keys, &self.key_ends, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(key_at(keys, ends, j)));
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let (keys, ends) = (&self.keys, &self.key_ends);
        let entry = self
            .table
            .find_entry(hash, |&i| key_at(keys, ends, i) == key)
            .ok()?;
        let (i, _) = entry.remove();
        self.live -= 1;
        self.values[i as usize].take()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> + '_ {
        self.values.iter().enumerate().filter_map(|(i, v)| {
            v.as_ref()
                .map(|v| (key_at(&self.keys, &self.key_ends, i as u32), v))
        })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut V)> + '_ {
        let (keys, ends) = (&self.keys, &self.key_ends);
        self.values
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, v)| v.as_mut().map(|v| (key_at(keys, ends, i as u32), v)))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values.iter().flatten()
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_iterate() {
        let mut m = KeyMap::default();
        for i in 0..1000u32 {
            m.insert(format!("k{i}").as_bytes(), i);
        }
        m.insert(b"k7", 70);
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(b"k7"), Some(&70));
        assert_eq!(m.remove(b"k7"), Some(70));
        assert_eq!(m.remove(b"k7"), None);
        assert_eq!(m.get(b"k7"), None);
        m.insert(b"k7", 7);
        *m.get_mut(b"k8").unwrap() += 1;
        assert_eq!(m.get(b"k8"), Some(&9));
        assert_eq!(m.len(), 1000);
        assert_eq!(m.iter().count(), 1000);
        assert_eq!(
            m.values().map(|v| *v as u64).sum::<u64>(),
            (0..1000).sum::<u64>() + 1
        );
        for i in 0..1000u32 {
            m.remove(format!("k{i}").as_bytes());
        }
        assert!(m.is_empty());
    }
}
