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
use wasmcalls::media::stats::{LateCause, PacerTotals};

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

/// Runs a tool that makes a benchmark's input (sox, lame, opusenc) in `dir`.
pub(super) fn tool(program: &str, args: &[&str], dir: &std::path::Path) -> Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("{program} makes this bench's inputs: install it (bash .ci/setup): {e}"))?;
    if !out.status.success() {
        anyhow::bail!("{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
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
/// the host's, so the pacer's late frames are read against them. Once a second it also
/// reads the CPU time the hypervisor stole from this VM (`steal` in `/proc/stat`): the
/// direct measure of a virtual CPU that did not run.
pub(super) struct Timer {
    started: Instant,
    wakes: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    /// Second by second from the start: late wake-ups, and ms of CPU stolen.
    seconds: Arc<parking_lot::Mutex<Vec<Second>>>,
    stop: Arc<AtomicBool>,
}

/// One second of the [`Timer`]'s.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Second {
    pub late_wakes: u32,
    /// CPU time stolen from this VM's CPUs (all of them together), in ms.
    pub stolen_ms: u32,
}

impl Second {
    /// Neither the timer went late nor was CPU taken away (below 10 ms, the
    /// resolution `/proc/stat` has).
    pub fn kept_time(&self) -> bool {
        self.late_wakes == 0 && self.stolen_ms < 10
    }
}

/// CPU time stolen from this machine by its hypervisor so far, in ms; `None` where
/// `/proc/stat` has no steal column.
fn stolen_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: u64 = stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1000 / hz)
}

impl Timer {
    pub fn start() -> Timer {
        let t = Timer {
            started: Instant::now(),
            wakes: Arc::default(),
            late: Arc::default(),
            seconds: Arc::default(),
            stop: Arc::default(),
        };
        let (t0, wakes, late, seconds, stop) =
            (t.started, t.wakes.clone(), t.late.clone(), t.seconds.clone(), t.stop.clone());
        std::thread::spawn(move || {
            wasmcalls::media::pacer::deadline_thread(wasmcalls::media::pacer::REALTIME_PRIORITY);
            let mut next = t0;
            let mut stolen = stolen_ms();
            // Seconds the shared list holds: this thread alone adds them.
            let mut known = 0;
            while !stop.load(Ordering::Relaxed) {
                next += Duration::from_millis(20);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                wakes.fetch_add(1, Ordering::Relaxed);
                let second = next.duration_since(t0).as_secs() as usize;
                let is_late = Instant::now().saturating_duration_since(next) > Duration::from_millis(5);
                // A new second: what was stolen in the one that ended, read before the
                // lock is taken — held only to write, once a second or on a late wake-up,
                // so this thread never waits on a reader while it reads a file.
                let ended = (second >= known).then(|| {
                    let now = stolen_ms();
                    let in_it = stolen.zip(now).map(|(a, b)| b.saturating_sub(a) as u32);
                    stolen = now;
                    in_it
                });
                if ended.is_none() && !is_late {
                    continue;
                }
                let mut seconds = seconds.lock();
                if let Some(in_it) = ended {
                    if let (Some(last), Some(ms)) = (seconds.last_mut(), in_it) {
                        last.stolen_ms = ms;
                    }
                    seconds.resize(second + 1, Second::default());
                    known = second + 1;
                }
                if is_late {
                    late.fetch_add(1, Ordering::Relaxed);
                    seconds[second].late_wakes += 1;
                }
            }
        });
        t
    }

    /// When it started: seconds are counted from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Wake-ups so far, and those over 5 ms late.
    pub fn read(&self) -> (u64, u64) {
        (self.wakes.load(Ordering::Relaxed), self.late.load(Ordering::Relaxed))
    }

    /// Its seconds so far (the last one still running).
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.lock().clone()
    }
}

/// Late frames second by second, counted from a [`Timer`]'s start so they line up with
/// its seconds: bursts (at admission, when the machine stalls) read apart from a
/// steady trickle; and what held their pacer up, so the few in seconds the machine
/// kept time — the host's own — say what to look at, and when.
pub(super) struct LatePerSecond {
    start: Instant,
    mark: u64,
    mark_causes: [u64; LateCause::ALL.len()],
    pub per_s: Vec<u64>,
    /// Each second's late frames by cause, in [`LateCause::ALL`]'s order.
    causes_per_s: Vec<[u64; LateCause::ALL.len()]>,
}

