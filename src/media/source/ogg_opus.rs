//! Ogg Opus files read a page at a time, for passing their packets through.
//!
//! A page is checked (its checksum over header and body) when the reader reaches it,
//! then only its lacing values are kept: each packet is read from the file when it
//! is wanted. A call passing a file through so holds some 300 bytes of it, where
//! holding the page (opusenc's and ffmpeg's hold up to 1 s, 8 KiB at 64 kb/s, in the
//! `ogg` crate's buffers) was a tenth of a call's memory at 1,000 calls; the bytes
//! themselves stay in the system's page cache, shared by every call playing the file.
//! (symphonia's Ogg reader keeps a 128 KiB read-back ring per stream.)
//!
//! The timeline is the stream's granule positions, from the first packet's start at 0.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ::ogg::reading::PacketReader;

use super::ahead::Ahead;
use super::{SourceError, read_up_to};

/// The read buffer of a seek's bisection (the `ogg` crate's, dropped after it).
const READ_BUFFER: usize = 4 * 1024;
/// How far from the end the last page is looked for (a page is at most 65,307 bytes).
const TAIL: u64 = 65_536 + 27;
/// A packet's nominal length when its own cannot be read (as the caller counts it).
const NOMINAL: u64 = 960;
/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, no initial or final XOR.
const OGG_CRC: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: 0,
    refin: false,
    refout: false,
    xorout: 0,
    check: 0x89a1_897f,
    residue: 0,
};
static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&OGG_CRC);

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
    /// The file, read through a window that keeps the pages ahead of `next_page` in the
    /// page cache.
    ahead: Ahead,
    serial: u32,
    /// The granule position of the timeline's 0 (not 0 for a stream cut from a live one).
    origin: u64,
    /// Where the next page starts.
    next_page: u64,
    page: Page,
    /// A packet goes on into the next page.
    open_packet: bool,
    /// What of that packet was read (nothing while headers are skipped).
    partial: Vec<u8>,
    /// Packets read ahead (the page read to find where a seek landed).
    queued: VecDeque<Box<[u8]>>,
}

/// The checked page being read: its lacing values and where its next packet is.
struct Page {
    granule: u64,
    lacing: [u8; 255],
    segments: usize,
    /// The next lacing value, and the file offset of its bytes.
    seg: usize,
    at: u64,
}

impl Page {
    const NONE: Page = Page { granule: 0, lacing: [0; 255], segments: 0, seg: 0, at: 0 };

    /// The packet (or packet part) at the next lacing value, moved past: its file
    /// offset, its length, and whether it ends on this page.
    fn take(&mut self) -> (u64, usize, bool) {
        let (at, mut len, mut ended) = (self.at, 0, false);
        while self.seg < self.segments && !ended {
            len += self.lacing[self.seg] as usize;
            ended = self.lacing[self.seg] < 255;
            self.seg += 1;
        }
        self.at += len as u64;
        (at, len, ended)
    }

