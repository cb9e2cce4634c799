//! The plugin runtime: bot logic as WebAssembly components of the `wasmcalls:bot`
//! world — `wit/v0.2` or, unchanged, `wit/v0.1` — run by wasmtime.
//!
//! One [`wasmtime::Engine`] serves every plugin ([`engine`], with the compile cache).
//! Each plugin is compiled once into a [`Compiled`] component (linked, ready to
//! instantiate) and run by its own task ([`actor`]) with its own [`Instance`], so
//! events reach each plugin in order, one at a time, and a slow or trapping plugin
//! never delays the pacer or another plugin. What a plugin may touch is its
//! [`grants`]; what it may use, its [`limits`]; its imports ([`host`]) forward to the
//! call manager. Both contract versions are linked into one linker ([`bindings`]);
//! a component runs as the version whose `handler` it exports. Around that: [`build`]
//! (from source), [`watch`] (hot reload) and [`dev`] (rebuild on save).

mod actor;
mod bindings;
pub mod build;
pub mod dev;
mod engine;
pub mod grants;
mod host;
mod instance;
pub mod limits;
mod tenants;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot};
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use engine::CompileCache;
pub use engine::{CacheOptions, Capacity, Compiler, Loaded};
pub use instance::Instance;
pub use tenants::Prepared;

use crate::calls::{CallManager, HeardAudio, HostEvent};
use crate::telegram::Identity;

/// Why a plugin could not be loaded or did not answer. A command's own failure is
/// not here: that is a [`crate::calls::CallError`] the plugin receives and handles.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {name}: cannot read {path}: {reason}")]
    Read { name: String, path: PathBuf, reason: String },
    #[error(
        "plugin {name}: {path} is not a WebAssembly component ({reason}); build it with `cargo build --target wasm32-wasip2` (or another component toolchain)"
    )]
    NotAComponent { name: String, path: PathBuf, reason: String },
    #[error(
        "plugin {name}: {path} is not a wasmcalls bot: {reason}; it must target the `bot` world of wit/v0.2 (wasmcalls:bot@0.2.2, 0.2.1 or 0.2.0) or wit/v0.1 (wasmcalls:bot@0.1.0)"
    )]
    WrongWorld { name: String, path: PathBuf, reason: String },
    #[error("plugin {name} trapped in {event}: {reason}")]
    Trap { name: String, event: &'static str, reason: String },
    /// The host could not make an instance (its pool, the kernel): not the plugin's fault.
    #[error("plugin {name}: the host could not start an instance of it: {reason}; the other plugins keep running")]
    Instantiate { name: String, reason: String },
    #[error("plugin {name} is not running")]
    Gone { name: String },
    #[error("plugin {name} is busy: its event queue is full")]
    QueueFull { name: String },
    #[error("plugin {name}: {reason}")]
    Capacity { name: String, reason: String },
    #[error(
        "plugin {name}: {path} imports {import}, which the host does not provide; {fix} (the host provides \
         wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random and wasi:sockets 0.2, and wasmcalls:bot 0.1 and 0.2)"
    )]
    UnknownImport { name: String, path: PathBuf, import: String, fix: String },
    #[error("plugin {name}: building {path} failed: {reason}")]
    Build { name: String, path: PathBuf, reason: String },
    #[error("plugin {name} is disabled after repeated traps; fix it and restart the host")]
    Disabled { name: String },
    #[error("no plugin is named {0:?}")]
    Unknown(String),
    #[error("a plugin named {0:?} is already loaded")]
    Duplicate(String),
}

impl PluginError {
    fn not_a_component(name: &str, path: &Path, wasm: &[u8], e: wasmtime::Error) -> Self {
        // A core module starts with the same magic but a different version/layer.
        let reason = if wasm.starts_with(b"\0asm\x01\0\0\0") {
            "it is a core WebAssembly module, not a component".to_owned()
        } else if !wasm.starts_with(b"\0asm") {
            "it does not start with the WebAssembly magic bytes".to_owned()
        } else {
            format!("{e:#}")
        };
        PluginError::NotAComponent { name: name.to_owned(), path: path.to_path_buf(), reason }
    }
}

