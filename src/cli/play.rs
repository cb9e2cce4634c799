//! `wasmcalls play FILE`: stream one raw PCM file into a group call in real time.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wasmcalls::calls::dial;
use wasmcalls::media::{Control, EncoderConfig, MediaEvent, MediaPlane, PacerConfig, PcmFormat};
use wasmcalls::telegram::loopback::LoopbackOptions;
use wasmcalls::telegram::sfu::SfuOptions;
use wasmcalls::telegram::{TelegramOptions, connect};

#[derive(Args)]
pub struct PlayArgs {
    /// Raw PCM s16le file
    file: PathBuf,
    /// The file's sample rate in Hz (the seed API's `bitrate`): 8000, 12000, 16000, 24000 or 48000
    #[arg(long, default_value_t = 48000)]
    rate: u32,
    /// 1 (mono) or 2 (stereo)
    #[arg(long, default_value_t = 2)]
    channels: u8,
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
    /// Join through real Telegram, with the `[telegram]` session of this config
    #[arg(long, value_name = "CONFIG", conflicts_with_all = ["sfu", "record"])]
    telegram: Option<PathBuf>,
    /// Chat id of the group call
    #[arg(long, default_value_t = -1001185324811, allow_hyphen_values = true)]
    chat: i64,
}

pub async fn run(args: PlayArgs) -> Result<()> {
    let format = PcmFormat::new(args.rate, args.channels)?;
    let (media, mut events) = MediaPlane::start(PacerConfig::default())?;
    // Open first: a bad file is reported before anything connects.
    let stream = media.open_stream(
        &args.file,
        format,
        EncoderConfig { bitrate: args.bitrate, signal: args.signal, ..Default::default() },
    )?;
    let total = stream.total_frames();

    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let side = match (&args.sfu, &args.telegram) {
        (Some(url), _) => TelegramOptions::Sfu(SfuOptions { url: url.clone(), bind_ip: localhost }),
        (None, Some(config)) => TelegramOptions::Mtproto(super::account::mtproto(config)?),
        (None, None) => TelegramOptions::Loopback(LoopbackOptions::default()),
    };
    let side = connect(&side).await.context("connecting to Telegram")?;
    let dialed =
        dial(&media, side.telegram.as_ref(), args.chat, side.media_ip).await.context("joining the group call")?;
    let heard = side.loopback.as_ref().and_then(|l| l.call(dialed.ssrc));
    if let (Some(path), Some(h)) = (&args.record, &heard) {
        h.record_to(path).with_context(|| format!("creating {}", path.display()))?;
    }
    media.control(dialed.call, Control::Play(stream))?;

    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames · {msg}")
    {
        bar.set_style(style);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(MediaEvent::StreamEnded { error: Some(e), .. }) => bail!("stream stopped: {e}"),
                Some(MediaEvent::StreamEnded { .. }) => break,
                Some(MediaEvent::ConnectionLost { reason, .. }) => bail!("connection lost: {reason}"),
                Some(_) => {}
                None => bail!("the media plane stopped"),
            },
            _ = tick.tick() => {
                if let Ok(s) = media.stats(dialed.call).await {
                    bar.set_position(s.position_frames);
                    bar.set_message(format!("late {}", s.late_frames));
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
    println!(
        "sent {} frames ({:.1} s), {} late; send deviation p50 {} µs, p99 {} µs, max {} µs",
        stats.frames_sent,
        stats.frames_sent as f64 / 50.0,
        stats.late_frames,
        d.p50_us,
        d.p99_us,
        d.max_us
    );
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
