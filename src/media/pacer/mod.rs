//! The pacer: 20 ms frames, on time, for hundreds of calls.
//!
//! Calls are spread over a few shard threads (one per core by default). A shard owns
//! its calls outright — peer connection, socket, stream — so the hot path takes no
//! lock and crosses no channel; what it allocates is what `rtc` takes by value (a
//! packet's payload and header) and what the demuxer hands over. Deadlines sit on an
//! absolute grid (`epoch + phase + n × 20 ms`) so nothing drifts, and each call has its
//! own phase so a shard never fires all its sends at one instant. A call is placed on
//! the shard with the most room when it joins and handed whole to another between two
//! frames when a stream it is given fits only there (`control`).

mod admission;
mod clock;
mod session;
mod shard;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};

use parking_lot::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use admission::COMPLEXITY_STEPS;
pub use clock::{REALTIME_PRIORITY, background_priority, deadline_thread, thread_cpu_time};
pub use session::FRAME;

use super::cost::IDLE_US;
use super::encoder::EncoderConfig;
use super::listen::{ListenPlan, Sink};
use super::record::{self, RecordPlan, RecordSummary, RecordTap};
use super::shared::{self, Feeds};
use super::source::{Input, Opened, SourceSpec};
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
    /// Test-only fault injection: every frame the call prepares costs this much more
    /// CPU, as an encoder turning dearer (music to speech) would.
    #[cfg(feature = "fault-injection")]
    InjectCost(Duration),
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
    /// To the shard a call moves to, before the move: it holds the call's commands
    /// until the call arrives, so none is lost or run before the ones sent earlier.
    Expect {
        call: CallId,
    },
    /// To the call's shard: hand the call to `to`, which plays `play` on it (a stream
    /// admitted there and not on this one).
    Move {
        call: CallId,
        to: Mailbox,
        play: Box<Stream>,
    },
    /// The moving call (`None` if it had already gone) and the stream it plays there.
    Adopt {
        call: CallId,
        session: Option<Box<session::Session>>,
        play: Box<Stream>,
    },
    Shutdown,
}

impl Command {
    /// The call it is about, for a command a shard may have to hold for a moving call.
    fn call(&self) -> Option<CallId> {
        match self {
            Command::Control { call, .. }
            | Command::Stats { call, .. }
            | Command::Remove { call, .. }
            | Command::Move { call, .. } => Some(*call),
            _ => None,
        }
    }

    /// What it is, for a log that says which command held a thread.
    fn name(&self) -> &'static str {
        match self {
            Command::Add { .. } => "add",
            Command::Control { control, .. } => match control {
                Control::Play(_) => "play",
                Control::Pause => "pause",
                Control::Resume => "resume",
                Control::Volume(_) => "volume",
                Control::Stop => "stop",
                Control::Listen(..) => "listen",
                #[cfg(feature = "fault-injection")]
                Control::InjectPanic | Control::InjectCost(_) => "inject",
            },
            Command::Stats { .. } => "stats",
            Command::Remove { .. } => "remove",
            Command::Expect { .. } => "expect",
            Command::Move { .. } => "move",
            Command::Adopt { .. } => "adopt",
            Command::Shutdown => "shutdown",
        }
    }
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
    /// No pacer thread can take the work on and still send every call's frames on
    /// time; the calls already playing are untouched.
    #[error(
        "capacity: no pacer thread has room for {what}: {why}; try again when calls end, or spread calls over \
         more hosts ([host] shard_budget_percent sets the share of a core each pacer thread may commit)"
    )]
    Capacity { what: &'static str, why: String },
}

