//! N concurrent calls into a loopback child process, with ffmpeg beside them.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::sync::mpsc;

use wasmcalls::calls::dial;
use wasmcalls::media::encoder::SignalHint;
use wasmcalls::media::stats::{LateCause, Percentiles, new_histogram};
use wasmcalls::media::{
    CallId, CallStats, Control, EncoderConfig, MediaEvent, MediaPlane, PacerConfig, PcmFormat, SourceSpec,
};
use wasmcalls::telegram::JoinOptions;
use wasmcalls::telegram::sfu::{Sfu, SfuOptions};

use super::{LatePerSecond, Resident, Second, Timer, kept_time_at};

#[derive(Args)]
pub struct PacingArgs {
    /// Concurrent calls
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Seconds of audio each call plays
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Opus bitrate per stream
    #[arg(long, default_value = "64k", value_parser = crate::cli::parse_bitrate)]
    bitrate: u32,
    /// libopus complexity (0–10)
    #[arg(long, default_value_t = 10)]
    complexity: u8,
    /// What the encoder is told the audio is: auto, music or voice
    #[arg(long, default_value = "auto")]
    signal: SignalHint,
    /// Raw PCM s16le 48 kHz stereo file to stream instead of the synthetic signal
    #[arg(long)]
    input: Option<PathBuf>,
    /// The synthetic signal: music (CELT, the cheap case) or speech (SILK/hybrid, ~3×)
    #[arg(long, default_value = "music", value_parser = ["music", "speech"])]
    content: String,
    /// How the calls get the audio: `file` (each call reads and encodes its own copy),
    /// `opus` (the input encoded once to Ogg Opus by opusenc at the same bitrate; each
    /// call passes the file's packets through) or `shared` (one live source, encoded
    /// once for all the calls)
    #[arg(long, default_value = "file", value_parser = ["file", "opus", "shared"])]
    source: String,
    /// Pacer threads (default: one per core)
    #[arg(long)]
    shards: Option<usize>,
    /// Share of a core each pacer thread may commit, in percent (the host's
    /// `shard_budget_percent`); calls beyond it are refused, as the host refuses them
    #[arg(long, default_value_t = wasmcalls::media::pacer::BUDGET_PERCENT)]
    budget: f64,
    /// Calls NTgCalls (pytgcalls' libwebrtc core, from the project's `.venv`, made if
    /// missing) streams the same input into the same loopback, beside ours at the same
    /// number (0 to skip; skipped, saying why, where Python or the package is absent)
    #[arg(long, default_value_t = 20)]
    ntgcalls: usize,
    /// ffmpeg processes to run for comparison (0 to skip; skipped when ffmpeg is absent)
    #[arg(long, default_value_t = 4)]
    ffmpeg: usize,
}

/// Writes [`music`] of `seconds` to a raw file in `dir`.
pub(super) fn write_input(dir: &Path, seconds: u32) -> Result<PathBuf> {
    write_raw(dir.join("bench-input.raw"), &music(seconds))
}

