//! The `http` sink against a server the test starts: batches arrive as JSON lines, a server
//! that is down or overloaded is waited for, one that refuses a batch stops the run with the
//! status it gave, and across kill -9 nothing is lost (at-least-once).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use flowlet_tests::{Rng, flowlet_bin, run_and_kill, run_text, succeed, write_manifest};

/// What the server saw, and how it answers.
#[derive(Default)]
struct Seen {
    /// The bodies it accepted, one entry per request.
    accepted: Vec<String>,
    /// Requests it answered with an error.
    refused: usize,
    /// The `content-type` and `x-token` headers of the last request.
    headers: Option<(String, String)>,
    /// Statuses to answer the next requests with, before answering 200.
    script: Vec<(StatusCode, &'static str)>,
    /// Answer every request with this.
    always: Option<(StatusCode, &'static str)>,
}

/// A server on 127.0.0.1 in a thread of its own; its URL and what it saw.
fn server(script: Vec<(StatusCode, &'static str)>) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen {
        script: script.into_iter().rev().collect(),
        ..Seen::default()
    }));
    let state = seen.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/events",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let state = state.clone();
                    async move { answer(&state, &headers, body) }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, seen)
}

fn answer(state: &Mutex<Seen>, headers: &HeaderMap, body: String) -> (StatusCode, &'static str) {
    let mut s = state.lock().unwrap();
    let header = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    s.headers = Some((header("content-type"), header("x-token")));
    if let Some(a) = s.always.or_else(|| s.script.pop()) {
        s.refused += 1;
        return a;
    }
    s.accepted.push(body);
    (StatusCode::OK, "")
}

/// The ids of the events in the accepted bodies, each line checked to be one JSON object.
fn ids(seen: &Seen) -> Vec<u64> {
    let mut ids = Vec::new();
    for body in &seen.accepted {
        assert!(
            body.ends_with('\n'),
            "a body must end with a newline: {body:?}"
        );
        for line in body.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("`{line}` is not one JSON value: {e}"));
            ids.push(v["id"].as_u64().unwrap());
        }
    }
    ids
}

fn topology(url: &str, sink: &str) -> String {
    format!(
        "version: 1\nsources:\n  gen: {{kind: generator, count: 1000, batch-size: 100}}\nsinks:\n  web: {{kind: http, url: '{url}', {sink} inputs: [gen]}}\n"
    )
}

#[tokio::test]
async fn batches_arrive_in_order_as_json_lines_split_by_max_events() {
    let (url, seen) = server(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let sink = "max-events: 30, headers: {x-token: secret},";
    let report = run_text(dir.path(), &topology(&url, sink)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(ids(&seen), (0..1000).collect::<Vec<_>>());
    // Batches of 100 in requests of at most 30: 30, 30, 30, 10 per batch.
    assert_eq!(seen.accepted.len(), 40);
    assert!(seen.accepted.iter().all(|b| b.lines().count() <= 30));
    let (content_type, token) = seen.headers.clone().unwrap();
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(token, "secret");
    assert_eq!(report.nodes["web"].events_in, 1000);
}

#[tokio::test]
async fn an_overloaded_or_failing_server_is_retried_until_it_accepts() {
    let (url, seen) = server(vec![
        (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        (StatusCode::TOO_MANY_REQUESTS, "slow down"),
        (StatusCode::INTERNAL_SERVER_ERROR, "oops"),
        (StatusCode::REQUEST_TIMEOUT, "late"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    run_text(dir.path(), &topology(&url, "")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.refused, 4);
    // Every event once, in order: a batch that failed is sent again whole, never in part.
    assert_eq!(ids(&seen), (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_refused_batch_stops_the_run_naming_the_sink_and_the_status() {
    let (url, seen) = server(vec![]);
    seen.lock().unwrap().always = Some((StatusCode::BAD_REQUEST, "field `user` is required"));
    let dir = tempfile::tempdir().unwrap();
    let err = run_text(dir.path(), &topology(&url, "")).await.unwrap_err();
    let msg = format!("{err:#}");
    for part in ["`web`", &url, "400 Bad Request", "field `user` is required"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    // Refusals are not retried: the server saw one request.
    assert_eq!(seen.lock().unwrap().refused, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_given_up_after_retry_for() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/events");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = run_text(dir.path(), &topology(&url, "retry-for: 1s,"))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    for part in [
        "`web`",
        "cannot deliver a batch to",
        &url,
        "raise `retry-for`",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "gave up after {took:?}, not about 1 s"
    );
}

#[test]
fn across_kill_9_every_event_arrives_at_least_once() {
    let (url, seen) = server(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "version: 1\nname: web\ncheckpoint: {{interval: 50ms}}\nguarantee: at-least-once\nsources:\n  gen: {{kind: generator, count: 30000, rate: 15000}}\nsinks:\n  web: {{kind: http, url: '{url}', inputs: [gen]}}\n"
        ),
    );
    let args = |m: &Path| vec![std::ffi::OsString::from("run"), m.as_os_str().to_owned()];
    let mut rng = Rng(3);
    let mut killed = 0;
    for _ in 0..4 {
        let a = args(&manifest);
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let (ended, _) = run_and_kill(&a, Duration::from_millis(300 + rng.below(400)));
        if ended {
            break;
        }
        killed += 1;
    }
    assert!(
        killed >= 2,
        "the run ended after {killed} kills: give it more events"
    );
    succeed(flowlet_bin().args(args(&manifest)));
    let seen = seen.lock().unwrap();
    let ids = ids(&seen);
    let distinct: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct, (0..30000).collect(), "an event was lost");
    // Repeats come only from the replay after a kill: bounded by what a checkpoint interval
    // and the kill's in-flight batches hold, not a whole rerun.
    assert!(
        ids.len() < 30000 + killed * 5000,
        "{} events arrived for 30000 after {killed} kills",
        ids.len()
    );
}

#[test]
fn exactly_once_asked_of_the_http_sink_is_warned_about() {
    let (url, seen) = server(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "version: 1\nname: warned\ncheckpoint: {{interval: 1s}}\nsources:\n  gen: {{kind: generator, count: 10}}\nsinks:\n  web: {{kind: http, url: '{url}', inputs: [gen]}}\n"
        ),
    );
    let out = succeed(flowlet_bin().arg("run").arg(&manifest));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web") && err.contains("cannot take back what it wrote"),
        "{err}"
    );
    assert_eq!(ids(&seen.lock().unwrap()), (0..10).collect::<Vec<_>>());
}
