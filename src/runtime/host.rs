//! What a plugin's imports do: its `Store` data, the `calls` interface forwarded to
//! the call manager, and WASI with nothing but a log-bound stdout/stderr.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::wasmcalls::bot::{calls, types};
use super::grants::Grants;
use super::limits::{CpuMeter, Limits, LogBudget};
use crate::calls::{CallError, CallManager, CallState, CallStatus};

/// A plugin instance's host state.
pub struct PluginState {
    pub(super) name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    manager: CallManager,
    settings: Arc<str>,
    /// Memory cap, consulted by wasmtime on every grow.
    pub(super) limits: StoreLimits,
    /// Guest time of the event in flight.
    pub(super) cpu: CpuMeter,
    logs: Arc<Mutex<LogBudget>>,
    grants: Arc<Grants>,
}

impl PluginState {
    pub(super) fn new(
        name: Arc<str>,
        manager: CallManager,
        settings: Arc<str>,
        limits: &Limits,
        logs_dropped: Arc<std::sync::atomic::AtomicU64>,
        grants: Arc<Grants>,
    ) -> Self {
        let logs = LogBudget::new(name.clone(), limits.log_lines_per_s, logs_dropped);
        let mut b = WasiCtx::builder();
        // No environment, no arguments, no network; only the granted folders, read-only.
        // Otherwise a plugin reaches the world only through `calls`.
        b.stdout(AsyncStdoutStream::new(4096, LogWriter::new(name.clone(), "stdout", logs.clone())));
        b.stderr(AsyncStdoutStream::new(4096, LogWriter::new(name.clone(), "stderr", logs.clone())));
        for (host, guest) in grants.preopens() {
            if let Err(e) = b.preopened_dir(host, guest, FsPerms::ReadOnly) {
                tracing::warn!(plugin = %name, "cannot open granted folder {}: {e}", host.display());
            }
        }
        PluginState {
            name,
            wasi: b.build(),
            table: ResourceTable::new(),
            manager,
            settings,
            limits: limits.store_limits(),
            cpu: CpuMeter::default(),
            logs,
            grants,
        }
    }

    fn chat(&self, chat: i64) -> Result<(), types::CallError> {
        self.grants.check_chat(&self.name, chat).map_err(to_wit)
    }

    fn file(&self, requested: &str) -> Result<std::path::PathBuf, types::CallError> {
        self.grants.check_file(&self.name, requested).map_err(to_wit)
    }

    fn denied<T>(&self, command: &str, chat: i64, e: types::CallError) -> Result<T, types::CallError> {
        tracing::warn!(plugin = %self.name, chat, "{command} refused: {e:?}");
        Err(e)
    }

    /// Charges the time since `t0` to the host, not the plugin's CPU budget.
    fn host_since(&mut self, t0: Instant) {
        self.cpu.host(t0.elapsed());
    }

    /// The calls among `list` the plugin may see, for the contract; host time since `t0`.
    fn granted(&mut self, list: Vec<CallStatus>, t0: Instant) -> Vec<types::CallStatus> {
        let r = list.into_iter().filter(|c| self.grants.chat_allowed(c.chat)).map(status_to_wit).collect();
        self.host_since(t0);
        r
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn to_wit(e: CallError) -> types::CallError {
    use types::CallError as W;
    match e {
        CallError::HostCoreNotRunning => W::HostCoreNotRunning,
        CallError::ClientNotRunning => W::ClientNotRunning,
        CallError::NoActiveGroupCall(c) => W::NoActiveGroupCall(c),
        CallError::NotInCall(c) => W::NotInCall(c),
        CallError::NoClient => W::NoClient,
        CallError::PermissionDenied(m) => W::PermissionDenied(m),
        CallError::InvalidArgument(m) => W::InvalidArgument(m),
        CallError::FileError(m) => W::FileError(m),
        CallError::Other(m) => W::Other(m),
    }
}

fn status_to_wit(s: CallStatus) -> types::CallStatus {
    types::CallStatus {
        chat: s.chat,
        state: match s.state {
            CallState::Connecting => types::CallState::Connecting,
            CallState::Playing => types::CallState::Playing,
            CallState::Paused => types::CallState::Paused,
            CallState::Idle => types::CallState::Idle,
        },
        file: s.file.map(|p| p.display().to_string()),
        position_ms: s.position_ms,
        duration_ms: s.duration_ms,
        volume: s.volume,
    }
}

impl PluginState {
    fn logged<T>(&self, command: &str, chat: i64, r: Result<T, CallError>) -> Result<T, types::CallError> {
        match &r {
            Ok(_) => tracing::info!(plugin = %self.name, chat, "{command}"),
            Err(e) => tracing::info!(plugin = %self.name, chat, "{command} failed: {e}"),
        }
        r.map_err(to_wit)
    }
}

impl types::Host for PluginState {}

impl calls::Host for PluginState {
    async fn join_group_call(&mut self, chat: i64, file_path: String, bitrate: u32) -> Result<(), types::CallError> {
        let file = match self.chat(chat).and_then(|()| self.file(&file_path)) {
            Ok(f) => f,
            Err(e) => return self.denied("join-group-call", chat, e),
        };
        let t0 = Instant::now();
        let r = self.manager.join(chat, &file, bitrate).await;
        self.host_since(t0);
        self.logged("join-group-call", chat, r)
    }

    async fn leave_group_call(&mut self, chat: i64) -> Result<(), types::CallError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("leave-group-call", chat, e);
        }
        let t0 = Instant::now();
        let r = self.manager.leave(chat).await;
        self.host_since(t0);
        self.logged("leave-group-call", chat, r)
    }

