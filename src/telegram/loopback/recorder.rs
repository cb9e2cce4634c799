//! What one loopback participant heard: decoded audio placed on a timeline by RTP
//! timestamp (so pauses and losses show as silence, as a listener would hear them),
//! and packet counters that tests and the CLI read back.
//!
//! Packets pass a jitter buffer first ([`Jitter`]), as in a receiver.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use rtc::rtp::packet::Packet;
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, watch};

use super::LoopbackOptions;
pub use crate::media::jitter::JITTER_HOLD;
use crate::media::jitter::Jitter;
use crate::media::loss::{FRAME, conceal};
use crate::media::stats::{Percentiles, new_histogram};
use crate::telegram::ChatId;

/// Output channels and rate: Telegram mixes at 48 kHz stereo.
const CHANNELS: usize = 2;
/// A timestamp jump beyond this is treated as a new timeline, not silence to fill.
const MAX_SILENCE_SAMPLES: u64 = 48_000 * 60;

/// Counters of one participant, as a snapshot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeardStats {
    /// Last WebRTC connection state of the loopback's peer.
    pub state: String,
    pub packets: u64,
    pub bytes: u64,
    /// Packets missing from the sequence (never arrived within the jitter buffer's hold).
    pub lost: u64,
    /// Packets that arrived after their place was played (too late for the jitter
    /// buffer), or twice.
    pub late: u64,
    /// Packets that arrived behind a later one and were put back in order.
    pub reordered: u64,
    /// SSRCs seen, in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// Packets that carried the RFC 6464 audio-level extension.
    pub level_packets: u64,
    /// Packets with the RTP marker bit (talk-spurt starts).
    pub markers: u64,
    pub decode_errors: u64,
    /// Arrival time minus RTP time, relative to the best seen.
    pub arrival_deviation: Percentiles,
    /// Length of the heard timeline, in 48 kHz samples per channel.
    pub timeline_samples: u64,
}

/// One received frame, for tests that need the exact packet timeline.
#[derive(Debug, Clone)]
pub struct HeardFrame {
    pub seq: u16,
    pub timestamp: u32,
    pub arrived: Instant,
    /// Where its decoded audio starts on the timeline (samples per channel).
    pub at_sample: u64,
    /// The Opus payload as it arrived.
    pub payload: bytes::Bytes,
}

struct Recorder {
    decoder: Option<opus::Decoder>,
    keep_audio: bool,
    pcm: Vec<i16>,
    frames: Vec<HeardFrame>,
    wav: Option<hound::WavWriter<BufWriter<File>>>,
    scratch: Vec<i16>,
    stats: HeardStats,
    deviation: Histogram<u32>,
    jitter: Jitter<Packet>,
    ts_origin: Option<i64>,
    last_ext_ts: i64,
    first_arrival: Option<Instant>,
    transit_min: Option<f64>,
    /// Who hears it live ([`HeardCall::listen`]).
    listeners: Vec<tokio::sync::mpsc::Sender<Arc<[i16]>>>,
}

/// Decoded frames a live listener may lag behind by before it misses some: 1 s.
const LISTEN_QUEUE: usize = 50;

/// A participant of the loopback call and what it heard.
pub struct HeardCall {
    chat: ChatId,
    ssrc: u32,
    hang_up: Arc<Notify>,
    rec: Mutex<Recorder>,
    version: watch::Sender<u64>,
}

impl HeardCall {
    pub(super) fn new(chat: ChatId, ssrc: u32, opts: &LoopbackOptions) -> Self {
        let decoder = opts.decode.then(|| opus::Decoder::new(48000, opus::Channels::Stereo)).and_then(|d| {
            d.map_err(|e| tracing::warn!(ssrc, "loopback: no Opus decoder ({e}); counting packets only")).ok()
        });
        HeardCall {
            chat,
            ssrc,
            hang_up: Arc::new(Notify::new()),
            rec: Mutex::new(Recorder {
                decoder,
                keep_audio: opts.keep_audio,
                pcm: Vec::new(),
                frames: Vec::new(),
                wav: None,
                scratch: vec![0; 5760 * CHANNELS],
                stats: HeardStats { state: "new".into(), ..Default::default() },
                deviation: new_histogram(),
                jitter: Jitter::default(),
                ts_origin: None,
                last_ext_ts: 0,
                first_arrival: None,
                transit_min: None,
                listeners: Vec::new(),
            }),
            version: watch::Sender::new(0),
        }
    }

