//! Every format symphonia demuxes and decodes, read and decoded a packet at a time as
//! frames are needed (a two-hour file is never loaded whole), converted to 48 kHz.
//! A packet that does not decode is skipped and counted — a damaged middle plays
//! around the damage — and a truncated file ends where its data does.

use std::path::Path;
use std::time::Duration;

use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Time;

use super::{Frame, Input, Opened, PcmInput, SourceError, SourceInfo, ticks};
use crate::media::resample::{Conform, Layout, Placement, RATE};

/// The demuxer's read buffer: the smallest symphonia takes (bounds memory per stream).
const READ_BUFFER: usize = 64 * 1024;
/// Decode errors in a row after which a source counts as unplayable rather than damaged.
pub(super) const MAX_ERRORS_IN_A_ROW: u32 = 100;

/// A demuxer positioned on its audio track.
pub struct Demuxed {
    pub format: Box<dyn FormatReader>,
    pub track: Track,
    pub codec: AudioCodecId,
}

/// Probes `source` (named `what`) and finds its audio track.
pub fn demux(source: Box<dyn MediaSource>, what: &str) -> Result<Demuxed, SourceError> {
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions { buffer_len: READ_BUFFER });
    let format = symphonia::default::get_probe()
        .probe(&Hint::new(), mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => SourceError::Unsupported {
                what: what.to_owned(),
                format: "a container wasmcalls does not recognise".into(),
            },
            // Running off the end while probing is not recognising the container either:
            // the probe took stray bytes of another container (MP3 frames inside an AVI)
            // for a format it knows, and read on until the file ended.
            SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => SourceError::Unsupported {
                what: what.to_owned(),
                format: "a container wasmcalls does not recognise".into(),
            },
            SymError::IoError(io) => SourceError::Io { what: what.to_owned(), source: io },
            other => SourceError::Damaged { what: what.to_owned(), reason: other.to_string() },
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .or_else(|| format.first_track(TrackType::Audio))
        .cloned()
        .ok_or_else(|| SourceError::NoAudioTrack(what.to_owned()))?;
    let codec = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .map(|a| a.codec)
        .ok_or_else(|| SourceError::NoAudioTrack(what.to_owned()))?;
    Ok(Demuxed { format, track, codec })
}

/// A short name for a codec.
pub fn codec_name(codec: AudioCodecId) -> &'static str {
    match codec {
        c if c == CODEC_ID_OPUS => "opus",
        c if c == CODEC_ID_MP3 => "mp3",
        c if c == CODEC_ID_MP2 => "mp2",
        c if c == CODEC_ID_MP1 => "mp1",
        c if c == CODEC_ID_AAC => "aac",
        c if c == CODEC_ID_FLAC => "flac",
        c if c == CODEC_ID_VORBIS => "vorbis",
        c if c == CODEC_ID_ALAC => "alac",
        _ => "pcm",
    }
}

/// The stereo placement of each channel, from their positions where known.
pub fn layout(channels: Option<&symphonia::core::audio::Channels>) -> Layout {
    use symphonia::core::audio::Channels;
    let Some(ch) = channels else { return Layout::Stereo };
    match ch {
        Channels::Positioned(pos) if ch.count() > 2 => Layout::Surround(
            pos.iter_names()
                .map(|(name, _)| {
                    if name.contains("LFE") {
                        Placement { left: 0.0, right: 0.0 }
                    } else if name.contains("LEFT") {
                        Placement { left: 1.0, right: 0.0 }
                    } else if name.contains("RIGHT") {
                        Placement { left: 0.0, right: 1.0 }
                    } else {
                        Placement { left: 0.707, right: 0.707 }
                    }
                })
                .collect(),
        ),
        other => Layout::of_count(other.count()),
    }
}

/// Opens a file with symphonia, positioned `from` the start.
pub fn open_file(path: &Path, from: Option<Duration>) -> Result<Opened, SourceError> {
    let what = path.display().to_string();
    let io = |e| SourceError::Io { what: what.clone(), source: e };
    let file = super::ahead::AheadFile::new(std::fs::File::open(path).map_err(io)?).map_err(io)?;
    let d = demux(Box::new(file), &what)?;
    if d.codec == CODEC_ID_OPUS {
        return super::opus::open(d, &what, from, false);
    }
    open_demuxed(d, &what, from, false)
}

