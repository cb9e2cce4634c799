//! What one plugin may use: CPU per event, memory, queued events, log lines. The
//! defaults are what a tenant gets unless the operator grants more.
//!
//! CPU is *guest* time: the epoch ticker wakes the store every [`TICK`]; the
//! callback charges the time since the event began minus the time spent in host
//! calls (a `join-group-call` that waits 200 ms for ICE costs the plugin nothing),
//! yields to the executor so a busy plugin never monopolises a thread, and
//! interrupts the event once the budget is spent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::ResourceLimiter;

/// How often the engine's epoch advances.
pub const TICK: Duration = Duration::from_millis(10);

/// Per-plugin limits (`[plugins.limits]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in MiB; growing past it traps.
    pub memory_mb: u32,
    /// Time one event may run in the guest, in ms (wall clock minus host calls); past
    /// it the event is interrupted. Generous by default: on an overloaded machine a
    /// handler is descheduled for long stretches it did not ask for.
    pub cpu_ms_per_event: u32,
    /// Events that may wait for the plugin; more are dropped and logged.
    pub queue: usize,
    /// Log lines per second (stdout, stderr and `log` together), bursts of 4 s allowed.
    pub log_lines_per_s: u32,
    /// This many traps within `crash_window_s` disable the plugin.
    pub max_traps: u32,
    pub crash_window_s: u32,
    /// The largest finite download a URL source may be, in MiB.
    pub download_mb: u64,
    /// The longest one recording may run, in seconds (4 h: a long show).
    pub record_seconds: u32,
    /// The most one recording may write, in MiB (4 h of a 5-voice mix is ~2.7 GiB
    /// as WAV; Ogg is ~30 MiB an hour a voice).
    pub record_mb: u32,
    /// Quota: calls it may be in at once; 0: no cap.
    pub max_calls: u32,
    /// Quota: messages it may send or edit in any minute; 0: no cap.
    pub messages_per_minute: u32,
    /// Quota: MiB its URL sources and message media may fetch in any hour; 0: no cap.
    pub download_mb_per_hour: u64,
    /// Quota: kb/s its URL fetches share; 0: no cap (set it above the bitrates of the
    /// streams it plays, or they play gaps).
    pub url_kbps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            cpu_ms_per_event: 1000,
            queue: 1024,
            log_lines_per_s: 50,
            max_traps: 5,
            crash_window_s: 60,
            download_mb: 256,
            record_seconds: 4 * 3600,
            record_mb: 1024,
            max_calls: 0,
            messages_per_minute: 0,
            download_mb_per_hour: 0,
            url_kbps: 0,
        }
    }
}

/// A limit that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("memory_mb = {0} must be 1–4096")]
    Memory(u32),
    #[error("{0} must be above 0")]
    Zero(&'static str),
}

impl Limits {
    /// Checks the limits are usable; the error names the key.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.memory_mb == 0 || self.memory_mb > 4096 {
            return Err(LimitsError::Memory(self.memory_mb));
        }
        for (key, v) in [
            ("cpu_ms_per_event", self.cpu_ms_per_event as usize),
            ("queue", self.queue),
            ("log_lines_per_s", self.log_lines_per_s as usize),
            ("max_traps", self.max_traps as usize),
            ("download_mb", self.download_mb as usize),
        ] {
            if v == 0 {
                return Err(LimitsError::Zero(key));
            }
        }
        Ok(())
    }

    /// Which key a [`LimitsError`] is about.
    pub fn key_of(e: &LimitsError) -> &'static str {
        match e {
            LimitsError::Memory(_) => "memory_mb",
            LimitsError::Zero(k) => k,
        }
    }

    pub fn cpu_budget(&self) -> Duration {
        Duration::from_millis(self.cpu_ms_per_event as u64)
    }

    /// The store's resource limiter: linear memory capped at `memory_mb`.
    pub fn memory_cap(&self) -> MemoryCap {
        MemoryCap { bytes: self.memory_mb as usize * 1024 * 1024, mb: self.memory_mb, in_use: 0 }
    }

    /// Restart delay after the n-th recent trap: 50 ms doubling, at most 5 s.
    pub fn backoff(&self, recent_traps: u32) -> Duration {
        Duration::from_millis(50u64 << recent_traps.saturating_sub(1).min(7)).min(Duration::from_secs(5))
    }
}