    /// Whether every lacing value was taken.
    fn done(&self) -> bool {
        self.seg == self.segments
    }
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
    let last = last_granule(&file, len, serial).map_err(io)?;
    let mut file = OggOpus {
        ahead: Ahead::new(Arc::new(file), 0),
        serial,
        origin: 0,
        next_page: 0,
        page: Page::NONE,
        open_packet: false,
        partial: Vec::new(),
        queued: VecDeque::new(),
    };
    // OpusHead, then OpusTags (which may span pages, and hold pictures: not kept): the
    // audio starts on a fresh page.
    for _ in 0..2 {
        match file.packet(false).map_err(io)? {
            Next::Packet(_) => {}
            Next::Damaged(e) => {
                return Err(SourceError::Damaged { what: what.to_owned(), reason: format!("Ogg headers: {e}") });
            }
            Next::End => break,
        }
    }
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
            if self.queued.is_empty() {
                // A page's worth of slots would otherwise stay for the whole call.
                self.queued = VecDeque::new();
            }
            return Ok(Next::Packet(p));
        }
        self.packet(true)
    }

    /// Positions the stream on the page holding `ts` (or the end, past it), and says
    /// where the first packet read next starts.
    pub fn seek(&mut self, ts: u64) -> Result<u64, String> {
        self.queued.clear();
        self.drop_packet();
        self.page = Page::NONE;
        // The `ogg` crate's bisection finds the page; reading goes on from there here.
        let mut reader = PacketReader::new(BufReader::with_capacity(READ_BUFFER, self.ahead.file()));
        let found = reader.seek_absgp(Some(self.serial), ts + self.origin).map_err(|e| e.to_string())?;
        self.next_page = match found {
            true => reader.into_inner().stream_position(),
            false => self.ahead.file().metadata().map(|m| m.len()),
        }
        .map_err(|e| e.to_string())?;
        if !found {
            return Ok(ts);
        }
        match self.read_page().map_err(|e| e.to_string())? {
            Some((end, samples)) => Ok(end.saturating_sub(samples).saturating_sub(self.origin)),
            None => Ok(ts),
        }
    }

    /// The next packet, its bytes read if `keep` (empty otherwise).
    fn packet(&mut self, keep: bool) -> io::Result<Next> {
        loop {
            if self.page.done() {
                if let Some(stop) = self.load_page()? {
                    return Ok(stop);
                }
                continue;
            }
            let (at, len, ended) = self.page.take();
            let whole = !self.open_packet && ended;
            self.open_packet = !ended;
            if !keep {
                if ended {
                    return Ok(Next::Packet(Box::default()));
                }
                continue;
            }
            // A packet on one page (nearly all) is read straight into its own buffer.
            let read = if whole {
                let mut p = vec![0; len].into_boxed_slice();
                self.ahead.file().read_exact_at(&mut p, at).map(|()| Some(p))
            } else {
                let from = self.partial.len();
                self.partial.resize(from + len, 0);
                let read = self.ahead.file().read_exact_at(&mut self.partial[from..], at);
                read.map(|()| ended.then(|| std::mem::take(&mut self.partial).into_boxed_slice()))
            };
            match read {
                Ok(Some(p)) => return Ok(Next::Packet(p)),
                Ok(None) => {}
                // Cut short since its page was checked: the file ends here.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::End),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves to the stream's next page that passes its checksum; what was met instead
    /// (damage, or the end), if anything.
    fn load_page(&mut self) -> io::Result<Option<Next>> {
        loop {
            let at = self.next_page;
            self.ahead.reading_at(at);
            let mut h = [0u8; 27 + 255];
            let n = read_up_to_at(self.ahead.file(), &mut h, at)?;
            if n < 27 {
                // A header cut short is the file's end too.
                return Ok(Some(Next::End));
            }
            if &h[..4] != b"OggS" || h[4] != 0 {
                self.drop_packet();
                return Ok(Some(match self.resync(at + 1)? {
                    Some(page) => {
                        self.next_page = page;
                        Next::Damaged(format!("bytes {at}..{page} are not an Ogg page"))
                    }
                    None => Next::End,
                }));
            }
            let segments = h[26] as usize;
            if n < 27 + segments {
                return Ok(Some(Next::End));
            }
            let header = &h[..27 + segments];
            let body: usize = header[27..].iter().map(|&l| l as usize).sum();
            self.next_page = at + (header.len() + body) as u64;
            if header[14..18] != self.serial.to_le_bytes() {
                continue;
            }
            match self.checksum_matches(header, at + header.len() as u64, body)? {
                None => return Ok(Some(Next::End)),
                Some(false) => {
                    self.drop_packet();
                    return Ok(Some(Next::Damaged(format!("the Ogg page at byte {at} fails its checksum"))));
                }
                Some(true) => {}
            }
            let mut lacing = [0; 255];
            lacing[..segments].copy_from_slice(&header[27..]);
            let granule = u64::from_le_bytes(header[6..14].try_into().expect("8 bytes"));
            self.page = Page { granule, lacing, segments, seg: 0, at: at + header.len() as u64 };
            let continued = header[5] & 1 != 0;
            if continued && !self.open_packet {
                // The rest of a packet whose start was not read (after a seek or damage),
                // on through the next page if it fills this one.
                self.page.take();
            } else if !continued && self.open_packet {
                // A packet that was to go on did not: what of it was read is dropped.
                self.drop_packet();
            }
            return Ok(None);
        }
    }

    /// Whether a page's stored checksum is that of its header and body (read in pieces
    /// on the stack, not kept); `None` if the file ends inside the body.
    fn checksum_matches(&self, header: &[u8], body_at: u64, body: usize) -> io::Result<Option<bool>> {
        let mut digest = CRC.digest();
        digest.update(&header[..22]);
        digest.update(&[0; 4]);
        digest.update(&header[26..]);
        let (mut buf, mut at, mut left) = ([0u8; 8192], body_at, body);
        while left > 0 {
            let n = left.min(buf.len());
            match self.ahead.file().read_exact_at(&mut buf[..n], at) {
                Ok(()) => digest.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            (at, left) = (at + n as u64, left - n);
        }
        Ok(Some(digest.finalize() == u32::from_le_bytes(header[22..26].try_into().expect("4 bytes"))))
    }

    /// Where the next "OggS" at or after `from` is; `None` at the end of the file.
    fn resync(&self, mut from: u64) -> io::Result<Option<u64>> {
        let mut buf = [0u8; 4096];
        loop {
            let n = read_up_to_at(self.ahead.file(), &mut buf, from)?;
            if let Some(i) = buf[..n].windows(4).position(|w| w == b"OggS") {
                return Ok(Some(from + i as u64));
            }
            if n < buf.len() {
                return Ok(None);
            }
            // A pattern cut by the buffer's end is looked for again with what follows.
            from += (n - 3) as u64;
        }
    }

    fn drop_packet(&mut self) {
        self.open_packet = false;
        self.partial = Vec::new();
    }

    /// Queues the packets that end on the next page of the stream; its granule position
    /// and how many samples they hold (`None` at the end, or at damage).
    fn read_page(&mut self) -> io::Result<Option<(u64, u64)>> {
        let mut samples = 0;
        loop {
            let Next::Packet(p) = self.packet(true)? else { return Ok(None) };
            samples += opus::packet::get_nb_samples(&p, 48_000).map_or(NOMINAL, |n| n as u64);
            self.queued.push_back(p);
            if self.page.done() && !self.open_packet {
                return Ok(Some((self.page.granule, samples)));
            }
        }
    }
}

/// Reads from `at` until `buf` is full or the file ends; how many bytes were read.
fn read_up_to_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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
fn last_granule(file: &File, len: u64, serial: u32) -> io::Result<Option<u64>> {
    let (mut buf, mut at, mut last) = ([0u8; 4096], len.saturating_sub(TAIL), None);
    loop {
        let n = read_up_to_at(file, &mut buf, at)?;
        let mut i = 0;
        while i + 27 <= n {
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
        if n < buf.len() {
            return Ok(last);
        }
        // A header cut by the buffer's end is looked at again with what follows it.
        at += i as u64;
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
        assert_eq!(damaged, 2);
        assert!((130..151).contains(&packets.len()), "{} packets of 151 around two lost pages", packets.len());
        // Bytes that are no page, more than the `ogg` crate would search (150 KiB):
        // the next page is found.
        let mut long = whole[..pages[14]].to_vec();
        long.extend(std::iter::repeat_n(0x5a, 200 << 10));
        long.extend(&whole[pages[14]..]);
        let (packets, damaged) = read(&long);
        assert_eq!((packets.len(), damaged), (151, 1), "every packet, past one stretch of junk");
    }

    /// An Ogg Opus file of `audio` packets (each 20 ms by its TOC byte), four to a
    /// page, after headers whose tags hold a 100 KB picture (two pages' worth).
    fn written(dir: &std::path::Path, audio: &[Vec<u8>]) -> std::path::PathBuf {
        use ::ogg::writing::{PacketWriteEndInfo as End, PacketWriter};
        let mut bytes = Vec::new();
        let mut w = PacketWriter::new(&mut bytes);
        let head = [&b"OpusHead\x01\x02\x38\x01"[..], &48_000u32.to_le_bytes(), &[0, 0, 0]].concat();
        w.write_packet(head, 7, End::EndPage, 0).unwrap();
        w.write_packet([&b"OpusTags"[..], &[7; 100_000]].concat(), 7, End::EndPage, 0).unwrap();
        for (i, p) in audio.iter().enumerate() {
            let end = if i + 1 == audio.len() {
                End::EndStream
            } else if i % 4 == 3 {
                End::EndPage
            } else {
                End::NormalPacket
            };
            w.write_packet(p.clone(), 7, end, 960 * (i as u64 + 1)).unwrap();
        }
        let path = dir.join("w.opus");
        std::fs::write(&path, &bytes).unwrap();
        path
    }

    #[test]
    fn a_packet_on_several_pages_comes_back_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        // Stereo CELT 20 ms packets (TOC 0xfc); packet 9 fills the end of page 5, all
        // of page 6 and the start of page 7.
        let audio: Vec<Vec<u8>> =
            (0..20u8).map(|i| [vec![0xfc], vec![i; if i == 9 { 150_000 } else { 200 }]].concat()).collect();
        let path = written(dir.path(), &audio);
        let mut o = open(&path, "w.opus").unwrap().expect("an Ogg Opus file");
        assert_eq!(o.duration, Some(20 * 960 - 312));
        let (packets, damaged) = all(&mut o.file);
        assert_eq!(damaged, 0);
        assert!(packets.iter().map(|p| &p[..]).eq(audio.iter().map(|p| &p[..])), "every packet, whole");

        // Packet 12 starts where the page ending the long packet (and 10 and 11) ends:
        // the seek lands on that page, passing over the long packet's last part.
        let mut o = open(&path, "w.opus").unwrap().unwrap();
        assert_eq!(o.file.seek(12 * 960).unwrap(), 10 * 960);
        assert!(all(&mut o.file).0.iter().map(|p| &p[..]).eq(audio[10..].iter().map(|p| &p[..])));

        // Damage in one of the long packet's pages: it is lost, not sent in part, and
        // what follows it plays. In its first page, packet 8 goes with it.
        let whole = std::fs::read(&path).unwrap();
        let pages: Vec<usize> = whole.windows(4).enumerate().filter(|(_, w)| w == b"OggS").map(|(i, _)| i).collect();
        for (page, lost) in [(6, 9..10), (5, 8..10)] {
            let mut bad = whole.clone();
            bad[pages[page] + 1000] ^= 0xff;
            std::fs::write(&path, &bad).unwrap();
            let (packets, damaged) = all(&mut open(&path, "w.opus").unwrap().unwrap().file);
            assert_eq!(damaged, 1);
            let kept = audio.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, p)| &p[..]);
            assert!(packets.iter().map(|p| &p[..]).eq(kept), "page {page} damaged: no packet in part");
        }
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
