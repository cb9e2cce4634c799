//! The pacer: 20 ms frames, on time, for hundreds of calls.
//!
//! Calls are spread over a few shard threads (one per core by default). A shard owns
//! its calls outright — peer connection, socket, stream — so the hot path takes no
//! lock, crosses no channel and allocates nothing of ours. Deadlines sit on an absolute
//! grid (`epoch + phase + n × 20 ms`) so nothing drifts, and each call has its own
//! phase so a shard never fires all its sends at one instant.

mod clock;
mod session;
mod shard;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use clock::{background_priority, thread_cpu_time};
pub use session::FRAME;

use super::encoder::EncoderConfig;
use super::listen::{ListenPlan, Sink};
use super::record::{self, RecordPlan, RecordSummary, RecordTap};
use super::source::SourceSpec;
use super::stats::{CallStats, PacerTotals};
use super::stream::{Stream, StreamError, StreamId};
use crate::transport::OutboundPeer;

/// Identifies a call in the media plane.
pub type CallId = u64;

/// What the media plane tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// ICE and DTLS are up; frames can flow.
    Connected { call: CallId },
    /// A stream played to its end (or hit a read error). Fires exactly once per stream,
    /// never on pause and never for a replaced or stopped stream.
    StreamEnded { call: CallId, stream: StreamId, error: Option<String> },
    /// The connection failed after it was up.
    ConnectionLost { call: CallId, reason: String },
    /// The media path gave no answer until consent to send expired (RFC 7675): the call
    /// sends nothing more. Its owner may rejoin; `silent` is how long it had been quiet.
    ConsentExpired { call: CallId, silent: Duration },
    /// The media path went silent (no answer to consent checks) and came back by itself
    /// after `outage`; the stream played on meanwhile, at its own pace.
    Recovered { call: CallId, outage: Duration },
    /// The participant sending under `ssrc` started or stopped speaking, by the audio
    /// level of the stream the server forwards us.
    Speaking { call: CallId, ssrc: u32, speaking: bool },
    /// A recording of the call ended — stopped, capped, failed or its call gone — and
    /// this is what it wrote.
    RecordingEnded { call: CallId, summary: RecordSummary },
}

/// Who hears a call besides us: its recorder, a bridge into another call, or code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Recording,
    Bridge {
        to: CallId,
    },
    /// Code hearing the call as PCM ([`super::listen`]), by its listener's id.
    Audio(u64),
}

/// A change to a call's playback, applied at the next frame boundary.
pub enum Control {
    /// Start playing, or replace what is playing, on the same connection and SSRC.
    Play(Box<Stream>),
    Pause,
    Resume,
    /// 0–200 %.
    Volume(u16),
    /// Stop playing (no end event); the connection stays up.
    Stop,
    /// Hand what the call hears to a listener from now on, or (`None`) stop doing so,
    /// which ends what it was doing.
    Listen(Listener, Option<RecordTap>),
    /// Test-only fault injection: the call's next send panics on its shard.
    #[cfg(feature = "fault-injection")]
    InjectPanic,
}

pub(crate) enum Command {
    /// Boxed: a peer connection is large, and every command shares the channel's slot size.
    Add {
        call: CallId,
        peer: Box<OutboundPeer>,
        connect_timeout: Duration,
        ready: oneshot::Sender<Result<(), String>>,
    },
    Control {
        call: CallId,
        control: Control,
    },
    Stats {
        call: CallId,
        reply: oneshot::Sender<Option<CallStats>>,
    },
    Remove {
        call: CallId,
        reply: Option<oneshot::Sender<()>>,
    },
    Shutdown,
}

/// Errors from the media plane's handle.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("call {0} is not in the media plane")]
    UnknownCall(CallId),
    #[error("connecting the call's media failed: {0}")]
    Connect(String),
    #[error("the media plane has shut down")]
    Down,
    #[error("could not start a pacer thread: {0}")]
    Spawn(std::io::Error),
    #[error("cannot record: {0}")]
    Record(String),
}

/// One pacer thread's load.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardLoad {
    /// Calls it holds.
    pub calls: usize,
    /// Its CPU time per wall time over the last second (1.0: a whole core).
    pub busy: f64,
}

/// Totals a shard reports when it stops.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    /// CPU time the shard thread used.
    pub cpu: Duration,
    pub frames_sent: u64,
    pub late_frames: u64,
}

impl ShardReport {
    fn absorb(&mut self, s: &CallStats) {
        self.frames_sent += s.frames_sent;
        self.late_frames += s.late_frames;
    }
}

