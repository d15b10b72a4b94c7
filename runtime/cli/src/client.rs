//! `flowlet deploy | swap | status`: the command line's client of `flowlet serve`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A connection to a server.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(300)))
            .build()
            .into();
        Self {
            base: server.trim_end_matches('/').to_owned(),
            token,
            agent,
        }
    }

    fn finish(
        &self,
        what: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut r =
            r.with_context(|| format!("cannot reach the flowlet server at {}", self.base))?;
        let status = r.status();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = v
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            bail!("{what}: {} {msg}", status.as_u16());
        }
        Ok(v)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .auth(self.agent.get(format!("{}{path}", self.base)))
            .call();
        self.finish(&format!("GET {path}"), r)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = match method {
            "PUT" => self.auth(self.agent.put(url)).send_json(body),
            _ => self.auth(self.agent.post(url)).send_json(body),
        };
        self.finish(&format!("{method} {path}"), r)
    }

    /// Upload a component file as `name@version`.
    pub fn upload(&self, file: &Path, name: &str, version: &str) -> anyhow::Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let url = format!("{}/v1/plugins?name={name}&version={version}", self.base);
        let r = self
            .auth(self.agent.post(url))
            .content_type("application/wasm")
            .send(&bytes[..]);
        self.finish(&format!("uploading {}", file.display()), r)
    }

    /// Upload a plugin file under its file name and the start of its digest; returns its
    /// `sha256:` digest.
    fn upload_file(&self, file: &Path) -> anyhow::Result<String> {
        use sha2::Digest;
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| flowlet_manifest::valid_name(s))
            .unwrap_or("plugin");
        let v = self.upload(file, name, &format!("sha256-{}", &hex[..12]))?;
        Ok(v["digest"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(format!("sha256:{hex}")))
    }

    /// Deploy a manifest: its plugin files are uploaded, then the pipeline is created with
    /// its paths resolved against the manifest's directory.
    pub fn deploy(&self, manifest: &Path, name: Option<&str>) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let options = flowlet_manifest::Options {
            registry: true,
            ..crate::options()
        };
        let m = match flowlet_manifest::parse_str(&text, manifest, &options) {
            Ok(m) => m,
            Err(d) => bail!("{d}"),
        };
        let mut plugins = serde_json::Map::new();
        for (op, spec) in &m.operators {
            if let flowlet_manifest::PluginRef::Path(p) = &spec.plugin {
                let digest = self.upload_file(&m.resolve(p))?;
                plugins.insert(op.clone(), json!(digest));
            }
        }
        let base = std::path::absolute(&m.base_dir)?;
        let body = json!({
            "manifest": text,
            "name": name.unwrap_or(&m.name),
            "base-dir": base,
            "plugins": plugins,
        });
        self.send_json("POST", "/v1/pipelines", &body)
    }

    /// Swap an operator's plugin; a path is uploaded first.
    pub fn swap(&self, pipeline: &str, operator: &str, plugin: &str) -> anyhow::Result<Value> {
        let id = match flowlet_manifest::PluginRef::parse(plugin) {
            flowlet_manifest::PluginRef::Path(p) => self.upload_file(&p)?,
            _ => plugin.to_owned(),
        };
        self.send_json(
            "PUT",
            &format!("/v1/pipelines/{pipeline}/operators/{operator}"),
            &json!({ "plugin": id }),
        )
    }
}
