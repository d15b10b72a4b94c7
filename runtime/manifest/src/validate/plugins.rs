//! Pass `plugins`: every operator's plugin can be found (a built-in, a file, a registry
//! reference where a registry resolves it) and its granted directories exist.

use super::{Ctx, not_a_file};
use crate::diag::{Diagnostics, did_you_mean};
use crate::model::{Operator, PluginRef};

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    for (name, op) in &cx.m.operators {
        plugin(cx, name, op, d);
        for host in op.grants.dirs.values() {
            if cx.opts.check_files && !cx.m.resolve(host).is_dir() {
                d.error(
                    cx.at(name),
                    format!(
                        "operator `{name}`: granted directory `{}` does not exist",
                        cx.m.resolve(host).display()
                    ),
                );
            }
        }
    }
}

fn plugin(cx: &Ctx<'_>, name: &str, op: &Operator, d: &mut Diagnostics) {
    let (m, opts, at) = (cx.m, cx.opts, cx.at(name));
    match &op.plugin {
        PluginRef::Builtin(b) if op.join.is_none() && !opts.builtins.iter().any(|x| x == b) => {
            let hint = did_you_mean(b, opts.builtins.iter().map(String::as_str))
                .unwrap_or_else(|| format!("built-in operators: {}", opts.builtins.join(", ")));
            d.error_hint(at, format!("operator `{name}`: there is no built-in operator `{b}`"), hint);
        }
        PluginRef::Path(p) if opts.check_files && !m.resolve(p).is_file() => d.error_hint(
            at,
            format!("operator `{name}`: plugin file `{}` {}", m.resolve(p).display(), not_a_file(&m.resolve(p))),
            "give the path of the component's .wasm file, relative to the manifest (build the plugin first, see the README)",
        ),
        PluginRef::Digest(hex) if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            d.error_hint(
                at,
                format!("operator `{name}`: `sha256:{hex}` is not a plugin digest"),
                "a digest is `sha256:` and 64 hexadecimal digits, as `GET /v1/plugins` lists them",
            )
        }
        PluginRef::Registry { name: plugin, version }
            if !crate::valid_name(plugin) || !crate::valid_name(version) =>
        {
            d.error_hint(
                at,
                format!("operator `{name}`: `{plugin}@{version}` is not a valid plugin reference"),
                "names and versions are letters, digits, `.`, `_`, `-` and `+`, starting with a letter or digit",
            )
        }
        PluginRef::Registry { .. } | PluginRef::Digest(_) if !opts.registry => d.error_hint(
            at,
            format!(
                "operator `{name}`: plugin `{}` names a plugin of a `flowlet serve` registry",
                op.plugin
            ),
            "`flowlet run` loads component files: give the path of the .wasm, or deploy the manifest with `flowlet deploy`",
        ),
        _ => {}
    }
}
