//! `wasmcalls bench soak`: a host under churn for a long time. Calls join, change
//! source, pause, resume, change volume and leave every few seconds; the plugin driving
//! them is hot-reloaded; the radio half of them play drops its listeners and they
//! reconnect. RSS, open file descriptors, threads, late frames and packets lost at the
//! loopback are sampled as it runs: what it shows is whether anything accumulates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use comfy_table::Table;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use wasmcalls::media::stats::LateCause;
use wasmcalls::runtime::ApiCall;

use super::{LatePerSecond, Timer};

#[derive(Args)]
pub struct SoakArgs {
    /// Minutes to run
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Chats the churn acts on (at most this many calls at once)
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Milliseconds between churn actions, each on one chat picked at random
    #[arg(long, default_value_t = 250)]
    every_ms: u64,
    /// Seconds between hot reloads of the plugin (a new version written over it)
    #[arg(long, default_value_t = 60)]
    reload_every: u64,
    /// Seconds the radio serves a listener before dropping the connection
    #[arg(long, default_value_t = 30)]
    drop_every: u64,
    /// Seconds between printed samples
    #[arg(long, default_value_t = 60)]
    sample_every: u64,
    /// Seed of the churn's choices
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of a core each pacer thread may commit, in percent (the host's
    /// `shard_budget_percent`): lower, the churn finds threads full — streams refused,
    /// calls moved to a thread with room
    #[arg(long, default_value_t = wasmcalls::media::pacer::BUDGET_PERCENT)]
    budget: f64,
    /// The plugin driving the calls (the testbot answers join/change/pause… on its API)
    #[arg(long, default_value = super::TESTBOT)]
    wasm: PathBuf,
}

/// One reading of the host.
struct Sample {
    at: Duration,
    calls: usize,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    frames: u64,
    late: u64,
    /// Of the bare timer thread beside the host: wake-ups, and those over 5 ms late.
    timer: (u64, u64),
    /// CPU time the hypervisor took from this VM, in ms.
    stolen_ms: u64,
    /// Late frames counted in seconds when the machine kept time: the host's own.
    late_in_kept_time: u64,
    /// Those seconds, each with when it was and what held the pacer up.
    kept_time_seconds: Vec<String>,
    /// The late frames by what held their pacer thread up (see [`LateCause`]).
    late_by_cause: Vec<(LateCause, u64)>,
    lost: u64,
    radio_connections: u64,
    reloads: u64,
    actions: u64,
    refused: u64,
    /// Calls moved to another pacer thread to play a stream their own had no room for.
    moved: u64,
}

pub async fn run(a: SoakArgs) -> Result<()> {
    super::require_plugin(&a.wasm)?;
    let dir = tempfile::tempdir()?;
    // Files shorter than a call's life, so streams also end on their own.
    super::pacing::write_input(dir.path(), 12)?;
    let radio = Radio::start(mp3(dir.path(), 20)?, Duration::from_secs(a.drop_every)).await?;
    let original = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let target = dir.path().join("bot.wasm");
    std::fs::write(&target, &original)?;
    let text = format!(
        "[host]\napi_port = 0\ncache_dir = \"cache\"\nshard_budget_percent = {}\n[loopback]\n[[plugins]]\n\
         name = \"bot\"\nwasm = \"bot.wasm\"\n\
         grants = {{ chats = \"all\", files = [\".\"], urls = [\"http://{}/*\"] }}\n",
        a.budget, radio.addr
    );
    let app = super::host(&text, dir.path()).await?;
    let reloads = Arc::new(AtomicU64::new(0));
    let reload_task = {
        let (mut rx, reloads) = (app.plugins.reloads(), reloads.clone());
        tokio::spawn(async move {
            while let Ok((_, r)) = rx.recv().await {
                match r {
                    Ok(_) => reloads.fetch_add(1, Ordering::Relaxed),
                    Err(e) => bail!("a hot reload failed: {e}"),
                };
            }
            Ok(())
        })
    };
    println!(
        "wasmcalls soak bench: {:.0} min; {} chats, an action every {} ms (join, change source, pause/resume, \
         volume, leave); the plugin hot-reloaded every {} s; the radio drops each listener after {} s; pacer \
         threads committing at most {} % of a core each",
        a.minutes, a.calls, a.every_ms, a.reload_every, a.drop_every, a.budget
    );

    let (mut rng, mut joined) = (StdRng::seed_from_u64(a.seed), vec![false; a.calls]);
    let mut paused = vec![false; a.calls];
    let (mut actions, mut refused) = (0u64, 0u64);
    // Answers other than ok, by command and error case: a stream that ended on its own
    // cannot be paused, a chat whose call ended is left already.
    let mut errors = std::collections::BTreeMap::<String, (u64, String)>::new();
    let file = "bench-input.raw".to_owned();
    let url = format!("http://{}/radio.mp3", radio.addr);
    let source = |rng: &mut StdRng| if rng.random_bool(0.5) { file.clone() } else { url.clone() };
    let (t0, end) = (Instant::now(), Duration::from_secs_f64(a.minutes * 60.0));
    let (mut act, mut reload, mut sample) = (
        tokio::time::interval(Duration::from_millis(a.every_ms)),
        tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(a.reload_every),
            secs(a.reload_every),
        ),
        tokio::time::interval(secs(a.sample_every)),
    );
    let gauges = Gauges {
        app: &app,
        loopback: super::loopback(&app)?.clone(),
        t0,
        radio: &radio,
        timer: Timer::start(),
        reloads: reloads.clone(),
    };
    let (mut samples, mut version) = (Vec::new(), 0u64);
    let mut late = LatePerSecond::new(&gauges.timer, app.media.totals());
    while t0.elapsed() < end {
        tokio::select! {
            _ = act.tick() => {
                let i = rng.random_range(0..a.calls);
                let chat = -(i as i64) - 1;
                let body = if !joined[i] {
                    serde_json::json!({ "cmd": "join", "chat": chat, "file": source(&mut rng) })
                } else {
                    match rng.random_range(0..100) {
                        0..30 => serde_json::json!({ "cmd": "change", "chat": chat, "file": source(&mut rng) }),
                        30..55 if paused[i] => serde_json::json!({ "cmd": "resume", "chat": chat }),
                        30..55 => serde_json::json!({ "cmd": "pause", "chat": chat }),
                        55..75 => serde_json::json!({ "cmd": "volume", "chat": chat, "volume": rng.random_range(30..=150) }),
                        _ => serde_json::json!({ "cmd": "leave", "chat": chat }),
                    }
                };
                late.sample(app.media.totals());
                let cmd = body["cmd"].as_str().unwrap_or_default().to_owned();
                let reply = app.plugins.custom_api("bot", ApiCall { path: "/api".into(), body: body.to_string() }).await?;
                actions += 1;
                let reply: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
                match reply.get("err").and_then(|e| e.as_object()).and_then(|e| e.iter().next()) {
                    None => match cmd.as_str() {
                        "join" => (joined[i], paused[i]) = (true, false),
                        "leave" => joined[i] = false,
                        "pause" => paused[i] = true,
                        "resume" | "change" => paused[i] = false,
                        _ => {}
                    },
                    Some((case, why)) => {
                        let why = why.as_str().unwrap_or_default();
                        refused += u64::from(why.starts_with("capacity"));
                        let seen = errors.entry(format!("{cmd}: {case}")).or_insert_with(|| (0, why.to_owned()));
                        seen.0 += 1;
                        joined[i] = app.manager.joined_chats().contains(&chat);
                    }
                }
            }
            _ = reload.tick() => {
                version += 1;
                // Written beside it and renamed over it, as build tools do.
                let tmp = dir.path().join("bot.wasm.tmp");
                std::fs::write(&tmp, super::reload::tagged(&original, &format!("soak-{version}")))?;
                std::fs::rename(&tmp, &target)?;
            }
            _ = sample.tick() => {
                let s = read(&gauges, &late, actions, refused);
                print_sample(&s);
                samples.push(s);
            }
        }
        if reload_task.is_finished() {
            break;
        }
    }
    if reload_task.is_finished() {
        reload_task.await??;
    }
    late.sample(app.media.totals());
    let last = read(&gauges, &late, actions, refused);
    print_sample(&last);
    samples.push(last);
    drop(gauges);
    app.shutdown().await;
    summary(&samples, &errors);
    Ok(())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

/// What a sample reads, beside the churn's own counts.
struct Gauges<'a> {
    app: &'a wasmcalls::app::App,
    loopback: wasmcalls::telegram::loopback::Loopback,
    t0: Instant,
    radio: &'a Radio,
    timer: Timer,
    reloads: Arc<AtomicU64>,
}

