//! Ogg and WebM Opus, sent as the packets in the file: no decode, no encode. Each
//! packet is still decoded — far cheaper than encoding — so the RFC 6464 audio level
//! stays meaningful and a decoder is always warm for the moments the packets cannot
//! pass: a volume other than 100 %, a seek, a damaged packet. Then the call switches
//! to decode → gain → encode at the next packet boundary, and back to the file's own
//! packets at the first boundary after the volume returns to 100 %.
//!
//! The switch keeps time to the sample: the encoder is fed the decoded audio its own
//! lookahead ahead (it delays what it encodes by that much), and is primed with the
//! frame before the switch, so a listener hears neither a gap nor a jump. Re-encoded
//! frames are 20 ms, with one shorter frame (2.5–10 ms) where needed to land back on
//! the file's packet boundaries.

use std::collections::VecDeque;
use std::time::Duration;

use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatReader, SeekMode, SeekTo};
use symphonia::core::units::Time;

use super::decoded::Demuxed;
use super::{Input, Opened, SourceError, SourceInfo, ticks};
use crate::media::encoder::{EncodeError, Encoder, EncoderConfig, MAX_PACKET};
use crate::media::gain::{Gain, audio_level};

/// Opus decodes at 48 kHz; the longest packet is 120 ms.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Decoded before a seek position so the decoder has converged there (RFC 7845 §4.6).
const PRE_ROLL: Duration = Duration::from_millis(80);
/// Re-encoded frames, and the shorter ones that realign to the file's packets.
const FRAME: usize = 960;
const SHORT_FRAMES: [usize; 3] = [480, 240, 120];

/// A packet ready to send, and how long it lasts.
pub struct Packet {
    pub data: [u8; MAX_PACKET],
    pub len: usize,
    /// RFC 6464 level of its audio.
    pub level: u8,
    /// Its duration in 48 kHz ticks.
    pub ticks: u32,
}

impl Packet {
    pub fn empty() -> Packet {
        Packet { data: [0; MAX_PACKET], len: 0, level: 127, ticks: 0 }
    }

    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PassThrough,
    Reencode,
}

/// A file packet read ahead of sending: where it starts on the decoded timeline, how
/// many samples it holds, and its bytes (`None` if it did not decode: never sent).
struct Ahead {
    start: u64,
    samples: usize,
    bytes: Option<Vec<u8>>,
}

/// An Opus track, passed through or re-encoded.
pub struct OpusInput {
    what: String,
    format: Box<dyn FormatReader>,
    track: u32,
    channels: usize,
    decoder: opus::Decoder,
    ahead: VecDeque<Ahead>,
    /// Decoded audio from sample `fifo_start` on, interleaved.
    fifo: VecDeque<i16>,
    fifo_start: u64,
    /// Where the decoded audio ends.
    decoded_to: u64,
    /// The next sample to send.
    emit: u64,
    mode: Mode,
    /// Passing through may resume only from here (after a seek's re-encoded start).
    reencode_until: u64,
    encoder: Option<Encoder>,
    encoder_config: EncoderConfig,
    lookahead: usize,
    /// Whether the encoder's state follows the audio (false after passing through).
    primed: bool,
    scratch: Vec<i16>,
    frame: Vec<i16>,
    ended: bool,
    skipped: u64,
    reencoded: u64,
}

/// What `OpusHead` says that matters here: channels, and whether they are plain mono
/// or stereo (mapping family 0), the only kind a group call carries.
fn opus_head(extra: Option<&[u8]>) -> Option<(usize, bool)> {
    let h = extra?;
    if h.len() < 19 || &h[..8] != b"OpusHead" {
        return None;
    }
    let channels = h[9] as usize;
    Some((channels, h[18] == 0 && (1..=2).contains(&channels)))
}

/// Opens a demuxed Opus track, positioned `from` the start.
pub fn open(d: Demuxed, what: &str, from: Option<Duration>, live: bool) -> Result<Opened, SourceError> {
    let params = d.track.codec_params.as_ref().and_then(|p| p.audio());
    let head = opus_head(params.and_then(|p| p.extra_data.as_deref()));
    let channels = match head {
        Some((c, true)) => c,
        Some((c, false)) => {
            return Err(SourceError::Unsupported { what: what.to_owned(), format: format!("{c}-channel Opus") });
        }
        // No OpusHead (some WebM muxers): the channel count from the container.
        None => params.and_then(|p| p.channels.as_ref()).map_or(2, |c| c.count().clamp(1, 2)),
    };
    let decoder = opus::Decoder::new(48_000, if channels == 2 { opus::Channels::Stereo } else { opus::Channels::Mono })
        .map_err(|e| SourceError::Damaged { what: what.to_owned(), reason: format!("no Opus decoder: {e}") })?;
    let duration = if live { None } else { d.track.num_frames };
    let container = d.format.format_info().short_name.to_owned();
    let mut input = OpusInput {
        what: what.to_owned(),
        format: d.format,
        track: d.track.id,
        channels,
        decoder,
        ahead: VecDeque::new(),
        fifo: VecDeque::new(),
        fifo_start: 0,
        decoded_to: 0,
        emit: 0,
        mode: Mode::PassThrough,
        reencode_until: 0,
        encoder: None,
        encoder_config: EncoderConfig::default(),
        lookahead: 312,
        primed: false,
        scratch: vec![0; MAX_PACKET_SAMPLES * channels],
        frame: Vec::with_capacity(FRAME * channels),
        ended: false,
        skipped: 0,
        reencoded: 0,
    };
    let mut start = 0;
    if let Some(t) = from.filter(|t| !t.is_zero()) {
        start = input.seek(t)?;
    }
    let info = SourceInfo {
        container,
        codec: "opus".into(),
        sample_rate: 48_000,
        channels: channels as u8,
        live,
        pass_through: true,
    };
    Ok(Opened { input: Input::Opus(Box::new(input)), info, duration, start })
}

