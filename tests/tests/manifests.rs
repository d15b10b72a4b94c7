//! Manifests: every invalid one is paired with a golden `.err` file (FLOWLET_BLESS=1 rewrites
//! them); the examples and the published JSON Schema stay valid.

use std::path::Path;

use flowlet_tests::{golden, root};

#[test]
fn invalid_manifests_report_every_error_with_positions() {
    let dir = Path::new("manifests/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let err = match flowlet_manifest::load(&path, &flowlet::options()) {
            Ok(_) => panic!("{} should be invalid", path.display()),
            Err(e) => format!("{e}\n"),
        };
        for line in err.lines().filter(|l| l.contains(": error: ")) {
            // file:line:col: error: … — every error points somewhere in the file.
            let pos: Vec<&str> = line.splitn(4, ':').collect();
            assert!(pos[1].parse::<usize>().unwrap() >= 1, "{line}");
            assert!(pos[2].parse::<usize>().unwrap() >= 1, "{line}");
        }
        golden(&path.with_extension("err"), &err);
    }
    assert!(seen >= 9, "found only {seen} invalid manifests");
}

#[test]
fn several_errors_are_reported_in_one_pass() {
    let err = flowlet_manifest::load(
        Path::new("manifests/invalid/bad-values.yaml"),
        &flowlet::options(),
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "batch-size",
        "count",
        "rate",
        "fyle",
        "parallelism",
        "key-by",
        "dead-leter",
        "memory",
        "call-timeout",
    ] {
        assert!(err.contains(needle), "no error about {needle} in:\n{err}");
    }
}

#[test]
fn examples_are_valid() {
    let options = flowlet_manifest::Options {
        check_files: false,
        ..flowlet::options()
    };
    let mut n = 0;
    for dir in std::fs::read_dir(root().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().and_then(|e| e.to_str()) == Some("yaml") {
                flowlet_manifest::load(&file, &options).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert!(n >= 1);
}

#[test]
fn published_schema_is_current() {
    let schema = serde_json::to_string_pretty(&flowlet_manifest::json_schema(&flowlet::catalog()))
        .unwrap()
        + "\n";
    golden(&root().join("docs/manifest.schema.json"), &schema);
}
