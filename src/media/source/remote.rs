//! Sources read on their own thread: URLs, an ffmpeg child for formats not decoded
//! natively, and operators' named source commands. The thread reads, decodes and
//! converts into a short bounded queue of 20 ms frames (the read-ahead); the pacer
//! takes a frame without ever waiting, and plays silence — counted — when there is
//! none yet. A live stream that drops is reconnected with backoff meanwhile.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::Duration;

use parking_lot::Mutex;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::io::ReadOnlySource;

use super::fetch::{self, UrlPolicy};
use super::sniff::{Sniffed, sniff};
use super::{Frame, Input, Opened, PcmFormat, PcmInput, SourceError, SourceInfo, decoded, opus, raw};
use crate::media::resample::FRAME_SAMPLES;

/// Frames decoded ahead of the pacer: 1 s. Enough to ride out a slow read; bounded,
/// so a fast server is not read into memory.
const READ_AHEAD: usize = 50;
/// Reconnection backoff for a live stream: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));

/// What the reading thread and the stream share.
#[derive(Default)]
struct Shared {
    /// The source ended (or failed: `error`).
    ended: AtomicBool,
    error: Mutex<Option<SourceError>>,
    /// The stream is gone: the thread stops.
    closed: AtomicBool,
    skipped: AtomicU64,
    reconnects: AtomicU64,
}

type Reopen = Box<dyn FnMut() -> Result<Box<dyn PcmInput>, SourceError> + Send>;

/// How long opening waits for the first frame (a program starting, a server's first
/// bytes): the stream then starts with audio, not with silence.
const FIRST_FRAME: Duration = Duration::from_secs(10);

/// The stream's side: frames from the thread's queue.
struct Queued {
    /// The first frame, taken while opening.
    first: Option<(Box<[i16]>, usize)>,
    frames: Receiver<(Box<[i16]>, usize)>,
    recycle: SyncSender<Box<[i16]>>,
    channels: u8,
    shared: Arc<Shared>,
    /// An ffmpeg or command child, ended with the stream.
    child: Option<Child>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl PcmInput for Queued {
    fn channels(&self) -> u8 {
        self.channels
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, SourceError> {
        if let Some((buf, n)) = self.first.take() {
            out.copy_from_slice(&buf[..out.len()]);
            return Ok(Frame::Audio(n));
        }
        match self.frames.try_recv() {
            Ok((buf, n)) => {
                out.copy_from_slice(&buf[..out.len()]);
                let _ = self.recycle.try_send(buf);
                Ok(Frame::Audio(n))
            }
            Err(TryRecvError::Empty) if !self.shared.ended.load(Ordering::Acquire) => Ok(Frame::Starved),
            Err(_) => match self.shared.error.lock().take() {
                Some(e) => Err(e),
                None => Ok(Frame::End),
            },
        }
    }

    fn skipped(&self) -> u64 {
        self.shared.skipped.load(Ordering::Relaxed)
    }
}

/// Starts the reading thread on `input` (reopened with `reopen` when a live stream
/// drops) and returns the stream's side of it.
fn spawn(
    input: Box<dyn PcmInput>,
    reopen: Option<Reopen>,
    what: String,
    child: Option<Child>,
) -> Result<Box<Queued>, SourceError> {
    let channels = input.channels();
    let name = what.clone();
    let (tx, frames) = sync_channel(READ_AHEAD);
    let (recycle, spare) = sync_channel(READ_AHEAD + 2);
    let shared = Arc::new(Shared::default());
    let thread_shared = shared.clone();
    let spawned = std::thread::Builder::new().name("wasmcalls-source".into()).spawn(move || {
        read_loop(input, reopen, &what, channels, &tx, &spare, &thread_shared);
        thread_shared.ended.store(true, Ordering::Release);
    });
    if let Err(e) = spawned {
        return Err(SourceError::Io { what: format!("{name} (its reading thread)"), source: e });
    }
    let mut queued = Queued { first: None, frames, recycle, channels, shared, child };
    // Opening returns once there is audio (or the source failed, or said nothing).
    match queued.frames.recv_timeout(FIRST_FRAME) {
        Ok(f) => queued.first = Some(f),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            return Err(SourceError::Stalled { url: name, seconds: FIRST_FRAME.as_secs() });
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Some(e) = queued.shared.error.lock().take() {
                return Err(e);
            }
        }
    }
    Ok(Box::new(queued))
}

fn read_loop(
    mut input: Box<dyn PcmInput>,
    mut reopen: Option<Reopen>,
    what: &str,
    channels: u8,
    tx: &SyncSender<(Box<[i16]>, usize)>,
    spare: &Receiver<Box<[i16]>>,
    shared: &Shared,
) {
    let frame_len = FRAME_SAMPLES * channels as usize;
    let mut backoff = BACKOFF.0;
    let mut skipped_before = 0;
    loop {
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0i16; frame_len].into_boxed_slice());
        let result = if input.channels() == channels {
            input.next_frame(&mut buf)
        } else {
            // A live stream that came back with another channel count keeps the first one.
            let mut other = vec![0i16; FRAME_SAMPLES * input.channels() as usize];
            let r = input.next_frame(&mut other);
            remix(&other, input.channels(), &mut buf, channels);
            r
        };
        shared.skipped.store(skipped_before + input.skipped(), Ordering::Relaxed);
        match result {
            Ok(Frame::Audio(n)) => {
                backoff = BACKOFF.0;
                if tx.send((buf, n)).is_err() {
                    return;
                }
            }
            Ok(Frame::Starved) => std::thread::sleep(Duration::from_millis(5)),
            Ok(Frame::End) => return,
            Err(e) => {
                let Some(reopen) = reopen.as_mut() else {
                    tracing::warn!("{what}: {e}");
                    *shared.error.lock() = Some(e);
                    return;
                };
                // A live stream dropped: reconnect, with backoff, while the call plays silence.
                tracing::warn!("{what} dropped ({e}); reconnecting in {backoff:?} — the call plays silence meanwhile");
                loop {
                    std::thread::sleep(backoff);
                    if shared.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    skipped_before += input.skipped();
                    match reopen() {
                        Ok(fresh) => {
                            tracing::info!("{what}: reconnected");
                            input = fresh;
                            break;
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(BACKOFF.1);
                            tracing::warn!("{what}: reconnecting failed ({e}); trying again in {backoff:?}");
                        }
                    }
                }
            }
        }
    }
}

