//! Ogg Opus files read a page at a time with the `ogg` crate, for passing their packets
//! through. symphonia's Ogg reader keeps a read-back ring of 128 KiB per stream (the
//! largest page plus its largest read, rounded up to a power of two) — measured as
//! most of a passed-through call's memory; this reader holds a 4 KiB read buffer and
//! the page it is reading.
//!
//! The timeline is the stream's granule positions, from the first packet's start at 0.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use ::ogg::reading::{OggReadError, PacketReader};

use super::{SourceError, read_up_to};

/// The read buffer, for page headers and segment tables: bodies (opusenc's and
/// ffmpeg's pages hold up to 1 s, 8 KiB at 64 kb/s) are read past it.
const READ_BUFFER: usize = 4 * 1024;
/// How far from the end the last page is looked for (a page is at most 65,307 bytes).
const TAIL: u64 = 65_536 + 27;
/// A packet's nominal length when its own cannot be read (as the caller counts it).
const NOMINAL: u64 = 960;

/// One read from the stream.
pub enum Next {
    Packet(Box<[u8]>),
    /// Damage the reader stepped over: a page that failed its checksum, or bytes that
    /// are not a page.
    Damaged(String),
    End,
}

/// An Ogg Opus file positioned on its audio packets.
pub struct OggOpus {
    reader: PacketReader<BufReader<File>>,
    serial: u32,
    /// The granule position of the timeline's 0 (not 0 for a stream cut from a live one).
    origin: u64,
    /// Packets read ahead (the page read to find where a seek landed).
    queued: VecDeque<Box<[u8]>>,
}

/// What an opened file says of itself.
pub struct Opened {
    pub file: OggOpus,
    pub channels: usize,
    /// Audible length in 48 kHz ticks (without the encoder's pre-skip), if the last
    /// page was found.
    pub duration: Option<u64>,
}

/// Opens `path` if it is a mono or stereo Ogg Opus file (the `OpusHead` on the first
/// page says so); `None` for anything else, which symphonia opens (or names).
pub fn open(path: &Path, what: &str) -> Result<Option<Opened>, SourceError> {
    let io = |e: io::Error| SourceError::Io { what: what.to_owned(), source: e };
    let mut file = File::open(path).map_err(io)?;
    let mut first = [0u8; 27 + 255 + 19];
    let n = read_up_to(&mut file, &mut first).map_err(io)?;
    let Some((serial, OpusHead { channels, pre_skip, .. })) = head(&first[..n]) else { return Ok(None) };
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    let last = last_granule(&mut file, len, serial).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = PacketReader::new(BufReader::with_capacity(READ_BUFFER, file));
    // OpusHead, then OpusTags (which may span pages): the audio starts on a fresh page.
    let mut headers = 0;
    while headers < 2 {
        match reader.read_packet() {
            Ok(Some(p)) if p.stream_serial() == serial => headers += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(SourceError::Damaged { what: what.to_owned(), reason: format!("Ogg headers: {e}") }),
        }
    }
    let mut file = OggOpus { reader, serial, origin: 0, queued: VecDeque::new() };
    // The first audio page ends at its granule position: its packets start that much before.
    if let Some((end, samples)) = file.read_page().map_err(io)? {
        file.origin = end.saturating_sub(samples);
    }
    let duration = last.map(|g| g.saturating_sub(file.origin).saturating_sub(pre_skip));
    Ok(Some(Opened { file, channels, duration }))
}

impl OggOpus {
    /// The next packet of the stream.
    pub fn next(&mut self) -> io::Result<Next> {
        if let Some(p) = self.queued.pop_front() {
            return Ok(Next::Packet(p));
        }
        loop {
            match self.reader.read_packet() {
                Ok(Some(p)) if p.stream_serial() == self.serial => return Ok(Next::Packet(p.data.into_boxed_slice())),
                Ok(Some(_)) => {}
                Ok(None) => return Ok(Next::End),
                Err(OggReadError::ReadError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::End),
                Err(OggReadError::ReadError(e)) => return Err(e),
                // The page was read whole and is skipped; the next one is read next.
                Err(e @ OggReadError::HashMismatch(..)) => return Ok(Next::Damaged(e.to_string())),
                Err(e) => {
                    let reason = format!("{e}");
                    return Ok(if self.resync()? { Next::Damaged(reason) } else { Next::End });
                }
            }
        }
    }