    pub fn chat(&self) -> ChatId {
        self.chat
    }

    /// The SSRC the participant joined with.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Ends this participant's connection (leave, kick, or replaced by a rejoin).
    pub fn hang_up(&self) {
        self.hang_up.notify_one();
        // Live listeners hear that it ended: their stream closes.
        self.rec.lock().listeners.clear();
    }

    pub(super) fn hang_up_signal(&self) -> Arc<Notify> {
        self.hang_up.clone()
    }

    /// Whether its connection has closed (it left, was replaced, or failed).
    pub fn left(&self) -> bool {
        self.rec.lock().stats.state == "left"
    }

    pub fn stats(&self) -> HeardStats {
        let rec = self.rec.lock();
        let mut s = rec.stats.clone();
        s.arrival_deviation = Percentiles::of(&rec.deviation);
        let j = rec.jitter.stats();
        (s.lost, s.late, s.reordered) = (j.lost, j.late, j.reordered);
        s
    }

    /// Decoded audio so far: 48 kHz stereo interleaved (needs `keep_audio`).
    pub fn audio(&self) -> Vec<i16> {
        self.rec.lock().pcm.clone()
    }

    /// Every frame received so far (needs `keep_audio`).
    pub fn frames(&self) -> Vec<HeardFrame> {
        self.rec.lock().frames.clone()
    }