/// Media plane settings.
#[derive(Debug, Clone)]
pub struct PacerConfig {
    /// Pacer threads; calls go to the least loaded. Default: one per core.
    pub shards: usize,
    /// How long ICE + DTLS may take before a join fails.
    pub connect_timeout: Duration,
    /// When a silent media path is reported, and when consent to send expires.
    pub consent: crate::transport::Consent,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            connect_timeout: Duration::from_secs(10),
            consent: Default::default(),
        }
    }
}

struct ShardHandle {
    cmds: Sender<Command>,
    waker: Arc<mio::Waker>,
    load: Arc<AtomicUsize>,
    busy: Arc<std::sync::atomic::AtomicU32>,
    thread: Option<JoinHandle<ShardReport>>,
}

impl ShardHandle {
    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        self.cmds.send(cmd).map_err(|_| MediaError::Down)?;
        self.waker.wake().map_err(|_| MediaError::Down)
    }
}

/// Handle to the pacer threads. Cheap to share behind an `Arc`.
pub struct MediaPlane {
    shards: Vec<ShardHandle>,
    totals: Arc<PacerTotals>,
    calls: Mutex<HashMap<CallId, usize>>,
    next_call: AtomicU64,
    next_stream: AtomicU64,
    config: PacerConfig,
    /// For events from outside the shards (a recording's end).
    events: mpsc::UnboundedSender<MediaEvent>,
}

impl MediaPlane {
    /// The consent timing new calls' peers are built with.
    pub fn consent(&self) -> crate::transport::Consent {
        self.config.consent
    }