/// One pacer thread's load.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardLoad {
    /// Calls it holds.
    pub calls: usize,
    /// Its CPU time per wall time over the last second (1.0: a whole core).
    pub busy: f64,
    /// What its calls cost or are admitted to cost, as a share of a core.
    #[serde(default)]
    pub committed: f64,
    /// The share of a core it may commit.
    #[serde(default)]
    pub budget: f64,
    /// The complexity its encoders are capped at: 10 unless their cost drifted past the
    /// budget.
    #[serde(default)]
    pub complexity: u8,
    /// It takes no new work: its frames went late lately though its budget had room.
    #[serde(default)]
    pub late_hold: bool,
    /// Its thread runs with real-time scheduling ([`REALTIME_PRIORITY`]); without it,
    /// frames can go late when the machine is busy.
    #[serde(default)]
    pub realtime: bool,
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
    /// The share of one core, in percent, each pacer thread may commit to its calls;
    /// the rest is headroom for what measuring misses and for the rest of the host.
    pub budget_percent: f64,
    /// SCHED_FIFO priority of the pacer and shared-feed threads (1–99; 0: normal
    /// scheduling). See [`clock::deadline_thread`].
    pub realtime_priority: u8,
}

/// What a pacer thread commits by default: the rest absorbs timer wake-ups, the
/// runtime's own threads, and other processes on the core.
pub const BUDGET_PERCENT: f64 = 70.0;

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            connect_timeout: Duration::from_secs(10),
            consent: Default::default(),
            budget_percent: BUDGET_PERCENT,
            realtime_priority: REALTIME_PRIORITY,
        }
    }
}

impl PacerConfig {
    /// The budget in µs of CPU per 20 ms.
    fn budget_us(&self) -> u32 {
        (self.budget_percent.clamp(0.0, 100.0) * 200.0) as u32
    }
}

/// Where a shard's commands go: its queue, and the waker that gets its thread to
/// read it.
#[derive(Clone)]
pub(crate) struct Mailbox {
    cmds: Sender<Command>,
    waker: Arc<mio::Waker>,
}

impl Mailbox {
    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        self.cmds.send(cmd).map_err(|_| MediaError::Down)?;
        self.waker.wake().map_err(|_| MediaError::Down)
    }
}

struct ShardHandle {
    mailbox: Mailbox,
    gauges: Arc<admission::Gauges>,
    thread: Option<JoinHandle<ShardReport>>,
}

impl ShardHandle {
    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        self.mailbox.send(cmd)
    }
}

/// Where a call runs, and what it was admitted to cost.
#[derive(Clone, Copy)]
struct Placed {
    shard: usize,
    claim_us: u32,
}

/// Handle to the pacer threads. Cheap to share behind an `Arc`.
pub struct MediaPlane {
    shards: Vec<ShardHandle>,
    totals: Arc<PacerTotals>,
    /// Each call's shard and the claim last admitted for it; admission decides under
    /// this lock, so concurrent joins cannot both take the last room.
    calls: Mutex<HashMap<CallId, Placed>>,
    next_call: AtomicU64,
    next_stream: AtomicU64,
    /// Live sources encoded once for all the calls playing them.
    feeds: Feeds,
    config: PacerConfig,
    /// For events from outside the shards (a recording's end).
    events: mpsc::UnboundedSender<MediaEvent>,
}

impl MediaPlane {
    /// The consent timing new calls' peers are built with.
    pub fn consent(&self) -> crate::transport::Consent {
        self.config.consent
    }

    /// How long ICE + DTLS may take before a join fails.
    pub fn connect_timeout(&self) -> Duration {
        self.config.connect_timeout
    }