impl OpusInput {
    /// Positions the stream at `t` (to 2.5 ms: re-encoded frames must land back on the
    /// file's packet boundaries, which fall on multiples of 2.5 ms); the start re-encodes.
    fn seek(&mut self, t: Duration) -> Result<u64, SourceError> {
        let target = ticks(t) / 120 * 120;
        let from = t.saturating_sub(PRE_ROLL);
        let time = Time::try_from_secs_f64(from.as_secs_f64())
            .ok_or_else(|| SourceError::Seek { what: self.what.clone(), reason: "not a position".into() })?;
        let seeked = self
            .format
            .seek(SeekMode::Accurate, SeekTo::Time { time, track_id: Some(self.track) })
            .map_err(|e| SourceError::Seek { what: self.what.clone(), reason: e.to_string() })?;
        let landed = seeked.actual_ts.get().max(0) as u64;
        self.fifo_start = landed;
        self.decoded_to = landed;
        self.emit = target.max(landed);
        self.mode = Mode::Reencode;
        self.reencode_until = self.emit + FRAME as u64;
        Ok(self.emit)
    }

    /// How the frames it re-encodes are encoded (the stream's settings).
    pub fn set_encoder_config(&mut self, config: EncoderConfig) {
        self.encoder_config = config;
    }

    /// Whether the file's packets are being sent as they are.
    pub fn passing_through(&self) -> bool {
        self.mode == Mode::PassThrough
    }

    /// Packets that did not decode (never sent; their span was concealed and re-encoded).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Frames encoded by us rather than passed through.
    pub fn reencoded(&self) -> u64 {
        self.reencoded
    }

    /// Reads and decodes one more packet; false at the end of the file.
    fn read_one(&mut self) -> Result<bool, SourceError> {
        if self.ended {
            return Ok(false);
        }
        let packet = loop {
            match self.format.next_packet() {
                Ok(Some(p)) if p.track_id == self.track => break p,
                Ok(Some(_)) => continue,
                Ok(None) | Err(SymError::ResetRequired) => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(SymError::IoError(e)) => return Err(SourceError::Io { what: self.what.clone(), source: e }),
                Err(_) => {
                    self.skipped += 1;
                    continue;
                }
            }
        };
        let data = &packet.data[..];
        let (n, bytes) = match self.decoder.decode(data, &mut self.scratch, false) {
            Ok(n) => (n, Some(data.to_vec())),
            Err(_) => {
                // Damaged: concealed by the decoder for its nominal length, and never sent.
                self.skipped += 1;
                let n = opus::packet::get_nb_samples(data, 48_000).unwrap_or(FRAME).min(MAX_PACKET_SAMPLES);
                let n = self.decoder.decode(&[], &mut self.scratch[..n * self.channels], false).unwrap_or(0);
                self.scratch[..n * self.channels].fill(0);
                (n, None)
            }
        };
        self.fifo.extend(&self.scratch[..n * self.channels]);
        self.ahead.push_back(Ahead { start: self.decoded_to, samples: n, bytes });
        self.decoded_to += n as u64;
        Ok(true)
    }

    /// Decodes until the audio reaches sample `to` (or the file ends).
    fn decode_to(&mut self, to: u64) -> Result<(), SourceError> {
        while self.decoded_to < to && self.read_one()? {}
        Ok(())
    }

    /// Copies decoded audio `[from, from + len)` into `frame`, silence beyond the end.
    fn copy_out(&mut self, from: u64, len: usize) {
        let c = self.channels;
        self.frame.clear();
        self.frame.resize(len * c, 0);
        for i in 0..len as u64 {
            let s = from + i;
            if s < self.fifo_start || s >= self.decoded_to {
                continue;
            }
            let at = (s - self.fifo_start) as usize * c;
            for ch in 0..c {
                self.frame[i as usize * c + ch] = self.fifo[at + ch];
            }
        }
    }

