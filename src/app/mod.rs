//! The host assembled from [`HostOptions`] (resolved from a config by [`options`]):
//! media plane, Telegram side, call manager, plugins and the HTTP API, with the pump
//! that carries the manager's events to the plugins. `wasmcalls run` is this plus
//! signal handling; `wasmcalls dev` adds [`crate::runtime::dev`].

pub mod options;
pub mod tenants;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use options::{HostOptions, LogFormat, PluginPlan, ResolveError, resolve};
pub use tenants::{Applied, Tenants};

use crate::api::{ApiState, spawn};
use crate::calls::{CallManager, HostEvent, ManagerOptions};
use crate::media::{EncoderConfig, MediaError, MediaPlane};
use crate::runtime::build::build;
use crate::runtime::{Capacity, LoadReport, PluginError, PluginHost};
use crate::telegram::loopback::Loopback;
use crate::telegram::{Connected, Telegram, TelegramError, connect};

/// Why a host could not start. (A plugin that fails to build or load does not stop
/// it: that is reported in [`App::loaded`] and the others run.)
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("connecting to Telegram: {0}")]
    Telegram(#[from] TelegramError),
    #[error("starting the media plane: {0}")]
    Media(#[from] MediaError),
    #[error("host.api_port: cannot listen on {addr} ({source}); is another wasmcalls running?")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("starting the plugin runtime: {0}")]
    Plugins(#[from] PluginError),
}

/// A running host.
pub struct App {
    pub media: Arc<MediaPlane>,
    pub telegram: Arc<dyn Telegram>,
    /// The loopback Telegram, when the host runs on it.
    pub loopback: Option<Loopback>,
    /// Where the loopback's HTTP control endpoint listens, if configured.
    pub control: Option<SocketAddr>,
    pub manager: CallManager,
    pub plugins: Arc<PluginHost>,
    /// The plugins as the config says, changed live (reload, admin API).
    pub tenants: Arc<Tenants>,
    /// Where the HTTP API (`POST /api`, `/healthz`, `/metrics`, `/status`) listens.
    pub api: SocketAddr,
    /// Each configured plugin's load result, in config order.
    pub loaded: Vec<(String, Result<LoadReport, PluginError>)>,
    tap: broadcast::Sender<HostEvent>,
    tasks: Vec<JoinHandle<()>>,
    _side: Connected,
}

impl App {
    /// Connects the Telegram side the options name, then starts everything on it.
    pub async fn start(options: &HostOptions) -> Result<App, StartError> {
        let side = connect(&options.telegram).await?;
        App::start_on(options, side).await
    }

    /// Starts the host on an already connected Telegram side; a plugin that fails to
    /// build or load is reported and skipped, the others run.
    pub async fn start_on(options: &HostOptions, side: Connected) -> Result<App, StartError> {
        let mut tasks = Vec::new();
        let (media, media_events) = MediaPlane::start(options.pacer.clone())?;
        let media = Arc::new(media);
        // Bound before anything else is built, so `get-port-server` reports the real port.
        let listen = options.api.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen { addr: listen, source })?;
        let api = listener.local_addr().map_err(|source| StartError::Listen { addr: listen, source })?;
        let (manager, mut events) = CallManager::start(
            media.clone(),
            media_events,
            side.telegram.clone(),
            ManagerOptions {
                bind_ip: side.media_ip,
                api_port: api.port(),
                encoder: EncoderConfig::default(),
                files_base: options.folder.clone(),
                media_cache: options.media_cache.clone(),
                recovery_window: options.recovery_window,
            },
        );
        let capacity = Capacity {
            compiler: options.compiler.unwrap_or_default(),
            plugins: options.max_plugins.max(1),
            memory_mb: options.max_plugin_memory_mb,
        };
        let plugins = Arc::new(PluginHost::new(manager.clone(), options.cache.clone(), capacity)?);

        // What no plugin's URL may reach, whatever it is granted: this host's own endpoints.
        let own: Vec<std::net::SocketAddr> = std::iter::once(api).chain(side.control).collect();
        let mut loaded = Vec::new();
        for p in &options.plugins {
            let result = match &p.build {
                Some(b) => build(&p.spec.name, b).await,
                None => Ok(()),
            };
            let mut spec = p.spec.clone();
            spec.grants.protect(&own);
            let result = match result {
                Ok(()) => plugins.load(spec).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!("{e}; the other plugins keep running");
            }
            loaded.push((p.spec.name.clone(), result));
        }

        let routes = options
            .plugins
            .iter()
            .zip(&loaded)
            .filter(|(p, (_, r))| p.api && r.is_ok())
            .map(|(p, _)| p.spec.name.clone())
            .collect();
        let state =
            Arc::new(ApiState::new(plugins.clone(), manager.clone(), media.clone(), options.api.clone(), routes));
        // What runs is what loaded: a plugin that failed is retried by the next reload.
        let mut running = options.clone();
        running.plugins.retain(|p| loaded.iter().any(|(n, r)| *n == p.spec.name && r.is_ok()));
        let tenants = Tenants::new(plugins.clone(), state.clone(), own, running);
        state.set_admin(tenants.clone());
        let tap = broadcast::channel(1024).0;
        state.set_events(tap.clone());
        if let Some(lb) = &side.loopback {
            state.set_loopback(lb.clone());
        }
        tasks.push(spawn(listener, state));
        tracing::info!("custom API on http://{api}/api");
        tracing::info!("dashboard on http://{api}/ui");

        let pump_plugins = plugins.clone();
        let pump_tap = tap.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                tracing::info!(?ev, "event");
                pump_plugins.dispatch(&ev);
                let _ = pump_tap.send(ev);
            }
        }));
        match side.telegram.identity() {
            Ok(me) => plugins.start_all(&me),
            Err(e) => {
                tracing::warn!("the Telegram side names no account ({e}); plugins start with id 0");
                plugins.start_all(&crate::telegram::Identity { user: 0, bot: None });
            }
        }
        Ok(App {
            media,
            telegram: side.telegram.clone(),
            loopback: side.loopback.clone(),
            control: side.control,
            manager,
            plugins,
            tenants,
            api,
            loaded,
            tap,
            tasks,
            _side: side,
        })
    }

    /// Every event from now on, after it was queued for the plugins. Each plugin
    /// takes its events in order, so a later request to a plugin sees this one handled.
    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.tap.subscribe()
    }

    /// The plugins that failed to load, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &PluginError)> {
        self.loaded.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
    }

    /// Shuts down gently: `/readyz` turns 503 and joins are refused at once, calls get
    /// up to `grace` to end by themselves, then every call is left (Telegram sees each
    /// leave) and every recording closes its files. How many calls were still playing
    /// when the grace ran out.
    pub async fn drain(self, grace: Duration) -> usize {
        self.manager.drain();
        let calls = self.manager.joined_chats().len();
        tracing::info!("draining: no new calls; {calls} call(s) get {} s to end by themselves", grace.as_secs());
        let deadline = tokio::time::Instant::now() + grace;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !self.manager.joined_chats().is_empty() && tokio::time::Instant::now() < deadline {
            tick.tick().await;
        }
        let left = self.manager.joined_chats().len();
        if left > 0 {
            tracing::info!("grace over: leaving {left} call(s)");
        }
        self.shutdown().await;
        left
    }

    /// Leaves every call, waits for recordings to close their files (a few seconds at
    /// most), and stops the background tasks.
    pub async fn shutdown(self) {
        self.manager.leave_all().await;
        if tokio::time::timeout(Duration::from_secs(5), self.manager.recordings_finished()).await.is_err() {
            tracing::warn!("a recording did not close its files within 5 s; they are playable up to their last flush");
        }
        for t in self.tasks {
            t.abort();
        }
        for c in self.loopback.iter().flat_map(Loopback::calls) {
            let _ = c.finish_recording();
        }
    }
}
