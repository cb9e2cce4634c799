//! The call's mix, as a listener hears it: every participant's stream decoded, placed
//! on one timeline — a stream's first packet where it arrived, the rest by their RTP
//! time after it, lost packets concealed as a receiver would — and summed.
//! [`Mix::take_until`] hands out what no packet can still change.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::media::loss::{FRAME, conceal};

/// Interleaved channels of the mix.
pub const CHANNELS: usize = 2;
/// A timestamp jump beyond this restarts a stream's placement at its arrival.
const MAX_JUMP: i64 = 48_000 * 60;

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
    voices: HashMap<u32, Voice>,
    scratch: Vec<i16>,
}

impl Voices {
    pub fn new(origin: Instant) -> Voices {
        Voices { origin, voices: HashMap::new(), scratch: vec![0; 5760 * CHANNELS] }
    }

    /// The sample per channel `at` falls on.
    pub fn sample_at(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_micros() as u64) * 48 / 1000
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
        let voice = match self.voices.entry(ssrc) {
            std::collections::hash_map::Entry::Occupied(v) => v.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(decoder) = opus::Decoder::new(48_000, opus::Channels::Stereo) else { return };
                v.insert(Voice { decoder, anchor: (i64::from(ts), arrival), last_ts: i64::from(ts), end: arrival })
            }
        };
        let ext = voice.last_ts + i64::from(ts.wrapping_sub(voice.last_ts as u32) as i32);
        voice.last_ts = ext;
        let mut at = voice.anchor.1 as i64 + (ext - voice.anchor.0);
        if (at - voice.end as i64).abs() > MAX_JUMP || at < 0 {
            voice.anchor = (ext, arrival);
            at = arrival as i64;
        }
        let at = at as u64;
        let Ok(n) = voice.decoder.decode(payload, &mut self.scratch, false) else { return };
        // Lost just before: concealed, as a receiver does; a pause stays silence.
        if missing > 0 && at > voice.end {
            let len = ((at - voice.end) as usize).min(missing as usize * FRAME);
            let concealed = conceal(&mut voice.decoder, payload, len, CHANNELS);
            place(at - len as u64, &concealed);
        }
        voice.end = voice.end.max(at + n as u64);
        place(at, &self.scratch[..n * CHANNELS]);
    }
}

/// Audio summed onto one timeline, handed out in order.
#[derive(Default)]
pub struct Timeline {
    /// Samples (interleaved) from `taken` on, summed wide.
    pending: VecDeque<i32>,
    /// Samples per channel already handed out.
    taken: u64,
    /// Audio that arrived for a stretch already handed out, in samples per channel.
    pub late_samples: u64,
}

impl Timeline {
    /// Adds `pcm` (interleaved) starting at sample `at`.
    pub fn place(&mut self, at: u64, pcm: &[i16]) {
        let mut skip = 0;
        if at < self.taken {
            skip = ((self.taken - at) as usize * CHANNELS).min(pcm.len());
            self.late_samples += (skip / CHANNELS) as u64;
        }
        let offset = (at.max(self.taken) - self.taken) as usize * CHANNELS;
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
            for _ in 0..CHANNELS {
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
