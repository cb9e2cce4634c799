//! What a receiver makes of a lossy path, shared by the loopback (which decodes as a
//! receiver does) and `wasmcalls bench loss` (which chooses the encoder's
//! expected-loss setting from it): concealment of lost frames, and a measure of how
//! close what was heard is to what was sent.

/// Samples per channel in a 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;

/// `len` samples per channel of audio for frames lost just before `next`
/// (interleaved, `channels` wide): the decoder's concealment (PLC) for all but the
/// last frame, which `next`'s in-band FEC restores when the sender put it there
/// (libopus falls back to PLC when it did not).
pub fn conceal(dec: &mut opus::Decoder, next: &[u8], len: usize, channels: usize) -> Vec<i16> {
    let mut out = vec![0i16; len * channels];
    // 20 ms at the rate the decoder was made for.
    let frame = dec.get_sample_rate().map_or(FRAME, |r| r as usize / 50);
    let fec_from = len.saturating_sub(frame);
    let mut at = 0;
    while at < fec_from {
        let n = (fec_from - at).min(frame);
        match dec.decode(&[], &mut out[at * channels..(at + n) * channels], false) {
            Ok(got) if got > 0 => at += got.min(n),
            _ => break, // not a multiple of 2.5 ms: the rest stays silence
        }
    }
    let _ = dec.decode(next, &mut out[fec_from * channels..], true);
    out
}

/// Normalized correlation of two signals (0 when either is silent).
pub fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        xy += a * b;
        xx += a * a;
        yy += b * b;
    }
    if xx == 0.0 || yy == 0.0 { 0.0 } else { xy / (xx * yy).sqrt() }
}

/// 0.25 s: the window both measures judge by.
const W: usize = 12_000;

/// The codec's delay: the lag (under 2000 samples) at which `heard` best matches the
/// first window of `sent`.
fn align(sent: &[f64], heard: &[f64]) -> usize {
    (0..2000)
        .max_by(|&a, &b| {
            let c = |l: usize| correlation(&sent[..W.min(sent.len())], heard.get(l..).unwrap_or(&[]));
            c(a).total_cmp(&c(b))
        })
        .unwrap_or(0)
}

/// Mean and worst correlation over 0.25 s windows of `heard` against `sent` (one
/// channel each), aligned on the first window (the codec's delay) and each window
/// refined by ±8 samples, as perceptual coding shifts phase a little. A waveform
/// measure: it favours CELT, whose output follows the waveform, over SILK, which
/// keeps the spectrum — see [`spectral_distance`] for that.
pub fn window_correlations(sent: &[f64], heard: &[f64]) -> (f64, f64) {
    if sent.len() < W {
        return (0.0, 0.0);
    }
    let lag = align(sent, heard);
    let mut all = Vec::new();
    let mut start = 0;
    while start + W <= sent.len() && start + lag + W + 8 <= heard.len() {
        let best = (lag.saturating_sub(8)..=lag + 8)
            .map(|l| correlation(&sent[start..start + W], &heard[start + l..start + l + W]))
            .fold(f64::MIN, f64::max);
        all.push(best);
        start += W;
    }
    let mean = all.iter().sum::<f64>() / all.len().max(1) as f64;
    (mean, all.iter().copied().fold(f64::MAX, f64::min).min(1.0))
}

/// Log-spectral distance of `heard` from `sent`, in dB (0: the same spectrum): per
/// 20 ms frame, the RMS difference of the energies in 24 bands from 100 Hz to 12 kHz
/// (log-spaced, as hearing resolves them), averaged over the frames where `sent` is
/// not silent. Phase-blind, so fair to SILK and to concealment that keeps the sound
/// but not the waveform.
pub fn spectral_distance(sent: &[f64], heard: &[f64]) -> f64 {
    const N: usize = 1024;
    const BANDS: usize = 24;
    if sent.len() < W {
        return f64::NAN;
    }
    let lag = align(sent, heard);
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(N);
    let window: Vec<f64> = (0..N).map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / N as f64).cos()).collect();
    let hz_per_bin = 48_000.0 / N as f64;
    let edges: Vec<usize> =
        (0..=BANDS).map(|b| (100.0 * (120.0f64).powf(b as f64 / BANDS as f64) / hz_per_bin).round() as usize).collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut bands = |signal: &[f64]| -> Vec<f64> {
        for (x, (s, w)) in input.iter_mut().zip(signal.iter().zip(&window)) {
            *x = s * w;
        }
        let _ = fft.process(&mut input, &mut spectrum);
        edges.windows(2).map(|e| spectrum[e[0]..e[1].max(e[0] + 1)].iter().map(|c| c.norm_sqr()).sum::<f64>()).collect()
    };
    // A floor about 60 dB under full scale, so an empty band is not an infinite error.
    let floor = (N as f64) * 30.0 * 30.0;
    let (mut total, mut frames) = (0.0, 0usize);
    let mut start = 0;
    while start + N <= sent.len() && start + lag + N <= heard.len() {
        let a = bands(&sent[start..start + N]);
        if a.iter().sum::<f64>() > floor * BANDS as f64 {
            let b = bands(&heard[start + lag..start + lag + N]);
            let sq: f64 = a.iter().zip(&b).map(|(x, y)| (10.0 * ((x + floor) / (y + floor)).log10()).powi(2)).sum();
            total += (sq / BANDS as f64).sqrt();
            frames += 1;
        }
        start += FRAME;
    }
    if frames == 0 { f64::NAN } else { total / frames as f64 }
}
