//! An Opus decoder that restarts by copying a fresh state over its own.
//!
//! libopus' own restart (`OPUS_RESET_STATE`) detects the CPU's features again, with
//! `cpuid`, and on a virtual machine `cpuid` traps to the hypervisor: with 100 calls
//! passing Opus through — each restarting its decoder every 200 ms to read the audio
//! level — that detection was 12 % of the host's CPU here (`perf`, `bench pacing
//! --source opus`). A libopus decoder is one block of memory without pointers into
//! itself (what `opus_decoder_get_size` and `opus_decoder_init` exist for), so one
//! initialised block, made once per process for each channel count, is copied over
//! the working one: the state a restart gives, at the price of a copy.

use std::ffi::c_int;
use std::sync::OnceLock;

use opusic_sys as ffi;

/// The state's unit: 16-byte aligned, as `malloc` gives libopus its own.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([u8; 16]);

/// A 48 kHz Opus decoder, mono or stereo.
pub struct Decoder {
    state: Box<[Chunk]>,
    /// A decoder just made: the same for every decoder of as many channels.
    fresh: &'static [Chunk],
    channels: usize,
}

/// The state libopus makes for a decoder of `channels` (1 or 2), made once per process.
fn fresh(channels: usize) -> Result<&'static [Chunk], String> {
    if !(1..=2).contains(&channels) {
        return Err(format!("Opus decodes 1 or 2 channels here, not {channels}"));
    }
    static FRESH: [OnceLock<Result<Box<[Chunk]>, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let made = FRESH[channels - 1].get_or_init(|| {
        let c = channels as c_int;
        // SAFETY: no preconditions.
        let size = unsafe { ffi::opus_decoder_get_size(c) };
        let mut state = vec![Chunk([0; 16]); (size.max(0) as usize).div_ceil(16)].into_boxed_slice();
        // SAFETY: `state` is at least `size` bytes, aligned as malloc's, and ours alone.
        let r = unsafe { ffi::opus_decoder_init(state.as_mut_ptr().cast(), 48_000, c) };
        if r == ffi::OPUS_OK { Ok(state) } else { Err(format!("libopus could not make a decoder (error {r})")) }
    });
    made.as_deref().map_err(Clone::clone)
}

impl Decoder {
    /// A decoder of `channels` (1 or 2) channels at 48 kHz.
    pub fn new(channels: usize) -> Result<Decoder, String> {
        let fresh = fresh(channels)?;
        Ok(Decoder { state: fresh.into(), fresh, channels })
    }

    /// Whether a decoder of `channels` can be made (checked once per process).
    pub fn available(channels: usize) -> Result<(), String> {
        fresh(channels).map(drop)
    }

    /// Back to the state it was made in, as `OPUS_RESET_STATE` leaves it.
    pub fn reset(&mut self) {
        self.state.copy_from_slice(self.fresh);
    }

    /// Decodes `packet` into `pcm` (interleaved; room for the packet's samples), or
    /// conceals a lost packet the length of `pcm` when `packet` is empty: the samples
    /// per channel, or libopus' error code.
    pub fn decode(&mut self, packet: &[u8], pcm: &mut [i16]) -> Result<usize, i32> {
        let frame = (pcm.len() / self.channels) as c_int;
        let (data, len) = as_input(packet);
        // SAFETY: the state was initialised by libopus and is only ever copied whole;
        // `pcm` has room for `frame` samples of every channel; `data` is `len` bytes.
        let n = unsafe { ffi::opus_decode(self.state.as_mut_ptr().cast(), data, len, pcm.as_mut_ptr(), frame, 0) };
        if n < 0 { Err(n) } else { Ok(n as usize) }
    }

    /// As [`Decoder::decode`], into floats at full scale ±1.0: libopus' own output,
    /// without the soft clipping and conversion its 16-bit one adds.
    pub fn decode_float(&mut self, packet: &[u8], pcm: &mut [f32]) -> Result<usize, i32> {
        let frame = (pcm.len() / self.channels) as c_int;
        let (data, len) = as_input(packet);
        // SAFETY: as in `decode`.
        let n =
            unsafe { ffi::opus_decode_float(self.state.as_mut_ptr().cast(), data, len, pcm.as_mut_ptr(), frame, 0) };
        if n < 0 { Err(n) } else { Ok(n as usize) }
    }
}

/// A packet as libopus takes it: none (a null pointer) asks it to conceal a lost one.
fn as_input(packet: &[u8]) -> (*const u8, i32) {
    match packet {
        [] => (std::ptr::null(), 0),
        p => (p.as_ptr(), p.len().min(i32::MAX as usize) as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encoder::{Encoder, EncoderConfig, MAX_PACKET};

    fn packets(channels: u8, n: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(channels, EncoderConfig::default()).unwrap();
        let speech = crate::media::cost::speech_like(1);
        let mut out = [0u8; MAX_PACKET];
        (0..n)
            .map(|i| {
                let frame: Vec<i16> =
                    speech[i * 1920..(i + 1) * 1920].chunks(2).flat_map(|s| &s[..channels as usize]).copied().collect();
                let len = enc.encode(&frame, &mut out).unwrap();
                out[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn a_restart_by_copy_decodes_exactly_as_libopus_own_restart() {
        for channels in [1usize, 2] {
            let p = packets(channels as u8, 12);
            let mut ours = Decoder::new(channels).unwrap();
            let layout = if channels == 2 { opus::Channels::Stereo } else { opus::Channels::Mono };
            let mut theirs = opus::Decoder::new(48_000, layout).unwrap();
            let (mut a, mut b) = (vec![0i16; 960 * channels], vec![0i16; 960 * channels]);
            for (i, packet) in p.iter().enumerate() {
                if i == 7 {
                    ours.reset();
                    theirs.reset_state().unwrap();
                }
                let n = ours.decode(packet, &mut a).unwrap();
                assert_eq!(n, theirs.decode(packet, &mut b, false).unwrap());
                assert_eq!(a, b, "{channels} channel(s), packet {i}");
            }
            // A lost packet is concealed the same way too.
            assert_eq!(ours.decode(&[], &mut a).unwrap(), theirs.decode(&[], &mut b, false).unwrap());
            assert_eq!(a, b);
            assert!(ours.decode(&[0xff; 3], &mut a).is_err(), "a damaged packet is an error");
        }
        assert!(Decoder::new(3).is_err());
    }

    #[test]
    fn a_mono_decoder_reads_stereo_packets_as_their_downmix_in_floats() {
        let p = packets(2, 12);
        let (mut mono, mut stereo) = (Decoder::new(1).unwrap(), Decoder::new(2).unwrap());
        let (mut m, mut s) = (vec![0f32; 960], vec![0i16; 1920]);
        for packet in &p {
            assert_eq!(mono.decode_float(packet, &mut m).unwrap(), 960);
            stereo.decode(packet, &mut s).unwrap();
        }
        // The same audio: the downmix of the last frame matches the stereo decode's.
        let downmix: Vec<f32> = s.chunks(2).map(|lr| (lr[0] as f32 + lr[1] as f32) / 2.0 / 32768.0).collect();
        let err = m.iter().zip(&downmix).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 0.01, "largest difference {err}");
        assert!(m.iter().any(|x| x.abs() > 0.01), "not silence");
    }
}
