//! `flowlet sdk`: what operator authors in other languages need from flowlet — the WIT contract,
//! C bindings of a world, and a component made from a core Wasm module (C, or anything else that
//! compiles to `wasm32-wasi` preview 1) with the WASI reactor adapter of the wasmtime flowlet
//! runs. With these, a C operator needs clang, wasi-libc and flowlet; no other CLI.

use std::path::Path;

use anyhow::{Context, bail};

/// The WIT files of flowlet's contract, as this flowlet understands it.
pub const WIT: [(&str, &str); 3] = [
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// The worlds an operator can implement.
pub const WORLDS: [&str; 3] = ["processor", "stateful-processor", "aggregator"];

#[derive(clap::Subcommand)]
pub enum Sdk {
    /// Write flowlet's WIT files (the contract operators implement) into a directory.
    Wit {
        #[arg(short, long, default_value = "wit")]
        out: std::path::PathBuf,
    },
    /// Generate C bindings of a world (WORLD.h, WORLD.c, WORLD_component_type.o) into a directory.
    CBindings {
        /// processor | stateful-processor | aggregator
        #[arg(long, default_value = "processor")]
        world: String,
        #[arg(short, long, default_value = "gen")]
        out: std::path::PathBuf,
    },
    /// Write the Python SDK (the `flowlet` package of this flowlet's contract) into a directory.
    Python {
        #[arg(short, long, default_value = "sdk-python")]
        out: std::path::PathBuf,
    },
    /// Write the JavaScript SDK (the npm package `@flowlet/sdk`, with its component build) into a
    /// directory.
    Js {
        #[arg(short, long, default_value = "sdk-js")]
        out: std::path::PathBuf,
    },
    /// Write the C SDK (flowlet.h, flowlet.c and the test harness) into a directory.
    C {
        #[arg(short, long, default_value = "sdk-c")]
        out: std::path::PathBuf,
    },
    /// Make a component of a core Wasm module built for wasm32-wasi (preview 1, reactor) that
    /// links a `*_component_type.o` from `c-bindings`.
    Componentize {
        module: std::path::PathBuf,
        #[arg(short, long)]
        out: std::path::PathBuf,
    },
}

pub fn run(which: Sdk) -> anyhow::Result<()> {
    match which {
        Sdk::Wit { out } => write_wit(&out),
        Sdk::CBindings { world, out } => {
            for name in c_bindings(&world, &out)? {
                println!("{}", out.join(name).display());
            }
            Ok(())
        }
        Sdk::Python { out } => write_sdk(crate::sdks::Language::Python, &out),
        Sdk::Js { out } => write_sdk(crate::sdks::Language::Js, &out),
        Sdk::C { out } => write_sdk(crate::sdks::Language::C, &out),
        Sdk::Componentize { module, out } => {
            let core = std::fs::read(&module)
                .with_context(|| format!("cannot read {}", module.display()))?;
            let component = componentize(&core)
                .with_context(|| format!("cannot make a component of {}", module.display()))?;
            std::fs::write(&out, component)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("{}", out.display());
            Ok(())
        }
    }
}

fn write_sdk(language: crate::sdks::Language, out: &Path) -> anyhow::Result<()> {
    crate::sdks::write(language, out)?;
    println!("{}", out.display());
    Ok(())
}

/// Write the WIT files into `dir` (created if needed).
pub fn write_wit(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in WIT {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The contract, parsed.
fn resolve() -> anyhow::Result<(wit_parser::Resolve, wit_parser::PackageId)> {
    let mut resolve = wit_parser::Resolve::default();
    let mut map = wit_parser::SourceMap::default();
    for (name, text) in WIT {
        map.push_str(name, text);
    }
    let group = map
        .parse()
        .map_err(|(_, e)| anyhow::anyhow!("flowlet's own WIT does not parse: {e:?}"))?;
    let package = resolve
        .push_group(group)
        .map_err(|e| anyhow::anyhow!("flowlet's own WIT does not resolve: {e}"))?;
    Ok((resolve, package))
}

/// Write C bindings of `world` into `dir`; the names of the files written.
pub fn c_bindings(world: &str, dir: &Path) -> anyhow::Result<Vec<String>> {
    if !WORLDS.contains(&world) {
        bail!(
            "there is no world `{world}` in flowlet's contract; choose one of {}",
            WORLDS.join(", ")
        );
    }
    let (mut resolve, package) = resolve()?;
    let id = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| anyhow::anyhow!("world `{world}`: {e}"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, id, &mut files)
        .map_err(|e| anyhow::anyhow!("cannot generate C bindings of `{world}`: {e}"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = Vec::new();
    for (name, bytes) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        names.push(name.to_owned());
    }
    Ok(names)
}

/// A component of a core module built for wasm32-wasi preview 1 (reactor), with the reactor
/// adapter of the wasmtime version flowlet runs.
pub fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    if !core.starts_with(b"\0asm") {
        bail!("this is not a Wasm module (no `\\0asm` header)");
    }
    if core.get(4..8) != Some(&[1u8, 0, 0, 0][..]) {
        bail!("this is already a component (or not a core module): nothing to do");
    }
    // Which world the module says it implements (from the linked `*_component_type.o`).
    let (_, bindgen) = wit_component::metadata::decode(core)
        .map_err(|e| anyhow::anyhow!("this is not a valid core module: {e:#}"))?;
    let world = &bindgen.resolve.worlds[bindgen.world];
    if world.exports.is_empty() {
        bail!(
            "the module implements no flowlet world: link the `WORLD_component_type.o` that `flowlet sdk c-bindings` writes"
        );
    }
    let component = wit_component::ComponentEncoder::default()
        .module(core)
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\n(link the `WORLD_component_type.o` that `flowlet sdk c-bindings` writes, so the module says which world it implements)"
            )
        })?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| anyhow::anyhow!("the WASI adapter: {e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\n(build with `--target=wasm32-wasi -mexec-model=reactor`, and export every function of the world)"
            )
        })?;
    Ok(component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_of_every_world() {
        let dir = tempfile::tempdir().unwrap();
        for world in WORLDS {
            let names = c_bindings(world, dir.path()).unwrap();
            let stem = world.replace('-', "_");
            assert!(names.contains(&format!("{stem}.h")), "{names:?}");
            assert!(
                names.contains(&format!("{stem}_component_type.o")),
                "{names:?}"
            );
        }
        let e = c_bindings("transformer", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("processor, stateful-processor, aggregator"),
            "{e}"
        );
    }

    #[test]
    fn componentize_refuses_what_it_cannot_wrap() {
        let e = componentize(b"hello").unwrap_err().to_string();
        assert!(e.contains("not a Wasm module"), "{e}");
        let e = componentize(b"\0asm\x0d\0\x01\0").unwrap_err().to_string();
        assert!(e.contains("already a component"), "{e}");
        // A core module with no component type: says what to link.
        let e = format!("{:#}", componentize(b"\0asm\x01\0\0\0").unwrap_err());
        assert!(e.contains("component_type.o"), "{e}");
    }
}
