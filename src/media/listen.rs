//! A call's audio handed to code as PCM batches — the mix, or each participant on their
//! own — for plugins that transcribe, detect voice commands or moderate. A thread takes
//! the packets the call hears (through the same non-blocking queue a recorder uses),
//! decodes them straight to the rate and channels asked for, and cuts batches
//! [`DELAY`] behind real time. The sink never blocks this thread: a sink that is full
//! counts the batch as dropped and says so in the next one it takes.
//!
//! The mix comes in a batch every `batch`, silence included. A participant's batches
//! cover only their audio: a pause ends a short batch, and the next starts where they
//! speak again (its `at` says where).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::jitter::{JITTER_HOLD, Jitter};
use super::record::RecordTap;
use super::record::mix::{Timeline, Voices};
use crate::transport::tap::Heard;

/// How far behind real time batches are cut: a packet its jitter buffer holds back
/// still lands in its batch.
pub const DELAY: Duration = Duration::from_millis(JITTER_HOLD.as_millis() as u64 + 20);
/// The thread's wake-up when nothing is heard: batches go out on time even in silence.
const TICK: Duration = Duration::from_millis(20);
/// A participant not heard for this long is forgotten (their decoder freed).
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// What to hand over, and how.
pub struct ListenPlan {
    /// The call's mix, or (false) each wanted participant on their own.
    pub mix: bool,
    /// Which sources a participant's batches are made of (asked per packet: who is
    /// behind a source may be learnt after their first packet).
    pub wanted: Box<dyn Fn(u32) -> bool + Send>,
    /// 8000, 12000, 16000, 24000 or 48000 Hz.
    pub rate: u32,
    /// 1 or 2, interleaved.
    pub channels: usize,
    /// Audio per batch: a multiple of 20 ms.
    pub batch: Duration,
}

/// A stretch of the call's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The participant's source; none for the mix.
    pub source: Option<u32>,
    /// Where it starts, in milliseconds since listening began.
    pub at_ms: u64,
    /// Interleaved 16-bit samples.
    pub pcm: Vec<i16>,
    /// Batches the sink could not take since the one before this.
    pub dropped: u32,
}

/// What a sink did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    Taken,
    /// Its queue is full: the batch is dropped and counted.
    Full,
    /// Nobody listens any more: the thread ends.
    Closed,
}

/// Where batches go; called on the listener's thread, so it must not block.
pub type Sink = Box<dyn FnMut(Batch) -> Handed + Send>;

/// Starts listening: the tap for the call's shard; the thread runs until the tap is
/// dropped or the sink closes.
pub fn start(plan: ListenPlan, sink: Sink) -> Result<RecordTap, String> {
    let (tap, heard) = RecordTap::new();
    std::thread::Builder::new()
        .name("wasmcalls-listen".into())
        .spawn(move || {
            super::pacer::background_priority();
            Listener::new(plan, sink).run(heard)
        })
        .map_err(|e| format!("cannot start a listener thread: {e}"))?;
    Ok(tap)
}

/// A timeline cut into batches: the mix's, or one participant's.
struct Run {
    timeline: Timeline,
    /// Where audio was placed, as merged spans of samples not yet cut: the rest of a
    /// participant's timeline is a pause.
    spans: VecDeque<(u64, u64)>,
    /// Samples (interleaved) of the batch so far, and where it starts.
    partial: Vec<i16>,
    start: u64,
}

impl Run {
    fn new(channels: usize) -> Run {
        Run { timeline: Timeline::new(channels), spans: VecDeque::new(), partial: Vec::new(), start: 0 }
    }

    /// Places audio, noting where it is.
    fn place(&mut self, at: u64, pcm: &[i16], channels: usize) {
        self.timeline.place(at, pcm);
        let end = at + (pcm.len() / channels) as u64;
        match self.spans.back_mut() {
            Some(last) if at <= last.1 => last.1 = last.1.max(end),
            _ => self.spans.push_back((at, end)),
        }
    }

