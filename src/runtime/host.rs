//! What a plugin's imports do: its `Store` data, the `calls` interface forwarded to
//! the call manager, and WASI with nothing but a log-bound stdout/stderr.
//!
//! The WIT's `bitrate` argument is PyTgCalls' name for the raw file's *sample rate*;
//! it is called that here, at the contract's edge, and `sample_rate` inside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::Tenant;
use super::bindings::wasmcalls::bot::{calls, types};
use super::grants::Grants;
use super::limits::{CpuMeter, LogBudget, MemoryCap};
use crate::calls::{CallError, CallManager, CallState, CallStatus};

/// How a command failed, as the bindings see it: what the contract can say returns to
/// the plugin as its `call-error`; a fault of the host itself traps the plugin rather
/// than passing a made-up error off as the plugin's problem.
#[derive(Debug)]
pub enum CommandError {
    Refused(types::CallError),
    Fault(wasmtime::Error),
}

impl From<CallError> for CommandError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Internal(m) => CommandError::Fault(wasmtime::Error::msg(format!("wasmcalls host fault: {m}"))),
            e => CommandError::Refused(to_wit(e)),
        }
    }
}

impl From<types::CallError> for CommandError {
    fn from(e: types::CallError) -> Self {
        CommandError::Refused(e)
    }
}

/// A plugin instance's host state.
pub struct PluginState {
    pub(super) name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    manager: CallManager,
    settings: Arc<str>,
    /// Memory cap, consulted by wasmtime on every grow.
    pub(super) memory: MemoryCap,
    /// Guest time of the event in flight.
    pub(super) cpu: CpuMeter,
    logs: Arc<Mutex<LogBudget>>,
    grants: Arc<Grants>,
}

impl PluginState {
    pub(super) fn new(tenant: &Tenant) -> Self {
        let name = tenant.name.clone();
        let limits = &tenant.limits;
        let grants = tenant.grants.clone();
        let logs = LogBudget::new(name.clone(), limits.log_lines_per_s, tenant.counters.logs_dropped.clone());
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
            manager: tenant.manager.clone(),
            settings: tenant.settings.clone(),
            memory: limits.memory_cap(),
            cpu: CpuMeter::default(),
            logs,
            grants,
        }
    }

    fn chat(&self, chat: i64) -> Result<(), CallError> {
        self.grants.check_chat(&self.name, chat)
    }

    /// What a `file-path` argument names, as the grants allow it.
    fn source(&self, requested: &str, sample_rate: u32) -> Result<crate::media::SourceSpec, CallError> {
        self.grants.source(&self.name, requested, sample_rate)
    }

    fn denied<T>(&self, command: &str, chat: i64, e: CallError) -> Result<T, CommandError> {
        tracing::warn!(plugin = %self.name, chat, "{command} refused: {e}");
        Err(e.into())
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
        CallError::Other(m) | CallError::Internal(m) => W::Other(m),
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
        file: s.source,
        position_ms: s.position_ms,
        // The v0.1 record has no "unknown": 0, as for a call with nothing playing.
        duration_ms: s.duration_ms.unwrap_or(0),
        volume: s.volume,
    }
}

impl PluginState {
    fn logged<T>(&self, command: &str, chat: i64, r: Result<T, CallError>) -> Result<T, CommandError> {
        match &r {
            Ok(_) => tracing::info!(plugin = %self.name, chat, "{command}"),
            Err(e) => tracing::info!(plugin = %self.name, chat, "{command} failed: {e}"),
        }
        r.map_err(CommandError::from)
    }
}

impl types::Host for PluginState {
    fn convert_call_error(&mut self, err: CommandError) -> wasmtime::Result<types::CallError> {
        match err {
            CommandError::Refused(e) => Ok(e),
            CommandError::Fault(e) => {
                tracing::error!(plugin = %self.name, "{e:#}; the plugin's call traps");
                Err(e)
            }
        }
    }
}

impl calls::Host for PluginState {
    async fn join_group_call(&mut self, chat: i64, file_path: String, bitrate: u32) -> Result<(), CommandError> {
        let sample_rate = bitrate;
        let source = match self.chat(chat).and_then(|()| self.source(&file_path, sample_rate)) {
            Ok(s) => s,
            Err(e) => return self.denied("join-group-call", chat, e),
        };
        let t0 = Instant::now();
        let r = self.manager.join(chat, source).await;
        self.host_since(t0);
        self.logged("join-group-call", chat, r)
    }

    async fn leave_group_call(&mut self, chat: i64) -> Result<(), CommandError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("leave-group-call", chat, e);
        }
        let t0 = Instant::now();
        let r = self.manager.leave(chat).await;
        self.host_since(t0);
        self.logged("leave-group-call", chat, r)
    }

    async fn change_volume_call(&mut self, chat: i64, volume: u16) -> Result<(), CommandError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("change-volume-call", chat, e);
        }
        let r = self.manager.set_volume(chat, volume);
        self.logged("change-volume-call", chat, r)
    }

    async fn pause_stream(&mut self, chat: i64) -> Result<(), CommandError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("pause-stream", chat, e);
        }
        let r = self.manager.pause(chat);
        self.logged("pause-stream", chat, r)
    }

    async fn resume_stream(&mut self, chat: i64) -> Result<(), CommandError> {
        if let Err(e) = self.chat(chat) {
            return self.denied("resume-stream", chat, e);
        }
        let r = self.manager.resume(chat);
        self.logged("resume-stream", chat, r)
    }

    async fn change_stream(&mut self, chat: i64, file_path: String) -> Result<(), CommandError> {
        // v0.1 states a raw file's sample rate at the join; a change keeps it.
        let rate = self.manager.stated_format(chat).map_or(48_000, |f| f.rate());
        let source = match self.chat(chat).and_then(|()| self.source(&file_path, rate)) {
            Ok(s) => s,
            Err(e) => return self.denied("change-stream", chat, e),
        };
        let t0 = Instant::now();
        let r = self.manager.change_stream(chat, source).await;
        self.host_since(t0);
        self.logged("change-stream", chat, r)
    }

    async fn calls(&mut self) -> wasmtime::Result<Vec<types::CallStatus>> {
        let t0 = Instant::now();
        let all = self.manager.calls().await;
        Ok(self.granted(all, t0))
    }

    async fn active_calls(&mut self) -> wasmtime::Result<Vec<types::CallStatus>> {
        let t0 = Instant::now();
        let playing = self.manager.active_calls().await;
        Ok(self.granted(playing, t0))
    }

    async fn get_cache_id(&mut self) -> Result<i64, CommandError> {
        Ok(self.manager.my_id()?)
    }

    async fn get_port_server(&mut self) -> wasmtime::Result<u16> {
        Ok(self.manager.api_port())
    }

    async fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.settings.to_string())
    }

    async fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        if !self.logs.lock().allow() {
            return Ok(());
        }
        let name = &*self.name;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin = name, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin = name, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin = name, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin = name, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin = name, "{message}"),
        }
        Ok(())
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
        if !self.line.is_empty() && !self.budget.lock().allow() {
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