/// A decoder for a demuxed non-Opus track, started `from` a position.
pub fn open_demuxed(mut d: Demuxed, what: &str, from: Option<Duration>, live: bool) -> Result<Opened, SourceError> {
    let params = d
        .track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| SourceError::NoAudioTrack(what.to_owned()))?;
    let decoder =
        symphonia::default::get_codecs().make_audio_decoder(&params, &AudioDecoderOptions::default()).map_err(
            |_| SourceError::Unsupported { what: what.to_owned(), format: format!("{} audio", codec_name(d.codec)) },
        )?;
    let rate = params.sample_rate.unwrap_or(RATE);
    // A header may say anything: converting from 4 GHz (fuzzing found one) would take
    // the resampler minutes per frame.
    if !(1000..=384_000).contains(&rate) {
        return Err(SourceError::Damaged {
            what: what.to_owned(),
            reason: format!("it declares {rate} Hz, not a rate audio has (1000–384000 Hz)"),
        });
    }
    let layout = layout(params.channels.as_ref());
    let channels = layout.input_channels() as u8;
    let mut drop = 0u64;
    let mut start = 0;
    if let Some(t) = from.filter(|t| !t.is_zero()) {
        let time = Time::try_from_secs_f64(t.as_secs_f64()).ok_or_else(|| SourceError::Seek {
            what: what.to_owned(),
            reason: format!("{} s is not a position", t.as_secs_f64()),
        })?;
        let seeked = d
            .format
            .seek(SeekMode::Accurate, SeekTo::Time { time, track_id: Some(d.track.id) })
            .map_err(|e| SourceError::Seek { what: what.to_owned(), reason: e.to_string() })?;
        // The reader lands at a packet at or before the position; the samples in
        // between are decoded and dropped, so the seek is sample-accurate.
        drop = (seeked.required_ts.get() - seeked.actual_ts.get()).max(0) as u64;
        start = ticks(t);
    }
    let duration = match (d.track.num_frames, live) {
        (Some(n), false) => Some(n * RATE as u64 / rate.max(1) as u64),
        _ => None,
    };
    let info = SourceInfo {
        container: d.format.format_info().short_name.to_owned(),
        codec: codec_name(d.codec).to_owned(),
        sample_rate: rate,
        channels,
        live,
        pass_through: false,
        shared: false,
    };
    let conform = Conform::new(rate, layout)?;
    // Timestamps → samples, to see gaps where damaged packets were skipped.
    let samples_per_tick = d.track.time_base.map(|tb| tb.numer.get() as f64 * rate as f64 / tb.denom.get() as f64);
    let decoded = Decoded {
        samples_per_tick,
        next_pts: None,
        what: what.to_owned(),
        format: d.format,
        decoder,
        track: d.track.id,
        conform,
        samples: Vec::new(),
        drop: drop * channels as u64,
        channels: channels as usize,
        skipped: 0,
        errors_in_a_row: 0,
        ended: false,
    };
    Ok(Opened { input: Input::Pcm(Box::new(decoded)), info, duration, start })
}

struct Decoded {
    samples_per_tick: Option<f64>,
    /// Where the next packet should start, in the track's time base.
    next_pts: Option<i64>,
    what: String,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track: u32,
    conform: Conform,
    samples: Vec<f32>,
    /// Interleaved samples still to drop after a seek.
    drop: u64,
    channels: usize,
    skipped: u64,
    errors_in_a_row: u32,
    ended: bool,
}

impl Decoded {
    /// Decodes the next packet into the converter; false at the end of the source.
    fn decode_next(&mut self) -> Result<bool, SourceError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                // A file cut short: it ends where its data does.
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                Err(SymError::IoError(e)) => return Err(SourceError::Io { what: self.what.clone(), source: e }),
                Err(SymError::ResetRequired) => return Ok(false),
                Err(e) => {
                    self.damaged(&e)?;
                    continue;
                }
            };
            if packet.track_id != self.track {
                continue;
            }
            // Packets the demuxer skipped over (damage it resynced past): counted, and
            // their time kept as silence, so what follows plays at its place.
            let (pts, dur) = (packet.pts.get(), packet.dur.get() as i64);
            if let (Some(expected), Some(per_tick)) = (self.next_pts, self.samples_per_tick)
                && pts > expected
                && dur > 0
            {
                self.skipped += ((pts - expected) / dur).max(1) as u64;
                let silence = ((pts - expected) as f64 * per_tick) as usize * self.channels;
                self.samples.clear();
                self.samples.resize(silence.min(48_000 * 8 * 10), 0.0);
                self.conform.push(&self.samples);
            }
            self.next_pts = Some(pts + dur);
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    self.errors_in_a_row = 0;
                    self.samples.clear();
                    self.samples.resize(buf.samples_interleaved(), 0.0);
                    buf.copy_to_slice_interleaved(&mut self.samples[..]);
                    let skip = (self.drop as usize).min(self.samples.len());
                    self.drop -= skip as u64;
                    self.conform.push(&self.samples[skip..]);
                    return Ok(true);
                }
                Err(SymError::DecodeError(_) | SymError::IoError(_)) => {
                    self.skipped += 1;
                    self.damaged(&SymError::DecodeError("a packet did not decode"))?;
                }
                Err(e) => return Err(SourceError::Damaged { what: self.what.clone(), reason: e.to_string() }),
            }
        }
    }

    /// Counts damage; too much in a row is not damage but an unplayable source.
    fn damaged(&mut self, e: &SymError) -> Result<(), SourceError> {
        self.errors_in_a_row += 1;
        if self.errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
            return Err(SourceError::Damaged { what: self.what.clone(), reason: e.to_string() });
        }
        Ok(())
    }
}

impl PcmInput for Decoded {
    fn channels(&self) -> u8 {
        self.conform.channels()
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, SourceError> {
        loop {
            let n = self.conform.pop_frame(out);
            if n > 0 {
                return Ok(Frame::Audio(n));
            }
            if self.ended {
                return Ok(Frame::End);
            }
            if !self.decode_next()? {
                self.ended = true;
                self.conform.finish();
            }
        }
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
