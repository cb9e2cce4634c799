//! The call's mix, as a listener hears it: every participant's stream decoded, placed
//! on one timeline — a stream's first packet where it arrived, the rest by their RTP
//! time after it, lost packets concealed as a receiver would — and summed.
//! [`Mix::take_until`] hands out what no packet can still change. libopus decodes
//! straight to the rate and channels a listener asks for (8 to 48 kHz, mono or
//! stereo), so nothing is resampled.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::media::loss::{FRAME, conceal};

/// Interleaved channels of a recording's mix.
pub const CHANNELS: usize = 2;
/// Opus's RTP clock, whatever rate it is decoded at.
const RTP_RATE: i64 = 48_000;
/// A timestamp jump beyond this many seconds restarts a stream's placement at its
/// arrival.
const MAX_JUMP_S: i64 = 60;

struct Voice {
    decoder: opus::Decoder,
    /// Where its RTP timeline sits on the mix's: (extended timestamp, mix sample).
    anchor: (i64, u64),
    last_ts: i64,
    /// Where its audio so far ends on the mix's timeline.
    end: u64,
}

/// Every stream's decoder and its place on a timeline that starts at `origin`.
pub struct Voices {
    origin: Instant,
    rate: u32,
    channels: usize,
    voices: HashMap<u32, Voice>,
    scratch: Vec<i16>,
}

impl Voices {
    /// 48 kHz stereo, as recordings and bridges have it.
    pub fn new(origin: Instant) -> Voices {
        Voices::with_format(origin, 48_000, CHANNELS)
    }

    /// Decoded at `rate` (8, 12, 16, 24 or 48 kHz) into `channels` (1 or 2).
    pub fn with_format(origin: Instant, rate: u32, channels: usize) -> Voices {
        let scratch = vec![0; rate as usize * 120 / 1000 * channels];
        Voices { origin, rate, channels, voices: HashMap::new(), scratch }
    }

    /// The sample per channel `at` falls on.
    pub fn sample_at(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_micros() as u64) * u64::from(self.rate) / 1_000_000
    }

    /// Where `ssrc`'s audio so far ends on the timeline (none before its first packet).
    pub fn end_of(&self, ssrc: u32) -> Option<u64> {
        self.voices.get(&ssrc).map(|v| v.end)
    }

    /// Drops `ssrc`'s decoder (a stream gone quiet for good); it starts afresh if heard.
    pub fn forget(&mut self, ssrc: u32) {
        self.voices.remove(&ssrc);
    }

    /// Decodes one packet of `ssrc`'s stream, released in order by its jitter buffer
    /// (`missing` packets were lost just before it), and hands `place` its audio with
    /// where it starts.
    pub fn decode(
        &mut self,
        ssrc: u32,
        ts: u32,
        arrived: Instant,
        payload: &[u8],
        missing: u64,
        mut place: impl FnMut(u64, &[i16]),
    ) {
        let arrival = self.sample_at(arrived);
        let (rate, channels) = (self.rate, self.channels);
        let voice = match self.voices.entry(ssrc) {
            std::collections::hash_map::Entry::Occupied(v) => v.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let layout = if channels == 1 { opus::Channels::Mono } else { opus::Channels::Stereo };
                let Ok(decoder) = opus::Decoder::new(rate, layout) else { return };
                v.insert(Voice { decoder, anchor: (i64::from(ts), arrival), last_ts: i64::from(ts), end: arrival })
            }
        };
        let ext = voice.last_ts + i64::from(ts.wrapping_sub(voice.last_ts as u32) as i32);
        voice.last_ts = ext;
        let mut at = voice.anchor.1 as i64 + (ext - voice.anchor.0) * i64::from(rate) / RTP_RATE;
        if (at - voice.end as i64).abs() > MAX_JUMP_S * i64::from(rate) || at < 0 {
            voice.anchor = (ext, arrival);
            at = arrival as i64;
        }
        let at = at as u64;
        let Ok(n) = voice.decoder.decode(payload, &mut self.scratch, false) else { return };
        // Lost just before: concealed, as a receiver does; a pause stays silence.
        if missing > 0 && at > voice.end {
            let frame = FRAME * rate as usize / 48_000;
            let len = ((at - voice.end) as usize).min(missing as usize * frame);
            let concealed = conceal(&mut voice.decoder, payload, len, channels);
            place(at - len as u64, &concealed);
        }
        voice.end = voice.end.max(at + n as u64);
        place(at, &self.scratch[..n * channels]);
    }
}

