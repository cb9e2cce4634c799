//! `wasmcalls bench media`: what each kind of source costs per stream, in one run —
//! raw PCM → Opus, MP3 44.1 kHz → decode → resample → Opus, Opus passed through — and
//! ffmpeg decoding the same MP3 to Opus/RTP beside them; plus, on one thread, what the
//! decode that keeps pass-through's audio level costs next to an encode.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use wasmcalls::media::decoder::Decoder;
use wasmcalls::media::encoder::{Encoder, MAX_PACKET};
use wasmcalls::media::{EncoderConfig, PacerConfig, PcmFormat, SourceSpec};

use super::pacing::{FfmpegInput, Figures, ffmpeg_run, measure, write_input};

/// What one libopus encode (stereo, 64 kb/s, complexity 10, music) cost on the machine
/// the pass-through goal was set on (`performance-notes.md`).
const REFERENCE_ENCODE_US: f64 = 104.0;

#[derive(Args)]
pub struct MediaArgs {
    /// Concurrent calls per kind of source
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// Seconds of audio each call plays
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// ffmpeg processes for the comparison (0 to skip)
    #[arg(long, default_value_t = 4)]
    ffmpeg: usize,
}

/// CPU of libopus decoding every packet of `opus` (what pass-through spends on the
/// audio level) against encoding the same audio, per 20 ms, on this thread.
fn decode_vs_encode(raw: &Path) -> Result<(f64, f64)> {
    let pcm = super::read_pcm(raw)?;
    let mut encoder = Encoder::new(2, EncoderConfig::default())?;
    let mut out = [0u8; MAX_PACKET];
    let mut packets = Vec::new();
    let t = Instant::now();
    for frame in pcm.chunks_exact(1920) {
        let n = encoder.encode(frame, &mut out)?;
        packets.push(out[..n].to_vec());
    }
    let encode = t.elapsed().as_secs_f64() * 1e6 / packets.len() as f64;
    // As a passed-through stream's level is measured: into mono floats.
    let mut decoder = Decoder::new(1).map_err(anyhow::Error::msg)?;
    let mut pcm_out = vec![0f32; 5760];
    let t = Instant::now();
    for p in &packets {
        decoder.decode_float(p, &mut pcm_out).map_err(|e| anyhow::anyhow!("libopus error {e}"))?;
    }
    let decode = t.elapsed().as_secs_f64() * 1e6 / packets.len() as f64;
    Ok((decode, encode))
}

fn line(name: &str, f: &Figures) {
    println!(
        "  {name:<28} {:>7.1} µs {:>7.0} {:>8} {:>9} µs {:>6.0} KiB {:>7} KiB",
        f.per_20ms_us(),
        f.streams_per_core(),
        f.late,
        f.p99_median,
        f.kib_stream + f.kib_playing,
        f.per_added_call().total
    );
    if f.refused > 0 {
        println!("    ({} of {} calls admitted; the rest refused for capacity)", f.calls, f.offered);
    }
    if f.moved > 0 {
        println!("    ({} calls moved to another pacer thread to play their stream)", f.moved);
    }
    if f.late > 0 {
        println!(
            "    (late: {} in seconds the machine kept time; what held their pacer up: {})",
            f.late_in_kept_time,
            f.late_causes()
        );
    }
}

pub async fn run(a: MediaArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let raw = write_input(dir.path(), a.seconds)?;
    let d = dir.path();
    super::tool(
        "sox",
        &[
            "-t",
            "raw",
            "-r",
            "48000",
            "-c",
            "2",
            "-b",
            "16",
            "-e",
            "signed",
            "bench-input.raw",
            "-r",
            "44100",
            "in44.wav",
        ],
        d,
    )?;
    super::tool("lame", &["--quiet", "-b", "192", "in44.wav", "in.mp3"], d)?;
    super::tool(
        "sox",
        &["-t", "raw", "-r", "48000", "-c", "2", "-b", "16", "-e", "signed", "bench-input.raw", "in48.wav"],
        d,
    )?;
    super::tool("opusenc", &["--quiet", "--bitrate", "96", "in48.wav", "in.opus"], d)?;
    let pacer = PacerConfig::default();
    let shards = pacer.shards;
    let enc = EncoderConfig::default();
    println!(
        "wasmcalls media bench: {} calls × {} s per kind of source, {} pacer thread(s); host CPU per 20 ms of audio per call",
        a.calls, a.seconds, shards
    );
    let file = |p: &Path| SourceSpec::File { path: p.to_path_buf(), raw: PcmFormat::stereo48() };
    let pcm = measure(&file(&raw), a.calls, pacer.clone(), enc).await?;
    let mp3 = measure(&file(&d.join("in.mp3")), a.calls, pacer.clone(), enc).await?;
    let opus = measure(&file(&d.join("in.opus")), a.calls, pacer.clone(), enc).await?;
    println!(
        "  {:<28} {:>10} {:>7} {:>8} {:>12} {:>10} {:>11}",
        "source", "CPU/20 ms", "/core", "late", "p99 median", "stream", "added call"
    );
    line("raw PCM 48 kHz → Opus", &pcm);
    line("MP3 44.1 kHz → 48 kHz → Opus", &mp3);
    line("Ogg Opus, passed through", &opus);
    let extra = (mp3.per_20ms_us() - pcm.per_20ms_us()) / pcm.per_20ms_us() * 100.0;
    println!("  decode + resample add {extra:.0} % to the encoding pipeline (goal ≤ 25 %)");
    let (decode, encode) = decode_vs_encode(&raw)?;
    // The goal was set where one encode costs REFERENCE_ENCODE_US: as a share of an
    // encode measured in this run, it holds on a machine of any speed.
    let share = opus.per_20ms_us() / encode * 100.0;
    let goal = 20_000.0 / 800.0 / REFERENCE_ENCODE_US * 100.0;
    println!(
        "  pass-through: {:.0} streams per core here, {:.1}× the encoding pipeline's; it costs {share:.0} % of one \
         encode (goal ≤ {goal:.0} %: 800 streams per core where an encode takes {REFERENCE_ENCODE_US:.0} µs)",
        opus.streams_per_core(),
        opus.streams_per_core() / pcm.streams_per_core()
    );
    println!(
        "  on one thread: encoding a 20 ms frame {encode:.1} µs; decoding a packet {decode:.1} µs ({:.0} %), done for \
         one passed-through packet in {} and the 80 ms before it",
        decode / encode * 100.0,
        wasmcalls::media::source::opus::LEVEL_EVERY
    );
    if a.ffmpeg > 0 {
        match ffmpeg_run(&FfmpegInput::File(&d.join("in.mp3")), a.ffmpeg, 64_000, 10, a.seconds) {
            Ok(f) => println!(
                "  ffmpeg -re -i in.mp3 -c:a libopus -f rtp (×{}): {:.1} µs per 20 ms per stream = {:.0} per core, \
                 {:.1} MiB RSS each — {:.1}× our MP3 pipeline's CPU",
                a.ffmpeg,
                f.per_frame_us,
                20_000.0 / f.per_frame_us,
                f.rss_kib as f64 / 1024.0,
                f.per_frame_us / mp3.per_20ms_us()
            ),
            Err(e) => println!("  ffmpeg comparison skipped: {e:#}"),
        }
    }
    Ok(())
}
