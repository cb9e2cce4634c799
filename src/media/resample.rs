//! Any decoded audio → what the encoder takes: 48 kHz, mono or stereo, in 20 ms
//! frames of 16-bit samples. More than two channels are mixed down to stereo by
//! their positions; other rates go through a band-limited FFT resampler (rubato),
//! whose start-up delay is trimmed so the output stays aligned with the source.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// The rate everything is encoded at.
pub const RATE: u32 = 48_000;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;

/// The resampler's output chunk: half a frame. Its FFTs (and their state, per
/// stream) scale with it; 10 ms still gives a 441-tap filter at 44.1 kHz.
const CHUNK: usize = FRAME_SAMPLES / 2;

/// Where one input channel goes in a stereo mix: weights for left and right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub left: f32,
    pub right: f32,
}

/// How the input's channels are mixed to the output's.
#[derive(Debug, Clone)]
pub enum Layout {
    Mono,
    Stereo,
    /// More than two channels, each placed (LFE is dropped; centres go to both sides).
    Surround(Vec<Placement>),
}

impl Layout {
    /// The layout of `count` channels whose positions are unknown: the first two are
    /// left and right, the rest spread over both.
    pub fn of_count(count: usize) -> Layout {
        match count {
            0 | 1 => Layout::Mono,
            2 => Layout::Stereo,
            n => Layout::Surround(
                (0..n)
                    .map(|i| match i {
                        0 => Placement { left: 1.0, right: 0.0 },
                        1 => Placement { left: 0.0, right: 1.0 },
                        _ if i % 2 == 0 => Placement { left: 0.7, right: 0.0 },
                        _ => Placement { left: 0.0, right: 0.7 },
                    })
                    .collect(),
            ),
        }
    }

    pub fn input_channels(&self) -> usize {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
            Layout::Surround(p) => p.len(),
        }
    }

    /// Channels after the mix: 1 for mono, else 2.
    pub fn output_channels(&self) -> usize {
        if matches!(self, Layout::Mono) { 1 } else { 2 }
    }
}

/// Converts decoded audio into 20 ms frames for the encoder.
pub struct Conform {
    layout: Layout,
    channels: usize,
    resampler: Option<Fft<f32>>,
    /// Mixed input waiting for the resampler (interleaved, `channels` wide).
    pending: Vec<f32>,
    /// 48 kHz output not yet handed out (interleaved).
    ready: VecDeque<f32>,
    /// Resampler output still to be dropped: its start-up delay.
    trim: usize,
    out_chunk: Vec<f32>,
    /// Reused for mixing, so a push allocates nothing once warm.
    scratch: Vec<f32>,
    flushed: bool,
    /// Input rate, frames pushed and 48 kHz frames produced: at the end the output is
    /// cut to exactly the input's length (the flush pads).
    rate: u32,
    pushed: u64,
    produced: u64,
}

/// Why a conversion cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot resample {rate} Hz to 48 kHz: {reason}")]
pub struct ResampleError {
    pub rate: u32,
    pub reason: String,
}

impl Conform {
    /// A converter from `rate` Hz audio in `layout`.
    pub fn new(rate: u32, layout: Layout) -> Result<Conform, ResampleError> {
        let channels = layout.output_channels();
        let (resampler, trim) = if rate == RATE {
            (None, 0)
        } else {
            let fail = |e: &dyn std::fmt::Display| ResampleError { rate, reason: e.to_string() };
            if rate == 0 {
                return Err(fail(&"the source states no sample rate"));
            }
            let r = Fft::<f32>::new(rate as usize, RATE as usize, CHUNK, channels, FixedSync::Output)
                .map_err(|e| fail(&e))?;
            let delay = r.output_delay();
            (Some(r), delay)
        };
        Ok(Conform {
            layout,
            channels,
            resampler,
            pending: Vec::new(),
            ready: VecDeque::new(),
            trim,
            out_chunk: vec![0.0; CHUNK * channels],
            scratch: Vec::new(),
            flushed: false,
            rate,
            pushed: 0,
            produced: 0,
        })
    }

    /// Output channels: 1 or 2.
    pub fn channels(&self) -> u8 {
        self.channels as u8
    }

    /// Takes interleaved samples in the input layout (full frames only).
    pub fn push(&mut self, input: &[f32]) {
        self.pushed += (input.len() / self.layout.input_channels()) as u64;
        let mut mixed = std::mem::take(&mut self.scratch);
        mixed.clear();
        match &self.layout {
            Layout::Mono | Layout::Stereo => mixed.extend_from_slice(input),
            Layout::Surround(places) => {
                let n = places.len();
                let (wl, wr) = places.iter().fold((0.0f32, 0.0f32), |(l, r), p| (l + p.left, r + p.right));
                for frame in input.chunks_exact(n) {
                    let (mut l, mut r) = (0.0, 0.0);
                    for (s, p) in frame.iter().zip(places) {
                        l += s * p.left;
                        r += s * p.right;
                    }
                    mixed.push(l / wl.max(1.0));
                    mixed.push(r / wr.max(1.0));
                }
            }
        }
        if self.resampler.is_none() {
            self.ready.extend(mixed.iter());
            self.produced += (mixed.len() / self.channels) as u64;
        } else {
            self.pending.extend_from_slice(&mixed);
            self.run(false);
        }
        self.scratch = mixed;
    }

