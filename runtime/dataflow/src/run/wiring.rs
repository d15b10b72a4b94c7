//! The channels of a run: one receiver per operator instance and per sink, and for every
//! (producer, port) the edges to whoever reads it, at which input index, keyed how.

use std::collections::BTreeMap;

use flowlet_manifest::{Manifest, Port};
use tokio::sync::mpsc;

use crate::{Envelope, edge};

/// Capacity of each channel, in messages (batches). Small: it bounds memory and latency.
pub const CHANNEL_CAPACITY: usize = 8;

pub(super) struct Wiring<'m> {
    /// Per operator, one receiver per instance.
    pub op_rx: BTreeMap<&'m str, Vec<mpsc::Receiver<Envelope>>>,
    pub sink_rx: BTreeMap<&'m str, mpsc::Receiver<Envelope>>,
    /// Per consumer, for each producer instance feeding it (its inputs, by index), which of
    /// its manifest inputs that is (the index an operator's `process` is told).
    pub from: BTreeMap<&'m str, std::sync::Arc<[u32]>>,
    /// Per operator, a handle on each instance's channel that does not keep it open (clock
    /// ticks).
    pub weak: BTreeMap<&'m str, Vec<mpsc::WeakSender<Envelope>>>,
    /// The edges out of every (producer, port). Dropped once every producer has its own
    /// handles, so that channels close when their producers finish.
    pub outputs: BTreeMap<(&'m str, Port), Vec<edge::Edge>>,
}

impl<'m> Wiring<'m> {
    pub fn new(manifest: &'m Manifest) -> Self {
        let mut op_rx = BTreeMap::new();
        let mut op_tx = BTreeMap::new();
        for (name, op) in &manifest.operators {
            let (tx, rx): (Vec<_>, Vec<_>) = (0..op.parallelism)
                .map(|_| mpsc::channel(CHANNEL_CAPACITY))
                .unzip();
            op_tx.insert(name.as_str(), tx);
            op_rx.insert(name.as_str(), rx);
        }
        let mut sink_rx = BTreeMap::new();
        let mut sink_tx = BTreeMap::new();
        for name in manifest.sinks.keys() {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            sink_tx.insert(name.as_str(), vec![tx]);
            sink_rx.insert(name.as_str(), rx);
        }
        let (outputs, from) = edges(manifest, &op_tx, &sink_tx);
        let weak = op_tx
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|t| t.downgrade()).collect()))
            .collect();
        Self {
            op_rx,
            sink_rx,
            from,
            weak,
            outputs,
        }
    }

    /// The outputs of instance `index` of `producer` on `port`.
    pub fn outputs(&self, producer: &str, port: Port, index: usize) -> edge::Outputs {
        let edges = self
            .outputs
            .get(&(producer, port.clone()))
            .cloned()
            .unwrap_or_default();
        edge::Outputs::new(edges, index)
    }
}

type Edges<'m> = BTreeMap<(&'m str, Port), Vec<edge::Edge>>;

/// The edges out of every (producer, port), and for each consumer the manifest input each
/// producer instance feeding it is.
fn edges<'m>(
    manifest: &'m Manifest,
    op_tx: &BTreeMap<&'m str, Vec<mpsc::Sender<Envelope>>>,
    sink_tx: &BTreeMap<&'m str, Vec<mpsc::Sender<Envelope>>>,
) -> (Edges<'m>, BTreeMap<&'m str, std::sync::Arc<[u32]>>) {
    let mut outputs: Edges<'m> = BTreeMap::new();
    let mut upstream: BTreeMap<&'m str, std::sync::Arc<[u32]>> = BTreeMap::new();
    let consumers = manifest
        .operators
        .iter()
        .map(|(n, o)| (n.as_str(), &o.inputs, Some(o), &op_tx[n.as_str()]))
        .chain(
            manifest
                .sinks
                .iter()
                .map(|(n, s)| (n.as_str(), &s.inputs, None, &sink_tx[n.as_str()])),
        );
    for (name, inputs, op, senders) in consumers {
        let mut from = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let producer_instances = manifest
                .operators
                .get(&input.node)
                .map_or(1, |o| o.parallelism as usize);
            let first_index = from.len();
            from.extend(std::iter::repeat_n(i as u32, producer_instances));
            outputs
                .entry((input.node.as_str(), input.port.clone()))
                .or_default()
                .push(edge::Edge::new(
                    senders.clone(),
                    first_index,
                    op.and_then(|o| key_of(o, input)),
                ));
        }
        upstream.insert(name, from.into());
    }
    (outputs, upstream)
}

/// What an operator's input is keyed by: a join side's own key, else the operator's `key-by`.
fn key_of(
    op: &flowlet_manifest::Operator,
    input: &flowlet_manifest::Input,
) -> Option<flowlet_manifest::Pointer> {
    let side = op.join.as_ref().and_then(|j| match j.side_of(input)? {
        true => j.left_key.clone(),
        false => j.right_key.clone(),
    });
    side.or_else(|| op.key_by.clone())
}
