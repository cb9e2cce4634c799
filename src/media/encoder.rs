//! libopus, configured the way Telegram clients send: 20 ms frames, application
//! audio, in-band FEC on.

use super::source::PcmFormat;

/// The largest Opus packet (RFC 6716 §3.4): one frame never exceeds it.
pub const MAX_PACKET: usize = 1276;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bitrate in bits/s; `None` picks 64 kb/s for stereo, 48 kb/s for mono.
    pub bitrate: Option<u32>,
    /// libopus complexity 0–10: CPU per frame against quality.
    pub complexity: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { bitrate: None, complexity: 10 }
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
#[error("opus encoder: {0}")]
pub struct EncodeError(#[from] opus::Error);

/// One libopus encoder for one stream.
pub struct Encoder {
    inner: opus::Encoder,
}

impl Encoder {
    pub fn new(format: PcmFormat, config: EncoderConfig) -> Result<Self, EncodeError> {
        let channels = if format.channels() == 2 { opus::Channels::Stereo } else { opus::Channels::Mono };
        let mut inner = opus::Encoder::new(format.rate(), channels, opus::Application::Audio)?;
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate_for(format.channels()) as i32))?;
        inner.set_complexity(config.complexity.min(10) as i32)?;
        inner.set_inband_fec(true)?;
        // FEC data is only produced when the encoder expects loss.
        inner.set_packet_loss_perc(5)?;
        Ok(Encoder { inner })
    }

    /// Encodes one 20 ms frame of interleaved PCM into `out`; returns the packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8; MAX_PACKET]) -> Result<usize, EncodeError> {
        Ok(self.inner.encode(pcm, out)?)
    }
}