    async fn change_volume_call(&mut self, chat: i64, volume: u16) -> Result<(), types::CallError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("change-volume-call", chat, e);
        }
        let r = self.manager.set_volume(chat, volume);
        self.logged("change-volume-call", chat, r)
    }

    async fn pause_stream(&mut self, chat: i64) -> Result<(), types::CallError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("pause-stream", chat, e);
        }
        let r = self.manager.pause(chat);
        self.logged("pause-stream", chat, r)
    }

    async fn resume_stream(&mut self, chat: i64) -> Result<(), types::CallError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("resume-stream", chat, e);
        }
        let r = self.manager.resume(chat);
        self.logged("resume-stream", chat, r)
    }

    async fn change_stream(&mut self, chat: i64, file_path: String) -> Result<(), types::CallError> {
        let file = match self.chat(chat).and_then(|()| self.file(&file_path)) {
            Ok(f) => f,
            Err(e) => return self.denied("change-stream", chat, e),
        };
        let r = self.manager.change_stream(chat, &file);
        self.logged("change-stream", chat, r)
    }

    async fn calls(&mut self) -> Vec<types::CallStatus> {
        let t0 = Instant::now();
        let all = self.manager.calls().await;
        self.granted(all, t0)
    }

    async fn active_calls(&mut self) -> Vec<types::CallStatus> {
        let t0 = Instant::now();
        let playing = self.manager.active_calls().await;
        self.granted(playing, t0)
    }

    async fn get_cache_id(&mut self) -> Result<i64, types::CallError> {
        self.manager.my_id().map_err(to_wit)
    }

    async fn get_port_server(&mut self) -> u16 {
        self.manager.api_port()
    }

    async fn settings(&mut self) -> String {
        self.settings.to_string()
    }

    async fn log(&mut self, level: types::LogLevel, message: String) {
        if !self.logs.lock().expect("log budget lock").allow() {
            return;
        }
        let name = &*self.name;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin = name, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin = name, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin = name, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin = name, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin = name, "{message}"),
        }
    }
}

/// Turns a plugin's stdout/stderr into log lines prefixed with its name.
struct LogWriter {
    plugin: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
    budget: Arc<Mutex<LogBudget>>,
}

/// A longer line is split: a plugin cannot make the host buffer without bound.
const MAX_LINE: usize = 4096;

impl LogWriter {
    fn new(plugin: Arc<str>, stream: &'static str, budget: Arc<Mutex<LogBudget>>) -> Self {
        LogWriter { plugin, stream, line: Vec::new(), budget }
    }

    fn emit(&mut self) {
        if !self.line.is_empty() && !self.budget.lock().expect("log budget lock").allow() {
            self.line.clear();
        }
        if !self.line.is_empty() {
            let text = String::from_utf8_lossy(&self.line);
            tracing::info!(plugin = %self.plugin, stream = self.stream, "{}", text.trim_end());
            self.line.clear();
        }
    }
}

impl AsyncWrite for LogWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        for &b in buf {
            if b == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
            if b != b'\n' {
                self.line.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