fn read(g: &Gauges<'_>, late: &LatePerSecond, actions: u64, refused: u64) -> Sample {
    let Gauges { app, loopback, t0, radio, timer, reloads } = g;
    let totals = app.media.totals();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| super::status_field(&status, name).unwrap_or(0);
    let heard = loopback.heard_totals();
    let seconds = timer.seconds();
    Sample {
        at: t0.elapsed(),
        calls: app.manager.joined_chats().len(),
        rss_kib: field("VmRSS:"),
        fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        threads: field("Threads:"),
        frames: totals.frames_sent.load(Ordering::Relaxed),
        late: totals.late_frames.load(Ordering::Relaxed),
        timer: timer.read(),
        stolen_ms: seconds.iter().map(|s| u64::from(s.stolen_ms)).sum(),
        late_in_kept_time: late.in_kept_time(&seconds),
        kept_time_seconds: late.kept_time_seconds(&seconds),
        late_by_cause: LateCause::ALL.iter().map(|&c| (c, totals.late_because(c))).collect(),
        lost: heard.lost,
        radio_connections: radio.connections.load(Ordering::Relaxed),
        reloads: reloads.load(Ordering::Relaxed),
        actions,
        refused,
        moved: totals.calls_moved.load(Ordering::Relaxed),
    }
}