/// A request for a plugin's custom API.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub path: String,
    pub body: String,
}

/// A plugin's answer to an [`ApiCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiReply {
    pub status: u16,
    pub body: String,
}

/// One event in a plugin's queue.
enum Event {
    Start(Identity),
    Host(HostEvent),
    /// A batch of a call's audio it listens to (from its own queue).
    Audio(HeardAudio),
    CustomApi(ApiCall, oneshot::Sender<Result<ApiReply, PluginError>>),
    /// Replace the running version with this one (instantiated off the event path),
    /// between two events — and, with a tenant, what it is granted and limited to.
    Swap(Box<(Compiled, Instance, Option<Tenant>)>, oneshot::Sender<Result<SwapReport, PluginError>>),
    /// Take events again after being disabled, with a clean record of traps.
    Enable,
    /// Answered once every event queued before it has been handled; the plugin never
    /// sees it.
    Barrier(oneshot::Sender<()>),
}

impl Event {
    /// Answers an event that could not be delivered (only requests wait for one).
    fn fail(self, e: PluginError) {
        match self {
            Event::CustomApi(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Event::Swap(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Event::Barrier(reply) => {
                let _ = reply.send(());
            }
            Event::Start(_) | Event::Host(_) | Event::Audio(_) | Event::Enable => {}
        }
    }
}

/// How a reload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapReport {
    /// The old version's state was handed to the new one.
    pub restored: bool,
    /// Reading, compiling (or loading from the cache) and linking, off the event path.
    pub prepare: Duration,
    /// The swap itself, on the plugin's event path: save and restore.
    pub swap: Duration,
}

/// What to load.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    pub wasm: PathBuf,
    /// Handed to the plugin as JSON by the `settings` import.
    pub settings: serde_json::Value,
    pub limits: limits::Limits,
    pub grants: grants::Grants,
}

/// How a load went, for logs and benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub loaded: Loaded,
    /// Reading plus compiling (or loading from the cache) plus linking.
    pub took: Duration,
}

/// A plugin's component, compiled and linked: ready to instantiate, again and again
/// (wasmtime's `InstancePre`).
pub struct Compiled {
    pre: Pre,
    /// Whether it was compiled or loaded from the compile cache.
    pub loaded: Loaded,
    /// Which component it is: the first 12 hex digits of its bytes' SHA-256.
    pub version: String,
}

