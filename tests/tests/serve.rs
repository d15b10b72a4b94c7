//! The control plane (`flowlet serve`): a real server on a loopback port driven by flowlet's
//! own client (the code behind `flowlet deploy | swap | status`), and router tests without a
//! socket for auth, limits, validation, traversal and malformed requests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flowlet::client::Client;
use flowlet::serve::{AppState, ServeConfig, router};
use flowlet_tests::{host, plugin};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A server on 127.0.0.1 with its data in `data`; returns its URL and a handle to stop it.
async fn start_server(
    data: &Path,
    token: Option<&str>,
) -> (String, AppState, tokio::task::JoinHandle<()>) {
    let state = AppState::open(
        host(),
        ServeConfig {
            data_dir: data.to_owned(),
            token: token.map(str::to_owned),
            max_upload: 64 << 20,
            header_timeout: std::time::Duration::from_secs(10),
        },
    )
    .unwrap();
    state.resume().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, state, task)
}

/// Run blocking client calls off the async runtime.
async fn call<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn status(url: &str, pipeline: &str) -> Value {
    let (url, p) = (url.to_owned(), pipeline.to_owned());
    call(move || Client::new(&url, None).get(&format!("/v1/pipelines/{p}")))
        .await
        .unwrap()
}

async fn wait_for(url: &str, pipeline: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(url, pipeline).await;
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const EVENTS: u64 = 40_000;

fn manifest(out: &Path) -> String {
    format!(
        r#"
version: 1
name: counts
checkpoint: {{interval: 1s}}
guarantee: exactly-once
sources:
  clicks: {{kind: generator, count: {EVENTS}, rate: 2500}}
operators:
  count:
    plugin: counter@v1
    inputs: [clicks]
    key-by: /user
    parallelism: 2
sinks:
  out: {{kind: file, path: {}, inputs: [count]}}
"#,
        out.display()
    )
}

/// Swap between v1 and v2 ten times while a generator feeds a running count per key; a v3
/// that traps in `init` and a v4 that fails every batch are rolled back by themselves; the
/// server is restarted once in the middle. Every input event is counted exactly once, every
/// key's count continues across every swap and restart, and the version tag in the output
/// changes exactly once per swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_hot_swaps_keep_state_and_lose_or_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let out = dir.path().join("out.jsonl");
    let (mut url, st, task) = start_server(&data, None).await;
    let mut server = Some((st, task));
    let c = |url: &str| Client::new(url, None);

    for v in 1..=4 {
        let u = url.clone();
        let e = call(move || {
            let file = plugin(&format!("counter-v{v}"));
            c(&u).upload(Path::new(&file), "counter", &format!("v{v}"))
        })
        .await
        .unwrap();
        assert_eq!(e["world"], "stateful-processor");
    }
    let m = dir.path().join("counts.yaml");
    std::fs::write(&m, manifest(&out)).unwrap();
    let (u, mp) = (url.clone(), m.clone());
    let created = call(move || c(&u).deploy(&mp, None)).await.unwrap();
    assert_eq!(created["name"], "counts");
    wait_for(&url, "counts", "running", |s| s["phase"] == "running").await;

    // Ten swaps v1 → v2 → v1 …; after the fifth, v3 (refused) and v4 (rolled back); the
    // server restarts after the seventh.
    let mut expected = vec!["v1".to_owned()];
    for i in 0..10 {
        let next = if i % 2 == 0 { "v2" } else { "v1" };
        // Let the running version handle events before the next swap.
        let before = events_in(&status(&url, "counts").await);
        wait_for(&url, "counts", "events between swaps", |s| {
            events_in(s) > before + 300
        })
        .await;
        let u = url.clone();
        let to = format!("counter@{next}");
        let done = call(move || c(&u).swap("counts", "count", &to))
            .await
            .unwrap();
        assert_eq!(done["operator"], "count");
        expected.push(next.to_owned());
        let s = status(&url, "counts").await;
        assert_eq!(
            s["operators"]["count"]["plugin-version"],
            format!("counter@{next}"),
            "{s:#}"
        );

        if i == 4 {
            // v3 traps in init: refused before the running version stops.
            let u = url.clone();
            let err = call(move || c(&u).swap("counts", "count", "counter@v3"))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("422") && err.contains("init"), "{err}");
            let s = status(&url, "counts").await;
            let op = &s["operators"]["count"];
            assert_eq!(op["plugin-version"], format!("counter@{next}"), "{s:#}");
            assert_eq!(op["last-swap"]["state"], "refused", "{s:#}");
            assert_eq!(s["phase"], "running");

            // v4 fails every batch: it is swapped in, fails its first batch on probation, and
            // the previous version comes back by itself and handles that batch.
            let u = url.clone();
            call(move || c(&u).swap("counts", "count", "counter@v4"))
                .await
                .unwrap();
            let s = wait_for(&url, "counts", "the v4 rollback", |s| {
                s["operators"]["count"]["last-swap"]["state"] == "rolled-back"
            })
            .await;
            let op = &s["operators"]["count"];
            assert_eq!(op["plugin-version"], format!("counter@{next}"), "{s:#}");
            let reason = op["last-swap"]["reason"].as_str().unwrap();
            assert!(reason.contains("v4 fails every batch"), "{s:#}");
            assert_eq!(op["rollbacks"], 1);
            assert_eq!(op["dead-letters"], 0);
            assert_eq!(s["phase"], "running");
        }
        if i == 6 {
            // The server goes down (each pipeline takes a final checkpoint) and comes back:
            // the pipeline resumes with the plugin it ran.
            let (st, task) = server.take().unwrap();
            st.shutdown().await;
            task.abort();
            let (new_url, st, task) = start_server(&data, None).await;
            server = Some((st, task));
            url = new_url;
            let s = wait_for(&url, "counts", "running after a restart", |s| {
                s["phase"] == "running"
            })
            .await;
            assert_eq!(
                s["operators"]["count"]["plugin-version"],
                format!("counter@{next}")
            );
        }
    }
    let s = wait_for(&url, "counts", "the end of the input", |s| {
        s["phase"] == "finished"
    })
    .await;
    assert_eq!(
        s["operators"]["count"]["swaps"], 3,
        "swaps since the restart: {s:#}"
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let mut ids = BTreeSet::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut tags: Vec<String> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_u64().unwrap();
        assert!(ids.insert(id), "event {id} counted twice");
        let key = v["key"].as_str().unwrap().to_owned();
        let n = counts.entry(key.clone()).or_default();
        *n += 1;
        assert_eq!(
            v["n"].as_u64().unwrap(),
            *n,
            "the count of {key} did not continue: {line}"
        );
        let tag = v["version"].as_str().unwrap();
        if tags.last().map(String::as_str) != Some(tag) {
            tags.push(tag.to_owned());
        }
    }
    assert_eq!(ids.len() as u64, EVENTS, "events lost");
    assert_eq!(ids.last().copied(), Some(EVENTS - 1));
    assert_eq!(
        tags, expected,
        "the version tag must change exactly once per swap"
    );

    // The state of a key, from the last checkpoint (the pipeline has finished).
    let (key, n) = counts.iter().next().map(|(k, n)| (k.clone(), *n)).unwrap();
    let u = url.clone();
    let q = call(move || c(&u).get(&format!("/v1/pipelines/counts/state/count?key={key}")))
        .await
        .unwrap();
    assert_eq!(q["state"][0]["name"], "n", "{q:#}");
    assert_eq!(q["state"][0]["value"], n, "{q:#}");
    assert_eq!(q["source"], "checkpoint");

    // Metrics name the swaps.
    let u = url.clone();
    let text = call(move || {
        let mut r = ureq::get(format!("{u}/metrics")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    })
    .await;
    assert!(
        text.contains("flowlet_plugin_swaps_total{pipeline=\"counts\",node=\"count\"} 3"),
        "{text}"
    );
    // A version a pipeline runs or keeps for a rollback cannot be deleted; v3 (never ran) can.
    let u = url.clone();
    let codes = call(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        ["v1", "v2", "v3"].map(|v| {
            agent
                .delete(format!("{u}/v1/plugins/counter/{v}"))
                .call()
                .unwrap()
                .status()
                .as_u16()
        })
    })
    .await;
    assert_eq!(codes, [409, 409, 200]);
    // Delete: a final savepoint is kept, the pipeline is gone.
    let u = url.clone();
    let d = call(move || {
        let mut r = ureq::delete(format!("{u}/v1/pipelines/counts"))
            .call()
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    })
    .await;
    assert!(d.contains("\"deleted\":\"counts\""), "{d}");
    assert!(!data.join("pipelines/counts").exists());
    drop(server);
}

