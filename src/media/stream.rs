//! One stream: a source, its encoder, and a short ring of frames encoded ahead of
//! their deadlines, so that at a deadline only packetising and sending remain.

use std::path::Path;

use super::encoder::{EncodeError, Encoder, EncoderConfig, MAX_PACKET};
use super::gain::{Gain, audio_level};
use super::source::{PcmFormat, PcmSource, SourceError};

/// Frames encoded ahead. Two give the pacer a whole period of slack to schedule
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

/// A frame ready to packetise.
pub struct EncodedFrame {
    pub data: [u8; MAX_PACKET],
    pub len: usize,
    /// RFC 6464 level of the PCM that was encoded.
    pub level: u8,
}

impl EncodedFrame {
    fn empty() -> Self {
        EncodedFrame { data: [0; MAX_PACKET], len: 0, level: 127 }
    }

    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// A playing file: everything allocated up front, nothing allocated per frame.
pub struct Stream {
    id: StreamId,
    source: PcmSource,
    encoder: Encoder,
    pcm: Vec<i16>,
    ring: [EncodedFrame; LOOKAHEAD],
    head: usize,
    queued: usize,
    exhausted: bool,
}

impl Stream {
    /// Opens `path` as raw PCM in `format`. File checks happen here, off the pacer thread.
    pub fn open(id: StreamId, path: &Path, format: PcmFormat, config: EncoderConfig) -> Result<Self, StreamError> {
        let source = PcmSource::open(path, format)?;
        let encoder = Encoder::new(format, config)?;
        Ok(Stream {
            id,
            source,
            encoder,
            pcm: vec![0; format.frame_len()],
            ring: std::array::from_fn(|_| EncodedFrame::empty()),
            head: 0,
            queued: 0,
            exhausted: false,
        })
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    pub fn path(&self) -> &Path {
        self.source.path()
    }

    /// True when another frame can be encoded ahead.
    pub fn wants_encode(&self) -> bool {
        !self.exhausted && self.queued < LOOKAHEAD
    }

    /// Reads, applies gain to, and encodes one frame into the ring.
    pub fn encode_next(&mut self, gain: &mut Gain) -> Result<(), StreamError> {
        debug_assert!(self.wants_encode());
        let n = self.source.read_frame(&mut self.pcm)?;
        if n < self.source.format().frame_samples() {
            self.exhausted = true;
        }
        if n == 0 {
            return Ok(());
        }
        gain.apply(&mut self.pcm, self.source.format().channels() as usize);
        let slot = &mut self.ring[(self.head + self.queued) % LOOKAHEAD];
        slot.len = self.encoder.encode(&self.pcm, &mut slot.data)?;
        slot.level = audio_level(&self.pcm);
        self.queued += 1;
        Ok(())
    }

    /// The next frame to send, if one is encoded.
    pub fn front(&self) -> Option<&EncodedFrame> {
        (self.queued > 0).then(|| &self.ring[self.head])
    }

    /// Drops the frame just sent.
    pub fn pop(&mut self) {
        if self.queued > 0 {
            self.head = (self.head + 1) % LOOKAHEAD;
            self.queued -= 1;
        }
    }

    /// Every frame of the source has been sent.
    pub fn is_finished(&self) -> bool {
        self.exhausted && self.queued == 0
    }

    /// Frames sent so far (read minus still queued): the playback position.
    pub fn frames_played(&self) -> u64 {
        self.source.frames_read() - self.queued as u64
    }

    /// Frames in the whole file.
    pub fn total_frames(&self) -> u64 {
        self.source.total_frames()
    }
}