/// Audio summed onto one timeline, handed out in order.
pub struct Timeline {
    channels: usize,
    /// Samples (interleaved) from `taken` on, summed wide.
    pending: VecDeque<i32>,
    /// Samples per channel already handed out.
    taken: u64,
    /// Audio that arrived for a stretch already handed out, in samples per channel.
    pub late_samples: u64,
}

impl Default for Timeline {
    /// Stereo.
    fn default() -> Self {
        Timeline::new(CHANNELS)
    }
}

impl Timeline {
    pub fn new(channels: usize) -> Timeline {
        Timeline { channels, pending: VecDeque::new(), taken: 0, late_samples: 0 }
    }

    /// Adds `pcm` (interleaved) starting at sample `at`.
    pub fn place(&mut self, at: u64, pcm: &[i16]) {
        let ch = self.channels;
        let mut skip = 0;
        if at < self.taken {
            skip = ((self.taken - at) as usize * ch).min(pcm.len());
            self.late_samples += (skip / ch) as u64;
        }
        let offset = (at.max(self.taken) - self.taken) as usize * ch;
        let need = offset + pcm.len() - skip;
        if self.pending.len() < need {
            self.pending.resize(need, 0);
        }
        for (i, &x) in pcm[skip..].iter().enumerate() {
            self.pending[offset + i] += i32::from(x);
        }
    }

    /// The sum up to (not including) sample `until`, saturated to 16 bits: silence
    /// where nothing was placed.
    pub fn take_until(&mut self, until: u64, mut f: impl FnMut(i16)) {
        while self.taken < until {
            for _ in 0..self.channels {
                let x = self.pending.pop_front().unwrap_or(0);
                f(x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
            }
            self.taken += 1;
        }
    }

    /// Samples per channel handed out.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Hands out nothing before `sample`: what was placed there is dropped.
    pub fn skip_to(&mut self, sample: u64) {
        if sample > self.taken {
            let n = ((sample - self.taken) as usize * self.channels).min(self.pending.len());
            self.pending.drain(..n);
            self.taken = sample;
        }
    }
}

/// Streams summed onto one 48 kHz stereo timeline that starts at `origin`.
pub struct Mix {
    pub voices: Voices,
    pub timeline: Timeline,
}

impl Mix {
    pub fn new(origin: Instant) -> Mix {
        Mix { voices: Voices::new(origin), timeline: Timeline::default() }
    }

    /// The sample per channel `at` falls on.
    pub fn sample_at(&self, at: Instant) -> u64 {
        self.voices.sample_at(at)
    }

    /// Adds one packet of `ssrc`'s stream, released in order by its jitter buffer.
    pub fn add(&mut self, ssrc: u32, ts: u32, arrived: Instant, payload: &[u8], missing: u64) {
        let timeline = &mut self.timeline;
        self.voices.decode(ssrc, ts, arrived, payload, missing, |at, pcm| timeline.place(at, pcm));
    }

    /// The mix up to sample `until` (see [`Timeline::take_until`]).
    pub fn take_until(&mut self, until: u64, f: impl FnMut(i16)) {
        self.timeline.take_until(until, f)
    }

    /// Samples per channel handed out.
    pub fn taken(&self) -> u64 {
        self.timeline.taken()
    }
}
