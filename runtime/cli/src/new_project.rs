//! `flowlet new NAME --lang rust|c|python|js`: a ready-to-build operator project — the source of
//! a small processor (it labels JSON objects and rejects anything else), a Makefile whose `make`
//! builds the component and whose `make test` runs it in a topology over test input and
//! compares the output, and a README.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Python,
    Js,
}

/// (path in the project, template)
type Files = &'static [(&'static str, &'static str)];

const COMMON: Files = &[
    (
        "topology.yaml",
        include_str!("../templates/common/topology.yaml"),
    ),
    (
        "test/input.jsonl",
        include_str!("../templates/common/input.jsonl"),
    ),
    (
        "test/expected.jsonl",
        include_str!("../templates/common/expected.jsonl"),
    ),
    (".gitignore", include_str!("../templates/common/gitignore")),
    ("README.md", include_str!("../templates/common/README.md")),
];

const RUST: Files = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("Makefile", include_str!("../templates/rust/Makefile")),
];

const C: Files = &[
    ("operator.c", include_str!("../templates/c/operator.c")),
    (
        "operator_test.c",
        include_str!("../templates/c/operator_test.c"),
    ),
    ("Makefile", include_str!("../templates/c/Makefile")),
];

const PYTHON: Files = &[
    ("app.py", include_str!("../templates/python/app.py")),
    (
        "test_app.py",
        include_str!("../templates/python/test_app.py"),
    ),
    ("Makefile", include_str!("../templates/python/Makefile")),
];

const JS: Files = &[
    ("operator.js", include_str!("../templates/js/operator.js")),
    (
        "operator.test.js",
        include_str!("../templates/js/operator.test.js"),
    ),
    ("package.json", include_str!("../templates/js/package.json")),
    ("Makefile", include_str!("../templates/js/Makefile")),
];

impl Lang {
    fn files(self) -> Files {
        match self {
            Lang::Rust => RUST,
            Lang::C => C,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The README's language section: toolchain, build, costs.
    fn notes(self) -> &'static str {
        match self {
            Lang::Rust => include_str!("../templates/rust/NOTES.md"),
            Lang::C => include_str!("../templates/c/NOTES.md"),
            Lang::Python => include_str!("../templates/python/NOTES.md"),
            Lang::Js => include_str!("../templates/js/NOTES.md"),
        }
    }

    /// The operator's source and its unit test (as templates), and their code fences, for the
    /// README.
    fn showcase(self) -> [(&'static str, &'static str); 2] {
        let find = |name: &str| {
            self.files()
                .iter()
                .find(|(p, _)| *p == name)
                .map_or("", |(_, t)| *t)
        };
        match self {
            // The Rust unit test is in the same file, below the operator.
            Lang::Rust => [("rust", find("src/lib.rs")), ("", "")],
            Lang::C => [("c", find("operator.c")), ("c", find("operator_test.c"))],
            Lang::Python => [("python", find("app.py")), ("python", find("test_app.py"))],
            Lang::Js => [
                ("js", find("operator.js")),
                ("js", find("operator.test.js")),
            ],
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::C => "C",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// A project name: also a directory, a crate and a topology name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "`{name}` cannot name an operator project: use 1–64 lowercase letters, digits and dashes, starting with a letter (e.g. `enrich-orders`)"
        );
    }
    Ok(())
}

/// The SDK crate this flowlet was built with, for Rust projects.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Create the project `parent/name`; its path.
pub fn create(
    name: &str,
    lang: Lang,
    parent: &Path,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or --dir, or remove it",
            dir.display()
        );
    }
    let sdk = match (lang, sdk) {
        (Lang::Rust, Some(p)) => Some(p.to_owned()),
        (Lang::Rust, None) => Some(default_sdk()),
        _ => None,
    };
    let sdk = match sdk {
        Some(p) => {
            let p = p.canonicalize().map_err(|_| {
                anyhow::anyhow!(
                    "the flowlet SDK crate is not at {}: pass --sdk PATH (the `sdk` directory of flowlet's source tree)",
                    p.display()
                )
            })?;
            if !p.join("Cargo.toml").is_file() {
                bail!(
                    "{} has no Cargo.toml: --sdk must name the `sdk` directory of flowlet's source tree",
                    p.display()
                );
            }
            p.display().to_string()
        }
        None => String::new(),
    };
    let [(fence, source), (test_fence, test)] = lang.showcase();
    let block = |fence: &str, text: &str| match text {
        "" => "(in `src/lib.rs`, below the operator: `mod tests`)\n".to_owned(),
        t => format!("```{fence}\n{}\n```\n", t.trim_end()),
    };
    let fill = |text: &str| {
        text.replace("{{notes}}", lang.notes())
            .replace("{{source}}", &block(fence, source))
            .replace("{{test}}", &block(test_fence, test))
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk)
            .replace("{{lang}}", lang.title())
    };
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // Written into a temporary directory beside, then renamed: no half project on failure.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(parent)
        .with_context(|| format!("cannot write into {}", parent.display()))?;
    for (path, text) in COMMON.iter().chain(lang.files()) {
        let to = tmp.path().join(path);
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&to, fill(text))
            .with_context(|| format!("cannot write {}", to.display()))?;
    }
    if lang != Lang::Rust {
        crate::toolkit::write_wit(&tmp.path().join("wit"))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// What to do next, printed after `flowlet new`.
pub fn next_steps(name: &str, lang: Lang, dir: &Path) -> String {
    let setup = match lang {
        Lang::Rust => "rustup target add wasm32-wasip2",
        Lang::C => {
            "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32   # or your system's equivalent"
        }
        Lang::Python => "pip install componentize-py==0.25.1 pytest",
        Lang::Js => "npm install",
    };
    format!(
        "created {} ({} operator `{name}`)\n\n  cd {}\n  {setup}\n  make          # builds {name}.wasm\n  make test     # unit tests, then the component through flowlet's host, compared with test/expected.jsonl\n\nSee README.md.",
        dir.display(),
        lang.title(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_projects_are_refused() {
        for bad in [
            "",
            "Upper",
            "1st",
            "a_b",
            "a/b",
            "..",
            "dash-",
            &"x".repeat(65),
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("lowercase letters"), "{bad}: {e}");
        }
        check_name("enrich-orders2").unwrap();
    }

    #[test]
    fn every_language_gets_sources_a_makefile_a_readme_and_its_contract() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, source) in [
            (Lang::Rust, "src/lib.rs"),
            (Lang::C, "operator.c"),
            (Lang::Python, "app.py"),
            (Lang::Js, "operator.js"),
        ] {
            let name = format!("op-{}", lang.title().to_lowercase());
            let p = create(&name, lang, dir.path(), None).unwrap();
            for f in [
                source,
                "Makefile",
                "README.md",
                "topology.yaml",
                "test/expected.jsonl",
            ] {
                let text = std::fs::read_to_string(p.join(f)).unwrap();
                assert!(
                    !text.contains("{{"),
                    "{f} of {lang:?} has a placeholder left"
                );
            }
            assert_eq!(p.join("wit/worlds.wit").exists(), lang != Lang::Rust);
            let e = create(&name, lang, dir.path(), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("already exists"), "{e}");
        }
        // Nothing half-written is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| n.starts_with("op-")), "{names:?}");
        let e = create("x", Lang::Rust, dir.path(), Some(Path::new("/nonexistent")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--sdk"), "{e}");
    }
}