fn print_sample(s: &Sample) {
    println!(
        "  {:>5.1} min: {:>3} calls, RSS {:>7.1} MiB, {:>4} fds, {:>3} threads; {} frames, {} late, {} lost; \
         the timer alone {} late, {:.1} s of CPU stolen, {} late in seconds that kept time; {} radio connections, \
         {} reloads, {} actions",
        s.at.as_secs_f64() / 60.0,
        s.calls,
        s.rss_kib as f64 / 1024.0,
        s.fds,
        s.threads,
        s.frames,
        s.late,
        s.lost,
        s.timer.1,
        s.stolen_ms as f64 / 1e3,
        s.late_in_kept_time,
        s.radio_connections,
        s.reloads,
        s.actions
    );
}

/// First and last reading of the second half (the first is warm-up: caches, the
/// allocator's arenas and the loopback's memory of past calls fill up), and the RSS
/// trend over it: least squares, in KiB per minute.
fn summary(samples: &[Sample], errors: &std::collections::BTreeMap<String, (u64, String)>) {
    let skip = (samples.len() / 2).min(samples.len().saturating_sub(2));
    let steady = &samples[skip..];
    let (Some(first), Some(last)) = (steady.first(), steady.last()) else { return };
    let mins: Vec<f64> = steady.iter().map(|s| s.at.as_secs_f64() / 60.0).collect();
    let kib: Vec<f64> = steady.iter().map(|s| s.rss_kib as f64).collect();
    let slope = slope(&mins, &kib);
    let fds = steady.iter().map(|s| s.fds);
    let (fd_min, fd_max) = (fds.clone().min().unwrap_or(0), fds.max().unwrap_or(0));
    let mut table = Table::new();
    table.set_header(["second half", "first", "last", "change"]);
    table.add_row(vec![
        "RSS".into(),
        format!("{:.1} MiB", first.rss_kib as f64 / 1024.0),
        format!("{:.1} MiB", last.rss_kib as f64 / 1024.0),
        format!("{slope:+.1} KiB/min (least squares)"),
    ]);
    table.add_row(vec![
        "open fds".into(),
        first.fds.to_string(),
        last.fds.to_string(),
        format!("min {fd_min}, max {fd_max}"),
    ]);
    table.add_row(vec![
        "threads".into(),
        first.threads.to_string(),
        last.threads.to_string(),
        format!("{:+}", last.threads as i64 - first.threads as i64),
    ]);
    println!("{table}");
    println!(
        "  {:.1} min, {} actions ({} refused for capacity, {} calls moved to another pacer thread for room), {} hot \
         reloads, {} radio connections; {} frames sent, {} late (> 5 ms), {} packets lost at the loopback",
        last.at.as_secs_f64() / 60.0,
        last.actions,
        last.refused,
        last.moved,
        last.reloads,
        last.radio_connections,
        last.frames,
        last.late,
        last.lost
    );
    println!(
        "  beside it, a bare timer thread at the pacer's priority woke {} times, {} of them over 5 ms late, and the \
         hypervisor took {:.1} s of CPU from this VM: what the machine itself costs the pacer's wake-ups",
        last.timer.0,
        last.timer.1,
        last.stolen_ms as f64 / 1e3
    );
    println!(
        "  late frames in seconds when the machine kept time (the timer on time, no CPU stolen): {} of {} — the \
         host's own",
        last.late_in_kept_time, last.late
    );
    for second in &last.kept_time_seconds {
        println!("    {second}");
    }
    if last.late > 0 {
        println!(
            "  what held their pacer thread up the longest before each: {}",
            super::late_causes(&last.late_by_cause)
        );
    }
    if !errors.is_empty() {
        let listed: Vec<String> = errors.iter().map(|(k, (n, e))| format!("{n}× {k} (\"{e}\")")).collect();
        println!("  answered with an error: {}", listed.join(", "));
    }
}

fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let den: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    if den > 0.0 { num / den } else { 0.0 }
}

/// [`super::pacing::music`] of `seconds` as a 128 kb/s MP3, by `lame`.
fn mp3(dir: &Path, seconds: u32) -> Result<Vec<u8>> {
    let wav = dir.join("radio.wav");
    super::pacing::wav_file(&wav, &super::pacing::music(seconds))?;
    let out = dir.join("radio.mp3");
    let run = std::process::Command::new("lame").args(["--quiet", "-t", "-b", "128"]).arg(&wav).arg(&out).output();
    match run {
        Ok(o) if o.status.success() => Ok(std::fs::read(&out)?),
        Ok(o) => bail!("lame could not make the radio's MP3: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => bail!("the soak's radio needs `lame` to make its MP3 ({e}): apt-get install lame, or run .ci/setup"),
    }
}

/// An endless MP3 radio at its real rate (a burst first, as Icecast sends), which
/// drops each listener mid-stream after a while, as real stations' connections drop.
struct Radio {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicU64>,
}

impl Radio {
    async fn start(mp3: Vec<u8>, drop_after: Duration) -> Result<Radio> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (addr, connections) = (listener.local_addr()?, Arc::new(AtomicU64::new(0)));
        let (mp3, count) = (Arc::new(mp3), connections.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(sock, mp3.clone(), drop_after));
            }
        });
        Ok(Radio { addr, connections })
    }
}

/// One listener: chunked, so closing without the last chunk is a drop the client
/// sees as one (not the end of the stream).
async fn serve(mut sock: TcpStream, mp3: Arc<Vec<u8>>, drop_after: Duration) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 || head.len() > 16 << 10 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    sock.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: wasmcalls soak radio\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let (t0, mut at, mut sent) = (Instant::now(), 0usize, 0usize);
    // 4 KiB every 250 ms is 128 kb/s; the first 32 KiB at once.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while t0.elapsed() < drop_after {
        if sent >= 32 << 10 {
            tick.tick().await;
        }
        let end = (at + 4096).min(mp3.len());
        let chunk = &mp3[at..end];
        sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
        sock.write_all(chunk).await?;
        sock.write_all(b"\r\n").await?;
        sent += chunk.len();
        at = if end == mp3.len() { 0 } else { end };
    }
    Ok(())
}
