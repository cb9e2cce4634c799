//! The host assembled from a [`Config`]: media plane, Telegram backend (real
//! Telegram when `[telegram]` is configured, else the loopback), call manager and
//! plugins, with the pump that carries the manager's events to the plugins.
//! `wasmcalls run` is this plus signal handling.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::calls::{CallManager, HostEvent, ManagerConfig};
use crate::config::{Config, settings_json};
use crate::media::{EncoderConfig, MediaPlane, PacerConfig};
use crate::runtime::grants::Grants;
use crate::runtime::{Capacity, LoadReport, PluginError, PluginHost, PluginSpec};
use crate::telegram::Backend;
use crate::telegram::loopback::{Loopback, LoopbackOptions, http};
use crate::telegram::mtproto::{TelegramOptions, session};

/// A running host.
pub struct App {
    pub media: Arc<MediaPlane>,
    /// The loopback Telegram, when the host runs on it.
    pub loopback: Option<Loopback>,
    pub manager: CallManager,
    pub plugins: Arc<PluginHost>,
    /// Where the loopback's HTTP control endpoint listens, if configured.
    pub control: Option<SocketAddr>,
    /// Where the HTTP API (`POST /api`, `/healthz`, `/metrics`, `/status`) listens.
    pub api: SocketAddr,
    /// Each configured plugin's load result, in config order.
    pub loaded: Vec<(String, Result<LoadReport, PluginError>)>,
    tap: broadcast::Sender<HostEvent>,
    tasks: Vec<JoinHandle<()>>,
    _watch: Option<crate::runtime::watch::WatchHandle>,
}

impl App {
    /// Starts everything; a plugin that fails to build or load is reported and
    /// skipped, the others run.
    pub async fn start(config: &Config) -> Result<App> {
        match &config.telegram {
            Some(t) => {
                let path = config.resolve(&t.session);
                let opts = TelegramOptions::from_config(t).map_err(anyhow::Error::msg)?;
                let telegram = session::start(t, &path, opts).await.context("connecting to Telegram")?;
                let media_ip = session::media_ip(t);
                tracing::info!(%media_ip, "media sockets bind this address");
                App::start_with(config, Arc::new(telegram), media_ip).await
            }
            None => {
                let (loopback, control, tasks) = start_loopback(config).await?;
                let backend = Arc::new(loopback.clone());
                let mut app = App::start_with(config, backend, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
                app.loopback = Some(loopback);
                app.control = control;
                app.tasks.extend(tasks);
                Ok(app)
            }
        }
    }

    /// Starts the host on any `backend`, with media sockets on `media_ip`.
    pub async fn start_with(config: &Config, backend: Arc<dyn Backend>, media_ip: IpAddr) -> Result<App> {
        let mut tasks = Vec::new();
        let (media, media_events) = MediaPlane::start(PacerConfig::default())?;
        let media = Arc::new(media);
        // Bound before anything else is built, so `get-port-server` reports the real port.
        let api_addr = SocketAddr::new(config.host.api_bind, config.host.api_port);
        let api_listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("host.api_port: cannot listen on {api_addr} (is another wasmcalls running?)"))?;
        let api = api_listener.local_addr()?;
        let (manager, mut events) = CallManager::start(
            media.clone(),
            media_events,
            backend.clone(),
            ManagerConfig {
                bind_ip: media_ip,
                api_port: api.port(),
                encoder: EncoderConfig::default(),
                files_base: config.base.clone(),
            },
        );
        let capacity = Capacity {
            plugins: config.plugins.len().max(1),
            memory_mb: config.plugins.iter().map(|p| p.limits.memory_mb).max().unwrap_or(64),
        };
        let plugins = Arc::new(
            PluginHost::new(manager.clone(), Some(config.cache_dir()), capacity)
                .map_err(|e| anyhow::anyhow!("{e:#}"))?,
        );

        let mut loaded = Vec::new();
        for p in &config.plugins {
            let result = build(config, p).await;
            let result = match result.and_then(|()| {
                Grants::resolve(&p.grants, &config.base)
                    .map_err(|reason| PluginError::Grants { name: p.name.clone(), reason })
            }) {
                Ok(grants) => {
                    let spec = PluginSpec {
                        name: p.name.clone(),
                        wasm: config.resolve(&p.wasm),
                        settings: settings_json(&p.settings),
                        limits: p.limits,
                        grants,
                    };
                    plugins.load(spec).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!("{e}; the other plugins keep running");
            }
            loaded.push((p.name.clone(), result));
        }

        let routes = config
            .plugins
            .iter()
            .zip(&loaded)
            .filter(|(p, (_, r))| p.api && r.is_ok())
            .map(|(p, _)| p.name.clone())
            .collect();
        let state = Arc::new(crate::http::ApiState::new(
            plugins.clone(),
            manager.clone(),
            media.clone(),
            crate::http::Limits::from_config(config),
            routes,
            config.host.default_plugin.clone(),
        ));
        tasks.push(crate::http::spawn(api_listener, state));
        tracing::info!("custom API on {}", crate::http::describe(api));

        let pump_plugins = plugins.clone();
        let tap = broadcast::channel(1024).0;
        let pump_tap = tap.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                tracing::info!(?ev, "event");
                pump_plugins.dispatch(&ev);
                let _ = pump_tap.send(ev);
            }
        }));
        let watch = if config.host.hot_reload {
            let targets: Vec<_> = config
                .plugins
                .iter()
                .zip(&loaded)
                .filter(|(_, (_, r))| r.is_ok())
                .map(|(p, _)| (p.name.clone(), config.resolve(&p.wasm)))
                .collect();
            match crate::runtime::watch::watch(plugins.clone(), targets) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!("hot reload is off: cannot watch the plugin files: {e}");
                    None
                }
            }
        } else {
            None
        };
        let my_id = backend.me().context("reading the account's user id")?;
        plugins.start_all(my_id);
        Ok(App { media, loopback: None, manager, plugins, control: None, api, loaded, tap, tasks, _watch: watch })
    }

    /// The loopback Telegram; panics on another backend (for tests and benches that start on it).
    pub fn loopback(&self) -> &Loopback {
        self.loopback.as_ref().expect("this host runs on the loopback Telegram")
    }

    /// Every event from now on, after it was queued for the plugins. Each plugin
    /// takes its events in order, so a later request to a plugin sees this one handled.
    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.tap.subscribe()
    }

    /// Leaves every call and stops the background tasks.
    pub async fn shutdown(self) {
        self.manager.leave_all().await;
        for t in self.tasks {
            t.abort();
        }
        for c in self.loopback.iter().flat_map(Loopback::calls) {
            let _ = c.finish_recording();
        }
    }
}

