//! `wasmcalls bench loss`: what the encoder's expected-loss setting buys a receiver on
//! a lossy path, and what it costs, on music and on speech-like audio — the figures
//! the host's default (`EXPECTED_LOSS_PERCENT`) is chosen from.
//!
//! Codec-level and exact: each input is encoded once per setting as the host encodes
//! it (20 ms frames, 64 kb/s stereo, FEC mode 2), packets are dropped at random
//! (seeded), and the rest is decoded as the loopback decodes — FEC from the next
//! packet, PLC otherwise ([`wasmcalls::media::loss::conceal`]). The network path adds
//! nothing to this (the loopback's jitter buffer puts reordered packets back), so no
//! real time is spent on it.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use comfy_table::Table;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use wasmcalls::media::EncoderConfig;
use wasmcalls::media::cost::speech_like;
use wasmcalls::media::encoder::{EXPECTED_LOSS_PERCENT, Encoder, MAX_PACKET};
use wasmcalls::media::loss::{FRAME, conceal, spectral_distance, window_correlations};

#[derive(Args)]
pub struct LossArgs {
    /// Seconds of each input
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Expected-loss settings to compare, in percent
    #[arg(long, value_delimiter = ',', default_value = "0,5,10,20")]
    settings: Vec<u8>,
    /// Random loss on the path, in percent
    #[arg(long, value_delimiter = ',', default_value = "0,5,10,20")]
    losses: Vec<u8>,
    /// Loss patterns (seeds) per cell; the median is printed
    #[arg(long, default_value_t = 5)]
    runs: u64,
    /// Also a recording of your own: raw PCM s16le 48 kHz stereo (e.g. from
    /// `ffmpeg -i song.mp3 -f s16le -ar 48000 -ac 2 song.raw`)
    #[arg(long)]
    input: Option<std::path::PathBuf>,
}

/// One input encoded with one setting.
struct Encoded {
    packets: Vec<Vec<u8>>,
    us_per_frame: f64,
    /// Share of packets in SILK or hybrid mode: the ones that can carry FEC.
    speech_share: f64,
}

fn encode(pcm: &[i16], expected_loss: u8) -> Result<Encoded> {
    let config = EncoderConfig { expected_loss, ..Default::default() };
    let mut encoder = Encoder::new(2, config)?;
    let mut out = [0u8; MAX_PACKET];
    let (mut packets, mut spent, mut speech) = (Vec::new(), Duration::ZERO, 0usize);
    for frame in pcm.chunks_exact(FRAME * 2) {
        let t = Instant::now();
        let n = encoder.encode(frame, &mut out)?;
        spent += t.elapsed();
        // The TOC byte's configuration: 0–11 SILK, 12–15 hybrid, 16–31 CELT.
        speech += usize::from(n > 0 && out[0] >> 3 < 16);
        packets.push(out[..n].to_vec());
    }
    let frames = packets.len().max(1) as f64;
    Ok(Encoded { us_per_frame: spent.as_secs_f64() * 1e6 / frames, speech_share: speech as f64 / frames, packets })
}

/// What a receiver hears of `packets` with each dropped at `loss`, as the loopback
/// decodes: left channel, as f64.
fn heard(packets: &[Vec<u8>], loss: f64, seed: u64) -> Result<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut dec = opus::Decoder::new(48000, opus::Channels::Stereo)?;
    let mut pcm = Vec::with_capacity(packets.len() * FRAME * 2);
    let mut scratch = vec![0i16; 5760 * 2];
    let mut missing = 0usize;
    for p in packets {
        if rng.random_bool(loss) {
            missing += 1;
            continue;
        }
        if missing > 0 {
            pcm.extend(conceal(&mut dec, p, missing * FRAME, 2));
            missing = 0;
        }
        let n = dec.decode(p, &mut scratch, false)?;
        pcm.extend_from_slice(&scratch[..n * 2]);
    }
    Ok(pcm.chunks_exact(2).map(|c| c[0] as f64).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(a: LossArgs) -> Result<()> {
    let mut inputs =
        vec![("music".to_owned(), super::pacing::music(a.seconds)), ("speech-like".into(), speech_like(a.seconds))];
    if let Some(path) = &a.input {
        let mut pcm = super::read_pcm(path)?;
        pcm.truncate(48_000 * 2 * a.seconds as usize);
        let name = path.file_name().map_or("input".into(), |n| n.to_string_lossy().into_owned());
        inputs.push((name, pcm));
    }
    println!(
        "Opus 64 kb/s stereo, 20 ms frames, FEC mode 2, complexity 10; {} s per input; random loss, {} patterns a cell \
         (median), as a receiver decodes (FEC + PLC). Each cell: mean correlation of 0.25 s windows with the source \
         (waveform; higher is better) / log-spectral distance (24 bands; lower is better)",
        a.seconds, a.runs
    );
    let mut table = Table::new();
    let mut header =
        vec!["input".to_owned(), "expected loss".into(), "kb/s".into(), "µs/frame".into(), "SILK/hybrid".into()];
    header.extend(a.losses.iter().map(|l| format!("{l} % lost")));
    table.set_header(header);
    for (name, pcm) in &inputs {
        let sent: Vec<f64> = pcm.chunks_exact(2).map(|c| c[0] as f64).collect();
        for &setting in &a.settings {
            let e = encode(pcm, setting)?;
            let bytes: usize = e.packets.iter().map(Vec::len).sum();
            let kbps = bytes as f64 * 8.0 / (e.packets.len() as f64 * 0.02) / 1000.0;
            let mark = if setting == EXPECTED_LOSS_PERCENT { " (default)" } else { "" };
            let mut row = vec![
                name.to_string(),
                format!("{setting} %{mark}"),
                format!("{kbps:.1}"),
                format!("{:.0}", e.us_per_frame),
                format!("{:.0} %", e.speech_share * 100.0),
            ];
            for &loss in &a.losses {
                let (mut corr, mut dist) = (Vec::new(), Vec::new());
                for seed in 0..a.runs {
                    let h = heard(&e.packets, loss as f64 / 100.0, seed)?;
                    corr.push(window_correlations(&sent, &h).0);
                    dist.push(spectral_distance(&sent, &h));
                }
                row.push(format!("{:.3} / {:.1} dB", median(corr), median(dist)));
            }
            table.add_row(row);
        }
    }
    println!("{table}");
    Ok(())
}
