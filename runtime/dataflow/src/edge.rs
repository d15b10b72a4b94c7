//! Edges: how a producer's batches reach the instances of each consumer.

use flowlet_manifest::Pointer;
use flowlet_types::Batch;
use flowlet_types::json::key_bytes;
use tokio::sync::mpsc;

use crate::{Envelope, Message};

/// Key groups: the unit in which keyed state is partitioned (and will move with a Kafka
/// partition). A key's group never changes; instances own contiguous ranges of groups.
pub const KEY_GROUPS: u32 = 128;

/// The key group of `key`.
pub fn key_group(key: &[u8]) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(KEY_GROUPS)) as u32
}

/// The instance (of `parallelism`) that owns `group`.
pub fn instance_of(group: u32, parallelism: usize) -> usize {
    group as usize * parallelism / KEY_GROUPS as usize
}

/// One consumer of a producer's output.
#[derive(Clone)]
pub struct Edge {
    senders: Vec<mpsc::Sender<Envelope>>,
    /// The consumer's input index of producer instance 0.
    first_index: usize,
    /// The consumer's `key-by`: set each event's key and route by it.
    key_by: Option<Pointer>,
    /// Round robin for unkeyed edges into several instances.
    next: usize,
}

impl Edge {
    pub fn new(
        senders: Vec<mpsc::Sender<Envelope>>,
        first_index: usize,
        key_by: Option<Pointer>,
    ) -> Self {
        Self {
            senders,
            first_index,
            key_by,
            next: 0,
        }
    }
}

/// All consumers of one output of one producer instance.
pub struct Outputs {
    edges: Vec<Edge>,
    producer_instance: usize,
}

impl Outputs {
    pub fn new(edges: Vec<Edge>, producer_instance: usize) -> Self {
        Self {
            edges,
            producer_instance,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Split `batch` into the messages for each (edge, instance).
    fn route(&mut self, batch: Batch) -> Vec<(usize, usize, Batch)> {
        let mut out = Vec::new();
        let n = self.edges.len();
        let mut batch = Some(batch);
        for (e, edge) in self.edges.iter_mut().enumerate() {
            let instances = edge.senders.len();
            match &edge.key_by {
                Some(pointer) => {
                    let input = batch.as_ref().expect("batch is kept for keyed edges");
                    let mut parts: Vec<Batch> = (0..instances).map(|_| Batch::new()).collect();
                    for event in input.iter() {
                        let found = pointer.find(event.value()).ok().flatten();
                        let key = found.map(key_bytes).unwrap_or_default();
                        let target = instance_of(key_group(&key), instances);
                        parts[target].push_event_with_key(&event, &key);
                    }
                    out.extend(
                        parts
                            .into_iter()
                            .enumerate()
                            .filter(|(_, b)| !b.is_empty())
                            .map(|(i, b)| (e, i, b)),
                    );
                }
                None => {
                    let target = edge.next % instances;
                    edge.next = edge.next.wrapping_add(1);
                    let b = if e + 1 == n {
                        batch.take().expect("the last edge takes the batch")
                    } else {
                        batch
                            .as_ref()
                            .expect("batch is kept until the last edge")
                            .clone()
                    };
                    out.push((e, target, b));
                }
            }
        }
        out
    }

    fn envelope(&self, edge: usize, message: Message) -> Envelope {
        Envelope {
            input: self.edges[edge].first_index + self.producer_instance,
            message,
        }
    }

    /// Send a batch from a blocking thread; waits while a consumer is full (backpressure).
    /// Returns false when every consumer is gone (the topology is stopping).
    pub fn send_blocking(&mut self, batch: Batch) -> bool {
        let mut delivered = false;
        for (e, i, b) in self.route(batch) {
            let env = self.envelope(e, Message::Batch(b));
            delivered |= self.edges[e].senders[i].blocking_send(env).is_ok();
        }
        delivered || self.edges.is_empty()
    }

    /// Send a batch from an async task.
    pub async fn send(&mut self, batch: Batch) -> bool {
        let mut delivered = false;
        for (e, i, b) in self.route(batch) {
            let env = self.envelope(e, Message::Batch(b));
            delivered |= self.edges[e].senders[i].send(env).await.is_ok();
        }
        delivered || self.edges.is_empty()
    }

    /// A message every consumer instance gets (watermarks, end of input).
    fn broadcast_all(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.edges
            .iter()
            .enumerate()
            .flat_map(|(e, edge)| (0..edge.senders.len()).map(move |i| (e, i)))
    }

    pub fn broadcast_blocking(&self, message: Message) {
        for (e, i) in self.broadcast_all() {
            let _ = self.edges[e].senders[i].blocking_send(self.envelope(e, message.clone()));
        }
    }

    pub async fn broadcast(&self, message: Message) {
        let targets: Vec<_> = self.broadcast_all().collect();
        for (e, i) in targets {
            let _ = self.edges[e].senders[i]
                .send(self.envelope(e, message.clone()))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_spread_and_are_stable() {
        // Pinned: state written under a key group must find it again after an upgrade.
        assert_eq!(key_group(b"alice"), key_group(b"alice"));
        let mut per_instance = [0usize; 4];
        for i in 0..10_000 {
            per_instance[instance_of(key_group(format!("user-{i}").as_bytes()), 4)] += 1;
        }
        for n in per_instance {
            assert!((2000..3000).contains(&n), "{per_instance:?}");
        }
        assert_eq!(instance_of(KEY_GROUPS - 1, 3), 2);
        assert_eq!(instance_of(0, 3), 0);
    }

    #[test]
    fn keyed_edges_set_keys_and_keep_each_key_on_one_instance() {
        let (tx0, mut rx0) = mpsc::channel(16);
        let (tx1, mut rx1) = mpsc::channel(16);
        let edge = Edge::new(vec![tx0, tx1], 3, Some(Pointer::parse("/u").unwrap()));
        let mut out = Outputs::new(vec![edge], 1);
        let mut b = Batch::new();
        for i in 0..100 {
            b.push(
                b"",
                format!(r#"{{"u":"k{}","i":{i}}}"#, i % 10).as_bytes(),
                i,
            );
        }
        assert!(out.send_blocking(b));
        let mut seen = std::collections::BTreeMap::new();
        let mut total = 0;
        for (instance, rx) in [(0, &mut rx0), (1, &mut rx1)] {
            while let Ok(env) = rx.try_recv() {
                assert_eq!(env.input, 4);
                let Message::Batch(b) = env.message else {
                    panic!()
                };
                for e in b.iter() {
                    total += 1;
                    let key = e.key().unwrap().to_vec();
                    assert_eq!(*seen.entry(key).or_insert(instance), instance);
                }
            }
        }
        assert_eq!(total, 100);
        assert_eq!(seen.len(), 10);
    }
}