/// Compiles the component at `path` into `cache` as a host sized by `capacity` would,
/// so such a host then loads it from the cache: for tools that prepare plugins ahead
/// of the hosts that run them (a test run, a deployment).
pub fn precompile(path: &Path, cache: CacheOptions, capacity: Capacity) -> Result<Loaded, PluginError> {
    let name = path.file_stem().map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let engine = engine::engine(capacity).map_err(|e| PluginError::Capacity {
        name: name.clone(),
        reason: format!("the WebAssembly engine cannot start: {e:#}"),
    })?;
    let wasm = std::fs::read(path).map_err(|e| PluginError::Read {
        name: name.clone(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (_, loaded, _) = CompileCache::new(cache).load(&engine, &name, path, &wasm)?;
    Ok(loaded)
}

/// The first of `component`'s imports the host has nothing for, as an error that
/// names it and says what to do; `None` if every import is one the host knows.
fn unknown_import(
    name: &str,
    path: &Path,
    component: &wasmtime::component::Component,
    engine: &Engine,
) -> Option<PluginError> {
    const PROVIDED: [&str; 6] =
        ["wasi:cli/", "wasi:clocks/", "wasi:filesystem/", "wasi:io/", "wasi:random/", "wasi:sockets/"];
    let known = |import: &str| {
        PROVIDED.iter().any(|p| import.starts_with(p) && import.contains("@0.2."))
            || (import.starts_with("wasmcalls:bot/")
                && (import.ends_with("@0.1.0") || ["@0.2.0", "@0.2.1", "@0.2.2"].iter().any(|v| import.ends_with(v))))
    };
    let ty = component.component_type();
    let (import, _) = ty.imports(engine).find(|(i, _)| !known(i))?;
    let fix = if import.starts_with("wasi:http") {
        "plugins reach the world only through the contract; a JavaScript bot built with componentize-js imports HTTP \
         unless built with `-d http fetch-event` — build it with componentize-qjs (what `wasmcalls new --lang js` \
         sets up), or drop the HTTP use"
            .to_owned()
    } else if import.starts_with("wasmcalls:bot/") {
        "rebuild it against wit/v0.2 (or wit/v0.1) as this host ships them".to_owned()
    } else {
        "rebuild it without that import (check which of its dependencies or build options pull it in)".to_owned()
    };
    Some(PluginError::UnknownImport { name: name.to_owned(), path: path.to_path_buf(), import: import.to_owned(), fix })
}

/// A linked component, by the contract version it speaks.
enum Pre {
    V1(bindings::v1::BotPre<host::PluginState>),
    V2(bindings::v2::BotPre<host::PluginState>),
}

impl Compiled {
    fn engine(&self) -> &Engine {
        match &self.pre {
            Pre::V1(p) => p.engine(),
            Pre::V2(p) => p.engine(),
        }
    }

    /// The contract version the component speaks: `0.1` or `0.2`.
    pub fn contract(&self) -> &'static str {
        match &self.pre {
            Pre::V1(_) => "0.1",
            Pre::V2(_) => "0.2",
        }
    }
}

/// What a plugin's actor counts, read by `status` and `/metrics`.
#[derive(Debug)]
pub struct PluginCounters {
    /// Events delivered without a trap.
    pub delivered: AtomicU64,
    /// Traps, each followed by a fresh instance.
    pub restarts: AtomicU64,
    /// Time an event spends in the plugin (seconds).
    pub latency: crate::metrics::AtomicHistogram,
    /// Set after a crash loop: events are refused.
    pub disabled: AtomicBool,
    /// Log lines dropped by the rate cap.
    pub logs_dropped: Arc<AtomicU64>,
    /// Hot reloads that replaced the running version.
    pub reloads: AtomicU64,
    /// The last commands it issued, oldest first.
    pub commands: Mutex<std::collections::VecDeque<CommandRecord>>,
    /// Audio batches dropped because it had not handled the ones before.
    pub audio_dropped: AtomicU64,
    /// Chats whose call it joined and has not left itself (the call may have ended
    /// since): the calls to leave when it is removed.
    pub joined: Mutex<std::collections::BTreeSet<i64>>,
    /// When its messages of the last minute were sent, for `limits.messages_per_minute`.
    pub sent: Mutex<std::collections::VecDeque<Instant>>,
    /// Commands its quotas refused.
    pub quota_refused: AtomicU64,
    /// What its URL sources and message media fetch, against its quotas.
    pub meter: Arc<crate::media::source::fetch::Meter>,
    /// The version serving ([`Compiled::version`]).
    pub version: Mutex<String>,
    /// Bytes of linear memory its instance held after its last event.
    pub memory: AtomicU64,
}

/// One command a plugin issued, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandRecord {
    /// Its name in the contract (`join`, `send`, `join-group-call` …).
    pub command: String,
    pub chat: i64,
    pub ok: bool,
}

/// Commands remembered per plugin.
const COMMANDS_KEPT: usize = 256;

impl PluginCounters {
    /// The chats it joined whose call is still joined (`live`: the host's joined chats).
    pub fn live_calls(&self, live: &[i64]) -> Vec<i64> {
        self.joined.lock().iter().copied().filter(|c| live.contains(c)).collect()
    }

    pub(crate) fn record(&self, command: &str, chat: i64, ok: bool) {
        let mut c = self.commands.lock();
        if c.len() == COMMANDS_KEPT {
            c.pop_front();
        }
        c.push_back(CommandRecord { command: command.to_owned(), chat, ok });
    }
}

impl Default for PluginCounters {
    fn default() -> Self {
        PluginCounters {
            delivered: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            latency: crate::metrics::AtomicHistogram::new(crate::metrics::LATENCY_BOUNDS),
            disabled: AtomicBool::new(false),
            logs_dropped: Default::default(),
            reloads: AtomicU64::new(0),
            commands: Mutex::default(),
            audio_dropped: AtomicU64::new(0),
            joined: Mutex::default(),
            sent: Mutex::default(),
            quota_refused: AtomicU64::new(0),
            meter: Arc::default(),
            version: Mutex::default(),
            memory: AtomicU64::new(0),
        }
    }
}

/// A plugin as a tenant of the host: who it is, what it may touch and use, and its
/// counters — everything one of its instances is made with.
#[derive(Clone)]
struct Tenant {
    name: Arc<str>,
    manager: CallManager,
    settings: Arc<str>,
    counters: Arc<PluginCounters>,
    limits: limits::Limits,
    grants: Arc<grants::Grants>,
    ears: Ears,
}

/// Audio batches queued for one plugin: ~1.6–16 s of audio, depending on the batch.
const AUDIO_QUEUE: usize = 16;

/// Where the audio a plugin listens to waits for it: a queue of its own beside its
/// events', so a batch dropped when the plugin is slow never costs it an event, and
/// its id as a listener of calls.
#[derive(Clone)]
struct Ears {
    id: u64,
    tx: mpsc::Sender<HeardAudio>,
}

impl Ears {
    /// A plugin's ears, and the end its actor reads.
    fn new() -> (Ears, mpsc::Receiver<HeardAudio>) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = mpsc::channel(AUDIO_QUEUE);
        (Ears { id: NEXT.fetch_add(1, Ordering::Relaxed), tx }, rx)
    }
}