    /// Positions the stream on the page holding `ts` (or the end, past it), and says
    /// where the first packet read next starts.
    pub fn seek(&mut self, ts: u64) -> Result<u64, String> {
        self.queued.clear();
        let found = self.reader.seek_absgp(Some(self.serial), ts + self.origin).map_err(|e| e.to_string())?;
        if !found {
            self.reader.seek_bytes(SeekFrom::End(0)).map_err(|e| e.to_string())?;
            return Ok(ts);
        }
        match self.read_page().map_err(|e| e.to_string())? {
            Some((end, samples)) => Ok(end.saturating_sub(samples).saturating_sub(self.origin)),
            None => Ok(ts),
        }
    }

    /// Queues the packets that end on the next page of the stream; its granule position
    /// and how many samples they hold (`None` at the end).
    fn read_page(&mut self) -> io::Result<Option<(u64, u64)>> {
        let mut samples = 0;
        loop {
            let p = match self.reader.read_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(OggReadError::ReadError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(OggReadError::ReadError(e)) => return Err(e),
                // A damaged page is passed over: what was queued stands, and reading
                // goes on after it.
                Err(_) => return Ok(None),
            };
            if p.stream_serial() != self.serial {
                continue;
            }
            samples += opus::packet::get_nb_samples(&p.data, 48_000).map_or(NOMINAL, |n| n as u64);
            let (last, granule) = (p.last_in_page(), p.absgp_page());
            self.queued.push_back(p.data.into_boxed_slice());
            if last {
                return Ok(Some((granule, samples)));
            }
        }
    }

    /// After bytes that are not a page: on to the next "OggS". False at the end of the
    /// file.
    fn resync(&mut self) -> io::Result<bool> {
        let r = self.reader.get_mut();
        // The `ogg` crate gives up after searching 150 KiB, or after reading a page
        // header it refuses (27 bytes): look again from just past that header's start.
        let mut pos = r.stream_position()?.saturating_sub(26);
        r.seek(SeekFrom::Start(pos))?;
        let (mut window, mut byte) = (0u32, [0u8; 1]);
        loop {
            if r.read(&mut byte)? == 0 {
                return Ok(false);
            }
            pos += 1;
            window = window << 8 | byte[0] as u32;
            if window == u32::from_be_bytes(*b"OggS") {
                self.reader.seek_bytes(SeekFrom::Start(pos - 4))?;
                return Ok(true);
            }
        }
    }
}

/// What an `OpusHead` packet (RFC 7845 §5.1) says that matters here.
pub(super) struct OpusHead {
    pub channels: usize,
    /// Whether they are plain mono or stereo (mapping family 0), the only kind a group
    /// call carries.
    pub playable: bool,
    /// Samples the encoder put before the audio.
    pub pre_skip: u64,
}

/// Reads an `OpusHead` packet: from an Ogg page here, from a container's codec
/// data for symphonia's demuxers.
pub(super) fn opus_head(h: &[u8]) -> Option<OpusHead> {
    if h.len() < 19 || &h[..8] != b"OpusHead" {
        return None;
    }
    let channels = h[9] as usize;
    let playable = h[18] == 0 && (1..=2).contains(&channels);
    Some(OpusHead { channels, playable, pre_skip: u16::from_le_bytes([h[10], h[11]]) as u64 })
}

/// Whether `first_page` (a file's first bytes) holds a playable `OpusHead`: what
/// [`open`] reads.
pub(super) fn is_playable_opus(first_page: &[u8]) -> bool {
    head(first_page).is_some()
}

/// The serial and `OpusHead` of a first page holding a playable one.
fn head(b: &[u8]) -> Option<(u32, OpusHead)> {
    if b.len() < 27 || &b[..4] != b"OggS" {
        return None;
    }
    let serial = u32::from_le_bytes(b[14..18].try_into().ok()?);
    let h = opus_head(b.get(27 + b[26] as usize..)?)?;
    h.playable.then_some((serial, h))
}