    /// Forgets what can no longer be needed: audio more than a frame behind the next
    /// send (kept for priming the encoder), packets already covered.
    fn trim(&mut self) {
        let keep_from = self.emit.saturating_sub(FRAME as u64);
        if keep_from > self.fifo_start {
            let drop = ((keep_from - self.fifo_start) as usize * self.channels).min(self.fifo.len());
            self.fifo.drain(..drop);
            self.fifo_start = keep_from;
        }
        while self.ahead.front().is_some_and(|a| a.start + a.samples as u64 <= self.emit) {
            self.ahead.pop_front();
        }
    }

    /// The next packet to send into `out`; false when the file is over.
    pub fn next_packet(&mut self, gain: &mut Gain, out: &mut Packet) -> Result<bool, SourceError> {
        if self.ahead.is_empty() {
            self.read_one()?;
        }
        let next_boundary = self.ahead.iter().find(|a| a.start >= self.emit);
        let aligned = next_boundary.is_some_and(|a| a.start == self.emit && a.bytes.is_some());
        let may_pass = gain.is_unity() && self.emit >= self.reencode_until;
        self.mode = match (self.mode, may_pass, aligned) {
            (_, true, true) => Mode::PassThrough,
            (Mode::PassThrough, true, _) => Mode::PassThrough,
            _ => Mode::Reencode,
        };
        // A damaged packet at the send position cannot pass.
        if self.mode == Mode::PassThrough && !aligned {
            self.mode = Mode::Reencode;
        }
        match self.mode {
            Mode::PassThrough => self.pass(gain, out),
            Mode::Reencode => self.reencode(gain, out),
        }
    }

    fn pass(&mut self, gain: &mut Gain, out: &mut Packet) -> Result<bool, SourceError> {
        let Some(a) = self.ahead.pop_front() else { return Ok(false) };
        let bytes = a.bytes.unwrap_or_default();
        self.copy_out(a.start, a.samples);
        out.data[..bytes.len()].copy_from_slice(&bytes);
        out.len = bytes.len();
        out.level = audio_level(&self.frame);
        out.ticks = a.samples as u32;
        // Keeps the volume ramp's state in step (at unity it changes nothing).
        gain.apply(&mut self.frame, self.channels);
        self.emit = a.start + a.samples as u64;
        self.primed = false;
        self.trim();
        Ok(true)
    }

    fn reencode(&mut self, gain: &mut Gain, out: &mut Packet) -> Result<bool, SourceError> {
        if self.encoder.is_none() {
            let mut e = Encoder::new(self.channels as u8, self.encoder_config).map_err(|e| self.encode_error(e))?;
            self.lookahead = e.lookahead();
            self.encoder = Some(e);
        }
        let l = self.lookahead as u64;
        // How long this frame is: 20 ms, or shorter to land on the file's next packet
        // boundary when passing through may resume there.
        let mut len = FRAME;
        if gain.is_unity()
            && let Some(b) = self.ahead.iter().map(|a| a.start).find(|&s| s > self.emit)
        {
            let gap = (b - self.emit) as usize;
            if gap < FRAME && gap.is_multiple_of(120) {
                len = SHORT_FRAMES.into_iter().find(|&f| f <= gap).unwrap_or(120);
            }
        }
        self.decode_to(self.emit + l + len as u64)?;
        if self.ended && self.emit >= self.decoded_to {
            return Ok(false);
        }
        if !self.primed {
            // The frame before, its lookahead ahead: the encoder's state then holds
            // the audio leading up to the switch.
            self.copy_out((self.emit + l).saturating_sub(FRAME as u64), FRAME);
            let mut discard = [0u8; MAX_PACKET];
            if let Some(e) = self.encoder.as_mut() {
                e.encode(&self.frame, &mut discard).map_err(|e| self.encode_error(e))?;
            }
            self.primed = true;
        }
        self.copy_out(self.emit + l, len);
        gain.apply(&mut self.frame, self.channels);
        out.level = audio_level(&self.frame);
        let Some(e) = self.encoder.as_mut() else { return Ok(false) };
        out.len = e.encode(&self.frame, &mut out.data).map_err(|e| self.encode_error(e))?;
        out.ticks = len as u32;
        self.emit += len as u64;
        self.reencoded += 1;
        self.trim();
        Ok(true)
    }

    fn encode_error(&self, e: EncodeError) -> SourceError {
        SourceError::Damaged { what: self.what.clone(), reason: e.to_string() }
    }
}

impl super::PcmInput for OpusInput {
    fn channels(&self) -> u8 {
        self.channels as u8
    }

    /// The decoded audio, 20 ms at a time (for sources that are not passed through,
    /// such as Opus over a URL).
    fn next_frame(&mut self, out: &mut [i16]) -> Result<super::Frame, SourceError> {
        self.decode_to(self.emit + FRAME as u64)?;
        if self.emit >= self.decoded_to {
            return Ok(super::Frame::End);
        }
        let n = (self.decoded_to - self.emit).min(FRAME as u64) as usize;
        self.copy_out(self.emit, FRAME);
        out[..self.frame.len()].copy_from_slice(&self.frame);
        self.emit += FRAME as u64;
        self.trim();
        Ok(super::Frame::Audio(n))
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