/// A running plugin: its queue and who it is.
struct Plugin {
    tx: mpsc::Sender<Event>,
    tenant: Tenant,
}

/// Counters of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginStatus {
    pub name: String,
    /// Events delivered without a trap.
    pub delivered: u64,
    /// Traps, each followed by a fresh instance.
    pub restarts: u64,
    pub queued: usize,
    /// Disabled after a crash loop.
    pub disabled: bool,
    /// Log lines dropped by the rate cap.
    pub logs_dropped: u64,
    /// Hot reloads that replaced the running version.
    pub reloads: u64,
    /// Audio batches dropped because it was slower than the audio it listens to.
    #[serde(default)]
    pub audio_dropped: u64,
    /// The component serving: the first 12 hex digits of its SHA-256.
    #[serde(default)]
    pub version: String,
    /// Linear memory its instance holds, in KiB.
    #[serde(default)]
    pub memory_kib: u64,
}

/// The plugins of one host.
pub struct PluginHost {
    reloads: broadcast::Sender<(String, Result<SwapReport, PluginError>)>,
    engine: Engine,
    capacity: Capacity,
    linker: Linker<host::PluginState>,
    cache: CompileCache,
    manager: CallManager,
    plugins: Mutex<Vec<Plugin>>,
    /// The accounts `on-start` was given, for plugins added later.
    me: Mutex<Option<Identity>>,
}

impl PluginHost {
    /// A host for up to `capacity` plugins commanding `manager`, caching compiled code
    /// as `cache` says.
    pub fn new(manager: CallManager, cache: CacheOptions, capacity: Capacity) -> Result<Self, PluginError> {
        let setup = |e: wasmtime::Error| PluginError::Capacity {
            name: "(engine)".into(),
            reason: format!("the WebAssembly engine cannot start: {e:#}"),
        };
        let engine = engine::engine(capacity).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        bindings::v1::Bot::add_to_linker::<_, HasSelf<host::PluginState>>(&mut linker, |s| s).map_err(setup)?;
        bindings::v2::Bot::add_to_linker::<_, HasSelf<host::PluginState>>(&mut linker, |s| s).map_err(setup)?;
        Ok(PluginHost {
            reloads: broadcast::channel(64).0,
            engine,
            capacity,
            linker,
            cache: CompileCache::new(cache),
            manager,
            plugins: Mutex::new(Vec::new()),
            me: Mutex::new(None),
        })
    }