/// Writes `pcm` as raw s16le to `path`.
fn write_raw(path: PathBuf, pcm: &[i16]) -> Result<PathBuf> {
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// A music-like stereo test signal (48 kHz, interleaved): a few drifting partials plus
/// a little noise, so the encoder works as hard as on real content.
pub(super) fn music(seconds: u32) -> Vec<i16> {
    let n = 48000 * seconds as usize;
    let mut out = Vec::with_capacity(n * 2);
    let mut noise: u32 = 0x1234_5678;
    for i in 0..n {
        let t = i as f64 / 48000.0;
        let mut l = 0.0;
        let mut r = 0.0;
        for (k, f) in [110.0, 220.5, 331.0, 443.0, 587.3, 880.0, 1320.0, 2637.0].iter().enumerate() {
            let wobble = 1.0 + 0.01 * (t * (k as f64 + 1.0) * 0.7).sin();
            let a = 0.12 / (k as f64 + 1.0).sqrt();
            l += a * (2.0 * std::f64::consts::PI * f * wobble * t).sin();
            r += a * (2.0 * std::f64::consts::PI * f * wobble * t + k as f64).sin();
        }
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let nz = (noise as f64 / u32::MAX as f64 - 0.5) * 0.02;
        for v in [l + nz, r - nz] {
            out.push((v * 32767.0).clamp(-32768.0, 32767.0) as i16);
        }
    }
    out
}

fn cpu_of(pid: &str) -> Option<Duration> {
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(Duration::from_secs_f64(ticks / hz))
}

pub(super) fn self_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time of this process (`RUSAGE_SELF`) or of its reaped children (`RUSAGE_CHILDREN`).
fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub(super) struct LoopbackChild(Child);

impl Drop for LoopbackChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn spawn_loopback() -> Result<(LoopbackChild, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["loopback", "serve", "--listen", "127.0.0.1:0", "--no-decode"])
        // Its errors, not its chatter: NTgCalls' data channel alone logs a line a packet.
        .env("WASMCALLS_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the loopback child process")?;
    let stdout = child.stdout.take().context("the loopback child has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|u| u.trim_end_matches("?chat=<chat").to_owned())
        .context("the loopback child did not print its URL")?;
    Ok((LoopbackChild(child), url))
}

/// Late frames, the timer's late wake-ups and the CPU stolen, second by second in
/// aligned columns, so a burst of late frames reads against what the machine did then.
fn print_seconds(late: &[u64], seconds: &[Second]) {
    let n = late.len().max(seconds.len());
    let row = |f: &dyn Fn(usize) -> String| (0..n).map(|i| format!("{:>5}", f(i))).collect::<String>();
    let at = |i: usize| seconds.get(i).copied().unwrap_or_default();
    println!("    second             {}", row(&|i| (i + 1).to_string()));
    println!("    late frames        {}", row(&|i| late.get(i).copied().unwrap_or(0).to_string()));
    println!("    timer late wakes   {}", row(&|i| at(i).late_wakes.to_string()));
    println!("    CPU stolen (ms)    {}", row(&|i| at(i).stolen_ms.to_string()));
}

/// What one run of N calls measured.
pub(super) struct Figures {
    /// Calls joined, and of them those whose stream admission control refused.
    pub offered: usize,
    pub refused: usize,
    /// Admitted only on a retry, once the first streams' real costs were measured.
    pub admitted_later: usize,
    /// Calls moved to another pacer thread to play their stream.
    pub moved: u64,
    pub calls: usize,
    pub frames: u64,
    pub late: u64,
    /// Host CPU per packet sent per call.
    pub per_frame_us: f64,
    /// Audio per packet, in ms (20 for encoded streams; the file's for Opus passed through).
    pub packet_ms: f64,
    pub p50_median: u64,
    pub p99_median: u64,
    pub p99_worst: u64,
    pub max: u64,
    /// RSS per added call (past the first, which also pays what is paid once): the
    /// connection, the opened stream, and what playing touched.
    pub kib_connection: f64,
    pub kib_stream: f64,
    pub kib_playing: f64,
    /// Frames gone late in each second from the first join (the joins and the refused
    /// calls' retries included).
    pub late_per_s: Vec<u64>,
    /// Of a bare 20 ms timer thread beside the calls: wake-ups, and those over 5 ms late.
    pub timer: (u64, u64),
    /// That timer's seconds: its late wake-ups and the CPU stolen from the VM in each.
    pub seconds: Vec<Second>,
    /// The late frames counted in seconds when the machine kept time: the host's own.
    pub late_in_kept_time: u64,
    /// Those seconds, each with when it was and what held the pacer up.
    pub kept_time_seconds: Vec<String>,
    /// The late frames by what held their pacer thread up (see [`LateCause`]).
    pub late_by_cause: Vec<(LateCause, u64)>,
    /// Resident memory before the first join, after the first call played alone for a
    /// second (none with one call), and at its peak while every call played.
    pub before: Resident,
    pub first: Option<Resident>,
    pub peak: Resident,
    pub child_per_frame_us: f64,
    /// The loopback's per-call arrival deviation (p50 and p99 medians) and loss.
    pub heard: (u64, u64, u64),
    pub wall: Duration,
    pub joined_in: Duration,
}

impl Figures {
    /// Streams of this kind one core could carry: CPU per second of audio, per call.
    pub fn streams_per_core(&self) -> f64 {
        1e6 * self.packet_ms / 1e3 / self.per_frame_us
    }

    /// CPU per 20 ms of audio (what encoded and passed-through streams compare on).
    pub fn per_20ms_us(&self) -> f64 {
        self.per_frame_us * 20.0 / self.packet_ms
    }

    pub fn per_call(&self) -> Resident {
        per_call(self.before, self.peak, self.calls)
    }

    pub fn per_added_call(&self) -> Resident {
        per_added_call(self.before, self.first, self.peak, self.calls)
    }

    /// The late frames by cause, as "not_running 3, commands 0, …".
    pub fn late_causes(&self) -> String {
        super::late_causes(&self.late_by_cause)
    }
}

/// 1 for a stream that played to its end, 0 for events that change nothing; an error
/// for a stream that failed, a call that dropped, or a media plane that stopped.
fn stream_ended(ev: Option<MediaEvent>) -> Result<usize> {
    Ok(match ev {
        Some(MediaEvent::StreamEnded { error: None, .. }) => 1,
        Some(MediaEvent::StreamEnded { error: Some(e), .. }) => bail!("a stream failed: {e}"),
        Some(MediaEvent::ConnectionLost { reason, .. }) => bail!("a call dropped: {reason}"),
        Some(MediaEvent::ConsentExpired { .. }) => bail!("a call's media path went silent for good"),
        Some(
            MediaEvent::Connected { .. }
            | MediaEvent::Recovered { .. }
            | MediaEvent::Speaking { .. }
            | MediaEvent::RecordingEnded { .. },
        ) => 0,
        None => bail!("the media plane stopped"),
    })
}

/// Resident memory per call, all in: what the process grew by from `before` to `peak`,
/// over the calls.
fn per_call(before: Resident, peak: Resident, calls: usize) -> Resident {
    per(peak.since(before), calls)
}

/// Resident memory per call past the first (what one more call costs), `first` read
/// after the first call played alone; per call, all in, when none did.
fn per_added_call(before: Resident, first: Option<Resident>, peak: Resident, calls: usize) -> Resident {
    match first {
        Some(first) => per(peak.since(first), calls.saturating_sub(1)),
        None => per_call(before, peak, calls),
    }
}

/// `r` shared over `n`.
fn per(r: Resident, n: usize) -> Resident {
    let n = n.max(1) as u64;
    Resident { total: r.total / n, anon: r.anon / n, file: r.file / n }
}

/// Joins the calls numbered `wave` at once: ICE takes ~200 ms a call, mostly waiting.
async fn join_wave(
    media: &MediaPlane,
    sfu: &Sfu,
    bind: IpAddr,
    options: &JoinOptions,
    wave: &[usize],
) -> Result<Vec<CallId>> {
    let joins = wave.iter().map(|&i| dial(media, sfu, -(i as i64) - 1, bind, options));
    let mut ids = Vec::with_capacity(wave.len());
    for r in futures::future::join_all(joins).await {
        ids.push(r.context("joining the loopback")?.call);
    }
    Ok(ids)
}

/// The streams that ended among the events already in.
fn ended_so_far(events: &mut mpsc::UnboundedReceiver<MediaEvent>) -> Result<usize> {
    let mut ended = 0;
    while let Ok(ev) = events.try_recv() {
        ended += stream_ended(Some(ev))?;
    }
    Ok(ended)
}

/// Waits until `calls` streams have ended (counted in `ended`) or `until`, reading
/// resident memory and calling `each` every 500 ms; returns the memory's peak.
async fn watch(
    events: &mut mpsc::UnboundedReceiver<MediaEvent>,
    ended: &mut usize,
    calls: usize,
    until: Option<tokio::time::Instant>,
    each: &mut dyn FnMut(),
) -> Result<Resident> {
    let mut peak = Resident::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while *ended < calls && until.is_none_or(|u| tokio::time::Instant::now() < u) {
        tokio::select! {
            ev = events.recv() => *ended += stream_ended(ev)?,
            _ = tick.tick() => {
                let now = Resident::of_self();
                if now.total > peak.total {
                    peak = now;
                }
                each();
            }
        }
    }
    Ok(peak)
}

/// Streams `spec` into `calls` calls on a loopback in a child process and measures the
/// host while it plays. Streams admission control refuses are retried while retrying
/// admits more (a stream is admitted at its encoder's worst case, then weighed at what
/// it was measured to cost); the calls still refused then leave.
pub(super) async fn measure(
    spec: &SourceSpec,
    calls: usize,
    pacer: PacerConfig,
    enc: EncoderConfig,
) -> Result<Figures> {
    let (child, url) = spawn_loopback()?;
    let child_pid = child.0.id().to_string();
    let (media, mut events) = MediaPlane::start(pacer)?;
    let sfu_base = url.trim_end_matches("/join").to_owned();
    let bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let sfu = Sfu::new(&SfuOptions { url, bind_ip: bind })?;
    // The bench's own timer thread is the bench's, not the calls': started first.
    let timer = Timer::start();
    let mut late_per_s = LatePerSecond::new(&timer, media.totals());
    let mut sample_late = || late_per_s.sample(media.totals());
    let by_cause = || LateCause::ALL.map(|c| (c, media.totals().late_because(c)));
    let by_cause0 = by_cause();
    // SAFETY: malloc_trim only returns free heap pages to the OS.
    unsafe { libc::malloc_trim(0) };
    let before = Resident::of_self();
    let as_ourselves = JoinOptions::default();
    let mut ended = 0;
    // The first call joins and plays alone for a second, as NTgCalls' driver does, so
    // what is paid once (threads' stacks and arenas, code paged in, tables built) is
    // told from what each added call costs. It goes through the same functions as the
    // calls after it, the watching loop included: the kernel maps a binary's code 64 KiB
    // around each first touch, and the bench's own code first run by the added calls
    // measured ~300 KiB of them (`perf record -e page-faults -d`).
    let alone = if calls > 1 {
        let call = join_wave(&media, &sfu, bind, &as_ourselves, &[0]).await?[0];
        let stream = tokio::task::block_in_place(|| media.open_stream(spec, None, enc))?;
        media.control(call, Control::Play(stream))?;
        ended += ended_so_far(&mut events)?;
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        watch(&mut events, &mut ended, 1, Some(until), &mut sample_late).await?;
        // SAFETY: as above.
        unsafe { libc::malloc_trim(0) };
        Some((call, Resident::of_self()))
    } else {
        None
    };
    let first = alone.map_or(before, |(_, r)| r);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for chunk in (alone.map_or(0, |_| 1)..calls).collect::<Vec<_>>().chunks(25) {
        ids.extend(join_wave(&media, &sfu, bind, &as_ourselves, chunk).await?);
    }
    let joined_in = t0.elapsed();
    // SAFETY: as above.
    unsafe { libc::malloc_trim(0) };
    let joined = Resident::of_self().total;
    let mut streams = Vec::new();
    for _ in 0..ids.len() {
        streams.push(tokio::task::block_in_place(|| media.open_stream(spec, None, enc))?);
    }
    let opened = Resident::of_self().total;
    // The first call's stream may already have ended (a source shorter than its second
    // alone and the joins): counted here, or the wait for every stream's end never ends.
    ended += ended_so_far(&mut events)?;

    let cpu0 = self_cpu();
    let child_cpu0 = cpu_of(&child_pid).unwrap_or_default();
    let wall0 = Instant::now();
    let offered = calls;
    let mut waiting = Vec::new();
    let mut playing: Vec<_> = alone.iter().map(|(call, _)| *call).collect();
    for (call, stream) in ids.iter().zip(streams) {
        match media.control(*call, Control::Play(stream)) {
            Ok(()) => playing.push(*call),
            Err(wasmcalls::media::MediaError::Capacity { .. }) => waiting.push(*call),
            Err(e) => return Err(e.into()),
        }
    }
    let (refused, mut admitted_later) = (waiting.len(), 0);
    while !waiting.is_empty() {
        // A stream's claim turns into its measured cost after a whole second played.
        for _ in 0..7 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sample_late();
        }
        let (mut still, before) = (Vec::new(), playing.len());
        for call in waiting {
            let stream = tokio::task::block_in_place(|| media.open_stream(spec, None, enc))?;
            match media.control(call, Control::Play(stream)) {
                Ok(()) => playing.push(call),
                Err(wasmcalls::media::MediaError::Capacity { .. }) => still.push(call),
                Err(e) => return Err(e.into()),
            }
        }
        let admitted = playing.len() - before;
        admitted_later += admitted;
        waiting = still;
        if admitted == 0 {
            break;
        }
    }
    for call in &waiting {
        media.remove(*call).await;
    }
    let ids = playing;
    let peak = watch(&mut events, &mut ended, ids.len(), None, &mut sample_late).await?;
    sample_late();
    let wall = wall0.elapsed();
    let seconds = timer.seconds();
    let late_in_kept_time = late_per_s.in_kept_time(&seconds);
    let kept_time_seconds = late_per_s.kept_time_seconds(&seconds);
    let late_by_cause = by_cause().iter().zip(by_cause0).map(|(&(c, n), (_, n0))| (c, n - n0)).collect();
    let timer = timer.read();
    let cpu = self_cpu() - cpu0;
    let child_cpu = cpu_of(&child_pid).unwrap_or_default().saturating_sub(child_cpu0);

    let mut stats: Vec<CallStats> = Vec::new();
    for c in &ids {
        stats.push(media.stats(*c).await?);
    }
    let frames: u64 = stats.iter().map(|s| s.frames_sent).sum();
    let ticks: u64 = stats.iter().map(|s| s.sent_ticks).sum();
    let late: u64 = stats.iter().map(|s| s.late_frames).sum();
    let mut p99s: Vec<u64> = stats.iter().map(|s| s.deviation.p99_us).collect();
    p99s.sort_unstable();
    let mut p50s: Vec<u64> = stats.iter().map(|s| s.deviation.p50_us).collect();
    p50s.sort_unstable();
    // Per added call: the first call's share of the process is in `first`.
    let added = ids.len() - alone.map_or(0, |_| 1);
    let per_added = |kib: u64| kib as f64 / added.max(1) as f64;
    let heard = loopback_arrivals(&sfu_base).await?;
    for c in &ids {
        media.remove(*c).await;
    }
    drop(child);
    Ok(Figures {
        offered,
        refused: refused - admitted_later,
        admitted_later,
        moved: media.totals().calls_moved.load(std::sync::atomic::Ordering::Relaxed),
        calls: ids.len(),
        frames,
        late,
        per_frame_us: cpu.as_secs_f64() * 1e6 / frames.max(1) as f64,
        packet_ms: ticks as f64 / 48.0 / frames.max(1) as f64,
        p50_median: median(&p50s),
        p99_median: median(&p99s),
        p99_worst: p99s.last().copied().unwrap_or(0),
        max: stats.iter().map(|s| s.deviation.max_us).max().unwrap_or(0),
        kib_connection: per_added(joined.saturating_sub(first.total)),
        kib_stream: per_added(opened.saturating_sub(joined)),
        kib_playing: per_added(peak.total.saturating_sub(opened)),
        late_per_s: late_per_s.per_s,
        timer,
        seconds,
        late_in_kept_time,
        kept_time_seconds,
        late_by_cause,
        before,
        first: alone.map(|(_, r)| r),
        peak,
        child_per_frame_us: child_cpu.as_secs_f64() * 1e6 / frames.max(1) as f64,
        heard,
        wall,
        joined_in,
    })
}

