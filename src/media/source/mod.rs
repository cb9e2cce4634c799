//! Where a stream's audio comes from. [`open`] takes what a command names — a file, a
//! URL, an operator's named source command — recognises it by its content
//! ([`sniff`]) and returns an [`Input`]:
//!
//! - [`raw`]: headerless PCM s16le, at the sample rate and channel count stated;
//! - [`decoded`]: every format symphonia demuxes and decodes (WAV, FLAC, MP3, AAC in
//!   MP4/M4A or ADTS, Ogg Vorbis, WebM/Matroska Vorbis…), on the pacer thread;
//! - [`opus`]: Ogg and WebM Opus, whose packets are sent as they are in the file —
//!   no decode, no encode — while the volume is 100 %;
//! - [`remote`]: a URL ([`fetch`]), an ffmpeg child for what is not decoded natively,
//!   or a named source command, each read and decoded on its own thread into a short
//!   bounded queue the pacer takes frames from without ever waiting.
//!
//! Opening does the blocking work — file checks, the first HTTP response, probing —
//! so it runs off the pacer threads, and a bad source is an error before anything
//! connects. Files are then read on the pacer thread from the page cache, kept ahead
//! of the reader by a thread of its own ([`ahead`]).

mod ahead;
pub mod decoded;
pub mod fetch;
pub mod guard;
mod ogg_opus;
pub mod opus;
pub mod raw;
pub mod remote;
pub mod sniff;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::PcmFormat;
use sniff::Sniffed;

use super::resample::ResampleError;

/// Frames are 20 ms: 50 per second.
pub const FRAMES_PER_SECOND: u32 = 50;
/// 48 kHz ticks (RTP clock) per second.
pub const TICKS_PER_SECOND: u64 = 48_000;

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A file, recognised by its content; headerless PCM is read in `raw` format.
    File { path: PathBuf, raw: PcmFormat },
    /// An `http(s)://` URL: a file or a live stream.
    Url { url: String, policy: fetch::UrlPolicy },
    /// An operator's named source command (`[sources.NAME]`), its argument already
    /// substituted: its standard output is the audio. A `live` one (a radio) is shared
    /// by the calls playing it with the same argument; others run once per call.
    Command { name: String, argv: Vec<String>, live: bool },
}

impl SourceSpec {
    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::File { path, .. } => path.display().to_string(),
            SourceSpec::Url { url, .. } => url.clone(),
            SourceSpec::Command { name, .. } => format!("source {name}"),
        }
    }
}

/// What a source turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// The container (`wav`, `ogg`, `mp3`, `raw`, `ffmpeg` …).
    pub container: String,
    /// The codec (`pcm`, `flac`, `mp3`, `aac`, `vorbis`, `opus` …).
    pub codec: String,
    /// The source's own sample rate and channels, before conversion.
    pub sample_rate: u32,
    pub channels: u8,
    /// A live stream: no duration, no seeking, reconnected when it drops.
    pub live: bool,
    /// Opus packets sent as they are in the source (no decode, no encode).
    pub pass_through: bool,
    /// Read, decoded and encoded once for every call playing it ([`crate::media::shared`]).
    #[serde(default)]
    pub shared: bool,
}

/// Why a source cannot be opened or read. Each names the source and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: no such file; check the path (relative paths are relative to the config's folder)")]
    NotFound(String),
    #[error("{what}: cannot read: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}: is a directory, not an audio file")]
    IsDirectory(String),
    #[error("{0}: is empty")]
    Empty(String),
    #[error(
        "{what}: {len} bytes is not a whole number of {channels}-channel s16le samples ({frame} bytes each); \
         if it is raw PCM, is the channel count right?"
    )]
    OddByteCount { what: String, len: u64, channels: u8, frame: u64 },
    #[error("{what}: is {kind}, not audio")]
    NotAudio { what: String, kind: &'static str },
    #[error("{0}: has no audio track (a video without sound?)")]
    NoAudioTrack(String),
    #[error(
        "{what}: {format} is not decoded natively; install ffmpeg (`apt-get install ffmpeg`) and wasmcalls decodes it through one ffmpeg process"
    )]
    Unsupported { what: String, format: String },
    #[error("{what}: cannot be decoded: {reason}")]
    Damaged { what: String, reason: String },
    #[error("sample rate {0} Hz is not a sample rate raw PCM can have (1000–384000)")]
    BadRate(u32),
    #[error("{0} channels is not supported: raw PCM must have 1 to 8 channels")]
    BadChannels(u8),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("{url}: the server answered {status}")]
    Http { url: String, status: String },
    #[error("{url}: cannot fetch it: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url}: the server sent nothing for {seconds} s")]
    Stalled { url: String, seconds: u64 },
    #[error("{url}: is larger than the {limit_mb} MiB a download may be (limits.download_mb)")]
    TooLarge { url: String, limit_mb: u64 },
    #[error("{url}: is not among the URLs granted to this plugin (grants.urls)")]
    NotGranted { url: String },
    #[error("{url}: refused: {reason}")]
    Forbidden { url: String, reason: String },
    /// A quota of the plugin's (the words name it).
    #[error("quota: {0}")]
    Quota(String),
    #[error("{name}: the source command failed: {reason}")]
    Command { name: String, reason: String },
    #[error("{what}: cannot seek: {reason}")]
    Seek { what: String, reason: String },
}

