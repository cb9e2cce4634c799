//! Live sources shared between calls: one fetch, one decode, one encode.
//!
//! A radio bot playing one station into hundreds of groups would otherwise fetch,
//! decode and encode the same audio once per group. Calls that play the same live
//! source — a live URL, or a named source the operator marked `live` — with the same
//! encoder settings subscribe to one [`Feed`]: a thread takes a frame from the source
//! every 20 ms, encodes it once and publishes it, with its PCM, to a short ring. Each
//! call copies the payload under its own RTP/SRTP; a call whose volume is not 100 %
//! encodes its own copy from the PCM, and goes back to the shared one at 100 %.
//!
//! The feed keeps its own 20 ms clock, so the source is read at its real rate however
//! many listen. A call reads [`START_BEHIND`] frames behind it, so neither thread ever
//! waits for the other; a frame the feed has not published by a call's deadline is
//! played as silence and skipped, so the call stays in step. A call left out of the
//! ring (paused for a while) rejoins live. The feed stops when its last call lets go,
//! and a source that ends ends every call playing it.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::encoder::{Encoder, EncoderConfig, MAX_PACKET};
use super::gain::audio_level;
use super::resample::FRAME_SAMPLES;
use super::source::{Frame, PcmInput, SourceInfo, SourceSpec};
use super::stream::StreamError;

/// Frames a feed keeps: how long a paused call may stay away and resume where it was.
const RING: usize = 50;
/// How far behind the feed a call starts: slack for the feed thread's wake-ups.
pub const START_BEHIND: u64 = 3;
/// A feed that fell this far behind its clock (the machine stalled) skips ahead
/// instead of publishing a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
const FRAME: Duration = Duration::from_millis(20);

/// One published frame: the Opus payload every call sends, and the PCM it was encoded
/// from for calls that change their volume.
pub struct SharedFrame {
    pub opus: Box<[u8]>,
    pub level: u8,
    pub pcm: Box<[i16]>,
    /// Silence played because the source had nothing yet.
    pub starved: bool,
}

/// What a call found when it asked for its next frame.
pub enum Next {
    Frame(Arc<SharedFrame>),
    /// Not published yet.
    Wait,
    /// The source ended, with the reason when it failed.
    End(Option<String>),
}

struct Ring {
    frames: VecDeque<Arc<SharedFrame>>,
    /// The sequence number of `frames[0]`.
    first: u64,
    end: Option<Option<String>>,
    /// Its thread has stopped: nobody may subscribe any more.
    closed: bool,
}

/// A live source being read, decoded and encoded once for every call playing it.
pub struct Feed {
    what: String,
    info: SourceInfo,
    channels: u8,
    config: EncoderConfig,
    ring: Mutex<Ring>,
    /// The sequence number the next published frame gets: read without the lock by
    /// calls checking whether they can prepare a frame.
    published: AtomicU64,
    ended: AtomicBool,
    listeners: AtomicUsize,
    /// A silent frame for a call whose next frame is late.
    silence: Box<[u8]>,
}

impl Feed {
    /// What the source is.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Its channel count (the PCM in each frame).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// The encoder settings its frames are encoded with.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    pub fn silence(&self) -> &[u8] {
        &self.silence
    }

    fn publish(&self, frame: SharedFrame) {
        let mut ring = self.ring.lock();
        if ring.frames.len() == RING {
            ring.frames.pop_front();
            ring.first += 1;
        }
        ring.frames.push_back(Arc::new(frame));
        self.published.store(ring.first + ring.frames.len() as u64, Ordering::Release);
    }

    fn finish(&self, error: Option<String>) {
        self.ring.lock().end = Some(error);
        self.ended.store(true, Ordering::Release);
    }

    /// Stops it if nobody listens; checked under the lock so a subscriber cannot slip in.
    fn close_if_unheard(&self) -> bool {
        let mut ring = self.ring.lock();
        ring.closed = self.listeners.load(Ordering::Acquire) == 0;
        ring.closed
    }
}

/// A call's place in a feed.
pub struct Subscription {
    feed: Arc<Feed>,
    next: u64,
}

impl Subscription {
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Whether [`Self::take`] would return something other than `Wait`.
    pub fn ready(&self) -> bool {
        self.next < self.feed.published.load(Ordering::Acquire) || self.feed.ended.load(Ordering::Acquire)
    }

    /// The next frame; a call that fell out of the ring rejoins live.
    pub fn take(&mut self) -> Next {
        let ring = self.feed.ring.lock();
        let end = ring.first + ring.frames.len() as u64;
        if self.next < ring.first {
            self.next = end.saturating_sub(START_BEHIND).max(ring.first);
        }
        if self.next < end {
            let frame = ring.frames[(self.next - ring.first) as usize].clone();
            self.next += 1;
            return Next::Frame(frame);
        }
        match &ring.end {
            Some(e) => Next::End(e.clone()),
            None => Next::Wait,
        }
    }