/// The granule position of the stream's last page, from a scan of the file's tail.
/// Read through a buffer on the stack: a 64 KiB one on the heap, freed at once, left
/// a hole in the heap for every stream opened that smaller allocations then split.
fn last_granule(file: &mut File, len: u64, serial: u32) -> io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
    let (mut buf, mut kept, mut last) = ([0u8; 4096], 0, None);
    loop {
        let n = file.read(&mut buf[kept..])?;
        if n == 0 {
            return Ok(last);
        }
        let end = kept + n;
        let mut i = 0;
        while i + 27 <= end {
            let h = &buf[i..i + 27];
            if &h[..4] == b"OggS" && h[4] == 0 && h[14..18] == serial.to_le_bytes() {
                let granule = u64::from_le_bytes(h[6..14].try_into().expect("8 bytes"));
                // -1: no packet ends on this page.
                if granule != u64::MAX {
                    last = Some(granule);
                }
            }
            i += 1;
        }
        // A header cut by the buffer's end is looked at again with what follows it.
        buf.copy_within(i..end, 0);
        kept = end - i;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::{Next, OggOpus, open};

    /// `secs` of a stereo sine as Ogg Opus in `dir`, in pages of 100 ms (many of them).
    pub(in crate::media::source) fn file(dir: &std::path::Path, secs: &str) -> std::path::PathBuf {
        let run = |args: &[&str]| {
            let ok = std::process::Command::new(args[0]).args(&args[1..]).current_dir(dir).status();
            assert!(ok.unwrap().success(), "{args:?} (bash .ci/setup installs sox and opus-tools)");
        };
        run(&["sox", "-n", "-r", "48000", "-c", "2", "-b", "16", "c.wav", "synth", secs, "sine", "440"]);
        run(&["opusenc", "--quiet", "--max-delay", "100", "c.wav", "c.opus"]);
        dir.join("c.opus")
    }

    fn all(f: &mut OggOpus) -> (Vec<Box<[u8]>>, usize) {
        let (mut packets, mut damaged) = (Vec::new(), 0);
        loop {
            match f.next().unwrap() {
                Next::Packet(p) => packets.push(p),
                Next::Damaged(_) => damaged += 1,
                Next::End => return (packets, damaged),
            }
        }
    }

    #[test]
    fn reads_every_packet_knows_the_length_and_seeks_to_the_page_holding_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "3");
        let mut o = open(&path, "c.opus").unwrap().expect("an Ogg Opus file");
        assert_eq!(o.channels, 2);
        let secs = o.duration.unwrap() as f64 / 48_000.0;
        assert!((2.99..3.01).contains(&secs), "{secs} s");
        let (packets, damaged) = all(&mut o.file);
        // 3 s and the encoder's 312 samples of pre-skip, in 20 ms packets.
        assert_eq!((packets.len(), damaged), (151, 0));

        let mut o = open(&path, "c.opus").unwrap().unwrap();
        let landed = o.file.seek(96_000).unwrap();
        assert!(landed <= 96_000 && landed > 96_000 - 48_000 / 10 * 2, "landed at {landed}");
        assert_eq!(landed % 960, 0, "on a packet's start");
        let (rest, _) = all(&mut o.file);
        assert_eq!(rest[..], packets[landed as usize / 960..], "the packets from there on");
        // Past the end: nothing more.
        assert!(o.file.seek(10 * 48_000).is_ok());
        assert!(matches!(o.file.next().unwrap(), Next::End));
    }

    #[test]
    fn a_damaged_page_and_bytes_that_are_no_page_are_stepped_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "3");
        let whole = std::fs::read(&path).unwrap();
        let pages: Vec<usize> = whole.windows(4).enumerate().filter(|(_, w)| w == b"OggS").map(|(i, _)| i).collect();
        assert!(pages.len() > 20, "{} pages", pages.len());
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            all(&mut open(&path, "c.opus").unwrap().unwrap().file)
        };
        // A flipped byte in one page's body fails its checksum: that page is counted
        // and skipped, as is one that lost its capture pattern.
        let mut bad = whole.clone();
        bad[pages[8] + 40] ^= 0xff;
        bad[pages[14]..pages[14] + 4].copy_from_slice(b"XXXX");
        let (packets, damaged) = read(&bad);
        assert_eq!(damaged, 1);
        assert!((130..151).contains(&packets.len()), "{} packets of 151 around two lost pages", packets.len());
        // More bytes that are no page than the `ogg` crate searches (150 KiB): the
        // reader finds the next page itself.
        let mut long = whole[..pages[14]].to_vec();
        long.extend(std::iter::repeat_n(0x5a, 200 << 10));
        long.extend(&whole[pages[14]..]);
        let (packets, damaged) = read(&long);
        assert_eq!((packets.len(), damaged), (151, 1), "every packet, past one stretch of junk");
    }

    #[test]
    fn what_is_not_ogg_opus_is_left_to_symphonia() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ogg");
        std::fs::write(&p, b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\x01\x1e\x01vorbis").unwrap();
        assert!(open(&p, "x.ogg").unwrap().is_none());
        std::fs::write(&p, b"RIFF").unwrap();
        assert!(open(&p, "x.ogg").unwrap().is_none());
    }
}
