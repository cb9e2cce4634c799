//! What a plugin's imports do: its `Store` data, shared by both contract versions —
//! [`v1`] (PyTgCalls' API) and [`v2`] (calls, chat, config, logging) — each forwarding
//! to the call manager and its chat side; and WASI with nothing but a log-bound
//! stdout/stderr.

pub mod v1;
pub mod v2;

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
use super::grants::Grants;
use super::limits::{CpuMeter, LogBudget, MemoryCap};
use crate::calls::{CallError, CallManager};

/// How a log line is leveled, in either contract.
#[derive(Debug, Clone, Copy)]
enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
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
    /// The largest message media it may download, in bytes.
    download_max: u64,
    /// The operator's caps on one recording: seconds, MiB.
    record_caps: (u32, u32),
    /// The callback queries delivered to it lately: the ones it may answer.
    queries: std::collections::VecDeque<String>,
    counters: Arc<super::PluginCounters>,
    /// Where the audio it listens to queues, and its id as a listener.
    ears: super::Ears,
    /// It exports `audio-events.on-audio`: it can hear what it listens to.
    pub(super) hears_audio: bool,
    /// Its quotas (`limits.max_calls`, `limits.messages_per_minute`).
    limits: super::limits::Limits,
}

impl PluginState {
    pub(super) fn new(tenant: &Tenant) -> Self {
        let name = tenant.name.clone();
        let limits = &tenant.limits;
        let grants = tenant.grants.clone();
        let logs = LogBudget::new(name.clone(), limits.log_lines_per_s, tenant.counters.logs_dropped.clone());
        let mut b = WasiCtx::builder();
        // No environment, no arguments, no network; only the granted folders, read-only.
        // Otherwise a plugin reaches the world only through its imports.
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
            download_max: limits.download_mb << 20,
            record_caps: (limits.record_seconds, limits.record_mb),
            queries: std::collections::VecDeque::new(),
            counters: tenant.counters.clone(),
            ears: tenant.ears.clone(),
            hears_audio: false,
            limits: *limits,
        }
    }

    /// Notes a callback query delivered to the plugin (the last few hundred are kept).
    pub(super) fn delivered_query(&mut self, id: &str) {
        if self.queries.len() >= 256 {
            self.queries.pop_front();
        }
        self.queries.push_back(id.to_owned());
    }

    fn chat(&self, chat: i64) -> Result<(), CallError> {
        self.grants.check_chat(&self.name, chat)
    }

    /// `limits.max_calls`: whether joining `chat` keeps it within its calls.
    fn quota_calls(&self, chat: i64) -> Result<(), CallError> {
        let max = self.limits.max_calls;
        if max == 0 {
            return Ok(());
        }
        let live = self.manager.joined_chats();
        let mut joined = self.counters.joined.lock();
        // A call that ended without its leave (stream over, kicked) no longer counts.
        joined.retain(|c| live.contains(c));
        if joined.len() as u32 >= max && !joined.contains(&chat) {
            let chats: Vec<String> = joined.iter().map(i64::to_string).collect();
            return Err(self.quota_refused(format!(
                "limits.max_calls = {max}: plugin {} is already in {} call(s) (chats {}); leave one first, or ask the \
                 operator to raise it",
                self.name,
                joined.len(),
                chats.join(", ")
            )));
        }
        Ok(())
    }

    /// A quota's refusal, counted.
    fn quota_refused(&self, why: String) -> CallError {
        self.counters.quota_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CallError::Quota(why)
    }

    /// `limits.messages_per_minute`: counts one more message if it fits.
    fn quota_message(&self) -> Result<(), CallError> {
        let max = self.limits.messages_per_minute;
        if max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut sent = self.counters.sent.lock();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60)) {
            sent.pop_front();
        }
        if sent.len() as u32 >= max {
            let wait = sent.front().map_or(0, |t| 60 - now.duration_since(*t).as_secs());
            return Err(self.quota_refused(format!(
                "limits.messages_per_minute = {max}: plugin {} sent {max} in the last minute; the next fits in {wait} s",
                self.name
            )));
        }
        sent.push_back(now);
        Ok(())
    }

    /// Logs a refusal by the grants, and records it.
    fn denied(&self, command: &str, chat: i64, e: &CallError) {
        self.counters.record(command, chat, false);
        if self.logs.lock().allow() {
            tracing::warn!(plugin = %self.name, chat, "{command} refused: {e}");
        }
    }

    /// Logs a command's outcome under the plugin's name (within its log cap), and
    /// records it.
    fn logged<T>(&self, command: &str, chat: i64, r: &Result<T, CallError>) {
        self.counters.record(command, chat, r.is_ok());
        // Within the plugin's log cap: a plugin issuing commands in a loop cannot
        // flood the host's log.
        if !self.logs.lock().allow() {
            return;
        }
        match r {
            Ok(_) => tracing::info!(plugin = %self.name, chat, "{command}"),
            Err(e) => tracing::info!(plugin = %self.name, chat, "{command} failed: {e}"),
        }
    }

    /// Charges the time since `t0` to the host, not the plugin's CPU budget.
    fn host_since(&mut self, t0: Instant) {
        self.cpu.host(t0.elapsed());
    }

    /// A plugin's log line, within its rate cap.
    fn log_line(&self, level: Level, message: &str) {
        if !self.logs.lock().allow() {
            return;
        }
        let name = &*self.name;
        match level {
            Level::Trace => tracing::trace!(plugin = name, "{message}"),
            Level::Debug => tracing::debug!(plugin = name, "{message}"),
            Level::Info => tracing::info!(plugin = name, "{message}"),
            Level::Warn => tracing::warn!(plugin = name, "{message}"),
            Level::Error => tracing::error!(plugin = name, "{message}"),
        }
    }

    /// A host fault behind a command: logged, and the plugin's call traps.
    fn fault(&self, e: wasmtime::Error) -> wasmtime::Error {
        tracing::error!(plugin = %self.name, "{e:#}; the plugin's call traps");
        e
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A host fault, as a trap's cause.
fn host_fault(m: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("wasmcalls host fault: {m}"))
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
