//! libopus, configured the way Telegram clients send: 20 ms frames, application
//! audio, in-band FEC on.
//!
//! The encoder goes through `opusic-c` (the same bundled libopus build the `opus`
//! crate links) because it exposes in-band FEC mode 2. In mode 1, libopus ≥ 1.5 moves
//! *music* into SILK/hybrid mode to carry FEC as soon as any loss is expected, which
//! measured 2.8× the CPU (237 vs 84 µs a frame, stereo 64 kb/s) on this machine;
//! mode 2 keeps FEC for speech and leaves music in CELT.

use opusic_c::{Application, Bitrate, Channels, InbandFec, SampleRate, Signal};

/// The largest Opus packet (RFC 6716 §3.4): one frame never exceeds it.
pub const MAX_PACKET: usize = 1276;
/// Loss the encoder plans for unless told otherwise, chosen from `wasmcalls bench
/// loss --input speech.raw` (README, "Loss"): on speech it turns on SILK's in-band FEC,
/// which at 5 % random loss keeps the log-spectral distance at 1.4 dB against 3.2 dB
/// without (10 %: 1.7 against 4.8 dB; 20 %: 2.6 against 8.0 dB); planning for 10 or
/// 20 % measured the same, for more CPU.
pub const EXPECTED_LOSS_PERCENT: u8 = 5;

/// What the audio is, if known: lets libopus skip its speech/music guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignalHint {
    /// libopus classifies each frame itself.
    #[default]
    Auto,
    /// Music: stays in CELT (cheapest for stereo at these rates).
    Music,
    /// Speech: SILK/hybrid with in-band FEC.
    Voice,
}

impl std::str::FromStr for SignalHint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SignalHint::Auto),
            "music" => Ok(SignalHint::Music),
            "voice" | "speech" => Ok(SignalHint::Voice),
            other => Err(format!("{other:?} is not a signal type; use auto, music or voice")),
        }
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncoderConfig {
    /// Target bitrate in bits/s; `None` picks 64 kb/s for stereo, 48 kb/s for mono.
    pub bitrate: Option<u32>,
    /// libopus complexity 0–10: CPU per frame against quality.
    pub complexity: u8,
    pub signal: SignalHint,
    /// Packet loss libopus plans for, in percent: in-band FEC (for speech) is sized
    /// by it, and costs bits the rest of the signal then lacks. Audio hinted as music
    /// plans for none: music carries no FEC in mode 2 anyway, and any expected loss
    /// lets libopus move tonal music it takes for speech into SILK, which measured
    /// worse under every loss rate (`bench loss`, the synthetic music).
    pub expected_loss: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { bitrate: None, complexity: 10, signal: SignalHint::Auto, expected_loss: EXPECTED_LOSS_PERCENT }
    }
}

impl EncoderConfig {
    /// The bitrate actually used for `channels`.
    pub fn bitrate_for(&self, channels: u8) -> u32 {
        self.bitrate.unwrap_or(if channels == 2 { 64_000 } else { 48_000 })
    }
}

/// Why the encoder could not be built or run.
#[derive(Debug, thiserror::Error)]
#[error("opus encoder: {0:?}")]
pub struct EncodeError(opusic_c::ErrorCode);

/// One libopus encoder for one stream, taking 48 kHz audio.
pub struct Encoder {
    inner: opusic_c::Encoder,
    channels: u8,
}

impl Encoder {
    /// An encoder for 48 kHz audio of `channels` (1 or 2).
    pub fn new(channels: u8, config: EncoderConfig) -> Result<Self, EncodeError> {
        let mode = if channels == 2 { Channels::Stereo } else { Channels::Mono };
        let mut inner = opusic_c::Encoder::new(mode, SampleRate::Hz48000, Application::Audio).map_err(EncodeError)?;
        inner.set_bitrate(Bitrate::Value(config.bitrate_for(channels))).map_err(EncodeError)?;
        inner.set_complexity(config.complexity.min(10)).map_err(EncodeError)?;
        inner.set_inband_fec(InbandFec::Mode2).map_err(EncodeError)?;
        // FEC data is only produced when the encoder expects loss.
        let expected_loss = if config.signal == SignalHint::Music { 0 } else { config.expected_loss.min(100) };
        inner.set_packet_loss(expected_loss).map_err(EncodeError)?;
        let signal = match config.signal {
            SignalHint::Auto => Signal::Auto,
            SignalHint::Music => Signal::Music,
            SignalHint::Voice => Signal::Voice,
        };
        inner.set_signal(signal).map_err(EncodeError)?;
        Ok(Encoder { inner, channels })
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Changes the CPU spent per frame (0–10) from the next frame on: what a pacer
    /// thread lowers when its encoders' cost drifts past its budget.
    pub fn set_complexity(&mut self, complexity: u8) {
        // Only fails for values out of range, which `min` rules out.
        let _ = self.inner.set_complexity(complexity.min(10));
    }

    /// Samples of delay the encoder adds (its lookahead), per channel.
    pub fn lookahead(&mut self) -> usize {
        self.inner.get_look_ahead().map_or(312, |l| l as usize)
    }

    /// Encodes one frame of interleaved PCM (2.5 to 60 ms) into `out`; returns the
    /// packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8; MAX_PACKET]) -> Result<usize, EncodeError> {
        // libopus takes `opus_int16`; opusic-c spells that `u16`, same bits.
        self.inner.encode_to_slice(bytemuck::cast_slice(pcm), out).map_err(EncodeError)
    }
}