/// What [`PcmInput::next_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A frame with this many samples per channel from the source (fewer than a whole
    /// frame only for the last one, padded with silence).
    Audio(usize),
    /// Nothing yet (a live stream reconnecting, a slow server): play silence.
    Starved,
    /// The source has ended.
    End,
}

/// A source of 48 kHz PCM in 20 ms frames.
pub trait PcmInput: Send {
    /// Channels of the frames: 1 or 2.
    fn channels(&self) -> u8;
    /// Fills `out` (960 × channels samples) with the next frame.
    fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, SourceError>;
    /// Packets that could not be decoded and were skipped (damage in the source).
    fn skipped(&self) -> u64 {
        0
    }
}

/// Audio as a stream produces it.
pub enum Input {
    /// PCM frames, encoded by the stream.
    Pcm(Box<dyn PcmInput>),
    /// Opus packets, passed through or re-encoded.
    Opus(Box<opus::OpusInput>),
}

/// A source, open and ready to play.
pub struct Opened {
    pub input: Input,
    pub info: SourceInfo,
    /// In 48 kHz ticks, when the source says (not for live streams).
    pub duration: Option<u64>,
    /// Where playback starts, in ticks (a seek).
    pub start: u64,
}

/// Extensions that mean "headerless PCM": such a file plays as raw unless its content
/// carries a container's signature.
const RAW_EXTENSIONS: [&str; 5] = ["raw", "pcm", "s16le", "sln", "bin"];

/// Opens `spec`, starting `from` a position when given (files only). Blocking: run it
/// off the pacer threads.
pub fn open(spec: &SourceSpec, from: Option<Duration>) -> Result<Opened, SourceError> {
    match spec {
        SourceSpec::File { path, raw } => open_file(path, *raw, from),
        SourceSpec::Url { url, policy } => {
            if from.is_some_and(|d| !d.is_zero()) {
                return Err(SourceError::Seek {
                    what: url.clone(),
                    reason: "URL sources play from where they are".into(),
                });
            }
            remote::open_url(url, policy)
        }
        SourceSpec::Command { name, argv, live } => {
            if from.is_some_and(|d| !d.is_zero()) {
                return Err(SourceError::Seek {
                    what: spec.describe(),
                    reason: "a command's output plays once".into(),
                });
            }
            let mut opened = remote::open_command(name, argv)?;
            opened.info.live = *live;
            Ok(opened)
        }
    }
}

fn open_file(path: &Path, raw: PcmFormat, from: Option<Duration>) -> Result<Opened, SourceError> {
    let what = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound(what.clone()),
        _ => SourceError::Io { what: what.clone(), source: e },
    })?;
    if meta.is_dir() {
        return Err(SourceError::IsDirectory(what));
    }
    if meta.len() == 0 {
        return Err(SourceError::Empty(what));
    }
    let mut head = [0u8; 512];
    let n = read_head(path, &mut head).map_err(|e| SourceError::Io { what: what.clone(), source: e })?;
    let raw_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| RAW_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    match sniff::sniff(&head[..n]) {
        Sniffed::NotAudio(kind) => Err(SourceError::NotAudio { what, kind }),
        Sniffed::Foreign(format) => {
            or_ffmpeg(Err(SourceError::Unsupported { what, format: format.into() }), path, from)
        }
        // Mono or stereo Ogg Opus is read page by page, not through symphonia.
        Sniffed::Container if ogg_opus::is_playable_opus(&head[..n]) => match opus::open_ogg(path, &what, from)? {
            Some(opened) => Ok(opened),
            None => decoded::open_file(path, from),
        },
        Sniffed::Container => decoded::open_file(path, from),
        Sniffed::Audio if !raw_name => decoded::open_file(path, from),
        // Something symphonia knows without a signature we check (rare), or not audio at all.
        Sniffed::Unknown if !raw_name && path.extension().is_some() => {
            or_ffmpeg(decoded::open_file(path, from), path, from)
        }
        Sniffed::Audio | Sniffed::Unknown => raw::open(path, raw, from),
    }
}

/// What is not decoded natively goes through ffmpeg where it is installed; without it
/// the error says to install it.
fn or_ffmpeg(opened: Result<Opened, SourceError>, path: &Path, from: Option<Duration>) -> Result<Opened, SourceError> {
    match opened {
        Err(SourceError::Unsupported { what, format }) if remote::ffmpeg_available() => {
            tracing::info!("{what}: {format}; decoding it through ffmpeg");
            remote::open_ffmpeg(path, from)
        }
        other => other,
    }
}

fn read_head(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    read_up_to(&mut std::fs::File::open(path)?, buf)
}

/// Fills `buf` from `r` as far as it goes: the bytes read (fewer at the end).
fn read_up_to(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Ticks (48 kHz samples) in `d`.
pub fn ticks(d: Duration) -> u64 {
    (d.as_nanos() * TICKS_PER_SECOND as u128 / 1_000_000_000) as u64
}
