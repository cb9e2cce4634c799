//! Tenants changed while the host runs, from a new config: the config file re-read
//! (SIGHUP, `wasmcalls reload`, `POST /admin/reload`) or one plugin's section put or
//! removed through the admin API. The new config is resolved and its changed plugins
//! readied before anything changes, so a change is all or nothing: what does not
//! resolve or compile is refused whole, with the reason, and the running config is
//! kept. Plugins whose spec did not change are not touched, nor are their calls.
//!
//! Changes made through the admin API last until the file is reloaded or the host
//! restarts: the file is what a reload applies. Keys outside the plugins (`[host]`,
//! `[loopback]`, `[telegram]`, `[[accounts]]`) are read at start only; a reload that
//! changes them says they need a restart.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::options::{HostOptions, resolve};
use crate::api::ApiState;
use crate::api::admin::{Admin, AdminError};
use crate::config::{Config, PluginConfig};
use crate::runtime::build::build;
use crate::runtime::watch::{WatchHandle, watch};
use crate::runtime::{PluginHost, PluginSpec};

/// The host's plugins as a config describes them, changed live.
pub struct Tenants {
    plugins: Arc<PluginHost>,
    api: Arc<ApiState>,
    /// The host's own endpoints, which no plugin's URL may reach.
    own: Vec<SocketAddr>,
    /// What runs now; held across a change, so changes apply one at a time.
    running: tokio::sync::Mutex<HostOptions>,
    watch: parking_lot::Mutex<Option<WatchHandle>>,
}

/// What a change did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Applied {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Chats whose calls were left because the plugin that joined them was removed.
    pub left: Vec<i64>,
    pub unchanged: Vec<String>,
    /// Config sections that changed but are read at start only.
    pub restart_needed: Vec<String>,
}

impl Tenants {
    pub(super) fn new(
        plugins: Arc<PluginHost>,
        api: Arc<ApiState>,
        own: Vec<SocketAddr>,
        running: HostOptions,
    ) -> Arc<Tenants> {
        let tenants = Arc::new(Tenants {
            plugins,
            api,
            own,
            running: tokio::sync::Mutex::new(running),
            watch: parking_lot::Mutex::new(None),
        });
        tenants.rewatch(&tenants.running.try_lock().expect("nobody else holds it yet"));
        tenants
    }

    /// Re-reads the config file the host started from and applies what changed.
    pub async fn reload(&self) -> Result<Applied, AdminError> {
        let mut running = self.running.lock().await;
        let file = running.config.source.file.clone();
        if file.as_os_str().is_empty() {
            return Err(AdminError::Invalid(
                "this host was started from config text, not a file: nothing to re-read".into(),
            ));
        }
        let config = Config::load(&file).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let applied = self.apply(&mut running, config).await;
        match &applied {
            Ok(a) => tracing::info!(?a, "config reloaded from {}", file.display()),
            Err(e) => tracing::error!("config reload refused, the running config is kept: {e}"),
        }
        applied
    }

    /// Adds or replaces the plugin `name` with `section` (a `[[plugins]]` entry as TOML
    /// or JSON; relative paths are relative to the config file's folder).
    pub async fn put(&self, name: &str, section: &str) -> Result<Applied, AdminError> {
        let section = parse_section(name, section)?;
        let mut running = self.running.lock().await;
        let mut config = running.config.clone();
        match config.plugins.iter_mut().find(|p| p.name == name) {
            Some(p) => *p = section,
            None => config.plugins.push(section),
        }
        self.apply(&mut running, config).await
    }

    /// Reloads the plugin `name` from its component file, as a hot reload does (state
    /// handed over; a broken file leaves the running version serving).
    pub async fn reload_plugin(&self, name: &str) -> Result<Applied, AdminError> {
        let wasm = {
            let running = self.running.lock().await;
            let plan = running.plugins.iter().find(|p| p.spec.name == name);
            plan.ok_or_else(|| AdminError::NotFound(format!("no plugin {name:?} runs here")))?.spec.wasm.clone()
        };
        match self.plugins.reload(name, &wasm).await {
            Ok(_) => Ok(Applied { replaced: vec![name.to_owned()], ..Applied::default() }),
            Err(e) => Err(AdminError::Refused(e.to_string())),
        }
    }

    /// Removes the plugin `name`, leaving the calls it joined.
    pub async fn remove(&self, name: &str) -> Result<Applied, AdminError> {
        let mut running = self.running.lock().await;
        let mut config = running.config.clone();
        let before = config.plugins.len();
        config.plugins.retain(|p| p.name != name);
        if config.plugins.len() == before {
            return Err(AdminError::NotFound(format!("no plugin {name:?} runs here")));
        }
        self.apply(&mut running, config).await
    }