    /// Starts the shard threads; media events arrive on the returned receiver.
    pub fn start(config: PacerConfig) -> Result<(Self, mpsc::UnboundedReceiver<MediaEvent>), MediaError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let totals = Arc::new(PacerTotals::default());
        let mut shards = Vec::new();
        for i in 0..config.shards.max(1) {
            let poll = mio::Poll::new().map_err(MediaError::Spawn)?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), shard::WAKER).map_err(MediaError::Spawn)?);
            let (tx, rx) = channel();
            let load = Arc::new(AtomicUsize::new(0));
            let busy = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let shard = shard::Shard {
                poll,
                cmds: rx,
                events: events_tx.clone(),
                load: load.clone(),
                busy: busy.clone(),
                totals: totals.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("wasmcalls-pacer-{i}"))
                .spawn(move || shard.run())
                .map_err(MediaError::Spawn)?;
            shards.push(ShardHandle { cmds: tx, waker, load, busy, thread: Some(thread) });
        }
        let plane = MediaPlane {
            shards,
            totals,
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            config,
            events: events_tx,
        };
        Ok((plane, events_rx))
    }

    /// Opens a source as a new stream, starting `from` a position when given. Blocking
    /// (file checks, the first HTTP response, probing, encoder set-up): call it off the
    /// pacer threads and off async workers.
    pub fn open_stream(
        &self,
        spec: &SourceSpec,
        from: Option<Duration>,
        config: EncoderConfig,
    ) -> Result<Box<Stream>, StreamError> {
        let opened = super::source::open(spec, from)?;
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Stream::new(id, opened, config)?))
    }

    /// Hands a peer (with the remote answer applied) to the least loaded shard and waits
    /// until ICE and DTLS are up.
    pub async fn connect(&self, peer: OutboundPeer) -> Result<CallId, MediaError> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let idx = (0..self.shards.len()).min_by_key(|&i| self.shards[i].load.load(Ordering::Relaxed)).unwrap_or(0);
        self.calls.lock().insert(call, idx);
        let (ready, rx) = oneshot::channel();
        self.shards[idx].send(Command::Add {
            call,
            peer: Box::new(peer),
            connect_timeout: self.config.connect_timeout,
            ready,
        })?;
        match rx.await {
            Ok(Ok(())) => Ok(call),
            Ok(Err(reason)) => {
                self.remove(call).await;
                Err(MediaError::Connect(reason))
            }
            Err(_) => Err(MediaError::Down),
        }
    }

    fn shard_of(&self, call: CallId) -> Result<&ShardHandle, MediaError> {
        let idx = *self.calls.lock().get(&call).ok_or(MediaError::UnknownCall(call))?;
        Ok(&self.shards[idx])
    }

    /// Applies a playback change at the next frame boundary.
    pub fn control(&self, call: CallId, control: Control) -> Result<(), MediaError> {
        self.shard_of(call)?.send(Command::Control { call, control })
    }

    /// Starts recording `call` as `plan` says; its end — stopped, capped, failed, or the
    /// call gone — arrives as [`MediaEvent::RecordingEnded`].
    /// Returns once the call's shard hands it what it hears: nothing said after that is
    /// missing from the recording.
    pub async fn record(&self, call: CallId, plan: RecordPlan) -> Result<(), MediaError> {
        let shard = self.shard_of(call)?;
        let events = self.events.clone();
        let tap = record::start(plan, move |summary| {
            let _ = events.send(MediaEvent::RecordingEnded { call, summary });
        })
        .map_err(MediaError::Record)?;
        shard.send(Command::Control { call, control: Control::Listen(Listener::Recording, Some(tap)) })?;
        // A shard takes its commands in order: once it answers this, it is recording.
        self.stats(call).await.map(|_| ())
    }

    /// Plays what `from` hears into `to`, replacing what `to` plays; returns once
    /// `from`'s shard hands its packets over. The bridge ends with `from` (its stream
    /// in `to` then ends), or by [`MediaPlane::unbridge`].
    pub async fn bridge(&self, from: CallId, to: CallId, config: EncoderConfig) -> Result<StreamId, MediaError> {
        let (tap, opened) = super::bridge::start().map_err(MediaError::Record)?;
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let stream = Stream::new(id, opened, config).map_err(|e| MediaError::Record(e.to_string()))?;
        self.control(to, Control::Play(Box::new(stream)))?;
        self.control(from, Control::Listen(Listener::Bridge { to }, Some(tap)))?;
        self.stats(from).await.map(|_| id)
    }

    /// Ends the bridge from `from` into `to`: `to` plays nothing.
    pub fn unbridge(&self, from: CallId, to: CallId) -> Result<(), MediaError> {
        let _ = self.control(from, Control::Listen(Listener::Bridge { to }, None));
        self.control(to, Control::Stop)
    }

    /// Hands what `call` hears to `sink` as `plan` says, as listener `id` (one per
    /// call: a second replaces the first); returns once the call's shard hands its
    /// packets over. It ends with the call, [`MediaPlane::unlisten`], or a closed sink.
    pub async fn listen(&self, call: CallId, id: u64, plan: ListenPlan, sink: Sink) -> Result<(), MediaError> {
        let tap = super::listen::start(plan, sink).map_err(MediaError::Record)?;
        self.control(call, Control::Listen(Listener::Audio(id), Some(tap)))?;
        self.stats(call).await.map(|_| ())
    }

    /// Stops listener `id` hearing `call`: its last batches go out.
    pub fn unlisten(&self, call: CallId, id: u64) -> Result<(), MediaError> {
        self.control(call, Control::Listen(Listener::Audio(id), None))
    }

    /// Each pacer thread's calls and how busy it is.
    pub fn shards(&self) -> Vec<ShardLoad> {
        let shard = |h: &ShardHandle| ShardLoad {
            calls: h.load.load(Ordering::Relaxed),
            busy: f64::from(h.busy.load(Ordering::Relaxed)) / 1e6,
        };
        self.shards.iter().map(shard).collect()
    }

    /// A snapshot of the call's counters.
    pub async fn stats(&self, call: CallId) -> Result<CallStats, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.shard_of(call)?.send(Command::Stats { call, reply })?;
        rx.await.map_err(|_| MediaError::Down)?.ok_or(MediaError::UnknownCall(call))
    }

    /// Closes the call's connection and forgets it.
    pub async fn remove(&self, call: CallId) {
        let Some(idx) = self.calls.lock().remove(&call) else { return };
        let (reply, rx) = oneshot::channel();
        if self.shards[idx].send(Command::Remove { call, reply: Some(reply) }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Totals over every call paced so far.
    pub fn totals(&self) -> &PacerTotals {
        &self.totals
    }

    /// Calls currently held.
    pub fn call_count(&self) -> usize {
        self.calls.lock().len()
    }

    /// Stops every shard (closing their calls) and returns their totals.
    pub fn shutdown(mut self) -> Vec<ShardReport> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Vec<ShardReport> {
        for s in &self.shards {
            let _ = s.send(Command::Shutdown);
        }
        self.shards.iter_mut().filter_map(|s| s.thread.take()?.join().ok()).collect()
    }
}

impl Drop for MediaPlane {
    fn drop(&mut self) {
        self.stop_all();
    }
}
