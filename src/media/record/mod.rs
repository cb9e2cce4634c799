//! Recording a call, off the pacer thread: the pacer hands every packet it hears to a
//! recorder thread through a bounded queue, and the thread puts each stream through a
//! jitter buffer and writes it down — each participant to an Ogg Opus file of their
//! own packets ([`ogg`]), and/or the call's mix ([`mix`]) to a WAV or FLAC ([`flac`])
//! file. Files are
//! flushed every second, so a host killed mid-recording leaves them playable to the
//! last second. A recording ends when it is stopped, its call goes, it reaches a cap,
//! or a file cannot be written — and always says so, with what it wrote.

pub mod flac;
pub mod mix;
pub mod ogg;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde::Serialize;

use self::mix::Mix;
use self::ogg::OggOpus;
use crate::media::jitter::{JITTER_HOLD, Jitter};
use crate::transport::tap::Heard;

/// Packets queued for the recorder: ~10 s of five speakers. A recorder this far behind
/// (a stalled disk) loses packets, and its summary counts them.
const QUEUE: usize = 2500;
/// How often the recorder wakes with nothing heard, to write out the mix.
const TICK: Duration = Duration::from_millis(100);
/// The mix is written this far behind real time, so a packet held by its jitter buffer
/// still lands before its stretch is written.
const MIX_DELAY: Duration = Duration::from_millis(300);

/// Names a participant's file by their source (the host knows who is behind it).
pub type Namer = Box<dyn Fn(u32) -> String + Send>;

/// What to record, and how much at most.
pub struct RecordPlan {
    /// Each participant to `<folder>/<name(ssrc)>.ogg`.
    pub each: Option<(PathBuf, Namer)>,
    /// The mix to this file: FLAC if it is named `.flac`, WAV otherwise.
    pub mix: Option<PathBuf>,
    /// Stop after this long…
    pub max_duration: Duration,
    /// …or once the files hold this many bytes.
    pub max_bytes: u64,
}

/// One file a recording wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedFile {
    pub path: PathBuf,
    /// The participant's source, for a participant's file; none for the mix.
    pub ssrc: Option<u32>,
    /// Audio in it, in milliseconds.
    pub duration_ms: u64,
    pub bytes: u64,
}

/// How a recording went, when it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    pub files: Vec<RecordedFile>,
    /// Packets lost on the way (a full queue, or the network).
    pub dropped: u64,
    pub lost: u64,
    /// Why it ended on its own (a cap, a file that could not be written); none when
    /// it was stopped or its call ended.
    pub error: Option<String>,
}

