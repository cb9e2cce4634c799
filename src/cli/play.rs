//! `wasmcalls play SOURCE`: stream a file or URL into a group call in real time.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wasmcalls::calls::dial;
use wasmcalls::media::source::fetch::UrlPolicy;
use wasmcalls::media::source::{SourceInfo, TICKS_PER_SECOND};
use wasmcalls::media::{Control, EncoderConfig, MediaEvent, MediaPlane, PacerConfig, PcmFormat, SourceSpec};
use wasmcalls::telegram::loopback::LoopbackOptions;
use wasmcalls::telegram::sfu::SfuOptions;
use wasmcalls::telegram::{JoinOptions, TelegramOptions, connect};

#[derive(Args)]
pub struct PlayArgs {
    /// An audio file (recognised by its content) or an http(s):// URL
    source: String,
    /// For headerless PCM s16le only: its sample rate in Hz (the seed API's `bitrate`)
    #[arg(long, default_value_t = 48000)]
    rate: u32,
    /// For headerless PCM only: its channel count
    #[arg(long, default_value_t = 2)]
    channels: u8,
    /// Start this many seconds in (files only)
    #[arg(long, value_name = "SECONDS")]
    seek: Option<f64>,
    /// Stop after this many seconds (needed for live streams)
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Opus bitrate, e.g. 64k (default: 64k stereo, 48k mono)
    #[arg(long, value_parser = super::parse_bitrate)]
    bitrate: Option<u32>,
    /// What the audio is, for the encoder: auto, music or voice
    #[arg(long, default_value = "auto")]
    signal: wasmcalls::media::encoder::SignalHint,
    /// Write what the loopback Telegram heard to this WAV file
    #[arg(long, conflicts_with = "sfu")]
    record: Option<PathBuf>,
    /// Join through an SFU at this URL instead of the embedded loopback
    #[arg(long)]
    sfu: Option<String>,
    /// Join through real Telegram, with the `[telegram]` session (or `[[accounts]]`) of this config
    #[arg(long, value_name = "CONFIG", conflicts_with_all = ["sfu", "record"])]
    telegram: Option<PathBuf>,
    /// Chat id of the group call
    #[arg(long, default_value_t = -1001185324811, allow_hyphen_values = true)]
    chat: i64,
}

fn mmss(ticks: u64) -> String {
    let s = ticks / TICKS_PER_SECOND;
    format!("{}:{:02}", s / 60, s % 60)
}

fn describe(info: &SourceInfo, passing: bool) -> String {
    let how = if passing {
        "Opus passed through".to_owned()
    } else if info.codec == "opus" {
        "Opus re-encoded".to_owned()
    } else {
        format!("{} Hz × {} → Opus", info.sample_rate, info.channels)
    };
    format!("{} {} · {how}{}", info.container, info.codec, if info.live { " · live" } else { "" })
}

fn seconds(s: Option<f64>, what: &str) -> Result<Option<Duration>> {
    s.map(|v| Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("--{what} {v}: not a number of seconds")))
        .transpose()
}

pub async fn run(args: PlayArgs) -> Result<()> {
    let spec = if args.source.starts_with("http://") || args.source.starts_with("https://") {
        // The operator plays what they like: every URL, any size, any address.
        SourceSpec::Url { url: args.source.clone(), policy: UrlPolicy::operator() }
    } else {
        SourceSpec::File { path: args.source.clone().into(), raw: PcmFormat::stated(args.rate, args.channels) }
    };
    let (seek, stop_after) = (seconds(args.seek, "seek")?, seconds(args.duration, "duration")?);
    let (media, mut events) = MediaPlane::start(PacerConfig::default())?;
    // Open first: a bad source is reported before anything connects.
    let config = EncoderConfig { bitrate: args.bitrate, signal: args.signal, ..Default::default() };
    let stream = {
        let media = &media;
        tokio::task::block_in_place(|| media.open_stream(&spec, seek, config))?
    };
    let info = stream.info().clone();
    let total = stream.duration();

    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let side = match (&args.sfu, &args.telegram) {
        (Some(url), _) => TelegramOptions::Sfu(SfuOptions { url: url.clone(), bind_ip: localhost }),
        (None, Some(config)) => TelegramOptions::Mtproto(super::account::mtproto_all(config)?),
        (None, None) => TelegramOptions::Loopback(LoopbackOptions::default()),
    };
    let side = connect(&side).await.context("connecting to Telegram")?;
    let dialed = dial(&media, side.telegram.as_ref(), args.chat, side.media_ip, &JoinOptions::default())
        .await
        .context("joining the group call")?;
    let heard = side.loopback.as_ref().and_then(|l| l.call(dialed.ssrc));
    if let (Some(path), Some(h)) = (&args.record, &heard) {
        h.record_to(path).with_context(|| format!("creating {}", path.display()))?;
    }
    media.control(dialed.call, Control::Play(stream))?;

    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_bar} {msg}") {
        bar.set_style(style);
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(MediaEvent::StreamEnded { error: Some(e), .. }) => bail!("stream stopped: {e}"),
                Some(MediaEvent::StreamEnded { .. }) => break,
                Some(MediaEvent::ConnectionLost { reason, .. }) => bail!("connection lost: {reason}"),
                Some(MediaEvent::ConsentExpired { silent, .. }) => {
                    bail!("the media path gave no answer for {:.0} s: consent to send expired", silent.as_secs_f64())
                }
                Some(_) => {}
                None => bail!("the media plane stopped"),
            },
            _ = tick.tick() => {
                if let Ok(s) = media.stats(dialed.call).await {
                    bar.set_position(s.position);
                    let length = total.map_or("live".to_owned(), mmss);
                    bar.set_message(format!(
                        "{}/{length} · {} · late {}",
                        mmss(s.position),
                        describe(&info, s.passing_through),
                        s.late_frames
                    ));
                }
                if stop_after.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                bar.abandon_with_message("interrupted");
                break;
            }
        }
    }
    bar.finish_and_clear();
    let stats = media.stats(dialed.call).await?;
    if let Some(h) = &heard {
        // Give the last datagrams time to land before closing the recording.
        let sent = stats.frames_sent;
        let _ = tokio::time::timeout(Duration::from_secs(2), h.wait_until(|s| s.packets + s.lost >= sent)).await;
    }
    media.remove(dialed.call).await;
    let _ = side.telegram.leave(args.chat, dialed.ssrc).await;

    let d = stats.deviation;
    println!("played {} ({})", args.source, describe(&info, info.pass_through));
    println!(
        "sent {} packets ({:.1} s), {} late; send deviation p50 {} µs, p99 {} µs, max {} µs",
        stats.frames_sent,
        stats.sent_ticks as f64 / TICKS_PER_SECOND as f64,
        stats.late_frames,
        d.p50_us,
        d.p99_us,
        d.max_us
    );
    if stats.skipped > 0 || stats.starved > 0 {
        println!(
            "skipped {} damaged packets; played {} frames of silence waiting for data",
            stats.skipped, stats.starved
        );
    }
    if let Some(h) = heard {
        h.finish_recording()?;
        let s = h.stats();
        println!(
            "loopback heard {} packets, {} lost; arrival deviation p50 {} µs, p99 {} µs",
            s.packets, s.lost, s.arrival_deviation.p50_us, s.arrival_deviation.p99_us
        );
        if let Some(p) = &args.record {
            println!("wrote what the loopback heard to {}", p.display());
        }
    }
    Ok(())
}