    /// Whether audio was placed at `pos` (positions are asked in order).
    fn audio_at(&mut self, pos: u64) -> bool {
        while self.spans.front().is_some_and(|s| s.1 <= pos) {
            self.spans.pop_front();
        }
        self.spans.front().is_some_and(|s| s.0 <= pos)
    }
}

struct Listener {
    plan: ListenPlan,
    sink: Sink,
    voices: Voices,
    jitters: HashMap<u32, Jitter<Heard>>,
    /// The mix and its batch so far (mix mode), or each participant's (each mode).
    mix: Run,
    runs: HashMap<u32, Run>,
    /// Samples per channel in a full batch.
    batch_len: usize,
    dropped: u32,
    closed: bool,
    scratch: Vec<i16>,
}

impl Listener {
    fn new(plan: ListenPlan, sink: Sink) -> Listener {
        let voices = Voices::with_format(Instant::now(), plan.rate, plan.channels);
        let batch_len = (plan.rate as u128 * plan.batch.as_millis() / 1000) as usize;
        let mix = Run::new(plan.channels);
        Listener {
            plan,
            sink,
            voices,
            jitters: HashMap::new(),
            mix,
            runs: HashMap::new(),
            batch_len,
            dropped: 0,
            closed: false,
            scratch: Vec::new(),
        }
    }