    /// Compiles (or loads from cache), links and starts a plugin. Compilation runs on a
    /// blocking thread, off the async workers.
    pub async fn load(&self, spec: PluginSpec) -> Result<LoadReport, PluginError> {
        let t0 = Instant::now();
        self.admit(&spec)?;
        let compiled = self.compile(&spec.name, &spec.wasm).await?;
        let (tenant, audio) = self.tenant(&spec);
        // The first instance of a component pays one-time setup (~150 µs measured) that
        // should not land on the first event's path, and a component that cannot be
        // instantiated is refused now rather than later.
        drop(Instance::new(&tenant, &compiled).await?);
        let loaded = compiled.loaded;
        let (tx, rx) = mpsc::channel(spec.limits.queue.max(1));
        tokio::spawn(actor::Actor { tenant: tenant.clone(), compiled }.run(rx, audio));
        self.plugins.lock().push(Plugin { tx, tenant });
        let report = LoadReport { loaded, took: t0.elapsed() };
        tracing::info!(plugin = %spec.name, "loaded {} ({:?}, {:.1} ms)", spec.wasm.display(), loaded, report.took.as_secs_f64() * 1e3);
        Ok(report)
    }

    /// Refuses a plugin the host has no room for.
    fn admit(&self, spec: &PluginSpec) -> Result<(), PluginError> {
        let plugins = self.plugins.lock();
        if plugins.iter().any(|p| *p.tenant.name == *spec.name) {
            return Err(PluginError::Duplicate(spec.name.clone()));
        }
        if plugins.len() >= self.capacity.plugins {
            let reason =
                format!("the host was sized for {} plugins ([host] max_plugins raises it)", self.capacity.plugins);
            return Err(PluginError::Capacity { name: spec.name.clone(), reason });
        }
        self.admit_memory(spec)
    }

    /// Refuses a plugin whose memory cap is above what the host's instance slots hold.
    fn admit_memory(&self, spec: &PluginSpec) -> Result<(), PluginError> {
        if spec.limits.memory_mb > self.capacity.memory_mb {
            let reason = format!(
                "limits.memory_mb = {} is above the host's {} MiB ([host] max_plugin_memory_mb raises it)",
                spec.limits.memory_mb, self.capacity.memory_mb
            );
            return Err(PluginError::Capacity { name: spec.name.clone(), reason });
        }
        Ok(())
    }

    fn tenant(&self, spec: &PluginSpec) -> (Tenant, mpsc::Receiver<HeardAudio>) {
        let (ears, audio) = Ears::new();
        (self.tenant_with(spec, Arc::default(), ears), audio)
    }

    /// The tenant `spec` describes, counting into `counters` and hearing through `ears`
    /// (a new version of a running plugin keeps both).
    fn tenant_with(&self, spec: &PluginSpec, counters: Arc<PluginCounters>, ears: Ears) -> Tenant {
        let l = spec.limits;
        counters.meter.set_limits(l.download_mb_per_hour << 20, l.url_kbps * 1000 / 8);
        let mut grants = spec.grants.clone();
        grants.meter(counters.meter.clone());
        Tenant {
            name: spec.name.as_str().into(),
            manager: self.manager.clone(),
            settings: spec.settings.to_string().into(),
            counters,
            limits: spec.limits,
            grants: Arc::new(grants),
            ears,
        }
    }