    /// Resamples every whole chunk pending; with `last`, also the remainder, padded.
    fn run(&mut self, last: bool) {
        let Some(r) = self.resampler.as_mut() else { return };
        let ch = self.channels;
        loop {
            let need = r.input_frames_next();
            let have = self.pending.len() / ch;
            if have < need && !(last && have > 0) {
                break;
            }
            let take = have.min(need);
            let indexing = Indexing::new().partial_len(take);
            let mut padded;
            let input: &[f32] = if take < need {
                padded = self.pending[..take * ch].to_vec();
                padded.resize(need * ch, 0.0);
                &padded
            } else {
                &self.pending[..need * ch]
            };
            let (Ok(inp), Ok(mut out)) =
                (InterleavedSlice::new(input, ch, need), InterleavedSlice::new_mut(&mut self.out_chunk, ch, CHUNK))
            else {
                break;
            };
            let Ok((_, produced)) = r.process_into_buffer(&inp, &mut out, Some(&indexing)) else { break };
            self.pending.drain(..take * ch);
            let skip = self.trim.min(produced);
            self.trim -= skip;
            self.ready.extend(&self.out_chunk[skip * ch..produced * ch]);
            self.produced += (produced - skip) as u64;
            if take < need {
                break;
            }
        }
    }

    /// The input has ended: what is left is resampled, and the resampler's delay is
    /// flushed out, so the last partial frame is complete.
    pub fn finish(&mut self) {
        if self.flushed {
            return;
        }
        self.flushed = true;
        self.run(true);
        if let Some(r) = self.resampler.as_mut() {
            let delay = r.output_delay();
            self.pending.resize(delay.max(1) * self.channels, 0.0);
            self.run(true);
        }
        // The padding resampled: cut the output to the input's length.
        let expected = (self.pushed * RATE as u64).div_ceil(self.rate as u64);
        let extra = self.produced.saturating_sub(expected) as usize * self.channels;
        let keep = self.ready.len().saturating_sub(extra);
        self.ready.truncate(keep);
    }

    /// Fills `out` (one 20 ms frame, interleaved) if a whole frame is ready; after
    /// [`Self::finish`], a last partial frame is padded with silence. Returns the
    /// samples per channel taken from the source (0: nothing ready).
    pub fn pop_frame(&mut self, out: &mut [i16]) -> usize {
        let want = FRAME_SAMPLES * self.channels;
        let have = self.ready.len();
        if have == 0 || (have < want && !self.flushed) {
            return 0;
        }
        let take = have.min(want);
        for (o, s) in out.iter_mut().zip(self.ready.drain(..take)) {
            *o = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        out[take..want].fill(0);
        take / self.channels
    }

    /// Samples per channel waiting to be handed out.
    pub fn buffered(&self) -> usize {
        self.ready.len() / self.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, seconds: f32, channels: usize) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let v = 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin();
                std::iter::repeat_n(v, channels)
            })
            .collect()
    }

    fn drain(c: &mut Conform) -> Vec<i16> {
        let mut all = Vec::new();
        let mut frame = vec![0i16; FRAME_SAMPLES * c.channels() as usize];
        loop {
            let n = c.pop_frame(&mut frame);
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&frame);
        }
    }

    fn crossings_hz(x: &[i16], channels: usize) -> f32 {
        let left: Vec<i16> = x.iter().step_by(channels).copied().collect();
        let c = left.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        c as f32 / 2.0 / (left.len() as f32 / RATE as f32)
    }

    #[test]
    fn a_44k1_file_becomes_48k_frames_of_the_same_pitch_and_length() {
        let mut c = Conform::new(44_100, Layout::Stereo).unwrap();
        for chunk in sine(44_100, 1000.0, 1.0, 2).chunks(1152 * 2) {
            c.push(chunk);
        }
        c.finish();
        let out = drain(&mut c);
        let frames = out.len() / 2;
        assert!((48_000..=48_960).contains(&frames), "one second → 50 frames, got {frames} samples");
        let hz = crossings_hz(&out[4800..out.len() - 9600], 2);
        assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    }

    #[test]
    fn surround_is_mixed_down_to_stereo_and_48k_passes_straight() {
        let places = vec![
            Placement { left: 1.0, right: 0.0 },
            Placement { left: 0.0, right: 1.0 },
            Placement { left: 0.707, right: 0.707 },
        ];
        let mut c = Conform::new(48_000, Layout::Surround(places)).unwrap();
        assert_eq!(c.channels(), 2);
        let frame: Vec<f32> = (0..FRAME_SAMPLES).flat_map(|_| [0.5, -0.5, 0.0]).collect();
        c.push(&frame);
        let mut out = vec![0i16; FRAME_SAMPLES * 2];
        assert_eq!(c.pop_frame(&mut out), FRAME_SAMPLES);
        assert!(out[0] > 8000 && out[1] < -8000, "left and right kept apart: {:?}", &out[..2]);
        assert_eq!(c.pop_frame(&mut out), 0, "nothing more");
    }

    #[test]
    fn a_short_end_is_padded_once_finished() {
        let mut c = Conform::new(48_000, Layout::Mono).unwrap();
        c.push(&vec![0.25; 100]);
        let mut out = vec![0i16; FRAME_SAMPLES];
        assert_eq!(c.pop_frame(&mut out), 0, "not a whole frame yet");
        c.finish();
        assert_eq!(c.pop_frame(&mut out), 100);
        assert!(out[99] > 0 && out[100] == 0);
    }
}