/// Mono ↔ stereo.
fn remix(from: &[i16], from_channels: u8, to: &mut [i16], to_channels: u8) {
    if from_channels == 1 {
        for (i, s) in from.iter().enumerate() {
            to[2 * i] = *s;
            to[2 * i + 1] = *s;
        }
    } else {
        for (i, pair) in from.chunks_exact(2).enumerate().take(to.len() / to_channels as usize) {
            to[i] = ((pair[0] as i32 + pair[1] as i32) / 2) as i16;
        }
    }
}

/// A reader made `Sync` for the demuxer (only one thread ever reads it).
struct Exclusive<R>(Mutex<R>);

impl<R: Read> Read for Exclusive<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_mut().read(buf)
    }
}

/// A reader that first replays the bytes already sniffed.
struct Prefixed<R> {
    head: Vec<u8>,
    at: usize,
    rest: R,
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

/// Reads up to `n` bytes for sniffing.
fn head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A byte stream's decoder, what it decodes, and how long it is if known.
struct Decoder {
    input: Box<dyn PcmInput>,
    info: SourceInfo,
    duration: Option<u64>,
}

/// A decoder for a byte stream that is not seekable (a URL, a pipe). Unknown content
/// is taken as raw PCM s16le 48 kHz stereo (what `ffmpeg -f s16le` writes).
fn decoder_for(mut bytes: Box<dyn Read + Send>, what: &str, live: bool) -> Result<Decoder, SourceError> {
    let io = |e: io::Error| SourceError::Io { what: what.to_owned(), source: e };
    let head = head(&mut bytes, 512).map_err(io)?;
    if head.is_empty() {
        return Err(SourceError::Empty(what.to_owned()));
    }
    let sniffed = sniff(&head);
    let stream = Prefixed { head, at: 0, rest: bytes };
    match sniffed {
        Sniffed::NotAudio(kind) => Err(SourceError::NotAudio { what: what.to_owned(), kind }),
        // ffmpeg decodes files here, not streams: a URL's container it alone knows is
        // said plainly rather than played as raw PCM (noise).
        Sniffed::Foreign(format) => Err(SourceError::Damaged {
            what: what.to_owned(),
            reason: format!("{format} is decoded only from a file (through ffmpeg): download it and play the file"),
        }),
        Sniffed::Unknown => {
            let o = raw::open_reader(Box::new(stream), PcmFormat::stereo48(), what)?;
            Ok(Decoder { input: pcm(o.input)?, info: o.info, duration: None })
        }
        Sniffed::Audio | Sniffed::Container => {
            let d = decoded::demux(Box::new(ReadOnlySource::new(Exclusive(Mutex::new(stream)))), what)?;
            let o = if d.codec == CODEC_ID_OPUS {
                opus::open(d, what, None, live)?
            } else {
                decoded::open_demuxed(d, what, None, live)?
            };
            let mut info = o.info;
            info.pass_through = false;
            Ok(Decoder { input: pcm(o.input)?, info, duration: o.duration })
        }
    }
}

/// The PCM side of an input (Opus is decoded here, not passed through).
fn pcm(input: Input) -> Result<Box<dyn PcmInput>, SourceError> {
    Ok(match input {
        Input::Pcm(p) => p,
        Input::Opus(o) => o,
    })
}

/// Opens a URL: the first response and the probe happen now (a 404, a web page, a TLS
/// failure or a stall is an error here); decoding continues on its own thread.
pub fn open_url(url: &str, policy: &UrlPolicy) -> Result<Opened, SourceError> {
    let fetched = fetch::get(url, policy)?;
    let live = fetched.live;
    let Decoder { input, mut info, duration } = decoder_for(Box::new(fetched.body), url, live)?;
    info.live = live;
    let reopen: Option<Reopen> = live.then(|| {
        let (url, policy) = (url.to_owned(), policy.clone());
        Box::new(move || {
            let f = fetch::get(&url, &policy)?;
            decoder_for(Box::new(f.body), &url, true).map(|d| d.input)
        }) as Reopen
    });
    Ok(Opened { input: Input::Pcm(spawn(input, reopen, url.to_owned(), None)?), info, duration, start: 0 })
}

/// Whether an `ffmpeg` is on the PATH.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Decodes a file through one ffmpeg child, to s16le 48 kHz stereo on a pipe.
pub fn open_ffmpeg(path: &Path, from: Option<Duration>) -> Result<Opened, SourceError> {
    let what = path.display().to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    if let Some(t) = from {
        cmd.arg("-ss").arg(format!("{:.3}", t.as_secs_f64()));
    }
    cmd.arg("-i").arg(path).args(["-vn", "-f", "s16le", "-ac", "2", "-ar", "48000", "pipe:1"]);
    let (out, child) = run(cmd, "ffmpeg")?;
    let o = raw::open_reader(out, PcmFormat::stereo48(), &what)?;
    let info = SourceInfo { container: "ffmpeg".into(), codec: "ffmpeg".into(), ..o.info };
    let input = spawn(pcm(o.input)?, None, what, Some(child))?;
    Ok(Opened { input: Input::Pcm(input), info, duration: None, start: from.map_or(0, super::ticks) })
}

/// Runs an operator's named source command; its standard output is the audio.
pub fn open_command(name: &str, argv: &[String]) -> Result<Opened, SourceError> {
    let fail = |reason: String| SourceError::Command { name: name.to_owned(), reason };
    let (program, args) = argv.split_first().ok_or_else(|| fail("the command is empty".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    let (out, child) = run(cmd, name)?;
    let what = format!("source {name}");
    let Decoder { input, info, .. } = decoder_for(out, &what, false)?;
    Ok(Opened { input: Input::Pcm(spawn(input, None, what, Some(child))?), info, duration: None, start: 0 })
}

/// Spawns `cmd` with its standard output piped (and its errors logged).
fn run(mut cmd: Command, name: &str) -> Result<(Box<dyn Read + Send>, Child), SourceError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::Command { name: name.to_owned(), reason: format!("cannot start it: {e}") })?;
    if let Some(err) = child.stderr.take() {
        let name = name.to_owned();
        let _ = std::thread::Builder::new().name("wasmcalls-stderr".into()).spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(err).lines().map_while(Result::ok) {
                tracing::warn!("{name}: {line}");
            }
        });
    }
    let out = child
        .stdout
        .take()
        .ok_or_else(|| SourceError::Command { name: name.to_owned(), reason: "no output pipe".into() })?;
    Ok((Box::new(out), child))
}
