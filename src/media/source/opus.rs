//! Ogg and WebM Opus, sent as the packets in the file: no decode, no encode. While
//! packets pass, one in [`LEVEL_EVERY`] is decoded (after [`PRE_ROLL`] of warm-up, in
//! mono) for the RFC 6464 audio level; nothing else is. When the packets cannot pass —
//! a volume other than 100 %, a seek, a damaged packet — the call switches to decode →
//! gain → encode at the next packet boundary: the decoder is restarted [`PRE_ROLL`]
//! back on the packets kept behind the send position, so it has converged by then
//! (RFC 7845 §4.6), and the call returns to the file's own packets at the first
//! boundary after the volume is back at 100 %.
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
use super::ogg_opus::{self, Next, OggOpus};
use super::{Input, Opened, SourceError, SourceInfo, ticks};
use crate::media::decoder::Decoder;
use crate::media::encoder::{EncodeError, Encoder, EncoderConfig, MAX_PACKET};
use crate::media::gain::{Gain, audio_level, audio_level_f32};

/// Opus decodes at 48 kHz; the longest packet is 120 ms.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Decoded before a position so the decoder has converged there (RFC 7845 §4.6).
const PRE_ROLL: Duration = Duration::from_millis(80);
const PRE_ROLL_TICKS: u64 = 3840;
/// Re-encoded frames, and the shorter ones that realign to the file's packets.
const FRAME: usize = 960;
const SHORT_FRAMES: [usize; 3] = [480, 240, 120];
/// While passing through, the level is measured on one packet in this many (400 ms
/// at 20 ms packets) and held in between: a speaking indicator needs no more, and a
/// measurement decodes 80 ms (five packets) for one.
pub const LEVEL_EVERY: u32 = 20;
/// Packets kept behind the send position: enough to prime the encoder with the frame
/// before a switch and warm the decoder up before that.
const HISTORY: u64 = FRAME as u64 + PRE_ROLL_TICKS + MAX_PACKET_SAMPLES as u64;

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

/// A packet read from the file: where it starts on the decoded timeline, how many
/// samples it holds, and its bytes (`None` if damaged: never sent, concealed).
struct Read {
    start: u64,
    samples: usize,
    bytes: Option<Box<[u8]>>,
}

/// Where the packets come from: Ogg files page by page (a page's lacing values),
/// anything else (WebM, a live stream) through symphonia.
enum Demuxer {
    Ogg(Box<OggOpus>),
    Symphonia { format: Box<dyn FormatReader>, track: u32 },
}

impl Demuxer {
    fn next(&mut self) -> std::io::Result<Next> {
        let (format, track) = match self {
            Demuxer::Ogg(ogg) => return ogg.next(),
            Demuxer::Symphonia { format, track } => (format, *track),
        };
        loop {
            let next = match format.next_packet() {
                Ok(Some(p)) if p.track_id == track => Next::Packet(p.data),
                Ok(Some(_)) => continue,
                Ok(None) | Err(SymError::ResetRequired) => Next::End,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Next::End,
                Err(SymError::IoError(e)) => return Err(e),
                Err(e) => Next::Damaged(e.to_string()),
            };
            return Ok(next);
        }
    }

    /// Positions the demuxer at or before `ts`; where the next packet read starts.
    fn seek(&mut self, ts: u64) -> Result<u64, String> {
        match self {
            Demuxer::Ogg(ogg) => ogg.seek(ts),
            Demuxer::Symphonia { format, track } => {
                let time = Time::try_from_secs_f64(ts as f64 / 48_000.0).ok_or("not a position")?;
                let seeked = format
                    .seek(SeekMode::Accurate, SeekTo::Time { time, track_id: Some(*track) })
                    .map_err(|e| e.to_string())?;
                Ok(seeked.actual_ts.get().max(0) as u64)
            }
        }
    }
}