fn events_in(s: &Value) -> u64 {
    s["operators"]["count"]["events-in"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------
// Router tests: no socket.

fn app(dir: &Path, token: Option<&str>, max_upload: usize) -> axum::Router {
    let state = AppState::open(
        host(),
        ServeConfig {
            data_dir: dir.to_owned(),
            token: token.map(str::to_owned),
            max_upload,
            header_timeout: std::time::Duration::from_secs(10),
        },
    )
    .unwrap();
    state.resume().unwrap();
    router(state)
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
    json_body: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if json_body {
        req = req.header("content-type", "application/json");
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(plugin(name)).unwrap()
}

#[tokio::test]
async fn uploads_are_validated_before_they_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 64 << 20);
    let blobs = || files_in(&dir.path().join("plugins/blobs"));

    let (s, v) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=counter&version=1.0.0",
        None,
        wasm("counter-v1"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["world"], "stateful-processor");
    // The same bytes again: accepted, nothing new.
    let (s, _) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=counter&version=1.0.0",
        None,
        wasm("counter-v1"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Other bytes under the same version: versions are immutable.
    let (s, v) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=counter&version=1.0.0",
        None,
        wasm("counter-v2"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("immutable"));
    assert_eq!(blobs(), 1);

    for (body, why) in [
        (b"hello, not wasm".to_vec(), "not a WebAssembly file"),
        (wasm("other-world"), "does not implement"),
        (b"\0asm\x01\0\0\0".to_vec(), "core WebAssembly module"),
        (
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            "not a valid component",
        ),
        (Vec::new(), "empty"),
    ] {
        let (s, v) = send(
            &a,
            Method::POST,
            "/v1/plugins?name=bad&version=1",
            None,
            body,
            false,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    assert_eq!(blobs(), 1, "nothing invalid was stored");
    let (s, v) = send(&a, Method::GET, "/v1/plugins/counter", None, vec![], false).await;
    assert_eq!(
        (s, v["versions"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, _) = send(&a, Method::GET, "/v1/plugins/bad", None, vec![], false).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(
        &a,
        Method::DELETE,
        "/v1/plugins/counter/1.0.0",
        None,
        vec![],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(blobs(), 0);
}

#[tokio::test]
async fn a_token_guards_every_mutating_route() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), Some("s3cret"), 64 << 20);
    let mutating = [
        (Method::POST, "/v1/plugins?name=a&version=1"),
        (Method::DELETE, "/v1/plugins/a/1"),
        (Method::POST, "/v1/pipelines"),
        (Method::DELETE, "/v1/pipelines/p"),
        (Method::PUT, "/v1/pipelines/p/operators/o"),
        (Method::POST, "/v1/pipelines/p/savepoints"),
    ];
    for (m, uri) in mutating {
        for token in [None, Some("wrong"), Some("s3cret-but-longer")] {
            let (s, v) = send(&a, m.clone(), uri, token, wasm("counter-v1"), false).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri} with {token:?}: {v}");
            assert!(v["error"].as_str().unwrap().contains("Bearer"));
        }
    }
    let (s, _) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=a&version=1",
        Some("s3cret"),
        wasm("counter-v1"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    // Reading needs no token.
    let (s, _) = send(&a, Method::GET, "/v1/plugins", None, vec![], false).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn uploads_over_the_limit_get_413() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 4096);
    let (s, v) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=big&version=1",
        None,
        wasm("counter-v1"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("max-upload"), "{v}");
    assert!(
        !dir.path()
            .join("plugins/blobs")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}

#[tokio::test]
async fn names_cannot_traverse_paths() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 64 << 20);
    for uri in [
        "/v1/plugins?name=..&version=1",
        "/v1/plugins?name=../../etc&version=1",
        "/v1/plugins?name=a&version=..%2F..%2Fx",
        "/v1/plugins?name=%2Fetc%2Fpasswd&version=1",
        "/v1/plugins?name=.hidden&version=1",
    ] {
        let (s, v) = send(&a, Method::POST, uri, None, wasm("counter-v1"), false).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
    }
    for name in ["..", "../x", "a/b", ".x"] {
        let body = json!({"manifest": "version: 1\nsources: {s: {kind: generator, count: 1}}\nsinks: {o: {kind: stdout, inputs: [s]}}\n", "name": name});
        let (s, v) = send(
            &a,
            Method::POST,
            "/v1/pipelines",
            None,
            body.to_string().into_bytes(),
            true,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}: {v}");
    }
    for uri in [
        "/v1/plugins/..%2F..%2Fetc",
        "/v1/pipelines/..%2Fx",
        "/v1/pipelines/..%2Fx/state/o?key=k",
    ] {
        let (s, _) = send(&a, Method::GET, uri, None, vec![], false).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
    // Nothing was written outside the data directory's own layout.
    let top: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        BTreeSet::from(["pipelines".to_owned(), "plugins".to_owned()])
    );
    assert_eq!(files_in(&dir.path().join("plugins/blobs")), 0);
}

#[tokio::test]
async fn pipelines_that_cannot_run_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 64 << 20);
    let (s, _) = send(
        &a,
        Method::POST,
        "/v1/plugins?name=counter&version=3",
        None,
        wasm("counter-v3"),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let cases = [
        (
            "version: 1\nname: p\nsources: {s: {kind: generator}}\nsinks: {o: {kind: stdout, inputs: [nope]}}\n",
            "nope",
        ),
        (
            "version: 1\nname: p\nsources: {s: {kind: generator}}\noperators: {c: {plugin: counter@9, inputs: [s], key-by: /user}}\nsinks: {o: {kind: \"null\", inputs: [c]}}\n",
            "counter@9",
        ),
        (
            "version: 1\nname: p\nsources: {s: {kind: generator}}\noperators: {c: {plugin: counter@3, inputs: [s], key-by: /user}}\nsinks: {o: {kind: \"null\", inputs: [c]}}\n",
            "init",
        ),
        (
            "version: 1\nsources: {s: {kind: generator}}\nsinks: {o: {kind: stdout, inputs: [s]}}\n",
            "needs a name",
        ),
        (
            "version: 1\nname: p\nsources: {s: {kind: generator}}\noperators: {c: {plugin: sha256:12, inputs: [s]}}\nsinks: {o: {kind: \"null\", inputs: [c]}}\n",
            "digest",
        ),
    ];
    for (manifest, why) in cases {
        let (s, v) = send(
            &a,
            Method::POST,
            "/v1/pipelines",
            None,
            manifest.as_bytes().to_vec(),
            false,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let (s, v) = send(&a, Method::GET, "/v1/pipelines", None, vec![], false).await;
    assert_eq!(
        (s, v["pipelines"].as_array().unwrap().len()),
        (StatusCode::OK, 0),
        "{v}"
    );
    assert_eq!(files_in(&dir.path().join("pipelines")), 0);
}

/// Garbage at every route (and every method): a 4xx with a JSON message, never a 5xx.
#[tokio::test]
async fn malformed_requests_never_get_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 1 << 20);
    let doc: Value = serde_json::from_str(flowlet::serve::OPENAPI).unwrap();
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        b"{\"plugin\": 7}".to_vec(),
        b"{\"manifest\": 1}".to_vec(),
        b"version: [".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"\0asm\x01\0\0\0".to_vec(),
    ];
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    assert!(paths.len() >= 10, "{paths:?}");
    let mut tried = 0;
    for path in &paths {
        for fill in ["x", "..", "%00", "a%2Fb", "%ff", &"z".repeat(300)] {
            let uri = path
                .replace("{name}", fill)
                .replace("{version}", fill)
                .replace("{op}", fill);
            for query in [
                "",
                "?key",
                "?key=%ff%fe",
                "?name=&version=",
                "?name=a&version=1&x=y",
                "?%%",
            ] {
                for method in [
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::DELETE,
                    Method::PATCH,
                ] {
                    for body in &bodies {
                        for json_body in [false, true] {
                            let (s, v) = send(
                                &a,
                                method.clone(),
                                &format!("{uri}{query}"),
                                None,
                                body.clone(),
                                json_body,
                            )
                            .await;
                            tried += 1;
                            assert!(
                                !s.is_server_error(),
                                "{method} {uri}{query} with {body:?}: {s} {v}"
                            );
                            if s.is_client_error() {
                                assert!(v["error"].is_string(), "{method} {uri}{query}: {s} {v}");
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(tried > 10_000);
}

/// Every route of the OpenAPI document exists (and nothing else answers).
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(dir.path(), None, 1 << 20);
    let (s, doc) = send(&a, Method::GET, "/v1/openapi.json", None, vec![], false).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let uri = path
            .replace("{name}", "n")
            .replace("{version}", "1")
            .replace("{op}", "o");
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (s, v) = send(&a, m.clone(), &uri, None, vec![], false).await;
            assert_ne!(
                s,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path} is documented but not routed"
            );
            if s == StatusCode::NOT_FOUND {
                assert!(
                    !v["error"].as_str().unwrap().contains("no such route"),
                    "{m} {path}: {v}"
                );
            }
        }
    }
    let (s, _) = send(&a, Method::GET, "/v1/nothing", None, vec![], false).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = send(&a, Method::GET, "/healthz", None, vec![], false).await;
    assert_eq!((s, v), (StatusCode::OK, Value::String("ok\n".into())));
    let (s, _) = send(&a, Method::GET, "/readyz", None, vec![], false).await;
    assert_eq!(s, StatusCode::OK);
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = rt
        .block_on(flowlet::serve::serve(
            host(),
            "0.0.0.0:0".parse().unwrap(),
            ServeConfig {
                data_dir: dir.path().to_owned(),
                token: None,
                max_upload: 1 << 20,
                header_timeout: std::time::Duration::from_secs(10),
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("without a token") && err.contains("--token-file"),
        "{err}"
    );
}

/// Without `checkpoint:` there are no barriers: each instance swaps at its next message, and
/// the state still carries over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_without_checkpoints_swaps_between_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let (url, _state, _task) = start_server(&dir.path().join("server"), None).await;
    let c = |url: &str| Client::new(url, None);
    for v in [1, 2] {
        let u = url.clone();
        call(move || {
            let file = plugin(&format!("counter-v{v}"));
            c(&u).upload(Path::new(&file), "counter", &format!("v{v}"))
        })
        .await
        .unwrap();
    }
    let m = dir.path().join("plain.yaml");
    std::fs::write(
        &m,
        format!(
            "version: 1\nname: plain\nsources:\n  clicks: {{kind: generator, count: 6000, rate: 3000}}\noperators:\n  count: {{plugin: counter@v1, inputs: [clicks], key-by: /country}}\nsinks:\n  out: {{kind: file, path: {}, inputs: [count]}}\n",
            out.display()
        ),
    )
    .unwrap();
    let u = url.clone();
    call(move || c(&u).deploy(&m, None)).await.unwrap();
    wait_for(&url, "plain", "events", |s| events_in(s) > 500).await;
    let u = url.clone();
    call(move || c(&u).swap("plain", "count", "counter@v2"))
        .await
        .unwrap();
    wait_for(&url, "plain", "the end", |s| s["phase"] == "finished").await;
    let text = std::fs::read_to_string(&out).unwrap();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut tags = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["id"].as_u64(), Some(i as u64), "{line}");
        let n = counts
            .entry(v["key"].as_str().unwrap().to_owned())
            .or_default();
        *n += 1;
        assert_eq!(v["n"].as_u64(), Some(*n), "{line}");
        let tag = v["version"].as_str().unwrap().to_owned();
        if tags.last() != Some(&tag) {
            tags.push(tag);
        }
    }
    assert_eq!(text.lines().count(), 6000);
    assert_eq!(tags, ["v1", "v2"]);
}

/// A Kafka source's consumer lag per partition reaches the status and `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_consumer_lag_is_reported_per_partition() {
    // The broker's helpers run their own runtime: off this one.
    let (broker, input) = call(|| {
        let broker = flowlet_tests::kafka::Broker::start();
        let input = broker.topic("lag", 2);
        let events: Vec<(String, String)> = (0..2000)
            .map(|i| {
                let ts = 1_700_000_000_000i64 + i;
                (format!("u{}", i % 7), format!(r#"{{"i":{i},"ts":{ts}}}"#))
            })
            .collect();
        broker.produce(&input, &events);
        (broker, input)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (url, _state, _task) = start_server(&dir.path().join("server"), None).await;
    let manifest = format!(
        "version: 1\nname: lag\nsources:\n  clicks: {{kind: kafka, brokers: {}, topic: {input}, start: earliest}}\nsinks:\n  out: {{kind: \"null\", inputs: [clicks]}}\n",
        broker.brokers
    );
    let u = url.clone();
    call(move || {
        Client::new(&u, None).send_json("POST", "/v1/pipelines", &json!({ "manifest": manifest }))
    })
    .await
    .unwrap();
    let s = wait_for(&url, "lag", "the consumer lag of both partitions", |s| {
        s["sources"]["clicks"]["consumer-lag"]
            .as_object()
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    let lag = s["sources"]["clicks"]["consumer-lag"].as_object().unwrap();
    assert!(lag.contains_key(&format!("{input}/0")), "{s:#}");
    let u = url.clone();
    let text = call(move || {
        let mut r = ureq::get(format!("{u}/metrics")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    })
    .await;
    let line =
        format!("flowlet_consumer_lag{{pipeline=\"lag\",node=\"clicks\",partition=\"{input}/1\"}}");
    assert!(text.contains(&line), "{text}");
}

/// A window aggregate keeps its open windows across swaps: the counts per key and window are
/// those of a plain loop, none lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_aggregate_keeps_its_windows_across_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let (url, _state, _task) = start_server(&dir.path().join("server"), None).await;
    let c = |url: &str| Client::new(url, None);
    // The same component under two versions: the swap protocol does not shortcut it.
    for v in ["1", "2"] {
        let u = url.clone();
        call(move || c(&u).upload(Path::new(&plugin("aggregate")), "count", v))
            .await
            .unwrap();
    }
    const N: u64 = 20_000;
    let m = dir.path().join("windows.yaml");
    std::fs::write(
        &m,
        format!(
            r#"
version: 1
name: windows
checkpoint: {{interval: 1s}}
guarantee: exactly-once
sources:
  clicks: {{kind: generator, count: {N}, rate: 5000}}
operators:
  counts:
    plugin: count@1
    config: {{function: count}}
    inputs: [clicks]
    key-by: /country
    parallelism: 2
    window: {{kind: tumbling, size: 500ms}}
sinks:
  out: {{kind: file, path: {}, inputs: [counts]}}
"#,
            out.display()
        ),
    )
    .unwrap();
    let u = url.clone();
    call(move || c(&u).deploy(&m, None)).await.unwrap();
    for (i, to) in ["count@2", "count@1", "count@2"].into_iter().enumerate() {
        let at = 3000 * (i as u64 + 1);
        wait_for(&url, "windows", "events", |s| {
            s["operators"]["counts"]["events-in"].as_u64().unwrap() > at
        })
        .await;
        let u = url.clone();
        call(move || c(&u).swap("windows", "counts", to))
            .await
            .unwrap();
    }
    let s = wait_for(&url, "windows", "the end", |s| s["phase"] == "finished").await;
    assert_eq!(s["operators"]["counts"]["swaps"], 3, "{s:#}");

    // The reference: the generator's events counted per country and 500 ms window.
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut batch = flowlet_dataflow::Batch::new();
    for n in 0..N {
        batch.clear();
        flowlet_connectors::generator::push_event(&mut batch, 0, n);
        let e = batch.get(0);
        let v: Value = serde_json::from_slice(e.value()).unwrap();
        let start = e.timestamp().div_euclid(500) * 500;
        *expected
            .entry((v["country"].as_str().unwrap().to_owned(), start))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let k = (
            v["key"].as_str().unwrap().to_owned(),
            v["start"].as_i64().unwrap(),
        );
        assert!(
            got.insert(k, v["count"].as_u64().unwrap()).is_none(),
            "{line} twice"
        );
    }
    assert_eq!(got, expected);
}

/// Two names uploaded with the same bytes: each pipeline's status reports the plugin as the
/// pipeline referenced it (in its manifest, or in a swap), not whichever name the registry
/// happens to list first for the digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_reports_the_plugin_reference_a_pipeline_was_deployed_with() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _state, _task) = start_server(&dir.path().join("server"), None).await;
    let c = |url: &str| Client::new(url, None);
    let v1 = plugin("counter-v1");
    for name in ["counter", "zz-alias", "aa-alias"] {
        let (u, f) = (url.clone(), v1.clone());
        call(move || c(&u).upload(Path::new(&f), name, "1.0.0"))
            .await
            .unwrap();
    }
    for (pipeline, reference) in [
        ("p1", "zz-alias@1.0.0"),
        ("p2", "counter@1.0.0"),
        ("p3", "aa-alias@1.0.0"),
    ] {
        let m = dir.path().join(format!("{pipeline}.yaml"));
        std::fs::write(
            &m,
            format!(
                r#"
version: 1
name: {pipeline}
sources:
  clicks: {{kind: generator, rate: 100}}
operators:
  count: {{plugin: {reference}, inputs: [clicks], key-by: /user}}
sinks:
  out: {{kind: "null", inputs: [count]}}
"#
            ),
        )
        .unwrap();
        let u = url.clone();
        call(move || c(&u).deploy(&m, None)).await.unwrap();
        let s = wait_for(&url, pipeline, "running", |s| s["phase"] == "running").await;
        assert_eq!(
            s["operators"]["count"]["plugin-version"], reference,
            "{s:#}"
        );
    }
}

/// A pipeline with named outputs and a host join runs under `flowlet serve`; the join has no
/// plugin to swap, and a 0.1 plugin cannot replace a router (it cannot route), each refused
/// with the reason while the pipeline goes on.
#[tokio::test(flavor = "multi_thread")]
async fn routes_and_joins_run_under_serve_and_bad_swaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&dir.path().join("data"), None, 64 << 20);
    let manifest = r#"
version: 1
name: routed
sources:
  gen: {kind: generator, rate: 2000}
operators:
  route:
    plugin: builtin:router
    outputs: [small, large]
    config: {routes: [{to: small, field: /amount, op: lt, value: 100}, {to: large, field: /amount, op: ge, value: 900}]}
    inputs: [gen]
  pairs:
    join: {kind: interval, left: route.small, right: route.large, between: [-1s, 1s]}
    key-by: /country
sinks:
  out: {kind: "null", inputs: [pairs]}
  rest: {kind: "null", inputs: [route]}
"#;
    let (s, v) = send(
        &a,
        Method::POST,
        "/v1/pipelines",
        None,
        manifest.as_bytes().to_vec(),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = send(&a, Method::GET, "/v1/pipelines/routed", None, vec![], false).await;
        if st["operators"]["pairs"]["events-out"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no pairs: {st:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let swap = |op: &str, plugin: String| {
        let body = json!({ "plugin": plugin }).to_string().into_bytes();
        let uri = format!("/v1/pipelines/routed/operators/{op}");
        let a = a.clone();
        async move { send(&a, Method::PUT, &uri, None, body, true).await }
    };
    let (s, v) = swap("pairs", "builtin:filter".into()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("is a join kept by the host"),
        "{v}"
    );
    let old = format!(
        "{}/fixtures/contract-0.1/filter.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let uri = "/v1/plugins?name=old-filter&version=0.1.0";
    let (s, v) = send(
        &a,
        Method::POST,
        uri,
        None,
        std::fs::read(old).unwrap(),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = swap("route", "old-filter@0.1.0".into()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("contract 0.1.0") && e.contains("small, large"),
        "{v}"
    );
    let (_, st) = send(&a, Method::GET, "/v1/pipelines/routed", None, vec![], false).await;
    assert_eq!(st["phase"], "running", "{st:#}");
    send(
        &a,
        Method::DELETE,
        "/v1/pipelines/routed",
        None,
        vec![],
        false,
    )
    .await;
}
