//! The `nexmark` source against the reference results of docs/NEXMARK.md: through the
//! dedicated query plugins (as Wasm and linked natively, in the topologies `flowlet bench
//! nexmark` runs) and through the general-purpose filter, map and aggregate plugins.

use flowlet_bench::nexmark::{Query, operators};
use flowlet_tests::run_text;

const EVENTS: u64 = 1_000_000;

/// Keeps the bids (the general-purpose plugins do not know Nexmark events).
const BIDS: &str = "
  bids:
    plugin: {plugins}/filter.wasm
    config: {field: /bid, op: exists}
    inputs: [events]";

/// Run `ops` (the last operator named `q`) over the source, and return the outputs and the sum
/// of `field` over them (`None`: the number of outputs).
async fn run_query(ops: &str, field: Option<&str>) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let checksum = field.map_or(String::new(), |f| format!(", checksum: {f}"));
    let text = format!(
        r#"
version: 1
name: nexmark
batch-size: 1024
sources:
  events: {{kind: nexmark, events: {EVENTS}}}
operators:
{ops}
sinks:
  out: {{kind: "null", inputs: [q]{checksum}}}
"#
    );
    let report = run_text(dir.path(), &text).await.unwrap();
    let out = &report.nodes["out"];
    (
        out.events_in,
        if field.is_some() {
            out.checksum
        } else {
            out.events_in
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_plugins_give_the_reference_results_as_wasm_and_native() {
    let plugins = flowlet_tests::plugins();
    for native in [false, true] {
        let (queries, windows) = if native {
            (
                "builtin:nexmark-queries".to_string(),
                "builtin:nexmark-windows".to_string(),
            )
        } else {
            (
                plugins.join("nexmark-queries.wasm").display().to_string(),
                plugins.join("nexmark-windows.wasm").display().to_string(),
            )
        };
        for (query, expected) in [
            (Query::Q0, (1_000_000, 1_000_000)),
            (Query::Q1, (920_000, 4_172_036_428_692)),
            (Query::Q2, (7_312, 36_677_481_512)),
            (Query::Q5, (54, 5_431)),
            (Query::Q7, (10, 99_999_328)),
            (Query::Wc, (60_778, 920_000)),
        ] {
            let (ops, field) = operators(query, &queries, &windows, "");
            assert_eq!(
                run_query(&ops, field).await,
                expected,
                "{query:?}, native: {native}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn q1_through_the_map_plugin() {
    let ops = BIDS.to_owned()
        + r#"
  q:
    plugin: {plugins}/map.wasm
    config:
      fields:
        auction: /bid/auction
        bidder: /bid/bidder
        price: {from: /bid/price, mul: 0.908}
        date_time: /bid/date_time
    inputs: [bids]"#;
    assert_eq!(
        run_query(&ops, Some("/price")).await,
        (920_000, 4_172_036_428_692)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn q7_and_wc_through_the_aggregate_plugin() {
    let q7 = BIDS.to_owned()
        + r#"
  q:
    plugin: {plugins}/aggregate.wasm
    config: {function: max, field: /bid/price}
    window: {kind: tumbling, size: 10s}
    inputs: [bids]"#;
    assert_eq!(run_query(&q7, Some("/max")).await, (10, 99_999_328));
    let wc = BIDS.to_owned()
        + r#"
  q:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /bid/auction
    window: {kind: tumbling, size: 10s}
    inputs: [bids]"#;
    assert_eq!(run_query(&wc, Some("/count")).await, (60_778, 920_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn q5_through_the_aggregate_plugin_in_two_stages() {
    // Bids per auction in sliding windows, then the largest count per window: the first
    // stage's results carry the time `end - 1` of their window, so a 2 s tumbling window over
    // them holds exactly the results of one sliding window.
    let ops = BIDS.to_owned()
        + r#"
  counts:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /bid/auction
    window: {kind: sliding, size: 10s, slide: 2s}
    inputs: [bids]
  q:
    plugin: {plugins}/aggregate.wasm
    config: {function: max, field: /count}
    window: {kind: tumbling, size: 2s}
    inputs: [counts]"#;
    assert_eq!(run_query(&ops, Some("/max")).await, (54, 5_431));
}

/// The join queries q3, q8 and q9 of docs/NEXMARK.md computed by a plain loop over the
/// generator's definition (not the `nexmark` source): (outputs, checksum) each.
fn join_queries_by_hand(events: u64) -> [(u64, u64); 3] {
    use std::collections::{BTreeMap, BTreeSet};
    let (mut or_id, mut person_window) = (BTreeSet::new(), BTreeMap::new());
    let mut q3 = (0, 0);
    let mut q8 = BTreeSet::new();
    // auction id → (date_time, expires, reserve, best valid price)
    let mut auctions: BTreeMap<u64, (i64, i64, u64, u64)> = BTreeMap::new();
    for n in 0..events {
        let r = flowlet_types::splitmix64(n);
        let (epoch, off) = (n / 50, n % 50);
        let ts = 1_436_918_400_000 + (n / 10) as i64;
        let window = ts - ts % 10_000;
        if off == 0 {
            let id = 1000 + epoch;
            if matches!((r >> 16) % 5, 0 | 1) {
                or_id.insert(id); // STATES[0..2] = ID, OR
            }
            person_window.insert(id, window);
        } else if off <= 3 {
            let id = 1000 + 3 * epoch + (off - 1);
            let seller = 1000 + epoch;
            if 10 + (r >> 20) % 5 == 10 && or_id.contains(&seller) {
                q3 = (q3.0 + 1, q3.1 + id);
            }
            if person_window.get(&seller) == Some(&window) {
                q8.insert((seller, window));
            }
            auctions.insert(id, (ts, ts + 10_000, 1100 + (r >> 10) % 1000, 0));
        } else {
            let auction = 1000 + 3 * epoch - (3 * epoch).min(r % 100);
            let price = 100 + (r >> 16) % 10_000_000;
            if let Some(a) = auctions.get_mut(&auction)
                && a.0 <= ts
                && ts < a.1
                && price >= a.2
            {
                a.3 = a.3.max(price);
            }
        }
    }
    let winners: Vec<u64> = auctions.values().map(|a| a.3).filter(|p| *p > 0).collect();
    [
        q3,
        (q8.len() as u64, q8.iter().map(|(p, _)| p).sum()),
        (winners.len() as u64, winners.iter().sum()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_join_queries_match_a_plain_loop_and_the_reference_as_wasm_and_native() {
    let by_hand = join_queries_by_hand(EVENTS);
    let reference = [
        (4_777, 148_706_686),
        (20_000, 219_990_000),
        (59_993, 560_454_271_189),
    ];
    assert_eq!(
        by_hand, reference,
        "the plain loop disagrees with docs/NEXMARK.md"
    );
    let plugins = flowlet_tests::plugins();
    let wasm = |p: &str| plugins.join(format!("{p}.wasm")).display().to_string();
    let winning = wasm("nexmark-winning-bids");
    for native in [false, true] {
        let (queries, windows) = if native {
            (
                "builtin:nexmark-queries".to_string(),
                "builtin:nexmark-windows".to_string(),
            )
        } else {
            (wasm("nexmark-queries"), wasm("nexmark-windows"))
        };
        for (query, expected) in [Query::Q3, Query::Q8, Query::Q9].into_iter().zip(by_hand) {
            let (ops, field) = operators(query, &queries, &windows, &winning);
            assert_eq!(
                run_query(&ops, field).await,
                expected,
                "{query:?}, native: {native}"
            );
        }
    }
}
