//! One stream: a source, its encoder (unless its Opus passes through), and a short
//! ring of packets prepared ahead of their deadlines, so that at a deadline only
//! packetising and sending remain. Packets carry their duration: a passed-through
//! file may hold 10, 20, 40 or 60 ms packets, and the pacer keeps time by them.

use super::cost;
use super::encoder::{EncodeError, Encoder, EncoderConfig};
use super::gain::{Gain, audio_level};
use super::resample::FRAME_SAMPLES;
use super::source::opus::OpusInput;
pub use super::source::opus::Packet;
use super::source::{Frame, Input, Opened, PcmInput, SourceError, SourceInfo};

/// Packets prepared ahead. Two give the pacer a whole period of slack to schedule
/// encoding between other calls' deadlines while keeping a volume change audible
/// within 40 ms.
pub const LOOKAHEAD: usize = 2;

/// Identifies one stream; a replaced stream's id never comes back.
pub type StreamId = u64;

/// Why a stream could not be opened or continued.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

enum Producer {
    /// PCM from the source, encoded here.
    Pcm { input: Box<dyn PcmInput>, encoder: Encoder, pcm: Vec<i16> },
    /// Opus packets, passed through or re-encoded by the source itself.
    Opus(Box<OpusInput>),
}

/// A playing source: everything allocated up front, nothing allocated per packet.
pub struct Stream {
    id: StreamId,
    producer: Producer,
    info: SourceInfo,
    ring: [Packet; LOOKAHEAD],
    head: usize,
    queued: usize,
    exhausted: bool,
    /// Where playback started (a seek), and how far it has got, in 48 kHz ticks.
    start: u64,
    sent: u64,
    duration: Option<u64>,
    /// Frames of silence played while a live source had nothing.
    starved: u64,
    /// The encoder settings asked for; a busy pacer may lower their complexity.
    config: EncoderConfig,
    /// What it is expected to cost its pacer thread, in µs of CPU per 20 ms.
    claim_us: u32,
}

impl Stream {
    /// A stream over an opened source. Encoder set-up happens here, off the pacer thread.
    pub fn new(id: StreamId, opened: Opened, config: EncoderConfig) -> Result<Self, StreamError> {
        let mut claim_us = cost::SEND_US;
        let producer = match opened.input {
            Input::Pcm(input) => {
                let channels = input.channels();
                claim_us += cost::encode_us(channels, config);
                Producer::Pcm {
                    encoder: Encoder::new(channels, config)?,
                    pcm: vec![0; FRAME_SAMPLES * channels as usize],
                    input,
                }
            }
            Input::Opus(mut o) => {
                o.set_encoder_config(config);
                Producer::Opus(o)
            }
        };
        Ok(Stream {
            id,
            producer,
            info: opened.info,
            ring: std::array::from_fn(|_| Packet::empty()),
            head: 0,
            queued: 0,
            exhausted: false,
            start: opened.start,
            sent: 0,
            duration: opened.duration,
            starved: 0,
            config,
            claim_us,
        })
    }

    /// What it is expected to cost its pacer thread, in µs of CPU per 20 ms, before it
    /// has run: an encoder's measured worst case (speech) plus sending; for Opus
    /// passed through, sending alone.
    pub fn claim_us(&self) -> u32 {
        self.claim_us
    }

    /// Caps the encoder's complexity (10: no cap), from the next frame on.
    pub fn cap_complexity(&mut self, cap: u8) {
        let complexity = self.config.complexity.min(cap);
        match &mut self.producer {
            Producer::Pcm { encoder, .. } => encoder.set_complexity(complexity),
            Producer::Opus(o) => o.set_complexity(complexity),
        }
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    /// What the source is.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Whether the source's Opus packets are being sent as they are right now.
    pub fn passing_through(&self) -> bool {
        matches!(&self.producer, Producer::Opus(o) if o.passing_through())
    }

    /// True when another packet can be prepared ahead.
    pub fn wants_encode(&self) -> bool {
        !self.exhausted && self.queued < LOOKAHEAD
    }

    /// Prepares one more packet into the ring: reads, applies gain, encodes — or, for
    /// Opus passing through, takes the file's packet.
    pub fn encode_next(&mut self, gain: &mut Gain) -> Result<(), StreamError> {
        debug_assert!(self.wants_encode());
        let slot = &mut self.ring[(self.head + self.queued) % LOOKAHEAD];
        match &mut self.producer {
            Producer::Opus(o) => {
                if !o.next_packet(gain, slot)? {
                    self.exhausted = true;
                    return Ok(());
                }
            }
            Producer::Pcm { input, encoder, pcm } => {
                let channels = input.channels() as usize;
                match input.next_frame(pcm)? {
                    Frame::End => {
                        self.exhausted = true;
                        return Ok(());
                    }
                    Frame::Audio(n) => {
                        if n < FRAME_SAMPLES {
                            self.exhausted = true; // the last, padded frame
                        }
                        gain.apply(pcm, channels);
                    }
                    Frame::Starved => {
                        // A live source has nothing yet: silence, so the call stays alive.
                        pcm.fill(0);
                        self.starved += 1;
                    }
                }
                slot.len = encoder.encode(pcm, &mut slot.data)?;
                slot.level = audio_level(pcm);
                slot.ticks = FRAME_SAMPLES as u32;
            }
        }
        self.queued += 1;
        Ok(())
    }

    /// The next packet to send, if one is ready.
    pub fn front(&self) -> Option<&Packet> {
        (self.queued > 0).then(|| &self.ring[self.head])
    }

    /// Drops the packet just sent.
    pub fn pop(&mut self) {
        if self.queued > 0 {
            self.sent += self.ring[self.head].ticks as u64;
            self.head = (self.head + 1) % LOOKAHEAD;
            self.queued -= 1;
        }
    }

    /// Every packet of the source has been sent.
    pub fn is_finished(&self) -> bool {
        self.exhausted && self.queued == 0
    }

    /// The playback position, in 48 kHz ticks from the source's start.
    pub fn position(&self) -> u64 {
        self.start + self.sent
    }

    /// The source's length in ticks, when known.
    pub fn duration(&self) -> Option<u64> {
        self.duration
    }

    /// Packets the source could not decode and skipped.
    pub fn skipped(&self) -> u64 {
        match &self.producer {
            Producer::Pcm { input, .. } => input.skipped(),
            Producer::Opus(o) => o.skipped(),
        }
    }

    /// Frames of silence played while a live source had nothing.
    pub fn starved(&self) -> u64 {
        self.starved
    }
}
