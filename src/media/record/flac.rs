//! A recording's mix as FLAC, written as it comes: a frame per 4,096 samples, each
//! encoded (flacenc) and written at once, so the file on disk plays up to the last
//! flush even if the host dies — its STREAMINFO then says "length unknown", which
//! decoders take. At the end the header is rewritten with the length and frame sizes.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, MetadataBlockData, Stream, StreamInfo};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

/// Samples per channel in a frame: the reference encoder's default.
const BLOCK: usize = 4096;

pub struct Flac {
    file: BufWriter<File>,
    channels: usize,
    config: Verified<flacenc::config::Encoder>,
    info: StreamInfo,
    /// Interleaved samples of the frame being filled.
    pending: Vec<i32>,
    frames: usize,
    /// Bytes of frames written (the audio, without the header).
    bytes: u64,
}

fn err(e: impl std::fmt::Debug) -> std::io::Error {
    std::io::Error::other(format!("FLAC: {e:?}"))
}

impl Flac {
    /// Creates `path` (never over a file that exists) for 16-bit audio.
    pub fn create(path: &Path, rate: u32, channels: usize) -> std::io::Result<Flac> {
        let config = flacenc::config::Encoder::default().into_verified().map_err(|(_, e)| err(e))?;
        let mut info = StreamInfo::new(rate as usize, channels, 16).map_err(err)?;
        info.set_block_sizes(BLOCK, BLOCK).map_err(err)?;
        info.set_frame_sizes(0, 0).map_err(err)?;
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut flac =
            Flac { file: BufWriter::new(file), channels, config, info, pending: Vec::new(), frames: 0, bytes: 0 };
        flac.write_header()?;
        Ok(flac)
    }

    /// "fLaC", STREAMINFO and a VORBIS_COMMENT naming us (symphonia will not read the
    /// first frame of a stream whose only block is STREAMINFO): the same length each
    /// time, so the end rewrites it in place.
    fn write_header(&mut self) -> std::io::Result<()> {
        let mut stream = Stream::with_stream_info(self.info.clone());
        let vendor = b"wasmcalls";
        let mut comment = (vendor.len() as u32).to_le_bytes().to_vec();
        comment.extend_from_slice(vendor);
        comment.extend_from_slice(&0u32.to_le_bytes());
        stream.add_metadata_block(MetadataBlockData::new_unknown(4, &comment).map_err(err)?);
        let mut sink = ByteSink::new();
        stream.write(&mut sink).map_err(err)?;
        self.file.write_all(sink.as_slice())
    }

    pub fn write_sample(&mut self, x: i16) -> std::io::Result<()> {
        self.pending.push(i32::from(x));
        if self.pending.len() == BLOCK * self.channels {
            self.write_frame()?;
        }
        Ok(())
    }

    /// Encodes and writes what is pending as one frame.
    fn write_frame(&mut self) -> std::io::Result<()> {
        let len = self.pending.len() / self.channels;
        if len == 0 {
            return Ok(());
        }
        let mut buf = FrameBuf::with_size(self.channels, len).map_err(err)?;
        buf.fill_interleaved(&self.pending).map_err(err)?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &buf, self.frames, &self.info).map_err(err)?;
        let mut sink = ByteSink::new();
        frame.write(&mut sink).map_err(err)?;
        self.file.write_all(sink.as_slice())?;
        self.bytes += sink.as_slice().len() as u64;
        // Only the finished file's header carries sizes; on the way it says "unknown".
        self.info.update_frame_info(&frame);
        self.frames += 1;
        self.pending.clear();
        Ok(())
    }

    /// Puts what is written so far on disk (whole frames only).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// Bytes of audio written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the last, short frame and the header with the length and frame sizes:
    /// the bytes of audio written.
    pub fn finalize(mut self) -> std::io::Result<u64> {
        let whole = self.frames;
        self.write_frame()?;
        // A fixed block size, as the reference encoder writes it: the last block may be
        // shorter than the minimum (and symphonia reads frame numbers only then).
        if whole > 0 {
            self.info.set_block_sizes(BLOCK, BLOCK).map_err(err)?;
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.write_header()?;
        self.file.flush()?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_decodes_to_the_same_samples_whole_or_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<i16> = (0..48_000 * 2).map(|i| ((i as f64 * 0.01).sin() * 12_000.0) as i16).collect();
        let path = dir.path().join("mix.flac");
        let mut flac = Flac::create(&path, 48_000, 2).unwrap();
        for &x in &samples {
            flac.write_sample(x).unwrap();
        }
        flac.flush().unwrap();
        // Mid-recording (a host killed now): whole frames play, the length unknown.
        let cut = std::fs::read(&path).unwrap();
        let frames_so_far = (samples.len() / 2) / BLOCK * BLOCK;
        assert_eq!(decode(&cut), samples[..frames_so_far * 2], "a cut file plays its whole frames");
        flac.finalize().unwrap();
        assert_eq!(decode(&std::fs::read(&path).unwrap()), samples, "lossless, to the last sample");
    }

    /// Decodes a FLAC file as the host plays files.
    fn decode(bytes: &[u8]) -> Vec<i16> {
        use crate::media::source::{Frame, Input};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.flac");
        std::fs::write(&path, bytes).unwrap();
        let opened = crate::media::source::decoded::open_file(&path, None).unwrap();
        let Input::Pcm(mut input) = opened.input else { panic!("FLAC decodes to PCM") };
        let (mut out, mut frame) = (Vec::new(), vec![0i16; 1920]);
        loop {
            match input.next_frame(&mut frame).unwrap() {
                Frame::Audio(n) => out.extend_from_slice(&frame[..n * 2]),
                Frame::Starved => {}
                Frame::End => return out,
            }
        }
    }
}