    /// Reads, compiles (or loads from cache) and links a component, off the event path.
    pub async fn compile(&self, name: &str, path: &Path) -> Result<Compiled, PluginError> {
        let wasm = tokio::fs::read(path).await.map_err(|e| PluginError::Read {
            name: name.to_owned(),
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (engine, cache, n, p) = (self.engine.clone(), self.cache.clone(), name.to_owned(), path.to_path_buf());
        let (component, loaded, digest) = tokio::task::spawn_blocking(move || {
            let loaded = cache.load(&engine, &n, &p, &wasm)?;
            engine::prepare_images(&n, &p, &loaded.0)?;
            Ok(loaded)
        })
        .await
        .map_err(|e| PluginError::Gone { name: format!("{name} (compiler: {e})") })??;
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            name: name.to_owned(),
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        if let Some(e) = unknown_import(name, path, &component, &self.engine) {
            return Err(e);
        }
        let linked = self.linker.instantiate_pre(&component).map_err(wrong_world)?;
        // The newest version whose `handler` the component exports.
        let pre = match bindings::v2::BotPre::new(linked.clone()) {
            Ok(p) => Pre::V2(p),
            Err(v2) => match bindings::v1::BotPre::new(linked) {
                Ok(p) => Pre::V1(p),
                Err(v1) => {
                    let reason = format!("for v0.2: {v2:#}; for v0.1: {v1:#}");
                    return Err(PluginError::WrongWorld { name: name.to_owned(), path: path.to_path_buf(), reason });
                }
            },
        };
        Ok(Compiled { pre, loaded, version: digest[..12].to_owned() })
    }

    /// A fresh instance of `compiled`, as `spec` describes the plugin, outside any
    /// actor: for tools and benchmarks that drive a plugin directly.
    pub async fn instantiate(&self, spec: &PluginSpec, compiled: &Compiled) -> Result<Instance, PluginError> {
        Instance::new(&self.tenant(spec).0, compiled).await
    }

    /// Hot-reloads `plugin` from `path`: compiled and linked off the event path, then
    /// swapped in between two events. Queued events go to the new version, none lost
    /// and none twice; calls are untouched. A broken version leaves the old one serving.
    pub async fn reload(&self, plugin: &str, path: &Path) -> Result<SwapReport, PluginError> {
        let result = self.reload_quietly(plugin, path).await;
        self.announce(plugin, path, &result);
        result
    }

    /// [`Self::reload`] without logging or announcing the outcome (the watcher retries
    /// a file that is still being written before it reports anything).
    pub(crate) async fn reload_quietly(&self, plugin: &str, path: &Path) -> Result<SwapReport, PluginError> {
        let t0 = Instant::now();
        let compiled = self.compile(plugin, path).await?;
        let tenant = self.with_plugin(plugin, |p| p.tenant.clone())?;
        // The new version's store and instance are made here, off the event path; the
        // swap itself is then only save and restore.
        let fresh = Instance::new(&tenant, &compiled).await?;
        let prepare = t0.elapsed();
        let mut report = self.ask(plugin, |reply| Event::Swap(Box::new((compiled, fresh, None)), reply)).await?;
        report.prepare = prepare;
        Ok(report)
    }

    /// Logs a reload's outcome and tells [`Self::reloads`] subscribers.
    pub(crate) fn announce(&self, plugin: &str, path: &Path, result: &Result<SwapReport, PluginError>) {
        match result {
            Ok(r) => tracing::info!(
                plugin,
                restored = r.restored,
                "reloaded {} (prepare {:.1} ms, swap {:.0} µs)",
                path.display(),
                r.prepare.as_secs_f64() * 1e3,
                r.swap.as_secs_f64() * 1e6
            ),
            Err(e) => tracing::error!(plugin, "reload refused, the running version keeps serving: {e}"),
        }
        let _ = self.reloads.send((plugin.to_owned(), result.clone()));
    }

    /// Every reload's outcome from now on (plugin name, result).
    pub fn reloads(&self) -> broadcast::Receiver<(String, Result<SwapReport, PluginError>)> {
        self.reloads.subscribe()
    }

    fn send(p: &Plugin, ev: Event) {
        match p.tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                let name = &p.tenant.name;
                tracing::warn!(plugin = %name, "event dropped: {} events are already waiting", p.tx.max_capacity());
                ev.fail(PluginError::QueueFull { name: name.to_string() });
            }
            Err(mpsc::error::TrySendError::Closed(ev)) => {
                ev.fail(PluginError::Gone { name: p.tenant.name.to_string() })
            }
        }
    }