/// Caps a store's linear memory. Growing past the cap traps with [`MemoryCapReached`],
/// which the runtime recognises by type. It also counts what the store's memories
/// hold: wasmtime asks it for every memory's initial size and each growth.
#[derive(Debug, Clone, Copy)]
pub struct MemoryCap {
    bytes: usize,
    mb: u32,
    in_use: usize,
}

impl MemoryCap {
    /// Bytes of linear memory across the store's memories.
    pub fn in_use(&self) -> usize {
        self.in_use
    }
}

/// The trap a plugin gets for growing its memory past its cap.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("it reached its memory cap of {mb} MiB")]
pub struct MemoryCapReached {
    pub mb: u32,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            return Err(wasmtime::Error::new(MemoryCapReached { mb: self.mb }));
        }
        self.in_use += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Guest-time accounting for the event in flight.
#[derive(Debug, Default)]
pub struct CpuMeter {
    started: Option<Instant>,
    in_host: Duration,
}

impl CpuMeter {
    pub fn begin(&mut self) {
        self.started = Some(Instant::now());
        self.in_host = Duration::ZERO;
    }

    /// Time spent in a host call, not charged to the plugin.
    pub fn host(&mut self, spent: Duration) {
        self.in_host += spent;
    }

    pub fn guest_time(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |s| s.elapsed().saturating_sub(self.in_host))
    }
}

/// A token bucket for log lines, shared by a plugin's stdout, stderr and `log`.
#[derive(Debug)]
pub struct LogBudget {
    plugin: Arc<str>,
    dropped_total: Arc<std::sync::atomic::AtomicU64>,
    rate: f64,
    tokens: f64,
    last: Instant,
    dropped: u64,
    last_report: Instant,
}

impl LogBudget {
    pub fn new(
        plugin: Arc<str>,
        lines_per_s: u32,
        dropped_total: Arc<std::sync::atomic::AtomicU64>,
    ) -> Arc<Mutex<LogBudget>> {
        let rate = lines_per_s.max(1) as f64;
        Arc::new(Mutex::new(LogBudget {
            plugin,
            dropped_total,
            rate,
            tokens: rate * 4.0,
            last: Instant::now(),
            dropped: 0,
            last_report: Instant::now(),
        }))
    }

    /// Whether one more line may be logged now; reports drops at most once a second.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate * 4.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        self.dropped += 1;
        self.dropped_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if now.duration_since(self.last_report) >= Duration::from_secs(1) {
            tracing::warn!(plugin = %self.plugin, "{} log lines dropped: over {} lines/s", self.dropped, self.rate);
            self.dropped = 0;
            self.last_report = now;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let l = Limits::default();
        assert_eq!(l.backoff(1), Duration::from_millis(50));
        assert_eq!(l.backoff(2), Duration::from_millis(100));
        assert_eq!(l.backoff(4), Duration::from_millis(400));
        assert_eq!(l.backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn the_log_budget_allows_a_burst_then_drops() {
        let b = LogBudget::new("p".into(), 10, Default::default());
        let mut b = b.lock();
        let allowed = (0..100).filter(|_| b.allow()).count();
        assert_eq!(allowed, 40, "a 4 s burst at 10 lines/s");
    }

    #[test]
    fn host_time_is_not_charged() {
        let mut m = CpuMeter::default();
        m.begin();
        // The time the host really took (a loaded machine oversleeps), not the asked 30 ms.
        let host = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        m.host(host.elapsed());
        assert!(m.guest_time() < Duration::from_millis(10), "{:?}", m.guest_time());
    }
}
