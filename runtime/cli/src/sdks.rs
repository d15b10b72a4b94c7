//! The SDKs for Python, JavaScript and C, embedded in the binary so that `flowlet sdk python|js|c
//! -o DIR` writes the version matching the contract this flowlet runs (what `flowlet new`
//! projects build with; an operator repository's CI needs only the flowlet binary).

use std::path::Path;

use anyhow::Context;

/// (path in the package, text)
type Files = &'static [(&'static str, &'static str)];

macro_rules! package {
    ($dir:literal: $($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../sdk/", $dir, "/", $path)))),*]
    };
}

/// `sdk/python`: the `flowlet` package (pure Python; componentize-py bundles it).
pub const PYTHON: Files = package!("python":
    "pyproject.toml", "README.md",
    "flowlet/__init__.py", "flowlet/_core.py", "flowlet/_component.py", "flowlet/testing.py",
);

/// `sdk/js`: the npm package `@flowlet/sdk` (what `npm pack` puts in its tarball).
pub const JS: Files = package!("js":
    "package.json", "README.md", "index.js", "index.d.ts", "testing.js", "testing.d.ts", "build.mjs",
);

/// `sdk/c`: the library (its own tests and their Makefile stay in the source tree).
pub const C: Files = package!("c":
    "README.md", "flowlet.h", "flowlet.c", "flowlet_testing.h", "flowlet_testing.c",
);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Python,
    Js,
    C,
}

impl Language {
    pub fn files(self) -> Files {
        match self {
            Language::Python => PYTHON,
            Language::Js => JS,
            Language::C => C,
        }
    }

    /// Its folder under `sdk/`, and what there is not part of the package.
    #[cfg(test)]
    fn source(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Language::Python => ("python", &[]),
            Language::Js => ("js", &[]),
            Language::C => ("c", &["Makefile"]),
        }
    }
}

/// Write an SDK's files under `dir` (created if needed); the paths written.
pub fn write(language: Language, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for (path, text) in language.files() {
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&to, text).with_context(|| format!("cannot write {}", to.display()))?;
        written.push(to);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the source tree's SDK (but its tests) is embedded, and nothing else: a file
    /// added to an SDK and forgotten here would be missing from `flowlet sdk` and new projects.
    #[test]
    fn the_embedded_sdks_are_the_source_trees() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
        for language in [Language::Python, Language::Js, Language::C] {
            let (dir, left_out) = language.source();
            let base = root.join(dir);
            let mut on_disk = Vec::new();
            let mut stack = vec![base.clone()];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    if ["tests", "test", "__pycache__", "node_modules", "build"]
                        .contains(&name.as_str())
                        || left_out.contains(&name.as_str())
                        || name.starts_with('.')
                    {
                        continue;
                    }
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        on_disk.push(
                            path.strip_prefix(&base)
                                .unwrap()
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                }
            }
            on_disk.sort();
            let mut embedded: Vec<String> = language
                .files()
                .iter()
                .map(|(p, _)| (*p).to_owned())
                .collect();
            embedded.sort();
            assert_eq!(embedded, on_disk, "{dir}: update sdks.rs");
        }
    }

    #[test]
    fn writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(Language::Python, &dir.path().join("sdk")).unwrap();
        assert_eq!(written.len(), PYTHON.len());
        assert!(dir.path().join("sdk/flowlet/__init__.py").is_file());
    }
}