pub async fn run(a: PacingArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = match &a.input {
        Some(p) => p.clone(),
        None if a.content == "speech" => {
            write_raw(dir.path().join("speech.raw"), &wasmcalls::media::cost::speech_like(a.seconds))?
        }
        None => write_input(dir.path(), a.seconds)?,
    };
    let pacer = PacerConfig {
        shards: a.shards.unwrap_or_else(|| PacerConfig::default().shards),
        budget_percent: a.budget,
        ..Default::default()
    };
    let shards = pacer.shards;
    let enc =
        EncoderConfig { bitrate: Some(a.bitrate), complexity: a.complexity, signal: a.signal, ..Default::default() };
    println!(
        "wasmcalls pacing bench: {} calls × {} s, stereo {} kb/s, complexity {}, signal {:?}, {} pacer thread(s) \
         committing at most {} % of a core each",
        a.calls,
        a.seconds,
        a.bitrate / 1000,
        a.complexity,
        a.signal,
        shards,
        a.budget
    );
    let spec = match a.source.as_str() {
        "shared" => {
            // A live named source whose output is the input as WAV: what a radio relay is.
            let wav = write_wav(dir.path(), &input)?;
            println!("  one live source shared by every call: one read, decode and encode for all");
            SourceSpec::Command {
                name: "bench".into(),
                argv: vec!["cat".into(), wav.display().to_string()],
                live: true,
            }
        }
        "opus" => {
            let wav = write_wav(dir.path(), &input)?;
            let kbps = (a.bitrate / 1000).to_string();
            super::tool(
                "opusenc",
                &["--quiet", "--bitrate", &kbps, &wav.display().to_string(), "in.opus"],
                dir.path(),
            )?;
            println!("  each call passes the same Ogg Opus file's packets through (opusenc, {kbps} kb/s): no encoding");
            SourceSpec::File { path: dir.path().join("in.opus"), raw: PcmFormat::stereo48() }
        }
        _ => SourceSpec::File { path: input.clone(), raw: PcmFormat::stereo48() },
    };
    let f = measure(&spec, a.calls, pacer.clone(), enc).await?;
    let encode_us = encode_only(&input, enc)?;
    println!("  joined {} calls in {:.1} s", f.offered, f.joined_in.as_secs_f64());
    println!(
        "  admitted {} streams ({} once the first streams' costs were measured; {} moved their call to another \
         pacer thread for room), refused {} (capacity)",
        f.calls, f.admitted_later, f.moved, f.refused
    );
    let kept = (0..f.seconds.len()).filter(|&s| kept_time_at(&f.seconds, s)).count();
    println!(
        "  streamed {:.1} s: {} frames, {} late (> 5 ms); {} of them in the {kept} of {} seconds when the machine \
         kept time (the timer on time, no CPU stolen)",
        f.wall.as_secs_f64(),
        f.frames,
        f.late,
        f.late_in_kept_time,
        f.seconds.len()
    );
    if f.late > 0 || !f.seconds.iter().all(Second::kept_time) {
        print_seconds(&f.late_per_s, &f.seconds);
    }
    if f.late > 0 {
        println!("    what held their pacer thread up the longest before each: {}", f.late_causes());
    }
    for second in &f.kept_time_seconds {
        println!("    late while the machine kept time {second}");
    }
    println!(
        "    beside them, a bare 20 ms timer thread at the pacer's priority: {} of {} wake-ups late (> 5 ms) — \
         the machine's own lateness",
        f.timer.1, f.timer.0
    );
    println!(
        "  CPU {:.1} µs per frame per call (encode + pace + SRTP + send, whole host process) = {:.0} streams per core",
        f.per_frame_us,
        f.streams_per_core()
    );
    println!("    of which libopus encoding alone: {:.1} µs per frame (measured on one thread, no network)", encode_us);
    println!(
        "  send deviation from deadline, per call: p50 median {} µs; p99 median {} µs, worst {} µs; max {} µs",
        f.p50_median, f.p99_median, f.p99_worst, f.max
    );
    let (all, grown) = (f.per_call(), f.peak.since(f.before));
    println!(
        "  memory: RSS +{} KiB per call all in ({} anonymous): {} KiB before joining, {} KiB peak; of the growth {} KiB \
         anonymous (heap, stacks), {} KiB code and files",
        all.total, all.anon, f.before.total, f.peak.total, grown.anon, grown.file,
    );
    if let Some(first) = f.first {
        let (once, added) = (first.since(f.before), f.per_added_call());
        println!(
            "    the first call +{} KiB ({} anonymous), paid once; each added call +{} KiB ({} anonymous): connection \
             {:.0}, stream (encoder, buffers) {:.0}, touched while playing {:.0}",
            once.total, once.anon, added.total, added.anon, f.kib_connection, f.kib_stream, f.kib_playing,
        );
    }
    println!("  (the loopback child used {:.1} µs CPU per frame receiving)", f.child_per_frame_us);
    println!(
        "  loopback arrival deviation, per call: p50 median {} µs, p99 median {} µs; {} packets lost",
        f.heard.0, f.heard.1, f.heard.2
    );
    let per_frame_us = f.per_frame_us;
    if a.ntgcalls > 0 {
        match ntgcalls_run(&input, a.ntgcalls, a.seconds) {
            Ok(n) => {
                // Ours at the same number of calls, unless that is the run above.
                let ours =
                    if a.ntgcalls == a.calls { f } else { measure(&spec, a.ntgcalls, pacer.clone(), enc).await? };
                let their_us = n.cpu_s * 1e6 / (n.wall_s * 50.0) / n.calls as f64;
                let (their_all, their_added) =
                    (per_call(n.before(), n.peak(), n.calls), per_added_call(n.before(), n.first(), n.peak(), n.calls));
                let (our_all, our_added) = (ours.per_call(), ours.per_added_call());
                println!(
                    "NTgCalls {} (pytgcalls' libwebrtc core), {} calls of the same input into the same loopback:",
                    n.version, n.calls
                );
                let their_once = n.first().unwrap_or_default().since(n.before());
                println!(
                    "  CPU {their_us:.1} µs per call per 20 ms; RSS +{} KiB per call all in ({} anonymous): the first \
                     call +{} KiB ({} anonymous), each added call +{} KiB ({} anonymous); {} threads ({:.1} per call)",
                    their_all.total,
                    their_all.anon,
                    their_once.total,
                    their_once.anon,
                    their_added.total,
                    their_added.anon,
                    n.threads,
                    n.threads as f64 / n.calls as f64
                );
                println!(
                    "  wasmcalls at {} calls: CPU {:.1} µs per call per 20 ms; RSS +{} KiB per call all in ({} \
                     anonymous), each added call +{} KiB ({} anonymous); {} late",
                    ours.calls,
                    ours.per_20ms_us(),
                    our_all.total,
                    our_all.anon,
                    our_added.total,
                    our_added.anon,
                    ours.late
                );
                let times = |theirs: u64, ours: u64| theirs as f64 / ours.max(1) as f64;
                println!(
                    "  ratio: NTgCalls spends {:.1}× the CPU; per call all in {:.1}× the memory and {:.1}× the \
                     anonymous memory (heap and stacks; the rest is code, paged in once), per added call {:.1}× and \
                     {:.1}× (it sends mono 60 ms packets at ~32 kb/s; wasmcalls stereo 20 ms packets at {} kb/s, \
                     complexity {}{})",
                    their_us / ours.per_20ms_us(),
                    times(their_all.total, our_all.total),
                    times(their_all.anon, our_all.anon),
                    times(their_added.total, our_added.total),
                    times(their_added.anon, our_added.anon),
                    a.bitrate / 1000,
                    a.complexity,
                    if a.source == "shared" { ", encoded once for all its calls" } else { "" }
                );
            }
            Err(e) => println!("NTgCalls comparison skipped: {e:#}"),
        }
    }
    if a.ffmpeg > 0 {
        match ffmpeg_run(&FfmpegInput::Raw(&input), a.ffmpeg, a.bitrate, a.complexity, a.seconds) {
            Ok(f) => {
                println!("ffmpeg -re … -c:a libopus -f rtp, {} processes on the same input:", a.ffmpeg);
                println!(
                    "  CPU {:.1} µs per frame per stream = {:.0} streams per core; RSS {:.1} MiB per stream",
                    f.per_frame_us,
                    20_000.0 / f.per_frame_us,
                    f.rss_kib as f64 / 1024.0
                );
                println!(
                    "  arrival deviation p50 {} µs, p99 {} µs, max {} µs (wasmcalls' loopback measures the same way)",
                    f.arrival.p50_us, f.arrival.p99_us, f.arrival.max_us
                );
                println!("  ratio: ffmpeg spends {:.1}× the CPU per stream", f.per_frame_us / per_frame_us);
            }
            Err(e) => println!("ffmpeg comparison skipped: {e:#}"),
        }
    }
    Ok(())
}

