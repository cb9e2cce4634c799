//! Reading files ahead of the pacer.
//!
//! A file stream is read and decoded on its pacer thread, at its deadlines. A read that
//! finds its pages missing from the page cache waits for the disk, and a real-time
//! thread waiting on the disk sends every call it carries late. The kernel's own
//! read-ahead does not rule that out: pages read ahead but not yet used are the coldest
//! in the cache, and a host that reclaims memory proactively (DAMON on this VM) evicts
//! them first. Measured (`perf record -e sched:sched_switch` on the pacer threads through
//! a 20-minute soak): the only times a pacer slept while it had work were 20 such reads,
//! 1.2–1.7 ms each, in `filemap_read`.
//!
//! So each file a stream reads asks, as its reader moves, for the next [`AHEAD`] bytes
//! to be brought into the page cache by a thread of its own (`posix_fadvise`,
//! `WILLNEED`, which starts the reads): what the disk takes, it takes there, seconds
//! before the pacer gets to those bytes. Asking never blocks the pacer: a request that
//! finds the thread's queue full is dropped, and the kernel's read-ahead is what is
//! left. The pages are the page cache's — shared with every call playing the file, and
//! reclaimable.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, sync_channel};

/// How far ahead of its reader a file is brought into the page cache: 32 s of a
/// 64 kb/s Opus file, 1.5 s of CD-quality WAV — either way far more than a disk takes.
pub const AHEAD: u64 = 256 * 1024;
/// How far the reader moves before the window is topped up again.
pub const STEP: u64 = 64 * 1024;
/// Requests waiting for the thread: one per stream, several times over.
const QUEUED: usize = 4096;

/// A stretch of a file to bring into the page cache.
type Request = (Arc<File>, Range<u64>);

/// A file's window in the page cache, moved along as it is read; the file is read
/// through it.
pub struct Ahead {
    file: Arc<File>,
    /// From where the reader was when it last asked to the end of what it asked for.
    window: Range<u64>,
}

impl Ahead {
    /// Starts `file`'s window at `from`, asking for its first stretch.
    pub fn new(file: Arc<File>, from: u64) -> Ahead {
        let mut ahead = Ahead { file, window: from..from };
        ahead.reading_at(from);
        ahead
    }

    /// The file, to read.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The reader is at `pos`: asks for the stretch past the window once the reader is
    /// within [`AHEAD`] − [`STEP`] of its end, and starts over where it jumped.
    pub fn reading_at(&mut self, pos: u64) {
        if let Some(wanted) = self.next(pos) {
            request(&self.file, wanted);
        }
    }

    /// What to ask for with the reader at `pos`, if anything; the window moves on.
    fn next(&mut self, pos: u64) -> Option<Range<u64>> {
        // A seek: what was asked for before is not what comes next.
        let jumped = pos < self.window.start || pos > self.window.end;
        if !jumped && pos + (AHEAD - STEP) < self.window.end {
            return None;
        }
        let wanted = if jumped { pos } else { self.window.end }..pos + AHEAD;
        self.window = pos..wanted.end;
        Some(wanted)
    }
}

/// A file read through [`Ahead`]: what symphonia and the raw reader take.
pub struct AheadFile {
    pos: u64,
    len: u64,
    ahead: Ahead,
}

impl AheadFile {
    /// Reads `file` ahead from where it is.
    pub fn new(mut file: File) -> io::Result<AheadFile> {
        let pos = file.stream_position()?;
        let len = file.metadata()?.len();
        Ok(AheadFile { ahead: Ahead::new(Arc::new(file), pos), pos, len })
    }
}

impl Read for AheadFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ahead.reading_at(self.pos);
        let n = self.ahead.file().read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for AheadFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.ahead.file().seek(to)?;
        self.ahead.reading_at(self.pos);
        Ok(self.pos)
    }
}

impl symphonia::core::io::MediaSource for AheadFile {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// Hands `range` of `file` to the read-ahead thread, never waiting for it.
fn request(file: &Arc<File>, range: Range<u64>) {
    static THREAD: OnceLock<Option<SyncSender<Request>>> = OnceLock::new();
    let Some(tx) = THREAD.get_or_init(start) else { return };
    // Full: the kernel's read-ahead will have to do for this stretch. Disconnected
    // cannot happen: the thread lives as long as the process.
    let _ = tx.try_send((file.clone(), range));
}

/// The read-ahead thread, at normal priority; `None` where it cannot start (the kernel's
/// read-ahead is then what there is).
fn start() -> Option<SyncSender<Request>> {
    let (tx, rx) = sync_channel::<Request>(QUEUED);
    let spawned = std::thread::Builder::new().name("wasmcalls-ahead".into()).spawn(move || {
        for (file, range) in rx {
            let (Ok(offset), Ok(len)) = (i64::try_from(range.start), i64::try_from(range.end - range.start)) else {
                continue;
            };
            // SAFETY: the descriptor is open for as long as `file` lives; advice changes
            // no memory of ours.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED) };
        }
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!("no read-ahead thread ({e}): files are read as the kernel reads them ahead");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead_at(from: u64) -> (Ahead, Option<Range<u64>>) {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut ahead = Ahead { file, window: from..from };
        let first = ahead.next(from);
        (ahead, first)
    }

    #[test]
    fn a_reader_is_kept_a_window_ahead_a_step_at_a_time() {
        let (mut ahead, first) = ahead_at(0);
        assert_eq!(first, Some(0..AHEAD));
        assert_eq!(ahead.next(STEP - 1), None, "within the window");
        assert_eq!(ahead.next(STEP), Some(AHEAD..STEP + AHEAD), "topped up a step on");
        assert_eq!(ahead.next(STEP + 1), None);
        assert_eq!(ahead.next(2 * STEP), Some(STEP + AHEAD..2 * STEP + AHEAD));
    }

    #[test]
    fn a_seek_starts_the_window_over_where_it_landed() {
        let (mut ahead, _) = ahead_at(0);
        assert_eq!(ahead.next(10 * AHEAD), Some(10 * AHEAD..11 * AHEAD), "forward past the window");
        assert_eq!(ahead.next(AHEAD / 2), Some(AHEAD / 2..AHEAD / 2 + AHEAD), "back before it");
    }

    #[test]
    fn it_reads_and_seeks_as_the_file_does() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut file, &data).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut ahead = AheadFile::new(file).unwrap();
        assert_eq!(symphonia::core::io::MediaSource::byte_len(&ahead), Some(data.len() as u64));
        let mut all = Vec::new();
        ahead.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        assert!(ahead.ahead.window.end >= data.len() as u64, "asked for all of it on the way");
        assert_eq!(ahead.seek(SeekFrom::Start(1000)).unwrap(), 1000);
        let mut some = [0u8; 16];
        ahead.read_exact(&mut some).unwrap();
        assert_eq!(some, data[1000..1016]);
        assert_eq!(ahead.ahead.window, 1000..1000 + AHEAD, "the window moved back with the seek");
    }
}