/// An Opus track, passed through or re-encoded.
pub struct OpusInput {
    what: String,
    demuxer: Demuxer,
    channels: usize,
    /// Made when re-encoding first needs it: passing through measures levels with the
    /// thread's [`Meter`].
    decoder: Option<Decoder>,
    /// The packets from [`HISTORY`] behind the send position to those read ahead.
    packets: VecDeque<Read>,
    /// Where the packets read end.
    read_to: u64,
    /// Decoded audio `[fifo_start, decoded_to)`, interleaved.
    fifo: VecDeque<i16>,
    fifo_start: u64,
    decoded_to: u64,
    /// The decoder's state follows the file up to here: decoding the packet that
    /// starts here continues it.
    decoder_at: Option<u64>,
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
    /// The level last measured while passing through, and packets to pass before the
    /// next measurement (0: this one).
    level: u8,
    until_level: u32,
    /// The shift of this input's measuring cycle, applied once (see [`level_phase`]).
    level_phase: Option<u32>,
}

/// Inputs opened together (a burst of calls admitted at once) would measure their
/// levels on the same packets, their decodes in the same 20 ms every 400 ms; each
/// takes the next shift of the cycle instead, so the decodes spread over it.
fn level_phase() -> u32 {
    static OPENED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % LEVEL_EVERY
}

/// Whether `packet`'s frames are laid out as Opus says (libopus' own parser, its
/// answers on the stack: `opus::packet::parse` would allocate a list of them).
fn well_formed(packet: &[u8]) -> bool {
    let (mut toc, mut offset) = (0u8, 0);
    let mut frames = [std::ptr::null(); 48];
    let mut sizes = [0i16; 48];
    let Ok(len) = i32::try_from(packet.len()) else { return false };
    // SAFETY: `packet` is `len` bytes; `frames` and `sizes` hold the 48 frames a packet
    // can have at most, as libopus requires.
    let n = unsafe {
        opusic_sys::opus_packet_parse(
            packet.as_ptr(),
            len,
            &mut toc,
            frames.as_mut_ptr(),
            sizes.as_mut_ptr(),
            &mut offset,
        )
    };
    n >= 0
}

/// Decodes `packet` into `pcm`; a damaged or missing one is concealed (keeping the
/// decoder's state in step) and silenced.
fn decode_or_conceal(decoder: &mut Decoder, packet: Option<&[u8]>, pcm: &mut [i16]) {
    if packet.and_then(|b| decoder.decode(b, pcm).ok()).is_none() {
        let _ = decoder.decode(&[], pcm);
        pcm.fill(0);
    }
}

/// Measuring a level restarts the decoder every time (the packets between two
/// measurements are not decoded), so streams passing through share one per thread
/// rather than each holding its own (~26 KiB in stereo). It is mono, in floats: a
/// stereo packet is read as its downmix, one inverse transform instead of two and no
/// conversion to 16 bits — a quarter of the pacers' CPU with 1,000 calls passing
/// through was these decodes (`perf`), and a level needs no more.
#[derive(Default)]
struct Meter {
    decoder: Option<Decoder>,
    pcm: Vec<f32>,
}

thread_local! {
    static METER: std::cell::RefCell<Meter> = std::cell::RefCell::default();
}

/// Opens `path` if it is an Ogg Opus file this module reads itself, positioned `from`
/// the start; `None` for anything else.
pub fn open_ogg(path: &std::path::Path, what: &str, from: Option<Duration>) -> Result<Option<Opened>, SourceError> {
    let Some(o) = ogg_opus::open(path, what)? else { return Ok(None) };
    start(Demuxer::Ogg(Box::new(o.file)), o.channels, "ogg".into(), o.duration, what, from, false).map(Some)
}