/// What NTgCalls' driver measured while its calls streamed.
#[derive(serde::Deserialize)]
struct NtgFigures {
    #[serde(rename = "connected")]
    calls: usize,
    cpu_s: f64,
    wall_s: f64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    anon_before_kib: u64,
    anon_peak_kib: u64,
    /// After the first call streamed alone for a second (none with one call).
    rss_first_kib: Option<u64>,
    anon_first_kib: Option<u64>,
    threads: usize,
    version: String,
}

impl NtgFigures {
    fn resident(total: u64, anon: u64) -> Resident {
        Resident { total, anon, file: total.saturating_sub(anon) }
    }

    fn before(&self) -> Resident {
        Self::resident(self.rss_before_kib, self.anon_before_kib)
    }

    /// After the first call streamed alone, if it did.
    fn first(&self) -> Option<Resident> {
        Some(Self::resident(self.rss_first_kib?, self.anon_first_kib?))
    }

    fn peak(&self) -> Resident {
        Self::resident(self.rss_peak_kib, self.anon_peak_kib)
    }
}

/// The project's venv Python with NTgCalls (`tests/ntgcalls/python` makes it where
/// missing, as the NTgCalls test does).
fn ntgcalls_python() -> Result<PathBuf> {
    let script = Path::new("tests/ntgcalls/python");
    if !script.exists() {
        bail!("{} is not here: run the bench from the project folder", script.display());
    }
    let out = Command::new(script).output().context("running tests/ntgcalls/python")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// NTgCalls streaming raw `input` into `calls` calls on a loopback child, measured by
/// its driver (`tests/ntgcalls/drive.py --measure`).
fn ntgcalls_run(input: &Path, calls: usize, seconds: u32) -> Result<NtgFigures> {
    let python = ntgcalls_python()?;
    let (_child, url) = spawn_loopback()?;
    let out = Command::new(python)
        .arg("tests/ntgcalls/drive.py")
        .arg(&url)
        .arg(input)
        .args(["--calls", &calls.to_string(), "--seconds", &seconds.to_string(), "--measure"])
        .output()
        .context("running tests/ntgcalls/drive.py")?;
    if !out.status.success() {
        bail!("the NTgCalls driver failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let figures: NtgFigures = serde_json::from_slice(&out.stdout).context("reading the NTgCalls driver's figures")?;
    if figures.calls == 0 {
        bail!("no NTgCalls call connected to the loopback");
    }
    Ok(figures)
}

/// The raw 48 kHz stereo `input` as a WAV file in `dir`.
fn write_wav(dir: &Path, input: &Path) -> Result<PathBuf> {
    let path = dir.join("bench-input.wav");
    wav_file(&path, &super::read_pcm(input)?)?;
    Ok(path)
}

/// Writes 48 kHz stereo `pcm` (interleaved) to `path` as a WAV file.
pub(super) fn wav_file(path: &Path, pcm: &[i16]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for &s in pcm {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

/// Encodes the whole input once on this thread: the codec's share of the per-frame cost.
fn encode_only(input: &Path, enc: EncoderConfig) -> Result<f64> {
    use wasmcalls::media::encoder::{Encoder, MAX_PACKET};
    let pcm = super::read_pcm(input)?;
    let mut encoder = Encoder::new(2, enc)?;
    let mut out = [0u8; MAX_PACKET];
    let mut frames = 0u32;
    let mut spent = Duration::ZERO;
    for frame in pcm.chunks_exact(1920) {
        let t = Instant::now();
        encoder.encode(frame, &mut out)?;
        spent += t.elapsed();
        frames += 1;
    }
    Ok(spent.as_secs_f64() * 1e6 / frames.max(1) as f64)
}

/// Median over calls of the loopback's per-call arrival p50 and p99, and total loss.
async fn loopback_arrivals(base: &str) -> Result<(u64, u64, u64)> {
    let body = reqwest::get(format!("{base}/calls")).await?.text().await?;
    let calls: Vec<serde_json::Value> = serde_json::from_str(&body).context("parsing the loopback's /calls")?;
    let field = |c: &serde_json::Value, k: &str| c["heard"]["arrival_deviation"][k].as_u64().unwrap_or(0);
    let mut p50: Vec<u64> = calls.iter().map(|c| field(c, "p50_us")).collect();
    let mut p99: Vec<u64> = calls.iter().map(|c| field(c, "p99_us")).collect();
    p50.sort_unstable();
    p99.sort_unstable();
    let lost = calls.iter().map(|c| c["heard"]["lost"].as_u64().unwrap_or(0)).sum();
    Ok((median(&p50), median(&p99), lost))
}

fn median(v: &[u64]) -> u64 {
    v.get(v.len() / 2).copied().unwrap_or(0)
}

pub(super) struct FfmpegFigures {
    pub per_frame_us: f64,
    pub rss_kib: u64,
    pub arrival: Percentiles,
}

/// What ffmpeg reads: raw 48 kHz stereo s16le, or a file it probes.
pub(super) enum FfmpegInput<'a> {
    Raw(&'a Path),
    File(&'a Path),
}

pub(super) fn ffmpeg_run(
    input: &FfmpegInput<'_>,
    n: usize,
    bitrate: u32,
    complexity: u8,
    seconds: u32,
) -> Result<FfmpegFigures> {
    if Command::new("ffmpeg").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        bail!("ffmpeg is not installed (apt-get install ffmpeg)");
    }
    let children_cpu0 = rusage(libc::RUSAGE_CHILDREN);
    let mut sinks = Vec::new();
    let mut children = Vec::new();
    for _ in 0..n {
        let sink = UdpSocket::bind("127.0.0.1:0")?;
        sink.set_read_timeout(Some(Duration::from_secs(3)))?;
        let port = sink.local_addr()?.port();
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
        match input {
            FfmpegInput::Raw(p) => cmd.args(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i"]).arg(p),
            FfmpegInput::File(p) => cmd.arg("-i").arg(p),
        };
        let child = cmd
            .args(["-c:a", "libopus", "-application", "audio", "-frame_duration", "20"])
            .args(["-b:a", &bitrate.to_string(), "-compression_level", &complexity.to_string()])
            .args(["-f", "rtp", &format!("rtp://127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ffmpeg")?;
        children.push(child);
        sinks.push(sink);
    }
    // One receiver thread per sink measures arrival against RTP time, as the loopback does.
    let receivers: Vec<_> = sinks
        .into_iter()
        .map(|sink| {
            std::thread::spawn(move || {
                let mut h = new_histogram();
                let mut buf = [0u8; 2048];
                let mut first: Option<(Instant, u32)> = None;
                let mut min = f64::MAX;
                while let Ok(n) = sink.recv(&mut buf) {
                    if n < 12 {
                        continue;
                    }
                    let now = Instant::now();
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    let (t0, ts0) = *first.get_or_insert((now, ts));
                    let transit = now.duration_since(t0).as_secs_f64() - ts.wrapping_sub(ts0) as f64 / 48000.0;
                    min = min.min(transit);
                    let _ = h.record((((transit - min) * 1e6) as u64).max(1));
                }
                h
            })
        })
        .collect();
    let mut rss = 0;
    std::thread::sleep(Duration::from_secs_f64(seconds as f64 * 0.8));
    for c in &children {
        rss += Resident::of(&c.id().to_string()).total;
    }
    for mut c in children {
        c.wait()?;
    }
    let cpu = rusage(libc::RUSAGE_CHILDREN).saturating_sub(children_cpu0);
    let mut all = new_histogram();
    for r in receivers {
        if let Ok(h) = r.join() {
            let _ = all.add(&h);
        }
    }
    let frames = all.len().max(1);
    Ok(FfmpegFigures {
        per_frame_us: cpu.as_secs_f64() * 1e6 / frames as f64,
        rss_kib: rss / n as u64,
        arrival: Percentiles::of(&all),
    })
}