    fn run(mut self, heard: Receiver<Heard>) {
        while !self.closed {
            let due = self.jitters.values().filter_map(Jitter::next_due).min();
            let wait = due.map_or(TICK, |d| d.saturating_duration_since(Instant::now()).min(TICK));
            match heard.recv_timeout(wait) {
                Ok(h) => {
                    let ssrc = h.packet.header.ssrc;
                    if self.plan.mix || (self.plan.wanted)(ssrc) {
                        let (seq, at) = (h.packet.header.sequence_number, h.at);
                        self.jitters.entry(ssrc).or_default().push(seq, h, at);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The call is gone or stopped listening: what is held goes out.
                Err(RecvTimeoutError::Disconnected) => {
                    let end = Instant::now() + DELAY;
                    self.release(end);
                    self.cut(end);
                    self.flush_partials();
                    return;
                }
            }
            let now = Instant::now();
            self.release(now);
            self.cut(now);
            self.forget(now);
        }
    }

    /// Decodes what every jitter buffer releases by `now` onto its timeline.
    fn release(&mut self, now: Instant) {
        let Listener { jitters, voices, mix, runs, plan, .. } = self;
        let ch = plan.channels;
        for (&ssrc, jitter) in jitters.iter_mut() {
            jitter.release(now, |h, at, missing| {
                let run = if plan.mix {
                    &mut *mix
                } else {
                    runs.entry(ssrc).or_insert_with(|| {
                        // Starts where the listener is now, not at its origin.
                        let mut run = Run::new(ch);
                        run.timeline.skip_to(voices.sample_at(now.checked_sub(DELAY).unwrap_or(now)));
                        run
                    })
                };
                let (ts, payload) = (h.packet.header.timestamp, &h.packet.payload);
                voices.decode(ssrc, ts, at, payload, missing, |at, pcm| run.place(at, pcm, ch));
            });
        }
    }

    /// Cuts batches out of everything up to `now` - [`DELAY`].
    fn cut(&mut self, now: Instant) {
        let until = self.voices.sample_at(now.checked_sub(DELAY).unwrap_or(now));
        if self.plan.mix {
            let mut run = std::mem::replace(&mut self.mix, Run::new(1));
            self.take(&mut run, None, until);
            self.mix = run;
            return;
        }
        let ssrcs: Vec<u32> = self.runs.keys().copied().collect();
        for ssrc in ssrcs {
            let Some(mut run) = self.runs.remove(&ssrc) else { continue };
            self.take(&mut run, Some(ssrc), until);
            self.runs.insert(ssrc, run);
        }
    }

    /// Moves `run`'s timeline up to `until` into batches. The mix is all batches; a
    /// participant's pause hands over the batch begun, and is not handed out.
    fn take(&mut self, run: &mut Run, source: Option<u32>, until: u64) {
        let ch = self.plan.channels;
        let from = run.timeline.taken();
        let mut samples = std::mem::take(&mut self.scratch);
        samples.clear();
        run.timeline.take_until(until, |x| samples.push(x));
        for (i, frame) in samples.chunks_exact(ch).enumerate() {
            let pos = from + i as u64;
            if source.is_some() && !run.audio_at(pos) {
                if !run.partial.is_empty() {
                    self.emit(source, run);
                }
                continue;
            }
            if run.partial.is_empty() {
                run.start = pos;
            }
            run.partial.extend_from_slice(frame);
            if run.partial.len() >= self.batch_len * ch {
                self.emit(source, run);
            }
        }
        self.scratch = samples;
    }

    /// Hands `run`'s batch so far to the sink.
    fn emit(&mut self, source: Option<u32>, run: &mut Run) {
        let pcm = std::mem::take(&mut run.partial);
        if self.closed || pcm.is_empty() {
            return;
        }
        let at_ms = run.start * 1000 / u64::from(self.plan.rate);
        match (self.sink)(Batch { source, at_ms, pcm, dropped: self.dropped }) {
            Handed::Taken => self.dropped = 0,
            Handed::Full => self.dropped += 1,
            Handed::Closed => self.closed = true,
        }
    }

    /// The last, short batches once the call stops being heard.
    fn flush_partials(&mut self) {
        let mut mix = std::mem::replace(&mut self.mix, Run::new(1));
        self.emit(None, &mut mix);
        for (ssrc, mut run) in std::mem::take(&mut self.runs) {
            self.emit(Some(ssrc), &mut run);
        }
    }

    /// Frees participants not heard for [`FORGET_AFTER`].
    fn forget(&mut self, now: Instant) {
        let horizon = self.voices.sample_at(now.checked_sub(FORGET_AFTER).unwrap_or(now));
        if horizon == 0 {
            return;
        }
        let gone: Vec<u32> = self
            .jitters
            .iter()
            .filter(|(ssrc, j)| j.is_empty() && self.voices.end_of(**ssrc).is_none_or(|end| end < horizon))
            .map(|(ssrc, _)| *ssrc)
            .collect();
        for ssrc in gone {
            self.jitters.remove(&ssrc);
            self.voices.forget(ssrc);
            if let Some(mut run) = self.runs.remove(&ssrc) {
                self.emit(Some(ssrc), &mut run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use crate::transport::tap::Heard;

    /// A 20 ms Opus packet of a 440 Hz tone, stereo at 48 kHz.
    fn tone_packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        (0..n)
            .map(|k| {
                let pcm: Vec<i16> = (0..960)
                    .flat_map(|i| {
                        let t = (k * 960 + i) as f64 / 48_000.0;
                        let x = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
                        [x, x]
                    })
                    .collect();
                enc.encode_vec(&pcm, 4000).unwrap()
            })
            .collect()
    }

    /// Packet `seq` of `ssrc`, sent `offset` in (its RTP time), arriving then.
    fn heard(ssrc: u32, seq: u16, offset: Duration, at: Instant, payload: Vec<u8>) -> Heard {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.ssrc = ssrc;
        packet.header.sequence_number = seq;
        packet.header.timestamp = offset.as_millis() as u32 * 48;
        packet.payload = payload.into();
        Heard { at, packet }
    }

    /// Runs a listener over `packets` (source, seq, arrival offset) and returns what
    /// its sink took.
    fn listen(plan: ListenPlan, packets: Vec<(u32, u16, Duration)>, full_every: Option<usize>) -> Vec<Batch> {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink_got = got.clone();
        let mut n = 0;
        let sink: Sink = Box::new(move |b| {
            n += 1;
            if full_every.is_some_and(|k| n % k == 0) {
                return Handed::Full;
            }
            sink_got.lock().unwrap().push(b);
            Handed::Taken
        });
        let mut listener = Listener::new(plan, sink);
        let t0 = Instant::now();
        let tone = tone_packets(packets.len());
        let mut last = t0;
        for ((ssrc, seq, offset), payload) in packets.into_iter().zip(tone) {
            let at = t0 + offset;
            listener.jitters.entry(ssrc).or_default().push(seq, heard(ssrc, seq, offset, at, payload), at);
            listener.release(at);
            listener.cut(at);
            last = at;
        }
        let end = last + Duration::from_secs(2);
        listener.release(end);
        listener.cut(end);
        listener.flush_partials();
        drop(listener);
        Arc::try_unwrap(got).unwrap().into_inner().unwrap()
    }

    fn plan(mix: bool, rate: u32, channels: usize, batch_ms: u64) -> ListenPlan {
        ListenPlan { mix, wanted: Box::new(|_| true), rate, channels, batch: Duration::from_millis(batch_ms) }
    }

    #[test]
    fn the_mix_comes_in_full_batches_at_the_rate_asked_silence_included() {
        // One second of a speaker, 20 ms apart, then two seconds of nothing.
        let packets = (0..50).map(|i| (7, i as u16, Duration::from_millis(20 * i))).collect();
        let batches = listen(plan(true, 16_000, 1, 100), packets, None);
        let (last, full) = batches.split_last().unwrap();
        assert!(full.iter().all(|b| b.source.is_none() && b.pcm.len() == 1600), "100 ms of 16 kHz mono each");
        assert!(last.pcm.len() <= 1600, "the end cuts the last one short");
        let ats: Vec<u64> = batches.iter().map(|b| b.at_ms).collect();
        assert!(ats.windows(2).all(|w| w[1] == w[0] + 100), "back to back: {ats:?}");
        let loud = batches.iter().filter(|b| b.pcm.iter().any(|x| x.unsigned_abs() > 1000)).count();
        assert!((9..=12).contains(&loud), "about a second of tone: {loud} loud batches");
        assert!(batches.len() >= 28, "silence keeps coming: {}", batches.len());
    }

    #[test]
    fn a_participant_comes_only_while_they_speak_and_a_pause_ends_a_batch() {
        // 0.5 s, a 1 s pause, then 0.5 s again: sequence numbers run on, RTP time
        // jumps with the pause.
        let mut packets: Vec<(u32, u16, Duration)> =
            (0..25).map(|i| (9, i as u16, Duration::from_millis(20 * i))).collect();
        packets.extend((75..100).map(|i| (9, i as u16 - 50, Duration::from_millis(20 * i))));
        let batches = listen(plan(false, 48_000, 2, 200), packets, None);
        assert!(batches.iter().all(|b| b.source == Some(9)));
        let total: usize = batches.iter().map(|b| b.pcm.len() / 2).sum();
        assert_eq!(total, 48_000, "exactly the second they spoke, no pause");
        let second = batches.iter().position(|b| b.at_ms >= 1400).expect("a batch after the pause");
        assert!((1400..=1600).contains(&batches[second].at_ms), "restarts where they speak again");
        assert!(batches[..second].last().unwrap().pcm.len() < 200 * 96, "the pause cut a short batch");
    }

    #[test]
    fn a_full_sink_drops_batches_and_the_next_one_says_how_many() {
        let packets = (0..50).map(|i| (7, i as u16, Duration::from_millis(20 * i))).collect();
        let batches = listen(plan(true, 48_000, 2, 20), packets, Some(3));
        assert!(batches.iter().skip(1).all(|b| b.dropped <= 1));
        let said: u32 = batches.iter().map(|b| b.dropped).sum();
        assert!(said >= 20, "every third batch dropped and told: {said}");
    }
}