    async fn apply(&self, running: &mut HostOptions, config: Config) -> Result<Applied, AdminError> {
        let next = resolve(&config).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let mut applied =
            Applied { restart_needed: start_only_changes(&running.config, &config), ..Applied::default() };
        // Readied first, all of them: a plugin that cannot be refuses the whole change.
        let mut ready = Vec::new();
        for plan in &next.plugins {
            let spec = self.protected(&plan.spec);
            let before = running.plugins.iter().find(|p| p.spec.name == spec.name);
            if before.is_some_and(|b| self.protected(&b.spec) == spec) {
                applied.unchanged.push(spec.name.clone());
                continue;
            }
            if let Some(b) = &plan.build {
                build(&spec.name, b).await.map_err(|e| AdminError::Refused(e.to_string()))?;
            }
            ready.push(self.plugins.prepare(&spec).await.map_err(|e| AdminError::Refused(e.to_string()))?);
        }
        for gone in running.plugins.iter().filter(|p| !next.plugins.iter().any(|n| n.spec.name == p.spec.name)) {
            let left = self.plugins.remove(&gone.spec.name).await.map_err(|e| AdminError::NotFound(e.to_string()))?;
            applied.left.extend(left);
            applied.removed.push(gone.spec.name.clone());
        }
        for p in ready {
            let (name, new) = (p.name().to_owned(), p.is_new());
            self.plugins.commit(p).await.map_err(|e| AdminError::Refused(e.to_string()))?;
            if new { applied.added.push(name) } else { applied.replaced.push(name) }
        }
        self.api.set_routes(next.plugins.iter().filter(|p| p.api).map(|p| p.spec.name.clone()).collect());
        *running = next;
        self.rewatch(running);
        for section in &applied.restart_needed {
            tracing::warn!("[{section}] changed; it is read at start only: restart the host to apply it");
        }
        Ok(applied)
    }

    /// `spec` as it runs: its URLs kept off the host's own endpoints.
    fn protected(&self, spec: &PluginSpec) -> PluginSpec {
        let mut spec = spec.clone();
        spec.grants.protect(&self.own);
        spec
    }

    /// Watches the running plugins' files, when hot reload is on.
    fn rewatch(&self, running: &HostOptions) {
        if !running.hot_reload {
            return;
        }
        let targets = running.plugins.iter().map(|p| (p.spec.name.clone(), p.spec.wasm.clone())).collect();
        let handle = watch(self.plugins.clone(), targets)
            .map_err(|e| tracing::warn!("hot reload is off: cannot watch the plugin files: {e}"))
            .ok();
        *self.watch.lock() = handle;
    }
}

/// A plugin's section from the admin API: TOML (as in the config file) or JSON, named
/// by the URL (a `name` inside must agree).
fn parse_section(name: &str, text: &str) -> Result<PluginConfig, AdminError> {
    let invalid = |e: String| AdminError::Invalid(format!("the plugin section: {e}"));
    let mut table: toml::Table = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?
    } else {
        toml::from_str(text).map_err(|e| invalid(format!("not TOML: {}", e.message())))?
    };
    match table.get("name").and_then(|n| n.as_str()) {
        Some(n) if n != name => return Err(invalid(format!("it says name = {n:?} but the URL names {name:?}"))),
        _ => table.insert("name".into(), toml::Value::String(name.to_owned())),
    };
    table.try_into().map_err(|e: toml::de::Error| invalid(e.message().to_owned()))
}

/// The sections read at start only that differ between two configs.
fn start_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| c.source.text.parse::<toml::Table>().unwrap_or_default();
    let (a, b) = (table(old), table(new));
    ["host", "loopback", "telegram", "accounts"].into_iter().filter(|k| a.get(*k) != b.get(*k)).map(str::to_owned).collect()
}

impl Admin for Tenants {
    fn put(&self, name: String, section: String) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async move { Tenants::put(self, &name, &section).await.map(|a| json!(a)) })
    }

    fn reload_plugin(&self, name: String) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async move { Tenants::reload_plugin(self, &name).await.map(|a| json!(a)) })
    }

    fn remove(&self, name: String) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async move { Tenants::remove(self, &name).await.map(|a| json!(a)) })
    }

    fn reload(&self) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async move { Tenants::reload(self).await.map(|a| json!(a)) })
    }
}