    /// Starts the shard threads; media events arrive on the returned receiver.
    pub fn start(config: PacerConfig) -> Result<(Self, mpsc::UnboundedReceiver<MediaEvent>), MediaError> {
        super::cost::warm_up();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let totals = Arc::new(PacerTotals::default());
        let trash = Trash::start().map_err(MediaError::Spawn)?;
        let mut shards = Vec::new();
        for i in 0..config.shards.max(1) {
            let poll = mio::Poll::new().map_err(MediaError::Spawn)?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), shard::WAKER).map_err(MediaError::Spawn)?);
            let (tx, rx) = channel();
            let gauges = Arc::new(admission::Gauges::default());
            let shard = shard::Shard {
                poll,
                cmds: rx,
                events: events_tx.clone(),
                gauges: gauges.clone(),
                budget_us: config.budget_us(),
                totals: totals.clone(),
                realtime_priority: config.realtime_priority,
                trash: trash.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("wasmcalls-pacer-{i}"))
                .spawn(move || shard.run())
                .map_err(MediaError::Spawn)?;
            shards.push(ShardHandle { mailbox: Mailbox { cmds: tx, waker }, gauges, thread: Some(thread) });
        }
        let plane = MediaPlane {
            shards,
            totals,
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            feeds: Feeds::new(config.realtime_priority),
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
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let share = shared::may_share(spec) && from.is_none_or(|d| d.is_zero());
        if share && let Some(sub) = self.feeds.join(spec, config) {
            return Ok(Box::new(Stream::shared(id, sub)));
        }
        let Opened { input, info, duration, start } = super::source::open(spec, from)?;
        match input {
            // Live sources are decoded on a reading thread of their own: PCM.
            Input::Pcm(pcm) if share && info.live => {
                Ok(Box::new(Stream::shared(id, self.feeds.start(spec, config, pcm, info)?)))
            }
            input => Ok(Box::new(Stream::new(id, Opened { input, info, duration, start }, config)?)),
        }
    }

    /// The shared live sources being played, and how many calls play each.
    pub fn feeds(&self) -> Vec<shared::FeedStatus> {
        self.feeds.status()
    }

    /// The shard with the most room, preferring one whose encoders run at full
    /// complexity.
    fn roomiest(&self) -> usize {
        (0..self.shards.len()).min_by_key(|&i| self.room_order(i)).unwrap_or(0)
    }

    /// Orders shards by room, most first: complexity step, then committed and pending
    /// cost, then calls held.
    fn room_order(&self, i: usize) -> (u8, u32, usize) {
        let g = &self.shards[i].gauges;
        (g.step.load(Ordering::Relaxed), g.load_us(), g.calls.load(Ordering::Relaxed))
    }

    /// Whether shard `idx` has room for `claim_us` in place of `replacing_us`; a
    /// refusal is counted.
    fn fits(&self, idx: usize, what: &'static str, claim_us: u32, replacing_us: u32) -> Result<(), MediaError> {
        let g = &self.shards[idx].gauges;
        match admission::refusal(g, claim_us, replacing_us, self.config.budget_us()) {
            Some(why) => Err(self.refused(what, why)),
            None => Ok(()),
        }
    }

    /// A refusal for capacity, counted.
    fn refused(&self, what: &'static str, why: String) -> MediaError {
        self.totals.admission_refused.fetch_add(1, Ordering::Relaxed);
        MediaError::Capacity { what, why }
    }

    /// Reserves `claim_us` on shard `idx`, replacing `replacing_us`, or says why not.
    fn admit(&self, idx: usize, what: &'static str, claim_us: u32, replacing_us: u32) -> Result<(), MediaError> {
        self.fits(idx, what, claim_us, replacing_us)?;
        self.shards[idx].gauges.pending.fetch_add(claim_us, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a new call playing a stream of `claim_us` ([`Stream::claim_us`]) would be
    /// admitted now — checked before joining, so a refused call never reaches Telegram.
    pub fn admits(&self, claim_us: u32) -> Result<(), MediaError> {
        let _decide = self.calls.lock();
        self.fits(self.roomiest(), "a new call", claim_us + IDLE_US, 0)
    }

    /// Hands a peer (with the remote answer applied) to the shard with the most room
    /// and waits until ICE and DTLS are up.
    pub async fn connect(&self, peer: OutboundPeer) -> Result<CallId, MediaError> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let idx = {
            let mut calls = self.calls.lock();
            let idx = self.roomiest();
            self.admit(idx, "a new call", IDLE_US, 0)?;
            calls.insert(call, Placed { shard: idx, claim_us: IDLE_US });
            idx
        };
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

    /// The pacer thread sending `call` now (0-based; a call moves to another thread to
    /// play a stream its own has no room for).
    pub fn thread_of(&self, call: CallId) -> Option<usize> {
        self.calls.lock().get(&call).map(|placed| placed.shard)
    }

    fn shard_of(&self, call: CallId) -> Result<&ShardHandle, MediaError> {
        let idx = self.calls.lock().get(&call).ok_or(MediaError::UnknownCall(call))?.shard;
        Ok(&self.shards[idx])
    }

    /// Applies a playback change at the next frame boundary. A new stream is admitted
    /// first, on the call's shard — or, where that has no room, the call moves to the
    /// shard with the most room that has (calls are placed when they join, before
    /// anyone knows what they will play) — and is refused with
    /// [`MediaError::Capacity`] where no shard has room (what the call played before
    /// keeps playing).
    pub fn control(&self, call: CallId, control: Control) -> Result<(), MediaError> {
        let Control::Play(stream) = control else {
            return self.shard_of(call)?.send(Command::Control { call, control });
        };
        let claim_us = stream.claim_us();
        let mut calls = self.calls.lock();
        let placed = calls.get_mut(&call).ok_or(MediaError::UnknownCall(call))?;
        let (from, replacing) = (placed.shard, placed.claim_us);
        let budget = self.config.budget_us();
        let room = |i: usize, replacing: u32| admission::refusal(&self.shards[i].gauges, claim_us, replacing, budget);
        let to = match room(from, replacing) {
            None => from,
            Some(why) => {
                let elsewhere = (0..self.shards.len())
                    .filter(|&i| i != from && room(i, 0).is_none())
                    .min_by_key(|&i| self.room_order(i));
                elsewhere.ok_or_else(|| self.refused("this stream", why))?
            }
        };
        self.shards[to].gauges.pending.fetch_add(claim_us, Ordering::Relaxed);
        placed.shard = to;
        placed.claim_us = claim_us;
        // Sent under the lock: a call's commands reach its shards in the order decided.
        let sent = if to == from {
            self.shards[from].send(Command::Control { call, control: Control::Play(stream) })
        } else {
            self.totals.calls_moved.fetch_add(1, Ordering::Relaxed);
            let to_mailbox = self.shards[to].mailbox.clone();
            self.shards[to]
                .send(Command::Expect { call })
                .and_then(|()| self.shards[from].send(Command::Move { call, to: to_mailbox, play: stream }))
        };
        if sent.is_err() {
            self.shards[to].gauges.taken_in(claim_us);
        }
        drop(calls);
        sent
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

    /// Each pacer thread's calls, how busy it is, and what it has committed.
    pub fn shards(&self) -> Vec<ShardLoad> {
        self.shards.iter().map(|h| h.gauges.snapshot(self.config.budget_us())).collect()
    }

    /// A snapshot of the call's counters.
    pub async fn stats(&self, call: CallId) -> Result<CallStats, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.shard_of(call)?.send(Command::Stats { call, reply })?;
        rx.await.map_err(|_| MediaError::Down)?.ok_or(MediaError::UnknownCall(call))
    }

    /// Closes the call's connection and forgets it.
    pub async fn remove(&self, call: CallId) {
        let Some(Placed { shard: idx, .. }) = self.calls.lock().remove(&call) else { return };
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

/// Where the pacer threads send what they are done with — a stream that ended or was
/// replaced, a call that left — to be freed on a background thread (not real-time,
/// [`background_priority`]). Freeing a stream's buffers takes locks of the allocator
/// that other threads hold (the buffers were allocated where the stream was opened) and
/// may hand memory back to the kernel under the process's memory-map lock: a real-time
/// thread must not wait on either while another thread holds it. Should the queue be
/// full, the pacer frees in place.
#[derive(Clone)]
pub struct Trash(std::sync::mpsc::SyncSender<Box<dyn Send>>);

/// Room in the queue (allocated up front, 24 B a place): every stream of a full host
/// ending in the same 20 ms (calls started together, a shared source ending); past it
/// the pacer frees in place.
const TRASH_QUEUE: usize = 1024;

impl Trash {
    fn start() -> std::io::Result<Trash> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Box<dyn Send>>(TRASH_QUEUE);
        std::thread::Builder::new().name("wasmcalls-free".into()).spawn(move || {
            background_priority();
            for thing in rx {
                drop(thing);
            }
        })?;
        Ok(Trash(tx))
    }

    /// Frees `thing` on the freeing thread (or here, if its queue is full).
    pub fn throw(&self, thing: Box<dyn Send>) {
        // A full or closed queue hands it back, to be dropped here.
        let _ = self.0.try_send(thing);
    }
}