    /// Streams everything heard from now on into a 48 kHz stereo WAV file.
    pub fn record_to(&self, path: &Path) -> Result<(), hound::Error> {
        let spec = hound::WavSpec {
            channels: CHANNELS as u16,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        self.rec.lock().wav = Some(hound::WavWriter::create(path, spec)?);
        Ok(())
    }

    /// Closes the WAV file, writing its final header.
    pub fn finish_recording(&self) -> Result<(), hound::Error> {
        match self.rec.lock().wav.take() {
            Some(w) => w.finalize(),
            None => Ok(()),
        }
    }

    /// Waits until `pred` holds for the stats; re-checked after every packet and state change.
    pub async fn wait_until(&self, mut pred: impl FnMut(&HeardStats) -> bool) {
        let mut rx = self.version.subscribe();
        loop {
            if pred(&self.stats()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub(super) fn on_state(&self, state: String) {
        self.rec.lock().stats.state = state;
        self.version.send_modify(|v| *v += 1);
    }

    /// What it hears from now on, live: 48 kHz stereo PCM, a frame (or a concealed
    /// run of them) at a time. A listener that falls a second behind misses frames;
    /// the call never waits for it. Dropping the receiver ends it.
    pub fn listen(&self) -> tokio::sync::mpsc::Receiver<Arc<[i16]>> {
        let (tx, rx) = tokio::sync::mpsc::channel(LISTEN_QUEUE);
        self.rec.lock().listeners.push(tx);
        rx
    }

    pub(super) fn on_rtp(&self, packet: &Packet, arrived: Instant) {
        self.rec.lock().on_rtp(packet, arrived);
        self.version.send_modify(|v| *v += 1);
    }

    /// Plays what has waited in the jitter buffer long enough by `now`; when the next
    /// packet will have (for the receive loop's timer).
    pub(super) fn release_due(&self, now: Instant) -> Option<Instant> {
        let mut rec = self.rec.lock();
        let before = rec.jitter.len();
        rec.release(now);
        let changed = rec.jitter.len() != before;
        let next = rec.jitter.next_due();
        drop(rec);
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
        next
    }

    /// Plays everything still in the jitter buffer (the connection is closing).
    pub(super) fn flush(&self) {
        self.rec.lock().release(Instant::now() + JITTER_HOLD);
        self.version.send_modify(|v| *v += 1);
    }
}

impl Recorder {
    fn on_rtp(&mut self, p: &Packet, arrived: Instant) {
        let h = &p.header;
        let s = &mut self.stats;
        s.packets += 1;
        s.bytes += p.payload.len() as u64;
        if !s.ssrcs.contains(&h.ssrc) {
            s.ssrcs.push(h.ssrc);
        }
        if h.marker {
            s.markers += 1;
        }
        if h.extensions.iter().any(|e| e.payload.len() == 1) {
            s.level_packets += 1;
        }
        if self.jitter.push(h.sequence_number, p.clone(), arrived) {
            self.release(arrived);
        }
    }

    /// Plays what the jitter buffer releases by `now`.
    fn release(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.jitter.release(now, |p, arrived, missing| out.push((p, arrived, missing)));
        for (packet, arrived, missing) in out {
            self.play(&packet, arrived, missing);
        }
    }

    /// Places one packet, in sequence, on the timeline; `missing` packets were lost
    /// just before it.
    fn play(&mut self, p: &Packet, arrived: Instant, missing: u64) {
        let h = &p.header;
        let s = &mut self.stats;

        // Unwrap the 32-bit timestamp onto a 64-bit line relative to the first packet.
        let ext = self.last_ext_ts + (h.timestamp.wrapping_sub(self.last_ext_ts as u32) as i32) as i64;
        self.last_ext_ts = ext;
        let origin = *self.ts_origin.get_or_insert(ext);
        let first = *self.first_arrival.get_or_insert(arrived);
        let transit = arrived.duration_since(first).as_secs_f64() - (ext - origin) as f64 / 48000.0;
        let min = self.transit_min.map_or(transit, |m| m.min(transit));
        self.transit_min = Some(min);
        let _ = self.deviation.record((((transit - min) * 1e6) as u64).max(1));

        let mut at = (ext - origin).max(0) as u64;
        if at > s.timeline_samples + MAX_SILENCE_SAMPLES {
            at = s.timeline_samples; // a new timeline (e.g. clock reset): no hour of silence
        }
        let Some(dec) = self.decoder.as_mut() else {
            s.timeline_samples = s.timeline_samples.max(at + 960);
            return;
        };
        let n = match dec.decode(&p.payload, &mut self.scratch, false) {
            Ok(n) => n,
            Err(_) => {
                s.decode_errors += 1;
                return;
            }
        };
        if at < s.timeline_samples {
            return; // overlaps audio already placed
        }
        // As a receiver does: the frames lost just before this packet are concealed —
        // the last from this packet's in-band FEC, the others by the decoder's PLC;
        // a gap in time with no packet missing (a pause) stays silence.
        let concealed = if missing > 0 && at > s.timeline_samples {
            let len = ((at - s.timeline_samples) as usize).min(missing as usize * FRAME);
            conceal(dec, &p.payload, len, CHANNELS)
        } else {
            Vec::new()
        };
        let gap = (at - s.timeline_samples) as usize * CHANNELS - concealed.len();
        let decoded = &self.scratch[..n * CHANNELS];
        if self.keep_audio {
            self.pcm.extend(std::iter::repeat_n(0, gap));
            self.pcm.extend_from_slice(&concealed);
            self.pcm.extend_from_slice(decoded);
            self.frames.push(HeardFrame {
                seq: h.sequence_number,
                timestamp: h.timestamp,
                arrived,
                at_sample: at,
                payload: p.payload.clone(),
            });
        }
        if !self.listeners.is_empty() {
            let live: Arc<[i16]> = concealed.iter().chain(decoded).copied().collect();
            self.listeners.retain(|tx| !matches!(tx.try_send(live.clone()), Err(TrySendError::Closed(_))));
        }
        if let Some(w) = self.wav.as_mut() {
            let mut ok = (0..gap).try_for_each(|_| w.write_sample(0i16)).is_ok();
            ok &= concealed.iter().chain(decoded).try_for_each(|&x| w.write_sample(x)).is_ok();
            if !ok {
                tracing::warn!("loopback: writing the recording failed; recording stopped");
                self.wav = None;
            }
        }
        s.timeline_samples = at + n as u64;
    }
}
