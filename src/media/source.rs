//! Raw PCM s16le sources, read 20 ms at a time (files are streamed, never loaded whole).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Opus takes these input rates directly; anything else would need resampling.
pub const OPUS_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// Frames are 20 ms: 50 per second.
pub const FRAMES_PER_SECOND: u32 = 50;

/// Why a source cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: no such file; check the path (it is resolved relative to the working directory)")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: is a directory, not a raw audio file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: is empty; a raw audio file needs at least one sample")]
    Empty { path: PathBuf },
    #[error(
        "{path}: {len} bytes is not a whole number of {channels}-channel s16le samples \
             ({frame} bytes each); is it really raw PCM s16le with {channels} channel(s)?"
    )]
    OddByteCount { path: PathBuf, len: u64, channels: u8, frame: u64 },
    #[error(
        "{path}: is a WAV file; wasmcalls streams raw PCM s16le — convert it with \
             `ffmpeg -i {path} -f s16le -ac 2 -ar 48000 out.raw`"
    )]
    LooksLikeWav { path: PathBuf },
    #[error("sample rate {0} Hz is above Telegram's 48000 Hz limit")]
    RateTooHigh(u32),
    #[error(
        "sample rate {0} Hz is not supported: Opus takes 8000, 12000, 16000, 24000 or 48000 Hz; \
             resample with `ffmpeg -f s16le -ar {0} -ac 2 -i in.raw -f s16le -ar 48000 out.raw`"
    )]
    UnsupportedRate(u32),
    #[error("{0} channels is not supported: raw PCM must be mono (1) or stereo (2)")]
    UnsupportedChannels(u8),
}

/// Sample rate and channel count of a raw PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    rate: u32,
    channels: u8,
}

impl PcmFormat {
    /// Validates a format. `rate` is the seed API's `bitrate` argument: the file's sample rate.
    pub fn new(rate: u32, channels: u8) -> Result<Self, SourceError> {
        if rate > 48000 {
            return Err(SourceError::RateTooHigh(rate));
        }
        if !OPUS_RATES.contains(&rate) {
            return Err(SourceError::UnsupportedRate(rate));
        }
        if !(1..=2).contains(&channels) {
            return Err(SourceError::UnsupportedChannels(channels));
        }
        Ok(PcmFormat { rate, channels })
    }

    /// 48 kHz stereo.
    pub fn stereo48() -> Self {
        PcmFormat { rate: 48000, channels: 2 }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Samples per channel in one 20 ms frame.
    pub fn frame_samples(&self) -> usize {
        (self.rate / FRAMES_PER_SECOND) as usize
    }

    /// Interleaved samples in one 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame_samples() * self.channels as usize
    }

    /// Bytes of one sample frame (all channels).
    pub fn bytes_per_sample_frame(&self) -> u64 {
        2 * self.channels as u64
    }
}

/// A raw PCM file read 20 ms at a time.
pub struct PcmSource {
    /// Read straight into `bytes`, one syscall per frame (~1 µs from the page cache):
    /// a read-ahead buffer would cost memory per call for no measurable CPU gain.
    file: File,
    path: PathBuf,
    format: PcmFormat,
    bytes: Vec<u8>,
    total_frames: u64,
    frames_read: u64,
    eof: bool,
}

impl PcmSource {
    /// Opens and validates a raw file; nothing is read beyond a 12-byte sniff.
    pub fn open(path: &Path, format: PcmFormat) -> Result<Self, SourceError> {
        let p = || path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound { path: p() },
            _ => SourceError::Io { path: p(), source: e },
        })?;
        if meta.is_dir() {
            return Err(SourceError::IsDirectory { path: p() });
        }
        let len = meta.len();
        if len == 0 {
            return Err(SourceError::Empty { path: p() });
        }
        let mut file = File::open(path).map_err(|e| SourceError::Io { path: p(), source: e })?;
        let mut head = [0u8; 12];
        let n = read_full(&mut file, &mut head).map_err(|e| SourceError::Io { path: p(), source: e })?;
        if n == 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
            return Err(SourceError::LooksLikeWav { path: p() });
        }
        let frame = format.bytes_per_sample_frame();
        if len % frame != 0 {
            return Err(SourceError::OddByteCount { path: p(), len, channels: format.channels, frame });
        }
        use std::io::Seek;
        file.rewind().map_err(|e| SourceError::Io { path: p(), source: e })?;
        let frame_bytes = format.frame_len() * 2;
        Ok(PcmSource {
            file,
            path: p(),
            format,
            bytes: vec![0; frame_bytes],
            total_frames: len.div_ceil(frame_bytes as u64),
            frames_read: 0,
            eof: false,
        })
    }

    pub fn format(&self) -> PcmFormat {
        self.format
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 20 ms frames in the whole file (the last one may be short).
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Frames handed out so far: the playback position.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// Fills `out` (one frame, interleaved) and returns how many samples per channel
    /// came from the file; a short last frame is zero-padded. `Ok(0)` means exhausted.
    pub fn read_frame(&mut self, out: &mut [i16]) -> Result<usize, SourceError> {
        debug_assert_eq!(out.len(), self.format.frame_len());
        if self.eof {
            return Ok(0);
        }
        let n = read_full(&mut self.file, &mut self.bytes)
            .map_err(|e| SourceError::Io { path: self.path.clone(), source: e })?;
        if n < self.bytes.len() {
            self.eof = true;
        }
        if n == 0 {
            return Ok(0);
        }
        for (o, b) in out.iter_mut().zip(self.bytes[..n].chunks_exact(2)) {
            *o = i16::from_le_bytes([b[0], b[1]]);
        }
        out[n / 2..].fill(0);
        self.frames_read += 1;
        Ok(n / 2 / self.format.channels as usize)
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
