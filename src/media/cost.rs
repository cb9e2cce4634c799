//! What a stream will cost its pacer thread before it has sent anything.
//!
//! Admission control weighs a new stream against its shard's budget before it plays.
//! Once it plays, the shard measures what it really costs (see `pacer::admission`);
//! this is the first guess. libopus dominates it and depends on what it encodes —
//! speech goes to SILK/hybrid at ~3× the cost of music in CELT — so the guess for an
//! encoder setting is measured once per process, on speech-like audio (the dearest
//! case, so nothing is admitted on the hope that it will turn out to be music), in
//! thread CPU time so a busy machine does not inflate it, and cached.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::encoder::{Encoder, EncoderConfig, MAX_PACKET};
use super::pacer::thread_cpu_time;
use super::resample::FRAME_SAMPLES;

/// CPU per packet for everything but encoding: RTP packetising, SRTP and the send
/// take ~14 µs in release; with the shard's loop, timers and RTCP a call measured
/// 30–75 µs beyond its encoder here (`bench pacing`).
pub const SEND_US: u32 = 40;
/// A connected call with nothing to play: consent checks and RTCP, per 20 ms.
pub const IDLE_US: u32 = 5;
/// Frames encoded before measuring (the encoder's first frames are atypical), and
/// measured.
const WARM_UP: usize = 5;
const MEASURED: usize = 20;

/// µs of CPU one 20 ms frame of `channels`-channel audio costs to encode with
/// `config` — measured on first use of the setting (~10 ms; callers asking meanwhile
/// wait for the one measurement), then remembered.
pub fn encode_us(channels: u8, config: EncoderConfig) -> u32 {
    type Cache = Mutex<HashMap<(u8, EncoderConfig), Arc<OnceLock<u32>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let once = CACHE.get_or_init(Default::default).lock().entry((channels, config)).or_default().clone();
    *once.get_or_init(|| measure(channels, config))
}

/// Measures the default settings' costs on a thread of their own, so the first stream
/// a host opens does not wait for it.
pub fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new().name("wasmcalls-cost".into()).spawn(|| {
            for channels in [2, 1] {
                encode_us(channels, EncoderConfig::default());
            }
        });
    });
}

fn measure(channels: u8, config: EncoderConfig) -> u32 {
    // A setting libopus refuses never plays either (opening the stream fails), so
    // any figure does; the default's worst case is a safe one.
    let Ok(mut encoder) = Encoder::new(channels, config) else { return 300 };
    let stereo = speech_like_frames(WARM_UP + MEASURED);
    let pcm: Vec<i16> = if channels == 2 { stereo } else { stereo.iter().step_by(2).copied().collect() };
    let frame = FRAME_SAMPLES * channels as usize;
    let mut out = [0u8; MAX_PACKET];
    let mut frames = pcm.chunks_exact(frame);
    for f in frames.by_ref().take(WARM_UP) {
        let _ = encoder.encode(f, &mut out);
    }
    let t0 = thread_cpu_time();
    let mut n = 0u32;
    for f in frames.take(MEASURED) {
        let _ = encoder.encode(f, &mut out);
        n += 1;
    }
    ((thread_cpu_time() - t0).as_micros() as u32 / n.max(1)).max(1)
}

/// A speech-like signal (48 kHz stereo, the same in both channels): a voiced source
/// whose pitch glides around 120 Hz through three moving formants, in syllables of
/// ~250 ms with a pause every ~1.5 s and a fricative-like noise burst now and then —
/// enough for libopus to take it for speech (SILK/hybrid), as it does a voice.
pub fn speech_like(seconds: u32) -> Vec<i16> {
    speech_like_frames(seconds as usize * 50)
}

/// [`speech_like`], `frames` 20 ms frames of it.
fn speech_like_frames(frames: usize) -> Vec<i16> {
    use std::f64::consts::TAU;
    let n = FRAME_SAMPLES * frames;
    let mut out = Vec::with_capacity(n * 2);
    let mut phase = 0.0f64;
    let mut noise: u32 = 0x2545_f491;
    for i in 0..n {
        let t = i as f64 / 48000.0;
        let f0 = 120.0 + 30.0 * (TAU * 0.4 * t).sin() + 15.0 * (TAU * 3.1 * t).sin();
        phase = (phase + TAU * f0 / 48000.0) % (TAU * 1000.0);
        let formants = [
            (550.0 + 200.0 * (TAU * 2.1 * t).sin(), 90.0),
            (1500.0 + 450.0 * (TAU * 1.3 * t).sin(), 120.0),
            (2600.0, 160.0),
        ];
        let mut v = 0.0;
        let mut k = 1.0;
        while k * f0 < 4000.0 {
            let f = k * f0;
            let w: f64 = formants.iter().map(|&(fc, bw)| 1.0 / (1.0 + ((f - fc) / bw).powi(2))).sum();
            v += w * (k * phase).sin() / k.sqrt();
            k += 1.0;
        }
        // Syllables at ~4 Hz; the last 300 ms of every 1.5 s is a pause.
        let syllable = (TAU * 4.0 * t).sin().abs().powf(0.7);
        let voiced = if t % 1.5 > 1.2 { 0.0 } else { syllable };
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let hiss = (noise as f64 / u32::MAX as f64 - 0.5) * if (t * 4.0) as u64 % 5 == 2 { 0.15 } else { 0.002 };
        let s = ((0.12 * v * voiced + hiss) * 32767.0).clamp(-32768.0, 32767.0) as i16;
        out.extend([s, s]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_costs_more_to_encode_than_nothing_and_is_remembered() {
        let config = EncoderConfig::default();
        let first = encode_us(2, config);
        assert!(first >= 1);
        // The second ask is the cached figure, not a new measurement.
        assert_eq!(encode_us(2, config), first);
    }
}