/// Opens a demuxed Opus track, positioned `from` the start.
pub fn open(d: Demuxed, what: &str, from: Option<Duration>, live: bool) -> Result<Opened, SourceError> {
    let params = d.track.codec_params.as_ref().and_then(|p| p.audio());
    let head = params.and_then(|p| p.extra_data.as_deref()).and_then(ogg_opus::opus_head);
    let channels = match head {
        Some(h) if h.playable => h.channels,
        Some(h) => {
            let format = format!("{}-channel Opus", h.channels);
            return Err(SourceError::Unsupported { what: what.to_owned(), format });
        }
        // No OpusHead (some WebM muxers): the channel count from the container.
        None => params.and_then(|p| p.channels.as_ref()).map_or(2, |c| c.count().clamp(1, 2)),
    };
    let duration = if live { None } else { d.track.num_frames };
    let container = d.format.format_info().short_name.to_owned();
    start(Demuxer::Symphonia { format: d.format, track: d.track.id }, channels, container, duration, what, from, live)
}

fn start(
    demuxer: Demuxer,
    channels: usize,
    container: String,
    duration: Option<u64>,
    what: &str,
    from: Option<Duration>,
    live: bool,
) -> Result<Opened, SourceError> {
    Decoder::available(channels)
        .and(Decoder::available(1))
        .map_err(|e| SourceError::Damaged { what: what.to_owned(), reason: format!("no Opus decoder: {e}") })?;
    let mut input = OpusInput {
        what: what.to_owned(),
        demuxer,
        channels,
        decoder: None,
        packets: VecDeque::new(),
        read_to: 0,
        fifo: VecDeque::new(),
        fifo_start: 0,
        decoded_to: 0,
        decoder_at: Some(0),
        emit: 0,
        mode: Mode::PassThrough,
        reencode_until: 0,
        encoder: None,
        encoder_config: EncoderConfig::default(),
        lookahead: 312,
        primed: false,
        scratch: Vec::new(),
        frame: Vec::new(),
        ended: false,
        skipped: 0,
        reencoded: 0,
        level: 127,
        until_level: 0,
        level_phase: Some(level_phase()),
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
        shared: false,
    };
    Ok(Opened { input: Input::Opus(Box::new(input)), info, duration, start })
}

impl OpusInput {
    /// Positions the stream at `t` (to 2.5 ms: re-encoded frames must land back on the
    /// file's packet boundaries, which fall on multiples of 2.5 ms); the start re-encodes.
    fn seek(&mut self, t: Duration) -> Result<u64, SourceError> {
        let target = ticks(t) / 120 * 120;
        let landed = self
            .demuxer
            .seek(ticks(t.saturating_sub(PRE_ROLL)))
            .map_err(|reason| SourceError::Seek { what: self.what.clone(), reason })?;
        self.packets.clear();
        self.read_to = landed;
        self.fifo.clear();
        self.fifo_start = landed;
        self.decoded_to = landed;
        self.decoder_at = None;
        self.emit = target.max(landed);
        self.mode = Mode::Reencode;
        self.reencode_until = self.emit + FRAME as u64;
        Ok(self.emit)
    }

    /// How the frames it re-encodes are encoded (the stream's settings).
    pub fn set_encoder_config(&mut self, config: EncoderConfig) {
        self.encoder_config = config;
    }

