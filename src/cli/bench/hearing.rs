//! `wasmcalls bench hearing`: what hearing a call costs beside sending to it, in one
//! run. N calls play a file (sending only); then the same with one participant
//! speaking in each (receiving: SRTP, the tap, the audio level); then also recording
//! each speaker to Ogg (pass-through), the mix to WAV (decoded), and a plugin-style
//! listener decoding 16 kHz mono in 200 ms batches. Host CPU per call per 20 ms — the
//! loopback, which does the speaking, is another process — and each step's cost over
//! sending only, per incoming stream.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmcalls::calls::dial;
use wasmcalls::media::listen::{Handed, ListenPlan};
use wasmcalls::media::record::RecordPlan;
use wasmcalls::media::{CallId, Control, EncoderConfig, Listener, MediaEvent, MediaPlane, PacerConfig, SourceSpec};
use wasmcalls::telegram::JoinOptions;
use wasmcalls::telegram::sfu::{Sfu, SfuOptions};

use super::pacing::{self_cpu, spawn_loopback, write_input};

#[derive(Args)]
pub struct HearingArgs {
    /// Concurrent calls, each with one speaker
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Seconds measured per step
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Rounds of every step, interleaved: the figures are their medians
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// What runs beside sending in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sending,
    Hearing,
    RecordEach,
    RecordMix,
    Listen,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Sending => "sending only",
            Step::Hearing => "+ hearing one speaker",
            Step::RecordEach => "+ recording them to Ogg",
            Step::RecordMix => "+ recording the mix to WAV",
            Step::Listen => "+ listening, 16 kHz mono",
        }
    }
}

struct Measured {
    per_call_us: f64,
    /// Of it, on the pacer threads (sending, receiving) and on recorder and listener
    /// threads.
    pacer_us: f64,
    hearing_us: f64,
    late: u64,
    heard: u64,
    lost: u64,
}

