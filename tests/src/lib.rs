//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The folder with the Wasm plugins built for the tests (filter, map, flat-map, hostile,
/// other-world).
pub fn plugins() -> PathBuf {
    PathBuf::from(env!("FLOWLET_TEST_PLUGINS"))
}

/// The path of a test plugin.
pub fn plugin(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Substitute `{plugins}` in a manifest template with the test plugin folder.
pub fn manifest_text(template: &str) -> String {
    template.replace("{plugins}", &plugins().display().to_string())
}

/// Compare `actual` with the golden file `path`; `FLOWLET_BLESS=1` rewrites the file instead.
pub fn golden(path: &Path, actual: &str) {
    if std::env::var_os("FLOWLET_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing; run with FLOWLET_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (FLOWLET_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// A host with a component cache shared by the tests.
pub fn host() -> flowlet_host::Host {
    let cache = std::env::temp_dir().join("flowlet-test-cache");
    flowlet_host::Host::new(&cache).unwrap()
}

/// Write a manifest template (see [`manifest_text`]) to `dir/topology.yaml`; returns its path.
pub fn write_manifest(dir: &Path, template: &str) -> PathBuf {
    let path = dir.join("topology.yaml");
    std::fs::write(&path, manifest_text(template)).unwrap();
    path
}

/// Load and run a manifest given as text (written to `dir/topology.yaml`).
pub async fn run_text(dir: &Path, text: &str) -> anyhow::Result<flowlet_dataflow::RunReport> {
    let manifest = flowlet::load_manifest(&write_manifest(dir, text))?;
    flowlet::run_manifest(&host(), &manifest).await
}

/// The JSON values of a JSON-lines file (none when the file does not exist).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: `{l}`: {e}", path.display()))
        })
        .collect()
}
