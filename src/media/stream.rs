//! One stream: a source, its encoder (unless its Opus passes through), and a short
//! ring of packets prepared ahead of their deadlines, so that at a deadline only
//! packetising and sending remain. Packets carry their duration: a passed-through
//! file may hold 10, 20, 40 or 60 ms packets, and the pacer keeps time by them.

use super::cost;
use super::encoder::{EncodeError, Encoder, EncoderConfig};
use super::gain::{Gain, audio_level};
use super::resample::FRAME_SAMPLES;
use super::shared::{Next, Subscription};
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
    /// A shared live source failed or could not start.
    #[error("{0}")]
    Feed(String),
}

enum Producer {
    /// PCM from the source, encoded here.
    Pcm { input: Box<dyn PcmInput>, encoder: Encoder, pcm: Vec<i16> },
    /// Opus packets, passed through or re-encoded by the source itself.
    Opus(Box<OpusInput>),
    /// A live source encoded once for every call playing it; `own` is this call's
    /// encoder while its volume is not 100 %, made when first needed.
    Shared { sub: Subscription, own: Option<Encoder>, pcm: Vec<i16>, cap: u8 },
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
        Ok(Stream::with(id, producer, opened.info, config, claim_us, (opened.start, opened.duration)))
    }

    /// A stream on a shared live source: sending is all it costs its pacer thread.
    pub fn shared(id: StreamId, sub: Subscription) -> Stream {
        let (info, config) = (sub.feed().info().clone(), sub.feed().config());
        let pcm = Vec::new(); // sized when the call first needs its own encoder
        let producer = Producer::Shared { sub, own: None, pcm, cap: config.complexity };
        Stream::with(id, producer, info, config, cost::SEND_US, (0, None))
    }

    fn with(
        id: StreamId,
        producer: Producer,
        info: SourceInfo,
        config: EncoderConfig,
        claim_us: u32,
        (start, duration): (u64, Option<u64>),
    ) -> Stream {
        Stream {
            id,
            producer,
            info,
            ring: std::array::from_fn(|_| Packet::empty()),
            head: 0,
            queued: 0,
            exhausted: false,
            start,
            sent: 0,
            duration,
            starved: 0,
            config,
            claim_us,
        }
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
            Producer::Shared { own, cap: c, .. } => {
                *c = complexity;
                if let Some(e) = own {
                    e.set_complexity(complexity);
                }
            }
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
        let ready = match &self.producer {
            Producer::Shared { sub, .. } => sub.ready(),
            _ => true,
        };
        !self.exhausted && self.queued < LOOKAHEAD && ready
    }

    /// At a deadline with nothing prepared: prepares the packet now, late rather than
    /// skip audio — or, on a shared source whose frame is not out yet, plays silence
    /// in its place and skips it, to stay in step with the other calls.
    pub fn encode_due(&mut self, gain: &mut Gain) -> Result<(), StreamError> {
        if self.wants_encode() {
            return self.encode_next(gain);
        }
        if let Producer::Shared { sub, .. } = &mut self.producer
            && !self.exhausted
            && self.queued == 0
        {
            sub.skip();
            let slot = &mut self.ring[self.head];
            let silence = sub.feed().silence();
            slot.data[..silence.len()].copy_from_slice(silence);
            slot.len = silence.len();
            slot.level = 127;
            slot.ticks = FRAME_SAMPLES as u32;
            self.starved += 1;
            self.queued = 1;
        }
        Ok(())
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
            Producer::Shared { sub, own, pcm, cap } => {
                let frame = match sub.take() {
                    Next::Frame(f) => f,
                    Next::Wait => return Ok(()),
                    Next::End(None) => {
                        self.exhausted = true;
                        return Ok(());
                    }
                    Next::End(Some(e)) => return Err(StreamError::Feed(e)),
                };
                self.starved += frame.starved as u64;
                slot.ticks = FRAME_SAMPLES as u32;
                if gain.is_unity() {
                    // Back at 100 %: the shared payload again, and the memory back.
                    *own = None;
                    slot.data[..frame.opus.len()].copy_from_slice(&frame.opus);
                    slot.len = frame.opus.len();
                    slot.level = frame.level;
                } else {
                    let channels = sub.feed().channels();
                    let encoder = match own {
                        Some(e) => e,
                        None => own
                            .insert(Encoder::new(channels, EncoderConfig { complexity: *cap, ..sub.feed().config() })?),
                    };
                    pcm.clear();
                    pcm.extend_from_slice(&frame.pcm);
                    gain.apply(pcm, channels as usize);
                    slot.len = encoder.encode(pcm, &mut slot.data)?;
                    slot.level = audio_level(pcm);
                }
            }
        }
        self.queued += 1;
        Ok(())
    }

    /// How many packets are prepared and not yet sent.
    pub fn prepared(&self) -> usize {
        self.queued
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
            Producer::Shared { .. } => 0,
        }
    }

    /// Frames of silence played while a live source had nothing.
    pub fn starved(&self) -> u64 {
        self.starved
    }
}