    /// Gives up on the next frame (it was not published by the call's deadline), so
    /// the call stays in step with the feed.
    pub fn skip(&mut self) {
        self.next += 1;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.listeners.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A feed's line in `/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedStatus {
    /// The source, as named in messages.
    pub source: String,
    /// Calls playing it.
    pub listeners: usize,
}

/// A feed as the registry holds it: what it plays, how it encodes, and the feed while
/// anyone plays it.
type Entry = (SourceSpec, EncoderConfig, Weak<Feed>);

/// The feeds running, found by what they play.
#[derive(Default)]
pub struct Feeds {
    by_source: Mutex<HashMap<String, Vec<Entry>>>,
    /// Of the feed threads: they have deadlines as the pacer's do.
    realtime_priority: u8,
}

/// Whether `spec` may be shared before it is opened: a named source only when the
/// operator marked it live; a URL only once it turns out to be live.
pub fn may_share(spec: &SourceSpec) -> bool {
    match spec {
        SourceSpec::Url { .. } => true,
        SourceSpec::Command { live, .. } => *live,
        SourceSpec::File { .. } => false,
    }
}

impl Feeds {
    /// No feeds yet; their threads will ask for `realtime_priority`.
    pub fn new(realtime_priority: u8) -> Feeds {
        Feeds { realtime_priority, ..Feeds::default() }
    }

    /// A subscription to the feed already playing `spec` with `config`, if one runs.
    pub fn join(&self, spec: &SourceSpec, config: EncoderConfig) -> Option<Subscription> {
        let map = self.by_source.lock();
        let feed = map.get(&spec.describe())?.iter().find(|(s, c, _)| s == spec && *c == config)?.2.upgrade()?;
        subscribe(feed)
    }

    /// Starts a feed over `input` (a live source just opened, described by `info`) and
    /// subscribes to it. Another call may have started one meanwhile: then that one is
    /// joined and `input` is dropped.
    pub fn start(
        &self,
        spec: &SourceSpec,
        config: EncoderConfig,
        input: Box<dyn PcmInput>,
        info: SourceInfo,
    ) -> Result<Subscription, StreamError> {
        let mut map = self.by_source.lock();
        // Feeds that stopped leave nothing behind, however many sources came and went.
        map.retain(|_, entries| {
            entries.retain(|(_, _, w)| w.strong_count() > 0);
            !entries.is_empty()
        });
        let entries = map.entry(spec.describe()).or_default();
        if let Some(sub) = entries
            .iter()
            .find(|(s, c, _)| s == spec && *c == config)
            .and_then(|(_, _, w)| w.upgrade())
            .and_then(subscribe)
        {
            return Ok(sub);
        }
        entries.retain(|(s, c, _)| !(s == spec && *c == config));
        let channels = input.channels();
        let mut encoder = Encoder::new(channels, config)?;
        let mut silence = [0u8; MAX_PACKET];
        let n = encoder.encode(&vec![0; FRAME_SAMPLES * channels as usize], &mut silence)?;
        let feed = Arc::new(Feed {
            what: spec.describe(),
            info: SourceInfo { shared: true, ..info },
            channels,
            config,
            ring: Mutex::new(Ring { frames: VecDeque::with_capacity(RING), first: 0, end: None, closed: false }),
            published: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            listeners: AtomicUsize::new(0),
            silence: silence[..n].into(),
        });
        let sub = subscribe(feed.clone()).expect("a new feed takes subscribers");
        let (runner, priority) = (feed.clone(), self.realtime_priority);
        std::thread::Builder::new()
            .name("wasmcalls-feed".into())
            .spawn(move || {
                crate::media::pacer::deadline_thread(priority);
                run(runner, input, encoder)
            })
            .map_err(|e| StreamError::Feed(format!("cannot start a thread for {}: {e}", spec.describe())))?;
        entries.push((spec.clone(), config, Arc::downgrade(&feed)));
        Ok(sub)
    }

