//! One participant's stream written as it came: an Ogg Opus file (RFC 7845) of the
//! very packets they sent — no decode, no encode. Time the speaker did not send (a
//! pause, a lost packet) becomes Opus silence frames, so the file keeps the call's
//! timeline. A page ends, and is handed to the OS, every second: a host killed
//! mid-recording leaves a file that plays up to its last second.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// A 20 ms Opus frame of silence (CELT, fullband, mono — decoders upmix it).
const SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
/// libopus's encoder delay at 48 kHz, which decoders skip at the start.
const PRE_SKIP: u16 = 312;
/// Packets per page: one second of 20 ms packets.
const PAGE_PACKETS: u32 = 50;
/// A gap in time longer than this is not filled (the sender restarted its clock).
const MAX_GAP: u64 = 48_000 * 60;

/// An Ogg Opus file being written.
pub struct OggOpus {
    path: PathBuf,
    out: PacketWriter<'static, BufWriter<File>>,
    serial: u32,
    /// Samples written so far (the granule position, less the pre-skip).
    samples: u64,
    /// The RTP timestamp where the next packet is expected.
    next_ts: Option<u32>,
    in_page: u32,
    bytes: u64,
}

impl OggOpus {
    /// Creates `path` (which must not exist yet) and writes the Opus headers.
    pub fn create(path: &Path, vendor: &str) -> std::io::Result<OggOpus> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let serial = rand::random();
        let mut out = PacketWriter::new(BufWriter::new(file));
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(2); // channels: Telegram negotiates opus/48000/2
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family: mono or stereo
        out.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&0u32.to_le_bytes());
        out.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        out.inner_mut().flush()?;
        Ok(OggOpus { path: path.to_owned(), out, serial, samples: 0, next_ts: None, in_page: 0, bytes: 0 })
    }

    /// Writes one packet sent at RTP time `ts`, after silence for any time skipped.
    pub fn write(&mut self, ts: u32, payload: &[u8]) -> std::io::Result<()> {
        let Ok(n) = opus::packet::get_nb_samples(payload, 48_000) else {
            return Ok(()); // not Opus: nothing a player could play
        };
        if let Some(expected) = self.next_ts {
            let gap = u64::from(ts.wrapping_sub(expected));
            if gap < MAX_GAP {
                for _ in 0..gap / 960 {
                    self.packet(&SILENCE, 960)?;
                }
            }
        }
        self.next_ts = Some(ts.wrapping_add(n as u32));
        self.packet(payload, n as u64)
    }

    fn packet(&mut self, data: &[u8], samples: u64) -> std::io::Result<()> {
        self.samples += samples;
        self.in_page += 1;
        self.bytes += data.len() as u64;
        let granule = self.samples + u64::from(PRE_SKIP);
        let end = if self.in_page >= PAGE_PACKETS {
            self.in_page = 0;
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        let flush = matches!(end, PacketWriteEndInfo::EndPage);
        self.out.write_packet(data.to_vec(), self.serial, end, granule)?;
        if flush {
            self.out.inner_mut().flush()?;
        }
        Ok(())
    }

    /// Audio written, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.samples / 48
    }

    /// Payload bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends the stream (a last page marked end-of-stream, closed by 20 ms of silence:
    /// an Opus packet is never empty) and closes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.samples += 960;
        let granule = self.samples + u64::from(PRE_SKIP);
        self.out.write_packet(SILENCE.to_vec(), self.serial, PacketWriteEndInfo::EndStream, granule)?;
        self.out.inner_mut().flush()
    }
}
