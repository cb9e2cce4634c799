//! `wasmcalls bench …`: figures, printed, never asserted (these machines are shared).
//! One file per benchmark.

mod api;
mod hearing;
mod hostile;
mod languages;
mod loss;
mod media;
mod pacing;
mod plugins;
mod reload;
mod soak;
mod updates;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;

pub use api::ApiArgs;
pub use hearing::HearingArgs;
pub use hostile::HostileArgs;
pub use languages::LanguagesArgs;
pub use loss::LossArgs;
pub use media::MediaArgs;
pub use pacing::PacingArgs;
pub use plugins::PluginArgs;
pub use reload::ReloadArgs;
pub use soak::SoakArgs;
pub use updates::UpdatesArgs;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Stream N concurrent calls and report CPU, send jitter and memory per call
    Pacing(PacingArgs),
    /// Cost per stream of each kind of source: raw PCM, MP3 decoded and resampled, Opus passed through, and ffmpeg
    Media(MediaArgs),
    /// Time event dispatch into a plugin (host → plugin → command → back) and instantiation
    Plugins(PluginArgs),
    /// Load the custom HTTP API: a fixed number of requests from a few concurrent clients
    Http(ApiArgs),
    /// What hearing a call costs beside sending: receiving a speaker, recording them or the mix, listening as PCM
    Hearing(HearingArgs),
    /// Play calls while a hostile plugin loops, hoards memory, recurses and floods the log
    Hostile(HostileArgs),
    /// The musicbot in Rust, Python and JavaScript side by side: size, compile, load, instantiate, dispatch, memory, edit → serving
    Languages(LanguagesArgs),
    /// Choose the encoder's expected-loss setting: bits and CPU against what a receiver hears through random loss, on music and speech
    Loss(LossArgs),
    /// Time hot reloads: file change → new version serving, cold and warm cache, and the swap
    Reload(ReloadArgs),
    /// Churn for a long time (calls join, change source, pause, leave; the plugin hot-reloads; the radio drops): RSS, fds, late frames and loss over time
    Soak(SoakArgs),
    /// Route Telegram updates as the MTProto side does: parse, route, raw JSON
    Updates(UpdatesArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Pacing(args) => pacing::run(args).await,
        BenchCommand::Media(args) => media::run(args).await,
        BenchCommand::Plugins(args) => plugins::run(args).await,
        BenchCommand::Http(args) => api::run(args).await,
        BenchCommand::Hostile(args) => hostile::run(args).await,
        BenchCommand::Hearing(args) => hearing::run(args).await,
        BenchCommand::Languages(args) => languages::run(args).await,
        BenchCommand::Loss(args) => loss::run(args).await,
        BenchCommand::Reload(args) => reload::run(args).await,
        BenchCommand::Soak(args) => soak::run(args).await,
        BenchCommand::Updates(args) => updates::run(args).await,
    }
}

/// p50, p99 and max of durations, in microseconds.
pub(super) fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    (at(0.5), at(0.99), v.last().map_or(0.0, |d| d.as_secs_f64() * 1e6))
}

/// A raw PCM file (s16le, interleaved) as samples.
pub(super) fn read_pcm(path: &std::path::Path) -> Result<Vec<i16>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
}

/// The testbot's default build location, for the benchmarks that drive it.
pub(super) const TESTBOT: &str = "plugins/target/wasm32-wasip2/release/testbot.wasm";

/// A host started from config text (paths relative to `dir`), failing unless every
/// plugin loaded.
pub(super) async fn host(text: &str, dir: &std::path::Path) -> Result<wasmcalls::app::App> {
    let config = wasmcalls::config::Config::parse(text, dir)?;
    let app = wasmcalls::app::App::start(&wasmcalls::app::resolve(&config)?).await?;
    if let Some((name, e)) = app.failed().next() {
        anyhow::bail!("plugin {name} did not load: {e}");
    }
    Ok(app)
}

/// The loopback a benchmark's host runs on.
pub(super) fn loopback(app: &wasmcalls::app::App) -> Result<&wasmcalls::telegram::loopback::Loopback> {
    app.loopback.as_ref().ok_or_else(|| anyhow::anyhow!("the benchmark host is not on the loopback"))
}

/// Fails with the build command when a benchmark's plugin is missing.
pub(super) fn require_plugin(path: &std::path::Path) -> Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist; build the plugins with `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`",
            path.display()
        );
    }
    Ok(())
}

/// A process's resident memory, in KiB, from `/proc/<pid>/status`: all of it, and the
/// anonymous part (heap and stacks — what calls allocate) apart from the file-backed
/// part (code and libraries, paged in once and shared with every process running them).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Resident {
    pub total: u64,
    pub anon: u64,
    pub file: u64,
}

impl Resident {
    /// `pid` is a process id or `self`; zero where the process is gone.
    pub fn of(pid: &str) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| status_field(&status, name).unwrap_or(0);
        Resident { total: field("VmRSS:"), anon: field("RssAnon:"), file: field("RssFile:") }
    }

    pub fn of_self() -> Self {
        Self::of("self")
    }

    /// What grew from `before` to `self`.
    pub fn since(self, before: Resident) -> Resident {
        Resident {
            total: self.total.saturating_sub(before.total),
            anon: self.anon.saturating_sub(before.anon),
            file: self.file.saturating_sub(before.file),
        }
    }
}

/// A `Name:   123 kB` line's number in a `/proc/<pid>/status` text.
pub(super) fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
}

/// A bare thread waking every 20 ms at the pacer's scheduling priority, beside the
/// host: its late wake-ups are the machine's (a VM's CPU taken away, the kernel), not
/// the host's, so the pacer's late frames are read against them.
pub(super) struct Timer {
    wakes: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    /// The seconds (from the start) with a late wake-up, each once.
    late_at: Arc<parking_lot::Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
}

impl Timer {
    pub fn start() -> Timer {
        let t = Timer { wakes: Arc::default(), late: Arc::default(), late_at: Arc::default(), stop: Arc::default() };
        let (wakes, late, late_at, stop) = (t.wakes.clone(), t.late.clone(), t.late_at.clone(), t.stop.clone());
        std::thread::spawn(move || {
            wasmcalls::media::pacer::deadline_thread(wasmcalls::media::pacer::REALTIME_PRIORITY);
            let t0 = Instant::now();
            let mut next = t0;
            while !stop.load(Ordering::Relaxed) {
                next += Duration::from_millis(20);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                wakes.fetch_add(1, Ordering::Relaxed);
                if Instant::now().saturating_duration_since(next) > Duration::from_millis(5) {
                    late.fetch_add(1, Ordering::Relaxed);
                    let second = next.duration_since(t0).as_secs();
                    let mut seconds = late_at.lock();
                    if seconds.last() != Some(&second) {
                        seconds.push(second);
                    }
                }
            }
        });
        t
    }

    /// Wake-ups so far, and those over 5 ms late.
    pub fn read(&self) -> (u64, u64) {
        (self.wakes.load(Ordering::Relaxed), self.late.load(Ordering::Relaxed))
    }

    /// The seconds (from its start) in which it woke late, each once.
    pub fn late_seconds(&self) -> Vec<u64> {
        self.late_at.lock().clone()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