    /// The feeds running and who listens.
    pub fn status(&self) -> Vec<FeedStatus> {
        let map = self.by_source.lock();
        let mut out: Vec<FeedStatus> = map
            .values()
            .flatten()
            .filter_map(|(_, _, w)| w.upgrade())
            .filter(|f| !f.ring.lock().closed)
            .map(|f| FeedStatus { source: f.what.clone(), listeners: f.listeners.load(Ordering::Relaxed) })
            .collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }
}

fn subscribe(feed: Arc<Feed>) -> Option<Subscription> {
    let next = {
        let ring = feed.ring.lock();
        if ring.closed || ring.end.is_some() {
            return None;
        }
        feed.listeners.fetch_add(1, Ordering::AcqRel);
        (ring.first + ring.frames.len() as u64).saturating_sub(START_BEHIND).max(ring.first)
    };
    Some(Subscription { feed, next })
}

/// The feed's thread: a frame every 20 ms on its own clock until the source ends or
/// nobody listens.
fn run(feed: Arc<Feed>, mut input: Box<dyn PcmInput>, mut encoder: Encoder) {
    let samples = FRAME_SAMPLES * feed.channels as usize;
    let mut pcm = vec![0i16; samples];
    let mut out = [0u8; MAX_PACKET];
    let mut next = Instant::now();
    loop {
        if feed.close_if_unheard() {
            tracing::debug!(source = %feed.what, "shared feed stopped: no call plays it");
            return;
        }
        let (starved, last) = match input.next_frame(&mut pcm) {
            Ok(Frame::Audio(n)) => (false, n < FRAME_SAMPLES),
            Ok(Frame::Starved) => {
                pcm.fill(0);
                (true, false)
            }
            Ok(Frame::End) => return feed.finish(None),
            Err(e) => return feed.finish(Some(e.to_string())),
        };
        match encoder.encode(&pcm, &mut out) {
            Ok(n) => feed.publish(SharedFrame {
                opus: out[..n].into(),
                level: audio_level(&pcm),
                pcm: pcm.as_slice().into(),
                starved,
            }),
            Err(e) => return feed.finish(Some(format!("{}: {e}", feed.what))),
        }
        if last {
            return feed.finish(None);
        }
        next += FRAME;
        let now = Instant::now();
        if now.saturating_duration_since(next) > MAX_CATCH_UP {
            next = now;
        }
        std::thread::sleep(next.saturating_duration_since(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tone of `.0` frames.
    struct Tone(u64);

    impl PcmInput for Tone {
        fn channels(&self) -> u8 {
            1
        }
        fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, super::super::source::SourceError> {
            if self.0 == 0 {
                return Ok(Frame::End);
            }
            self.0 -= 1;
            out.iter_mut().enumerate().for_each(|(i, s)| *s = ((i as f64 * 0.05).sin() * 8000.0) as i16);
            Ok(Frame::Audio(out.len()))
        }
    }

    fn tone(frames: u64) -> Box<dyn PcmInput> {
        Box::new(Tone(frames))
    }

    fn info() -> SourceInfo {
        SourceInfo {
            container: "test".into(),
            codec: "pcm".into(),
            sample_rate: 48_000,
            channels: 1,
            live: true,
            pass_through: false,
            shared: false,
        }
    }

    fn spec() -> SourceSpec {
        SourceSpec::Command { name: "radio".into(), argv: vec!["radio".into()], live: true }
    }

    #[test]
    fn calls_on_one_source_share_one_feed_and_hear_the_same_frames_to_its_end() {
        let feeds = Feeds::default();
        let config = EncoderConfig::default();
        let mut a = feeds.start(&spec(), config, tone(10), info()).unwrap();
        let mut b = feeds.join(&spec(), config).expect("joins the running feed");
        assert!(feeds.join(&spec(), EncoderConfig { bitrate: Some(32_000), ..config }).is_none());
        assert_eq!(feeds.status(), vec![FeedStatus { source: "source radio".into(), listeners: 2 }]);
        let (mut heard_a, mut heard_b) = (Vec::new(), Vec::new());
        for (sub, heard) in [(&mut a, &mut heard_a), (&mut b, &mut heard_b)] {
            loop {
                match sub.take() {
                    Next::Frame(f) => heard.push(f.opus.to_vec()),
                    Next::Wait => std::thread::sleep(Duration::from_millis(5)),
                    Next::End(e) => break assert_eq!(e, None),
                }
            }
        }
        assert_eq!(heard_a.len(), 10);
        assert_eq!(heard_a, heard_b, "the same payloads");
        assert!(feeds.join(&spec(), config).is_none(), "an ended feed takes nobody");
    }

    #[test]
    fn a_feed_nobody_plays_stops() {
        let feeds = Feeds::default();
        let sub = feeds.start(&spec(), EncoderConfig::default(), tone(u64::MAX), info()).unwrap();
        let feed = Arc::downgrade(&sub.feed);
        drop(sub);
        let t0 = Instant::now();
        while feed.strong_count() > 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(feed.strong_count(), 0, "the thread let go");
        assert!(feeds.status().is_empty());
    }
}