/// The loopback Telegram `[loopback]` describes, with its control endpoint if configured.
async fn start_loopback(config: &Config) -> Result<(Loopback, Option<SocketAddr>, Vec<JoinHandle<()>>)> {
    let record_dir = config.loopback.record_dir.as_ref().map(|d| config.resolve(d));
    if let Some(d) = &record_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating the record folder {}", d.display()))?;
    }
    let loopback = Loopback::new(LoopbackOptions {
        record_dir,
        user_id: config.loopback.user_id,
        chats: (!config.loopback.chats.is_empty()).then(|| config.loopback.chats.clone()),
        ..Default::default()
    });
    let mut tasks = Vec::new();
    let control = match config.loopback.control {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("loopback.control: cannot listen on {addr}"))?;
            let bound = listener.local_addr()?;
            let router = http::router(loopback.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!("loopback control endpoint stopped: {e}");
                }
            }));
            tracing::info!("loopback control on http://{bound}");
            Some(bound)
        }
        None => None,
    };
    Ok((loopback, control, tasks))
}

/// Builds a plugin as its config says: its `build_command`, or cargo for a `build`
/// crate; nothing if neither is set.
pub async fn build(config: &Config, p: &crate::config::PluginConfig) -> Result<(), PluginError> {
    let dir = p.build.as_ref().map_or_else(|| config.base.clone(), |d| config.resolve(d));
    match (&p.build_command, &p.build) {
        (Some(cmd), _) => build_with(&p.name, &dir, cmd).await,
        (None, Some(_)) => build_plugin(&p.name, &dir).await,
        (None, None) => Ok(()),
    }
}

/// Runs a plugin's own build command (`sh -c`) in `dir`.
async fn build_with(name: &str, dir: &Path, cmd: &str) -> Result<(), PluginError> {
    tracing::info!(plugin = name, "building: {cmd}");
    let out = tokio::process::Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().await;
    finish_build(name, dir, out.map_err(|e| format!("cannot run `{cmd}`: {e}")))
}

/// `cargo build --release --target wasm32-wasip2` in `dir`, with its errors shown plainly.
pub async fn build_plugin(name: &str, dir: &Path) -> Result<(), PluginError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return finish_build(name, dir, Err("no Cargo.toml there to build".into()));
    }
    tracing::info!(plugin = name, "building {}", dir.display());
    let out = tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(&manifest)
        .output()
        .await;
    finish_build(name, dir, out.map_err(|e| format!("cannot run cargo: {e}")))
}

fn finish_build(name: &str, dir: &Path, out: Result<std::process::Output, String>) -> Result<(), PluginError> {
    let fail = |reason: String| PluginError::Build { name: name.to_owned(), path: dir.to_path_buf(), reason };
    let out = out.map_err(fail)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(fail(format!("the build failed:\n{}", tail.join("\n"))));
    }
    Ok(())
}

/// Fails unless every plugin loaded (for callers that need all of them).
pub fn require_all_loaded(app: &App) -> Result<()> {
    for (name, r) in &app.loaded {
        if let Err(e) = r {
            bail!("plugin {name} did not load: {e}");
        }
    }
    Ok(())
}
