//! The `nexmark` source against the reference results of docs/NEXMARK.md, through Wasm
//! operators (the shipped filter, map and aggregate plugins). The dedicated query plugins
//! (q2, q5) and the benchmark command are the Nexmark issue's remaining work.

use flowlet_tests::{json_lines, run_text};

const EVENTS: u64 = 1_000_000;

async fn run(ops: &str, sink_input: &str) -> (tempfile::TempDir, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
version: 1
name: nexmark
batch-size: 1024
sources:
  events: {{kind: nexmark, events: {EVENTS}}}
operators:
  bids:
    plugin: {{plugins}}/filter.wasm
    config: {{field: /bid, op: exists}}
    inputs: [events]
{ops}
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [{sink_input}]}}
"#
    );
    run_text(dir.path(), &text).await.unwrap();
    let out = json_lines(&dir.path().join("out.jsonl"));
    (dir, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn q0_passes_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
version: 1
name: q0
sources:
  events: {{kind: nexmark, events: {EVENTS}}}
operators:
  all:
    plugin: {{plugins}}/filter.wasm
    config: {{field: "", op: exists}}
    inputs: [events]
sinks:
  out: {{kind: "null", inputs: [all]}}
"#
    );
    let report = run_text(dir.path(), &text).await.unwrap();
    assert_eq!(report.nodes["out"].events_in, 1_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn q1_converts_bid_prices() {
    let (_dir, out) = run(
        r#"
  q1:
    plugin: {plugins}/map.wasm
    config:
      fields:
        auction: /bid/auction
        bidder: /bid/bidder
        price: {from: /bid/price, mul: 0.908}
        date_time: /bid/date_time
    inputs: [bids]"#,
        "q1",
    )
    .await;
    assert_eq!(out.len(), 920_000);
    let sum: u64 = out
        .iter()
        .map(|v| v["price"].as_f64().unwrap().floor() as u64)
        .sum();
    assert_eq!(sum, 4_172_036_428_692);
}

#[tokio::test(flavor = "multi_thread")]
async fn q7_finds_the_highest_bid_per_window() {
    let (_dir, out) = run(
        r#"
  q7:
    plugin: {plugins}/aggregate.wasm
    config: {function: max, field: /bid/price}
    window: {kind: tumbling, size: 10s}
    inputs: [bids]"#,
        "q7",
    )
    .await;
    assert_eq!(out.len(), 10);
    let sum: u64 = out.iter().map(|v| v["max"].as_f64().unwrap() as u64).sum();
    assert_eq!(sum, 99_999_328);
}

#[tokio::test(flavor = "multi_thread")]
async fn wc_counts_bids_per_auction_and_window() {
    let (_dir, out) = run(
        r#"
  wc:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /bid/auction
    window: {kind: tumbling, size: 10s}
    inputs: [bids]"#,
        "wc",
    )
    .await;
    assert_eq!(out.len(), 60_778);
    let sum: u64 = out.iter().map(|v| v["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, 920_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn q5_finds_the_hottest_auction_of_each_sliding_window() {
    // Bids per auction in sliding windows, then the largest count per window: the first
    // stage's results carry the time `end - 1` of their window, so a 2 s tumbling window over
    // them holds exactly the results of one sliding window.
    let (_dir, out) = run(
        r#"
  counts:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /bid/auction
    window: {kind: sliding, size: 10s, slide: 2s}
    inputs: [bids]
  hottest:
    plugin: {plugins}/aggregate.wasm
    config: {function: max, field: /count}
    window: {kind: tumbling, size: 2s}
    inputs: [counts]"#,
        "hottest",
    )
    .await;
    assert_eq!(out.len(), 54);
    let sum: u64 = out.iter().map(|v| v["max"].as_f64().unwrap() as u64).sum();
    assert_eq!(sum, 5_431);
}

/// q0, q1 and q2 through the dedicated Nexmark plugin, as Wasm and linked natively.
#[tokio::test(flavor = "multi_thread")]
async fn the_nexmark_query_plugin_gives_the_reference_results_as_wasm_and_native() {
    for plugin in ["{plugins}/nexmark-queries.wasm", "builtin:nexmark-queries"] {
        for (query, outputs, field, checksum) in [
            ("q0", 1_000_000, "", 1_000_000u64),
            ("q1", 920_000, "/price", 4_172_036_428_692),
            ("q2", 7_312, "/price", 36_677_481_512),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                r#"
version: 1
name: {query}
batch-size: 1024
sources:
  events: {{kind: nexmark, events: {EVENTS}}}
operators:
  query:
    plugin: {plugin}
    config: {{query: {query}}}
    inputs: [events]
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [query]}}
"#
            );
            run_text(dir.path(), &text).await.unwrap();
            let out = json_lines(&dir.path().join("out.jsonl"));
            assert_eq!(out.len(), outputs, "{plugin} {query}");
            let sum: u64 = if field.is_empty() {
                out.len() as u64
            } else {
                out.iter()
                    .map(|v| v.pointer(field).unwrap().as_f64().unwrap().floor() as u64)
                    .sum()
            };
            assert_eq!(sum, checksum, "{plugin} {query}");
        }
    }
}

/// q5, q7 and wc through the dedicated Nexmark window plugin, as Wasm and linked natively.
#[tokio::test(flavor = "multi_thread")]
async fn the_nexmark_window_plugin_gives_the_reference_results_as_wasm_and_native() {
    for plugin in ["{plugins}/nexmark-windows.wasm", "builtin:nexmark-windows"] {
        let queries = [
            (
                format!(
                    "  q:\n    plugin: {plugin}\n    config: {{query: wc}}\n    key-by: /bid/auction\n    window: {{kind: tumbling, size: 10s}}\n    inputs: [events]"
                ),
                60_778,
                "/count",
                920_000u64,
            ),
            (
                format!(
                    "  q:\n    plugin: {plugin}\n    config: {{query: q7}}\n    window: {{kind: tumbling, size: 10s}}\n    inputs: [events]"
                ),
                10,
                "/price",
                99_999_328,
            ),
            (
                format!(
                    "  counts:\n    plugin: {plugin}\n    config: {{query: q5-count}}\n    key-by: /bid/auction\n    window: {{kind: sliding, size: 10s, slide: 2s}}\n    inputs: [events]\n  q:\n    plugin: {plugin}\n    config: {{query: q5-max}}\n    window: {{kind: tumbling, size: 2s}}\n    inputs: [counts]"
                ),
                54,
                "/count",
                5_431,
            ),
        ];
        for (ops, outputs, field, checksum) in queries {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                r#"
version: 1
name: nexmark-windows
batch-size: 1024
sources:
  events: {{kind: nexmark, events: {EVENTS}}}
operators:
{ops}
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [q]}}
"#
            );
            run_text(dir.path(), &text).await.unwrap();
            let out = json_lines(&dir.path().join("out.jsonl"));
            assert_eq!(out.len(), outputs, "{plugin}: {ops}");
            let sum: u64 = out
                .iter()
                .map(|v| v.pointer(field).unwrap().as_u64().unwrap())
                .sum();
            assert_eq!(sum, checksum, "{plugin}: {ops}");
        }
    }
}
