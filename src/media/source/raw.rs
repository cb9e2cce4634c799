//! Headerless PCM s16le, the seed API's format, at the sample rate and channel count
//! the command states (PyTgCalls calls the rate `bitrate`). Read a 20 ms frame at a
//! time — a file is streamed, never loaded whole — and converted to 48 kHz.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use super::{Frame, Input, Opened, PcmInput, SourceError, SourceInfo, ticks};
use crate::media::resample::{Conform, FRAME_SAMPLES, Layout, RATE};

/// Sample rate and channel count of headerless PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    rate: u32,
    channels: u8,
}

impl PcmFormat {
    /// A format raw PCM can have: 1000–384000 Hz, 1–8 channels.
    pub fn new(rate: u32, channels: u8) -> Result<Self, SourceError> {
        if !(1000..=384_000).contains(&rate) {
            return Err(SourceError::BadRate(rate));
        }
        if !(1..=8).contains(&channels) {
            return Err(SourceError::BadChannels(channels));
        }
        Ok(PcmFormat { rate, channels })
    }

    /// A format as a command states it, checked only if the file turns out to be raw
    /// (for anything else the stated rate does not matter).
    pub fn stated(rate: u32, channels: u8) -> Self {
        PcmFormat { rate, channels }
    }

    /// 48 kHz stereo, the seed's default.
    pub fn stereo48() -> Self {
        PcmFormat { rate: 48000, channels: 2 }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Bytes of one sample frame (all channels).
    fn bytes_per_frame(&self) -> u64 {
        2 * self.channels as u64
    }
}

/// Raw PCM read through the converter.
struct RawPcm {
    what: String,
    reader: Box<dyn Read + Send>,
    format: PcmFormat,
    conform: Conform,
    /// Bytes of about 20 ms of input, read per call.
    bytes: Vec<u8>,
    samples: Vec<f32>,
    eof: bool,
}

/// Opens a raw file, checking it is whole samples, positioned `from` the start.
pub fn open(path: &Path, format: PcmFormat, from: Option<Duration>) -> Result<Opened, SourceError> {
    let format = PcmFormat::new(format.rate, format.channels)?;
    let what = path.display().to_string();
    let io = |e: io::Error| SourceError::Io { what: what.clone(), source: e };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let frame = format.bytes_per_frame();
    if len % frame != 0 {
        return Err(SourceError::OddByteCount { what, len, channels: format.channels, frame });
    }
    let total_frames = len / frame;
    let start_frame = from.map_or(0, |d| (d.as_nanos() * format.rate as u128 / 1_000_000_000) as u64);
    if start_frame > 0 {
        file.seek(SeekFrom::Start(start_frame.min(total_frames) * frame)).map_err(io)?;
    }
    let conform = Conform::new(format.rate, Layout::of_count(format.channels as usize))?;
    let per_read = (format.rate as usize).div_ceil(super::FRAMES_PER_SECOND as usize) * frame as usize;
    let info = SourceInfo {
        container: "raw".into(),
        codec: "pcm_s16le".into(),
        sample_rate: format.rate,
        channels: format.channels,
        live: false,
        pass_through: false,
        shared: false,
    };
    let reader = Box::new(super::ahead::AheadFile::new(file).map_err(io)?);
    Ok(Opened {
        input: Input::Pcm(Box::new(RawPcm {
            what,
            reader,
            format,
            conform,
            bytes: vec![0; per_read],
            samples: Vec::with_capacity(per_read / 2),
            eof: false,
        })),
        info,
        duration: Some(total_frames * RATE as u64 / format.rate as u64),
        start: ticks(Duration::from_nanos(start_frame * 1_000_000_000 / format.rate as u64)),
    })
}

/// Raw PCM from a pipe or stream (no length known, no seeking).
pub fn open_reader(reader: Box<dyn Read + Send>, format: PcmFormat, what: &str) -> Result<Opened, SourceError> {
    let conform = Conform::new(format.rate, Layout::of_count(format.channels as usize))?;
    let per_read =
        (format.rate as usize).div_ceil(super::FRAMES_PER_SECOND as usize) * format.bytes_per_frame() as usize;
    let info = SourceInfo {
        container: "raw".into(),
        codec: "pcm_s16le".into(),
        sample_rate: format.rate,
        channels: format.channels,
        live: false,
        pass_through: false,
        shared: false,
    };
    let input = RawPcm {
        what: what.to_owned(),
        reader,
        format,
        conform,
        bytes: vec![0; per_read],
        samples: Vec::with_capacity(per_read / 2),
        eof: false,
    };
    Ok(Opened { input: Input::Pcm(Box::new(input)), info, duration: None, start: 0 })
}

impl PcmInput for RawPcm {
    fn channels(&self) -> u8 {
        self.conform.channels()
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, SourceError> {
        loop {
            let n = self.conform.pop_frame(out);
            if n > 0 {
                return Ok(Frame::Audio(n));
            }
            if self.eof {
                return Ok(Frame::End);
            }
            // One syscall per frame (~1 µs from the page cache): a read-ahead buffer
            // would cost memory per call for no measurable CPU gain.
            let n = read_full(&mut self.reader, &mut self.bytes)
                .map_err(|e| SourceError::Io { what: self.what.clone(), source: e })?;
            let whole = n - n % self.format.bytes_per_frame() as usize;
            self.samples.clear();
            self.samples
                .extend(self.bytes[..whole].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0));
            self.conform.push(&self.samples);
            if n < self.bytes.len() {
                self.eof = true;
                self.conform.finish();
            }
            if self.conform.buffered() < FRAME_SAMPLES && !self.eof {
                continue;
            }
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