pub async fn run(a: HearingArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = write_input(dir.path(), a.seconds + 3)?;
    let speech = std::fs::read(&input)?;
    let shards = PacerConfig::default().shards;
    println!(
        "wasmcalls hearing bench: {} calls × {} s per step, {} rounds, {} pacer thread(s), the loopback in another \
         process; each call plays a music-like file and (after the first step) hears one participant saying the same",
        a.calls, a.seconds, a.rounds, shards
    );
    const STEPS: [Step; 5] = [Step::Sending, Step::Hearing, Step::RecordEach, Step::RecordMix, Step::Listen];
    // Rounds of every step in turn: a machine that drifts drifts for all of them.
    let mut runs: Vec<Vec<Measured>> = STEPS.iter().map(|_| Vec::new()).collect();
    for _ in 0..a.rounds.max(1) {
        for (i, &step) in STEPS.iter().enumerate() {
            runs[i].push(measure(step, a.calls, a.seconds, &input, &speech, dir.path()).await?);
        }
    }
    println!(
        "  {:<28} {:>11} {:>13} {:>11} {:>13} {:>6} {:>8} {:>5}",
        "step (median of rounds)", "host", "over sending", "pacers", "rec./listen", "late", "heard", "lost"
    );
    for (i, step) in STEPS.iter().enumerate() {
        // The cost over sending: the median of each round's difference.
        let over: Vec<f64> = runs[i].iter().zip(&runs[0]).map(|(m, s)| m.per_call_us - s.per_call_us).collect();
        let over = if i == 0 { "—".to_owned() } else { format!("{:+.1} µs", median(over)) };
        let r = &runs[i];
        println!(
            "  {:<28} {:>8.1} µs {:>13} {:>8.1} µs {:>10.1} µs {:>6} {:>8} {:>5}",
            step.name(),
            median(r.iter().map(|m| m.per_call_us).collect()),
            over,
            median(r.iter().map(|m| m.pacer_us).collect()),
            median(r.iter().map(|m| m.hearing_us).collect()),
            r.iter().map(|m| m.late).sum::<u64>(),
            r.iter().map(|m| m.heard).sum::<u64>(),
            r.iter().map(|m| m.lost).sum::<u64>()
        );
    }
    println!(
        "  (CPU per call per 20 ms, a call = one stream sent and one speaker heard: the whole host, its pacer threads \
         (sending, receiving, the level), its recorder and listener threads; late frames, packets heard and lost \
         summed over the rounds)"
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn measure(step: Step, calls: usize, seconds: u32, input: &Path, speech: &[u8], dir: &Path) -> Result<Measured> {
    let (child, url) = spawn_loopback()?;
    let base = url.trim_end_matches("/join").to_owned();
    let (media, mut events) = MediaPlane::start(PacerConfig::default())?;
    let bind = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let sfu = Sfu::new(&SfuOptions { url, bind_ip: bind })?;
    let chats: Vec<i64> = (0..calls).map(|i| -(i as i64) - 1).collect();
    let mut ids: Vec<CallId> = Vec::new();
    let as_ourselves = JoinOptions::default();
    for chunk in chats.chunks(25) {
        let joins = chunk.iter().map(|&chat| dial(&media, &sfu, chat, bind, &as_ourselves));
        for r in futures::future::join_all(joins).await {
            ids.push(r.context("joining the loopback")?.call);
        }
    }
    let spec = SourceSpec::File { path: input.to_path_buf(), raw: wasmcalls::media::PcmFormat::stereo48() };
    for &call in &ids {
        let stream = tokio::task::block_in_place(|| media.open_stream(&spec, None, EncoderConfig::default()))?;
        media.control(call, Control::Play(stream))?;
    }
    let folder = tempfile::tempdir_in(dir)?;
    for (i, &call) in ids.iter().enumerate() {
        match step {
            Step::Sending | Step::Hearing => {}
            Step::RecordEach | Step::RecordMix => {
                let plan = RecordPlan {
                    each: (step == Step::RecordEach)
                        .then(|| (folder.path().to_owned(), Box::new(move |s: u32| format!("{i}-{s}")) as _)),
                    mix: (step == Step::RecordMix).then(|| folder.path().join(format!("{i}.wav"))),
                    max_duration: Duration::from_secs(3600),
                    max_bytes: 1 << 40,
                };
                media.record(call, plan).await?;
            }
            Step::Listen => {
                let plan = ListenPlan {
                    mix: false,
                    wanted: Box::new(|_| true),
                    rate: 16_000,
                    channels: 1,
                    batch: Duration::from_millis(200),
                };
                media.listen(call, 1, plan, Box::new(|_| Handed::Taken)).await?;
            }
        }
    }
    if step != Step::Sending {
        let client = reqwest::Client::new();
        for chat in &chats {
            let url = format!("{base}/chats/{chat}/speak?user=424242&name=speech.raw");
            let r = client.post(url).body(speech.to_vec()).send().await?;
            if !r.status().is_success() {
                bail!("the loopback would not speak: {}", r.text().await.unwrap_or_default());
            }
        }
    }
    // Let every stream settle (the first packets, the recorders' files) before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = self_cpu();
    let threads0 = threads_cpu();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds.into())).await;
    let cpu = self_cpu() - cpu0;
    let threads = threads_cpu();
    let frames = calls as f64 * t0.elapsed().as_secs_f64() * 50.0;
    let spent = |prefix: &str| -> f64 {
        let used = threads.iter().filter(|(_, (name, _))| name.starts_with(prefix));
        let secs: f64 = used.map(|(tid, (_, t))| t - threads0.get(tid).map_or(0.0, |(_, before)| *before)).sum::<f64>();
        // `+ 0.0`: an empty sum is -0.0.
        secs * 1e6 / frames + 0.0
    };
    let (pacer_us, hearing_us) = (spent("wasmcalls-pacer"), spent("wasmcalls-recor") + spent("wasmcalls-liste"));
    while let Ok(ev) = events.try_recv() {
        if let MediaEvent::ConnectionLost { reason, .. } = ev {
            bail!("a call dropped: {reason}");
        }
    }
    let (mut late, mut heard, mut lost) = (0, 0, 0);
    for &call in &ids {
        let s = media.stats(call).await?;
        late += s.late_frames;
        heard += s.heard.iter().map(|h| h.packets).sum::<u64>();
        lost += s.heard.iter().map(|h| h.lost).sum::<u64>();
        let _ = media.control(call, Control::Listen(Listener::Recording, None));
        media.remove(call).await;
    }
    drop(child);
    Ok(Measured { per_call_us: cpu.as_secs_f64() * 1e6 / frames, pacer_us, hearing_us, late, heard, lost })
}

/// CPU seconds each thread of this process has used, with its name, by thread id: the
/// scheduler's own account (`se.sum_exec_runtime` in `/proc/self/task/*/sched`, in ms
/// to the nanosecond), as `stat`'s 10 ms ticks are too coarse for a recorder thread.
fn threads_cpu() -> std::collections::HashMap<u32, (String, f64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else { continue };
        let (Ok(name), Ok(sched)) =
            (std::fs::read_to_string(task.path().join("comm")), std::fs::read_to_string(task.path().join("sched")))
        else {
            continue;
        };
        let ms = sched
            .lines()
            .find(|l| l.starts_with("se.sum_exec_runtime"))
            .and_then(|l| l.rsplit(':').next()?.trim().parse::<f64>().ok());
        if let Some(ms) = ms {
            out.insert(tid, (name.trim().to_owned(), ms / 1e3));
        }
    }
    out
}