    /// What re-encoding spends per frame (0–10), from the next frame on.
    pub fn set_complexity(&mut self, complexity: u8) {
        self.encoder_config.complexity = complexity;
        if let Some(e) = self.encoder.as_mut() {
            e.set_complexity(complexity);
        }
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

    /// Reads one more packet; false at the end of the file. Its structure is checked
    /// (a damaged packet is never sent) but it is not decoded.
    fn read_one(&mut self) -> Result<bool, SourceError> {
        if self.ended {
            return Ok(false);
        }
        // A demuxer that fails on the same spot again and again would keep this loop
        // (and its thread) busy for ever: past a limit the source is damaged, not playing.
        let mut errors = 0;
        let data = loop {
            match self.demuxer.next().map_err(|e| SourceError::Io { what: self.what.clone(), source: e })? {
                Next::Packet(data) => break data,
                Next::End => {
                    self.ended = true;
                    return Ok(false);
                }
                Next::Damaged(reason) => {
                    self.skipped += 1;
                    errors += 1;
                    if errors >= super::decoded::MAX_ERRORS_IN_A_ROW {
                        return Err(SourceError::Damaged { what: self.what.clone(), reason });
                    }
                }
            }
        };
        let samples = opus::packet::get_nb_samples(&data, 48_000).ok().filter(|&n| n > 0 && n <= MAX_PACKET_SAMPLES);
        let read = match samples {
            // The demuxer's buffer is kept as it is: a pacer thread allocates as little
            // as it can (an allocator lock another thread holds would make it late).
            Some(n) if well_formed(&data) => Read { start: self.read_to, samples: n, bytes: Some(data) },
            // Damaged: concealed for its nominal length when decoded, never sent.
            _ => {
                self.skipped += 1;
                Read { start: self.read_to, samples: samples.unwrap_or(FRAME), bytes: None }
            }
        };
        self.read_to += read.samples as u64;
        self.packets.push_back(read);
        Ok(true)
    }

    /// The index of the packet that starts at `at`, reading on to it; `None` past the
    /// end of the file.
    fn packet_at(&mut self, at: u64) -> Result<Option<usize>, SourceError> {
        while self.read_to <= at && self.read_one()? {}
        Ok(self.packets.iter().position(|p| p.start == at))
    }

    /// The RFC 6464 level of packet `i`, decoded by the thread's [`Meter`] after the
    /// [`PRE_ROLL`] before it: a decoder restarted one packet before measured a steady
    /// sine 9 dB too quiet (CELT predicts each band's energy from the frame before),
    /// within 1 dB from 80 ms before (a unit test compares every packet's level).
    fn measure_level(&self, i: usize) -> u8 {
        let first = self.warm_up_from(i, PRE_ROLL_TICKS);
        METER.with_borrow_mut(|m| {
            let decoder = m.decoder.get_or_insert_with(|| Decoder::new(1).expect("checked when opened"));
            decoder.reset();
            let mut level = 127;
            for p in self.packets.range(first..=i) {
                let n = p.samples;
                if m.pcm.len() < n {
                    m.pcm.resize(n, 0.0);
                }
                let pcm = &mut m.pcm[..n];
                // A damaged packet is concealed, keeping the decoder's state in step.
                if p.bytes.as_deref().and_then(|b| decoder.decode_float(b, pcm).ok()).is_none() {
                    let _ = decoder.decode_float(&[], pcm);
                    pcm.fill(0.0);
                }
                level = audio_level_f32(pcm);
            }
            level
        })
    }

    /// Decodes packet `i` into `scratch`, continuing the decoder's state: its samples.
    fn decode_packet(&mut self, i: usize) -> usize {
        let c = self.channels;
        let p = &self.packets[i];
        let n = p.samples;
        // Sized to the longest packet met, not the longest Opus allows (20 ms is usual).
        if self.scratch.len() < n * c {
            self.scratch.resize(n * c, 0);
        }
        let decoder = self.decoder.get_or_insert_with(|| Decoder::new(c).expect("checked when opened"));
        decode_or_conceal(decoder, p.bytes.as_deref(), &mut self.scratch[..n * c]);
        self.decoder_at = Some(p.start + n as u64);
        n
    }

    /// Restarts the decoder so that it continues into packet `i` converged: the packet
    /// before it, and any others starting within `warm_up` ticks of it, are decoded and
    /// thrown away.
    fn warm_up(&mut self, i: usize, warm_up: u64) {
        if let Some(d) = self.decoder.as_mut() {
            d.reset();
        }
        for j in self.warm_up_from(i, warm_up)..i {
            self.decode_packet(j);
        }
        self.decoder_at = Some(self.packets[i].start);
    }

    /// Where a restarted decoder starts so that it has converged at packet `i`: the
    /// packet before it, or the first of those starting within `warm_up` ticks of it.
    fn warm_up_from(&self, i: usize, warm_up: u64) -> usize {
        let start = self.packets[i].start;
        let mut first = i;
        while first > 0 && (first == i || start - self.packets[first - 1].start <= warm_up) {
            first -= 1;
        }
        first
    }

    /// Makes the decoded audio cover `[from, to)` (or up to the end of the file), the
    /// decoder warmed up `warm_up` ticks wherever it does not continue the file.
    fn decode_range(&mut self, from: u64, to: u64, warm_up: u64) -> Result<(), SourceError> {
        if from < self.fifo_start || from > self.decoded_to {
            // Passing through left the decoded audio behind: start it again at the
            // packet holding `from`.
            while self.read_to <= from && self.read_one()? {}
            let at = self.packets.iter().rev().find(|p| p.start <= from).map_or(from, |p| p.start);
            self.fifo.clear();
            self.fifo_start = at;
            self.decoded_to = at;
        }
        while self.decoded_to < to {
            let Some(i) = self.packet_at(self.decoded_to)? else { break };
            if self.decoder_at != Some(self.decoded_to) {
                self.warm_up(i, warm_up);
            }
            let n = self.decode_packet(i);
            self.fifo.extend(&self.scratch[..n * self.channels]);
            self.decoded_to += n as u64;
        }
        Ok(())
    }

    /// Copies decoded audio `[from, from + len)` into `frame`, silence where there is none.
    fn copy_out(&mut self, from: u64, len: usize) {
        let c = self.channels;
        self.frame.clear();
        self.frame.resize(len * c, 0);
        let lo = from.max(self.fifo_start);
        let hi = (from + len as u64).min(self.decoded_to);
        if lo < hi {
            let src = (lo - self.fifo_start) as usize * c..(hi - self.fifo_start) as usize * c;
            let dst = (lo - from) as usize * c;
            for (d, s) in self.frame[dst..].iter_mut().zip(self.fifo.range(src)) {
                *d = *s;
            }
        }
    }

    /// Forgets what can no longer be needed: audio more than a frame behind the next
    /// send (kept for priming the encoder), packets more than [`HISTORY`] behind it.
    fn trim(&mut self) {
        let keep_from = self.emit.saturating_sub(FRAME as u64);
        if keep_from > self.fifo_start {
            let drop = ((keep_from - self.fifo_start) as usize * self.channels).min(self.fifo.len());
            self.fifo.drain(..drop);
            self.fifo_start += (drop / self.channels) as u64;
        }
        let keep_packets = self.emit.saturating_sub(HISTORY);
        while self.packets.front().is_some_and(|p| p.start + (p.samples as u64) < keep_packets) {
            self.packets.pop_front();
        }
    }

    /// The next packet to send into `out`; false when the file is over.
    pub fn next_packet(&mut self, gain: &mut Gain, out: &mut Packet) -> Result<bool, SourceError> {
        if self.read_to <= self.emit {
            self.read_one()?;
        }
        // The end: nothing left to send. Deciding a mode first would find no packet at
        // the send position and switch to re-encoding — an encoder made and 80 ms
        // decoded for nothing, in every stream ending at once (a burst of late frames).
        if self.ended && self.emit >= self.read_to {
            return Ok(false);
        }
        let next_boundary = self.packets.iter().find(|a| a.start >= self.emit);
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
        let Some(i) = self.packet_at(self.emit)? else { return Ok(false) };
        if self.packets[i].bytes.is_none() {
            self.mode = Mode::Reencode;
            return self.reencode(gain, out);
        }
        let (start, samples) = (self.packets[i].start, self.packets[i].samples);
        if self.until_level == 0 {
            self.level = self.measure_level(i);
            self.until_level = self.level_phase.take().filter(|&p| p > 0).unwrap_or(LEVEL_EVERY);
        }
        self.until_level -= 1;
        let bytes = self.packets[i].bytes.as_deref().unwrap_or_default();
        out.data[..bytes.len()].copy_from_slice(bytes);
        out.len = bytes.len();
        out.level = self.level;
        out.ticks = samples as u32;
        self.emit = start + samples as u64;
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
            && let Some(b) = self.packets.iter().map(|a| a.start).find(|&s| s > self.emit)
        {
            let gap = (b - self.emit) as usize;
            if gap < FRAME && gap.is_multiple_of(120) {
                len = SHORT_FRAMES.into_iter().find(|&f| f <= gap).unwrap_or(120);
            }
        }
        let from = if self.primed { self.emit + l } else { (self.emit + l).saturating_sub(FRAME as u64) };
        self.decode_range(from, self.emit + l + len as u64, PRE_ROLL_TICKS)?;
        if self.ended && self.emit >= self.read_to {
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
        // Passing through again measures its level at once.
        self.until_level = 0;
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
        self.decode_range(self.emit, self.emit + FRAME as u64, PRE_ROLL_TICKS)?;
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

#[cfg(test)]
mod tests {
    use super::{Demuxer, LEVEL_EVERY, well_formed};
    use crate::media::decoder::Decoder;
    use crate::media::gain::{Gain, audio_level};
    use crate::media::source::ogg_opus::tests::file as sine_opus;
    use crate::media::source::{Input, PcmFormat, SourceSpec, open};
    use crate::media::stream::Packet;

    #[test]
    fn well_formed_agrees_with_libopus_parse() {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let pcm: Vec<i16> = (0..1920).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect();
        let mut out = [0u8; 1500];
        let n = enc.encode(&pcm, &mut out).unwrap();
        let good = &out[..n];
        // A code-3 packet (several frames) without its frame count, an empty one, one
        // whose count promises more than follows, a code-2 one whose length runs past
        // its end.
        let cases: [&[u8]; 5] = [good, &[0x03], &[], &[0x03 | 0xf8, 0x85, 0xff], &[good[0] | 0x02, 0xfc]];
        for case in cases {
            assert_eq!(well_formed(case), opus::packet::parse(case).is_ok(), "{case:02x?}");
        }
        assert!(well_formed(good));
        assert!(!well_formed(&[]));
    }

    #[test]
    fn a_file_passed_through_to_its_end_is_never_re_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SourceSpec::File { path: sine_opus(dir.path(), "1"), raw: PcmFormat::stereo48() };
        let Input::Opus(mut input) = open(&spec, None).unwrap().input else { panic!("not passed through") };
        assert!(matches!(input.demuxer, Demuxer::Ogg(_)), "Ogg Opus is read page by page, not by symphonia");
        let (mut gain, mut out, mut sent) = (Gain::default(), Packet::empty(), 0);
        while input.next_packet(&mut gain, &mut out).unwrap() {
            sent += 1;
        }
        assert!(sent >= 50, "{sent} packets for 1 s");
        assert_eq!(input.reencoded(), 0, "the end switched to re-encoding");
        assert!(input.encoder.is_none(), "an encoder was made at the end");
    }

    #[test]
    fn passed_through_packets_carry_the_level_their_stereo_audio_has() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SourceSpec::File { path: sine_opus(dir.path(), "2"), raw: PcmFormat::stereo48() };
        let Input::Opus(mut input) = open(&spec, None).unwrap().input else { panic!("not passed through") };
        let (mut gain, mut out) = (Gain::default(), Packet::empty());
        // Each packet decoded in full, in stereo and in order: the level it has.
        let mut stereo = Decoder::new(2).unwrap();
        let mut pcm = vec![0i16; 5760 * 2];
        let mut levels = Vec::new();
        while input.next_packet(&mut gain, &mut out).unwrap() {
            let n = stereo.decode(out.payload(), &mut pcm).unwrap();
            levels.push((out.level, audio_level(&pcm[..n * 2])));
        }
        // The steady sine: past its onset (the first measurement may be held that
        // long) and before the last packet (its end, and the encoder's padding).
        let steady = &levels[2 * LEVEL_EVERY as usize..levels.len() - 1];
        assert!(steady.len() >= 50, "{} packets compared", steady.len());
        for (i, (level, truth)) in steady.iter().enumerate() {
            assert!(level.abs_diff(*truth) <= 1, "steady packet {i}: level {level} for audio at {truth}");
        }
    }
}