impl LatePerSecond {
    pub fn new(timer: &Timer, totals: &PacerTotals) -> Self {
        LatePerSecond {
            start: timer.started(),
            mark: totals.late_frames.load(Ordering::Relaxed),
            mark_causes: causes(totals),
            per_s: Vec::new(),
            causes_per_s: Vec::new(),
        }
    }

    /// What went late since the last sample, counted in the current second.
    pub fn sample(&mut self, totals: &PacerTotals) {
        let second = self.start.elapsed().as_secs() as usize;
        if self.per_s.len() <= second {
            self.per_s.resize(second + 1, 0);
            self.causes_per_s.resize(second + 1, [0; LateCause::ALL.len()]);
        }
        let late = totals.late_frames.load(Ordering::Relaxed);
        self.per_s[second] += late.saturating_sub(self.mark);
        self.mark = late;
        let now = causes(totals);
        for (i, n) in now.iter().enumerate() {
            self.causes_per_s[second][i] += n.saturating_sub(self.mark_causes[i]);
        }
        self.mark_causes = now;
    }

    /// Of the late frames, those counted in a second when the machine kept time (see
    /// [`kept_time_at`]): the host's own; the rest, the machine's.
    pub fn in_kept_time(&self, seconds: &[Second]) -> u64 {
        self.per_s.iter().enumerate().filter(|&(s, _)| kept_time_at(seconds, s)).map(|(_, n)| n).sum()
    }

    /// The seconds the machine kept time with frames late in them, as "at 10:32 (UTC
    /// 02:32:17), 1: preparing 1": when to look in a recording, and what held the pacer.
    pub fn kept_time_seconds(&self, seconds: &[Second]) -> Vec<String> {
        let started = std::time::SystemTime::now() - self.start.elapsed();
        let found = self.per_s.iter().enumerate().filter(|&(s, &n)| n > 0 && kept_time_at(seconds, s));
        found
            .map(|(s, &n)| {
                let utc = (started + Duration::from_secs(s as u64))
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() % 86_400);
                let causes = self.causes_per_s[s].iter().zip(LateCause::ALL);
                let causes: Vec<String> =
                    causes.filter(|&(&n, _)| n > 0).map(|(n, c)| format!("{} {n}", c.name())).collect();
                format!(
                    "at {}:{:02} (UTC {:02}:{:02}:{:02}), {n}: {}",
                    s / 60,
                    s % 60,
                    utc / 3600,
                    utc / 60 % 60,
                    utc % 60,
                    causes.join(", ")
                )
            })
            .collect()
    }
}

/// Late frames so far by cause, in [`LateCause::ALL`]'s order.
fn causes(totals: &PacerTotals) -> [u64; LateCause::ALL.len()] {
    LateCause::ALL.map(|c| totals.late_because(c))
}

/// The machine kept time for what is counted in second `s`: the timer was on time and
/// no CPU was stolen in it or in the second before — a frame is counted when it goes
/// out, after the stall that made it late, and samples lag by up to a few hundred ms.
pub(super) fn kept_time_at(seconds: &[Second], s: usize) -> bool {
    let kept = |s: usize| seconds.get(s).is_none_or(Second::kept_time);
    kept(s) && (s == 0 || kept(s - 1))
}

/// Late frames by what held their pacer thread up the longest before each, as
/// "not_running 3, commands 0, …".
pub(super) fn late_causes(by_cause: &[(LateCause, u64)]) -> String {
    let causes: Vec<String> = by_cause.iter().map(|(c, n)| format!("{} {n}", c.name())).collect();
    causes.join(", ")
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_frames_in_seconds_the_machine_kept_time_say_when_and_why() {
        let kept = Second::default();
        let stolen = Second { late_wakes: 0, stolen_ms: 40 };
        let mut causes_per_s = vec![[0; LateCause::ALL.len()]; 4];
        causes_per_s[1][LateCause::Preparing as usize] = 1;
        causes_per_s[3][LateCause::NotRunning as usize] = 5;
        let late = LatePerSecond {
            start: Instant::now(),
            mark: 0,
            mark_causes: [0; LateCause::ALL.len()],
            per_s: vec![0, 1, 0, 5],
            causes_per_s,
        };
        let seconds = [kept, kept, stolen, kept];
        assert_eq!(late.in_kept_time(&seconds), 1, "second 3 follows a second with CPU stolen");
        let when = late.kept_time_seconds(&seconds);
        assert_eq!(when.len(), 1, "{when:?}");
        assert!(when[0].starts_with("at 0:01 (UTC ") && when[0].ends_with("), 1: preparing 1"), "{}", when[0]);
    }
}