    /// `on-start` to every plugin, with the accounts the host acts through.
    pub fn start_all(&self, me: &Identity) {
        self.remember_start(me);
        for p in self.plugins.lock().iter() {
            Self::send(p, Event::Start(me.clone()));
        }
    }

    /// Delivers a host event to every plugin granted its chat, in order per plugin.
    pub fn dispatch(&self, ev: &HostEvent) {
        for p in self.plugins.lock().iter().filter(|p| p.tenant.grants.sees(ev)) {
            Self::send(p, Event::Host(ev.clone()));
        }
    }

    /// Runs `f` on the plugin named `plugin`, or answers that there is none.
    fn with_plugin<R>(&self, plugin: &str, f: impl FnOnce(&Plugin) -> R) -> Result<R, PluginError> {
        let plugins = self.plugins.lock();
        plugins.iter().find(|p| &*p.tenant.name == plugin).map(f).ok_or_else(|| PluginError::Unknown(plugin.to_owned()))
    }

    /// Queues an event that carries its own reply channel for `plugin`, and awaits the reply.
    async fn ask<R>(
        &self,
        plugin: &str,
        event: impl FnOnce(oneshot::Sender<Result<R, PluginError>>) -> Event,
    ) -> Result<R, PluginError> {
        let (reply, rx) = oneshot::channel();
        self.with_plugin(plugin, |p| Self::send(p, event(reply)))?;
        rx.await.map_err(|_| PluginError::Gone { name: plugin.to_owned() })?
    }

    /// Returns once `plugin` has handled every event queued before this call.
    pub async fn settled(&self, plugin: &str) -> Result<(), PluginError> {
        let (reply, rx) = oneshot::channel();
        self.with_plugin(plugin, |p| Self::send(p, Event::Barrier(reply)))?;
        rx.await.map_err(|_| PluginError::Gone { name: plugin.to_owned() })
    }

    /// The last commands `plugin` issued, oldest first.
    pub fn commands(&self, plugin: &str) -> Result<Vec<CommandRecord>, PluginError> {
        self.with_plugin(plugin, |p| p.tenant.counters.commands.lock().iter().cloned().collect())
    }

    /// Calls `plugin`'s `on-custom-api` and waits for its answer.
    pub async fn custom_api(&self, plugin: &str, call: ApiCall) -> Result<ApiReply, PluginError> {
        self.ask(plugin, |reply| Event::CustomApi(call, reply)).await
    }

    /// Counters of every plugin, in load order.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.plugins
            .lock()
            .iter()
            .map(|p| {
                let c = &p.tenant.counters;
                PluginStatus {
                    name: p.tenant.name.to_string(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    restarts: c.restarts.load(Ordering::Relaxed),
                    queued: p.tx.max_capacity() - p.tx.capacity(),
                    disabled: c.disabled.load(Ordering::Relaxed),
                    logs_dropped: c.logs_dropped.load(Ordering::Relaxed),
                    reloads: c.reloads.load(Ordering::Relaxed),
                    audio_dropped: c.audio_dropped.load(Ordering::Relaxed),
                    version: c.version.lock().clone(),
                    memory_kib: c.memory.load(Ordering::Relaxed) / 1024,
                }
            })
            .collect()
    }

    /// Each plugin's name and counters, in load order.
    pub fn counters(&self) -> Vec<(String, Arc<PluginCounters>)> {
        self.plugins.lock().iter().map(|p| (p.tenant.name.to_string(), p.tenant.counters.clone())).collect()
    }

    /// True when no plugin has an event waiting or running.
    pub fn idle(&self) -> bool {
        self.plugins.lock().iter().all(|p| p.tx.capacity() == p.tx.max_capacity())
    }
}