/// The pacer's end of a recorder or bridge thread: hands packets over without ever
/// waiting.
pub struct RecordTap {
    tx: SyncSender<Heard>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RecordTap {
    /// A tap and the thread's end of it.
    pub fn new() -> (RecordTap, Receiver<Heard>) {
        let (tx, rx) = sync_channel(QUEUE);
        (RecordTap { tx, dropped: Default::default() }, rx)
    }

    /// Queues one packet heard; false once the recorder has ended (drop the tap).
    pub fn offer(&self, heard: Heard) -> bool {
        match self.tx.try_send(heard) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Starts recording: creates the mix file now (so a bad path fails at once), then runs
/// the recorder thread until the tap is dropped, a cap is reached or a write fails;
/// `ended` gets the summary.
pub fn start(plan: RecordPlan, ended: impl FnOnce(RecordSummary) + Send + 'static) -> Result<RecordTap, String> {
    let mix_file = match &plan.mix {
        Some(path) => {
            Some((path.clone(), MixFile::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?))
        }
        None => None,
    };
    let (tap, rx) = RecordTap::new();
    let dropped = tap.dropped.clone();
    let recorder = Recorder {
        plan,
        started: Instant::now(),
        jitters: HashMap::new(),
        files: HashMap::new(),
        mix: mix_file.map(|(path, w)| (path, w, Mix::new(Instant::now()))),
        error: None,
    };
    std::thread::Builder::new()
        .name("wasmcalls-record".into())
        .spawn(move || {
            super::pacer::background_priority();
            let mut summary = recorder.run(rx);
            summary.dropped = dropped.load(std::sync::atomic::Ordering::Relaxed);
            ended(summary);
        })
        .map_err(|e| format!("cannot start a recorder thread: {e}"))?;
    Ok(tap)
}

/// The mix's file: 48 kHz 16-bit stereo, as WAV or FLAC.
enum MixFile {
    Wav(hound::WavWriter<BufWriter<File>>),
    Flac(flac::Flac),
}

impl MixFile {
    /// Creates `path` (never over a file that exists), FLAC if it is named `.flac`.
    fn create(path: &std::path::Path) -> std::io::Result<MixFile> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("flac")) {
            return flac::Flac::create(path, 48_000, mix::CHANNELS).map(MixFile::Flac);
        }
        let spec = hound::WavSpec {
            channels: mix::CHANNELS as u16,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = File::options().write(true).create_new(true).open(path)?;
        hound::WavWriter::new(BufWriter::new(file), spec).map(MixFile::Wav).map_err(std::io::Error::other)
    }

    fn write_sample(&mut self, x: i16) -> std::io::Result<()> {
        match self {
            MixFile::Wav(w) => w.write_sample(x).map_err(std::io::Error::other),
            MixFile::Flac(f) => f.write_sample(x),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            MixFile::Wav(w) => w.flush().map_err(std::io::Error::other),
            MixFile::Flac(f) => f.flush(),
        }
    }

    /// Bytes of audio written, given the samples per channel taken.
    fn bytes(&self, taken: u64) -> u64 {
        match self {
            MixFile::Wav(_) => taken * 2 * mix::CHANNELS as u64,
            MixFile::Flac(f) => f.bytes(),
        }
    }

    /// Closes the file: the bytes of audio in it.
    fn finalize(self, taken: u64) -> std::io::Result<u64> {
        let bytes = self.bytes(taken);
        match self {
            MixFile::Wav(w) => w.finalize().map(|()| bytes).map_err(std::io::Error::other),
            MixFile::Flac(f) => f.finalize(),
        }
    }
}

struct Recorder {
    plan: RecordPlan,
    started: Instant,
    jitters: HashMap<u32, Jitter<Heard>>,
    files: HashMap<u32, OggOpus>,
    mix: Option<(PathBuf, MixFile, Mix)>,
    error: Option<String>,
}

impl Recorder {
    fn run(mut self, rx: Receiver<Heard>) -> RecordSummary {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(h) => {
                    let (ssrc, seq, at) = (h.packet.header.ssrc, h.packet.header.sequence_number, h.at);
                    self.jitters.entry(ssrc).or_default().push(seq, h, at);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            self.release(now);
            if let Err(e) = self.write_mix(now.checked_sub(MIX_DELAY).unwrap_or(now)) {
                self.error = Some(e);
            }
            if now.duration_since(last_flush) >= Duration::from_secs(1) {
                last_flush = now;
                if let Some((path, file, _)) = self.mix.as_mut()
                    && let Err(e) = file.flush()
                {
                    self.error = Some(format!("cannot write {}: {e}", path.display()));
                }
            }
            if self.error.is_none() {
                self.error = self.over_cap(now);
            }
            if self.error.is_some() {
                break;
            }
        }
        // Whatever is still held goes out, then the files are closed.
        let end = Instant::now() + JITTER_HOLD;
        self.release(end);
        let _ = self.write_mix(end);
        self.finish()
    }

    fn over_cap(&self, now: Instant) -> Option<String> {
        if now.duration_since(self.started) >= self.plan.max_duration {
            return Some(format!("reached its cap of {} s", self.plan.max_duration.as_secs()));
        }
        let bytes = self.files.values().map(OggOpus::bytes).sum::<u64>()
            + self.mix.as_ref().map_or(0, |(_, f, m)| f.bytes(m.taken()));
        (bytes >= self.plan.max_bytes).then(|| format!("reached its cap of {} MiB", self.plan.max_bytes >> 20))
    }

    /// Writes what every jitter buffer releases by `now`.
    fn release(&mut self, now: Instant) {
        let mut out = Vec::new();
        for (ssrc, jitter) in &mut self.jitters {
            jitter.release(now, |h, at, missing| out.push((*ssrc, h, at, missing)));
        }
        for (ssrc, h, at, missing) in out {
            if let Err(e) = self.write(ssrc, &h, at, missing) {
                self.error.get_or_insert(e);
            }
        }
    }

    fn write(&mut self, ssrc: u32, h: &Heard, at: Instant, missing: u64) -> Result<(), String> {
        let ts = h.packet.header.timestamp;
        if let Some((folder, name)) = &self.plan.each {
            let file = match self.files.entry(ssrc) {
                std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let path = folder.join(format!("{}.ogg", name(ssrc)));
                    let file = OggOpus::create(&path, "wasmcalls")
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    v.insert(file)
                }
            };
            file.write(ts, &h.packet.payload).map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
        }
        if let Some((_, _, mix)) = self.mix.as_mut() {
            mix.add(ssrc, ts, at, &h.packet.payload, missing);
        }
        Ok(())
    }

    /// Writes the mix up to `until`.
    fn write_mix(&mut self, until: Instant) -> Result<(), String> {
        let Some((path, file, mix)) = self.mix.as_mut() else { return Ok(()) };
        let mut failed = None;
        mix.take_until(mix.sample_at(until), |x| {
            if failed.is_none() {
                failed = file.write_sample(x).err();
            }
        });
        failed.map_or(Ok(()), |e| Err(format!("cannot write {}: {e}", path.display())))
    }

    fn finish(self) -> RecordSummary {
        let mut files = Vec::new();
        let mut error = self.error;
        for (ssrc, file) in self.files {
            let (path, duration_ms, bytes) = (file.path().to_owned(), file.duration_ms(), file.bytes());
            if let Err(e) = file.finish() {
                error.get_or_insert(format!("cannot close {}: {e}", path.display()));
            }
            files.push(RecordedFile { path, ssrc: Some(ssrc), duration_ms, bytes });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some((path, file, mix)) = self.mix {
            let duration_ms = mix.taken() / 48;
            let bytes = file.finalize(mix.taken()).unwrap_or_else(|e| {
                error.get_or_insert(format!("cannot close {}: {e}", path.display()));
                0
            });
            files.push(RecordedFile { path, ssrc: None, duration_ms, bytes });
        }
        let lost = self.jitters.values().map(|j| j.stats().lost).sum();
        RecordSummary { files, dropped: 0, lost, error }
    }
}
