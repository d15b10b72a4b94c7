//! Builds the Wasm plugins the tests run — the shipped ones and the hostile test ones — so a
//! missing or broken plugin fails the build instead of skipping a test.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [(&str, &str); 23] = [
    ("flowlet-plugin-enrich", "enrich"),
    ("flowlet-plugin-filter", "filter"),
    ("flowlet-plugin-router", "router"),
    ("flowlet-plugin-map", "map"),
    ("flowlet-plugin-flat-map", "flat-map"),
    ("flowlet-plugin-aggregate", "aggregate"),
    ("flowlet-plugin-hot-items", "hot-items"),
    ("flowlet-plugin-sessionizer", "sessionizer"),
    ("flowlet-plugin-fraud", "fraud"),
    ("flowlet-plugin-dedupe", "dedupe"),
    ("flowlet-plugin-reorder", "reorder"),
    ("flowlet-plugin-inactivity", "inactivity"),
    ("flowlet-plugin-nexmark-queries", "nexmark-queries"),
    ("flowlet-plugin-nexmark-windows", "nexmark-windows"),
    (
        "flowlet-plugin-nexmark-winning-bids",
        "nexmark-winning-bids",
    ),
    ("flowlet-test-hostile", "hostile"),
    ("flowlet-test-other-world", "other-world"),
    ("flowlet-test-imports-state", "imports-state"),
    ("flowlet-test-imports-unknown", "imports-unknown"),
    ("flowlet-test-counter-v1", "counter-v1"),
    ("flowlet-test-counter-v2", "counter-v2"),
    ("flowlet-test-counter-v3", "counter-v3"),
    ("flowlet-test-counter-v4", "counter-v4"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_owned();
    for watched in [
        "plugins",
        "sdk",
        "runtime/types",
        "wit",
        "tests/plugins",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out. The plugins get a target dir of
    // their own (a nested cargo on the same one would wait for the outer cargo's lock forever);
    // scripts/build-plugins uses the same one, so they are compiled once.
    let target_dir = out_dir.ancestors().nth(4).unwrap().to_owned();
    let wasm_dir = target_dir.join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "wasm",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&wasm_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    for (package, _) in PLUGINS {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .status()
        .expect("run cargo to build the Wasm test plugins");
    assert!(
        status.success(),
        "building the Wasm plugins failed; is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
    );
    let dest = out_dir.join("plugins");
    std::fs::create_dir_all(&dest).unwrap();
    for (package, name) in PLUGINS {
        let built: &Path = &wasm_dir.join("wasm32-wasip2/wasm");
        let file = built.join(format!("{}.wasm", package.replace('-', "_")));
        std::fs::copy(&file, dest.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{} was not built: {e}", file.display()));
    }
    println!("cargo:rustc-env=FLOWLET_TEST_PLUGINS={}", dest.display());
}
