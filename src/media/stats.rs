//! Per-call counters and the send-deviation histogram.

use hdrhistogram::Histogram;
use serde::Serialize;

/// A frame sent later than this after its deadline is counted late: past a quarter
/// of a frame period, receivers' jitter buffers start to stretch.
pub const LATE_AFTER_US: u64 = 5_000;

/// Microsecond histogram, 1 µs – 60 s, buckets within 6.25 % (~1.4 KiB). There is one
/// per call, so two significant digits (~10 KiB) would cost more than the call's
/// frame buffers; percentiles of jitter need no finer grain.
pub fn new_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 60_000_000, 1).expect("static histogram bounds are valid")
}

/// Percentiles of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u32>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// What the pacer knows about one call, as a snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallStats {
    pub ssrc: u32,
    pub connected: bool,
    pub paused: bool,
    /// Id of the stream playing, if any.
    pub stream: Option<u64>,
    /// Playback position of that stream, in 48 kHz ticks.
    pub position: u64,
    /// Its length in ticks, when the source says.
    pub duration: Option<u64>,
    /// What the source is.
    pub source: Option<crate::media::source::SourceInfo>,
    /// The source's Opus packets are sent as they are right now.
    pub passing_through: bool,
    /// Source packets skipped because they did not decode.
    pub skipped: u64,
    /// Silent frames sent while a live source had nothing.
    pub starved: u64,
    pub volume: u16,
    /// Packets heard from the call's other participants, all streams together.
    pub heard_packets: u64,
    /// Each participant's stream we hear, by SSRC.
    pub heard: Vec<crate::media::inbound::InboundStats>,
    /// Packets sent.
    pub frames_sent: u64,
    /// Audio those packets carried, in 48 kHz ticks.
    pub sent_ticks: u64,
    pub late_frames: u64,
    /// Datagrams the OS refused to send.
    pub send_errors: u64,
    /// |send time − deadline| per frame: early counts as much as late.
    pub deviation: Percentiles,
    /// What preparing one frame costs the pacer thread (read, decode, resample, encode —
    /// or pass a packet through), in µs, averaged over the last few dozen frames: the
    /// call's weight on its thread.
    pub prepare_us: f64,
}

/// Totals across every call the media plane ever paced (for `/metrics`): they keep
/// counting after a call is gone.
#[derive(Debug)]
pub struct PacerTotals {
    pub frames_sent: std::sync::atomic::AtomicU64,
    pub late_frames: std::sync::atomic::AtomicU64,
    /// |send − deadline| in seconds.
    pub deviation: crate::metrics::AtomicHistogram,
    /// Calls dropped because handling them panicked (the shard and its other calls carry on).
    pub call_crashes: std::sync::atomic::AtomicU64,
    /// RTP packets heard from other participants, over all calls.
    pub heard_packets: std::sync::atomic::AtomicU64,
    /// Calls and streams refused because no pacer thread had room for them.
    pub admission_refused: std::sync::atomic::AtomicU64,
    /// Calls moved to another pacer thread to play a stream theirs had no room for.
    pub calls_moved: std::sync::atomic::AtomicU64,
    /// Late frames by what held their pacer thread up, indexed by [`LateCause`].
    pub late_by_cause: [std::sync::atomic::AtomicU64; LateCause::ALL.len()],
}

/// What a late frame is blamed on: the longest of what its pacer thread did (or could
/// not do) between its last sleep and the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateCause {
    /// The thread was not running: it woke after its timer, or was preempted since
    /// (other processes, a CPU the hypervisor took).
    NotRunning,
    /// Commands: streams starting or stopping, calls joining or leaving.
    Commands,
    /// Preparing frames ahead (reading, decoding, encoding).
    Preparing,
    /// Datagrams received: handshakes, RTCP, what the call hears.
    Datagrams,
    /// The frames sent before it in the same line (any of them encoded there, at its
    /// deadline, included).
    Sends,
}

impl LateCause {
    pub const ALL: [LateCause; 5] =
        [LateCause::NotRunning, LateCause::Commands, LateCause::Preparing, LateCause::Datagrams, LateCause::Sends];

    /// The label `/metrics` and the bench print.
    pub fn name(self) -> &'static str {
        match self {
            LateCause::NotRunning => "not_running",
            LateCause::Commands => "commands",
            LateCause::Preparing => "preparing",
            LateCause::Datagrams => "datagrams",
            LateCause::Sends => "sends",
        }
    }
}

impl Default for PacerTotals {
    fn default() -> Self {
        PacerTotals {
            frames_sent: Default::default(),
            late_frames: Default::default(),
            call_crashes: Default::default(),
            heard_packets: Default::default(),
            admission_refused: Default::default(),
            calls_moved: Default::default(),
            late_by_cause: Default::default(),
            deviation: crate::metrics::AtomicHistogram::new(crate::metrics::DEVIATION_BOUNDS),
        }
    }
}

impl PacerTotals {
    /// One frame sent `deviation_us` off its deadline; if late, because of `cause`.
    pub fn observe(&self, deviation_us: u64, late: Option<LateCause>) {
        use std::sync::atomic::Ordering::Relaxed;
        self.frames_sent.fetch_add(1, Relaxed);
        if let Some(cause) = late {
            self.late_frames.fetch_add(1, Relaxed);
            self.late_by_cause[cause as usize].fetch_add(1, Relaxed);
        }
        self.deviation.observe(deviation_us as f64 / 1e6);
    }

    /// Late frames blamed on `cause` so far.
    pub fn late_because(&self, cause: LateCause) -> u64 {
        self.late_by_cause[cause as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}
